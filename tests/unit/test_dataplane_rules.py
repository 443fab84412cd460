"""The dataplane's pure parts: security-group rules, ARP protection, router NAT and dnsmasq files
built from a desired state (what the agent applies with iptables-restore, ebtables-restore and
dnsmasq; the functional test proves they work on real guests)."""

from __future__ import annotations

from cumulo.network.agent import nat_rules
from cumulo.network.dataplane import dhcp, firewall

GROUP, WEB = "g-default", "g-web"
ZONES = {"net-1": 78}


def state() -> dict:
    def port(pid: str, ip: str, groups: list[str], **extra: object) -> dict:
        return {"id": pid, "network_id": "net-1", "mac": f"fa:16:3e:00:00:{ip.split('.')[-1]:0>2}",
                "ips": [{"subnet_id": "sub-1", "ip_address": ip, "prefixlen": "24"}],
                "device_owner": "compute:nova", "device_id": f"srv-{pid}", "port_security": True,
                "security_groups": groups, "allowed_address_pairs": [], "extra_dhcp_opts": [], **extra}

    return {
        "networks": [{"id": "net-1", "mtu": 1450, "segment_id": 77, "external": False,
                      "subnets": [{"id": "sub-1", "cidr": "10.1.0.0/24", "ip_version": 4, "gateway_ip": "10.1.0.1",
                                   "enable_dhcp": True, "dns_nameservers": [], "host_routes": [
                                       {"destination": "192.168.50.0/24", "nexthop": "10.1.0.254"}]}],
                      "dhcp_port": None}],
        "ports": [port("aaaaaaaaaa-1", "10.1.0.10", [GROUP]), port("bbbbbbbbbb-2", "10.1.0.11", [GROUP, WEB]),
                  port("cccccccccc-3", "10.1.0.12", [], port_security=False),
                  port("dddddddddd-4", "10.1.0.13", [GROUP],
                       allowed_address_pairs=[{"ip_address": "10.1.0.200/32", "mac_address": "fa:16:3e:aa:bb:cc"}]),
                  {"id": "eeeeeeeeee-5", "network_id": "net-1", "mac": "fa:16:3e:00:00:02", "device_owner":
                   "network:dhcp", "device_id": "dhcp", "port_security": False, "security_groups": [],
                   "ips": [{"subnet_id": "sub-1", "ip_address": "10.1.0.2", "prefixlen": "24"}]}],
        "security_groups": {
            GROUP: {"stateful": True, "rules": [
                {"direction": "egress", "ethertype": "IPv4"},
                {"direction": "ingress", "ethertype": "IPv4", "remote_group_id": GROUP}]},
            WEB: {"stateful": True, "rules": [
                {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 80,
                 "port_range_max": 80, "remote_ip_prefix": "0.0.0.0/0"},
                {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 8000,
                 "port_range_max": 8100, "remote_ip_prefix": "192.0.2.0/24"},
                {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp", "port_range_min": 8,
                 "port_range_max": 0}]}},
        "routers": [],
    }


def lines_of(text: str, chain: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"-A {chain} ")]


def test_remote_group_rules_admit_each_member_address_and_nothing_else() -> None:
    rules = firewall.rules(state(), 4, ZONES)
    ingress = lines_of(rules, "ci-aaaaaaaaaa")
    members = {"10.1.0.10", "10.1.0.11", "10.1.0.13"}  # the default group's ports (not the unsecured one)
    chain = firewall.member_chain(GROUP, "ingress")
    # the port's rule asks the group's chain, which marks a member's packet; the mark admits it
    assert ingress[ingress.index(f"-A ci-aaaaaaaaaa -j {chain}") + 1] == \
        f"-A ci-aaaaaaaaaa -m mark --mark {firewall.MEMBER} -j RETURN"
    marked = lines_of(rules, chain)
    assert set(marked) == {f"-A {chain} -s {ip}/32 -j MARK --set-xmark {firewall.MEMBER}" for ip in members}
    assert f":{chain} - [0:0]" in rules.splitlines()
    assert f"-A cumulo-sg -j MARK --set-xmark 0x0/{firewall.MARKS}" in rules.splitlines()  # no stale mark
    assert ingress[-1] == "-A ci-aaaaaaaaaa -j DROP" and ingress[0].endswith("RELATED,ESTABLISHED -j RETURN")


def test_remote_group_rules_grow_linearly_with_the_group() -> None:
    """1,000 ports in a group that admits itself: one line per member in the group's chain and a
    few per port, not 1,000 per port."""
    big = state()
    template = big["ports"][0]
    big["ports"] = [{**template, "id": f"p{n:09d}-x", "mac": f"fa:16:3e:00:{n // 256:02x}:{n % 256:02x}",
                     "ips": [{"subnet_id": "sub-1", "ip_address": f"10.2.{n // 256}.{n % 256}", "prefixlen": "16"}]}
                    for n in range(1000)]
    text = firewall.rules(big, 4, ZONES)
    assert len(lines_of(text, firewall.member_chain(GROUP, "ingress"))) == 1000
    assert len(text.splitlines()) < 40 * 1000


