"""The Network API (first part): networks, subnets and ports with IP address management, through
openstacksdk, the CLI and plain HTTP, on a cloud that runs the network service.  The address and
quota races run on every database backend in test_races.py."""

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
    r = httpx.put(f"{url}/remove_router_interface", headers=headers, json={"subnet_id": sub.id})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "RouterInterfaceInUseByRoute"
    ncloud.cli("router", "set", "--no-route", router["id"], cloud="cumulo-demo")
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


def member_of_new_project(ncloud: Cloud) -> tuple[str, str]:
    """A fresh project with a member in it: (project id, member's token)."""
    name, password = unique("qp"), "s3cret-pass"
    project = json.loads(ncloud.cli("project", "create", name, "-f", "json").stdout)
    ncloud.cli("user", "create", "--password", password, "--project", name, name)
    ncloud.cli("role", "add", "--user", name, "--project", name, "member")
    return project["id"], ncloud.token(name, password, name)[0]


def test_quotas_are_set_by_admins_and_enforced(ncloud: Cloud) -> None:
    url = ncloud.network_url
    admin = {"X-Auth-Token": ncloud.token()[0]}
    project, token = member_of_new_project(ncloud)
    member = {"X-Auth-Token": token}
    defaults = httpx.get(f"{url}/quotas/{project}/default", headers=member).json()["quota"]
    assert defaults["network"] == 100 and defaults["port"] == 500 and defaults["security_group_rule"] == 100
    ncloud.cli("quota", "set", "--networks", "2", "--ports", "3", project)
    assert httpx.get(f"{url}/quotas/{project}", headers=member).json()["quota"]["network"] == 2
    assert project in [q["project_id"] for q in httpx.get(f"{url}/quotas", headers=admin).json()["quotas"]]
    for _ in range(2):
        assert httpx.post(f"{url}/networks", headers=member, json={"network": {}}).status_code == 201
    r = httpx.post(f"{url}/networks", headers=member, json={"network": {}})
    assert r.status_code == 409, r.text
    assert r.json()["NeutronError"]["type"] == "OverQuota"
    assert "Quota exceeded for resources: ['network']" in r.json()["NeutronError"]["message"]
    details = httpx.get(f"{url}/quotas/{project}/details", headers=member).json()["quota"]
    assert details["network"] == {"limit": 2, "used": 2, "reserved": 0}
    shown = json.loads(ncloud.cli("quota", "show", "--network", project, "-f", "json").stdout)
    assert any(row.get("Resource") == "networks" and row.get("Limit") == 2 for row in shown), shown
    # a bulk create over the limit makes nothing
    net = httpx.get(f"{url}/networks?project_id={project}", headers=member).json()["networks"][0]
    r = httpx.post(f"{url}/ports", headers=member, json={"ports": [{"network_id": net["id"]}] * 4})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "OverQuota"
    assert httpx.get(f"{url}/ports", headers=member).json()["ports"] == []
    # only an admin changes quotas; a member reads only its own project's
    assert httpx.put(f"{url}/quotas/{project}", headers=member, json={"quota": {"network": 50}}).status_code == 403
    assert httpx.get(f"{url}/quotas/{ncloud.token()[1]['project']['id']}", headers=member).status_code == 403
    assert httpx.delete(f"{url}/quotas/{project}", headers=member).status_code == 403
    # check_limit refuses a limit below what is used; bad values and unknown resources are 400s
    r = httpx.put(f"{url}/quotas/{project}", headers=admin, json={"quota": {"network": 1, "check_limit": True}})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "InvalidQuotaValue"
    for bad in ({"network": -5}, {"network": "many"}, {"volcano": 3}, {"network": True}):
        r = httpx.put(f"{url}/quotas/{project}", headers=admin, json={"quota": bad})
        assert r.status_code == 400 and "NeutronError" in r.json(), (bad, r.text)
    r = httpx.put(f"{url}/quotas/{project}", headers=admin, json={"quota": {"network": -1}})
    assert r.status_code == 200 and r.json()["quota"]["network"] == -1  # unlimited
    assert httpx.post(f"{url}/networks", headers=member, json={"network": {}}).status_code == 201
    ncloud.cli("quota", "delete", "--network", project)
    assert project not in [q["project_id"] for q in httpx.get(f"{url}/quotas", headers=admin).json()["quotas"]]
    assert httpx.get(f"{url}/quotas/{project}", headers=member).json()["quota"] == defaults
    r = httpx.delete(f"{url}/quotas/{project}", headers=admin)
    assert r.status_code == 404 and r.json()["NeutronError"]["type"] == "TenantQuotaNotFound"
    # router and security group quotas hold too
    httpx.put(f"{url}/quotas/{project}", headers=admin, json={"quota": {"router": 0, "security_group": 1}})
    r = httpx.post(f"{url}/routers", headers=member, json={"router": {"name": "r"}})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "OverQuota"
    r = httpx.post(f"{url}/security-groups", headers=member, json={"security_group": {"name": "web"}})
    assert r.status_code == 409  # the default group already takes the one allowed
    for n in httpx.get(f"{url}/networks?project_id={project}", headers=member).json()["networks"]:
        assert httpx.delete(f"{url}/networks/{n['id']}", headers=member).status_code == 204
    httpx.delete(f"{url}/quotas/{project}", headers=admin)


