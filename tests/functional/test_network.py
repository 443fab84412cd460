"""The Network API (first part): networks, subnets and ports with IP address management, through
openstacksdk, the CLI and plain HTTP, on a cloud that runs the network service."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.functional.conftest import Cloud, start_cloud, stop_cloud, unique


@pytest.fixture(scope="module")
def ncloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("net-cloud"), "sqlite", {
        "CUMULO_SERVICES": "identity,image,compute,placement,network", "CUMULO_COMPUTE__FAKE_NODES": "1"})
    yield c
    stop_cloud(c)


def test_networks_subnets_ports_with_sdk_and_cli(ncloud: Cloud) -> None:
    conn = ncloud.sdk()
    net = conn.network.create_network(name=unique("net"))
    assert net.status == "ACTIVE" and net.mtu == 1450 and net.provider_segmentation_id
    sub = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.20.0.0/24", name="s4")
    assert sub.gateway_ip == "10.20.0.1" and sub.allocation_pools == [{"start": "10.20.0.2", "end": "10.20.0.254"}]
    v6 = conn.network.create_subnet(network_id=net.id, ip_version=6, cidr="fd00:20::/64",
                                    ipv6_address_mode="slaac", ipv6_ra_mode="slaac")
    port = conn.network.create_port(network_id=net.id)
    addresses = {f["subnet_id"]: f["ip_address"] for f in port.fixed_ips}
    assert addresses[sub.id] == "10.20.0.2" and v6.id in addresses and port.mac_address.startswith("fa:16:3e")
    fixed = conn.network.create_port(network_id=net.id, fixed_ips=[{"subnet_id": sub.id, "ip_address": "10.20.0.50"}])
    assert fixed.fixed_ips == [{"subnet_id": sub.id, "ip_address": "10.20.0.50"}]
    shown = json.loads(ncloud.cli("port", "show", fixed.id, "-f", "json").stdout)
    assert "10.20.0.50" in json.dumps(shown["fixed_ips"])
    listed = json.loads(ncloud.cli("network", "list", "-f", "json").stdout)
    assert net.id in [n["ID"] for n in listed]
    assert [p.id for p in conn.network.ports(network_id=net.id, fixed_ips="ip_address=10.20.0.50")] == [fixed.id]
    # in use: the network and the subnet cannot go while a port holds an address
    token = ncloud.token()[0]
    headers = {"X-Auth-Token": token}
    r = httpx.delete(f"{ncloud.network_url}/networks/{net.id}", headers=headers)
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "NetworkInUse"
    assert httpx.delete(f"{ncloud.network_url}/subnets/{sub.id}", headers=headers).status_code == 409
    for p in (port, fixed):
        conn.network.delete_port(p)
    ncloud.cli("network", "delete", net.id)
    assert httpx.get(f"{ncloud.network_url}/networks/{net.id}", headers=headers).status_code == 404


def test_no_address_is_handed_out_twice(ncloud: Cloud) -> None:
    token = ncloud.token()[0]
    headers = {"X-Auth-Token": token}
    net = httpx.post(f"{ncloud.network_url}/networks", headers=headers, json={"network": {"name": unique("n")}}
                     ).json()["network"]
    sub = httpx.post(f"{ncloud.network_url}/subnets", headers=headers, json={"subnet": {
        "network_id": net["id"], "ip_version": 4, "cidr": "10.30.0.0/28"}}).json()["subnet"]  # 13 addresses

    def make(_: int) -> httpx.Response:
        return httpx.post(f"{ncloud.network_url}/ports", headers=headers, json={"port": {"network_id": net["id"]}},
                          timeout=30)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(make, range(16)))
    made = [r.json()["port"]["fixed_ips"][0]["ip_address"] for r in results if r.status_code == 201]
    assert len(made) == 13 and len(set(made)) == 13, made  # every address once, none twice
    assert {r.status_code for r in results} == {201, 409}
    exhausted = [r for r in results if r.status_code == 409][0].json()["NeutronError"]
    assert exhausted["type"] == "IpAddressGenerationFailure"
    r = httpx.post(f"{ncloud.network_url}/ports", headers=headers, json={"port": {
        "network_id": net["id"], "fixed_ips": [{"ip_address": made[0]}]}})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "IpAddressAlreadyAllocated"
    for port in httpx.get(f"{ncloud.network_url}/ports?network_id={net['id']}", headers=headers).json()["ports"]:
        httpx.delete(f"{ncloud.network_url}/ports/{port['id']}", headers=headers)
    assert httpx.delete(f"{ncloud.network_url}/subnets/{sub['id']}", headers=headers).status_code == 204


def test_bad_input_gets_neutron_faults(ncloud: Cloud) -> None:
    token = ncloud.token()[0]
    demo = ncloud.token("demo", ncloud.demo_password, "demo")[0]
    headers = {"X-Auth-Token": token}
    net = httpx.post(f"{ncloud.network_url}/networks", headers=headers, json={"network": {"name": unique("b")}}
                     ).json()["network"]
    httpx.post(f"{ncloud.network_url}/subnets", headers=headers, json={"subnet": {
        "network_id": net["id"], "ip_version": 4, "cidr": "10.40.0.0/24"}})
    cases = [("subnets", {"network_id": net["id"], "ip_version": 4, "cidr": "10.40.0.128/25"}, 400),  # overlap
             ("subnets", {"network_id": net["id"], "ip_version": 4, "cidr": "not-a-cidr"}, 400),
             ("subnets", {"network_id": net["id"], "ip_version": 6, "cidr": "10.41.0.0/24"}, 400),
             ("subnets", {"network_id": net["id"], "ip_version": 4, "cidr": "10.42.0.0/24",
                          "gateway_ip": "10.99.0.1"}, 400),
             ("subnets", {"network_id": net["id"], "ip_version": 4, "cidr": "10.43.0.0/24",
                          "allocation_pools": [{"start": "10.43.0.10", "end": "10.44.0.5"}]}, 400),
             ("ports", {"network_id": net["id"], "fixed_ips": [{"ip_address": "192.168.9.9"}]}, 400),
             ("ports", {"network_id": net["id"], "mac_address": "zz:zz"}, 400),
             ("ports", {"network_id": "no-such-network"}, 404),
             ("networks", {"name": 5}, 400), ("networks", {"mtu": 10}, 400)]
    for kind, body, status in cases:
        r = httpx.post(f"{ncloud.network_url}/{kind}", headers=headers, json={kind[:-1]: body})
        assert r.status_code == status, (kind, body, r.text)
        assert "NeutronError" in r.json()
    # another project's network is invisible to a member; shared and external ones need an admin
    assert httpx.get(f"{ncloud.network_url}/networks/{net['id']}", headers={"X-Auth-Token": demo}).status_code == 404
    r = httpx.post(f"{ncloud.network_url}/ports", headers={"X-Auth-Token": demo}, json={"port": {
        "network_id": net["id"]}})
    assert r.status_code == 404
    assert httpx.post(f"{ncloud.network_url}/networks", headers={"X-Auth-Token": demo}, json={"network": {
        "shared": True}}).status_code == 403
    assert httpx.get(f"{ncloud.network_url}/extensions", headers=headers).json()["extensions"]


def test_security_groups_default_rules_and_validation(ncloud: Cloud) -> None:
    conn = ncloud.sdk(cloud="cumulo-demo")
    groups = list(conn.network.security_groups())
    default = [g for g in groups if g.name == "default"]
    assert len(default) == 1  # made once on first use
    rules = {(r["direction"], r["ethertype"], r["remote_group_id"]) for r in default[0].security_group_rules}
    assert rules == {("egress", "IPv4", None), ("egress", "IPv6", None),
                     ("ingress", "IPv4", default[0].id), ("ingress", "IPv6", default[0].id)}
    web = json.loads(ncloud.cli("security", "group", "create", unique("web"), "-f", "json", cloud="cumulo-demo").stdout)
    ncloud.cli("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "80", "--ingress", web["id"],
               cloud="cumulo-demo")
    ncloud.cli("security", "group", "rule", "create", "--protocol", "icmp", web["id"], cloud="cumulo-demo")
    listed = json.loads(ncloud.cli("security", "group", "rule", "list", web["id"], "-f", "json",
                                   cloud="cumulo-demo").stdout)
    assert {(r["IP Protocol"], r["Port Range"]) for r in listed} >= {("tcp", "80:80"), ("icmp", "")}
    demo = ncloud.token("demo", ncloud.demo_password, "demo")[0]
    headers = {"X-Auth-Token": demo}
    url = f"{ncloud.network_url}/security-group-rules"
    bad = [{"direction": "sideways"}, {"direction": "ingress", "protocol": "tcp", "port_range_min": 90,
                                       "port_range_max": 80},
           {"direction": "ingress", "protocol": "tcp", "port_range_min": 0, "port_range_max": 70000},
           {"direction": "ingress", "protocol": "icmp", "port_range_min": 300},
           {"direction": "ingress", "protocol": "bogus"},
           {"direction": "ingress", "remote_ip_prefix": "10.0.0.0/8", "ethertype": "IPv6"},
           {"direction": "ingress", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": web["id"]}]
    for body in bad:
        r = httpx.post(url, headers=headers, json={"security_group_rule": {"security_group_id": web["id"], **body}})
        assert r.status_code == 400 and "NeutronError" in r.json(), (body, r.text)
    dup = {"security_group_id": web["id"], "direction": "ingress", "protocol": "tcp", "port_range_min": 80,
           "port_range_max": 80, "ethertype": "IPv4"}
    r = httpx.post(url, headers=headers, json={"security_group_rule": dup})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "SecurityGroupRuleExists"
    # the default group cannot be deleted; a port gets the default group unless it names others
    r = httpx.delete(f"{ncloud.network_url}/security-groups/{default[0].id}", headers=headers)
    assert r.status_code == 409
    net = conn.network.create_network(name=unique("sgnet"))
    conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.50.0.0/24")
    port = conn.network.create_port(network_id=net.id)
    assert port.security_group_ids == [default[0].id]
    port2 = conn.network.create_port(network_id=net.id, security_group_ids=[web["id"]])
    assert port2.security_group_ids == [web["id"]]
    r = httpx.delete(f"{ncloud.network_url}/security-groups/{web['id']}", headers=headers)
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "SecurityGroupInUse"
    for p in (port, port2):
        conn.network.delete_port(p)
    conn.network.delete_network(net)
    ncloud.cli("security", "group", "delete", web["id"], cloud="cumulo-demo")


def test_routers_interfaces_routes_and_floating_ips(ncloud: Cloud) -> None:
    admin = ncloud.sdk()
    conn = ncloud.sdk(cloud="cumulo-demo")
    ext = admin.network.create_network(name=unique("public"), is_router_external=True)
    admin.network.create_subnet(network_id=ext.id, ip_version=4, cidr="172.24.4.0/24", enable_dhcp=False)
    net = conn.network.create_network(name=unique("private"))
    sub = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.60.0.0/24")
    other = conn.network.create_network(name=unique("other"))
    clash = conn.network.create_subnet(network_id=other.id, ip_version=4, cidr="10.60.0.0/25")
    router = json.loads(ncloud.cli("router", "create", unique("r"), "-f", "json", cloud="cumulo-demo").stdout)
    ncloud.cli("router", "set", "--external-gateway", ext.id, router["id"], cloud="cumulo-demo")
    ncloud.cli("router", "add", "subnet", router["id"], sub.id, cloud="cumulo-demo")
    shown = conn.network.get_router(router["id"])
    assert shown.external_gateway_info["network_id"] == ext.id and shown.external_gateway_info["enable_snat"]
    gateway_ip = shown.external_gateway_info["external_fixed_ips"][0]["ip_address"]
    assert ipaddress_in(gateway_ip, "172.24.4.0/24")
    demo = ncloud.token("demo", ncloud.demo_password, "demo")[0]
    headers = {"X-Auth-Token": demo}
    url = f"{ncloud.network_url}/routers/{router['id']}"
    r = httpx.put(f"{url}/add_router_interface", headers=headers, json={"subnet_id": clash.id})
    assert r.status_code == 400 and "overlaps" in r.json()["NeutronError"]["message"]
    r = httpx.put(url, headers=headers, json={"router": {"routes": [{"destination": "10.99.0.0/24",
                                                                      "nexthop": "192.168.1.1"}]}})
    assert r.status_code == 400 and r.json()["NeutronError"]["type"] == "InvalidRoutes"
    r = httpx.put(url, headers=headers, json={"router": {"routes": [{"destination": "10.99.0.0/24",
                                                                      "nexthop": "10.60.0.9"}]}})
    assert r.status_code == 200 and r.json()["router"]["routes"] == [{"destination": "10.99.0.0/24",
                                                                       "nexthop": "10.60.0.9"}]
    # a floating IP follows the port through the router
    port = conn.network.create_port(network_id=net.id)
    fip = conn.network.create_ip(floating_network_id=ext.id, port_id=port.id)
    assert fip.router_id == router["id"] and fip.fixed_ip_address == port.fixed_ips[0]["ip_address"]
    assert ipaddress_in(fip.floating_ip_address, "172.24.4.0/24") and fip.floating_ip_address != gateway_ip
    lonely = conn.network.create_port(network_id=other.id)
    r = httpx.put(f"{ncloud.network_url}/floatingips/{fip.id}", headers=headers,
                  json={"floatingip": {"port_id": lonely.id}})
    assert r.status_code == 404 and r.json()["NeutronError"]["type"] == "ExternalGatewayForFloatingIPNotFound"
    assert conn.network.update_ip(fip, port_id=None).port_id is None
    conn.network.update_ip(fip, port_id=port.id)
    conn.network.delete_port(port)  # the floating IP lets go of a port that goes away
    assert conn.network.get_ip(fip.id).port_id is None
    r = httpx.delete(url, headers=headers)
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "RouterInUse"
    assert httpx.delete(f"{ncloud.network_url}/subnets/{sub.id}", headers=headers).status_code == 409  # interface
    ncloud.cli("router", "remove", "subnet", router["id"], sub.id, cloud="cumulo-demo")
    conn.network.delete_ip(fip)
    assert httpx.delete(url, headers=headers).status_code == 204
    for p in conn.network.ports(network_id=ext.id):
        raise AssertionError(f"port {p.id} ({p.device_owner}) was left on the external network")
    conn.network.delete_port(lonely)
    for n in (net, other):
        conn.network.delete_network(n)
    admin.network.delete_network(ext)


def ipaddress_in(address: str, cidr: str) -> bool:
    import ipaddress

    return ipaddress.ip_address(address) in ipaddress.ip_network(cidr)


def test_servers_get_ports_and_addresses(ncloud: Cloud) -> None:
    import time

    demo = ncloud.token("demo", ncloud.demo_password, "demo")[0]
    nh = {"X-Auth-Token": demo}
    ch = {"X-Auth-Token": demo, "OpenStack-API-Version": "compute 2.47"}
    image = httpx.get(f"{ncloud.image_url}/v2/images?name=cumulo-tiny", headers=nh).json()["images"][0]["id"]
    net = httpx.post(f"{ncloud.network_url}/networks", headers=nh, json={"network": {"name": "app"}}).json()["network"]
    sub = httpx.post(f"{ncloud.network_url}/subnets", headers=nh, json={"subnet": {
        "network_id": net["id"], "ip_version": 4, "cidr": "10.70.0.0/24"}}).json()["subnet"]

    def boot(networks: object) -> httpx.Response:
        return httpx.post(f"{ncloud.compute_url}/servers", headers=ch, json={"server": {
            "name": unique("vm"), "flavorRef": "10", "imageRef": image, "networks": networks}})

    def active(server_id: str) -> dict:
        deadline = time.monotonic() + 20
        while True:
            s = httpx.get(f"{ncloud.compute_url}/servers/{server_id}", headers=ch).json()["server"]
            if s["status"] in ("ACTIVE", "ERROR") or time.monotonic() > deadline:
                assert s["status"] == "ACTIVE", s.get("fault")
                return dict(s)
            time.sleep(0.2)

    a = active(boot([{"uuid": net["id"], "fixed_ip": "10.70.0.10"}]).json()["server"]["id"])
    assert a["addresses"] == {"app": [{"version": 4, "addr": "10.70.0.10", "OS-EXT-IPS:type": "fixed",
                                       "OS-EXT-IPS-MAC:mac_addr": a["addresses"]["app"][0]["OS-EXT-IPS-MAC:mac_addr"]}]}
    made = httpx.get(f"{ncloud.network_url}/ports?device_id={a['id']}", headers=nh).json()["ports"]
    assert len(made) == 1 and made[0]["status"] == "ACTIVE" and made[0]["device_owner"].startswith("compute:")
    given = httpx.post(f"{ncloud.network_url}/ports", headers=nh, json={"port": {"network_id": net["id"]}}
                       ).json()["port"]
    b = active(boot([{"port": given["id"]}]).json()["server"]["id"])
    assert b["addresses"]["app"][0]["addr"] == given["fixed_ips"][0]["ip_address"]
    assert boot([{"port": given["id"]}]).status_code == 409  # in use by b
    assert boot([{"uuid": "0" * 36}]).status_code == 400
    c = active(boot("auto").json()["server"]["id"])  # the project's only network
    assert list(c["addresses"]) == ["app"]
    listed = httpx.get(f"{ncloud.compute_url}/servers?ip=10\\.70\\.0\\.10$", headers=ch).json()["servers"]
    assert [x["id"] for x in listed] == [a["id"]]
    for server in (a, b, c):
        assert httpx.delete(f"{ncloud.compute_url}/servers/{server['id']}", headers=ch).status_code == 204
    left = httpx.get(f"{ncloud.network_url}/ports?network_id={net['id']}", headers=nh).json()["ports"]
    assert [(p["id"], p["device_id"]) for p in left] == [(given["id"], "")]  # made ones gone, the given one free
    httpx.delete(f"{ncloud.network_url}/ports/{given['id']}", headers=nh)
    assert httpx.delete(f"{ncloud.network_url}/subnets/{sub['id']}", headers=nh).status_code == 204
    assert httpx.delete(f"{ncloud.network_url}/networks/{net['id']}", headers=nh).status_code == 204
