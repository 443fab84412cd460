"""Placement over HTTP and openstacksdk: providers, inventories with generations, traits,
aggregates, allocations (no double booking under concurrency), usages and candidates, custom
resource classes (POST /resource_classes) and consumer types with their usages (1.38)."""

from __future__ import annotations

import concurrent.futures
import uuid

import httpx

from tests.functional.conftest import Cloud, unique


def h(token: str, version: str = "1.39") -> dict[str, str]:
    return {"X-Auth-Token": token, "OpenStack-API-Version": f"placement {version}"}


def provider(cloud: Cloud, token: str, vcpu: int = 4, ram: int = 2048, ratio: float = 1.0) -> str:
    r = httpx.post(f"{cloud.placement_url}/resource_providers", headers=h(token), json={"name": unique("node")})
    assert r.status_code == 200, r.text
    rp = r.json()
    r = httpx.put(f"{cloud.placement_url}/resource_providers/{rp['uuid']}/inventories", headers=h(token), json={
        "resource_provider_generation": rp["generation"],
        "inventories": {"VCPU": {"total": vcpu, "allocation_ratio": ratio},
                        "MEMORY_MB": {"total": ram, "reserved": 256, "allocation_ratio": 1.0}}})
    assert r.status_code == 200, r.text
    return str(rp["uuid"])


def allocate(cloud: Cloud, token: str, rp: str, consumer: str, vcpu: int = 1, generation: object = None
             ) -> httpx.Response:
    return httpx.put(f"{cloud.placement_url}/allocations/{consumer}", headers=h(token), json={
        "allocations": {rp: {"resources": {"VCPU": vcpu}}}, "project_id": "p", "user_id": "u",
        "consumer_generation": generation, "consumer_type": "INSTANCE"})


