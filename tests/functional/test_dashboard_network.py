"""The dashboard's network pages on one SQLite cloud (Neutron's API without the dataplane, one fake
node): networks and subnets, routers, security groups and rules, floating IPs on a server's port,
and the topology picture; every form checked through the API, Neutron's refusals shown beside
the field with 400, and each persona (reader, member, another project's member, admin)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.functional.conftest import Cloud, identity_admin, start_cloud, stop_cloud, unique, wait_for
from tests.functional.dashboard_helpers import Browser


@dataclass
class User:
    name: str
    password: str
    project: str
    project_id: str
    token: str


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("dash-net"), "sqlite", {
        "CUMULO_SERVICES": "identity,image,compute,placement,network,dashboard", "CUMULO_COMPUTE__FAKE_NODES": "1",
        "CUMULO_NETWORK__BOOTSTRAP": "true"})
    yield c
    stop_cloud(c)


@pytest.fixture(scope="module")
def people(cloud: Cloud) -> dict[str, User]:
    """P's member and reader, Q's member (``other``) and the cloud's admin, each with a password."""
    v3 = identity_admin(cloud)
    projects = {k: v3("POST", "/projects", {"project": {"name": unique(f"dn-{k}"), "domain_id": "default"}})["project"]
                for k in ("P", "Q")}
    out = {"admin": User("admin", cloud.admin_password, "admin", "", cloud.token()[0])}
    for name, key, role in (("member", "P", "member"), ("reader", "P", "reader"), ("other", "Q", "member")):
        role_id = v3("GET", f"/roles?name={role}")["roles"][0]["id"]
        user_name, password = unique(f"dn-{name}"), uuid.uuid4().hex
        user = v3("POST", "/users", {"user": {"name": user_name, "password": password, "domain_id": "default"}})["user"]
        project = projects[key]
        v3("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{role_id}")
        out[name] = User(user_name, password, project["name"], project["id"],
                         cloud.token(user_name, password, project["name"])[0])
    return out


@pytest.fixture(scope="module")
def browsers(cloud: Cloud, people: dict[str, User]) -> Iterator[dict[str, Browser]]:
    out = {}
    for name, u in people.items():
        b = Browser(cloud)
        b.login(u.name, u.password, u.project)
        out[name] = b
    yield out
    for b in out.values():
        b.close()


def neutron(cloud: Cloud, token: str, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
    return httpx.request(method, f"{cloud.network_url}{path}", json=body, params=params or None,
                         headers={"X-Auth-Token": token}, timeout=30)


def ok(r: httpx.Response) -> Any:
    assert r.status_code < 300, r.text
    return r.json() if r.content else None


def field_error(page: str, field: str) -> str:
    m = re.search(rf'data-field="{field}">(.*?)</', page, re.S)
    assert m, f"no error beside {field}:\n{page[:3000]}"
    return m.group(1).strip()


def neutron_words(cloud: Cloud, token: str, method: str, path: str, body: Any) -> str:
    """The message Neutron itself gives for a refused request, HTML-escaped as a page shows it."""
    r = neutron(cloud, token, method, path, body)
    assert r.status_code >= 400, r.text
    message = r.json()["NeutronError"]["message"]
    return message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;").replace(
        '"', "&#34;")


def public_network(cloud: Cloud, token: str) -> dict[str, Any]:
    return ok(neutron(cloud, token, "GET", "/networks", **{"router:external": "true", "name": "public"}))["networks"][0]


@pytest.fixture(scope="module")
def member_network(cloud: Cloud, people: dict[str, User], browsers: dict[str, Browser]) -> dict[str, Any]:
    """A network with a first subnet made by P's member through the create form."""
    b, name = browsers["member"], unique("dnet")
    b.page("/project/networks/create")
    r = b.post("/project/networks/create", {"name": name, "admin_state_up": "on", "subnet_name": "first",
                                            "cidr": "10.60.0.0/24", "ip_version": "4", "enable_dhcp": "on",
                                            "dns_nameservers": "192.0.2.53, 192.0.2.54"})
    assert r.status_code == 303, r.text[:2000]
    net = ok(neutron(cloud, people["member"].token, "GET", "/networks", name=name))["networks"][0]
    assert r.headers["location"] == f"/project/networks/{net['id']}"
    assert "created" in b.flash(r)
    return net


