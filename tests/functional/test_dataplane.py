"""The network dataplane with real guests (QEMU under TCG, the cumulo-tiny image): addresses by
DHCP, servers reaching each other on a network and across a router, the default security group,
a floating IP reached from the outside namespace and used as the source of the guest's own
traffic, the metadata service through the proxy, the agent rebuilding what was removed behind
its back after a restart, ``cumulo network trace``, and nothing left after everything is deleted.

Guests report what they see on their serial console: each runs a user-data probe loop (from the
metadata service, not a config drive) that prints a line whenever a target becomes reachable or
unreachable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functional.conftest import BIN, Cloud, start_cloud, stop_cloud
from tests.functional.test_qemu import qemu_pids

EXT_CIDR, EXT_GW = "172.31.9.0/24", "172.31.9.1"
OUTSIDE_SERVER = """
import http.server, sys
log = open(sys.argv[1], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        log.write(self.client_address[0] + " " + self.path + "\\n")
        self.send_response(200); self.end_headers(); self.wfile.write(b"outside\\n")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer((sys.argv[2], 8080), H).serve_forever()
"""


def probe_script(*targets: tuple[str, str]) -> str:
    """User-data: the instance id from the metadata service, then for ~3 minutes each target URL
    every second, printing ``LABEL ok <body>`` / ``LABEL fail`` when its state changes."""
    lines = ["#!/bin/sh", "(", "exec > /dev/console 2>&1",
             "id=$(timeout 5 wget -q -O - http://169.254.169.254/openstack/latest/meta_data.json | "
             "sed -n 's/.*\"uuid\": *\"\\([^\"]*\\)\".*/\\1/p')",
             'echo "META $id"', "i=0", "while [ $i -lt 180 ]; do"]
    for n, (label, url) in enumerate(targets):
        lines += [f"  if out=$(timeout 2 wget -q -O - {url} 2>/dev/null); then now=ok; else now=fail; fi",
                  f'  if [ "$now" != "$last{n}" ]; then echo "{label} $now $out"; last{n}=$now; fi']
    lines += ["  i=$((i+1)); sleep 1", "done", ") &", ""]
    return "\n".join(lines)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 90, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def netns(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", *args], capture_output=True, text=True, timeout=timeout)


def namespaces(prefix: str) -> list[str]:
    return sorted(line.split()[0] for line in netns("list").stdout.splitlines()
                  if line.startswith(f"{prefix}-"))


def outside_get(ns: str, url: str) -> str | None:
    """An HTTP GET from inside namespace ``ns`` (the outside world), None when it fails."""
    code = ("import sys, urllib.request\ntry: print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())\n"
            "except Exception: sys.exit(1)")
    r = netns("exec", ns, sys.executable, "-c", code, url)
    return r.stdout.strip() if r.returncode == 0 else None


class Api:
    def __init__(self, cloud: Cloud, user: str = "admin") -> None:
        self.cloud = cloud
        pw = cloud.admin_password if user == "admin" else cloud.demo_password
        self.token, body = cloud.token(user, pw, "admin" if user == "admin" else "demo")
        self.project = body["project"]["id"]

    def __call__(self, method: str, url: str, body: Any = None, ok: int | tuple[int, ...] = (200, 201, 202, 204)
                 ) -> Any:
        r = httpx.request(method, url, json=body, timeout=30, headers={
            "X-Auth-Token": self.token, "OpenStack-API-Version": "compute 2.47"})
        assert r.status_code in ((ok,) if isinstance(ok, int) else ok), f"{method} {url}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def net(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return self(method, f"{self.cloud.network_url}{path}", body, **kw)

    def compute(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return self(method, f"{self.cloud.compute_url}{path}", body, **kw)

    def console(self, server_id: str) -> str:
        r = httpx.post(f"{self.cloud.compute_url}/servers/{server_id}/action", headers={"X-Auth-Token": self.token},
                       json={"os-getConsoleOutput": {}}, timeout=30)
        return str(r.json().get("output", "")) if r.status_code == 200 else ""


@pytest.fixture(scope="module")
def dcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    tmp = tmp_path_factory.mktemp("dp")  # short: QEMU's monitor socket paths are limited to 107 bytes
    env = {"CUMULO_COMPUTE__FAKE_NODES": "0", "CUMULO_COMPUTE__LOCAL_NODE": "true", "CUMULO_COMPUTE__HOST": "dnode",
           "CUMULO_COMPUTE__SHUTDOWN_TIMEOUT": "10", "CUMULO_COMPUTE__BUILD_TIMEOUT": "120",
           "CUMULO_COMPUTE__LOCAL_NODES": "2", "CUMULO_NETWORK__DATAPLANE": "true",
           "CUMULO_NETWORK__RECONCILE_INTERVAL": "5"}
    c = start_cloud(tmp, "sqlite", env)
    yield c
    stop_cloud(c)
    for pid in qemu_pids(tmp):
        os.kill(pid, signal.SIGKILL)
    # whatever a failed test left: the namespaces and dnsmasq of this cloud's prefix
    subprocess.run([str(BIN / "cumulo"), "network", "cleanup", "--yes"], env=c.env, capture_output=True, timeout=60)


def boot(api: Api, name: str, port: str, user_data: str) -> str:
    image = next(i["id"] for i in api("GET", f"{api.cloud.image_url}/v2/images?name=cumulo-tiny")["images"])
    server = api.compute("POST", "/servers", {"server": {
        "name": name, "flavorRef": "10", "imageRef": image, "networks": [{"port": port}],
        "user_data": base64.b64encode(user_data.encode()).decode()}})["server"]
    return str(server["id"])


def restart(cloud: Cloud) -> None:
    keep = {k: v for k, v in cloud.env.items() if k.startswith(("CUMULO_COMPUTE__", "CUMULO_NETWORK__"))
            and not k.endswith("PORT")}
    again = start_cloud(cloud.state_dir, "sqlite", keep)
    for key in ("proc", "env", "url", "compute_url", "image_url", "network_url", "metadata_url"):
        setattr(cloud, key, getattr(again, key))


def test_servers_on_networks_routers_security_groups_floating_ips_and_metadata(dcloud: Cloud) -> None:
    admin, demo = Api(dcloud), Api(dcloud, "demo")
    prefix = dcloud.env["CUMULO_NETWORK__NAMESPACE_PREFIX"]
    ext_ns = f"{prefix}-ext"
    # the outside: an external network whose gateway address lives in <prefix>-ext
    ext = admin.net("POST", "/networks", {"network": {"name": "ext", "router:external": True}})["network"]
    admin.net("POST", "/subnets", {"subnet": {"network_id": ext["id"], "cidr": EXT_CIDR, "ip_version": 4,
                                              "gateway_ip": EXT_GW, "enable_dhcp": False}})
    net1 = demo.net("POST", "/networks", {"network": {"name": "net1"}})["network"]
    sub1 = demo.net("POST", "/subnets", {"subnet": {"network_id": net1["id"], "cidr": "10.10.1.0/24",
                                                    "ip_version": 4}})["subnet"]
    net2 = demo.net("POST", "/networks", {"network": {"name": "net2"}})["network"]
    sub2 = demo.net("POST", "/subnets", {"subnet": {"network_id": net2["id"], "cidr": "10.10.2.0/24",
                                                    "ip_version": 4}})["subnet"]

    def port(net: dict, sub: dict, ip: str) -> dict:
        return demo.net("POST", "/ports", {"port": {"network_id": net["id"], "fixed_ips": [
            {"subnet_id": sub["id"], "ip_address": ip}]}})["port"]

    pa, pb, pc = port(net1, sub1, "10.10.1.10"), port(net1, sub1, "10.10.1.11"), port(net2, sub2, "10.10.2.10")
    # the outside server binds the gateway address: wait for the address, not just the namespace
    wait_for("the outside namespace with its gateway address", lambda: ext_ns in namespaces(prefix) and (
        f"inet {EXT_GW}/" in netns("exec", ext_ns, "ip", "-4", "addr").stdout), 30)
    log = dcloud.state_dir / "outside.log"
    outside = subprocess.Popen(["ip", "netns", "exec", ext_ns, sys.executable, "-c", OUTSIDE_SERVER, str(log), EXT_GW],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    assert outside.poll() is None, "the outside HTTP server did not start"
    try:
        a = boot(demo, "vm-a", pa["id"], probe_script(("REACH-B", "http://10.10.1.11/"),
                                                      ("OUT", f"http://{EXT_GW}:8080/from-a")))
        b = boot(demo, "vm-b", pb["id"], probe_script(("REACH-A", "http://10.10.1.10/")))
        c = boot(demo, "vm-c", pc["id"], probe_script(("ROUTED", "http://10.10.1.10/")))
        for server, ip in ((a, "10.10.1.10"), (b, "10.10.1.11"), (c, "10.10.2.10")):
            wait_for(f"{server} to get {ip} by DHCP",
                     lambda s=server, ip=ip: f"cumulo-guest ready ip={ip} " in demo.console(s), 120)
            # the instance id came from the metadata service through the proxy (no config drive here);
            # the user-data prints it from the background, so it may follow the ready line
            wait_for(f"{server} to print its instance id from the metadata service",
                     lambda s=server: f"META {s}" in demo.console(s), 30)
        # network_data.json describes the guest's NIC (what cloud-init reads)
        secret = (dcloud.state_dir / "metadata-secret").read_text().strip()
        links = httpx.get(f"{dcloud.metadata_url}/openstack/latest/network_data.json", headers={
            "X-Instance-ID": a, "X-Instance-ID-Signature": hmac.new(secret.encode(), a.encode(),
                                                                     hashlib.sha256).hexdigest()}).json()["links"]
        assert [link["ethernet_mac_address"] for link in links] == [pa["mac_address"]]
        # one network, one default group: they reach each other
        wait_for("vm-a to reach vm-b", lambda: "REACH-B ok vm-b" in demo.console(a), 30)
        wait_for("vm-b to reach vm-a", lambda: "REACH-A ok vm-a" in demo.console(b), 30)
        # another network: only through a router
        time.sleep(3)
        assert "ROUTED ok" not in demo.console(c)
        router = demo.net("POST", "/routers", {"router": {"name": "r1", "external_gateway_info": {
            "network_id": ext["id"]}}})["router"]
        gateway_ip = router["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
        for sub in (sub1, sub2):
            demo.net("PUT", f"/routers/{router['id']}/add_router_interface", {"subnet_id": sub["id"]})
        wait_for("vm-c to reach vm-a through the router", lambda: "ROUTED ok vm-a" in demo.console(c), 45)
        # vm-a's own traffic leaves through the router's SNAT, then with its floating IP
        wait_for("vm-a's traffic outside (SNAT)", lambda: log.exists() and f"{gateway_ip} /from-a" in log.read_text(),
                 45)
        fip = demo.net("POST", "/floatingips", {"floatingip": {"floating_network_id": ext["id"],
                                                               "port_id": pa["id"]}})["floatingip"]
        address = fip["floating_ip_address"]
        wait_for("vm-a's traffic to leave with its floating IP",
                 lambda: f"{address} /from-a" in log.read_text(), 45)
        # the default group admits members only: the outside gets nothing, until a rule says so
        assert outside_get(ext_ns, f"http://{address}/") is None
        groups = demo.net("GET", "/security-groups?name=default")["security_groups"]
        demo.net("POST", "/security-group-rules", {"security_group_rule": {
            "security_group_id": groups[0]["id"], "direction": "ingress", "protocol": "tcp",
            "port_range_min": 80, "port_range_max": 80, "remote_ip_prefix": "0.0.0.0/0"}})
        assert wait_for("HTTP through the floating IP", lambda: outside_get(ext_ns, f"http://{address}/"), 30) == "vm-a"

        # a live migration to the machine's other node keeps the guest on its network: the new
        # QEMU gets the port's second tap on the same bridge, and the port follows to the new host
        hosts = {h["hypervisor_hostname"] for h in admin.compute("GET", "/os-hypervisors")["hypervisors"]}
        source = admin.compute("GET", f"/servers/{a}")["server"]["OS-EXT-SRV-ATTR:host"]
        admin.compute("POST", f"/servers/{a}/action", {"os-migrateLive": {"host": None, "block_migration": "auto"}})
        target = (hosts - {source}).pop()
        wait_for("vm-a on the other node", lambda: (lambda s: s["status"] == "ACTIVE" and s[
            "OS-EXT-SRV-ATTR:host"] == target)(admin.compute("GET", f"/servers/{a}")["server"]), 90)
        assert admin.net("GET", f"/ports/{pa['id']}")["port"]["binding:host_id"] == target
        assert wait_for("HTTP through the floating IP after the move",
                        lambda: outside_get(ext_ns, f"http://{address}/"), 30) == "vm-a"

        # the operator's view of the path
        trace = subprocess.run([str(BIN / "cumulo"), "network", "trace", "vm-a"], env=dcloud.env, capture_output=True,
                               text=True, timeout=60)
        assert trace.returncode == 0, trace.stderr
        out = trace.stdout
        assert f"tap{pa['id'][:10]}" in out and "lease     10.10.1.10" in out, out
        assert f"floating  {address} -> 10.10.1.10" in out and "DNAT --to-destination 10.10.1.10" in out, out
        dnat = next(line for line in out.splitlines() if "DNAT --to-destination 10.10.1.10" in line
                    and "PREROUTING" in line)
        assert int(dnat.split()[0]) > 0, out  # the HTTP requests above went through it

        # the controller dies; meanwhile the DHCP namespace of net1 is removed by hand and a stray
        # router namespace appears: the restarted agent puts back the one and removes the other
        dcloud.proc.kill()
        dcloud.proc.wait()
        dhcp1 = f"{prefix}-dhcp-{net1['id']}"
        stray = f"{prefix}-router-{uuid.uuid4()}"
        assert netns("delete", dhcp1).returncode == 0
        assert netns("add", stray).returncode == 0
        restart(dcloud)
        wait_for("the DHCP namespace back and the stray gone",
                 lambda: dhcp1 in namespaces(prefix) and stray not in namespaces(prefix), 30)
        pidfile = dcloud.state_dir / "network" / "dhcp" / net1["id"] / "pid"
        wait_for("dnsmasq inside the new namespace", lambda: pidfile.exists() and subprocess.run(
            ["ip", "netns", "pids", dhcp1], capture_output=True, text=True).stdout.split().count(
            pidfile.read_text().strip()) == 1, 30)
        assert outside_get(ext_ns, f"http://{address}/") == "vm-a"  # the guests never noticed
        demo = Api(dcloud, "demo")

        # everything deleted: no namespace, bridge, rule or dnsmasq is left
        for server in (a, b, c):
            demo.compute("DELETE", f"/servers/{server}")
        demo.net("DELETE", f"/floatingips/{fip['id']}")
        for sub in (sub1, sub2):
            demo.net("PUT", f"/routers/{router['id']}/remove_router_interface", {"subnet_id": sub["id"]})
        demo.net("DELETE", f"/routers/{router['id']}")
        wait_for("the servers' ports to go", lambda: not demo.compute("GET", "/servers")["servers"], 60)
        for p in (pa, pb, pc):
            demo.net("DELETE", f"/ports/{p['id']}", ok=(204, 404))
        for n in (net1, net2):
            demo.net("DELETE", f"/networks/{n['id']}")
        admin.net("DELETE", f"/networks/{ext['id']}")
        wait_for("every namespace of the dataplane to go", lambda: not namespaces(prefix), 45)
    finally:
        outside.kill()
        outside.wait()
    state = str(dcloud.state_dir)
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline_has(p, "dnsmasq", state)]
    assert not qemu_pids(dcloud.state_dir)


def _cmdline_has(proc: Path, binary: str, text: str) -> bool:
    try:
        args = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(args) and args[0].endswith(binary.encode()) and any(text.encode() in a for a in args)


def dhcp_file(cloud: Cloud, network_id: str, name: str) -> str:
    path = cloud.state_dir / "network" / "dhcp" / network_id / name
    return path.read_text() if path.exists() else ""


def test_an_address_reused_after_a_delete_gets_dhcp(dcloud: Cloud) -> None:
    """A server is deleted with its port and another port gets the same fixed IP (a new MAC): the
    new guest gets that address by DHCP.  The old guest's lease would keep it for 24 h (dnsmasq:
    "not using configured address ... because it is leased to" the old MAC) unless the agent drops
    the leases no port owns."""
    demo = Api(dcloud, "demo")
    prefix = dcloud.env["CUMULO_NETWORK__NAMESPACE_PREFIX"]
    net = demo.net("POST", "/networks", {"network": {"name": "reuse"}})["network"]
    sub = demo.net("POST", "/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.10.5.0/24",
                                                   "ip_version": 4}})["subnet"]
    ip = "10.10.5.20"

    def port() -> dict:
        return demo.net("POST", "/ports", {"port": {"network_id": net["id"], "fixed_ips": [
            {"subnet_id": sub["id"], "ip_address": ip}]}})["port"]

    def boot_when_dhcp_knows(p: dict, name: str) -> str:
        # the agent has written the port into dnsmasq's hosts before the guest asks (no race)
        wait_for(f"dnsmasq to know {p['mac_address']}", lambda: p["mac_address"] in dhcp_file(
            dcloud, net["id"], "hosts"), 60)
        return boot(demo, name, p["id"], "#!/bin/sh\necho user-data ran\n")

    first = port()
    old = boot_when_dhcp_knows(first, "reuse-1")
    wait_for("the first guest to get its address", lambda: f"cumulo-guest ready ip={ip} " in demo.console(old), 180)
    wait_for("its lease in dnsmasq's leases file", lambda: f"{first['mac_address']} {ip} " in dhcp_file(
        dcloud, net["id"], "leases"), 30)
    demo.compute("DELETE", f"/servers/{old}")
    wait_for("the first server to go", lambda: not [s for s in demo.compute("GET", "/servers")["servers"]
                                                    if s["id"] == old], 90)
    demo.net("DELETE", f"/ports/{first['id']}", ok=(204, 404))
    second = port()
    assert second["mac_address"] != first["mac_address"]
    new = boot_when_dhcp_knows(second, "reuse-2")
    wait_for("the second guest to get the reused address by DHCP",
             lambda: f"cumulo-guest ready ip={ip} " in demo.console(new), 180)
    leases = dhcp_file(dcloud, net["id"], "leases")
    assert first["mac_address"] not in leases and f"{second['mac_address']} {ip} " in leases, leases
    log = dhcp_file(dcloud, net["id"], "dnsmasq.log")
    assert "because it is leased to" not in log, log[-2000:]

    demo.compute("DELETE", f"/servers/{new}")
    wait_for("the second server to go", lambda: not [s for s in demo.compute("GET", "/servers")["servers"]
                                                     if s["id"] == new], 90)
    demo.net("DELETE", f"/ports/{second['id']}", ok=(204, 404))
    demo.net("DELETE", f"/networks/{net['id']}")
    wait_for("the network's DHCP namespace to go", lambda: f"{prefix}-dhcp-{net['id']}" not in namespaces(prefix), 45)
    assert not [pid for pid in qemu_pids(dcloud.state_dir) for server in (old, new)
                if _cmdline_has(Path(f"/proc/{pid}"), "", server)]


def raw_zones(prefix: str) -> dict[str, int]:
    """Bridge -> conntrack zone, as the kernel's raw table in <prefix>-dp says."""
    from cumulo.network.dataplane.zones import from_rules

    r = netns("exec", f"{prefix}-dp", "iptables-save", "-t", "raw")
    return from_rules(r.stdout) if r.returncode == 0 else {}