def test_protocol_port_range_prefix_and_icmp_rules() -> None:
    ingress = lines_of(firewall.rules(state(), 4, ZONES), "ci-bbbbbbbbbb")
    assert "-A ci-bbbbbbbbbb -p tcp --dport 80 -j RETURN" in ingress
    assert "-A ci-bbbbbbbbbb -s 192.0.2.0/24 -p tcp --dport 8000:8100 -j RETURN" in ingress
    assert "-A ci-bbbbbbbbbb -p icmp --icmp-type 8/0 -j RETURN" in ingress


def test_source_check_allows_the_port_and_its_address_pairs_only() -> None:
    rules = firewall.rules(state(), 4, ZONES)
    check = lines_of(rules, "cs-dddddddddd")
    assert check == ["-A cs-dddddddddd -s 10.1.0.13/32 -m mac --mac-source fa:16:3e:00:00:13 -j RETURN",
                     "-A cs-dddddddddd -s 10.1.0.200/32 -m mac --mac-source fa:16:3e:aa:bb:cc -j RETURN",
                     "-A cs-dddddddddd -j DROP"]
    egress = lines_of(rules, "co-dddddddddd")
    assert egress.index("-A co-dddddddddd -j cs-dddddddddd") < egress.index("-A co-dddddddddd -j ACCEPT")


def test_unsecured_port_passes_and_unknown_taps_get_nothing() -> None:
    rules = firewall.rules(state(), 4, ZONES)
    assert lines_of(rules, "ci-cccccccccc") == ["-A ci-cccccccccc -j RETURN"]
    assert lines_of(rules, "co-cccccccccc") == ["-A co-cccccccccc -j ACCEPT"]
    sg = lines_of(rules, "cumulo-sg")
    unknown_out = next(i for i, line in enumerate(sg) if "--physdev-out tap+" in line)
    first_egress = next(i for i, line in enumerate(sg) if "--physdev-in tapaaaaaaaaaa+" in line)
    assert unknown_out < first_egress and sg[-1].endswith("--physdev-in tap+ --physdev-is-bridged -j DROP")
    assert "-A PREROUTING -i brqnet-1 -j CT --zone 78" in rules  # the zone the agent gave the network
    assert not any("eeeeeeeeee" in line for line in rules.splitlines())  # the DHCP port is not filtered


def test_arp_protection_per_port() -> None:
    arp = firewall.arp_rules(state())
    assert "-A ca-aaaaaaaaaa -p ARP --arp-ip-src 10.1.0.10/32 --arp-mac-src fa:16:3e:00:00:10 -j RETURN" in arp
    assert "-A ca-dddddddddd -p ARP --arp-ip-src 10.1.0.200/32 --arp-mac-src fa:16:3e:aa:bb:cc -j RETURN" in arp
    assert "-A cm-aaaaaaaaaa -j DROP" in arp and "ca-cccccccccc" not in arp


def test_router_nat_floating_ips_and_snat() -> None:
    router = {"enable_snat": True, "gateway": {"id": "gw0000000000", "ips": [{"ip_address": "172.24.4.2"}]},
              "interfaces": [{"ips": [{"ip_address": "10.1.0.1", "prefixlen": "24"}]}],
              "floating_ips": [{"floating_ip_address": "172.24.4.9", "fixed_ip_address": "10.1.0.10"}]}
    text = nat_rules(router)
    assert "-A PREROUTING -d 172.24.4.9/32 -j DNAT --to-destination 10.1.0.10" in text
    snat = [line for line in text.splitlines() if "SNAT" in line]
    assert snat == ["-A POSTROUTING -s 10.1.0.10/32 -o qg-gw000000000 -j SNAT --to-source 172.24.4.9",
                    "-A POSTROUTING -s 10.1.0.0/24 -o qg-gw000000000 -j SNAT --to-source 172.24.4.2"]
    assert "SNAT --to-source 172.24.4.2" not in nat_rules({**router, "enable_snat": False})


def test_dnsmasq_files_static_hosts_metadata_route_and_mtu() -> None:
    s = state()
    files = dhcp.files(s["networks"][0], s["ports"], {"sub-1": "10.1.0.2"})
    assert "fa:16:3e:00:00:10,set:p-aaaaaaaa,host-10-1-0-10,10.1.0.10" in files["hosts"]
    assert "10.1.0.2" not in files["hosts"]  # the DHCP port itself
    opts = files["opts"]
    assert ("tag:s-sub-1,option:classless-static-route,169.254.169.254/32,10.1.0.2,192.168.50.0/24,10.1.0.254,"
            "0.0.0.0/0,10.1.0.1") in opts
    assert "tag:s-sub-1,option:mtu,1450" in opts and "tag:s-sub-1,option:dns-server,10.1.0.2" in opts
    args = dhcp.arguments(s["networks"][0], "ns-x", __import__("pathlib").Path("/d"))
    assert "--no-resolv" in args and "--dhcp-range=set:s-sub-1,10.1.0.0,static,255.255.255.0,86400s" in args


def test_a_network_without_a_conntrack_zone_drops_its_traffic() -> None:
    """All zones held: the network must not fall back to the default zone others share."""
    rules = firewall.rules(state(), 4, {})
    assert "-A PREROUTING -i brqnet-1 -j DROP" in rules and "--zone" not in rules