def test_network_create_detail_subnets_and_delete(cloud: Cloud, people: dict[str, User],
                                                  browsers: dict[str, Browser],
                                                  member_network: dict[str, Any]) -> None:
    b, token, net = browsers["member"], people["member"].token, member_network
    subnets = ok(neutron(cloud, token, "GET", "/subnets", network_id=net["id"]))["subnets"]
    assert [(s["cidr"], s["enable_dhcp"], s["dns_nameservers"], s["name"]) for s in subnets] == [
        ("10.60.0.0/24", True, ["192.0.2.53", "192.0.2.54"], "first")]
    assert net["project_id"] == people["member"].project_id
    listing = b.page("/project/networks").text
    assert f'id="row-network-{net["id"]}"' in listing and net["name"] in listing
    assert 'data-live-kind="network"' in listing and 'class="tag external"' in listing  # the bootstrap's public
    detail = b.page(f"/project/networks/{net['id']}").text
    assert "10.60.0.0/24" in detail and "192.0.2.53, 192.0.2.54" in detail and "10.60.0.2 – 10.60.0.254" in detail
    # its ports are live rows of the detail page
    port = ok(neutron(cloud, token, "POST", "/ports", {"port": {"network_id": net["id"], "name": "probe"}}))["port"]
    detail = b.page(f"/project/networks/{net['id']}").text
    assert f'id="row-port-{port["id"]}"' in detail and port["fixed_ips"][0]["ip_address"] in detail
    assert 'data-live-kind="port"' in detail
    row = b.page(f"/project/networks/{net['id']}/ports/{port['id']}/row")
    assert row.status_code == 200 and row.text.strip().startswith(f'<tr id="row-port-{port["id"]}"')
    public = public_network(cloud, token)
    assert b.page(f"/project/networks/{public['id']}/ports/{port['id']}/row").status_code == 404  # not its network
    ok(neutron(cloud, token, "DELETE", f"/ports/{port['id']}"))
    assert b.page(f"/project/networks/{net['id']}/ports/{port['id']}/row").status_code == 404
    # an IPv6 subnet added, without a gateway
    r = b.post(f"/project/networks/{net['id']}/subnets", {"cidr": "fd00:60::/64", "ip_version": "6",
                                                          "ipv6_address_mode": "slaac", "no_gateway": "on"})
    assert r.status_code == 303, r.text[:2000]
    v6 = [s for s in ok(neutron(cloud, token, "GET", "/subnets", network_id=net["id"]))["subnets"]
          if s["ip_version"] == 6]
    assert [(s["cidr"], s["ipv6_address_mode"], s["gateway_ip"]) for s in v6] == [("fd00:60::/64", "slaac", None)]
    # bad input: Neutron's words beside the field, status 400, nothing made
    for cidr, field in (("not-a-cidr", "cidr"), ("10.60.0.128/25", "cidr")):
        r = b.post(f"/project/networks/{net['id']}/subnets", {"cidr": cidr, "ip_version": "4"})
        assert r.status_code == 400, r.text[:2000]
        assert field_error(r.text, field) == neutron_words(cloud, token, "POST", "/subnets", {"subnet": {
            "network_id": net["id"], "cidr": cidr, "ip_version": 4, "name": "", "enable_dhcp": False}})
        assert f'value="{cidr}"' in r.text  # the form keeps what was typed
    r = b.post(f"/project/networks/{net['id']}/subnets", {"cidr": "10.61.0.0/24", "gateway_ip": "10.99.0.1"})
    assert r.status_code == 400 and "10.99.0.1" in field_error(r.text, "gateway_ip")
    assert len(ok(neutron(cloud, token, "GET", "/subnets", network_id=net["id"]))["subnets"]) == 2
    # a network whose first subnet is refused is not left behind
    bad = unique("bad")
    r = b.post("/project/networks/create", {"name": bad, "cidr": "10.62.0.0/33", "ip_version": "4"})
    assert r.status_code == 400 and "10.62.0.0/33" in field_error(r.text, "cidr")
    assert ok(neutron(cloud, token, "GET", "/networks", name=bad))["networks"] == []
    # the row fragment, then subnet and network deletes
    assert b.page(f"/project/networks/{net['id']}/row").text.strip().startswith(f'<tr id="row-network-{net["id"]}"')
    r = b.post(f"/project/networks/{net['id']}/subnets/{v6[0]['id']}/delete")
    assert r.status_code == 303 and "deleted" in b.flash(r)
    assert neutron(cloud, token, "GET", f"/subnets/{v6[0]['id']}").status_code == 404
    doomed = ok(neutron(cloud, token, "POST", "/networks", {"network": {"name": unique("doomed")}}))["network"]
    r = b.post(f"/project/networks/{doomed['id']}/delete")
    assert r.status_code == 303 and r.headers["location"] == "/project/networks"
    assert neutron(cloud, token, "GET", f"/networks/{doomed['id']}").status_code == 404
    assert b.page(f"/project/networks/{doomed['id']}/row").status_code == 404


