"""QoS policies and trunks of the Network API (Neutron's ``qos`` and ``trunk`` extensions), with
each persona as Neutron's default policies say, through plain HTTP and the ``openstack`` CLI; and
QoS enforced by the real dataplane: a bandwidth limit as tc on the port's tap and as a policer,
measured between two namespaces, and DSCP marks seen on the wire.

The "servers" of the dataplane test are namespaces (``cumulo-test-*``) joined to the bridge by a
veth whose bridge end has the name the compute driver gives a server's tap: the agent finds it
by that name, as it finds a QEMU's tap.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.functional.conftest import BIN, Cloud, start_cloud, stop_cloud, unique
from tests.functional.network_helpers import NeutronApi as Api
from tests.functional.network_helpers import network_people

LIMIT_KBPS = 8000  # 1,000,000 bytes per second


@pytest.fixture(scope="module")
def qcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("qos"), "sqlite", {
        "CUMULO_SERVICES": "identity,image,compute,placement,network", "CUMULO_COMPUTE__FAKE_NODES": "1",
        "CUMULO_NETWORK__DATAPLANE": "true", "CUMULO_NETWORK__RECONCILE_INTERVAL": "3"})
    yield c
    stop_cloud(c)
    subprocess.run([str(BIN / "cumulo"), "network", "cleanup", "--yes"], env=c.env, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def people(qcloud: Cloud) -> dict[str, Any]:
    return network_people(qcloud, "qos")


def test_qos_policies_and_rules_follow_neutrons_defaults(people: dict[str, Any]) -> None:
    admin, manager, member, reader, other = (people[k] for k in ("admin", "manager", "member", "reader", "other"))
    body = {"policy": {"name": unique("q"), "description": "ten megabit"}}
    # Neutron: a project's manager (or an admin) makes and changes policies; member and reader may not
    for who in (member, reader, other):
        who("POST", "/qos/policies", body, status=403)
    pol = manager("POST", "/qos/policies", body, status=201)["policy"]
    assert pol["project_id"] == people["P"] and pol["shared"] is False and pol["is_default"] is False
    assert pol["rules"] == [] and pol["revision_number"] == 0
    assert reader("GET", f"/qos/policies/{pol['id']}")["policy"]["name"] == body["policy"]["name"]
    other("GET", f"/qos/policies/{pol['id']}", status=404)
    assert pol["id"] not in [x["id"] for x in other("GET", "/qos/policies")["policies"]]
    member("PUT", f"/qos/policies/{pol['id']}", {"policy": {"name": "x"}}, status=403)
    assert manager("PUT", f"/qos/policies/{pol['id']}", {"policy": {"description": "d2"}})["policy"][
        "revision_number"] == 1
    # rules: a bandwidth limit per direction, a DSCP mark, a minimum bandwidth
    base = f"/qos/policies/{pol['id']}"
    member("POST", f"{base}/bandwidth_limit_rules", {"bandwidth_limit_rule": {"max_kbps": 10}}, status=403)
    egress = manager("POST", f"{base}/bandwidth_limit_rules", {"bandwidth_limit_rule": {"max_kbps": 10000}},
                     status=201)["bandwidth_limit_rule"]
    assert egress == {"id": egress["id"], "qos_policy_id": pol["id"], "type": "bandwidth_limit",
                      "max_kbps": 10000, "max_burst_kbps": 0, "direction": "egress"}
    manager("POST", f"{base}/bandwidth_limit_rules", {"bandwidth_limit_rule": {"max_kbps": 5}}, status=409)
    manager("POST", f"{base}/bandwidth_limit_rules", {"bandwidth_limit_rule": {
        "max_kbps": 20000, "max_burst_kbps": 2000, "direction": "ingress"}}, status=201)
    for bad in ({"max_kbps": -1}, {"max_kbps": "fast"}, {"max_kbps": 1, "direction": "sideways"},
                {"max_burst_kbps": 5}, {"max_kbps": 1, "colour": "red"}):
        manager("POST", f"{base}/bandwidth_limit_rules", {"bandwidth_limit_rule": bad}, status=400)
    manager("POST", f"{base}/dscp_marking_rules", {"dscp_marking_rule": {"dscp_mark": 11}}, status=400)
    dscp = manager("POST", f"{base}/dscp_marking_rules", {"dscp_marking_rule": {"dscp_mark": 26}},
                   status=201)["dscp_marking_rule"]
    manager("POST", f"{base}/minimum_bandwidth_rules", {"minimum_bandwidth_rule": {"min_kbps": 1000}}, status=201)
    shown = reader("GET", base)["policy"]
    assert sorted(r["type"] for r in shown["rules"]) == ["bandwidth_limit", "bandwidth_limit", "dscp_marking",
                                                         "minimum_bandwidth"]
    assert shown["revision_number"] == 5
    assert [r["dscp_mark"] for r in reader("GET", f"{base}/dscp_marking_rules")["dscp_marking_rules"]] == [26]
    other("GET", f"{base}/dscp_marking_rules", status=404)
    reader("PUT", f"{base}/dscp_marking_rules/{dscp['id']}", {"dscp_marking_rule": {"dscp_mark": 10}}, status=403)
    assert manager("PUT", f"{base}/dscp_marking_rules/{dscp['id']}", {"dscp_marking_rule": {"dscp_mark": 10}})[
        "dscp_marking_rule"]["dscp_mark"] == 10
    manager("GET", f"{base}/bandwidth_limit_rules/{dscp['id']}", status=404)  # not a rule of that type
    member("DELETE", f"{base}/dscp_marking_rules/{dscp['id']}", status=403)
    manager("DELETE", f"{base}/dscp_marking_rules/{dscp['id']}", status=204)
    manager("GET", f"{base}/dscp_marking_rules/{dscp['id']}", status=404)
    # rule types: any reader lists them; details name each parameter
    types = {t["type"] for t in reader("GET", "/qos/rule-types")["rule_types"]}
    assert types == {"bandwidth_limit", "dscp_marking", "minimum_bandwidth"}
    detail = reader("GET", "/qos/rule-types/bandwidth_limit")["rule_type"]
    params = {p["parameter_name"]: p for p in detail["drivers"][0]["supported_parameters"]}
    assert params["direction"]["parameter_values"] == ["egress", "ingress"]
    assert params["max_kbps"]["parameter_values"] == {"start": 0, "end": 2**31 - 1}
    reader("GET", "/qos/rule-types/no_such_type", status=404)
    reader("GET", "/qos/rule-types?marker=%00", status=404)  # rule types have no ids to page by
    assert len(reader("GET", "/qos/rule-types?limit=1")["rule_types"]) == 1
    # a port of P's member takes the policy; another project cannot name it; in use: no delete
    net = member("POST", "/networks", {"network": {"name": unique("qn")}})["network"]
    port = member("POST", "/ports", {"port": {"network_id": net["id"], "qos_policy_id": pol["id"]}})["port"]
    assert port["qos_policy_id"] == pol["id"]
    assert member("GET", f"/ports/{port['id']}")["port"]["qos_policy_id"] == pol["id"]
    assert [p["id"] for p in member("GET", f"/ports?qos_policy_id={pol['id']}")["ports"]] == [port["id"]]
    onet = other("POST", "/networks", {"network": {"name": unique("qo")}})["network"]
    other("POST", "/ports", {"port": {"network_id": onet["id"], "qos_policy_id": pol["id"]}}, status=404)
    manager("DELETE", base, status=409)
    assert member("PUT", f"/ports/{port['id']}", {"port": {"qos_policy_id": None}})["port"]["qos_policy_id"] is None
    member("DELETE", base, status=403)
    manager("DELETE", base, status=204)
    reader("GET", base, status=404)


def test_shared_and_default_policies(people: dict[str, Any]) -> None:
    admin, manager, member, other = (people[k] for k in ("admin", "manager", "member", "other"))
    shared = admin("POST", "/qos/policies", {"policy": {"name": unique("s"), "shared": True}}, status=201)["policy"]
    assert other("GET", f"/qos/policies/{shared['id']}")["policy"]["shared"] is True
    other("PUT", f"/qos/policies/{shared['id']}", {"policy": {"name": "mine"}}, status=403)
    onet = other("POST", "/networks", {"network": {"name": unique("so"), "qos_policy_id": shared["id"]}})["network"]
    assert onet["qos_policy_id"] == shared["id"]
    # a project's default policy goes to its new networks that name none; one default per project
    default = manager("POST", "/qos/policies", {"policy": {"name": unique("d"), "is_default": True}},
                      status=201)["policy"]
    assert default["is_default"] is True
    manager("POST", "/qos/policies", {"policy": {"name": unique("d2"), "is_default": True}}, status=409)
    net = member("POST", "/networks", {"network": {"name": unique("dn")}})["network"]
    assert net["qos_policy_id"] == default["id"]
    assert member("GET", f"/networks/{net['id']}")["network"]["qos_policy_id"] == default["id"]
    explicit = member("POST", "/networks", {"network": {"name": unique("dn"), "qos_policy_id": None}})["network"]
    assert explicit["qos_policy_id"] is None
    assert member("PUT", f"/networks/{net['id']}", {"network": {"qos_policy_id": None}})["network"][
        "qos_policy_id"] is None
    member("DELETE", f"/networks/{net['id']}", status=204)
    member("DELETE", f"/networks/{explicit['id']}", status=204)
    manager("DELETE", f"/qos/policies/{default['id']}", status=204)
    other("DELETE", f"/networks/{onet['id']}", status=204)
    admin("DELETE", f"/qos/policies/{shared['id']}", status=204)


def test_qos_with_the_openstack_cli_and_sdk(qcloud: Cloud) -> None:
    name = unique("cli")
    pol = json.loads(qcloud.cli("network", "qos", "policy", "create", "--description", "by the CLI", name,
                                "-f", "json").stdout)
    assert pol["description"] == "by the CLI" and pol["rules"] == []
    qcloud.cli("network", "qos", "rule", "create", "--type", "bandwidth-limit", "--max-kbps", "3000",
               "--max-burst-kbits", "300", "--ingress", name)
    conn = qcloud.sdk()
    conn.network.create_qos_dscp_marking_rule(pol["id"], dscp_mark=46)
    rules = json.loads(qcloud.cli("network", "qos", "rule", "list", name, "-f", "json").stdout)
    assert {(r["Type"], r.get("Max Kbps") or None, r.get("DSCP mark") or None) for r in rules} == {
        ("bandwidth_limit", 3000, None), ("dscp_marking", None, 46)}, rules
    assert {"bandwidth_limit", "dscp_marking"} <= {t.type for t in conn.network.qos_rule_types()}
    assert conn.network.get_qos_policy(pol["id"]).description == "by the CLI"
    qcloud.cli("network", "qos", "policy", "delete", name)
    assert conn.network.find_qos_policy(name) is None


def test_trunks_follow_neutron(qcloud: Cloud, people: dict[str, Any]) -> None:
    admin, member, reader, other = (people[k] for k in ("admin", "member", "reader", "other"))
    aliases = {e["alias"] for e in reader("GET", "/extensions")["extensions"]}
    assert {"qos", "qos-bw-limit-direction", "qos-default", "qos-rule-type-details", "trunk",
            "trunk-details"} <= aliases
    net = member("POST", "/networks", {"network": {"name": unique("tn")}})["network"]
    sub_net = member("POST", "/networks", {"network": {"name": unique("ts")}})["network"]
    parent, s1, s2, s3 = (member("POST", "/ports", {"port": {"network_id": n["id"]}})["port"]
                          for n in (net, sub_net, sub_net, sub_net))
    reader("POST", "/trunks", {"trunk": {"port_id": parent["id"]}}, status=403)
    other("POST", "/trunks", {"trunk": {"port_id": parent["id"]}}, status=404)  # P's port is not Q's to see
    trunk = member("POST", "/trunks", {"trunk": {"name": "t1", "port_id": parent["id"], "sub_ports": [
        {"port_id": s1["id"], "segmentation_type": "vlan", "segmentation_id": 100}]}}, status=201)["trunk"]
    assert trunk["status"] == "DOWN" and trunk["admin_state_up"] is True and trunk["project_id"] == people["P"]
    assert trunk["sub_ports"] == [{"port_id": s1["id"], "segmentation_type": "vlan", "segmentation_id": 100}]
    details = member("GET", f"/ports/{parent['id']}")["port"]["trunk_details"]
    assert details == {"trunk_id": trunk["id"], "sub_ports": [{
        "port_id": s1["id"], "segmentation_type": "vlan", "segmentation_id": 100, "mac_address": s1["mac_address"]}]}
    sub = member("GET", f"/ports/{s1['id']}")["port"]
    assert sub["device_owner"] == "trunk:subport" and sub["device_id"] == trunk["id"] and "trunk_details" not in sub
    assert reader("GET", f"/trunks/{trunk['id']}")["trunk"]["name"] == "t1"
    other("GET", f"/trunks/{trunk['id']}", status=404)
    assert trunk["id"] not in [t["id"] for t in other("GET", "/trunks")["trunks"]]
    # a port parents one trunk, is a subport of one trunk; VLAN ids 1-4094, unique in the trunk
    member("POST", "/trunks", {"trunk": {"port_id": parent["id"]}}, status=409)
    member("POST", "/trunks", {"trunk": {"port_id": s1["id"]}}, status=409)
    add = f"/trunks/{trunk['id']}/add_subports"
    member("PUT", add, {"sub_ports": [{"port_id": s2["id"], "segmentation_type": "vlan",
                                       "segmentation_id": 100}]}, status=409)
    member("PUT", add, {"sub_ports": [{"port_id": parent["id"], "segmentation_type": "vlan",
                                       "segmentation_id": 7}]}, status=409)
    for bad in ({"port_id": s2["id"], "segmentation_type": "vlan", "segmentation_id": 4095},
                {"port_id": s2["id"], "segmentation_type": "vlan", "segmentation_id": 0},
                {"port_id": s2["id"], "segmentation_type": "gre", "segmentation_id": 5},
                {"port_id": s2["id"], "segmentation_type": "vlan"}):
        member("PUT", add, {"sub_ports": [bad]}, status=400)
    member("PUT", add, {"sub_ports": [{"port_id": str(uuid.uuid4()), "segmentation_type": "vlan",
                                       "segmentation_id": 9}]}, status=404)
    reader("PUT", add, {"sub_ports": []}, status=403)
    grown = member("PUT", add, {"sub_ports": [{"port_id": s2["id"], "segmentation_type": "vlan",
                                               "segmentation_id": 200}]})
    assert [s["segmentation_id"] for s in grown["sub_ports"]] == [100, 200] and grown["revision_number"] == 1
    assert [s["port_id"] for s in reader("GET", f"/trunks/{trunk['id']}/get_subports")["sub_ports"]] == [
        s1["id"], s2["id"]]
    # on a running server's port the trunk is DEGRADED: its subports are not wired (no VLAN devices here)
    compute = {"X-Auth-Token": member.headers["X-Auth-Token"]}
    image = httpx.get(f"{qcloud.image_url}/v2/images?name=cumulo-tiny", headers=compute).json()["images"][0]["id"]
    server = httpx.post(f"{qcloud.compute_url}/servers", headers=compute, json={"server": {
        "name": unique("trunk-vm"), "flavorRef": "10", "imageRef": image, "networks": [{"port": parent["id"]}]}})
    assert server.status_code == 202, server.text
    sid = server.json()["server"]["id"]
    wait("the trunk DEGRADED", lambda: reader("GET", f"/trunks/{trunk['id']}")["trunk"]["status"] == "DEGRADED")
    assert httpx.delete(f"{qcloud.compute_url}/servers/{sid}", headers=compute).status_code == 204
    wait("the trunk DOWN", lambda: reader("GET", f"/trunks/{trunk['id']}")["trunk"]["status"] == "DOWN")
    # in a trunk, neither the parent nor a subport can be deleted
    for port, kind in ((parent, "PortInUseAsTrunkParent"), (s1, "PortInUseAsSubPort")):
        r = httpx.delete(f"{member.url}/ports/{port['id']}", headers=member.headers)
        assert r.status_code == 409 and r.json()["NeutronError"]["type"] == kind, r.text
    remove = f"/trunks/{trunk['id']}/remove_subports"
    member("PUT", remove, {"sub_ports": [{"port_id": s3["id"]}]}, status=404)
    shrunk = member("PUT", remove, {"sub_ports": [{"port_id": s1["id"]}]})
    assert [s["port_id"] for s in shrunk["sub_ports"]] == [s2["id"]]
    assert member("GET", f"/ports/{s1['id']}")["port"]["device_owner"] == ""
    member("DELETE", f"/ports/{s1['id']}", status=204)
    # a disabled trunk takes no subport changes
    member("PUT", f"/trunks/{trunk['id']}", {"trunk": {"admin_state_up": False, "name": "t2"}})
    member("PUT", add, {"sub_ports": [{"port_id": s3["id"], "segmentation_type": "vlan",
                                       "segmentation_id": 300}]}, status=409)
    member("PUT", f"/trunks/{trunk['id']}", {"trunk": {"port_id": s3["id"]}}, status=400)
    reader("DELETE", f"/trunks/{trunk['id']}", status=403)
    member("DELETE", f"/trunks/{trunk['id']}", status=204)
    member("GET", f"/trunks/{trunk['id']}", status=404)
    assert "trunk_details" not in member("GET", f"/ports/{parent['id']}")["port"]
    for port in (parent, s2, s3):
        member("DELETE", f"/ports/{port['id']}", status=204)
    # openstacksdk: a trunk with a subport, shown on the parent port; the CLI lists it
    conn = qcloud.sdk()
    sdk_parent = conn.network.create_port(network_id=net["id"])
    sdk_sub = conn.network.create_port(network_id=sub_net["id"])
    made = conn.network.create_trunk(name=unique("trunk"), port_id=sdk_parent.id, sub_ports=[
        {"port_id": sdk_sub.id, "segmentation_type": "vlan", "segmentation_id": 42}])
    assert made.status == "DOWN" and made.sub_ports[0]["segmentation_id"] == 42
    assert conn.network.get_port(sdk_parent.id).trunk_details["trunk_id"] == made.id
    assert [s["port_id"] for s in conn.network.get_trunk_subports(made)["sub_ports"]] == [sdk_sub.id]
    listed = json.loads(qcloud.cli("network", "trunk", "list", "-f", "json").stdout)
    assert made.id in [t["ID"] for t in listed]
    conn.network.delete_trunk(made)
    for port in (sdk_parent, sdk_sub):
        conn.network.delete_port(port)
    for n in (net, sub_net):
        member("DELETE", f"/networks/{n['id']}", status=204)


# -- the dataplane ------------------------------------------------------------------------------
def sh(*cmd: str, check: bool = True) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {proc.stderr}")
    return proc.stdout


RECEIVER = """
import socket, sys, time, json
kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "tcp":  # bytes per second received in the window [0.5 s, 2 s) after the first byte
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((host, port)); s.listen(1)
    print("ready", flush=True)
    c, _ = s.accept(); c.settimeout(10)
    first = None; window = 0
    while True:
        data = c.recv(65536)
        if not data: break
        now = time.monotonic(); first = first or now
        if 0.5 <= now - first < 2.0: window += len(data)
    print(json.dumps({"rate": window / 1.5}), flush=True)