def test_tags_on_every_resource_and_tag_filters(ncloud: Cloud) -> None:
    url = ncloud.network_url
    headers = {"X-Auth-Token": ncloud.token("demo", ncloud.demo_password, "demo")[0]}
    cli = {"cloud": "cumulo-demo"}
    red = json.loads(ncloud.cli("network", "create", "--tag", "red", "--tag", "blue", unique("red"), "-f", "json",
                                **cli).stdout)
    green = json.loads(ncloud.cli("network", "create", unique("green"), "-f", "json", **cli).stdout)
    ncloud.cli("network", "set", "--tag", "green", "--tag", "blue", green["id"], **cli)

    def listed(*args: str) -> set[str]:
        rows = json.loads(ncloud.cli("network", "list", *args, "-f", "json", **cli).stdout)
        return {row["ID"] for row in rows} & {red["id"], green["id"]}

    assert listed("--tags", "red,blue") == {red["id"]}
    assert listed("--tags", "blue") == {red["id"], green["id"]}
    assert listed("--any-tags", "red,green") == {red["id"], green["id"]}
    assert listed("--not-tags", "green,blue") == {red["id"]}
    assert listed("--not-any-tags", "red") == {green["id"]}
    shown = httpx.get(f"{url}/networks/{green['id']}", headers=headers).json()["network"]
    assert sorted(shown["tags"]) == ["blue", "green"]
    # the tags API itself, on every kind of resource that has tags
    sub = httpx.post(f"{url}/subnets", headers=headers, json={"subnet": {
        "network_id": red["id"], "ip_version": 4, "cidr": "10.80.0.0/24"}}).json()["subnet"]
    port = httpx.post(f"{url}/ports", headers=headers, json={"port": {"network_id": red["id"], "tags": ["p"]}}
                      ).json()["port"]
    assert port["tags"] == ["p"]
    router = httpx.post(f"{url}/routers", headers=headers, json={"router": {"name": "tagged"}}).json()["router"]
    group = httpx.post(f"{url}/security-groups", headers=headers, json={"security_group": {"name": unique("t")}}
                       ).json()["security_group"]
    pool = httpx.post(f"{url}/subnetpools", headers=headers, json={"subnetpool": {
        "name": unique("tp"), "prefixes": ["10.81.0.0/16"]}}).json()["subnetpool"]
    for kind, item in (("networks", red), ("subnets", sub), ("ports", port), ("routers", router),
                       ("security-groups", group), ("subnetpools", pool)):
        base = f"{url}/{kind}/{item['id']}/tags"
        before = httpx.get(f"{url}/{kind}/{item['id']}", headers=headers).json()[kind[:-1].replace("-", "_")]
        assert httpx.put(f"{base}/alpha", headers=headers).status_code == 201, kind
        assert httpx.get(f"{base}/alpha", headers=headers).status_code == 204
        r = httpx.get(f"{base}/omega", headers=headers)
        assert r.status_code == 404 and r.json()["NeutronError"]["type"] == "TagNotFound"
        r = httpx.put(base, headers=headers, json={"tags": ["x", "y", "z", "x"]})
        assert r.status_code == 200 and sorted(r.json()["tags"]) == ["x", "y", "z"]
        assert httpx.delete(f"{base}/y", headers=headers).status_code == 204
        assert httpx.delete(f"{base}/y", headers=headers).status_code == 404
        assert sorted(httpx.get(base, headers=headers).json()["tags"]) == ["x", "z"]
        after = httpx.get(f"{url}/{kind}/{item['id']}", headers=headers).json()[kind[:-1].replace("-", "_")]
        assert after["revision_number"] > before["revision_number"] and sorted(after["tags"]) == ["x", "z"]
        assert httpx.delete(base, headers=headers).status_code == 204
        assert httpx.get(base, headers=headers).json()["tags"] == []
        assert httpx.put(base, headers=headers, json={"tags": ["a" * 256]}).status_code == 400
        assert httpx.put(base, headers=headers, json={"tags": "notalist"}).status_code == 400
    r = httpx.get(f"{url}/networks/{'0' * 36}/tags", headers=headers)
    assert r.status_code == 404 and r.json()["NeutronError"]["type"] == "NetworkNotFound"
    # an admin's network is not the member's to tag
    admin = {"X-Auth-Token": ncloud.token()[0]}
    theirs = httpx.post(f"{url}/networks", headers=admin, json={"network": {"shared": True}}).json()["network"]
    assert httpx.put(f"{url}/networks/{theirs['id']}/tags/mine", headers=headers).status_code == 403
    httpx.delete(f"{url}/networks/{theirs['id']}", headers=admin)
    httpx.delete(f"{url}/ports/{port['id']}", headers=headers)
    httpx.delete(f"{url}/routers/{router['id']}", headers=headers)
    httpx.delete(f"{url}/security-groups/{group['id']}", headers=headers)
    httpx.delete(f"{url}/subnetpools/{pool['id']}", headers=headers)
    for net in (red, green):
        assert httpx.delete(f"{url}/networks/{net['id']}", headers=headers).status_code == 204