def test_routers_gateway_interfaces(cloud: Cloud, people: dict[str, User], browsers: dict[str, Browser],
                                    member_network: dict[str, Any]) -> None:
    b, token = browsers["member"], people["member"].token
    public = public_network(cloud, token)
    form = b.page("/project/routers/create").text
    assert f'<option value="{public["id"]}"' in form
    name = unique("drouter")
    r = b.post("/project/routers/create", {"name": name, "network_id": public["id"]})
    assert r.status_code == 303, r.text[:2000]
    router = ok(neutron(cloud, token, "GET", "/routers", name=name))["routers"][0]
    assert router["external_gateway_info"]["network_id"] == public["id"]
    listing = b.page("/project/routers").text
    assert f'id="row-router-{router["id"]}"' in listing and ">public</a>" in listing
    subnet = ok(neutron(cloud, token, "GET", "/subnets", network_id=member_network["id"]))["subnets"][0]
    r = b.post(f"/project/routers/{router['id']}/interfaces", {"subnet_id": subnet["id"]})
    assert r.status_code == 303, r.text[:2000]
    interfaces = ok(neutron(cloud, token, "GET", "/ports", device_id=router["id"],
                            device_owner="network:router_interface"))["ports"]
    assert [p["fixed_ips"][0]["ip_address"] for p in interfaces] == ["10.60.0.1"]
    detail = b.page(f"/project/routers/{router['id']}").text
    assert f'id="interface-{interfaces[0]["id"]}"' in detail and "10.60.0.1" in detail
    assert 'first <span class="addr">10.60.0.0/24</span>' in detail
    # the same subnet twice: Neutron's refusal beside the subnet choice
    r = b.post(f"/project/routers/{router['id']}/interfaces", {"subnet_id": subnet["id"]})
    assert r.status_code == 400
    assert field_error(r.text, "subnet_id") == neutron_words(cloud, token, "PUT", f"/routers/{router['id']}/"
                                                             "add_router_interface", {"subnet_id": subnet["id"]})
    r = b.post(f"/project/routers/{router['id']}/gateway", {"clear": "1", "network_id": public["id"]})
    assert r.status_code == 303 and "cleared" in b.flash(r)
    assert ok(neutron(cloud, token, "GET", f"/routers/{router['id']}"))["router"]["external_gateway_info"] is None
    r = b.post(f"/project/routers/{router['id']}/gateway", {"network_id": public["id"]})
    assert r.status_code == 303
    gw = ok(neutron(cloud, token, "GET", f"/routers/{router['id']}"))["router"]["external_gateway_info"]
    assert gw["network_id"] == public["id"] and gw["external_fixed_ips"]
    # a network that is not external as the gateway: Neutron's words beside the choice (on a router
    # without a gateway: Cumulo's Neutron drops the old gateway port before it checks the new one)
    bare = ok(neutron(cloud, token, "POST", "/routers", {"router": {"name": unique("bare")}}))["router"]
    r = b.post(f"/project/routers/{bare['id']}/gateway", {"network_id": member_network["id"]})
    assert r.status_code == 400 and "not external" in field_error(r.text, "gateway")
    assert b.post(f"/project/routers/{bare['id']}/delete").status_code == 303
    assert neutron(cloud, token, "GET", f"/routers/{bare['id']}").status_code == 404
    # a router with an interface cannot go: Neutron's words as the flash
    r = b.post(f"/project/routers/{router['id']}/delete")
    assert r.status_code == 303 and "still has ports" in b.flash(r)
    r = b.post(f"/project/routers/{router['id']}/interfaces/remove", {"port_id": interfaces[0]["id"]})
    assert r.status_code == 303 and "removed" in b.flash(r)
    assert ok(neutron(cloud, token, "GET", "/ports", device_id=router["id"],
                      device_owner="network:router_interface"))["ports"] == []
    r = b.post(f"/project/routers/{router['id']}/delete")
    assert r.status_code == 303 and r.headers["location"] == "/project/routers", b.flash(r)
    assert neutron(cloud, token, "GET", f"/routers/{router['id']}").status_code == 404
    assert b.page(f"/project/routers/{router['id']}/row").status_code == 404


