"""Compute's legacy routes and the list bugs tempest found, on fake nodes with the first network
topology (public, demo's private behind router1): the /v2 root and /extensions, os-hosts,
hypervisor uptime/search/servers, the usage audit log, external events, the network proxies
(os-tenant-networks, os-networks, floating IPs and their pools, addFloatingIp), image metadata,
legacy quota keys, flavor ids and is_public, aggregate ids, the internal zone, all_tenants,
changes-before at the second shown, multi-NIC order and security groups by name; through HTTP,
the openstack CLI and openstacksdk."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.functional.conftest import Cloud, personas, start_cloud, stop_cloud, unique, wait_for


@pytest.fixture(scope="module")
def lcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("legacy-cloud"), "sqlite", {
        "CUMULO_SERVICES": "identity,image,compute,placement,network", "CUMULO_NETWORK__BOOTSTRAP": "true"})
    yield c
    stop_cloud(c)


@pytest.fixture(scope="module")
def who(lcloud: Cloud) -> dict[str, tuple[str, str]]:
    out = personas(lcloud, "legacy")
    out["admin"] = (lcloud.token()[0], "")
    demo_token, demo_body = lcloud.token("demo", lcloud.demo_password, "demo")
    out["demo"] = (demo_token, demo_body["project"]["id"])
    return out


def nova(token: str, version: str = "2.1") -> dict[str, str]:
    return {"X-Auth-Token": token, "OpenStack-API-Version": f"compute {version}"}


def call(cloud: Cloud, method: str, path: str, token: str, version: str = "2.1", body: Any = None,
         **params: Any) -> httpx.Response:
    return httpx.request(method, f"{cloud.compute_url}{path}", headers=nova(token, version), json=body,
                         params=params or None, timeout=30)


def boot(cloud: Cloud, token: str, name: str, networks: Any = "none", **extra: Any) -> dict[str, Any]:
    images = httpx.get(f"{cloud.image_url}/v2/images?status=active&visibility=public",
                       headers={"X-Auth-Token": token}).json()["images"]
    body = {"server": {"name": name, "flavorRef": "1", "imageRef": images[0]["id"], "networks": networks,
                       **extra}}
    r = call(cloud, "POST", "/servers", token, "2.37", body)
    assert r.status_code == 202, r.text
    server_id = r.json()["server"]["id"]
    return wait_for(lambda: (s := call(cloud, "GET", f"/servers/{server_id}", token, "2.47").json()["server"])
                    ["status"] == "ACTIVE" and s, 30, f"server {name} ACTIVE")  # type: ignore[return-value]


def test_v2_root_and_extensions(lcloud: Cloud, who) -> None:  # type: ignore[no-untyped-def]
    root = lcloud.compute_url.rsplit("/v2.1", 1)[0]
    listed = httpx.get(f"{root}/").json()["versions"]
    assert listed[0]["id"] == "v2.0"
    self_link = [x for x in listed[0]["links"] if x["rel"] == "self"][0]
    doc = httpx.get(self_link["href"]).json()["version"]
    assert doc["id"] == "v2.0" and [x for x in doc["links"] if x["rel"] == "self"] == [self_link]
    assert httpx.get(f"{root}/v2").json()["version"]["media-types"][0]["type"].endswith("version=2")
    for persona in ("admin", "member", "reader", "other"):
        token = who[persona][0]
        names = {e["name"] for e in call(lcloud, "GET", "/extensions", token).json()["extensions"]}
        assert "Hosts" in names and len(names) > 90
        assert call(lcloud, "GET", "/extensions/os-consoles", token).json()["extension"]["alias"] == "os-consoles"
    assert call(lcloud, "GET", "/extensions/no-such", who["member"][0]).status_code == 404


def test_os_hosts(lcloud: Cloud, who) -> None:  # type: ignore[no-untyped-def]
    admin = who["admin"][0]
    hosts = call(lcloud, "GET", "/os-hosts", admin).json()["hosts"]
    assert {"host_name": "fake-0", "service": "compute", "zone": "nova"} in hosts
    assert call(lcloud, "GET", "/os-hosts", admin, zone="nova").json()["hosts"]
    assert call(lcloud, "GET", "/os-hosts", admin, zone="xxx").json()["hosts"] == []
    shown = call(lcloud, "GET", "/os-hosts/fake-0", admin).json()["host"]
    assert [x["resource"]["project"] for x in shown[:3]] == ["(total)", "(used_now)", "(used_max)"]
    assert shown[0]["resource"]["cpu"] == 16 and shown[0]["resource"]["host"] == "fake-0"
    r = call(lcloud, "PUT", "/os-hosts/fake-1", admin, body={"status": "disable"})
    assert r.json() == {"host": "fake-1", "status": "disabled"}
    services = call(lcloud, "GET", "/os-services", admin, host="fake-1").json()["services"]
    assert services[0]["status"] == "disabled"
    assert "fake-1" not in {h["host_name"] for h in call(lcloud, "GET", "/os-hosts", admin).json()["hosts"]}
    call(lcloud, "PUT", "/os-hosts/fake-1", admin, body={"status": "enable"})
    assert call(lcloud, "PUT", "/os-hosts/fake-1", admin, body={"status": "sideways"}).status_code == 400
    assert call(lcloud, "PUT", "/os-hosts/fake-1", admin, body={}).status_code == 400
    assert call(lcloud, "PUT", "/os-hosts/nope", admin, body={"status": "enable"}).status_code == 404
    assert call(lcloud, "PUT", "/os-hosts/fake-1", admin, body={"maintenance_mode": "enable"}).status_code == 501
    for action in ("reboot", "shutdown", "startup"):
        assert call(lcloud, "GET", f"/os-hosts/fake-0/{action}", admin).status_code == 501
        assert call(lcloud, "GET", f"/os-hosts/nope/{action}", admin).status_code == 404
    assert call(lcloud, "GET", "/os-hosts/nope", admin).status_code == 404
    assert call(lcloud, "GET", "/os-hosts", admin, "2.43").status_code == 404
    for persona in ("member", "reader", "other"):
        assert call(lcloud, "GET", "/os-hosts", who[persona][0]).status_code == 403
        assert call(lcloud, "GET", "/os-hosts/fake-0/reboot", who[persona][0]).status_code == 403


def test_hypervisor_search_servers_uptime_and_fields(lcloud: Cloud, who) -> None:  # type: ignore[no-untyped-def]
    admin = who["admin"][0]
    server = boot(lcloud, admin, unique("hyp"))
    host = server["OS-EXT-SRV-ATTR:host"]
    old = call(lcloud, "GET", "/os-hypervisors/detail", admin).json()["hypervisors"]
    node = [x for x in old if x["hypervisor_hostname"] == host][0]
    assert isinstance(node["id"], int) and isinstance(node["cpu_info"], str) and json.loads(node["cpu_info"])
    assert node["running_vms"] >= 1 and node["vcpus_used"] >= 1
    assert call(lcloud, "GET", f"/os-hypervisors/{node['id']}", admin).json()["hypervisor"]["id"] == node["id"]
    assert isinstance(call(lcloud, "GET", "/os-hypervisors/detail", admin, "2.28").json()["hypervisors"][0][
        "cpu_info"], dict)
    uptime = call(lcloud, "GET", f"/os-hypervisors/{node['id']}/uptime", admin).json()["hypervisor"]
    assert " up " in uptime["uptime"] and uptime["hypervisor_hostname"] == host
    found = call(lcloud, "GET", "/os-hypervisors/fake/search", admin).json()["hypervisors"]
    assert {"fake-0", "fake-1"} <= {x["hypervisor_hostname"] for x in found} and "servers" not in found[0]
    listed = call(lcloud, "GET", f"/os-hypervisors/{host}/servers", admin).json()["hypervisors"]
    assert server["id"] in {s["uuid"] for x in listed for s in x.get("servers", [])}
    assert call(lcloud, "GET", "/os-hypervisors/nothing-like-it/search", admin).status_code == 404
    new = call(lcloud, "GET", "/os-hypervisors", admin, "2.53", hypervisor_hostname_pattern=host,
               with_servers="true").json()["hypervisors"]
    assert [x["hypervisor_hostname"] for x in new] == [host] and server["id"] in {s["uuid"] for s in new[0]["servers"]}
    assert call(lcloud, "GET", f"/os-hypervisors/{host}/search", admin, "2.53").status_code == 404
    detail = call(lcloud, "GET", f"/os-hypervisors/{new[0]['id']}", admin, "2.88").json()["hypervisor"]
    assert " up " in detail["uptime"] and "vcpus" not in detail
    assert call(lcloud, "GET", f"/os-hypervisors/{new[0]['id']}/uptime", admin, "2.88").status_code == 404
    for persona in ("member", "reader"):
        assert call(lcloud, "GET", "/os-hypervisors/fake/search", who[persona][0]).status_code == 403
        assert call(lcloud, "GET", f"/os-hypervisors/{node['id']}/uptime", who[persona][0]).status_code == 403
    # the CLI shows the hypervisor's detail
    shown = json.loads(lcloud.cli("hypervisor", "show", host, "-f", "json").stdout)
    assert shown["hypervisor_hostname"] == host
    call(lcloud, "DELETE", f"/servers/{server['id']}", admin)


def test_instance_usage_audit_log(lcloud: Cloud, who) -> None:  # type: ignore[no-untyped-def]
    admin = who["admin"][0]
    log = call(lcloud, "GET", "/os-instance_usage_audit_log", admin).json()["instance_usage_audit_logs"]
    assert {"fake-0", "fake-1"} <= set(log["hosts_not_run"]) and log["num_hosts_done"] == 0
    one = call(lcloud, "GET", "/os-instance_usage_audit_log/2024-03-15 10:00:00", admin).json()[
        "instance_usage_audit_log"]
    assert one["period_beginning"] == "2024-02-01 00:00:00" and one["period_ending"] == "2024-03-01 00:00:00"
    assert call(lcloud, "GET", "/os-instance_usage_audit_log/invalid_time", admin).status_code == 400
    for persona in ("member", "reader", "other"):
        assert call(lcloud, "GET", "/os-instance_usage_audit_log", who[persona][0]).status_code == 403


def test_server_external_events_per_event(lcloud: Cloud, who) -> None:  # type: ignore[no-untyped-def]
    admin = who["admin"][0]
    server = boot(lcloud, admin, unique("events"))
    headers = {"X-Auth-Token": admin}
    roles = {r["name"]: r["id"] for r in httpx.get(f"{lcloud.url}/roles", headers=headers).json()["roles"]}
    if "service" not in roles:
        roles["service"] = httpx.post(f"{lcloud.url}/roles", headers=headers,
                                      json={"role": {"name": "service"}}).json()["role"]["id"]
    name, password = unique("svc"), uuid.uuid4().hex
    user = httpx.post(f"{lcloud.url}/users", headers=headers, json={"user": {
        "name": name, "password": password, "domain_id": "default"}}).json()["user"]
    project = httpx.get(f"{lcloud.url}/projects?name=admin", headers=headers).json()["projects"][0]
    httpx.put(f"{lcloud.url}/projects/{project['id']}/users/{user['id']}/roles/{roles['service']}", headers=headers)
    service = lcloud.token(name, password, "admin")[0]
    events = [{"name": "network-changed", "server_uuid": server["id"]},
              {"name": "network-vif-plugged", "server_uuid": str(uuid.uuid4()), "tag": "x"}]
    r = call(lcloud, "POST", "/os-server-external-events", service, body={"events": events[:1]})
    assert r.status_code == 200 and r.json()["events"][0]["code"] == 200
    r = call(lcloud, "POST", "/os-server-external-events", service, body={"events": events})
    assert r.status_code == 207 and [e["code"] for e in r.json()["events"]] == [200, 404]
    # volume-extended needs 2.51 and a tag
    bad = [{"name": "volume-extended", "server_uuid": server["id"]}]
    assert call(lcloud, "POST", "/os-server-external-events", service, body={"events": bad}).status_code == 400
    r = call(lcloud, "POST", "/os-server-external-events", service, "2.51", body={"events": bad})
    assert r.status_code == 207 and r.json()["events"][0]["code"] == 400
    for persona in ("admin", "member", "reader"):  # Nova's default: the service role only
        assert call(lcloud, "POST", "/os-server-external-events", who[persona][0],
                    body={"events": events[:1]}).status_code == 403
    call(lcloud, "DELETE", f"/servers/{server['id']}", admin)


def test_tenant_networks_and_networks_proxies(lcloud: Cloud, who) -> None:  # type: ignore[no-untyped-def]
    demo = who["demo"][0]
    listed = call(lcloud, "GET", "/os-tenant-networks", demo).json()["networks"]
    private = [n for n in listed if n["label"] == "private"][0]
    assert private["cidr"] != "None"
    assert call(lcloud, "GET", f"/os-tenant-networks/{private['id']}", demo).json()["network"] == private
    assert call(lcloud, "GET", f"/os-tenant-networks/{uuid.uuid4()}", demo).status_code == 404
    assert call(lcloud, "GET", "/os-tenant-networks", demo, "2.36").status_code == 404
    # another project does not see demo's network; an admin's os-networks lists every one
    assert "private" not in {n["label"] for n in call(lcloud, "GET", "/os-tenant-networks",
                                                       who["other"][0]).json()["networks"]}
    admin_view = call(lcloud, "GET", "/os-networks", who["admin"][0]).json()["networks"]
    assert {"private", "public"} <= {n["label"] for n in admin_view} and "bridge" in admin_view[0]
    shown = call(lcloud, "GET", f"/os-networks/{private['id']}", who["admin"][0]).json()["network"]
    assert shown["label"] == "private" and shown["cidr"] is None
    assert call(lcloud, "GET", "/os-networks", who["admin"][0], "2.36").status_code == 404


def test_floating_ips_pools_and_association(lcloud: Cloud, who) -> None:  # type: ignore[no-untyped-def]
    demo = who["demo"][0]
    assert call(lcloud, "GET", "/os-floating-ip-pools", demo).json() == {"floating_ip_pools": [{"name": "public"}]}
    fip = call(lcloud, "POST", "/os-floating-ips", demo, body={"pool": "public"}).json()["floating_ip"]
    assert fip["pool"] == "public" and fip["instance_id"] is None and fip["fixed_ip"] is None
    second = call(lcloud, "POST", "/os-floating-ips", demo).json()["floating_ip"]  # the only pool
    assert call(lcloud, "POST", "/os-floating-ips", demo, body={"pool": "nope"}).status_code == 404
    assert {fip["id"], second["id"]} <= {f["id"] for f in call(lcloud, "GET", "/os-floating-ips", demo).json()[
        "floating_ips"]}
    assert call(lcloud, "GET", f"/os-floating-ips/{fip['id']}", who["other"][0]).status_code == 404
    assert call(lcloud, "DELETE", f"/os-floating-ips/{uuid.uuid4()}", demo).status_code == 404
    private = [n for n in call(lcloud, "GET", "/os-tenant-networks", demo).json()["networks"]
               if n["label"] == "private"][0]
    server = boot(lcloud, demo, unique("fip"), [{"uuid": private["id"]}])
    r = call(lcloud, "POST", f"/servers/{server['id']}/action", demo, body={"addFloatingIp": {"address": fip["ip"]}})
    assert r.status_code == 202, r.text
    shown = call(lcloud, "GET", f"/os-floating-ips/{fip['id']}", demo).json()["floating_ip"]
    assert shown["instance_id"] == server["id"] and shown["fixed_ip"]
    addresses = call(lcloud, "GET", f"/servers/{server['id']}/ips", demo).json()["addresses"]["private"]
    assert {"floating", "fixed"} == {a["OS-EXT-IPS:type"] for a in addresses}
    # the fixed address has its floating IP: a second one is refused; unknown addresses are 404
    r = call(lcloud, "POST", f"/servers/{server['id']}/action", demo,
             body={"addFloatingIp": {"address": second["ip"]}})
    assert r.status_code == 400
    for action in ("addFloatingIp", "removeFloatingIp"):
        r = call(lcloud, "POST", f"/servers/{server['id']}/action", demo, body={action: {"address": "0.0.0.0"}})
        assert r.status_code == 404
    r = call(lcloud, "POST", f"/servers/{server['id']}/action", demo,
             body={"removeFloatingIp": {"address": second["ip"]}})
    assert r.status_code == 409
    assert call(lcloud, "POST", f"/servers/{server['id']}/action", demo, "2.44",
                body={"removeFloatingIp": {"address": fip["ip"]}}).status_code == 404
    r = call(lcloud, "POST", f"/servers/{server['id']}/action", demo,
             body={"removeFloatingIp": {"address": fip["ip"]}})
    assert r.status_code == 202
    assert call(lcloud, "GET", f"/os-floating-ips/{fip['id']}", demo).json()["floating_ip"]["instance_id"] is None
    # the Network API sees the same floating IPs; releasing through the proxy frees them
    for f in (fip, second):
        assert call(lcloud, "DELETE", f"/os-floating-ips/{f['id']}", demo).status_code == 202
    left = httpx.get(f"{lcloud.network_url}/floatingips", headers={"X-Auth-Token": demo}).json()["floatingips"]
    assert not {fip["id"], second["id"]} & {f["id"] for f in left}
    assert call(lcloud, "GET", "/os-floating-ips", demo, "2.36").status_code == 404
    call(lcloud, "DELETE", f"/servers/{server['id']}", demo)


def test_image_metadata_proxy(lcloud: Cloud, who) -> None:  # type: ignore[no-untyped-def]
    member, reader, other = who["member"][0], who["reader"][0], who["other"][0]
    image = httpx.post(f"{lcloud.image_url}/v2/images", headers={"X-Auth-Token": member}, json={
        "name": unique("meta"), "disk_format": "raw", "container_format": "bare", "visibility": "shared"}).json()
    path = f"/images/{image['id']}/metadata"
    assert call(lcloud, "POST", path, member, body={"metadata": {"a": "1", "b": "2"}}).json()["metadata"] == {
        "a": "1", "b": "2"}
    assert call(lcloud, "PUT", f"{path}/a", member, body={"meta": {"a": "3"}}).json() == {"meta": {"a": "3"}}
    assert call(lcloud, "PUT", f"{path}/a", member, body={"meta": {"z": "3"}}).status_code == 400
    assert call(lcloud, "GET", f"{path}/a", reader).json() == {"meta": {"a": "3"}}
    assert call(lcloud, "POST", path, reader, body={"metadata": {"c": "1"}}).status_code == 403
    assert call(lcloud, "POST", path, other, body={"metadata": {"c": "1"}}).status_code == 404
    assert call(lcloud, "DELETE", f"{path}/b", member).status_code == 204
    assert call(lcloud, "DELETE", f"{path}/b", member).status_code == 404
    assert call(lcloud, "PUT", path, member, body={"metadata": {"only": "x"}}).json()["metadata"] == {"only": "x"}
    shown = httpx.get(f"{lcloud.image_url}/v2/images/{image['id']}", headers={"X-Auth-Token": member}).json()
    assert shown["only"] == "x" and "a" not in shown
    assert call(lcloud, "GET", path, member, "2.39").status_code == 404
    assert call(lcloud, "GET", path, member, "2.38").json()["metadata"] == {"only": "x"}


def test_legacy_quota_keys(lcloud: Cloud, who) -> None:  # type: ignore[no-untyped-def]
    admin, project = who["admin"][0], who["member"][1]
    body = {"quota_set": {"floating_ips": 20, "fixed_ips": 10, "security_groups": 20, "security_group_rules": 30,
                          "instances": 15}}
    r = call(lcloud, "PUT", f"/os-quota-sets/{project}", admin, body=body)
    assert r.status_code == 200 and r.json()["quota_set"]["floating_ips"] == 20
    assert call(lcloud, "GET", f"/os-quota-sets/{project}", admin).json()["quota_set"]["security_group_rules"] == 30
    assert "floating_ips" not in call(lcloud, "GET", f"/os-quota-sets/{project}", admin, "2.36").json()["quota_set"]
    assert call(lcloud, "PUT", f"/os-quota-sets/{project}", admin, "2.36", body=body).status_code == 400
    defaults = call(lcloud, "GET", "/os-quota-class-sets/default", admin).json()["quota_class_set"]
    raised = {k: v + 100 for k, v in defaults.items() if k != "id"}
    updated = call(lcloud, "PUT", "/os-quota-class-sets/default", admin, body={"quota_class_set": raised}).json()
    assert raised.items() <= updated["quota_class_set"].items()
    call(lcloud, "PUT", "/os-quota-class-sets/default", admin,
         body={"quota_class_set": {k: v for k, v in defaults.items() if k != "id"}})


def test_flavor_ids_is_public_and_extra_specs(lcloud: Cloud, who) -> None:  # type: ignore[no-untyped-def]
    admin, member = who["admin"][0], who["member"][0]
    number = int(time.time() * 1000) % 10**9
    r = call(lcloud, "POST", "/flavors", admin, body={"flavor": {"name": unique("int"), "ram": 64, "vcpus": 1,
                                                                 "disk": 1, "id": number,
                                                                 "os-flavor-access:is_public": "False"}})
    assert r.status_code == 200 and r.json()["flavor"]["id"] == str(number)
    assert r.json()["flavor"]["os-flavor-access:is_public"] is False
    auto = call(lcloud, "POST", "/flavors", admin, body={"flavor": {"name": unique("auto"), "ram": 64, "vcpus": 1,
                                                                    "disk": 1, "id": None}}).json()["flavor"]
    assert str(uuid.UUID(auto["id"])) == auto["id"]
    for bad in (" lead", "a/b", "x" * 256):
        assert call(lcloud, "POST", "/flavors", admin, body={"flavor": {"name": unique("bad"), "ram": 64, "vcpus": 1,
                                                                        "disk": 1, "id": bad}}).status_code == 400
    private = str(number)

    def ids(token: str, **params: str) -> set[str]:
        return {f["id"] for f in call(lcloud, "GET", "/flavors", token, **params).json()["flavors"]}

    assert private not in ids(admin) and auto["id"] in ids(admin)
    assert private in ids(admin, is_public="None") and auto["id"] in ids(admin, is_public="none")
    assert private in ids(admin, is_public="false") and auto["id"] not in ids(admin, is_public="false")
    assert private not in ids(admin, is_public="t")
    assert call(lcloud, "GET", "/flavors", admin, is_public="maybe").status_code == 400
    assert private not in ids(member, is_public="none")  # a member's filter is ignored: public ones only
    listed = {f["ID"] for f in json.loads(lcloud.cli("flavor", "list", "--all", "-f", "json").stdout)}
    assert {private, auto["id"]} <= listed
    assert private in {f["ID"] for f in json.loads(lcloud.cli("flavor", "list", "--private", "-f", "json").stdout)}
    # 2.86 checks the hw namespace; other namespaces are the operator's
    specs = f"/flavors/{auto['id']}/os-extra_specs"
    assert call(lcloud, "POST", specs, admin, "2.86", {"extra_specs": {"hw:cpu_policy": "sideways"}}
                ).status_code == 400
    assert call(lcloud, "POST", specs, admin, "2.86", {"extra_specs": {"hw:no_such_thing": "1"}}).status_code == 400
    r = call(lcloud, "POST", specs, admin, "2.86", {"extra_specs": {"hw:cpu_policy": "shared", "foo:bar": "baz"}})
    assert r.status_code == 200 and r.json()["extra_specs"] == {"hw:cpu_policy": "shared", "foo:bar": "baz"}
    assert call(lcloud, "PUT", f"{specs}/hw:numa_nodes", admin, "2.86", {"hw:numa_nodes": "0"}).status_code == 400
    assert call(lcloud, "POST", specs, admin, "2.85", {"extra_specs": {"hw:cpu_policy": "sideways"}}
                ).status_code == 200
    for f in (private, auto["id"]):
        call(lcloud, "DELETE", f"/flavors/{f}", admin)


def test_aggregate_ids_and_internal_zone(lcloud: Cloud, who) -> None:  # type: ignore[no-untyped-def]
    admin = who["admin"][0]
    assert call(lcloud, "GET", "/os-aggregates/-1", admin).status_code == 404
    assert call(lcloud, "DELETE", "/os-aggregates/-1", admin).status_code == 404
    assert call(lcloud, "GET", "/os-aggregates/abc", admin).status_code == 400
    zones = call(lcloud, "GET", "/os-availability-zone/detail", admin).json()["availabilityZoneInfo"]
    internal = [z for z in zones if z["zoneName"] == "internal"][0]
    assert {"nova-conductor", "nova-scheduler"} <= {b for h in internal["hosts"].values() for b in h}
    nova_zone = [z for z in zones if z["zoneName"] == "nova"][0]
    assert nova_zone["hosts"]["fake-0"]["nova-compute"]["available"] is True
    assert "internal" not in {z["zoneName"] for z in call(lcloud, "GET", "/os-availability-zone", admin).json()[
        "availabilityZoneInfo"]}
    assert call(lcloud, "GET", "/os-availability-zone/detail", who["member"][0]).status_code == 403


def test_server_lists_all_tenants_and_changes_bounds(lcloud: Cloud, who) -> None:  # type: ignore[no-untyped-def]
    member, project = who["member"]
    admin = who["admin"][0]
    server = boot(lcloud, member, unique("list"))
    for value in ("True", "1", ""):
        assert call(lcloud, "GET", "/servers", member, all_tenants=value).status_code == 403
    assert call(lcloud, "GET", "/servers/detail", member, all_tenants="yes").status_code == 403
    assert server["id"] in {s["id"] for s in call(lcloud, "GET", "/servers", member, all_tenants="0").json()[
        "servers"]}
    assert call(lcloud, "GET", "/servers", admin, all_tenants="perhaps").status_code == 400
    # an admin's tenant_id filter needs all_tenants (lp:#1185290)
    assert server["id"] not in {s["id"] for s in call(lcloud, "GET", "/servers", admin, tenant_id=project).json()[
        "servers"]}
    assert server["id"] in {s["id"] for s in call(lcloud, "GET", "/servers", admin, tenant_id=project,
                                                  all_tenants="").json()["servers"]}
    # the bounds are inclusive at the second the server's "updated" shows
    shown = call(lcloud, "GET", f"/servers/{server['id']}", member).json()["server"]["updated"]
    for key in ("changes-since", "changes-before"):
        params = {key: shown}
        version = "2.66" if key == "changes-before" else "2.1"
        listed = call(lcloud, "GET", "/servers/detail", member, version, **params).json()["servers"]
        assert server["id"] in {s["id"] for s in listed}, key
    # the openstack CLI asks the same
    out = json.loads(lcloud.cli("--os-compute-api-version", "2.66", "server", "list", "--all-projects",
                                "--changes-before", shown, "-f", "json").stdout)
    assert server["id"] in {s["ID"] for s in out}
    call(lcloud, "DELETE", f"/servers/{server['id']}", member)


def test_multi_nic_order_and_security_groups_by_name(lcloud: Cloud, who) -> None:  # type: ignore[no-untyped-def]
    demo, project = who["demo"]
    conn = lcloud.sdk("cumulo-demo")
    nets = []
    for i, cidr in enumerate(("10.77.1.0/24", "10.77.2.0/24")):
        net = conn.network.create_network(name=unique(f"nic{i}"))
        conn.network.create_subnet(network_id=net.id, ip_version=4, cidr=cidr)
        nets.append(net)
    group = conn.network.create_security_group(name=unique("web"))
    # the port on the first network is older than the one the create makes on the second, but the
    # create asks for the second network first (and for the group by its id)
    port = conn.network.create_port(network_id=nets[0].id, security_group_ids=[group.id])
    server = boot(lcloud, demo, unique("nics"), [{"uuid": nets[1].id}, {"port": port.id}],
                  security_groups=[{"name": group.id}])
    addresses = call(lcloud, "GET", f"/servers/{server['id']}/ips", demo).json()["addresses"]
    assert list(addresses) == [nets[1].name, nets[0].name]
    assert addresses[nets[1].name][0]["addr"].startswith("10.77.2.")
    assert list(server["addresses"]) == [nets[1].name, nets[0].name]
    assert server["security_groups"] == [{"name": group.name}]
    sdk_server = conn.compute.get_server(server["id"])
    assert list(sdk_server.addresses) == [nets[1].name, nets[0].name]
    conn.compute.delete_server(server["id"])
    wait_for(lambda: call(lcloud, "GET", f"/servers/{server['id']}", demo).status_code == 404, 30, "server gone")
    conn.network.delete_port(port)
    for net in nets:
        conn.network.delete_network(net)
    conn.network.delete_security_group(group)


def test_image_proxy_filters_fqdn_hostnames_and_metadata_quota(lcloud: Cloud, who) -> None:  # type: ignore[no-untyped-def]
    member = who["member"][0]
    made = []
    for kind in ("snapshot", "backup"):
        image = httpx.post(f"{lcloud.image_url}/v2/images", headers={"X-Auth-Token": member}, json={
            "name": unique(kind), "disk_format": "raw", "container_format": "bare", "image_type": kind,
            "min_ram": 64 if kind == "backup" else 0}).json()
        made.append(image["id"])
    by_type = {i["id"] for i in call(lcloud, "GET", "/images", member, type="snapshot").json()["images"]}
    assert made[0] in by_type and made[1] not in by_type
    by_property = {i["id"] for i in call(lcloud, "GET", "/images/detail", member,
                                         **{"property-image_type": "backup"}).json()["images"]}
    assert by_property & set(made) == {made[1]}
    assert {i["id"] for i in call(lcloud, "GET", "/images", member, minRam="64").json()["images"]} & set(made) == {
        made[1]}
    assert call(lcloud, "DELETE", "/images/", member).status_code == 404
    assert call(lcloud, "DELETE", "/images/", who["reader"][0]).status_code == 403
    # 2.94 takes a fully qualified host name; 2.90 only a label
    server = boot(lcloud, member, unique("fqdn"))
    r = call(lcloud, "PUT", f"/servers/{server['id']}", member, "2.94", {"server": {"hostname": "web.example.org"}})
    assert r.status_code == 200 and r.json()["server"]["OS-EXT-SRV-ATTR:hostname"] == "web.example.org"
    r = call(lcloud, "PUT", f"/servers/{server['id']}", member, "2.90", {"server": {"hostname": "web.example.org"}})
    assert r.status_code == 400
    # past the metadata_items quota (128) is Nova's 403, not a schema error
    r = call(lcloud, "POST", f"/servers/{server['id']}/metadata", member,
             body={"metadata": {f"k{i}": "v" for i in range(129)}})
    assert r.status_code == 403, r.text
    call(lcloud, "DELETE", f"/servers/{server['id']}", member)
