"""Networking across hosts on this machine: "hosts" are dataplane prefixes.  Host A is the cloud
(``cumulo up`` on RabbitMQ with its network agent and a QEMU compute node), host B a standalone
``cumulo agent --host hostB`` (QEMU) and ``cumulo network agent`` with a prefix, a state
directory and a tunnel address of its own.  Each host's ``<prefix>-dp`` has a veth to a
management bridge in ``cumulo-test-<id>-mgmt`` with its address 10.x.y.1 or .2, which carries
the VXLAN tunnels (``[network] tunnel_address``).

Two guests of one tenant network on different hosts get their addresses by DHCP (served on one
host only) and reach each other over VXLAN (VNI = the network's segmentation id, MTU 1450 end to
end); a guest of another tenant's network with the same CIDR reaches neither; ``/v2.0/agents``
shows both hosts with their tunneling_ip; the router (on one host) gives the guest on the other
its floating IP, reached from ``<prefix>-ext``; when everything is deleted, host A keeps only
``<prefix>-dp``, which holds the management interface it was given.  Then host B's network agent,
which hosts a network's DHCP and a router, is killed -9: once it is not alive both are
rescheduled on host A, where the guest's floating IP answers again; host B's agent, started
again, removes the namespaces it no longer hosts.
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.functional.conftest import BIN, RABBIT, Cloud, start_cloud, stop_cloud
from tests.functional.test_dataplane import (
    Api,
    boot,
    namespaces,
    netns,
    outside_get,
    probe_script,
    wait_for,
)
from tests.functional.test_qemu import qemu_pids

EXT_CIDR, EXT_GW = "172.31.19.0/24", "172.31.19.1"
CIDR = "10.50.0.0/24"
DOWN_TIME = 20  # [network] agent_down_time of this cloud (Neutron's 75 s would make the test long)


@dataclass
class Hosts:
    cloud: Cloud
    tmp: Path
    prefix_a: str
    prefix_b: str
    mgmt: str
    tunnel_a: str
    tunnel_b: str
    env_b: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_b(self, what: str) -> None:
        cmd = {"compute": [str(BIN / "cumulo"), "agent", "--host", "hostB"],
               "network": [str(BIN / "cumulo"), "network", "agent"]}[what]
        self.procs[what] = subprocess.Popen(cmd, env=self.env_b, stdout=subprocess.DEVNULL,
                                            stderr=open(self.tmp / f"b-{what}.log", "ab"), start_new_session=True)


def sh(*cmd: str) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"{' '.join(cmd)}: {r.stderr}"
    return r.stdout


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    tmp = tmp_path_factory.mktemp("mh")  # short: QEMU's monitor socket paths are limited to 107 bytes
    tag = uuid.uuid4().hex[:6]
    prefix_a, prefix_b, mgmt = f"cumulo-test-{tag}a", f"cumulo-test-{tag}b", f"cumulo-test-{tag}-mgmt"
    x, y = random.randint(100, 250), random.randint(1, 250)
    tunnel_a, tunnel_b = f"10.{x}.{y}.1", f"10.{x}.{y}.2"
    # the management network: a bridge in its own namespace, a veth from each host's -dp to it
    sh("ip", "netns", "add", mgmt)
    try:
        sh("ip", "-n", mgmt, "link", "add", "mgmt", "type", "bridge")
        sh("ip", "-n", mgmt, "link", "set", "mgmt", "up")
        for side, prefix, address in (("a", prefix_a, tunnel_a), ("b", prefix_b, tunnel_b)):
            sh("ip", "netns", "add", f"{prefix}-dp")
            sh("ip", "-n", mgmt, "link", "add", f"m-{side}", "type", "veth", "peer", "name", "mgmt0", "netns",
               f"{prefix}-dp")
            sh("ip", "-n", mgmt, "link", "set", f"m-{side}", "master", "mgmt", "up")
            sh("ip", "-n", f"{prefix}-dp", "addr", "add", f"{address}/24", "dev", "mgmt0")
            sh("ip", "-n", f"{prefix}-dp", "link", "set", "mgmt0", "up")
        common = {"CUMULO_BUS__URL": RABBIT, "CUMULO_BUS__PREFIX": f"cumulo-test-{uuid.uuid4().hex[:8]}",
                  "CUMULO_COMPUTE__FAKE_NODES": "0", "CUMULO_COMPUTE__SHUTDOWN_TIMEOUT": "10",
                  "CUMULO_COMPUTE__BUILD_TIMEOUT": "180", "CUMULO_NETWORK__DATAPLANE": "true",
                  "CUMULO_NETWORK__RECONCILE_INTERVAL": "5", "CUMULO_NETWORK__AGENT_DOWN_TIME": str(DOWN_TIME)}
        (tmp / "a").mkdir()
        cloud = start_cloud(tmp / "a", "sqlite", {
            **common, "CUMULO_COMPUTE__LOCAL_NODE": "true", "CUMULO_COMPUTE__HOST": "hostA",
            "CUMULO_NETWORK__NAMESPACE_PREFIX": prefix_a, "CUMULO_NETWORK__TUNNEL_ADDRESS": tunnel_a})
    except BaseException:
        for prefix in (prefix_a, prefix_b):
            netns("delete", f"{prefix}-dp")
        netns("delete", mgmt)
        raise
    (tmp / "b").mkdir()
    env_b = {**cloud.env, "CUMULO_STATE_DIR": str(tmp / "b"), "CUMULO_LOGGING__FILE": str(tmp / "b" / "cumulo.log"),
             "CUMULO_COMPUTE__HOST": "hostB", "CUMULO_NETWORK__NAMESPACE_PREFIX": prefix_b,
             "CUMULO_NETWORK__TUNNEL_ADDRESS": tunnel_b,
             "CUMULO_COMPUTE__METADATA_SECRET": (tmp / "a" / "metadata-secret").read_text().strip()}
    h = Hosts(cloud, tmp, prefix_a, prefix_b, mgmt, tunnel_a, tunnel_b, env_b)
    h.start_b("network")
    h.start_b("compute")
    try:
        yield h
    finally:
        for proc in h.procs.values():
            stop(proc)
        stop_cloud(cloud)
        for pid in qemu_pids(tmp):
            os.kill(pid, signal.SIGKILL)
        for env in (cloud.env, env_b):  # whatever a failed test left of either host's dataplane
            subprocess.run([str(BIN / "cumulo"), "network", "cleanup", "--yes"], env=env, capture_output=True,
                           timeout=60)
        for prefix in (prefix_a, prefix_b):
            netns("delete", f"{prefix}-dp")
        netns("delete", mgmt)
        # the VXLAN sockets of devices made in the root namespace would be ours: none may remain
        assert "cvx" not in sh("ip", "-o", "link", "show")


def vxlan(prefix: str, vni: int) -> dict | None:
    out = netns("exec", f"{prefix}-dp", "ip", "-j", "-d", "link", "show", f"vxlan-{vni}")
    return json.loads(out.stdout)[0] if out.returncode == 0 else None


def flood_to(prefix: str, vni: int) -> set[str]:
    out = sh("bridge", "-n", f"{prefix}-dp", "-j", "fdb", "show", "dev", f"vxlan-{vni}")
    return {e["dst"] for e in json.loads(out or "[]") if e.get("mac") == "00:00:00:00:00:00" and e.get("dst")}


def test_a_tenant_network_spans_two_hosts_over_vxlan(hosts: Hosts) -> None:
    c = hosts.cloud
    admin, demo = Api(c), Api(c, "demo")
    # both hosts' agents report, with the addresses that carry their tunnels
    def bridges() -> dict[str, dict]:
        rows = admin.net("GET", "/agents?agent_type=Linux bridge agent")["agents"]
        return {a["host"]: a for a in rows if a["alive"]}
    seen = wait_for("both hosts' Linux bridge agents", lambda: (lambda b: b if {"hostA", "hostB"} <= set(b) else None
                                                                    )(bridges()), 60)
    assert seen["hostA"]["configurations"]["tunneling_ip"] == hosts.tunnel_a
    assert seen["hostB"]["configurations"]["tunneling_ip"] == hosts.tunnel_b
    assert seen["hostB"]["configurations"]["tunnel_types"] == ["vxlan"]
    wait_for("both compute hosts", lambda: {"hostA", "hostB"} <= {
        h["hypervisor_hostname"] for h in admin.compute("GET", "/os-hypervisors")["hypervisors"]}, 60)

    ext = admin.net("POST", "/networks", {"network": {"name": "ext", "router:external": True}})["network"]
    admin.net("POST", "/subnets", {"subnet": {"network_id": ext["id"], "cidr": EXT_CIDR, "ip_version": 4,
                                              "gateway_ip": EXT_GW, "enable_dhcp": False}})
    net = admin.net("POST", "/networks", {"network": {"name": "span"}})["network"]
    assert net["provider:network_type"] == "vxlan" and net["mtu"] == 1450
    vni = net["provider:segmentation_id"]
    sub = admin.net("POST", "/subnets", {"subnet": {"network_id": net["id"], "cidr": CIDR,
                                                    "ip_version": 4}})["subnet"]
    other = demo.net("POST", "/networks", {"network": {"name": "same-cidr"}})["network"]
    other_sub = demo.net("POST", "/subnets", {"subnet": {"network_id": other["id"], "cidr": CIDR,
                                                         "ip_version": 4}})["subnet"]

    def port(api: Api, n: dict, s: dict, ip: str) -> dict:
        return api.net("POST", "/ports", {"port": {"network_id": n["id"], "fixed_ips": [
            {"subnet_id": s["id"], "ip_address": ip}]}})["port"]

    pa, pb = port(admin, net, sub, "10.50.0.10"), port(admin, net, sub, "10.50.0.11")
    pc = port(demo, other, other_sub, "10.50.0.12")
    mtu_line = "echo \"MTU $(cat /sys/class/net/eth0/mtu)\" > /dev/console\n"

    def boot_on(api: Api, name: str, p: dict, user_data: str, host: str | None) -> str:
        image = next(i["id"] for i in api("GET", f"{c.image_url}/v2/images?name=cumulo-tiny")["images"])
        body = {"name": name, "flavorRef": "10", "imageRef": image, "networks": [{"port": p["id"]}],
                "user_data": base64.b64encode(user_data.encode()).decode()}
        if host:
            body["availability_zone"] = f"nova:{host}"
        return str(api.compute("POST", "/servers", {"server": body})["server"]["id"])

    started = time.monotonic()
    a = boot_on(admin, "mh-a", pa, probe_script(("REACH-B", "http://10.50.0.11/")).replace(
        "#!/bin/sh\n", "#!/bin/sh\n" + mtu_line), "hostA")
    b = boot_on(admin, "mh-b", pb, probe_script(("REACH-A", "http://10.50.0.10/")).replace(
        "#!/bin/sh\n", "#!/bin/sh\n" + mtu_line), "hostB")
    cc = boot(demo, "mh-c", pc["id"], probe_script(("OTHER-A", "http://10.50.0.10/"),
                                                   ("OTHER-B", "http://10.50.0.11/")))
    assert admin.compute("GET", f"/servers/{a}")["server"]["OS-EXT-SRV-ATTR:host"] in ("hostA", None)
    for server, ip in ((a, "10.50.0.10"), (b, "10.50.0.11")):
        wait_for(f"{server} to get {ip} by DHCP", lambda s=server, ip=ip: f"cumulo-guest ready ip={ip} "
                 in admin.console(s), 240)
        if server == b:
            leased = time.monotonic() - started
            print(f"\nguest on hostB has its DHCP lease {leased:.1f} s after its boot request")
    assert {admin.compute("GET", f"/servers/{s}")["server"]["OS-EXT-SRV-ATTR:host"] for s in (a, b)} == {
        "hostA", "hostB"}
    for s in (a, b):
        assert "MTU 1450" in admin.console(s)  # DHCP option 26
    wait_for("mh-a to reach mh-b across hosts", lambda: "REACH-B ok mh-b" in admin.console(a), 60)
    wait_for("mh-b to reach mh-a across hosts", lambda: "REACH-A ok mh-a" in admin.console(b), 60)

    # the tunnels: one VXLAN device per host for the network, flooding to the other host
    for prefix, local, peer in ((hosts.prefix_a, hosts.tunnel_a, hosts.tunnel_b),
                                (hosts.prefix_b, hosts.tunnel_b, hosts.tunnel_a)):
        dev = vxlan(prefix, vni)
        assert dev is not None, f"no vxlan-{vni} in {prefix}-dp"
        data = dev["linkinfo"]["info_data"]
        assert (data["id"], data["local"], data["port"], dev["mtu"]) == (vni, local, 4789, 1450)
        assert dev["master"] == f"brq{net['id'][:11]}"
        assert flood_to(prefix, vni) == {peer}
    # DHCP of the network runs on one host only, the one the API names
    dhcp = [p for p in (hosts.prefix_a, hosts.prefix_b) if f"{p}-dhcp-{net['id']}" in namespaces(p)]
    assert len(dhcp) == 1, dhcp
    agents = admin.net("GET", f"/networks/{net['id']}/dhcp-agents")["agents"]
    assert [x["host"] for x in agents] == [{hosts.prefix_a: "hostA", hosts.prefix_b: "hostB"}[dhcp[0]]]

    # the other tenant's guest, same CIDR, another VNI: it never reaches them
    wait_for("mh-c to get its address", lambda: "cumulo-guest ready ip=10.50.0.12 " in demo.console(cc), 240)
    time.sleep(5)
    console = demo.console(cc)
    assert "OTHER-A fail" in console and "OTHER-B fail" in console
    assert "OTHER-A ok" not in console and "OTHER-B ok" not in console

    # a router on one host gives the guest on the other its floating IP, reached from the router's -ext
    router = admin.net("POST", "/routers", {"router": {"name": "mh-r", "external_gateway_info": {
        "network_id": ext["id"]}}})["router"]
    admin.net("PUT", f"/routers/{router['id']}/add_router_interface", {"subnet_id": sub["id"]})
    l3 = wait_for("the router scheduled", lambda: admin.net("GET", f"/routers/{router['id']}/l3-agents")["agents"],
                  30)
    assert len(l3) == 1
    router_host = l3[0]["host"]
    router_prefix = hosts.prefix_a if router_host == "hostA" else hosts.prefix_b
    guest_far = b if router_host == "hostA" else a
    port_far = pb if guest_far == b else pa
    ext_ns = f"{router_prefix}-ext"
    wait_for("the router's namespace on its host only", lambda: f"{router_prefix}-router-{router['id']}" in
             namespaces(router_prefix) and not [p for p in (hosts.prefix_a, hosts.prefix_b) if p != router_prefix
                                                and f"{p}-router-{router['id']}" in namespaces(p)], 45)
    groups = admin.net("GET", f"/security-groups?name=default&project_id={admin.project}")["security_groups"]
    admin.net("POST", "/security-group-rules", {"security_group_rule": {
        "security_group_id": groups[0]["id"], "direction": "ingress", "protocol": "tcp",
        "port_range_min": 80, "port_range_max": 80, "remote_ip_prefix": "0.0.0.0/0"}})
    fip = admin.net("POST", "/floatingips", {"floatingip": {"floating_network_id": ext["id"],
                                                            "port_id": port_far["id"]}})["floatingip"]
    wait_for("the external gateway in the router host's -ext", lambda: f"inet {EXT_GW}/" in netns(
        "exec", ext_ns, "ip", "-4", "addr").stdout, 45)
    name = "mh-b" if guest_far == b else "mh-a"
    assert wait_for("HTTP to the far guest through its floating IP", lambda: outside_get(
        ext_ns, f"http://{fip['floating_ip_address']}/"), 60) == name
    for s in (a, b):
        admin.compute("DELETE", f"/servers/{s}")
    demo.compute("DELETE", f"/servers/{cc}")
    admin.net("DELETE", f"/floatingips/{fip['id']}")
    admin.net("PUT", f"/routers/{router['id']}/remove_router_interface", {"subnet_id": sub["id"]})
    admin.net("DELETE", f"/routers/{router['id']}")
    wait_for("the servers to go", lambda: not admin.compute("GET", "/servers?all_tenants=1")["servers"], 90)
    for p in (pa, pb):
        admin.net("DELETE", f"/ports/{p['id']}", ok=(204, 404))
    demo.net("DELETE", f"/ports/{pc['id']}", ok=(204, 404))
    admin.net("DELETE", f"/networks/{net['id']}")
    demo.net("DELETE", f"/networks/{other['id']}")
    admin.net("DELETE", f"/networks/{ext['id']}")
    # host A's agent removes all it made, but keeps -dp, which holds the management interface
    wait_for("host A's namespaces to go but -dp", lambda: namespaces(hosts.prefix_a) == [f"{hosts.prefix_a}-dp"], 60)
    assert "mgmt0" in sh("ip", "-n", f"{hosts.prefix_a}-dp", "-o", "link", "show")


def test_dhcp_and_a_router_of_a_dead_network_host_are_rescheduled(hosts: Hosts) -> None:
    c = hosts.cloud
    admin = Api(c)
    agents = {(a["host"], a["agent_type"]): a for a in admin.net("GET", "/agents")["agents"]}
    ext = admin.net("POST", "/networks", {"network": {"name": "ext2", "router:external": True}})["network"]
    admin.net("POST", "/subnets", {"subnet": {"network_id": ext["id"], "cidr": EXT_CIDR, "ip_version": 4,
                                              "gateway_ip": EXT_GW, "enable_dhcp": False}})
    net = admin.net("POST", "/networks", {"network": {"name": "moves"}})["network"]
    # an admin schedules its DHCP and its router on host B (before the scheduler would)
    dhcp_b, l3_b = agents[("hostB", "DHCP agent")], agents[("hostB", "L3 agent")]
    admin.net("POST", f"/agents/{dhcp_b['id']}/dhcp-networks", {"network_id": net["id"]}, ok=201)
    sub = admin.net("POST", "/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.51.0.0/24",
                                                    "ip_version": 4}})["subnet"]
    router = admin.net("POST", "/routers", {"router": {"name": "moves-r"}})["router"]
    # the scheduler may have bound it meanwhile (a round ran between the two calls): on B already
    # (409 RouterHostedByL3Agent), or on A: then off A and onto B
    admin.net("POST", f"/agents/{l3_b['id']}/l3-routers", {"router_id": router["id"]}, ok=(201, 409))
    on = {a["host"] for a in admin.net("GET", f"/routers/{router['id']}/l3-agents")["agents"]}
    if "hostA" in on:
        admin.net("DELETE", f"/agents/{agents[('hostA', 'L3 agent')]['id']}/l3-routers/{router['id']}")
        admin.net("POST", f"/agents/{l3_b['id']}/l3-routers", {"router_id": router["id"]}, ok=(201, 409))
    on = {a["host"] for a in admin.net("GET", f"/routers/{router['id']}/l3-agents")["agents"]}
    assert "hostB" in on, on
    admin.net("PUT", f"/routers/{router['id']}", {"router": {"external_gateway_info": {"network_id": ext["id"]}}})
    admin.net("PUT", f"/routers/{router['id']}/add_router_interface", {"subnet_id": sub["id"]})
    # (what host A's last heartbeat reported it served shows until its next round)
    wait_for("the network's DHCP on host B alone", lambda: [a["host"] for a in admin.net(
        "GET", f"/networks/{net['id']}/dhcp-agents")["agents"]] == ["hostB"], 30)
    wait_for("the router on host B alone", lambda: [a["host"] for a in admin.net(
        "GET", f"/routers/{router['id']}/l3-agents")["agents"]] == ["hostB"], 30)
    p = admin.net("POST", "/ports", {"port": {"network_id": net["id"], "fixed_ips": [
        {"subnet_id": sub["id"], "ip_address": "10.51.0.10"}]}})["port"]
    image = next(i["id"] for i in admin("GET", f"{c.image_url}/v2/images?name=cumulo-tiny")["images"])
    server = admin.compute("POST", "/servers", {"server": {
        "name": "mh-moves", "flavorRef": "10", "imageRef": image, "networks": [{"port": p["id"]}],
        "availability_zone": "nova:hostA"}})["server"]["id"]
    wait_for("the guest on host A to get its address from host B's DHCP",
             lambda: "cumulo-guest ready ip=10.51.0.10 " in admin.console(server), 240)
    fip = admin.net("POST", "/floatingips", {"floatingip": {"floating_network_id": ext["id"],
                                                            "port_id": p["id"]}})["floatingip"]
    address = fip["floating_ip_address"]
    ext_b, ext_a = f"{hosts.prefix_b}-ext", f"{hosts.prefix_a}-ext"
    # the security group of the first test admits HTTP from anywhere
    assert wait_for("HTTP through the router on host B", lambda: outside_get(ext_b, f"http://{address}/"),
                    60) == "mh-moves"
    assert f"{hosts.prefix_a}-router-{router['id']}" not in namespaces(hosts.prefix_a)

    hosts.procs["network"].kill()
    hosts.procs["network"].wait()
    killed = time.monotonic()
    wait_for("host B's agents not alive", lambda: not any(
        a["alive"] for a in admin.net("GET", "/agents?host=hostB")["agents"]), DOWN_TIME + 30)
    wait_for("the network's DHCP rescheduled on host A", lambda: [a["host"] for a in admin.net(
        "GET", f"/networks/{net['id']}/dhcp-agents")["agents"]] == ["hostA"], 30)
    wait_for("the router rescheduled on host A", lambda: [a["host"] for a in admin.net(
        "GET", f"/routers/{router['id']}/l3-agents")["agents"]] == ["hostA"], 30)
    wait_for("host A's router and DHCP namespaces", lambda: {f"{hosts.prefix_a}-router-{router['id']}",
             f"{hosts.prefix_a}-dhcp-{net['id']}"} <= set(namespaces(hosts.prefix_a)), 45)
    assert wait_for("HTTP through the router, now on host A", lambda: outside_get(ext_a, f"http://{address}/"),
                    60) == "mh-moves"
    print(f"\nfloating IP answering through host A {time.monotonic() - killed:.1f} s after host B's network "
          f"agent was killed (agent_down_time {DOWN_TIME} s)")

    hosts.start_b("network")  # back: it no longer hosts them, and removes what it had
    wait_for("host B's stale namespaces to go", lambda: not {
        f"{hosts.prefix_b}-router-{router['id']}", f"{hosts.prefix_b}-dhcp-{net['id']}"} & set(
        namespaces(hosts.prefix_b)), 60)
    assert [a["host"] for a in admin.net("GET", f"/routers/{router['id']}/l3-agents")["agents"]] == ["hostA"]
    assert outside_get(ext_a, f"http://{address}/") == "mh-moves"

    admin.compute("DELETE", f"/servers/{server}")
    admin.net("DELETE", f"/floatingips/{fip['id']}")
    admin.net("PUT", f"/routers/{router['id']}/remove_router_interface", {"subnet_id": sub["id"]})
    admin.net("DELETE", f"/routers/{router['id']}")
    wait_for("the server to go", lambda: not admin.compute("GET", "/servers?all_tenants=1")["servers"], 90)
    admin.net("DELETE", f"/ports/{p['id']}", ok=(204, 404))
    admin.net("DELETE", f"/networks/{net['id']}")
    admin.net("DELETE", f"/networks/{ext['id']}")