def test_sdk_provider_and_generation_conflicts(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    conn = cloud.sdk()
    rp = conn.placement.create_resource_provider(name=unique("sdk-node"))
    assert rp.generation == 0
    url = f"{cloud.placement_url}/resource_providers/{rp.id}/inventories"
    body = {"resource_provider_generation": 0, "inventories": {"DISK_GB": {"total": 100}}}
    assert httpx.put(url, headers=h(token), json=body).status_code == 200
    r = httpx.put(url, headers=h(token), json=body)  # stale generation
    assert r.status_code == 409 and r.json()["errors"][0]["code"] == "placement.concurrent_update"
    inv = httpx.get(url, headers=h(token)).json()
    assert inv["inventories"]["DISK_GB"]["allocation_ratio"] == 1.0 and inv["resource_provider_generation"] == 1
    r = httpx.put(url, headers=h(token), json={"resource_provider_generation": 1,
                                               "inventories": {"NOT_A_CLASS": {"total": 1}}})
    assert r.status_code == 400
    conn.placement.delete_resource_provider(rp)


def test_no_double_booking_under_concurrency(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    rp = provider(cloud, token, vcpu=4)
    consumers = [str(uuid.uuid4()) for _ in range(16)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda c: allocate(cloud, token, rp, c).status_code, consumers))
    assert codes.count(204) == 4 and codes.count(409) == 12, codes
    usage = httpx.get(f"{cloud.placement_url}/resource_providers/{rp}/usages", headers=h(token)).json()
    assert usage["usages"]["VCPU"] == 4


def test_allocations_consumer_generation_and_capacity(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    rp = provider(cloud, token, vcpu=2, ratio=2.0)  # capacity 4
    consumer = str(uuid.uuid4())
    assert allocate(cloud, token, rp, consumer, vcpu=3).status_code == 204
    shown = httpx.get(f"{cloud.placement_url}/allocations/{consumer}", headers=h(token)).json()
    assert shown["allocations"][rp]["resources"] == {"VCPU": 3} and shown["consumer_generation"] == 1
    assert allocate(cloud, token, rp, consumer, vcpu=4, generation=None).status_code == 409  # stale generation
    assert allocate(cloud, token, rp, consumer, vcpu=4, generation=1).status_code == 204  # resize in place
    assert allocate(cloud, token, rp, str(uuid.uuid4()), vcpu=1).status_code == 409  # full
    r = httpx.put(f"{cloud.placement_url}/resource_providers/{rp}/inventories/VCPU", headers=h(token),
                  json={"resource_provider_generation": 99, "total": 1})
    assert r.status_code == 409
    provider_gen = httpx.get(f"{cloud.placement_url}/resource_providers/{rp}", headers=h(token)).json()["generation"]
    r = httpx.put(f"{cloud.placement_url}/resource_providers/{rp}/inventories/VCPU", headers=h(token),
                  json={"resource_provider_generation": provider_gen, "total": 1, "allocation_ratio": 1.0})
    assert r.status_code == 409 and "usage" in r.json()["errors"][0]["detail"]  # below what is in use
    assert httpx.delete(f"{cloud.placement_url}/resource_providers/{rp}", headers=h(token)).status_code == 409
    assert httpx.delete(f"{cloud.placement_url}/allocations/{consumer}", headers=h(token)).status_code == 204
    assert httpx.delete(f"{cloud.placement_url}/resource_providers/{rp}", headers=h(token)).status_code == 204


def test_candidates_traits_aggregates_and_usages(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    small, big = provider(cloud, token, vcpu=1, ram=1024), provider(cloud, token, vcpu=8, ram=8192)
    trait = f"CUSTOM_{unique('T').replace('-', '_').upper()}"
    assert httpx.put(f"{cloud.placement_url}/traits/{trait}", headers=h(token)).status_code == 201
    gen = httpx.get(f"{cloud.placement_url}/resource_providers/{big}", headers=h(token)).json()["generation"]
    r = httpx.put(f"{cloud.placement_url}/resource_providers/{big}/traits", headers=h(token),
                  json={"traits": [trait, "HW_CPU_X86_AVX2"], "resource_provider_generation": gen})
    assert r.status_code == 200
    agg = str(uuid.uuid4())
    gen = r.json()["resource_provider_generation"]
    r = httpx.put(f"{cloud.placement_url}/resource_providers/{big}/aggregates", headers=h(token),
                  json={"aggregates": [agg], "resource_provider_generation": gen})
    assert r.status_code == 200
    url = f"{cloud.placement_url}/allocation_candidates"
    found = httpx.get(url, headers=h(token), params={"resources": "VCPU:2,MEMORY_MB:512"}).json()
    assert big in found["provider_summaries"] and small not in found["provider_summaries"]
    found = httpx.get(url, headers=h(token), params={"resources": "VCPU:1", "required": trait}).json()
    assert list(found["provider_summaries"]) == [big]
    assert trait in found["provider_summaries"][big]["traits"]
    found = httpx.get(url, headers=h(token), params={"resources": "VCPU:1", "member_of": agg}).json()
    assert list(found["provider_summaries"]) == [big]
    found = httpx.get(url, headers=h(token), params={"resources": "VCPU:1", "required": f"!{trait}"}).json()
    assert big not in found["provider_summaries"]
    assert httpx.get(url, headers=h(token), params={"resources": "VCPU:x"}).status_code == 400
    consumer = str(uuid.uuid4())
    r = httpx.put(f"{cloud.placement_url}/allocations/{consumer}", headers=h(token, "1.37"), json={
        "allocations": {big: {"resources": {"VCPU": 2, "MEMORY_MB": 1024}}}, "project_id": "proj-x",
        "user_id": "u", "consumer_generation": None})
    assert r.status_code == 204
    usages = httpx.get(f"{cloud.placement_url}/usages", headers=h(token, "1.37"),
                       params={"project_id": "proj-x"}).json()
    assert usages["usages"] == {"VCPU": 2, "MEMORY_MB": 1024}


def test_placement_needs_admin(cloud: Cloud) -> None:
    demo, _ = cloud.token("demo", cloud.demo_password, "demo")
    r = httpx.get(f"{cloud.placement_url}/resource_providers", headers=h(demo))
    assert r.status_code == 403 and r.json()["errors"][0]["status"] == 403


def test_post_resource_classes_makes_custom_classes_once(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    base = f"{cloud.placement_url}/resource_classes"
    name = f"CUSTOM_{uuid.uuid4().hex[:10].upper()}"
    r = httpx.post(base, headers=h(token, "1.2"), json={"name": name})
    assert r.status_code == 201 and r.headers["Location"].endswith(f"/resource_classes/{name}")
    r = httpx.post(base, headers=h(token), json={"name": name})
    assert r.status_code == 409 and r.json()["errors"][0]["code"] == "placement.duplicate_name"
    assert name in [c["name"] for c in httpx.get(base, headers=h(token)).json()["resource_classes"]]
    assert httpx.get(f"{base}/{name}", headers=h(token)).status_code == 200
    for bad in ({"name": "VCPU"}, {"name": "CUSTOM_lower"}, {"name": "CUSTOM_"}, {"name": 3}, {},
                {"name": "CUSTOM_" + "X" * 300}, {"name": f"{name}_2", "extra": 1}):
        assert httpx.post(base, headers=h(token), json=bad).status_code == 400, bad
    assert httpx.post(base, headers=h(token, "1.1"), json={"name": f"{name}_OLD"}).status_code == 404
    sdk_name = f"CUSTOM_{uuid.uuid4().hex[:10].upper()}"
    created = cloud.sdk().placement.create_resource_class(name=sdk_name)
    assert created.name == sdk_name
    demo, _ = cloud.token("demo", cloud.demo_password, "demo")
    assert httpx.post(base, headers=h(demo), json={"name": f"{name}_DEMO"}).status_code == 403


def test_consumer_types_on_allocations_and_usages(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    rp = provider(cloud, token, vcpu=16, ram=8192)
    project = unique("proj-ct")
    url = f"{cloud.placement_url}/allocations"

    def put(consumer: str, version: str, generation: object = None, vcpu: int = 1, **extra: object) -> httpx.Response:
        return httpx.put(f"{url}/{consumer}", headers=h(token, version), json={
            "allocations": {rp: {"resources": {"VCPU": vcpu, "MEMORY_MB": 128}}}, "project_id": project,
            "user_id": "u", "consumer_generation": generation, **extra})

    instance, migration, untyped = (str(uuid.uuid4()) for _ in range(3))
    r = put(instance, "1.38")
    assert r.status_code == 400 and "'consumer_type' is a required property" in r.text
    assert put(instance, "1.38", consumer_type="instance").status_code == 400
    assert put(instance, "1.37", consumer_type="INSTANCE").status_code == 400  # unknown before 1.38
    assert put(instance, "1.38", consumer_type="INSTANCE", vcpu=2).status_code == 204
    assert put(migration, "1.38", consumer_type="MIGRATION").status_code == 204
    assert put(untyped, "1.36").status_code == 204
    assert httpx.get(f"{url}/{instance}", headers=h(token, "1.38")).json()["consumer_type"] == "INSTANCE"
    assert httpx.get(f"{url}/{untyped}", headers=h(token, "1.38")).json()["consumer_type"] == "unknown"
    assert "consumer_type" not in httpx.get(f"{url}/{instance}", headers=h(token, "1.37")).json()
    # a write at 1.36 keeps the type; one at 1.38 changes it
    assert put(migration, "1.36", generation=1).status_code == 204
    assert httpx.get(f"{url}/{migration}", headers=h(token, "1.38")).json()["consumer_type"] == "MIGRATION"
    r = httpx.post(url, headers=h(token, "1.38"), json={untyped: {
        "allocations": {rp: {"resources": {"VCPU": 1}}}, "project_id": project, "user_id": "u",
        "consumer_generation": 1}})
    assert r.status_code == 400 and "consumer_type" in r.text

    def usages(version: str = "1.38", **params: str) -> httpx.Response:
        return httpx.get(f"{cloud.placement_url}/usages", headers=h(token, version),
                         params={"project_id": project, **params})

    assert usages().json()["usages"] == {
        "INSTANCE": {"consumer_count": 1, "VCPU": 2, "MEMORY_MB": 128},
        "MIGRATION": {"consumer_count": 1, "VCPU": 1, "MEMORY_MB": 128},
        "unknown": {"consumer_count": 1, "VCPU": 1, "MEMORY_MB": 128}}
    assert usages(consumer_type="MIGRATION").json()["usages"] == {
        "MIGRATION": {"consumer_count": 1, "VCPU": 1, "MEMORY_MB": 128}}
    assert usages(consumer_type="all").json()["usages"] == {"all": {"consumer_count": 3, "VCPU": 4,
                                                                    "MEMORY_MB": 384}}
    assert usages(consumer_type="unknown").json()["usages"] == {
        "unknown": {"consumer_count": 1, "VCPU": 1, "MEMORY_MB": 128}}
    assert usages(consumer_type="ALL").json()["usages"] == {}  # ALL is a type name, not all
    assert usages(consumer_type="COW").json()["usages"] == {}
    assert usages(consumer_type="cow").status_code == 400
    assert usages("1.37", consumer_type="all").status_code == 400
    assert usages("1.37").json()["usages"] == {"VCPU": 4, "MEMORY_MB": 384}
    # the type changes with a write at 1.38
    assert put(untyped, "1.38", generation=1, consumer_type="INSTANCE").status_code == 204
    assert usages().json()["usages"]["INSTANCE"] == {"consumer_count": 2, "VCPU": 3, "MEMORY_MB": 256}
    demo, _ = cloud.token("demo", cloud.demo_password, "demo")
    assert httpx.get(f"{cloud.placement_url}/usages", headers=h(demo, "1.38"),
                     params={"project_id": project}).status_code == 403