def test_bulk_create_makes_all_or_none(ncloud: Cloud) -> None:
    url = ncloud.network_url
    headers = {"X-Auth-Token": ncloud.token("demo", ncloud.demo_password, "demo")[0]}
    r = httpx.post(f"{url}/networks", headers=headers, json={"networks": [{"name": unique("b1")},
                                                                          {"name": unique("b2")}]})
    assert r.status_code == 201 and len(r.json()["networks"]) == 2
    a, b = r.json()["networks"]
    r = httpx.post(f"{url}/subnets", headers=headers, json={"subnets": [
        {"network_id": a["id"], "ip_version": 4, "cidr": "10.85.0.0/24"},
        {"network_id": b["id"], "ip_version": 4, "cidr": "10.86.0.0/24"}]})
    assert r.status_code == 201 and [s["cidr"] for s in r.json()["subnets"]] == ["10.85.0.0/24", "10.86.0.0/24"]
    r = httpx.post(f"{url}/ports", headers=headers, json={"ports": [
        {"network_id": a["id"], "name": "one"}, {"network_id": a["id"], "name": "two"},
        {"network_id": b["id"], "name": "three", "fixed_ips": [{"ip_address": "10.86.0.20"}]}]})
    assert r.status_code == 201, r.text
    made = r.json()["ports"]
    assert [p["name"] for p in made] == ["one", "two", "three"] and made[2]["fixed_ips"][0]["ip_address"] == \
        "10.86.0.20"
    # one bad item (an address already taken) and none of them is made
    r = httpx.post(f"{url}/ports", headers=headers, json={"ports": [
        {"network_id": a["id"], "name": "four"}, {"network_id": b["id"], "fixed_ips": [{"ip_address": "10.86.0.20"}]}]})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "IpAddressAlreadyAllocated"
    names = {p["name"] for p in httpx.get(f"{url}/ports", headers=headers).json()["ports"]}
    assert "four" not in names and {"one", "two", "three"} <= names
    r = httpx.post(f"{url}/networks", headers=headers, json={"networks": [{"name": "ok"}, {"mtu": 5}]})
    assert r.status_code == 400
    assert "ok" not in {n["name"] for n in httpx.get(f"{url}/networks", headers=headers).json()["networks"]}
    for body in ({"ports": []}, {"ports": "x"}, {"ports": [1, 2]}):
        r = httpx.post(f"{url}/ports", headers=headers, json=body)
        assert r.status_code == 400 and "NeutronError" in r.json(), body
    for p in made:
        httpx.delete(f"{url}/ports/{p['id']}", headers=headers)
    for n in (a, b):
        assert httpx.delete(f"{url}/networks/{n['id']}", headers=headers).status_code == 204


