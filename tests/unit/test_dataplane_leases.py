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


def test_ipv6_leases_by_address_and_duid_mac() -> None:
    duid_ll_old = "00:03:00:01:" + OLD
    duid_llt_new = "00:01:00:01:2c:aa:bb:cc:" + NEW
    text = ("duid 00:01:00:01:2c:00:00:00:fa:16:3e:ff:ff:ff\n"
            f"1764700000 1234 fd00::3 vm3 {duid_ll_old}\n"
            f"1764700000 1235 fd00::4 vm4 {duid_llt_new}\n"
            "1764700000 1236 fd00::5 vm5 00:04:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99\n"
            "1764700000 1237 fd00::6 vm6 00:04:aa:bb\n")
    owner = dhcp.owners([port(NEW, "fd00::3", "fd00::4"), port(OLD, "fd00::5")])
    kept, dropped = dhcp.stale_leases(text, owner)
    assert kept.splitlines()[0].startswith("duid ")
    assert [line.split()[2] for line in kept.splitlines()[1:]] == ["fd00::4", "fd00::5"]
    # fd00::3 is leased to the old MAC's DUID; fd00::6 belongs to no port
    assert [line.split()[2] for line in dropped] == ["fd00::3", "fd00::6"]


def test_a_file_with_only_the_server_duid_left_is_emptied() -> None:
    kept, dropped = dhcp.stale_leases("duid 00:01:00:01:aa\n1 2 fd00::9 x 00:03:00:01:" + OLD + "\n", {})
    assert kept == "" and len(dropped) == 1