else:  # the TOS byte of the first datagram
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((host, port))
    s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVTOS", 13), 1)
    print("ready", flush=True)
    s.settimeout(10)
    _, anc, _, _ = s.recvmsg(100, 64)
    print(json.dumps({"tos": anc[0][2][0] if anc else None}), flush=True)
"""
SENDER = """
import socket, sys, time
kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "tcp":
    s = socket.create_connection((host, port), timeout=10); chunk = b"x" * 65536; end = time.monotonic() + 2.2
    while time.monotonic() < end: s.sendall(chunk)
    s.close()
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(5): s.sendto(b"mark", (host, port)); time.sleep(0.05)
"""


def measure(kind: str, src: str, dst: str, address: str) -> dict[str, Any]:
    """Run the receiver in ``dst`` and the sender in ``src``; the receiver's finding."""
    port = "5201" if kind == "tcp" else "5202"
    rx = subprocess.Popen(["ip", "netns", "exec", dst, sys.executable, "-c", RECEIVER, kind, address, port],
                          stdout=subprocess.PIPE, text=True)
    try:
        assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
        subprocess.run(["ip", "netns", "exec", src, sys.executable, "-c", SENDER, kind, address, port],
                       check=True, timeout=20)
        out = json.loads(rx.stdout.readline())
        rx.wait(timeout=10)
        return out
    finally:
        if rx.poll() is None:
            rx.kill()