def test_subnets_take_their_cidrs_from_subnet_pools(ncloud: Cloud) -> None:
    url = ncloud.network_url
    headers = {"X-Auth-Token": ncloud.token("demo", ncloud.demo_password, "demo")[0]}
    cli = {"cloud": "cumulo-demo"}
    pool = json.loads(ncloud.cli("subnet", "pool", "create", "--pool-prefix", "10.90.0.0/16", "--pool-prefix",
                                 "10.91.0.0/16", "--default-prefix-length", "24", "--min-prefix-length", "20",
                                 "--max-prefix-length", "28", unique("pool"), "-f", "json", **cli).stdout)
    assert pool["prefixes"] in (["10.90.0.0/15"], "10.90.0.0/15")  # adjacent prefixes merged
    assert pool["ip_version"] == 4 and pool["default_prefixlen"] == 24
    net = json.loads(ncloud.cli("network", "create", unique("pn"), "-f", "json", **cli).stdout)
    first = json.loads(ncloud.cli("subnet", "create", "--subnet-pool", pool["id"], "--network", net["id"],
                                  unique("s"), "-f", "json", **cli).stdout)
    assert first["cidr"] == "10.90.0.0/24" and first["subnetpool_id"] == pool["id"]
    assert first["gateway_ip"] == "10.90.0.1"
    small = json.loads(ncloud.cli("subnet", "create", "--subnet-pool", pool["id"], "--prefix-length", "26",
                                  "--network", net["id"], unique("s"), "-f", "json", **cli).stdout)
    assert small["cidr"] == "10.90.1.0/26"
    other = httpx.post(f"{url}/networks", headers=headers, json={"network": {}}).json()["network"]
    r = httpx.post(f"{url}/subnets", headers=headers, json={"subnet": {
        "network_id": other["id"], "ip_version": 4, "subnetpool_id": pool["id"]}})
    assert r.status_code == 201 and r.json()["subnet"]["cidr"] == "10.90.2.0/24"  # pools span networks
    explicit = httpx.post(f"{url}/subnets", headers=headers, json={"subnet": {
        "network_id": other["id"], "ip_version": 4, "subnetpool_id": pool["id"], "cidr": "10.91.5.0/24"}})
    assert explicit.status_code == 201 and explicit.json()["subnet"]["cidr"] == "10.91.5.0/24"
    bad = [({"cidr": "10.90.0.128/25"}, 409, "SubnetAllocationError"),  # taken
           ({"cidr": "10.99.0.0/24"}, 400, "SubnetAllocationError"),  # outside the pool
           ({"prefixlen": 30}, 400, "MaxPrefixSubnetAllocationError"),
           ({"prefixlen": 16}, 400, "MinPrefixSubnetAllocationError"),
           ({"ip_version": 6}, 400, "BadRequest")]
    for extra, status, kind in bad:
        r = httpx.post(f"{url}/subnets", headers=headers, json={"subnet": {
            "network_id": other["id"], "ip_version": 4, "subnetpool_id": pool["id"], **extra}})
        assert r.status_code == status and r.json()["NeutronError"]["type"] == kind, (extra, r.text)
    r = httpx.post(f"{url}/subnets", headers=headers, json={"subnet": {"network_id": other["id"], "ip_version": 4}})
    assert r.status_code == 400  # neither a cidr nor a pool
    # concurrent allocations never overlap: a /21 pool holds eight /24s
    tight = httpx.post(f"{url}/subnetpools", headers=headers, json={"subnetpool": {
        "name": unique("tight"), "prefixes": ["10.95.0.0/21"], "default_prefixlen": 24}}).json()["subnetpool"]
    nets = httpx.post(f"{url}/networks", headers=headers, json={"networks": [{} for _ in range(10)]}
                      ).json()["networks"]

    def carve(n: dict) -> httpx.Response:
        return httpx.post(f"{url}/subnets", headers=headers, timeout=60, json={"subnet": {
            "network_id": n["id"], "ip_version": 4, "subnetpool_id": tight["id"]}})

    with concurrent.futures.ThreadPoolExecutor(5) as workers:
        results = list(workers.map(carve, nets))
    cidrs = [r.json()["subnet"]["cidr"] for r in results if r.status_code == 201]
    assert sorted(cidrs) == [f"10.95.{i}.0/24" for i in range(8)], [r.text for r in results]
    assert {r.status_code for r in results} == {201, 409}
    # a pool in use stays; prefixes only grow; bounds are checked
    r = httpx.delete(f"{url}/subnetpools/{pool['id']}", headers=headers)
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "SubnetPoolInUse"
    r = httpx.put(f"{url}/subnetpools/{pool['id']}", headers=headers, json={"subnetpool": {
        "prefixes": ["10.90.0.0/16"]}})
    assert r.status_code == 400 and r.json()["NeutronError"]["type"] == "IllegalSubnetPoolPrefixUpdate"
    r = httpx.put(f"{url}/subnetpools/{pool['id']}", headers=headers, json={"subnetpool": {
        "prefixes": ["10.90.0.0/15", "10.200.0.0/16"], "name": "grown"}})
    assert r.status_code == 200 and r.json()["subnetpool"]["prefixes"] == ["10.90.0.0/15", "10.200.0.0/16"]
    assert r.json()["subnetpool"]["revision_number"] == pool["revision_number"] + 1
    r = httpx.post(f"{url}/subnetpools", headers=headers, json={"subnetpool": {
        "prefixes": ["10.96.0.0/16"], "min_prefixlen": 24, "default_prefixlen": 20}})
    assert r.status_code == 400 and r.json()["NeutronError"]["type"] == "IllegalSubnetPoolPrefixBounds"
    r = httpx.post(f"{url}/subnetpools", headers=headers, json={"subnetpool": {"prefixes": ["10.0.0.0/8", "fd00::/8"]}})
    assert r.status_code == 400
    r = httpx.post(f"{url}/subnetpools", headers=headers, json={"subnetpool": {"prefixes": ["10.97.0.0/16"],
                                                                                "shared": True}})
    assert r.status_code == 403
    listed = json.loads(ncloud.cli("subnet", "pool", "list", "-f", "json", **cli).stdout)
    assert {pool["id"], tight["id"]} <= {p["ID"] for p in listed}
    for n in [net, other, *nets]:
        assert httpx.delete(f"{url}/networks/{n['id']}", headers=headers).status_code == 204
    ncloud.cli("subnet", "pool", "delete", pool["id"], **cli)
    assert httpx.delete(f"{url}/subnetpools/{tight['id']}", headers=headers).status_code == 204
    assert httpx.get(f"{url}/subnetpools/{pool['id']}", headers=headers).status_code == 404


