"""dnsmasq leases no port owns are dropped: the lease of a deleted port, or of a port whose MAC
changed, must not keep its address from the next port given it (IPv4 by MAC and address; IPv6
by address, and by the MAC a DUID carries)."""

from __future__ import annotations

from cumulo.network.dataplane import dhcp

OLD, NEW = "fa:16:3e:00:00:01", "fa:16:3e:00:00:02"


def port(mac: str, *ips: str, owner: str = "compute:nova") -> dict:
    return {"id": f"p-{mac}", "mac": mac, "device_owner": owner,
            "ips": [{"subnet_id": "s", "ip_address": ip} for ip in ips]}


V4 = f"1764700000 {OLD} 10.0.0.3 host-10-0-0-3 01:{OLD}\n1764700001 fa:16:3e:00:00:09 10.0.0.9 vm9 *\n"


def test_the_lease_of_a_deleted_port_goes_and_the_others_stay() -> None:
    owner = dhcp.owners([port("fa:16:3e:00:00:09", "10.0.0.9")])
    kept, dropped = dhcp.stale_leases(V4, owner)
    assert kept == "1764700001 fa:16:3e:00:00:09 10.0.0.9 vm9 *\n"
    assert dropped == [f"1764700000 {OLD} 10.0.0.3 host-10-0-0-3 01:{OLD}"]


def test_an_address_given_to_a_new_port_drops_the_old_mac_lease() -> None:
    # the address is reused by a new port (new MAC): the old lease is not the new port's
    owner = dhcp.owners([port(NEW, "10.0.0.3"), port("fa:16:3e:00:00:09", "10.0.0.9")])
    kept, dropped = dhcp.stale_leases(V4, owner)
    assert OLD not in kept and len(dropped) == 1


def test_a_port_whose_mac_changed_loses_its_lease_and_case_does_not_matter() -> None:
    assert dhcp.stale_leases(V4, dhcp.owners([port(NEW, "10.0.0.3")]))[0] == ""
    upper = dhcp.owners([port(OLD.upper(), "10.0.0.3")])
    assert dhcp.stale_leases(V4, upper)[1] == ["1764700001 fa:16:3e:00:00:09 10.0.0.9 vm9 *"]


def test_the_dhcp_port_owns_no_lease() -> None:
    assert dhcp.owners([port(OLD, "10.0.0.3", owner="network:dhcp")]) == {}


def test_ipv6_leases_by_address_unless_the_address_moved_to_another_port() -> None:
    text = ("duid 00:01:00:01:2c:00:00:00:fa:16:3e:ff:ff:ff\n"
            f"1764700000 1234 fd00::3 vm3 00:03:00:01:{OLD}\n"
            "1764700000 1235 fd00::4 vm4 00:01:00:01:2c:aa:bb:cc:fa:16:3e:77:77:77\n"
            "1764700000 1237 fd00::6 vm6 00:04:aa:bb\n")
    owner = dhcp.owners([port(NEW, "fd00::3", "fd00::4")])
    # the DUID may carry another NIC's MAC (fd00::4): the address decides; fd00::6 has no port
    kept, dropped = dhcp.stale_leases(text, owner)
    assert [line.split()[2] for line in kept.splitlines()[1:]] == ["fd00::3", "fd00::4"]
    assert [line.split()[2] for line in dropped] == ["fd00::6"]
    # fd00::3 was another port's until now (the hosts file said so): its lease was that port's
    before = dhcp.hosts_owners(f"{OLD},set:p-x,vm3,[fd00::3]\n{NEW},set:p-y,vm4,[fd00::4]\n")
    moved = {ip for ip, mac in before.items() if owner.get(ip) not in (None, mac)}
    assert moved == {"fd00::3"}
    kept, dropped = dhcp.stale_leases(text, owner, moved)
    assert [line.split()[2] for line in dropped] == ["fd00::3", "fd00::6"]


def test_hosts_owners_reads_what_files_writes() -> None:
    net = {"id": "n", "mtu": 1500, "subnets": [{"id": "s", "cidr": "10.0.0.0/24", "ip_version": 4,
                                                "enable_dhcp": True, "gateway_ip": "10.0.0.1"}]}
    hosts = dhcp.files(net, [port(OLD, "10.0.0.3")], {})["hosts"]
    assert dhcp.hosts_owners(hosts) == {"10.0.0.3": OLD}


def test_a_file_with_only_the_server_duid_left_is_emptied() -> None:
    kept, dropped = dhcp.stale_leases("duid 00:01:00:01:aa\n1 2 fd00::9 x 00:03:00:01:" + OLD + "\n", {})
    assert kept == "" and len(dropped) == 1


NET = {"id": "n", "mtu": 1500, "subnets": [{"id": "s", "cidr": "10.0.0.0/24", "ip_version": 4, "enable_dhcp": True,
                                            "gateway_ip": "10.0.0.1"}]}


def test_a_port_cannot_write_another_ports_dhcp_entry() -> None:
    """dnsmasq's files are one entry a line, fields split by commas: a tenant's dns_name or DHCP
    option with a newline would give an address of its choosing to a MAC of its choosing."""
    evil = {**port(NEW, "10.0.0.7"), "id": "evil0000-1",
            "dns_name": "x,10.0.0.7\nfa:16:3e:66:66:66,set:p-zz,y,10.0.0.3",
            "extra_dhcp_opts": [{"opt_name": "router", "opt_value": "10.0.0.1\ntag:p-victim00,option:router,10.0.0.7"},
                                {"opt_name": "a,b", "opt_value": "1"}, {"opt_name": "mtu", "opt_value": 1400}]}
    victim = {**port(OLD, "10.0.0.3"), "id": "victim00-2"}
    out = dhcp.files(NET, [evil, victim], {"s": "10.0.0.2"})
    hosts = out["hosts"].splitlines()
    assert hosts == [f"{NEW},set:p-evil0000,host-10-0-0-7,10.0.0.7", f"{OLD},set:p-victim00,host-10-0-0-3,10.0.0.3"]
    port_opts = [line for line in out["opts"].splitlines() if line.startswith("tag:p-")]
    assert port_opts == ["tag:p-evil0000,option:mtu,1400"]
    assert "fa:16:3e:66:66:66" not in out["addn-hosts"]


def test_a_good_dns_name_is_the_dhcp_host_name() -> None:
    out = dhcp.files(NET, [{**port(OLD, "10.0.0.3"), "id": "web00000-1", "dns_name": "web-1"}], {})
    assert out["hosts"] == f"{OLD},set:p-web00000,web-1,10.0.0.3\n"