def test_security_groups_and_rules(cloud: Cloud, people: dict[str, User], browsers: dict[str, Browser]) -> None:
    b, token = browsers["member"], people["member"].token
    assert ">default</a>" in b.page("/project/security-groups").text
    name = unique("dsg")
    r = b.post("/project/security-groups/create", {"name": name, "description": "web servers"})
    assert r.status_code == 303, r.text[:2000]
    group = ok(neutron(cloud, token, "GET", "/security-groups", name=name))["security_groups"][0]
    assert group["description"] == "web servers"
    page = b.page(f"/project/security-groups/{group['id']}").text
    assert 'id="rule-form"' in page and page.count('<tr id="rule-') == 2  # the two egress rules
    r = b.post(f"/project/security-groups/{group['id']}/rules", {
        "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": "22",
        "port_range_max": "22", "remote_ip_prefix": "10.0.0.0/8"})
    assert r.status_code == 303, r.text[:2000]
    default = ok(neutron(cloud, token, "GET", "/security-groups", name="default"))["security_groups"][0]
    r = b.post(f"/project/security-groups/{group['id']}/rules", {
        "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp", "remote_group_id": default["id"]})
    assert r.status_code == 303, r.text[:2000]
    rules = ok(neutron(cloud, token, "GET", "/security-group-rules", security_group_id=group["id"],
                       direction="ingress"))["security_group_rules"]
    assert sorted((x["protocol"], x["port_range_min"], x["port_range_max"], x["remote_ip_prefix"],
                   x["remote_group_id"]) for x in rules) == [("icmp", None, None, None, default["id"]),
                                                            ("tcp", 22, 22, "10.0.0.0/8", None)]
    page = b.page(f"/project/security-groups/{group['id']}").text
    assert "10.0.0.0/8" in page and ">default</a>" in page
    # bad input: Neutron's words beside the field it is about, 400, no rule made
    for form, field in (({"protocol": "tcp", "port_range_min": "80", "port_range_max": "22"}, "port_range"),
                        ({"protocol": "tcp", "remote_ip_prefix": "10.0.0.300/8"}, "remote_ip_prefix"),
                        ({"protocol": "tcp", "port_range_min": "http"}, "port_range")):
        body = {"direction": "ingress", "ethertype": "IPv4", **form}
        r = b.post(f"/project/security-groups/{group['id']}/rules", body)
        assert r.status_code == 400, (form, r.text[:2000])
        api_body = {k: (int(v) if v.isdigit() else v) for k, v in body.items()}
        assert field_error(r.text, field) == neutron_words(cloud, token, "POST", "/security-group-rules", {
            "security_group_rule": {"security_group_id": group["id"], **api_body}})
    assert len(ok(neutron(cloud, token, "GET", "/security-group-rules",
                          security_group_id=group["id"]))["security_group_rules"]) == 4
    r = b.post(f"/project/security-groups/{group['id']}/rules/{rules[0]['id']}/delete")
    assert r.status_code == 303 and "deleted" in b.flash(r)
    assert neutron(cloud, token, "GET", f"/security-group-rules/{rules[0]['id']}").status_code == 404
    r = b.post(f"/project/security-groups/{group['id']}/delete")
    assert r.status_code == 303 and "deleted" in b.flash(r)
    assert neutron(cloud, token, "GET", f"/security-groups/{group['id']}").status_code == 404