def test_router_routes_update_clear_and_atomic_changes(ncloud: Cloud) -> None:
    import time

    url = ncloud.network_url
    headers = {"X-Auth-Token": ncloud.token("demo", ncloud.demo_password, "demo")[0]}
    cli = {"cloud": "cumulo-demo"}
    net = httpx.post(f"{url}/networks", headers=headers, json={"network": {}}).json()["network"]
    sub = httpx.post(f"{url}/subnets", headers=headers, json={"subnet": {
        "network_id": net["id"], "ip_version": 4, "cidr": "10.110.0.0/24"}}).json()["subnet"]
    router = httpx.post(f"{url}/routers", headers=headers, json={"router": {"name": unique("rr")}}).json()["router"]
    rurl = f"{url}/routers/{router['id']}"
    assert httpx.put(f"{rurl}/add_router_interface", headers=headers, json={"subnet_id": sub["id"]}
                     ).status_code == 200
    revision = httpx.get(rurl, headers=headers).json()["router"]["revision_number"]
    assert revision > router["revision_number"]
    routes = [{"destination": "10.111.0.0/24", "nexthop": "10.110.0.5"},
              {"destination": "10.112.0.0/24", "nexthop": "10.110.0.6"}]
    before = httpx.get(rurl, headers=headers).json()["router"]["updated_at"]
    time.sleep(1.1)  # pacing, not synchronization: updated_at has a resolution of seconds
    r = httpx.put(rurl, headers=headers, json={"router": {"routes": routes}})
    assert r.status_code == 200 and r.json()["router"]["routes"] == routes
    assert r.json()["router"]["revision_number"] == revision + 1
    assert r.json()["router"]["updated_at"] > before  # the update moved it on
    r = httpx.put(f"{rurl}/remove_router_interface", headers=headers, json={"subnet_id": sub["id"]})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "RouterInterfaceInUseByRoute"
    r = httpx.put(rurl, headers=headers, json={"router": {"routes": None}})  # tempest's way of clearing them
    assert r.status_code == 200 and r.json()["router"]["routes"] == []
    assert httpx.get(rurl, headers=headers).json()["router"]["routes"] == []
    httpx.put(rurl, headers=headers, json={"router": {"routes": routes}})
    assert httpx.put(rurl, headers=headers, json={"router": {"routes": []}}).json()["router"]["routes"] == []
    # extraroute-atomic, through the CLI
    ncloud.cli("router", "add", "route", "--route", "destination=10.120.0.0/24,gateway=10.110.0.7",
               "--route", "destination=10.121.0.0/24,gateway=10.110.0.8", router["id"], **cli)
    ncloud.cli("router", "add", "route", "--route", "destination=10.120.0.0/24,gateway=10.110.0.7", router["id"],
               **cli)  # already there: kept once
    shown = httpx.get(rurl, headers=headers).json()["router"]
    assert shown["routes"] == [{"destination": "10.120.0.0/24", "nexthop": "10.110.0.7"},
                               {"destination": "10.121.0.0/24", "nexthop": "10.110.0.8"}]
    ncloud.cli("router", "remove", "route", "--route", "destination=10.120.0.0/24,gateway=10.110.0.7",
               router["id"], **cli)
    r = httpx.put(f"{rurl}/add_extraroutes", headers=headers, json={"router": {"routes": [
        {"destination": "10.122.0.0/24", "nexthop": "192.168.7.1"}]}})
    assert r.status_code == 400 and r.json()["NeutronError"]["type"] == "InvalidRoutes"
    r = httpx.put(f"{rurl}/remove_extraroutes", headers=headers, json={"router": {"routes": [
        {"destination": "10.121.0.0/24", "nexthop": "10.110.0.8"}]}})
    assert r.status_code == 200 and r.json()["router"]["routes"] == []
    # every resource's revision goes up on each update
    for kind, item in (("networks", net), ("subnets", sub)):
        one = kind[:-1]
        before = httpx.get(f"{url}/{kind}/{item['id']}", headers=headers).json()[one]["revision_number"]
        r = httpx.put(f"{url}/{kind}/{item['id']}", headers=headers, json={one: {"description": "changed"}})
        assert r.json()[one]["revision_number"] == before + 1
    group = httpx.post(f"{url}/security-groups", headers=headers, json={"security_group": {"name": unique("rev")}}
                       ).json()["security_group"]
    httpx.post(f"{url}/security-group-rules", headers=headers, json={"security_group_rule": {
        "security_group_id": group["id"], "direction": "ingress", "protocol": "tcp", "port_range_min": 22,
        "port_range_max": 22}})
    shown = httpx.get(f"{url}/security-groups/{group['id']}", headers=headers).json()["security_group"]
    assert shown["revision_number"] > group["revision_number"]
    httpx.delete(f"{url}/security-groups/{group['id']}", headers=headers)
    assert httpx.put(f"{rurl}/remove_router_interface", headers=headers, json={"subnet_id": sub["id"]}
                     ).status_code == 200
    assert httpx.delete(rurl, headers=headers).status_code == 204
    assert httpx.delete(f"{url}/networks/{net['id']}", headers=headers).status_code == 204


