"""Nova's security-group proxy (os-security-groups, os-security-group-rules, a server's groups and
the add/removeSecurityGroup actions) on a cloud that runs the Network API: what it makes is the
Network API's own, and it is gone at microversion 2.36."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.functional.conftest import Cloud, start_cloud, stop_cloud, unique


@pytest.fixture(scope="module")
def scloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("sg-cloud"), "sqlite", {
        "CUMULO_SERVICES": "identity,image,compute,placement,network"})
    yield c
    stop_cloud(c)


def nova(token: str, version: str = "2.1") -> dict[str, str]:
    return {"X-Auth-Token": token, "OpenStack-API-Version": f"compute {version}"}


def demo_token(cloud: Cloud) -> str:
    return cloud.token("demo", cloud.demo_password, "demo")[0]


def make_group(cloud: Cloud, token: str, name: str | None = None, description: str = "made through nova") -> dict:
    r = httpx.post(f"{cloud.compute_url}/os-security-groups", headers=nova(token), json={"security_group": {
        "name": name or unique("sg"), "description": description}})
    assert r.status_code == 200, r.text
    return dict(r.json()["security_group"])


def make_rule(cloud: Cloud, token: str, **rule: object) -> httpx.Response:
    return httpx.post(f"{cloud.compute_url}/os-security-group-rules", headers=nova(token),
                      json={"security_group_rule": rule})


def test_groups_and_rules_round_trip_with_the_network_api(scloud: Cloud) -> None:
    token = demo_token(scloud)
    nh = {"X-Auth-Token": token}
    name = f" {unique('web')} "  # surrounding spaces are kept
    web = make_group(scloud, token, name)
    assert web["name"] == name and web["description"] == "made through nova" and web["rules"] == []
    shown = httpx.get(f"{scloud.compute_url}/os-security-groups/{web['id']}", headers=nova(token)).json()
    assert shown["security_group"] == web
    listed = httpx.get(f"{scloud.compute_url}/os-security-groups", headers=nova(token)).json()["security_groups"]
    assert web in listed and "default" in [g["name"] for g in listed]
    default = [g for g in listed if g["name"] == "default"][0]
    assert {(r["group"]["name"], r["ip_protocol"]) for r in default["rules"]} == {("default", None)}  # ingress only
    net_view = httpx.get(f"{scloud.network_url}/security-groups/{web['id']}", headers=nh).json()["security_group"]
    assert net_view["name"] == name and net_view["project_id"] == web["tenant_id"]

    renamed = unique("web2")
    r = httpx.put(f"{scloud.compute_url}/os-security-groups/{web['id']}", headers=nova(token), json={
        "security_group": {"name": renamed, "description": "renamed"}})
    assert r.status_code == 200 and r.json()["security_group"]["name"] == renamed
    cli = json.loads(scloud.cli("security", "group", "show", web["id"], "-f", "json", cloud="cumulo-demo").stdout)
    assert cli["name"] == renamed and cli["description"] == "renamed"

    ssh = make_rule(scloud, token, parent_group_id=web["id"], ip_protocol="tcp", from_port=22, to_port=22)
    assert ssh.status_code == 200, ssh.text
    assert ssh.json()["security_group_rule"] == {
        "id": ssh.json()["security_group_rule"]["id"], "parent_group_id": web["id"], "ip_protocol": "tcp",
        "from_port": 22, "to_port": 22, "ip_range": {"cidr": "0.0.0.0/0"}, "group": {}}
    rule_id = ssh.json()["security_group_rule"]["id"]
    in_network = httpx.get(f"{scloud.network_url}/security-group-rules?security_group_id={web['id']}",
                           headers=nh).json()["security_group_rules"]
    mine = [x for x in in_network if x["id"] == rule_id]
    assert mine and mine[0]["direction"] == "ingress" and mine[0]["protocol"] == "tcp"
    assert (mine[0]["port_range_min"], mine[0]["port_range_max"], mine[0]["ethertype"]) == (22, 22, "IPv4")
    cli_rules = json.loads(scloud.cli("security", "group", "rule", "list", web["id"], "-f", "json",
                                      cloud="cumulo-demo").stdout)
    assert rule_id in [x["ID"] for x in cli_rules]

    ranged = make_rule(scloud, token, parent_group_id=web["id"], ip_protocol="tcp", from_port=80, to_port=81,
                       cidr="10.2.3.124/24").json()["security_group_rule"]
    assert ranged["ip_range"] == {"cidr": "10.2.3.124/24"}  # as written, as Nova answers
    ping = make_rule(scloud, token, parent_group_id=web["id"], ip_protocol="icmp", from_port=-1, to_port=-1)
    assert ping.status_code == 200 and (ping.json()["security_group_rule"]["from_port"],
                                        ping.json()["security_group_rule"]["to_port"]) == (-1, -1)
    peer = make_group(scloud, token)
    from_peer = make_rule(scloud, token, parent_group_id=web["id"], ip_protocol="tcp", from_port=5432,
                          to_port=5432, group_id=peer["id"]).json()["security_group_rule"]
    assert from_peer["group"] == {"name": peer["name"], "tenant_id": web["tenant_id"]} and from_peer["ip_range"] == {}
    # a rule the Network API made shows through Nova (egress ones do not: Nova knows only ingress)
    httpx.post(f"{scloud.network_url}/security-group-rules", headers=nh, json={"security_group_rule": {
        "security_group_id": web["id"], "direction": "ingress", "protocol": "udp", "port_range_min": 53,
        "port_range_max": 53}})
    rules = httpx.get(f"{scloud.compute_url}/os-security-groups/{web['id']}",
                      headers=nova(token)).json()["security_group"]["rules"]
    assert {(x["ip_protocol"], x["from_port"], x["to_port"]) for x in rules} == {
        ("tcp", 22, 22), ("tcp", 80, 81), ("icmp", -1, -1), ("tcp", 5432, 5432), ("udp", 53, 53)}

    # deleting the peer takes the rules that name it along (as Neutron does)
    assert httpx.delete(f"{scloud.compute_url}/os-security-groups/{peer['id']}", headers=nova(token)
                        ).status_code == 202
    rules = httpx.get(f"{scloud.compute_url}/os-security-groups/{web['id']}",
                      headers=nova(token)).json()["security_group"]["rules"]
    assert from_peer["id"] not in [x["id"] for x in rules] and len(rules) == 4
    assert httpx.delete(f"{scloud.compute_url}/os-security-group-rules/{rule_id}", headers=nova(token)
                        ).status_code == 202
    assert httpx.get(f"{scloud.network_url}/security-group-rules/{rule_id}", headers=nh).status_code == 404
    assert httpx.delete(f"{scloud.compute_url}/os-security-groups/{web['id']}", headers=nova(token)
                        ).status_code == 202
    assert httpx.get(f"{scloud.compute_url}/os-security-groups/{web['id']}", headers=nova(token)).status_code == 404
    assert httpx.get(f"{scloud.network_url}/security-groups/{web['id']}", headers=nh).status_code == 404


def test_bad_input_unknown_ids_and_the_default_group_get_compute_faults(scloud: Cloud) -> None:
    token = demo_token(scloud)
    url = f"{scloud.compute_url}/os-security-groups"
    for body in ({"security_group": {"name": "x"}}, {"security_group": {"description": "x"}},
                 {"security_group": {"name": "x" * 256, "description": ""}},
                 {"security_group": {"name": 5, "description": ""}},
                 {"security_group": {"name": "x", "description": "d" * 256}}, {"name": "x"}, []):
        r = httpx.post(url, headers=nova(token), json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["badRequest"]["code"] == 400 and r.json()["badRequest"]["message"]
    group = make_group(scloud, token)
    gid = group["id"]
    bad_rules = [
        {"parent_group_id": "not-a-uuid", "ip_protocol": "tcp", "from_port": 22, "to_port": 22},
        {"parent_group_id": gid, "ip_protocol": "tcp", "from_port": 65536, "to_port": 22},
        {"parent_group_id": gid, "ip_protocol": "tcp", "from_port": 22, "to_port": 65536},
        {"parent_group_id": gid, "ip_protocol": "tcp", "from_port": 22, "to_port": 21},
        {"parent_group_id": gid, "ip_protocol": "tcp", "from_port": 0, "to_port": 21},
        {"parent_group_id": gid, "ip_protocol": "999x", "from_port": 22, "to_port": 22},
        {"parent_group_id": gid, "ip_protocol": "tcp", "from_port": "a", "to_port": 22},
        {"parent_group_id": gid, "ip_protocol": "icmp", "from_port": 256, "to_port": 0},
        {"parent_group_id": gid, "ip_protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "10.0.0.300/24"},
        {"parent_group_id": gid, "ip_protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "10.1.0.0/0"},
        {"parent_group_id": gid, "cidr": "10.0.0.0/8"},  # a range with nothing to open
        {"parent_group_id": gid, "group_id": "nope"},
        {"ip_protocol": "tcp", "from_port": 22, "to_port": 22}]
    for rule in bad_rules:
        r = make_rule(scloud, token, **rule)
        assert r.status_code == 400, (rule, r.text)
        assert "badRequest" in r.json()
    ok = make_rule(scloud, token, parent_group_id=gid, ip_protocol="tcp", from_port=22, to_port=22)
    assert ok.status_code == 200
    dup = make_rule(scloud, token, parent_group_id=gid, ip_protocol="tcp", from_port=22, to_port=22)
    assert dup.status_code == 400 and "already exists" in dup.json()["badRequest"]["message"]
    unknown = "9b6a46f2-1ce2-4b5c-8c4a-3d1c05a2b7e1"
    assert make_rule(scloud, token, parent_group_id=unknown, ip_protocol="tcp", from_port=22,
                     to_port=22).status_code == 404
    assert make_rule(scloud, token, parent_group_id=gid, ip_protocol="tcp", from_port=1, to_port=2,
                     group_id=unknown).status_code == 404
    r = httpx.get(f"{url}/{unknown}", headers=nova(token))
    assert r.status_code == 404 and r.json()["itemNotFound"]["code"] == 404
    assert httpx.get(f"{url}/not-a-uuid", headers=nova(token)).status_code == 400
    assert httpx.put(f"{url}/{unknown}", headers=nova(token), json={"security_group": {
        "name": "a", "description": "b"}}).status_code == 404
    assert httpx.delete(f"{url}/{unknown}", headers=nova(token)).status_code == 404
    assert httpx.delete(f"{url}/", headers=nova(token)).status_code == 404
    assert httpx.delete(f"{scloud.compute_url}/os-security-group-rules/{unknown}", headers=nova(token)
                        ).status_code == 404
    assert httpx.delete(f"{scloud.compute_url}/os-security-group-rules/xyz", headers=nova(token)).status_code == 400
    # the default group: not deleted, not renamed, its name not taken
    groups = httpx.get(url, headers=nova(token)).json()["security_groups"]
    default = [g for g in groups if g["name"] == "default"][0]
    r = httpx.delete(f"{url}/{default['id']}", headers=nova(token))
    assert r.status_code == 400 and "default" in r.json()["badRequest"]["message"]
    assert httpx.put(f"{url}/{default['id']}", headers=nova(token), json={"security_group": {
        "name": "other", "description": ""}}).status_code == 400
    assert httpx.post(url, headers=nova(token), json={"security_group": {
        "name": "default", "description": ""}}).status_code == 400
    # another project's group is not there at all
    admin = scloud.token()[0]
    assert httpx.get(f"{url}/{gid}", headers=nova(admin)).status_code == 200  # an admin sees it
    admins_group = make_group(scloud, admin)
    assert httpx.get(f"{url}/{admins_group['id']}", headers=nova(token)).status_code == 404
    assert admins_group["id"] not in [g["id"] for g in httpx.get(url, headers=nova(token)).json()["security_groups"]]
    everyone = httpx.get(f"{url}?all_tenants=1", headers=nova(admin)).json()["security_groups"]
    assert {gid, admins_group["id"]} <= {g["id"] for g in everyone}
    assert len(httpx.get(f"{url}?limit=1", headers=nova(token)).json()["security_groups"]) == 1
    assert httpx.get(f"{url}?limit=-1", headers=nova(token)).status_code == 400
    for g in (group, admins_group):
        httpx.delete(f"{url}/{g['id']}", headers=nova(admin))


def test_the_proxy_is_gone_at_2_36(scloud: Cloud) -> None:
    token = demo_token(scloud)
    group = make_group(scloud, token)
    url = scloud.compute_url
    calls = [("GET", "/os-security-groups", None), ("POST", "/os-security-groups", {"security_group": {
        "name": "x", "description": ""}}), ("GET", f"/os-security-groups/{group['id']}", None),
        ("PUT", f"/os-security-groups/{group['id']}", {"security_group": {"name": "x", "description": ""}}),
        ("DELETE", f"/os-security-groups/{group['id']}", None),
        ("POST", "/os-security-group-rules", {"security_group_rule": {
            "parent_group_id": group["id"], "ip_protocol": "tcp", "from_port": 1, "to_port": 2}}),
        ("DELETE", f"/os-security-group-rules/{group['id']}", None)]
    for method, path, body in calls:
        r = httpx.request(method, f"{url}{path}", headers=nova(token, "2.36"), json=body)
        assert r.status_code == 404 and "itemNotFound" in r.json(), (method, path, r.text)
    assert httpx.get(f"{url}/os-security-groups/{group['id']}", headers=nova(token, "2.35")).status_code == 200
    assert httpx.get(f"{url}/os-security-group-default-rules", headers=nova(token)).status_code == 410
    assert httpx.delete(f"{url}/os-security-groups/{group['id']}", headers=nova(token, "2.35")).status_code == 202


def test_quotas_of_the_network_api_give_403(scloud: Cloud) -> None:
    name, password = unique("sgq"), "s3cret-pass"
    project = json.loads(scloud.cli("project", "create", name, "-f", "json").stdout)["id"]
    scloud.cli("user", "create", "--password", password, "--project", name, name)
    scloud.cli("role", "add", "--user", name, "--project", name, "member")
    token = scloud.token(name, password, name)[0]
    admin = {"X-Auth-Token": scloud.token()[0]}
    # the default group (4 rules) and one more group (2 egress rules) fit; then room for one rule
    r = httpx.put(f"{scloud.network_url}/quotas/{project}", headers=admin, json={"quota": {
        "security_group": 2, "security_group_rule": 7}})
    assert r.status_code == 200, r.text
    group = make_group(scloud, token)
    r = httpx.post(f"{scloud.compute_url}/os-security-groups", headers=nova(token), json={"security_group": {
        "name": "one-too-many", "description": ""}})
    assert r.status_code == 403 and "Quota exceeded" in r.json()["forbidden"]["message"]
    assert make_rule(scloud, token, parent_group_id=group["id"], ip_protocol="tcp", from_port=1,
                     to_port=1).status_code == 200
    r = make_rule(scloud, token, parent_group_id=group["id"], ip_protocol="tcp", from_port=2, to_port=2)
    assert r.status_code == 403 and "forbidden" in r.json()


def wait_active(cloud: Cloud, token: str, server_id: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        s = httpx.get(f"{cloud.compute_url}/servers/{server_id}", headers=nova(token)).json()["server"]
        if s["status"] in ("ACTIVE", "ERROR") or time.monotonic() > deadline:
            assert s["status"] == "ACTIVE", s.get("fault")
            return dict(s)
        time.sleep(0.2)


def test_add_and_remove_groups_on_a_server(scloud: Cloud) -> None:
    token = demo_token(scloud)
    nh = {"X-Auth-Token": token}
    image = httpx.get(f"{scloud.image_url}/v2/images?name=cumulo-tiny", headers=nh).json()["images"][0]["id"]
    net = httpx.post(f"{scloud.network_url}/networks", headers=nh, json={"network": {"name": unique("n")}}
                     ).json()["network"]
    httpx.post(f"{scloud.network_url}/subnets", headers=nh, json={"subnet": {
        "network_id": net["id"], "ip_version": 4, "cidr": "10.80.0.0/24"}})
    web, db = make_group(scloud, token), make_group(scloud, token)

    def boot(networks: object) -> str:
        r = httpx.post(f"{scloud.compute_url}/servers", headers=nova(token), json={"server": {
            "name": unique("vm"), "flavorRef": "10", "imageRef": image, "networks": networks}})
        assert r.status_code == 202, r.text
        return str(r.json()["server"]["id"])

    server_id = boot([{"uuid": net["id"]}])
    wait_active(scloud, token, server_id)
    action = f"{scloud.compute_url}/servers/{server_id}/action"
    by_server = f"{scloud.compute_url}/servers/{server_id}/os-security-groups"
    assert [g["name"] for g in httpx.get(by_server, headers=nova(token)).json()["security_groups"]] == ["default"]

    assert httpx.post(action, headers=nova(token), json={"addSecurityGroup": {"name": web["name"]}}
                      ).status_code == 202
    assert httpx.post(action, headers=nova(token), json={"addSecurityGroup": {"name": db["id"]}}).status_code == 202
    assert httpx.post(action, headers=nova(token), json={"addSecurityGroup": {"name": web["name"]}}
                      ).status_code == 202  # already there: nothing changes
    port = httpx.get(f"{scloud.network_url}/ports?device_id={server_id}", headers=nh).json()["ports"][0]
    assert port["security_groups"][1:] == [web["id"], db["id"]]
    groups = httpx.get(by_server, headers=nova(token)).json()["security_groups"]
    assert {g["id"] for g in groups} == {port["security_groups"][0], web["id"], db["id"]}
    assert httpx.get(by_server, headers=nova(token, "2.90")).status_code == 200  # not part of the proxy
    shown = json.loads(scloud.cli("--os-compute-api-version", "2.1", "server", "show", server_id, "-f", "json",
                                  cloud="cumulo-demo").stdout)
    assert web["name"] in json.dumps(shown["security_groups"])
    r = httpx.delete(f"{scloud.compute_url}/os-security-groups/{web['id']}", headers=nova(token))
    assert r.status_code == 400 and "in use" in r.json()["badRequest"]["message"]

    assert httpx.post(action, headers=nova(token), json={"removeSecurityGroup": {"name": web["name"]}}
                      ).status_code == 202
    port = httpx.get(f"{scloud.network_url}/ports/{port['id']}", headers=nh).json()["port"]
    assert web["id"] not in port["security_groups"] and db["id"] in port["security_groups"]
    r = httpx.post(action, headers=nova(token), json={"removeSecurityGroup": {"name": web["name"]}})
    assert r.status_code == 404 and "not associated" in r.json()["itemNotFound"]["message"]
    for body, status in (({"addSecurityGroup": {"name": "no-such-group"}}, 404),
                         ({"addSecurityGroup": {}}, 400), ({"addSecurityGroup": {"name": " "}}, 400),
                         ({"addSecurityGroup": "web"}, 400), ({"removeSecurityGroup": {"name": ""}}, 400),
                         ({"removeSecurityGroup": {"name": "no-such-group"}}, 404)):
        r = httpx.post(action, headers=nova(token), json=body)
        assert r.status_code == status, (body, r.text)
    twin = unique("twin")
    make_group(scloud, token, twin)
    make_group(scloud, token, twin)
    assert httpx.post(action, headers=nova(token), json={"addSecurityGroup": {"name": twin}}).status_code == 409
    unknown = "9b6a46f2-1ce2-4b5c-8c4a-3d1c05a2b7e1"
    assert httpx.get(f"{scloud.compute_url}/servers/{unknown}/os-security-groups", headers=nova(token)
                     ).status_code == 404
    assert httpx.post(f"{scloud.compute_url}/servers/{unknown}/action", headers=nova(token), json={
        "addSecurityGroup": {"name": web["name"]}}).status_code == 404

    # a server without ports has nothing to put a group on
    bare = boot("none")
    wait_active(scloud, token, bare)
    r = httpx.post(f"{scloud.compute_url}/servers/{bare}/action", headers=nova(token), json={
        "addSecurityGroup": {"name": web["name"]}})
    assert r.status_code == 404 and "ports" in r.json()["itemNotFound"]["message"]

    for s in (server_id, bare):
        assert httpx.delete(f"{scloud.compute_url}/servers/{s}", headers=nova(token)).status_code == 204
    deadline = time.monotonic() + 20
    while True:  # the ports go with the server; then the groups are free
        r = httpx.delete(f"{scloud.compute_url}/os-security-groups/{db['id']}", headers=nova(token))
        if r.status_code == 202 or time.monotonic() > deadline:
            assert r.status_code == 202, r.text
            break
        time.sleep(0.2)
    assert httpx.delete(f"{scloud.compute_url}/os-security-groups/{web['id']}", headers=nova(token)
                        ).status_code == 202
