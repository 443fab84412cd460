"""QoS's pure parts (and a trunk's status): which rules reach a port of the desired state (its own policy wins over its
network's, which reaches server ports only), and the mangle table and token buckets the agent
applies (the functional test measures them on real links)."""

from __future__ import annotations

from types import SimpleNamespace

from cumulo.network.dataplane import firewall
from cumulo.network.dataplane.qos import burst_bytes, mangle, police_of, tbf_of
from cumulo.network.qos import effective
from cumulo.network.trunks import status_of


def rule(kind: str, **fields: object) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, direction=fields.pop("direction", ""), max_kbps=fields.get("max_kbps"),
                           max_burst_kbps=fields.get("max_burst_kbps"), dscp_mark=fields.get("dscp_mark"))


RULES = {"net-pol": [rule("bandwidth_limit", direction="egress", max_kbps=8000), rule("dscp_marking", dscp_mark=10)],
         "own-pol": [rule("bandwidth_limit", direction="ingress", max_kbps=2000, max_burst_kbps=100),
                     rule("minimum_bandwidth", direction="egress")]}


def test_a_ports_own_policy_wins_and_the_networks_reaches_server_ports_only() -> None:
    bindings = {"net-1": "net-pol", "own": "own-pol"}
    server = {"id": "srv", "network_id": "net-1", "device_owner": "compute:nova"}
    assert effective(server, bindings, RULES) == {"bandwidth_limit": {"egress": {"max_kbps": 8000,
                                                                                 "max_burst_kbps": 0}},
                                                  "dscp_mark": 10}
    own = {**server, "id": "own"}
    assert effective(own, bindings, RULES) == {"bandwidth_limit": {"ingress": {"max_kbps": 2000,
                                                                               "max_burst_kbps": 100}}}
    dhcp = {"id": "dhcp", "network_id": "net-1", "device_owner": "network:dhcp"}
    assert effective(dhcp, bindings, RULES) == {}


def test_limits_become_a_policer_a_mark_and_a_token_bucket() -> None:
    port = {"id": "aaaaaaaaaa-1", "network_id": "net-1", "device_owner": "compute:nova",
            "qos": {"bandwidth_limit": {"egress": {"max_kbps": 8000, "max_burst_kbps": 0},
                                        "ingress": {"max_kbps": 2000, "max_burst_kbps": 100}}, "dscp_mark": 26}}
    text = mangle({"ports": [port]}, 4)
    sent = "-A cumulo-qos -m physdev --physdev-in tapaaaaaaaaaa+ --physdev-is-bridged"
    lines = text.splitlines()
    police = lines.index(f"{sent} -m hashlimit --hashlimit-above 1000000b/s --hashlimit-burst 1000000b "
                         "--hashlimit-name qaaaaaaaaaa -j DROP")
    assert lines.index(f"{sent} -j DSCP --set-dscp 26") > police  # what is dropped is not marked first
    assert text.startswith("*mangle\n") and text.endswith("COMMIT\n")
    assert police_of(port) == (1_000_000, 1_000_000)  # hashlimit's bucket holds at least a second
    assert tbf_of(port) == (2000, 16 * 1514)  # 100 kbit is less than a few full frames
    assert burst_bytes(8000, 0) == 800_000  # Neutron's default: 80 % of a second's worth
    assert police_of({**port, "qos": {"bandwidth_limit": {"egress": {"max_kbps": 2**31 - 1}}}}) is None
    assert mangle({"ports": [{**port, "qos": {}}]}, 6).count("\n-A ") == 1  # only the jump to cumulo-qos


def test_the_firewall_carries_the_mangle_table() -> None:
    port = {"id": "aaaaaaaaaa-1", "network_id": "net-1", "device_owner": "compute:nova", "mac": "fa:16:3e:00:00:10",
            "ips": [], "port_security": True, "security_groups": [], "qos": {"dscp_mark": 46}}
    text = firewall.rules({"networks": [], "ports": [port], "security_groups": {}}, 4, {})
    assert "*filter" in text and "*raw" in text and "-j DSCP --set-dscp 46" in text.split("*mangle")[1]


def test_a_trunk_is_down_until_its_parent_is_active_and_degraded_with_subports_nothing_wires() -> None:
    assert status_of("DOWN", []) == "DOWN" and status_of(None, []) == "DOWN"
    assert status_of("ACTIVE", []) == "ACTIVE"
    assert status_of("ACTIVE", [SimpleNamespace(port_id="s")]) == "DEGRADED"  # type: ignore[list-item]