def conntrack(prefix: str, *args: str) -> str:
    r = netns("exec", f"{prefix}-dp", "conntrack", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_two_tenants_with_the_same_cidr_get_conntrack_zones_of_their_own(dcloud: Cloud) -> None:
    """Two projects, one CIDR: each network's bridge has its own conntrack zone in the installed
    rules (the old segment-id modulo could give two networks one zone), kept across a restart of
    the agent, and a deleted network's zone is freed with its tracked connections."""
    from cumulo.network.dataplane.names import bridge

    admin, demo = Api(dcloud), Api(dcloud, "demo")
    assert admin.project != demo.project
    prefix = dcloud.env["CUMULO_NETWORK__NAMESPACE_PREFIX"]
    zones_file = dcloud.state_dir / "network" / "conntrack-zones.json"

    def network(api: Api, name: str) -> dict:
        net = api.net("POST", "/networks", {"network": {"name": name}})["network"]
        api.net("POST", "/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.10.9.0/24", "ip_version": 4}})
        assert net["project_id"] == api.project
        return dict(net)

    # a first network takes a zone and goes, so the zones below are not simply the first ones
    early = network(demo, "early")
    ours, theirs = network(admin, "same-cidr-admin"), network(demo, "same-cidr-demo")
    br_early, br_ours, br_theirs = bridge(early["id"]), bridge(ours["id"]), bridge(theirs["id"])
    first = wait_for("the three networks' zones", lambda: (lambda z: z if {br_early, br_ours, br_theirs} <= set(z)
                     else None)(raw_zones(prefix)), 45)
    # a connection tracked in the early network's zone and one in ours: only the first is flushed
    # when its network goes (a zone given again must not carry the old network's connections)
    for zone in (first[br_early], first[br_ours]):
        conntrack(prefix, "-I", "-s", "10.10.9.5", "-d", "10.10.9.6", "-p", "tcp", "--sport", "40000", "--dport",
                  "80", "--state", "ESTABLISHED", "-u", "ASSURED", "-t", "600", "-w", str(zone))
    demo.net("DELETE", f"/networks/{early['id']}")
    found = wait_for("the early network's zone to go", lambda: (lambda z: z if br_early not in z else None)(
        raw_zones(prefix)), 45)
    assert found[br_ours] != found[br_theirs], found
    assert len(set(found.values())) == len(found), found  # no two bridges of the machine share one
    assert early["id"] not in zones_file.read_text()
    assert "10.10.9.5" not in conntrack(prefix, "-L", "-w", str(first[br_early]))
    assert "10.10.9.5" in conntrack(prefix, "-L", "-w", str(first[br_ours]))

    dcloud.proc.kill()  # the agent (embedded in the controller) restarts
    dcloud.proc.wait()
    restart(dcloud)
    admin, demo = Api(dcloud), Api(dcloud, "demo")
    late = network(demo, "late")
    after = wait_for("the late network's zone", lambda: (lambda z: z if bridge(late["id"]) in z else None)(
        raw_zones(prefix)), 45)
    assert {br: after[br] for br in (br_ours, br_theirs)} == {br: found[br] for br in (br_ours, br_theirs)}, after
    assert after[bridge(late["id"])] not in (found[br_ours], found[br_theirs])
    # restarted without its file: the agent takes the zones back from the rules in the kernel
    dcloud.proc.kill()
    dcloud.proc.wait()
    zones_file.unlink()
    restart(dcloud)
    admin, demo = Api(dcloud), Api(dcloud, "demo")
    later = network(admin, "later")
    again = wait_for("the later network's zone", lambda: (lambda z: z if bridge(later["id"]) in z else None)(
        raw_zones(prefix)), 45)
    assert {br: again[br] for br in after} == after and again[bridge(later["id"])] not in after.values(), again
    assert json.loads(zones_file.read_text())["zones"][ours["id"]] == found[br_ours]

    for net in (ours, later):
        admin.net("DELETE", f"/networks/{net['id']}")
    for net in (theirs, late):
        demo.net("DELETE", f"/networks/{net['id']}")
    gone = [bridge(n["id"]) for n in (ours, theirs, late, later)]
    wait_for("the networks' zones to go", lambda: not set(gone) & set(raw_zones(prefix)), 45)
    assert not any(n["id"] in (zones_file.read_text() if zones_file.exists() else "")
                   for n in (ours, theirs, late, later))  # freed


