"""Compute v2.1 without hosts: versions and microversions, flavors (extra specs, private access),
key pairs, limits and quota sets, through the CLI, openstacksdk and HTTP."""

from __future__ import annotations

import json

import httpx

from tests.functional.conftest import Cloud, unique


def h(token: str, version: str | None = None) -> dict[str, str]:
    headers = {"X-Auth-Token": token}
    if version:
        headers["OpenStack-API-Version"] = f"compute {version}"
    return headers


def test_versions_and_microversion_negotiation(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    doc = httpx.get(cloud.compute_url).json()["version"]
    assert doc["min_version"] == "2.1" and doc["status"] == "CURRENT"
    r = httpx.get(f"{cloud.compute_url}/flavors/1", headers=h(admin[0], "2.61"))
    assert r.headers["OpenStack-API-Version"] == "compute 2.61" and "extra_specs" in r.json()["flavor"]
    r = httpx.get(f"{cloud.compute_url}/flavors/1", headers=h(admin[0]))
    assert r.headers["OpenStack-API-Version"] == "compute 2.1" and "extra_specs" not in r.json()["flavor"]
    r = httpx.get(f"{cloud.compute_url}/flavors/1", headers=h(admin[0], "2.999"))
    assert r.status_code == 406 and "notAcceptable" in r.json()


def test_ops_guide_flavors_and_cli_flavor_lifecycle(cloud: Cloud) -> None:
    names = {f["Name"] for f in json.loads(cloud.cli("flavor", "list", "-f", "json").stdout)}
    assert {"m1.tiny", "m1.small", "m1.medium", "m1.large", "m1.xlarge", "cumulo.nano"} <= names
    name = unique("flv")
    cloud.cli("flavor", "create", "--vcpus", "2", "--ram", "256", "--disk", "1", "--description", "test", name)
    cloud.cli("flavor", "set", "--property", "hw:cpu_policy=shared", name)
    shown = json.loads(cloud.cli("flavor", "show", name, "-f", "json").stdout)
    assert shown["properties"] == {"hw:cpu_policy": "shared"} and shown["vcpus"] == 2
    cloud.cli("flavor", "unset", "--property", "hw:cpu_policy", name)
    cloud.cli("flavor", "delete", name)
    assert cloud.cli("flavor", "show", name, check=False).returncode != 0


def test_private_flavor_access(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    conn = cloud.sdk()
    flavor = conn.compute.create_flavor(name=unique("private"), ram=128, vcpus=1, disk=1, is_public=False)
    demo_token, demo_body = cloud.token("demo", cloud.demo_password, "demo")
    assert httpx.get(f"{cloud.compute_url}/flavors/{flavor.id}", headers=h(demo_token)).status_code == 404
    conn.compute.flavor_add_tenant_access(flavor, demo_body["project"]["id"])
    assert httpx.get(f"{cloud.compute_url}/flavors/{flavor.id}", headers=h(demo_token)).status_code == 200
    listed = httpx.get(f"{cloud.compute_url}/flavors", headers=h(demo_token)).json()["flavors"]
    assert flavor.id in [f["id"] for f in listed]
    r = httpx.post(f"{cloud.compute_url}/flavors", headers=h(demo_token),
                   json={"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 0}})
    assert r.status_code == 403 and r.json()["forbidden"]["code"] == 403
    conn.compute.delete_flavor(flavor)


def test_bad_flavor_input(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    for body, status in (({"flavor": {"name": "a", "ram": -1, "vcpus": 1, "disk": 0}}, 400),
                         ({"flavor": {"name": "", "ram": 1, "vcpus": 1, "disk": 0}}, 400),
                         ({"flavor": {"name": "m1.tiny", "ram": 1, "vcpus": 1, "disk": 0}}, 409),
                         ({"nope": {}}, 400)):
        r = httpx.post(f"{cloud.compute_url}/flavors", headers=h(token), json=body)
        assert r.status_code == status, (body, r.text)
    assert httpx.get(f"{cloud.compute_url}/flavors/nope", headers=h(token)).json()["itemNotFound"]["code"] == 404


def test_keypairs_generated_imported_and_quota(cloud: Cloud, admin, tmp_path) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    name = unique("gen")
    r = httpx.post(f"{cloud.compute_url}/os-keypairs", headers=h(token, "2.2"), json={"keypair": {"name": name}})
    assert r.status_code == 201 and r.json()["keypair"]["private_key"].startswith("-----BEGIN")
    public = r.json()["keypair"]["public_key"]
    imported = unique("imp")
    r = httpx.post(f"{cloud.compute_url}/os-keypairs", headers=h(token, "2.92"),
                   json={"keypair": {"name": imported, "public_key": public}})
    assert r.status_code == 201 and "private_key" not in r.json()["keypair"]
    r = httpx.post(f"{cloud.compute_url}/os-keypairs", headers=h(token, "2.92"), json={"keypair": {"name": "x"}})
    assert r.status_code == 400
    r = httpx.post(f"{cloud.compute_url}/os-keypairs", headers=h(token, "2.2"),
                   json={"keypair": {"name": imported, "public_key": public}})
    assert r.status_code == 409
    r = httpx.post(f"{cloud.compute_url}/os-keypairs", headers=h(token, "2.2"),
                   json={"keypair": {"name": "bad", "public_key": "ssh-rsa not-base64!"}})
    assert r.status_code == 400
    r = httpx.post(f"{cloud.compute_url}/os-keypairs", headers=h(token, "2.2"),
                   json={"keypair": {"name": unique("x509"), "type": "x509"}})
    assert r.status_code == 201 and r.json()["keypair"]["public_key"].startswith("-----BEGIN CERTIFICATE")
    key_file = tmp_path / "k.pub"
    key_file.write_text(public)
    cli_name = unique("cli")
    cloud.cli("keypair", "create", "--public-key", str(key_file), cli_name)
    listed = json.loads(cloud.cli("keypair", "list", "-f", "json").stdout)
    assert {imported, cli_name} <= {k["Name"] for k in listed}
    # paging (2.35): limit=0 is an empty page without a next link (it was a 500 the fuzzer found)
    r = httpx.get(f"{cloud.compute_url}/os-keypairs", headers=h(token, "2.35"), params={"limit": "0"})
    assert r.status_code == 200 and r.json() == {"keypairs": []}, r.text
    r = httpx.get(f"{cloud.compute_url}/os-keypairs", headers=h(token, "2.35"), params={"limit": "1"})
    assert len(r.json()["keypairs"]) == 1 and "marker=" in r.json()["keypairs_links"][0]["href"]
    cloud.cli("keypair", "delete", cli_name)
    assert httpx.get(f"{cloud.compute_url}/os-keypairs/{cli_name}", headers=h(token)).status_code == 404


def test_quota_sets_and_limits_follow_unified_limits(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    project = unique("q")
    cloud.cli("project", "create", project)
    project_id = json.loads(cloud.cli("project", "show", project, "-f", "json").stdout)["id"]
    r = httpx.get(f"{cloud.compute_url}/os-quota-sets/{project_id}", headers=h(token))
    assert r.json()["quota_set"]["instances"] == 10 and r.json()["quota_set"]["ram"] == 51200
    cloud.cli("quota", "set", "--instances", "3", "--cores", "7", project)
    r = httpx.get(f"{cloud.compute_url}/os-quota-sets/{project_id}", headers=h(token))
    assert r.json()["quota_set"]["instances"] == 3 and r.json()["quota_set"]["cores"] == 7
    limits = httpx.get(f"{cloud.url}/limits?project_id={project_id}", headers=h(token)).json()["limits"]
    assert {x["resource_name"]: x["resource_limit"] for x in limits} == {"servers": 3, "class:VCPU": 7}
    r = httpx.put(f"{cloud.compute_url}/os-quota-sets/{project_id}", headers=h(token),
                  json={"quota_set": {"instances": "many"}})
    assert r.status_code == 400
    demo_token, _ = cloud.token("demo", cloud.demo_password, "demo")
    r = httpx.put(f"{cloud.compute_url}/os-quota-sets/{project_id}", headers=h(demo_token),
                  json={"quota_set": {"instances": 100}})
    assert r.status_code == 403
    absolute = httpx.get(f"{cloud.compute_url}/limits", headers=h(demo_token)).json()["limits"]["absolute"]
    assert absolute["maxTotalInstances"] == 10 and absolute["maxTotalKeypairs"] == 100
    assert httpx.delete(f"{cloud.compute_url}/os-quota-sets/{project_id}", headers=h(token)).status_code == 202
    r = httpx.get(f"{cloud.compute_url}/os-quota-sets/{project_id}", headers=h(token))
    assert r.json()["quota_set"]["instances"] == 10


def test_server_groups_policies_microversions_and_quota(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    url = f"{cloud.compute_url}/os-server-groups"
    r = httpx.post(url, headers=h(token, "2.1"), json={"server_group": {"name": "g1", "policies": ["affinity"]}})
    assert r.status_code == 200 and r.json()["server_group"]["policies"] == ["affinity"]
    r = httpx.post(url, headers=h(token, "2.1"), json={"server_group": {"name": "g2",
                                                                         "policies": ["soft-affinity"]}})
    assert r.status_code == 400  # soft policies need 2.15
    r = httpx.post(url, headers=h(token, "2.64"), json={"server_group": {
        "name": "g3", "policy": "anti-affinity", "rules": {"max_server_per_host": 2}}})
    assert r.status_code == 200 and r.json()["server_group"]["rules"] == {"max_server_per_host": 2}
    r = httpx.post(url, headers=h(token, "2.64"), json={"server_group": {
        "name": "g4", "policy": "affinity", "rules": {"max_server_per_host": 2}}})
    assert r.status_code == 400
    group = json.loads(cloud.cli("server", "group", "create", "--policy", "anti-affinity", unique("cli"),
                                 "-f", "json").stdout)
    shown = json.loads(cloud.cli("server", "group", "show", group["id"], "-f", "json").stdout)
    assert shown["policy"] == "anti-affinity"
    cloud.cli("server", "group", "delete", group["id"])
    # the quota: a project limited to 2 server groups gets a 413 on the third, even when racing
    project = unique("sgq")
    cloud.cli("project", "create", project)
    cloud.cli("role", "add", "--user", "admin", "--project", project, "member")
    cloud.cli("quota", "set", "--server-groups", "2", project)
    scoped, _ = cloud.token(project=project)
    import concurrent.futures

    def make(i: int) -> int:
        return httpx.post(url, headers=h(scoped, "2.64"), json={"server_group": {
            "name": f"race-{i}", "policy": "affinity"}}).status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(make, range(6)))
    assert codes.count(200) <= 2 and set(codes) <= {200, 413}
    listed = httpx.get(url, headers=h(scoped)).json()["server_groups"]
    assert len(listed) <= 2


def test_compute_answers_carry_nova_request_id_headers(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    r = httpx.get(f"{cloud.compute_url}/flavors", headers={"X-Auth-Token": admin[0]})
    assert r.headers["x-compute-request-id"] == r.headers["x-openstack-request-id"]
    assert r.headers["x-openstack-request-id"].startswith("req-")
