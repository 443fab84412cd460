"""Network API behaviours matched to Neutron's: the ``ip_address_substr`` port filter, the default
security group's name, auto-addressed IPv6 subnets deleted under their ports, external networks
deleted with their idle floating IPs, the admin-only ``distributed``/``ha`` router attributes and
the /v2.0/ document -- through plain HTTP with personas and the openstack CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.functional.conftest import Cloud, Persona, make_people, start_cloud, stop_cloud, unique


@pytest.fixture(scope="module")
def fcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("net-fixes"), "sqlite", {
        "CUMULO_SERVICES": "identity,image,compute,placement,network", "CUMULO_COMPUTE__FAKE_NODES": "1"})
    yield c
    stop_cloud(c)


@pytest.fixture(scope="module")
def people(fcloud: Cloud) -> dict[str, Persona]:
    return make_people(fcloud, "netfix")


def call(cloud: Cloud, token: str, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{cloud.network_url}{path}", json=body, headers={"X-Auth-Token": token},
                         timeout=30)


def made(cloud: Cloud, token: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    r = call(cloud, token, "POST", f"/{kind.replace('_', '-')}s", {kind: body})
    assert r.status_code == 201, r.text
    return r.json()[kind]  # type: ignore[no-any-return]


def error(r: httpx.Response) -> str:
    return str(r.json()["NeutronError"]["type"])


def test_port_list_filters_by_address_substring(fcloud: Cloud) -> None:
    admin = fcloud.token()[0]
    net = made(fcloud, admin, "network", {"name": unique("substr")})
    v4 = made(fcloud, admin, "subnet", {"network_id": net["id"], "ip_version": 4, "cidr": "10.31.0.0/24"})
    v6 = made(fcloud, admin, "subnet", {"network_id": net["id"], "ip_version": 6, "cidr": "fd31::/64"})
    ports = {ip: made(fcloud, admin, "port", {"network_id": net["id"], "fixed_ips": [
        {"subnet_id": v4["id"], "ip_address": ip}, {"subnet_id": v6["id"], "ip_address": f"fd31::{ip[-2:]}"}]})["id"]
        for ip in ("10.31.0.17", "10.31.0.18", "10.31.0.27")}

    def listed(*parts: str) -> set[str]:
        query = "&".join(f"fixed_ips={p}" for p in parts)
        r = call(fcloud, admin, "GET", f"/ports?network_id={net['id']}&{query}")
        assert r.status_code == 200, r.text
        return {p["id"] for p in r.json()["ports"]}

    # the CLI's --fixed-ip ip-substring= sends fixed_ips=ip_address_substr=
    shown = json.loads(fcloud.cli("port", "list", "--network", net["id"], "--fixed-ip", "ip-substring=10.31.0.1",
                                  "-f", "json").stdout)
    assert {p["ID"] for p in shown} == {ports["10.31.0.17"], ports["10.31.0.18"]}
    assert listed("ip_address_substr=0.27") == {ports["10.31.0.27"]}
    assert listed("ip_address_substr=FD31::1") == {ports["10.31.0.17"], ports["10.31.0.18"]}  # any case
    assert listed("ip_address_substr=10.31.0.2", "ip_address_substr=::18") == {ports["10.31.0.27"],
                                                                               ports["10.31.0.18"]}
    # each key holds for some address of the port, not necessarily the same one (as Neutron)
    assert listed("ip_address_substr=0.17", "ip_address=fd31::17") == {ports["10.31.0.17"]}
    assert listed("ip_address_substr=0.17", f"subnet_id={v6['id']}") == {ports["10.31.0.17"]}
    assert listed("ip_address_substr=0.17", "ip_address=fd31::18") == set()
    assert listed("ip_address_substr=10.32.") == set()
    assert listed("ip_address_substr=%") == set()  # a LIKE wildcard is only a character here
    # with a filter only the views answer (a tag), the substring is still applied
    r = call(fcloud, admin, "GET", f"/ports?network_id={net['id']}&fixed_ips=ip_address_substr=0.1&tags-any=none")
    assert r.status_code == 200 and r.json()["ports"] == []
    for bad in ("ip_adress=10.31.0.17", "ip_address_substr"):
        r = call(fcloud, admin, "GET", f"/ports?fixed_ips={bad}")
        assert r.status_code == 400 and bad in r.json()["NeutronError"]["message"], r.text
    for port_id in ports.values():
        assert call(fcloud, admin, "DELETE", f"/ports/{port_id}").status_code == 204
    assert call(fcloud, admin, "DELETE", f"/networks/{net['id']}").status_code == 204


def test_default_security_group_keeps_its_name(fcloud: Cloud, people: dict[str, Persona]) -> None:
    member, reader, other = people["member"].token, people["reader"].token, people["other"].token
    admin = fcloud.token()[0]
    groups = call(fcloud, member, "GET", "/security-groups?name=default").json()["security_groups"]
    default = [g for g in groups if g["project_id"] == people["member"].project_id][0]
    mine = made(fcloud, member, "security_group", {"name": unique("web")})
    for token in (member, admin):
        for name in ("default", "Default"):
            r = call(fcloud, token, "POST", "/security-groups", {"security_group": {"name": name}})
            assert r.status_code == 409 and error(r) == "SecurityGroupDefaultAlreadyExists", r.text
            r = call(fcloud, token, "PUT", f"/security-groups/{mine['id']}", {"security_group": {"name": name}})
            assert r.status_code == 409 and error(r) == "SecurityGroupDefaultAlreadyExists", r.text
        r = call(fcloud, token, "PUT", f"/security-groups/{default['id']}", {"security_group": {"name": "renamed"}})
        assert r.status_code == 409 and error(r) == "SecurityGroupCannotUpdateDefault", r.text
    # its description may change; another group's name too
    r = call(fcloud, member, "PUT", f"/security-groups/{default['id']}", {"security_group": {"description": "d"}})
    assert r.status_code == 200 and r.json()["security_group"]["name"] == "default"
    r = call(fcloud, member, "PUT", f"/security-groups/{mine['id']}", {"security_group": {"name": "web2"}})
    assert r.status_code == 200 and r.json()["security_group"]["name"] == "web2"
    # a reader may not try; another project does not see the group
    assert call(fcloud, reader, "PUT", f"/security-groups/{default['id']}",
                {"security_group": {"name": "x"}}).status_code == 403
    assert call(fcloud, other, "PUT", f"/security-groups/{default['id']}",
                {"security_group": {"name": "x"}}).status_code == 404
    assert call(fcloud, member, "GET", f"/security-groups/{default['id']}").json()["security_group"]["name"] == \
        "default"
    assert call(fcloud, member, "DELETE", f"/security-groups/{mine['id']}").status_code == 204


@pytest.mark.parametrize("mode", ["slaac", "dhcpv6-stateless"])
def test_auto_addressed_subnet_goes_with_its_addresses(fcloud: Cloud, people: dict[str, Persona], mode: str) -> None:
    member = people["member"].token
    net = made(fcloud, member, "network", {"name": unique(mode)})
    v4 = made(fcloud, member, "subnet", {"network_id": net["id"], "ip_version": 4, "cidr": "10.33.0.0/24"})
    v6 = made(fcloud, member, "subnet", {"network_id": net["id"], "ip_version": 6, "cidr": "fd33::/64",
                                         "ipv6_ra_mode": mode, "ipv6_address_mode": mode})
    port = made(fcloud, member, "port", {"network_id": net["id"]})
    assert {f["subnet_id"] for f in port["fixed_ips"]} == {v4["id"], v6["id"]}
    # the IPv4 subnet is still refused while the port holds an address from it
    r = call(fcloud, member, "DELETE", f"/subnets/{v4['id']}")
    assert r.status_code == 409 and error(r) == "SubnetInUse"
    assert call(fcloud, member, "DELETE", f"/subnets/{v6['id']}").status_code == 204
    shown = call(fcloud, member, "GET", f"/ports/{port['id']}").json()["port"]
    assert [f["subnet_id"] for f in shown["fixed_ips"]] == [v4["id"]]
    assert call(fcloud, member, "GET", f"/subnets/{v6['id']}").status_code == 404
    assert call(fcloud, member, "DELETE", f"/ports/{port['id']}").status_code == 204
    assert call(fcloud, member, "DELETE", f"/networks/{net['id']}").status_code == 204


def test_stateful_and_routed_v6_subnets_stay_while_used(fcloud: Cloud, people: dict[str, Persona]) -> None:
    member = people["member"].token
    net = made(fcloud, member, "network", {"name": unique("v6used")})
    stateful = made(fcloud, member, "subnet", {"network_id": net["id"], "ip_version": 6, "cidr": "fd34::/64",
                                               "ipv6_ra_mode": "dhcpv6-stateful",
                                               "ipv6_address_mode": "dhcpv6-stateful"})
    slaac = made(fcloud, member, "subnet", {"network_id": net["id"], "ip_version": 6, "cidr": "fd35::/64",
                                            "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"})
    port = made(fcloud, member, "port", {"network_id": net["id"], "fixed_ips": [{"subnet_id": stateful["id"]}]})
    r = call(fcloud, member, "DELETE", f"/subnets/{stateful['id']}")
    assert r.status_code == 409 and error(r) == "SubnetInUse"
    router = made(fcloud, member, "router", {"name": unique("r6")})
    assert call(fcloud, member, "PUT", f"/routers/{router['id']}/add_router_interface",
                {"subnet_id": slaac["id"]}).status_code == 200
    r = call(fcloud, member, "DELETE", f"/subnets/{slaac['id']}")  # a router's interface keeps even SLAAC
    assert r.status_code == 409 and error(r) == "SubnetInUse"
    assert call(fcloud, member, "PUT", f"/routers/{router['id']}/remove_router_interface",
                {"subnet_id": slaac["id"]}).status_code == 200
    assert call(fcloud, member, "DELETE", f"/subnets/{slaac['id']}").status_code == 204
    for path in (f"/ports/{port['id']}", f"/routers/{router['id']}", f"/networks/{net['id']}"):
        assert call(fcloud, member, "DELETE", path).status_code == 204


def test_external_network_deleted_with_its_idle_floating_ips(fcloud: Cloud, people: dict[str, Persona]) -> None:
    admin, member = fcloud.token()[0], people["member"].token
    ext = made(fcloud, admin, "network", {"name": unique("public"), "router:external": True})
    made(fcloud, admin, "subnet", {"network_id": ext["id"], "ip_version": 4, "cidr": "172.31.9.0/24"})
    fips = [made(fcloud, token, "floatingip", {"floating_network_id": ext["id"]}) for token in (admin, member)]
    # a router's gateway is a port in use: the network (and its floating IPs) stay
    router = made(fcloud, member, "router", {"name": unique("gw"), "external_gateway_info": {"network_id": ext["id"]}})
    r = call(fcloud, admin, "DELETE", f"/networks/{ext['id']}")
    assert r.status_code == 409 and error(r) == "NetworkInUse"
    assert call(fcloud, member, "GET", f"/floatingips/{fips[1]['id']}").status_code == 200
    assert call(fcloud, member, "DELETE", f"/routers/{router['id']}").status_code == 204
    assert call(fcloud, admin, "DELETE", f"/networks/{ext['id']}").status_code == 204
    for fip, token in zip(fips, (admin, member), strict=True):
        assert call(fcloud, token, "GET", f"/floatingips/{fip['id']}").status_code == 404
    listed = call(fcloud, admin, "GET", f"/ports?network_id={ext['id']}").json()["ports"]
    assert listed == []


def test_router_distributed_and_ha_are_the_admins(fcloud: Cloud, people: dict[str, Persona]) -> None:
    admin = fcloud.token()[0]
    member, reader, other = people["member"], people["reader"].token, people["other"].token
    aliases = [e["alias"] for e in call(fcloud, member.token, "GET", "/extensions").json()["extensions"]]
    assert "dvr" in aliases
    dvr = call(fcloud, member.token, "GET", "/extensions/dvr").json()["extension"]
    assert dvr["name"] == "Distributed Virtual Router" and set(dvr) == {"alias", "name", "description", "updated",
                                                                           "links"}
    # a member may not give either attribute, not even false (Neutron's create_router:distributed)
    for key in ("distributed", "ha"):
        for value in (True, False):
            r = call(fcloud, member.token, "POST", "/routers", {"router": {"name": "x", key: value}})
            assert r.status_code == 403 and f"create_router:{key}" in r.text, r.text
    # the admin makes a centralized router in the member's project; true is refused: routers here are
    # centralized (the CLI's --distributed)
    router = made(fcloud, admin, "router", {"name": unique("cvr"), "distributed": False, "ha": False,
                                            "admin_state_up": False, "project_id": member.project_id})
    assert router["distributed"] is False and router["ha"] is False
    cli = fcloud.cli("router", "create", "--distributed", unique("dvr"), check=False)
    assert cli.returncode != 0 and "distributed" in cli.stderr
    shown = json.loads(fcloud.cli("router", "create", "--centralized", unique("cvr"), "-f", "json").stdout)
    assert shown["distributed"] is False
    fcloud.cli("router", "delete", shown["id"])
    r = call(fcloud, admin, "PUT", f"/routers/{router['id']}", {"router": {"distributed": True}})
    assert r.status_code == 400 and "centralized" in r.json()["NeutronError"]["message"]
    r = call(fcloud, admin, "PUT", f"/routers/{router['id']}", {"router": {"distributed": "yes"}})
    assert r.status_code == 400
    r = call(fcloud, admin, "PUT", f"/routers/{router['id']}", {"router": {"distributed": False}})
    assert r.status_code == 200 and r.json()["router"]["distributed"] is False
    # the owner's member updates the router but not the attribute, and neither it nor the reader sees it
    r = call(fcloud, member.token, "PUT", f"/routers/{router['id']}", {"router": {"distributed": False}})
    assert r.status_code == 403 and "update_router:distributed" in r.text
    r = call(fcloud, member.token, "PUT", f"/routers/{router['id']}", {"router": {"name": "renamed"}})
    assert r.status_code == 200 and "distributed" not in r.json()["router"] and "ha" not in r.json()["router"]
    for token in (member.token, reader):
        one = call(fcloud, token, "GET", f"/routers/{router['id']}").json()["router"]
        assert one["name"] == "renamed" and "distributed" not in one and "ha" not in one
        listed = call(fcloud, token, "GET", "/routers").json()["routers"]
        assert router["id"] in [x["id"] for x in listed] and all("distributed" not in x for x in listed)
    assert call(fcloud, admin, "GET", f"/routers/{router['id']}").json()["router"]["distributed"] is False
    assert call(fcloud, other, "GET", f"/routers/{router['id']}").status_code == 404
    assert call(fcloud, other, "PUT", f"/routers/{router['id']}", {"router": {"distributed": False}}
                ).status_code == 404
    assert call(fcloud, member.token, "DELETE", f"/routers/{router['id']}").status_code == 204


def test_version_details_name_the_core_resources(fcloud: Cloud, people: dict[str, Persona]) -> None:
    r = call(fcloud, people["reader"].token, "GET", "/")
    assert r.status_code == 200, r.text
    resources = {x["name"]: x for x in r.json()["resources"]}
    assert set(resources) == {"network", "subnet", "subnetpool", "port"}
    assert resources["port"]["collection"] == "ports"
    assert resources["port"]["links"] == [{"rel": "self", "href": f"{fcloud.network_url}/ports"}]
    assert httpx.get(f"{fcloud.network_url}/").status_code == 401


def test_a_refused_gateway_change_leaves_the_routers_gateway_as_it_was(fcloud: Cloud) -> None:
    admin = fcloud.token()[0]
    ext = made(fcloud, admin, "network", {"name": unique("gw-ext"), "router:external": True})
    made(fcloud, admin, "subnet", {"network_id": ext["id"], "ip_version": 4, "cidr": "10.33.0.0/24"})
    inner = made(fcloud, admin, "network", {"name": unique("gw-inner")})
    router = made(fcloud, admin, "router", {"name": unique("gw"), "external_gateway_info": {"network_id": ext["id"]}})
    before = router["external_gateway_info"]
    r = call(fcloud, admin, "PUT", f"/routers/{router['id']}",
             {"router": {"external_gateway_info": {"network_id": inner["id"]}}})
    assert r.status_code == 400 and "not external" in r.json()["NeutronError"]["message"], r.text
    after = call(fcloud, admin, "GET", f"/routers/{router['id']}").json()["router"]["external_gateway_info"]
    assert after == before
    gw_ports = call(fcloud, admin, "GET", f"/ports?device_id={router['id']}&device_owner=network:router_gateway")
    assert [p["network_id"] for p in gw_ports.json()["ports"]] == [ext["id"]]
    assert call(fcloud, admin, "DELETE", f"/routers/{router['id']}").status_code == 204