def wait(what: str, check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_bandwidth_limits_and_dscp_marks_are_enforced(qcloud: Cloud) -> None:
    admin = Api(qcloud, qcloud.token()[0])
    dp = f"{qcloud.env['CUMULO_NETWORK__NAMESPACE_PREFIX']}-dp"
    net = admin("POST", "/networks", {"network": {"name": unique("dq")}})["network"]
    admin("POST", "/subnets", {"subnet": {"network_id": net["id"], "ip_version": 4, "cidr": "10.77.0.0/24",
                                          "enable_dhcp": False}})
    ports = [admin("POST", "/ports", {"port": {"network_id": net["id"], "device_owner": "compute:nova",
                                               "device_id": str(uuid.uuid4())}})["port"] for _ in range(2)]
    wait("the network's bridge", lambda: f"brq{net['id'][:11]}" in sh("ip", "-n", dp, "link", "show", check=False))
    spaces = [f"cumulo-test-q{uuid.uuid4().hex[:6]}" for _ in ports]
    taps = [f"tap{p['id'][:10]}0" for p in ports]
    try:
        for ns, tap, port in zip(spaces, taps, ports, strict=True):  # a "server" on each port
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", dp, "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", dp, "link", "set", tap, "master", f"brq{net['id'][:11]}", "up")
            sh("ip", "-n", ns, "link", "set", "eth0", "address", port["mac_address"], "up")
            sh("ip", "-n", ns, "addr", "add", f"{port['fixed_ips'][0]['ip_address']}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        a, b = spaces
        b_ip = ports[1]["fixed_ips"][0]["ip_address"]
        free = measure("tcp", a, b, b_ip)["rate"]
        assert free > 3 * LIMIT_KBPS * 125, f"unlimited A->B only {free:.0f} B/s"

        # towards B: a token bucket on B's tap
        pol = admin("POST", "/qos/policies", {"policy": {"name": unique("bw")}})["policy"]
        rule = admin("POST", f"/qos/policies/{pol['id']}/bandwidth_limit_rules", {"bandwidth_limit_rule": {
            "max_kbps": LIMIT_KBPS, "max_burst_kbps": 800, "direction": "ingress"}}, status=201)["bandwidth_limit_rule"]
        admin("PUT", f"/ports/{ports[1]['id']}", {"port": {"qos_policy_id": pol["id"]}})

        def tbf() -> dict[str, Any] | None:
            found = json.loads(sh("ip", "netns", "exec", dp, "tc", "-j", "qdisc", "show", "dev", taps[1]) or "[]")
            return next((q for q in found if q.get("kind") == "tbf" and q.get("root")), None)
        shaped = wait("tbf on B's tap", tbf)
        assert shaped["options"]["rate"] == LIMIT_KBPS * 125, shaped  # bytes per second
        limited = measure("tcp", a, b, b_ip)["rate"]
        assert 0.4 * LIMIT_KBPS * 125 < limited < 1.3 * LIMIT_KBPS * 125, f"A->B at {limited:.0f} B/s"
        # a changed rule changes the bucket; one removed behind the agent's back returns at its resync
        admin("PUT", f"/qos/policies/{pol['id']}/bandwidth_limit_rules/{rule['id']}", {"bandwidth_limit_rule": {
            "max_kbps": 2 * LIMIT_KBPS}})
        wait("the new rate", lambda: (tbf() or {}).get("options", {}).get("rate") == 2 * LIMIT_KBPS * 125)
        sh("ip", "netns", "exec", dp, "tc", "qdisc", "del", "dev", taps[1], "root")
        assert tbf() is None
        wait("tbf back after a resync", tbf, timeout=20)
        admin("DELETE", f"/qos/policies/{pol['id']}/bandwidth_limit_rules/{rule['id']}", status=204)
        wait("tbf gone from B's tap", lambda: tbf() is None)

        # from A: its network's policy polices what A sends and marks it AF11; A's own policy (CS5
        # mark) wins over the network's
        admin("POST", f"/qos/policies/{pol['id']}/bandwidth_limit_rules", {"bandwidth_limit_rule": {
            "max_kbps": LIMIT_KBPS}}, status=201)
        admin("POST", f"/qos/policies/{pol['id']}/dscp_marking_rules", {"dscp_marking_rule": {"dscp_mark": 10}},
              status=201)
        admin("PUT", f"/ports/{ports[1]['id']}", {"port": {"qos_policy_id": None}})
        admin("PUT", f"/networks/{net['id']}", {"network": {"qos_policy_id": pol["id"]}})

        def mangle() -> str:
            return sh("ip", "netns", "exec", dp, "iptables-save", "-t", "mangle")
        wait("the policer of A", lambda: f"q{ports[0]['id'][:10]}" in mangle())
        assert f"q{ports[1]['id'][:10]}" in mangle()  # B is on the network too
        policed = measure("tcp", a, b, b_ip)["rate"]
        assert policed < 1.3 * LIMIT_KBPS * 125, f"A sent {policed:.0f} B/s"
        trace = subprocess.run([str(BIN / "cumulo"), "network", "trace", ports[0]["id"]], env=qcloud.env,
                               capture_output=True, text=True, timeout=60).stdout
        assert f"qos       egress {LIMIT_KBPS} kbit/s, DSCP mark 10" in trace, trace
        assert "--hashlimit-above 1000000b/s" in trace and "--set-dscp 0x0a" in trace, trace
        assert measure("udp", a, b, b_ip)["tos"] == 10 << 2
        own = admin("POST", "/qos/policies", {"policy": {"name": unique("own")}})["policy"]
        admin("POST", f"/qos/policies/{own['id']}/dscp_marking_rules", {"dscp_marking_rule": {"dscp_mark": 40}},
              status=201)
        admin("PUT", f"/ports/{ports[0]['id']}", {"port": {"qos_policy_id": own["id"]}})
        wait("A's own policy", lambda: f"q{ports[0]['id'][:10]}" not in mangle())
        assert measure("udp", a, b, b_ip)["tos"] == 40 << 2
        assert measure("tcp", a, b, b_ip)["rate"] > 3 * LIMIT_KBPS * 125  # A's own policy has no limit
        admin("PUT", f"/networks/{net['id']}", {"network": {"qos_policy_id": None}})
        admin("PUT", f"/ports/{ports[0]['id']}", {"port": {"qos_policy_id": None}})
        wait("no QoS left", lambda: "DSCP" not in mangle() and "hashlimit" not in mangle())
        for p in (pol, own):
            admin("DELETE", f"/qos/policies/{p['id']}", status=204)
    finally:
        for ns in spaces:
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        for p in ports:
            admin("DELETE", f"/ports/{p['id']}")
        admin("DELETE", f"/networks/{net['id']}")



def test_bad_bodies_get_neutron_faults_not_errors(people: dict[str, Any]) -> None:
    admin, member = people["admin"], people["member"]
    pol = admin("POST", "/qos/policies", {"policy": {"name": unique("bad")}}, status=201)["policy"]
    net = member("POST", "/networks", {"network": {"name": unique("bad")}})["network"]
    port = member("POST", "/ports", {"port": {"network_id": net["id"]}})["port"]
    trunk = member("POST", "/trunks", {"trunk": {"port_id": port["id"]}}, status=201)["trunk"]
    junk: list[Any] = [None, [], "x", 5, {}, {"policy": []}, {"policy": {"name": 5}}, {"policy": {"shared": "maybe"}},
                       {"trunk": {"port_id": 5}}, {"trunk": {"port_id": port["id"], "sub_ports": "x"}},
                       {"trunk": {"sub_ports": [None]}}, {"sub_ports": [1]}, {"sub_ports": [{"port_id": [1]}]},
                       {"sub_ports": [{"port_id": port["id"], "segmentation_type": "vlan", "segmentation_id": True}]},
                       {"bandwidth_limit_rule": {"max_kbps": 2**40}}, {"bandwidth_limit_rule": {"max_kbps": None}},
                       {"dscp_marking_rule": {"dscp_mark": [26]}}, {"minimum_bandwidth_rule": {"min_kbps": 1.5}},
                       {"port": {"qos_policy_id": 7}}, {"network": {"qos_policy_id": ["x"]}}]
    paths = [("POST", "/qos/policies"), ("PUT", f"/qos/policies/{pol['id']}"), ("POST", "/trunks"),
             ("PUT", f"/trunks/{trunk['id']}"), ("PUT", f"/trunks/{trunk['id']}/add_subports"),
             ("PUT", f"/trunks/{trunk['id']}/remove_subports"), ("PUT", f"/ports/{port['id']}"),
             ("PUT", f"/networks/{net['id']}"),
             *[("POST", f"/qos/policies/{pol['id']}/{kind}") for kind in
               ("bandwidth_limit_rules", "dscp_marking_rules", "minimum_bandwidth_rules")]]
    for method, path in paths:
        for body in junk:
            r = httpx.request(method, admin.url + path, json=body, headers=admin.headers, timeout=30)
            assert r.status_code < 500 and (r.status_code < 400 or "NeutronError" in r.json()), (
                method, path, body, r.status_code, r.text)
    member("DELETE", f"/trunks/{trunk['id']}", status=204)
    member("DELETE", f"/ports/{port['id']}", status=204)
    member("DELETE", f"/networks/{net['id']}", status=204)
    admin("DELETE", f"/qos/policies/{pol['id']}", status=204)
