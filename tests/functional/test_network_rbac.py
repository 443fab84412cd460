"""The Network API's sharing and inventory: RBAC policies (a network shared with one project, or
made external for it), address scopes, network IP availability, availability zones, service
providers and the network agents, on a cloud whose dataplane runs (so the agents are real and
report what they host).  Driven with the openstack CLI and openstacksdk as the admin, and plain
HTTP as the personas of conftest.personas (P's member and reader, Q's member)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.functional.conftest import BIN, Cloud, personas, start_cloud, stop_cloud, unique, wait_for


@pytest.fixture(scope="module")
def rcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("rbac"), "sqlite", {
        "CUMULO_SERVICES": "identity,image,compute,placement,network", "CUMULO_COMPUTE__FAKE_NODES": "1",
        "CUMULO_NETWORK__DATAPLANE": "true", "CUMULO_NETWORK__RECONCILE_INTERVAL": "5",
        "CUMULO_COMPUTE__HOST": "rbac-node", "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false"})
    yield c
    stop_cloud(c)
    subprocess.run([str(BIN / "cumulo"), "network", "cleanup", "--yes"], env=c.env, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def who(rcloud: Cloud) -> dict[str, tuple[str, str]]:
    return {**personas(rcloud, "rbac"), "admin": (rcloud.token()[0], "")}


class Net:
    """Plain HTTP to the Network API as one persona."""

    def __init__(self, cloud: Cloud, token: str) -> None:
        self.url, self.headers = cloud.network_url, {"X-Auth-Token": token}

    def __call__(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", json=body, headers=self.headers, timeout=30)

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        r = self(method, path, body)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None


def cli_json(cloud: Cloud, *args: str) -> Any:
    return json.loads(cloud.cli(*args, "-f", "json").stdout)


def network_with_subnet(api: Net, cidr: str, **extra: Any) -> dict[str, Any]:
    net = api.ok("POST", "/networks", {"network": {"name": unique("rbac"), **extra}})["network"]
    api.ok("POST", "/subnets", {"subnet": {"network_id": net["id"], "ip_version": 4, "cidr": cidr}})
    return net


def test_a_network_shared_with_one_project_by_the_cli(rcloud: Cloud, who: dict[str, tuple[str, str]]) -> None:
    admin, member, other = Net(rcloud, who["admin"][0]), Net(rcloud, who["member"][0]), Net(rcloud, who["other"][0])
    q = who["other"][1]
    net = network_with_subnet(admin, "10.61.0.0/24")
    assert other("GET", f"/networks/{net['id']}").status_code == 404  # not shared yet
    policy = cli_json(rcloud, "network", "rbac", "create", "--target-project", q, "--action", "access_as_shared",
                      "--type", "network", net["id"])
    assert policy["target_project_id"] == q and policy["object_id"] == net["id"]
    # Q sees the network (shared, as Neutron shows it to the target), its subnet, and puts a port on it
    seen = other.ok("GET", f"/networks/{net['id']}")["network"]
    assert seen["shared"] is True and seen["subnets"]
    assert net["id"] in [n["id"] for n in other.ok("GET", "/networks")["networks"]]
    assert [s["network_id"] for s in other.ok("GET", f"/subnets?network_id={net['id']}")["subnets"]] == [net["id"]]
    port = other.ok("POST", "/ports", {"port": {"network_id": net["id"]}})["port"]
    assert port["project_id"] == q and port["fixed_ips"]
    # to the owner the network is not shared (no wildcard entry); P, not a target, still cannot see it
    assert admin.ok("GET", f"/networks/{net['id']}")["network"]["shared"] is False
    assert member("GET", f"/networks/{net['id']}").status_code == 404
    assert member("POST", "/ports", {"port": {"network_id": net["id"]}}).status_code == 404
    # the policy is the admin's: Q, its target, does not see it
    assert other("GET", f"/rbac-policies/{policy['id']}").status_code == 404
    assert policy["id"] not in [p["id"] for p in other.ok("GET", "/rbac-policies")["rbac_policies"]]
    # in use: Q's port depends on it
    refused = rcloud.cli("network", "rbac", "delete", policy["id"], check=False)
    assert refused.returncode != 0
    r = admin("DELETE", f"/rbac-policies/{policy['id']}")
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "RbacPolicyInUse", r.text
    other.ok("DELETE", f"/ports/{port['id']}")
    rcloud.cli("network", "rbac", "delete", policy["id"])
    assert other("GET", f"/networks/{net['id']}").status_code == 404
    assert admin("GET", f"/rbac-policies/{policy['id']}").status_code == 404


def test_rbac_policies_by_a_member_and_who_may_not(rcloud: Cloud, who: dict[str, tuple[str, str]]) -> None:
    member, reader, other = Net(rcloud, who["member"][0]), Net(rcloud, who["reader"][0]), Net(rcloud, who["other"][0])
    q = who["other"][1]
    net = network_with_subnet(member, "10.62.0.0/24")
    body = {"rbac_policy": {"object_type": "network", "object_id": net["id"], "action": "access_as_shared",
                            "target_tenant": q}}
    r = reader("POST", "/rbac-policies", body)
    assert r.status_code == 403, r.text  # a reader reads
    wildcard = {"rbac_policy": {**body["rbac_policy"], "target_tenant": "*"}}
    r = member("POST", "/rbac-policies", wildcard)
    assert r.status_code == 403 and "create_rbac_policy:target_tenant" in r.text  # everyone: the admin's
    assert other("POST", "/rbac-policies", body).status_code == 404  # Q cannot see P's network
    policy = member.ok("POST", "/rbac-policies", body)["rbac_policy"]
    assert policy["target_tenant"] == q and policy["project_id"] == who["member"][1]
    assert policy["action"] == "access_as_shared" and policy["object_type"] == "network"
    assert member("HEAD", f"/rbac-policies/{policy['id']}").status_code == 200  # a HEAD reads, never deletes
    assert member("HEAD", "/rbac-policies").status_code == 200
    r = member("POST", "/rbac-policies", body)
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "DuplicateRbacPolicy"
    # P's reader reads P's policies; Q, whose network it is not, may not make policies on it
    assert policy["id"] in [p["id"] for p in reader.ok("GET", "/rbac-policies")["rbac_policies"]]
    assert reader.ok("GET", f"/rbac-policies/{policy['id']}")["rbac_policy"]["object_id"] == net["id"]
    assert reader("DELETE", f"/rbac-policies/{policy['id']}").status_code == 403
    r = other("POST", "/rbac-policies", {"rbac_policy": {**body["rbac_policy"], "target_tenant": who["member"][1]}})
    assert r.status_code == 400 and "Only admins" in r.text
    assert other.ok("GET", f"/networks/{net['id']}")["network"]["shared"] is True
    for bad, status in (({"action": "access_as_owner"}, 400), ({"object_type": "router"}, 400),
                        ({"target_tenant": ""}, 400), ({"object_id": "no-such-network"}, 404)):
        r = member("POST", "/rbac-policies", {"rbac_policy": {**body["rbac_policy"], **bad}})
        assert r.status_code == status and "NeutronError" in r.json(), (bad, r.text)
    # retargeted to P itself: Q loses the network
    moved = member.ok("PUT", f"/rbac-policies/{policy['id']}", {"rbac_policy": {"target_tenant": who["member"][1]}})
    assert moved["rbac_policy"]["target_tenant"] == who["member"][1]
    assert other("GET", f"/networks/{net['id']}").status_code == 404
    assert member("PUT", f"/rbac-policies/{policy['id']}", {"rbac_policy": {"action": "access_as_external"}}
                  ).status_code == 400
    member.ok("DELETE", f"/rbac-policies/{policy['id']}")


def test_access_as_external_makes_a_network_external_for_its_target(
        rcloud: Cloud, who: dict[str, tuple[str, str]]) -> None:
    admin, member, other = Net(rcloud, who["admin"][0]), Net(rcloud, who["member"][0]), Net(rcloud, who["other"][0])
    q = who["other"][1]
    net = network_with_subnet(admin, "198.51.100.0/24")
    assert net["router:external"] is False
    policy = admin.ok("POST", "/rbac-policies", {"rbac_policy": {
        "object_type": "network", "object_id": net["id"], "action": "access_as_external", "target_tenant": q}}
    )["rbac_policy"]
    assert admin.ok("GET", f"/networks/{net['id']}")["network"]["router:external"] is True
    assert other.ok("GET", f"/networks/{net['id']}")["network"]["router:external"] is True
    assert member("GET", f"/networks/{net['id']}").status_code == 404  # external for Q only
    router = other.ok("POST", "/routers", {"router": {"name": unique("r"), "external_gateway_info": {
        "network_id": net["id"]}}})["router"]
    assert router["external_gateway_info"]["network_id"] == net["id"]
    r = member("POST", "/routers", {"router": {"name": unique("r"), "external_gateway_info": {
        "network_id": net["id"]}}})
    assert r.status_code == 404, r.text
    r = admin("DELETE", f"/rbac-policies/{policy['id']}")
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "RbacPolicyInUse"
    other.ok("PUT", f"/routers/{router['id']}", {"router": {"external_gateway_info": {}}})
    admin.ok("DELETE", f"/rbac-policies/{policy['id']}")
    assert admin.ok("GET", f"/networks/{net['id']}")["network"]["router:external"] is False  # its last one went
    assert other("GET", f"/networks/{net['id']}").status_code == 404


def test_shared_and_external_flags_are_wildcard_policies(rcloud: Cloud, who: dict[str, tuple[str, str]]) -> None:
    conn = rcloud.sdk()
    other = Net(rcloud, who["other"][0])
    net = conn.network.create_network(name=unique("flags"), shared=True)
    entries = [p for p in conn.network.rbac_policies(object_id=net.id)]
    assert [(p.action, p.target_project_id) for p in entries] == [("access_as_shared", "*")]
    assert other.ok("GET", f"/networks/{net.id}")["network"]["shared"] is True
    port = other.ok("POST", "/ports", {"port": {"network_id": net.id}})["port"]
    # unsharing while Q has a port on it is refused; once the port is gone, the wildcard entry goes
    r = httpx.put(f"{rcloud.network_url}/networks/{net.id}", headers={"X-Auth-Token": who["admin"][0]},
                  json={"network": {"shared": False}})
    assert r.status_code == 409, r.text
    other.ok("DELETE", f"/ports/{port['id']}")
    conn.network.update_network(net, shared=False)
    assert list(conn.network.rbac_policies(object_id=net.id)) == []
    assert other("GET", f"/networks/{net.id}").status_code == 404
    conn.network.update_network(net, is_router_external=True)
    assert [p.action for p in conn.network.rbac_policies(object_id=net.id)] == ["access_as_external"]
    assert other.ok("GET", f"/networks/{net.id}")["network"]["router:external"] is True
    conn.network.delete_network(net)
    assert list(conn.network.rbac_policies(object_id=net.id)) == []


def test_address_scopes_and_the_pools_in_them(rcloud: Cloud, who: dict[str, tuple[str, str]]) -> None:
    conn = rcloud.sdk()
    member, reader, other = Net(rcloud, who["member"][0]), Net(rcloud, who["reader"][0]), Net(rcloud, who["other"][0])
    scope = conn.network.create_address_scope(name=unique("scope"), ip_version=4)
    assert scope.ip_version == 4 and scope.is_shared is False
    pool = conn.network.create_subnet_pool(name=unique("pool"), prefixes=["10.70.0.0/16"],
                                           default_prefix_length=24, address_scope_id=scope.id)
    assert pool.address_scope_id == scope.id
    r = httpx.post(f"{rcloud.network_url}/subnetpools", headers={"X-Auth-Token": who["admin"][0]},
                   json={"subnetpool": {"name": "v6", "prefixes": ["fd70::/48"], "address_scope_id": scope.id}})
    assert r.status_code == 400 and "ip_version" in r.text, r.text
    r = httpx.post(f"{rcloud.network_url}/subnetpools", headers={"X-Auth-Token": who["admin"][0]},
                   json={"subnetpool": {"name": "overlap", "prefixes": ["10.70.5.0/24"], "address_scope_id": scope.id}})
    assert r.status_code == 400, r.text
    net = conn.network.create_network(name=unique("scoped"))
    conn.network.create_subnet(network_id=net.id, ip_version=4, subnetpool_id=pool.id)
    shown = json.loads(rcloud.cli("network", "show", net.id, "-f", "json").stdout)
    assert shown["ipv4_address_scope"] == scope.id and shown["ipv6_address_scope"] is None
    r = httpx.delete(f"{rcloud.network_url}/address-scopes/{scope.id}", headers={"X-Auth-Token": who["admin"][0]})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "AddressScopeInUse"
    # personas: P's member makes its own (not shared: that is the admin's), the reader reads, Q sees nothing
    assert member("POST", "/address-scopes", {"address_scope": {"name": "s", "ip_version": 4, "shared": True}}
                  ).status_code == 403
    assert reader("POST", "/address-scopes", {"address_scope": {"name": "s", "ip_version": 4}}).status_code == 403
    assert member("POST", "/address-scopes", {"address_scope": {"name": "s", "ip_version": 5}}).status_code == 400
    own = member.ok("POST", "/address-scopes", {"address_scope": {"name": "mine", "ip_version": 6}})["address_scope"]
    assert reader.ok("GET", f"/address-scopes/{own['id']}")["address_scope"]["ip_version"] == 6
    assert other("GET", f"/address-scopes/{own['id']}").status_code == 404
    assert other("GET", f"/address-scopes/{scope.id}").status_code == 404  # the admin's, not shared
    assert reader("PUT", f"/address-scopes/{own['id']}", {"address_scope": {"name": "x"}}).status_code == 403
    assert member.ok("PUT", f"/address-scopes/{own['id']}", {"address_scope": {"name": "x"}})[
        "address_scope"]["name"] == "x"
    member.ok("DELETE", f"/address-scopes/{own['id']}")
    conn.network.update_address_scope(scope, is_shared=True)
    assert other.ok("GET", f"/address-scopes/{scope.id}")["address_scope"]["shared"] is True


def test_network_ip_availability_counts_pools_and_addresses(rcloud: Cloud, who: dict[str, tuple[str, str]]) -> None:
    admin, member, reader = Net(rcloud, who["admin"][0]), Net(rcloud, who["member"][0]), Net(rcloud, who["reader"][0])
    net = network_with_subnet(member, "10.63.0.0/24")
    for _ in range(2):
        member.ok("POST", "/ports", {"port": {"network_id": net["id"]}})

    def ports() -> list[dict[str, Any]]:
        return admin.ok("GET", f"/ports?network_id={net['id']}")["ports"]

    # the dataplane's DHCP port takes an address too, shortly after the subnet: count once it has
    wait_for(lambda: any(p["device_owner"] == "network:dhcp" for p in ports()), 30, "the network's DHCP port")
    held = sum(len(p["fixed_ips"]) for p in ports())
    shown = admin.ok("GET", f"/network-ip-availabilities/{net['id']}")["network_ip_availability"]
    assert shown["network_id"] == net["id"] and shown["total_ips"] == 253  # 10.63.0.2-254
    assert shown["used_ips"] == held >= 3  # two ports and the DHCP port
    [sub] = shown["subnet_ip_availability"]
    assert sub["cidr"] == "10.63.0.0/24" and sub["total_ips"] == 253 and sub["used_ips"] == held
    assert sub["ip_availability_details"]["total_ips_in_subnet"] == 254
    listed = admin.ok("GET", f"/network-ip-availabilities?network_id={net['id']}")["network_ip_availabilities"]
    assert [a["network_id"] for a in listed] == [net["id"]]
    assert admin.ok("GET", "/network-ip-availabilities?ip_version=6")["network_ip_availabilities"] == []
    conn = rcloud.sdk()
    assert conn.network.get_network_ip_availability(net["id"]).used_ips == held
    for persona in (member, reader):
        assert persona("GET", f"/network-ip-availabilities/{net['id']}").status_code == 403
        assert persona("GET", "/network-ip-availabilities").status_code == 403
    assert admin("GET", "/network-ip-availabilities/no-such-network").status_code == 404


def test_availability_zones_and_service_providers(rcloud: Cloud, who: dict[str, tuple[str, str]]) -> None:
    conn = rcloud.sdk()
    zones = {(z.name, z.resource, z.state) for z in conn.network.availability_zones()}
    assert zones == {("nova", "network", "available"), ("nova", "router", "available")}
    assert [p.service_type for p in conn.network.service_providers()] == ["L3_ROUTER_NAT"]
    reader = Net(rcloud, who["reader"][0])
    assert reader.ok("GET", "/service-providers")["service_providers"][0]["default"] is True
    assert len(reader.ok("GET", "/availability_zones?resource=router")["availability_zones"]) == 1
    aliases = {e.alias for e in conn.network.extensions()}
    assert {"rbac-policies", "address-scope", "network-ip-availability", "availability_zone", "service-type",
            "agent", "dhcp_agent_scheduler", "l3_agent_scheduler"} <= aliases


def test_agents_report_what_the_dataplane_hosts(rcloud: Cloud, who: dict[str, tuple[str, str]]) -> None:
    admin, member, reader = Net(rcloud, who["admin"][0]), Net(rcloud, who["member"][0]), Net(rcloud, who["reader"][0])
    net = network_with_subnet(admin, "10.64.0.0/24")
    router = admin.ok("POST", "/routers", {"router": {"name": unique("r")}})["router"]

    def agents() -> dict[str, dict[str, Any]]:
        return {a["agent_type"]: a for a in admin.ok("GET", "/agents?host=rbac-node")["agents"]}

    wait_for(lambda: len(agents()) == 4, 30, "the four agents of rbac-node")
    by_type = agents()
    # the type filter matches regardless of case, as Neutron's does on MySQL (tempest asks for "DHCP Agent")
    assert [a["id"] for a in admin.ok("GET", "/agents?agent_type=DHCP Agent&host=rbac-node")["agents"]] == [
        by_type["DHCP agent"]["id"]]
    assert set(by_type) == {"DHCP agent", "L3 agent", "Metadata agent", "Linux bridge agent"}
    dhcp, l3 = by_type["DHCP agent"], by_type["L3 agent"]
    assert all(a["alive"] and a["admin_state_up"] and a["host"] == "rbac-node" for a in by_type.values())
    assert dhcp["binary"] == "neutron-dhcp-agent" and dhcp["availability_zone"] == "nova"
    assert dhcp["configurations"]["dhcp_driver"] == "dnsmasq"
    # the DHCP agent hosts the network once its dnsmasq runs, the L3 agent the router
    wait_for(lambda: net["id"] in [n["id"] for n in admin.ok("GET", f"/agents/{dhcp['id']}/dhcp-networks")[
        "networks"]], 30, "the DHCP agent hosting the network")
    hosting = json.loads(rcloud.cli("network", "agent", "list", "--network", net["id"], "-f", "json").stdout)
    assert [a["ID"] for a in hosting] == [dhcp["id"]]
    wait_for(lambda: router["id"] in [x["id"] for x in admin.ok("GET", f"/agents/{l3['id']}/l3-routers")[
        "routers"]], 30, "the L3 agent hosting the router")
    assert [a["id"] for a in admin.ok("GET", f"/routers/{router['id']}/l3-agents")["agents"]] == [l3["id"]]
    # a new network with a DHCP subnet is hosted at once (every DHCP agent serves every such network)
    fresh = network_with_subnet(admin, "10.65.0.0/24")
    assert [a["id"] for a in admin.ok("GET", f"/networks/{fresh['id']}/dhcp-agents")["agents"]] == [dhcp["id"]]
    r = admin("POST", f"/agents/{dhcp['id']}/dhcp-networks", {"network_id": fresh["id"]})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "NetworkHostedByDHCPAgent"
    assert admin("DELETE", f"/agents/{dhcp['id']}/dhcp-networks/{fresh['id']}").status_code == 409
    # scheduling by hand: a network without subnets is not hosted until the admin adds it
    bare = admin.ok("POST", "/networks", {"network": {"name": unique("bare")}})["network"]
    assert admin("POST", f"/agents/{dhcp['id']}/dhcp-networks", {"network_id": bare["id"]}).status_code == 201
    r = admin("POST", f"/agents/{dhcp['id']}/dhcp-networks", {"network_id": bare["id"]})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "NetworkHostedByDHCPAgent"
    assert admin("POST", f"/agents/{l3['id']}/dhcp-networks", {"network_id": bare["id"]}).status_code == 404
    # what an admin scheduled outlives the agent's next heartbeat (which reports what it serves)
    beat = admin.ok("GET", f"/agents/{dhcp['id']}")["agent"]["heartbeat_timestamp"]
    admin.ok("PUT", f"/networks/{net['id']}", {"network": {"name": unique("beat")}})
    wait_for(lambda: admin.ok("GET", f"/agents/{dhcp['id']}")["agent"]["heartbeat_timestamp"] != beat, 30,
             "the DHCP agent's next heartbeat")
    hosted = [n["id"] for n in admin.ok("GET", f"/agents/{dhcp['id']}/dhcp-networks")["networks"]]
    assert bare["id"] in hosted and net["id"] in hosted
    assert admin("DELETE", f"/agents/{dhcp['id']}/dhcp-networks/{bare['id']}").status_code == 204
    assert admin("DELETE", f"/agents/{dhcp['id']}/dhcp-networks/{bare['id']}").status_code == 409
    # the admin describes and disables an agent (the CLI's set)
    rcloud.cli("network", "agent", "set", "--description", "the rbac node", "--disable", dhcp["id"])
    shown = cli_json(rcloud, "network", "agent", "show", dhcp["id"])
    assert shown["description"] == "the rbac node" and shown["admin_state_up"] is False
    assert admin("PUT", f"/agents/{dhcp['id']}", {"agent": {"host": "x"}}).status_code == 400
    # others see no agents and may not act on them
    for persona in (member, reader):
        assert persona.ok("GET", "/agents")["agents"] == []
        assert persona("GET", f"/agents/{dhcp['id']}").status_code == 403
        assert persona("PUT", f"/agents/{dhcp['id']}", {"agent": {"admin_state_up": True}}).status_code == 403
        assert persona("GET", f"/agents/{dhcp['id']}/dhcp-networks").status_code == 403
        assert persona("GET", f"/networks/{net['id']}/dhcp-agents").status_code == 403
    # a deleted agent comes back with its next heartbeat (a change makes the agent reconcile and report)
    metadata = by_type["Metadata agent"]
    assert admin("DELETE", f"/agents/{metadata['id']}").status_code == 204
    assert admin("GET", f"/agents/{metadata['id']}").status_code == 404
    admin.ok("PUT", f"/networks/{net['id']}", {"network": {"name": unique("kick")}})
    wait_for(lambda: "Metadata agent" in agents(), 30, "the metadata agent reporting again")