def test_junk_bodies_get_neutron_faults_never_500(ncloud: Cloud) -> None:
    url = ncloud.network_url
    headers = {"X-Auth-Token": ncloud.token()[0]}
    net = httpx.post(f"{url}/networks", headers=headers, json={"network": {}}).json()["network"]
    router = httpx.post(f"{url}/routers", headers=headers, json={"router": {}}).json()["router"]
    ext = httpx.post(f"{url}/networks", headers=headers, json={"network": {"router:external": True}}).json()["network"]
    httpx.post(f"{url}/subnets", headers=headers, json={"subnet": {"network_id": ext["id"], "cidr": "172.31.0.0/24"}})
    junk: list[object] = [[], "x", 7, None, {"wrong": {}}, {"network": []}, {"port": "x"}, {"subnet": 3},
                          {"router": []}, {"floatingip": "x"}, {"security_group": []}, {"subnetpool": 1},
                          {"quota": []}, {"security_group_rule": []}, {"tags": 5}]
    targets = [("POST", "networks"), ("POST", "subnets"), ("POST", "ports"), ("POST", "routers"),
               ("POST", "floatingips"), ("POST", "security-groups"), ("POST", "security-group-rules"),
               ("POST", "subnetpools"), ("PUT", f"networks/{net['id']}"), ("PUT", f"routers/{router['id']}"),
               ("PUT", f"routers/{router['id']}/add_router_interface"),
               ("PUT", f"routers/{router['id']}/add_extraroutes"), ("PUT", f"quotas/{net['project_id']}"),
               ("PUT", f"networks/{net['id']}/tags")]
    for method, path in targets:
        for body in junk:
            r = httpx.request(method, f"{url}/{path}", headers=headers, json=body)
            assert 400 <= r.status_code < 500 and "NeutronError" in r.json(), (method, path, body, r.text)
    odd = [("networks", {"network": {"provider:network_type": "vxlan", "provider:segmentation_id": "abc"}}),
           ("networks", {"network": {"availability_zone_hints": "nova"}}),
           ("ports", {"port": {"network_id": net["id"], "fixed_ips": [{"ip_address": "not-an-ip"}]}}),
           ("subnets", {"subnet": {"network_id": net["id"], "cidr": "10.130.0.0/24", "host_routes": ["x"]}}),
           ("subnets", {"subnet": {"network_id": net["id"], "cidr": "10.130.0.0/24", "allocation_pools": 5}}),
           ("subnets", {"subnet": {"network_id": net["id"], "subnetpool_id": "nope"}}),
           ("routers", {"router": {"admin_state_up": "yes"}}),
           ("security-groups", {"security_group": {"name": "s", "stateful": "no"}}),
           ("floatingips", {"floatingip": {"floating_network_id": net["id"]}}),
           ("floatingips", {"floatingip": {"floating_network_id": ext["id"], "floating_ip_address": "fd00::/64"}}),
           ("floatingips", {"floatingip": {"floating_network_id": ext["id"], "port_id": ["x"]}}),
           ("ports", {"port": {"network_id": net["id"], "fixed_ips": [{"subnet_id": ["x"]}]}}),
           ("networks", {"network": {"provider:network_type": "flat", "provider:physical_network": [1]}})]
    for kind, body in odd:
        r = httpx.post(f"{url}/{kind}", headers=headers, json=body)
        assert 400 <= r.status_code < 500 and "NeutronError" in r.json(), (kind, body, r.text)
    seg = httpx.post(f"{url}/networks", headers=headers, json={"network": {"provider:network_type": "vxlan",
                                                                           "provider:segmentation_id": 4242}})
    r = httpx.post(f"{url}/networks", headers=headers, json={"network": {"provider:network_type": "vxlan",
                                                                         "provider:segmentation_id": 4242}})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "TunnelIdInUse"
    httpx.delete(f"{url}/networks/{seg.json()['network']['id']}", headers=headers)
    httpx.delete(f"{url}/routers/{router['id']}", headers=headers)
    assert httpx.get(f"{url}/floatingips?floating_network_id={ext['id']}", headers=headers).json()["floatingips"] == []
    for n in (net, ext):
        assert httpx.delete(f"{url}/networks/{n['id']}", headers=headers).status_code == 204