def test_a_failing_dnsmasq_is_logged_and_retried_while_the_rest_converges(dcloud: Cloud) -> None:
    """A real failure in one network's DHCP (dnsmasq cannot write its pid file) is logged with
    the command and retried, and meanwhile the agent still converges everything else: a network
    made while it fails gets its conntrack zone (the rules come after DHCP in a round)."""
    from cumulo.network.dataplane.names import bridge

    demo = Api(dcloud, "demo")
    prefix = dcloud.env["CUMULO_NETWORK__NAMESPACE_PREFIX"]
    net = demo.net("POST", "/networks", {"network": {"name": "fails"}})["network"]
    demo.net("POST", "/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.10.11.0/24", "ip_version": 4}})
    ns = f"{prefix}-dhcp-{net['id']}"
    pid_file = dcloud.state_dir / "network" / "dhcp" / net["id"] / "pid"

    def dnsmasq_pid() -> int | None:
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if str(pid) in netns("pids", ns).stdout.split() else None

    pid = wait_for("the network's dnsmasq", dnsmasq_pid, 45)
    # its pid file lost while it runs: the agent finds it by its command line and leaves it be
    # (it used to start a second one at every round, which failed on the taken DHCP port)
    pid_file.unlink()
    pid_file.mkdir()  # dnsmasq: "failed to open pidfile ...": it exits 3 at every start from now on
    log = dcloud.state_dir / "cumulo.log"
    probe = demo.net("POST", "/networks", {"network": {"name": "a-round-later"}})["network"]
    wait_for("a round after the pid file went", lambda: bridge(probe["id"]) in raw_zones(prefix), 45)
    assert Path(f"/proc/{pid}").exists()
    assert not [line for line in log.read_text().splitlines() if "command failed" in line and ns in line]
    os.kill(pid, signal.SIGTERM)  # this test's cloud started it
    wait_for("dnsmasq to stop", lambda: not Path(f"/proc/{pid}").exists(), 30)
    wait_for("the failure in the log, with its command", lambda: "failed to open pidfile" in log.read_text() and
             "command failed (3): ip netns exec " + ns in log.read_text(), 45)
    other = demo.net("POST", "/networks", {"network": {"name": "meanwhile"}})["network"]
    wait_for("the network made meanwhile to get its zone", lambda: bridge(other["id"]) in raw_zones(prefix), 45)
    assert dnsmasq_pid() is None
    pid_file.rmdir()
    wait_for("dnsmasq back on the next rounds", dnsmasq_pid, 45)
    for n in (net, other, probe):
        demo.net("DELETE", f"/networks/{n['id']}")
    wait_for("the networks' DHCP namespaces to go", lambda: not {f"{prefix}-dhcp-{n['id']}" for n in (net, other)}
             & set(namespaces(prefix)), 45)


