"""Bounded input on every API: schemas before any work, Content-Type, depth, NUL, counts.

One cloud (SQLite, fake nodes) for the module; a plain member of project demo is the hostile
tenant, as in issue 11's report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.functional.conftest import Cloud, start_cloud, stop_cloud


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("bounds"), "sqlite",
                    {"CUMULO_SERVICES": "identity,image,compute,placement,network"})
    yield c
    stop_cloud(c)


@pytest.fixture(scope="module")
def member(bounded: Cloud) -> str:
    token = bounded.token("demo", bounded.demo_password, "demo")[0]
    images = httpx.get(bounded.image_url + "/v2/images", headers={"X-Auth-Token": token}).json()["images"]
    IMAGE[:] = [i["id"] for i in images if i["status"] == "active"][:1]
    assert IMAGE, "no active image to boot"
    return token


def nova(cloud: Cloud, token: str, path: str, body: object = None, version: str = "2.74",
         content: bytes | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    h = {"X-Auth-Token": token, "OpenStack-API-Version": f"compute {version}", **(headers or {})}
    if content is not None:
        return httpx.post(cloud.compute_url + path, content=content, headers=h, timeout=30)
    return httpx.post(cloud.compute_url + path, json=body, headers=h, timeout=30)


IMAGE: list[str] = []  # an active image of the module's cloud, found once


def server(**fields: object) -> dict:
    return {"server": {"name": "vm", "flavorRef": "1", "imageRef": IMAGE[0] if IMAGE else "", "networks": "none",
                       **fields}}


def test_huge_max_count_is_refused_at_once_while_every_api_answers(bounded: Cloud, member: str) -> None:
    """Issue 11: a 300-digit max_count froze every API; now a 400 in milliseconds."""
    admin = bounded.token()[0]
    stop = threading.Event()
    slowest: list[float] = []

    def probe() -> None:  # identity and compute must keep answering throughout
        while not stop.is_set():
            t = time.perf_counter()
            r = httpx.get(bounded.url + "/auth/tokens", headers={"X-Auth-Token": admin, "X-Subject-Token": member})
            assert r.status_code == 200
            slowest.append(time.perf_counter() - t)

    watcher = threading.Thread(target=probe)
    watcher.start()
    try:
        for value in (int("9" * 300), "9" * 300, 10**9, "1000001", 1001, -1, 0, 1.5, [], {}, "many"):
            t = time.perf_counter()
            r = nova(bounded, member, "/servers", server(max_count=value, min_count=1))
            took = time.perf_counter() - t
            assert r.status_code == 400, (value, r.text)
            assert "max_count" in r.json()["badRequest"]["message"]
            assert took < 1.0, f"max_count={str(value)[:20]} took {took:.2f} s"
        r = nova(bounded, member, "/servers", server(min_count="9" * 300))
        assert r.status_code == 400 and "min_count" in r.text
    finally:
        stop.set()
        watcher.join()
    assert slowest and max(slowest) < 1.0
    listed = httpx.get(bounded.compute_url + "/servers", headers={"X-Auth-Token": member})
    assert listed.status_code == 200 and listed.json()["servers"] == []


def test_more_servers_than_the_quota_are_refused_before_any_row(bounded: Cloud, member: str) -> None:
    admin, token = bounded.token()
    demo = next(p for p in httpx.get(bounded.url + "/projects", headers={"X-Auth-Token": admin}).json()["projects"]
                if p["name"] == "demo")
    r = httpx.put(f"{bounded.compute_url}/os-quota-sets/{demo['id']}", headers={"X-Auth-Token": admin},
                  json={"quota_set": {"instances": 3}})
    assert r.status_code == 200, r.text
    try:
        r = nova(bounded, member, "/servers", server(min_count=4, max_count=1000))
        assert r.status_code == 403 and "instances" in r.json()["forbidden"]["message"], r.text
        every = httpx.get(bounded.compute_url + "/servers/detail", params={"deleted": "true", "all_tenants": "1"},
                          headers={"X-Auth-Token": admin}).json()["servers"]
        assert [s for s in every if s["tenant_id"] == demo["id"]] == []  # nothing was built, not even deleted
        r = nova(bounded, member, "/servers", server(min_count=1, max_count=1000, return_reservation_id=True))
        assert r.status_code == 202, r.text
        rid = r.json()["reservation_id"]
        mine = [s for s in httpx.get(bounded.compute_url + "/servers/detail", headers={"X-Auth-Token": member},
                                     params={"reservation_id": rid}).json()["servers"]]
        assert len(mine) == 3  # trimmed to what the quota allows, as Nova does
        for s in mine:
            assert httpx.delete(f"{bounded.compute_url}/servers/{s['id']}",
                                headers={"X-Auth-Token": member}).status_code == 204
    finally:
        httpx.put(f"{bounded.compute_url}/os-quota-sets/{demo['id']}", headers={"X-Auth-Token": admin},
                  json={"quota_set": {"instances": 10}})


@pytest.mark.parametrize("fields, field", [
    ({"key_name": ["a", "b"]}, "key_name"),
    ({"key_name": {"x": 1}}, "key_name"),
    ({"name": "a\x00b"}, "NUL"),
    ({"name": "tab\there"}, "name"),
    ({"name": "x" * 256}, "name"),
    ({"colour": "blue"}, "colour"),
    ({"networks": [{"uuid": "a", "fixed_ip": "not-an-address"}]}, "fixed_ip"),
    ({"metadata": {"k": 5}}, "metadata"),
    ({"user_data": "not base64 !!"}, "user_data"),
    ({"security_groups": "default"}, "security_groups"),
])
def test_server_create_bodies_are_checked_before_any_work(bounded: Cloud, member: str, fields: dict,
                                                           field: str) -> None:
    r = nova(bounded, member, "/servers", server(**fields))
    assert r.status_code == 400, r.text
    assert field in r.json()["badRequest"]["message"]


def test_unknown_top_level_key_and_wrong_types_everywhere(bounded: Cloud, member: str) -> None:
    r = nova(bounded, member, "/servers", {**server(), "surprise": 1})
    assert r.status_code == 400 and "surprise" in r.text
    r = nova(bounded, member, "/servers", ["server"])
    assert r.status_code == 400 and r.json()["badRequest"]["code"] == 400


def test_content_type_must_be_json_on_every_api(bounded: Cloud, member: str) -> None:
    h = {"X-Auth-Token": member, "Content-Type": "text/plain"}
    body = b'{"network": {"name": "n"}}'
    cases = [
        (bounded.compute_url + "/servers", lambda j: j["badMediaType"]["code"] == 415),
        (bounded.network_url + "/networks", lambda j: j["NeutronError"]["type"] == "UnsupportedMediaType"),
        (bounded.url + "/auth/tokens", lambda j: j["error"]["code"] == 415),
        (bounded.image_url + "/v2/images", lambda j: j["code"] == 415),
        (bounded.placement_url + "/resource_providers", lambda j: j["errors"][0]["status"] == 415),
    ]
    for url, shaped in cases:
        r = httpx.post(url, content=body, headers=h)
        assert r.status_code == 415, (url, r.status_code, r.text)
        assert shaped(r.json()), (url, r.text)
    # JSON by another name is fine, and so is no Content-Type at all (clients of old send none)
    r = httpx.post(bounded.network_url + "/networks", content=b'{"network": {"name": "ok-net"}}',
                   headers={"X-Auth-Token": member, "Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 201, r.text
    httpx.delete(f"{bounded.network_url}/networks/{r.json()['network']['id']}", headers={"X-Auth-Token": member})


def test_deep_nesting_and_nul_are_refused_on_every_api(bounded: Cloud, member: str) -> None:
    deep = b'{"a": ' * 200 + b"1" + b"}" * 200
    nul = b'{"network": {"name": "a\\u0000b"}}'
    for url in (bounded.compute_url + "/servers", bounded.network_url + "/networks", bounded.url + "/users",
                bounded.image_url + "/v2/images", bounded.placement_url + "/resource_providers"):
        for content, word in ((deep, "deeper"), (nul, "NUL")):
            r = httpx.post(url, content=content, headers={"X-Auth-Token": member,
                                                          "Content-Type": "application/json"})
            assert r.status_code == 400, (url, word, r.text)
            assert word in r.text, (url, r.text)


def test_openapi_documents_on_the_operator_port(bounded: Cloud) -> None:
    docs = httpx.get(f"http://127.0.0.1:{bounded.metrics_port}/openapi.json").json()
    assert {"identity", "compute", "image", "network", "placement"} <= set(docs)
    create = docs["compute"]["paths"]["/v2.1/servers"]["post"]["requestBody"]["content"]["application/json"]
    assert create["schema"]["properties"]["server"]["properties"]["max_count"]
    assert docs["compute"]["servers"][0]["url"].startswith("http://")
    one = httpx.get(f"http://127.0.0.1:{bounded.metrics_port}/openapi/network.json")
    assert one.status_code == 200 and "/v2.0/ports" in one.json()["paths"]
    assert httpx.get(f"http://127.0.0.1:{bounded.metrics_port}/openapi/nope.json").status_code == 404


def test_every_schema_names_a_route_the_cloud_serves(bounded: Cloud) -> None:
    """A schema keyed by a mistyped route would check nothing: each one is in its API's document."""
    from cumulo.compute.schemas import SCHEMAS as compute
    from cumulo.identity.schemas import SCHEMAS as identity
    from cumulo.image.schemas import REQUEST_SCHEMAS as image
    from cumulo.network.schemas import SCHEMAS as network
    from cumulo.placement.schemas import SCHEMAS as placement

    docs = httpx.get(f"http://127.0.0.1:{bounded.metrics_port}/openapi.json").json()
    for service, schemas in (("compute", compute), ("identity", identity), ("image", image),
                             ("network", network), ("placement", placement)):
        for method, path in schemas:
            op = docs[service]["paths"].get(path, {}).get(method.lower())
            assert op is not None and "requestBody" in op, (service, method, path)


def test_placement_inventory_post_passes_its_schema(bounded: Cloud) -> None:
    admin = bounded.token()[0]
    h = {"X-Auth-Token": admin, "OpenStack-API-Version": "placement 1.20"}
    r = httpx.post(bounded.placement_url + "/resource_providers", json={"name": "bounds-rp"}, headers=h)
    assert r.status_code == 200, r.text
    rp = r.json()
    r = httpx.post(f"{bounded.placement_url}/resource_providers/{rp['uuid']}/inventories", headers=h,
                   json={"resource_class": "VCPU", "total": 8, "resource_provider_generation": rp["generation"]})
    assert r.status_code == 201, r.text
    r = httpx.post(f"{bounded.placement_url}/resource_providers/{rp['uuid']}/inventories", headers=h,
                   json={"resource_class": "MEMORY_MB", "total": 8, "surprise": 1,
                         "resource_provider_generation": rp["generation"] + 1})
    assert r.status_code == 400 and "surprise" in r.json()["errors"][0]["detail"], r.text