@pytest.fixture(scope="module")
def server(cloud: Cloud, people: dict[str, User], member_network: dict[str, Any]) -> dict[str, Any]:
    """A server of P on the member's network, behind a router with its gateway on public."""
    token = people["member"].token
    public = public_network(cloud, token)
    subnet = ok(neutron(cloud, token, "GET", "/subnets", network_id=member_network["id"], ip_version="4"))["subnets"][0]
    router = ok(neutron(cloud, token, "POST", "/routers", {"router": {
        "name": unique("edge"), "external_gateway_info": {"network_id": public["id"]}}}))["router"]
    ok(neutron(cloud, token, "PUT", f"/routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]}))
    h = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.79"}
    image = httpx.get(f"{cloud.image_url}/v2/images?name=cumulo-tiny", headers=h).json()["images"][0]["id"]
    made = httpx.post(f"{cloud.compute_url}/servers", headers=h, json={"server": {
        "name": unique("dsrv"), "flavorRef": "10", "imageRef": image, "networks": [{"uuid": member_network["id"]}]}})
    assert made.status_code == 202, made.text
    sid = made.json()["server"]["id"]

    def settled() -> dict[str, Any] | None:
        s = httpx.get(f"{cloud.compute_url}/servers/{sid}", headers=h).json()["server"]
        return s if s["status"] in ("ACTIVE", "ERROR") else None

    shown: Any = wait_for(settled, 30, "the server ACTIVE")
    assert shown["status"] == "ACTIVE", shown
    return {**shown, "router": router}


def test_floating_ip_allocate_associate_release(cloud: Cloud, people: dict[str, User],
                                                browsers: dict[str, Browser], server: dict[str, Any]) -> None:
    b, token = browsers["member"], people["member"].token
    public = public_network(cloud, token)
    page = b.page("/project/floating-ips").text
    assert f'<option value="{public["id"]}">public</option>' in page and 'data-live-kind="floatingip"' in page
    r = b.post("/project/floating-ips/allocate", {"floating_network_id": public["id"]})
    assert r.status_code == 303 and "allocated" in b.flash(r)
    fip = ok(neutron(cloud, token, "GET", "/floatingips"))["floatingips"][0]
    assert fip["floating_network_id"] == public["id"] and fip["port_id"] is None
    assert f'id="row-floatingip-{fip["id"]}"' in b.page("/project/floating-ips").text
    port = ok(neutron(cloud, token, "GET", "/ports", device_id=server["id"]))["ports"][0]
    assert port["device_owner"].startswith("compute:")
    address = port["fixed_ips"][0]["ip_address"]
    form = b.page(f"/project/floating-ips/{fip['id']}/associate").text
    assert f'<option value="{port["id"]}|{address}">{server["name"]}: {address}</option>' in form
    r = b.post(f"/project/floating-ips/{fip['id']}/associate", {"port": f"{port['id']}|{address}"})
    assert r.status_code == 303, r.text[:2000]
    shown = ok(neutron(cloud, token, "GET", f"/floatingips/{fip['id']}"))["floatingip"]
    assert (shown["port_id"], shown["fixed_ip_address"], shown["router_id"]) == (port["id"], address,
                                                                                server["router"]["id"])
    row = b.page(f"/project/floating-ips/{fip['id']}/row").text
    assert address in row and "Disassociate" in row and ">public</a>" in row
    # a port that is no server's, forced: Neutron's words beside the choice
    r = b.post(f"/project/floating-ips/{fip['id']}/associate", {"port": "no-such-port"})
    assert r.status_code == 400
    assert field_error(r.text, "port") == neutron_words(cloud, token, "PUT", f"/floatingips/{fip['id']}",
                                                        {"floatingip": {"port_id": "no-such-port"}})
    r = b.post(f"/project/floating-ips/{fip['id']}/disassociate")
    assert r.status_code == 303 and "disassociated" in b.flash(r)
    assert ok(neutron(cloud, token, "GET", f"/floatingips/{fip['id']}"))["floatingip"]["port_id"] is None
    r = b.post(f"/project/floating-ips/{fip['id']}/release")
    assert r.status_code == 303 and "released" in b.flash(r)
    assert neutron(cloud, token, "GET", f"/floatingips/{fip['id']}").status_code == 404
    assert b.page(f"/project/floating-ips/{fip['id']}/row").status_code == 404


def test_topology_draws_networks_routers_and_servers(cloud: Cloud, people: dict[str, User],
                                                     browsers: dict[str, Browser], server: dict[str, Any],
                                                     member_network: dict[str, Any]) -> None:
    r = browsers["member"].page("/project/network/topology")
    assert r.status_code == 200
    page = r.text
    svg = page[page.index("<svg"):page.index("</svg>")]
    router = server["router"]
    for name, href in ((member_network["name"], f"/project/networks/{member_network['id']}"),
                       ("public", "/project/networks/"), (router["name"], f"/project/routers/{router['id']}"),
                       (server["name"], f"/project/instances/{server['id']}")):
        assert f">{name}</text>" in svg and f'href="{href}' in svg, name
    address = next(iter(server["addresses"].values()))[0]["addr"]
    assert address in svg and "10.60.0.1" in svg  # the server's and the router's addresses on their lines
    assert "style=" not in page and "<script>" not in page  # the CSP allows neither
    # another project sees none of it
    other = browsers["other"].page("/project/network/topology").text
    assert member_network["name"] not in other and server["name"] not in other


def test_reader_sees_without_write_forms_and_is_refused_in_neutrons_words(
        cloud: Cloud, people: dict[str, User], browsers: dict[str, Browser], member_network: dict[str, Any]) -> None:
    b, net = browsers["reader"], member_network
    listing = b.page("/project/networks").text
    assert net["name"] in listing and "/project/networks/create" not in listing and "/delete" not in listing
    detail = b.page(f"/project/networks/{net['id']}").text
    assert "10.60.0.0/24" in detail and 'id="subnet-form"' not in detail and "/delete" not in detail
    for path, absent in (("/project/routers", "/project/routers/create"),
                         ("/project/security-groups", 'id="group-form"'),
                         ("/project/floating-ips", 'id="allocate-form"')):
        r = b.page(path)
        assert r.status_code == 200 and absent not in r.text, path
    group = ok(neutron(cloud, people["reader"].token, "GET", "/security-groups", name="default"))["security_groups"][0]
    page = b.page(f"/project/security-groups/{group['id']}").text
    assert 'id="rule-form"' not in page and page.count('<tr id="rule-') >= 2
    # a forced POST: the API's 403 in its own words, nothing changed
    words = neutron_words(cloud, people["reader"].token, "POST", "/networks", {"network": {"name": "x"}})
    r = b.post("/project/networks/create", {"name": unique("sneaky")})
    assert r.status_code == 403 and words in r.text
    r = b.post(f"/project/networks/{net['id']}/delete")
    assert r.status_code == 403 and "policy" in r.text
    assert neutron(cloud, people["member"].token, "GET", f"/networks/{net['id']}").status_code == 200
    r = b.post(f"/project/security-groups/{group['id']}/rules", {"direction": "ingress", "ethertype": "IPv4",
                                                                 "protocol": "tcp", "port_range_min": "1"})
    assert r.status_code == 403 and 'data-field="_"' in r.text


def test_other_project_sees_nothing_and_admin_sees_everything(
        cloud: Cloud, people: dict[str, User], browsers: dict[str, Browser], member_network: dict[str, Any],
        server: dict[str, Any]) -> None:
    net, router = member_network, server["router"]
    other = browsers["other"]
    assert router["name"] not in other.page("/project/routers").text
    assert other.page(f"/project/routers/{router['id']}").status_code == 404
    assert net["name"] not in other.page("/project/networks").text
    for path in (f"/project/networks/{net['id']}", f"/project/networks/{net['id']}/row"):
        assert other.page(path).status_code == 404, path
    r = other.post(f"/project/networks/{net['id']}/delete")
    assert r.status_code == 303 and "could not be found" in other.flash(r)
    assert neutron(cloud, people["admin"].token, "GET", f"/networks/{net['id']}").status_code == 200
    admin = browsers["admin"]
    listing = admin.page("/project/networks", limit=1000).text
    assert net["name"] in listing and people["member"].project_id[:8] in listing
    assert "10.60.0.0/24" in admin.page(f"/project/networks/{net['id']}").text
    assert ">default</a>" in admin.page("/project/security-groups").text
    assert router["name"] in admin.page("/project/routers").text
    detail = admin.page(f"/project/routers/{router['id']}").text
    assert "10.60.0.1" in detail and 'id="gateway-form"' in detail


def test_network_list_pages(cloud: Cloud, people: dict[str, User], browsers: dict[str, Browser]) -> None:
    token = people["other"].token
    names = [unique("pg") for _ in range(3)]
    for name in names:
        ok(neutron(cloud, token, "POST", "/networks", {"network": {"name": name}}))
    b = browsers["other"]
    mine = [n["id"] for n in ok(neutron(cloud, token, "GET", "/networks"))["networks"]]
    assert len(mine) >= 4  # its three and the public one
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = b.page("/project/networks", **params).text
        rows = re.findall(r'<tr id="row-network-([0-9a-f-]{36})"', page)
        assert 0 < len(rows) <= 2
        seen += rows
        m = re.search(r'marker=([0-9a-f-]{36})">Next page', page)
        if not m:
            break
        params["marker"] = m.group(1)
    assert seen == mine  # every network once, in Neutron's order
    assert all(n in b.page("/project/networks").text for n in names)