def test_deleting_a_group_removes_the_rules_that_name_it(ncloud: Cloud) -> None:
    token, _ = ncloud.token("demo", ncloud.demo_password, "demo")
    headers = {"X-Auth-Token": token}
    url = ncloud.network_url

    def group(name: str) -> dict:
        r = httpx.post(f"{url}/security-groups", headers=headers, json={"security_group": {"name": name}})
        assert r.status_code == 201, r.text
        return r.json()["security_group"]

    app, db = group(unique("app")), group(unique("db"))
    rule = httpx.post(f"{url}/security-group-rules", headers=headers, json={"security_group_rule": {
        "security_group_id": db["id"], "direction": "ingress", "protocol": "tcp", "port_range_min": 5432,
        "port_range_max": 5432, "remote_group_id": app["id"]}}).json()["security_group_rule"]
    assert httpx.delete(f"{url}/security-groups/{app['id']}", headers=headers).status_code == 204
    assert httpx.get(f"{url}/security-group-rules/{rule['id']}", headers=headers).status_code == 404
    shown = httpx.get(f"{url}/security-groups/{db['id']}", headers=headers).json()["security_group"]
    rules = shown["security_group_rules"]
    assert rule["id"] not in [r["id"] for r in rules]
    assert httpx.delete(f"{url}/security-groups/{db['id']}", headers=headers).status_code == 204


