"""L3 metering labels and rules of the Network API (Neutron's ``metering`` and
``metering_source_and_destination_fields``) with each persona as Neutron's defaults say (an admin
or the project's manager makes and deletes, the project's reader reads, another project sees
nothing), Neutron's 400s and 409 for bad rules, and the ``openstack network meter`` commands; and
the counting on the real dataplane: pings from a "server" (a ``cumulo-test-*`` namespace on the
port's tap, as in test_network_qos) out through a router's gateway are counted by the labels of
the router's project, as ``openstack_neutron_metering_bytes``.
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


@pytest.fixture(scope="module")
def mcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("metering"), "sqlite", {
        "CUMULO_SERVICES": "identity,network", "CUMULO_NETWORK__DATAPLANE": "true",
        "CUMULO_NETWORK__RECONCILE_INTERVAL": "2"})
    yield c
    stop_cloud(c)
    subprocess.run([str(BIN / "cumulo"), "network", "cleanup", "--yes"], env=c.env, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def people(mcloud: Cloud) -> dict[str, Any]:
    return network_people(mcloud, "meter", "/metering")


def ids(items: list[dict[str, Any]]) -> set[str]:
    return {x["id"] for x in items}


def test_extensions_are_listed(mcloud: Cloud, people: dict[str, Any]) -> None:
    r = httpx.get(mcloud.network_url + "/extensions", headers=people["admin"].headers)
    aliases = {e["alias"] for e in r.json()["extensions"]}
    assert {"metering", "metering_source_and_destination_fields"} <= aliases


def test_labels_follow_neutrons_defaults(people: dict[str, Any]) -> None:
    admin, manager, member, reader, other = (people[k] for k in ("admin", "manager", "member", "reader", "other"))
    body = {"metering_label": {"name": unique("lbl"), "description": "web traffic"}}
    for who in (member, reader, other):  # Neutron: admin or the project's manager
        who("POST", "/metering-labels", body, status=403)
    label = manager("POST", "/metering-labels", body, status=201)["metering_label"]
    assert label["project_id"] == label["tenant_id"] == people["P"]
    assert label["shared"] is False and label["name"] == body["metering_label"]["name"]
    assert reader("GET", f"/metering-labels/{label['id']}")["metering_label"]["description"] == "web traffic"
    assert label["id"] in ids(reader("GET", "/metering-labels")["metering_labels"])
    other("GET", f"/metering-labels/{label['id']}", status=404)
    admin("HEAD", f"/metering-labels/{label['id']}", status=200)  # a HEAD asks, as a GET does
    admin("HEAD", "/metering-labels", status=200)
    assert reader("GET", f"/metering-labels/{label['id']}")["metering_label"]["id"] == label["id"]
    assert label["id"] not in ids(other("GET", "/metering-labels")["metering_labels"])
    # the admin makes one for Q, shared; P's people do not see it, filters find it
    q_label = admin("POST", "/metering-labels", {"metering_label": {
        "name": unique("q"), "tenant_id": people["Q"], "shared": True}}, status=201)["metering_label"]
    assert q_label["project_id"] == people["Q"] and q_label["shared"] is True
    assert q_label["id"] not in ids(reader("GET", "/metering-labels")["metering_labels"])
    assert ids(admin("GET", f"/metering-labels?id={q_label['id']}")["metering_labels"]) == {q_label["id"]}
    assert admin("GET", "/metering-labels?id=33")["metering_labels"] == []
    assert ids(admin("GET", "/metering-labels?shared=true")["metering_labels"]) >= {q_label["id"]}
    manager("POST", "/metering-labels", {"metering_label": {"tenant_id": people["Q"]}}, status=403)
    # no update in Neutron; bad input
    manager("PUT", f"/metering-labels/{label['id']}", {"metering_label": {"name": "x"}}, status=405)
    manager("POST", "/metering-labels", {"metering_label": {"name": "x" * 256}}, status=400)
    manager("POST", "/metering-labels", {"metering_label": {"shared": "maybe"}}, status=400)
    manager("POST", "/metering-labels", {"metering_label": {"colour": "red"}}, status=400)
    manager("POST", "/metering-labels", {"label": {}}, status=400)
    # delete: the member and reader may not, another project is told it does not exist
    member("DELETE", f"/metering-labels/{label['id']}", status=403)
    reader("DELETE", f"/metering-labels/{label['id']}", status=403)
    other("DELETE", f"/metering-labels/{label['id']}", status=404)
    manager("DELETE", f"/metering-labels/{label['id']}", status=204)
    manager("GET", f"/metering-labels/{label['id']}", status=404)
    admin("DELETE", f"/metering-labels/{q_label['id']}", status=204)


def test_rules_follow_neutrons_defaults_and_checks(people: dict[str, Any]) -> None:
    admin, manager, member, reader, other = (people[k] for k in ("admin", "manager", "member", "reader", "other"))
    label = manager("POST", "/metering-labels", {"metering_label": {"name": unique("r")}})["metering_label"]

    def rule(**kw: Any) -> dict[str, Any]:
        return {"metering_label_rule": {"metering_label_id": label["id"], "direction": "ingress", **kw}}

    for who in (member, reader):
        who("POST", "/metering-label-rules", rule(remote_ip_prefix="10.0.0.0/24"), status=403)
    other("POST", "/metering-label-rules", rule(remote_ip_prefix="10.0.0.0/24"), status=404)
    old = manager("POST", "/metering-label-rules", rule(remote_ip_prefix="10.0.0.0/24"),
                  status=201)["metering_label_rule"]
    assert old == {"id": old["id"], "metering_label_id": label["id"], "direction": "ingress", "excluded": False,
                   "remote_ip_prefix": "10.0.0.0/24", "source_ip_prefix": None, "destination_ip_prefix": None}
    new = manager("POST", "/metering-label-rules", rule(
        direction="egress", excluded=True, source_ip_prefix="fd02::/64",
        destination_ip_prefix="0.0.0.0/0"), status=201)["metering_label_rule"]
    assert (new["excluded"], new["source_ip_prefix"], new["destination_ip_prefix"], new["remote_ip_prefix"]) == (
        True, "fd02::/64", "0.0.0.0/0", None)
    assert reader("GET", f"/metering-label-rules/{old['id']}")["metering_label_rule"] == old
    assert ids(reader("GET", "/metering-label-rules")["metering_label_rules"]) >= {old["id"], new["id"]}
    assert ids(reader("GET", "/metering-label-rules?direction=egress")["metering_label_rules"]) == {new["id"]}
    assert ids(admin("GET", f"/metering-label-rules?id={new['id']}")["metering_label_rules"]) == {new["id"]}
    other("GET", f"/metering-label-rules/{old['id']}", status=404)
    assert other("GET", "/metering-label-rules")["metering_label_rules"] == []
    # Neutron's checks
    manager("POST", "/metering-label-rules", rule(remote_ip_prefix="10.0.0.128/25"), status=409)
    manager("POST", "/metering-label-rules", rule(), status=400)  # no prefix at all
    manager("POST", "/metering-label-rules", rule(remote_ip_prefix="10.1.0.0/24",
                                                 source_ip_prefix="10.2.0.0/24"), status=400)
    manager("POST", "/metering-label-rules", rule(remote_ip_prefix="10.1.0.1/24"), status=400)  # host bits
    manager("POST", "/metering-label-rules", rule(remote_ip_prefix="not-a-cidr"), status=400)
    manager("POST", "/metering-label-rules", rule(direction="sideways", remote_ip_prefix="10.1.0.0/24"), status=400)
    manager("POST", "/metering-label-rules", {"metering_label_rule": {"remote_ip_prefix": "10.1.0.0/24",
                                                                      "direction": "ingress"}}, status=400)
    manager("POST", "/metering-label-rules", {"metering_label_rule": {
        "metering_label_id": "no-such-label", "direction": "ingress", "remote_ip_prefix": "10.1.0.0/24"}}, status=404)
    member("DELETE", f"/metering-label-rules/{old['id']}", status=403)
    other("DELETE", f"/metering-label-rules/{old['id']}", status=404)
    manager("DELETE", f"/metering-label-rules/{old['id']}", status=204)
    manager("GET", f"/metering-label-rules/{old['id']}", status=404)
    # deleting the label deletes its rules
    manager("DELETE", f"/metering-labels/{label['id']}", status=204)
    admin("GET", f"/metering-label-rules/{new['id']}", status=404)


def test_openstack_cli_meters(mcloud: Cloud) -> None:
    name = unique("cli-meter")
    meter = json.loads(mcloud.cli("network", "meter", "create", "--description", "by the CLI", name,
                                  "-f", "json").stdout)
    assert meter["name"] == name and meter["description"] == "by the CLI"
    made = json.loads(mcloud.cli("network", "meter", "rule", "create", "--egress", "--exclude",
                                 "--source-ip-prefix", "192.0.2.0/24", "--destination-ip-prefix", "198.51.100.0/24",
                                 name, "-f", "json").stdout)
    assert (made["direction"], made["is_excluded"], made["source_ip_prefix"], made["destination_ip_prefix"]) == (
        "egress", True, "192.0.2.0/24", "198.51.100.0/24")
    listed = json.loads(mcloud.cli("network", "meter", "rule", "list", "-f", "json").stdout)
    assert made["id"] in {x["ID"] for x in listed}
    shown = json.loads(mcloud.cli("network", "meter", "show", name, "-f", "json").stdout)
    assert shown["id"] == meter["id"]
    mcloud.cli("network", "meter", "rule", "delete", made["id"])
    mcloud.cli("network", "meter", "delete", name)
    assert name not in {x["Name"] for x in json.loads(mcloud.cli("network", "meter", "list", "-f", "json").stdout)}


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout


def wait(what: str, check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def metered(cloud: Cloud, label_id: str, router_id: str, direction: str) -> int | None:
    text = httpx.get(f"http://127.0.0.1:{cloud.metrics_port}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("openstack_neutron_metering_bytes{") and f'label_id="{label_id}"' in line and \
                f'router_id="{router_id}"' in line and f'direction="{direction}"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return None


def test_a_labels_rules_count_the_routers_gateway_traffic(mcloud: Cloud, people: dict[str, Any]) -> None:
    token = mcloud.token()[0]
    admin, n = Api(mcloud, token, "/metering"), Api(mcloud, token)

    prefix = mcloud.env["CUMULO_NETWORK__NAMESPACE_PREFIX"]
    dp = f"{prefix}-dp"
    ext = n("POST", "/networks", {"network": {"name": unique("ext"), "router:external": True}})["network"]
    n("POST", "/subnets", {"subnet": {"network_id": ext["id"], "ip_version": 4, "cidr": "203.0.113.0/24",
                                      "enable_dhcp": False}})
    net = n("POST", "/networks", {"network": {"name": unique("in")}})["network"]
    sub = n("POST", "/subnets", {"subnet": {"network_id": net["id"], "ip_version": 4, "cidr": "10.91.0.0/24",
                                            "enable_dhcp": False}})["subnet"]
    router = n("POST", "/routers", {"router": {"name": unique("r"), "external_gateway_info": {
        "network_id": ext["id"]}}})["router"]
    n("PUT", f"/routers/{router['id']}/add_router_interface", {"subnet_id": sub["id"]})
    port = n("POST", "/ports", {"port": {"network_id": net["id"], "device_owner": "compute:nova",
                                         "device_id": str(uuid.uuid4())}})["port"]
    # the admin project's labels: one counts what goes out to the outside, one counts the subnet's
    # egress but excludes the outside's gateway; another project's (unshared) label is not on the router
    out = admin("POST", "/metering-labels", {"metering_label": {"name": unique("out")}})["metering_label"]
    admin("POST", "/metering-label-rules", {"metering_label_rule": {
        "metering_label_id": out["id"], "direction": "egress", "remote_ip_prefix": "203.0.113.0/24"}})
    but = admin("POST", "/metering-labels", {"metering_label": {"name": unique("but")}})["metering_label"]
    for rule in ({"source_ip_prefix": "10.91.0.0/24"},
                 {"destination_ip_prefix": "203.0.113.1/32", "excluded": True}):
        admin("POST", "/metering-label-rules", {"metering_label_rule": {
            "metering_label_id": but["id"], "direction": "egress", **rule}})
    theirs = admin("POST", "/metering-labels", {"metering_label": {"name": unique("q"),
                                                                   "tenant_id": people["Q"]}})["metering_label"]
    admin("POST", "/metering-label-rules", {"metering_label_rule": {
        "metering_label_id": theirs["id"], "direction": "egress", "remote_ip_prefix": "0.0.0.0/0"}})
    wait("the counters on the router", lambda: metered(mcloud, out["id"], router["id"], "egress") == 0)
    assert metered(mcloud, theirs["id"], router["id"], "egress") is None
    ns, tap = f"cumulo-test-m{uuid.uuid4().hex[:6]}", f"tap{port['id'][:10]}0"
    bridge = f"brq{net['id'][:11]}"
    wait("the network's bridge", lambda: bridge in sh("ip", "-n", dp, "link", "show"))
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", dp, "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", dp, "link", "set", tap, "master", bridge, "up")
        sh("ip", "-n", ns, "link", "set", "eth0", "address", port["mac_address"], "up")
        sh("ip", "-n", ns, "addr", "add", f"{port['fixed_ips'][0]['ip_address']}/24", "dev", "eth0")
        sh("ip", "-n", ns, "route", "add", "default", "via", "10.91.0.1")
        send = ("import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                "for _ in range(5): s.sendto(b'x' * 972, ('203.0.113.1', 9))")
        sent = 0

        def counted() -> int | None:  # 1000-byte IP packets (972 of payload, 8 of UDP, 20 of IP)
            nonlocal sent
            subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", send], check=True, timeout=30)
            sent += 5
            time.sleep(1)
            got = metered(mcloud, out["id"], router["id"], "egress") or 0
            return got if got >= 5 * 1000 else None
        total = wait("the datagrams counted", counted, timeout=40)
        assert total % 1000 == 0 and total <= sent * 1000, (total, sent)
        assert metered(mcloud, out["id"], router["id"], "ingress") == 0  # no rule for ingress
        assert metered(mcloud, but["id"], router["id"], "egress") == 0  # excluded: the outside's gateway
        # the rules are in the router's namespace as iptables counters
        saved = sh("ip", "netns", "exec", f"{prefix}-router-{router['id']}", "iptables-save", "-c", "-t", "filter")
        assert "-d 203.0.113.0/24 -m comment --comment cumulo-metering -j RETURN" in saved, saved
        # a deleted label leaves the router and the metrics
        admin("DELETE", f"/metering-labels/{out['id']}", status=204)
        wait("the label gone", lambda: metered(mcloud, out["id"], router["id"], "egress") is None)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "-n", dp, "link", "del", tap], capture_output=True)
