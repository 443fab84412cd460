"""Regions: a second region sharing identity ([identity] database_url), with its own database, bus and
compute / network / image / placement / volume endpoints in the one catalog.

RegionOne is a cloud on PostgreSQL; RegionTwo a cloud on its own SQLite database and bus whose
identity is RegionOne's database (and Fernet keys).  The catalog that RegionOne's identity
serves names both regions' endpoints; ``openstack --os-region-name RegionTwo server create``
with RegionOne's clouds.yaml boots in RegionTwo only; a user made through one region logs in
through the other; a token revoked in RegionOne is refused by RegionTwo's APIs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import yaml

from tests.functional.conftest import Cloud, _drop_pg_database, start_cloud, stop_cloud, unique, wait_for

SERVICES = "identity,image,compute,placement,network,volume"
REGIONAL = ("compute", "network", "image", "placement", "block-storage")
COMPUTE = {"OpenStack-API-Version": "compute 2.53"}


@dataclass
class Regions:
    one: Cloud
    two: Cloud


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Regions]:
    root = tmp_path_factory.mktemp("regions")
    (root / "one").mkdir()
    (root / "two").mkdir()
    one = start_cloud(root / "one", "postgres", {"CUMULO_SERVICES": SERVICES, "CUMULO_VOLUME__LOCAL_NODE": "false"})
    two = None
    try:
        two = start_cloud(root / "two", "sqlite", {
            "CUMULO_SERVICES": SERVICES, "CUMULO_VOLUME__LOCAL_NODE": "false", "CUMULO_API__REGION": "RegionTwo",
            "CUMULO_IDENTITY__DATABASE_URL": one.env["CUMULO_DATABASE__URL"],
            "CUMULO_IDENTITY__KEY_REPOSITORY": str(one.state_dir / "fernet-keys"),
            "CUMULO_BOOTSTRAP__ADMIN_PASSWORD": one.admin_password,
            "CUMULO_BOOTSTRAP__DEMO_PASSWORD": one.demo_password})
        yield Regions(one, two)
    finally:
        if two is not None:
            stop_cloud(two)
        stop_cloud(one)
        _drop_pg_database(one.env["CUMULO_DATABASE__URL"].rsplit("/", 1)[1])


def catalog(token: dict) -> dict[tuple[str, str], str]:
    return {(e["type"], x["region_id"]): x["url"] for e in token["catalog"] for x in e["endpoints"]
            if x["interface"] == "public"}


def test_the_catalog_names_each_regions_own_endpoints(regions: Regions) -> None:
    for cloud in (regions.one, regions.two):  # the same catalog through either identity API
        token, body = cloud.token()
        urls = catalog(body)
        assert urls[("compute", "RegionOne")] == regions.one.compute_url
        assert urls[("compute", "RegionTwo")] == regions.two.compute_url
        for kind in REGIONAL:
            assert urls[(kind, "RegionOne")] != urls[(kind, "RegionTwo")], kind
        assert urls[("identity", "RegionTwo")] == regions.two.url
        ids = {r["id"] for r in httpx.get(f"{cloud.url}/regions", headers={"X-Auth-Token": token}).json()["regions"]}
        assert {"RegionOne", "RegionTwo"} <= ids


def test_a_server_created_with_os_region_name_region_two_lives_there_only(regions: Regions) -> None:
    # RegionOne's clouds.yaml, with both regions listed (openstacksdk refuses a region its cloud
    # entry does not name): what a user of both regions writes
    data = yaml.safe_load(regions.one.clouds_yaml.read_text())
    data["clouds"]["cumulo"]["regions"] = ["RegionOne", "RegionTwo"]
    both = regions.one.state_dir / "clouds-both-regions.yaml"
    both.write_text(yaml.safe_dump(data))
    cli = dataclasses.replace(regions.one, clouds_yaml=both).cli
    name = unique("r2")
    out = cli("--os-region-name", "RegionTwo", "--os-compute-api-version", "2.37", "server", "create",
              "--flavor", "10", "--image", "cumulo-tiny", "--nic", "none", "--wait", "-f", "json", name)
    server = json.loads(out.stdout)
    assert server["status"] == "ACTIVE", server
    token, _ = regions.one.token()
    h = {"X-Auth-Token": token, **COMPUTE}
    assert httpx.get(f"{regions.two.compute_url}/servers/{server['id']}", headers=h).status_code == 200
    assert httpx.get(f"{regions.one.compute_url}/servers/{server['id']}", headers=h).status_code == 404
    listed = cli("--os-region-name", "RegionOne", "server", "list", "-f", "json")
    assert name not in listed.stdout
    cli("--os-region-name", "RegionTwo", "server", "delete", "--wait", server["id"])
    assert httpx.get(f"{regions.two.compute_url}/servers/{server['id']}", headers=h).status_code == 404


def test_identity_is_one_across_regions(regions: Regions) -> None:
    admin, _ = regions.one.token()
    v3 = {"X-Auth-Token": admin}
    name, password = unique("traveller"), unique("pw")
    project = httpx.post(f"{regions.one.url}/projects", headers=v3, json={"project": {
        "name": unique("p"), "domain_id": "default"}}).json()["project"]
    user = httpx.post(f"{regions.one.url}/users", headers=v3, json={"user": {
        "name": name, "password": password, "domain_id": "default"}}).json()["user"]
    member = [r["id"] for r in httpx.get(f"{regions.one.url}/roles?name=member", headers=v3).json()["roles"]][0]
    assert httpx.put(f"{regions.one.url}/projects/{project['id']}/users/{user['id']}/roles/{member}",
                     headers=v3).status_code == 204
    # made through RegionOne, it logs in through RegionTwo's identity API and works on its compute
    token, _ = regions.two.token(name, password, project["name"])
    h = {"X-Auth-Token": token, **COMPUTE}
    assert httpx.get(f"{regions.two.compute_url}/servers", headers=h).status_code == 200
    assert httpx.get(f"{regions.one.compute_url}/servers", headers=h).status_code == 200
    # revoked in RegionOne: RegionTwo refuses it (its caches follow identity's stored generation)
    assert httpx.delete(f"{regions.one.url}/auth/tokens", headers={**v3, "X-Subject-Token": token}
                        ).status_code == 204
    wait_for(lambda: httpx.get(f"{regions.two.compute_url}/servers", headers=h).status_code == 401, 15,
             "RegionTwo to refuse the token revoked in RegionOne")