def test_a_network_agent_of_its_own_over_rabbitmq_converges_after_a_kill(tmp_path_factory: pytest.TempPathFactory
                                                                         ) -> None:
    """`cumulo network agent` as its own process (the controller runs no dataplane): it builds a
    network's DHCP namespace, and when it is killed and the network deleted meanwhile, the
    restarted agent removes what nothing owns any more."""
    from tests.functional.conftest import RABBIT

    tmp = tmp_path_factory.mktemp("na")
    c = start_cloud(tmp, "sqlite", {
        "CUMULO_BUS__URL": RABBIT, "CUMULO_BUS__PREFIX": f"cumulo-test-{uuid.uuid4().hex[:8]}",
        "CUMULO_NETWORK__DATAPLANE": "false", "CUMULO_COMPUTE__FAKE_NODES": "0"})
    prefix = c.env["CUMULO_NETWORK__NAMESPACE_PREFIX"]

    def agent() -> subprocess.Popen[bytes]:
        return subprocess.Popen([str(BIN / "cumulo"), "network", "agent"], env={
            **c.env, "CUMULO_NETWORK__DATAPLANE": "true"}, stdout=subprocess.DEVNULL,
            stderr=open(tmp / "agent.log", "ab"), start_new_session=True)

    proc = agent()
    try:
        api = Api(c)
        net = api.net("POST", "/networks", {"network": {"name": "solo"}})["network"]
        api.net("POST", "/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.20.0.0/24", "ip_version": 4}})
        dhcp_ns = f"{prefix}-dhcp-{net['id']}"
        wait_for("the agent's DHCP namespace", lambda: dhcp_ns in namespaces(prefix), 30)
        wait_for("dnsmasq in it", lambda: netns("pids", dhcp_ns).stdout.split(), 30)
        proc.kill()
        proc.wait()
        api.net("DELETE", f"/networks/{net['id']}")
        assert dhcp_ns in namespaces(prefix)  # nobody converges while the agent is away
        proc = agent()
        wait_for("the restarted agent to remove what nothing owns", lambda: not namespaces(prefix), 30)
        assert not (tmp / "network" / "dhcp" / net["id"]).exists()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        stop_cloud(c)
        subprocess.run([str(BIN / "cumulo"), "network", "cleanup", "--yes"], env=c.env, capture_output=True,
                       timeout=60)