def test_slaac_ports_get_their_eui64_address(ncloud: Cloud) -> None:
    token, _ = ncloud.token("demo", ncloud.demo_password, "demo")
    headers = {"X-Auth-Token": token}
    url = ncloud.network_url
    net = httpx.post(f"{url}/networks", headers=headers, json={"network": {"name": unique("v6")}}).json()["network"]
    r = httpx.post(f"{url}/subnets", headers=headers, json={"subnet": {
        "network_id": net["id"], "cidr": "2001:db8:1::/80", "ip_version": 6, "ipv6_address_mode": "slaac",
        "ipv6_ra_mode": "slaac"}})
    assert r.status_code == 400 and "/64" in r.json()["NeutronError"]["message"]
    r = httpx.post(f"{url}/subnets", headers=headers, json={"subnet": {
        "network_id": net["id"], "cidr": "2001:db8:1::/64", "ip_version": 6, "ipv6_address_mode": "slaac",
        "ipv6_ra_mode": "dhcpv6-stateful"}})
    assert r.status_code == 400 and "must be the same" in r.json()["NeutronError"]["message"]
    httpx.post(f"{url}/subnets", headers=headers, json={"subnet": {
        "network_id": net["id"], "cidr": "2001:db8:1::/64", "ip_version": 6, "ipv6_address_mode": "slaac",
        "ipv6_ra_mode": "slaac"}}).raise_for_status()
    port = httpx.post(f"{url}/ports", headers=headers, json={"port": {
        "network_id": net["id"], "mac_address": "fa:16:3e:12:34:56"}}).json()["port"]
    assert [ip["ip_address"] for ip in port["fixed_ips"]] == ["2001:db8:1:0:f816:3eff:fe12:3456"]
    httpx.delete(f"{url}/ports/{port['id']}", headers=headers).raise_for_status()
    httpx.delete(f"{url}/networks/{net['id']}", headers=headers).raise_for_status()
