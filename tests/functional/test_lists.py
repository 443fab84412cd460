"""Image and port lists filtered, sorted and paged by the database (issue 15, "lists that scale"):
Glance's visibility rules followed page by page, Neutron's filters, sort keys and markers, and a
project with more ports than PostgreSQL takes parameters in one statement (the port list used
to send one per port).  On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.functional.conftest import Cloud, _drop_pg_database, start_cloud, stop_cloud, unique


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def lcloud(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp(f"lists-{request.param}"), request.param, {
        "CUMULO_SERVICES": "identity,image,network", "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false"})
    yield c
    stop_cloud(c)
    if request.param == "postgres":
        _drop_pg_database(c.env["CUMULO_DATABASE__URL"].rsplit("/", 1)[1])


def h(token: str) -> dict[str, str]:
    return {"X-Auth-Token": token}


def image(cloud: Cloud, token: str, **attrs: object) -> str:
    body = {"name": unique("img"), "disk_format": "raw", "container_format": "bare", **attrs}
    r = httpx.post(f"{cloud.image_url}/v2/images", headers=h(token), json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def all_pages(cloud: Cloud, token: str, query: str) -> list[dict]:
    """Every image of a listing, following its ``next`` links."""
    out: list[dict] = []
    url = f"{cloud.image_url}/v2/images?{query}"
    for _ in range(100):
        r = httpx.get(url, headers=h(token))
        assert r.status_code == 200, r.text
        out += r.json()["images"]
        if "next" not in r.json():
            return out
        url = f"{cloud.image_url}{r.json()['next']}"
    raise AssertionError("the listing did not end")


def test_image_visibility_page_by_page(lcloud: Cloud) -> None:
    admin, body = lcloud.token()
    demo, demo_body = lcloud.token("demo", lcloud.demo_password, "demo")
    demo_project = demo_body["project"]["id"]
    tag = unique("t")
    ids = {v: image(lcloud, admin, visibility=v, tags=[tag]) for v in ("private", "community", "public")}
    ids["accepted"], ids["pending"] = (image(lcloud, admin, visibility="shared", tags=[tag]) for _ in range(2))
    for key in ("accepted", "pending"):
        r = httpx.post(f"{lcloud.image_url}/v2/images/{ids[key]}/members", headers=h(admin),
                       json={"member": demo_project})
        assert r.status_code == 200, r.text
    r = httpx.put(f"{lcloud.image_url}/v2/images/{ids['accepted']}/members/{demo_project}", headers=h(demo),
                  json={"status": "accepted"})
    assert r.status_code == 200, r.text
    ids["own"] = image(lcloud, demo, visibility="private", tags=[tag])
    ids["unnamed"] = image(lcloud, demo, name=None, tags=[tag])

    paged = all_pages(lcloud, demo, f"tag={tag}&limit=1")
    whole = all_pages(lcloud, demo, f"tag={tag}&limit=1000")
    assert [i["id"] for i in paged] == [i["id"] for i in whole]
    assert {i["id"] for i in paged} == {ids[k] for k in ("public", "accepted", "own", "unnamed")}
    stamps = [i["created_at"] for i in paged]
    assert stamps == sorted(stamps, reverse=True)  # newest first, Glance's default
    assert ids["community"] in {i["id"] for i in all_pages(lcloud, demo, f"tag={tag}&visibility=community")}
    pending = {i["id"] for i in all_pages(lcloud, demo, f"tag={tag}&member_status=pending&limit=2")}
    assert ids["pending"] in pending and ids["accepted"] not in pending
    # another project's private image is no marker of the member's listing
    r = httpx.get(f"{lcloud.image_url}/v2/images?marker={ids['private']}", headers=h(demo))
    assert r.status_code == 400
    # the admin sees every one of them, community ones too, page by page
    everything = all_pages(lcloud, admin, f"tag={tag}&limit=2")
    assert {i["id"] for i in everything} == set(ids.values())
    # a name sort puts the image without a name last ascending, first descending, on every database
    up = all_pages(lcloud, demo, f"tag={tag}&sort_key=name&sort_dir=asc&limit=1")
    assert up[-1]["id"] == ids["unnamed"] and [i["name"] for i in up[:-1]] == sorted(i["name"] for i in up[:-1])
    down = all_pages(lcloud, demo, f"tag={tag}&sort=name:desc,size:asc&limit=1")
    assert down[0]["id"] == ids["unnamed"]
    # id=in: picks those it names, and only what the caller may see
    chosen = all_pages(lcloud, demo, f"id=in:{ids['own']},{ids['private']},{ids['public']}")
    assert {i["id"] for i in chosen} == {ids["own"], ids["public"]}
    r = httpx.get(f"{lcloud.image_url}/v2/images?sort_key=nope", headers=h(demo))
    assert r.status_code == 400
    assert body["project"]["id"] != demo_project


def test_port_filters_sorting_and_markers(lcloud: Cloud) -> None:
    demo, _ = lcloud.token("demo", lcloud.demo_password, "demo")
    admin, _ = lcloud.token()
    net = httpx.post(f"{lcloud.network_url}/networks", headers=h(demo), json={"network": {"name": unique("n")}})
    net_id = net.json()["network"]["id"]
    sub = httpx.post(f"{lcloud.network_url}/subnets", headers=h(demo), json={"subnet": {
        "network_id": net_id, "cidr": "10.77.0.0/24", "ip_version": 4}}).json()["subnet"]
    names = ["c", "a", "e", "b", "d"]
    ports = [httpx.post(f"{lcloud.network_url}/ports", headers=h(demo), json={"port": {
        "network_id": net_id, "name": n, "admin_state_up": n != "e"}}).json()["port"] for n in names]
    theirs = httpx.post(f"{lcloud.network_url}/networks", headers=h(admin), json={"network": {"name": unique("n")}})
    their_port = httpx.post(f"{lcloud.network_url}/ports", headers=h(admin), json={"port": {
        "network_id": theirs.json()["network"]["id"]}}).json()["port"]

    seen: list[dict] = []
    url = f"{lcloud.network_url}/ports?network_id={net_id}&sort_key=name&sort_dir=desc&limit=2"
    for _ in range(10):
        r = httpx.get(url, headers=h(demo))
        assert r.status_code == 200, r.text
        seen += r.json()["ports"]
        links = r.json().get("ports_links")
        if not links:
            break
        url = links[0]["href"]
    assert [p["name"] for p in seen] == ["e", "d", "c", "b", "a"]
    assert all(p["fixed_ips"] and p["fixed_ips"][0]["subnet_id"] == sub["id"] for p in seen)
    # repeated values are any of them; fields cut the views
    r = httpx.get(f"{lcloud.network_url}/ports?id={ports[0]['id']}&id={ports[1]['id']}&fields=id&fields=name",
                  headers=h(demo))
    assert sorted(r.json()["ports"], key=lambda p: p["name"]) == [
        {"id": ports[1]["id"], "name": "a"}, {"id": ports[0]["id"], "name": "c"}]
    address = ports[2]["fixed_ips"][0]["ip_address"]
    r = httpx.get(f"{lcloud.network_url}/ports?fixed_ips=ip_address={address}", headers=h(demo))
    assert [p["id"] for p in r.json()["ports"]] == [ports[2]["id"]]
    r = httpx.get(f"{lcloud.network_url}/ports?network_id={net_id}&admin_state_up=False", headers=h(demo))
    assert [p["name"] for p in r.json()["ports"]] == ["e"]
    # another project's port is neither listed nor a marker
    r = httpx.get(f"{lcloud.network_url}/ports", headers=h(demo))
    assert their_port["id"] not in {p["id"] for p in r.json()["ports"]}
    r = httpx.get(f"{lcloud.network_url}/ports?marker={their_port['id']}", headers=h(demo))
    assert r.status_code == 404
    r = httpx.get(f"{lcloud.network_url}/ports?limit=x", headers=h(demo))
    assert r.status_code == 400


MANY_PORTS = 33_000  # PostgreSQL takes at most 32,767 parameters in one statement


def test_more_ports_than_postgresql_takes_parameters(lcloud: Cloud) -> None:
    """A project with 33,000 ports lists them all (addresses included), and a filter of 300 ids
    answers, on every database."""
    from sqlalchemy import insert

    from cumulo.core.db import Database
    from cumulo.network.models import IPAllocation, Port

    demo, body = lcloud.token("demo", lcloud.demo_password, "demo")
    project = body["project"]["id"]
    net = httpx.post(f"{lcloud.network_url}/networks", headers=h(demo), json={"network": {"name": unique("n")}})
    net_id = net.json()["network"]["id"]
    sub = httpx.post(f"{lcloud.network_url}/subnets", headers=h(demo), json={"subnet": {
        "network_id": net_id, "cidr": "10.128.0.0/9", "ip_version": 4, "enable_dhcp": False}}).json()["subnet"]
    url = lcloud.env.get("CUMULO_DATABASE__URL") or f"sqlite:///{lcloud.state_dir}/cumulo.db"
    ids = [str(uuid.uuid4()) for _ in range(MANY_PORTS)]

    async def fill() -> None:  # written with SQL: 33,000 API calls would take minutes
        db = Database(url)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        for start in range(0, MANY_PORTS, 5000):
            chunk = range(start, min(start + 5000, MANY_PORTS))
            async with db.session() as s:
                await s.execute(insert(Port), [{
                    "id": ids[n], "network_id": net_id, "project_id": project, "name": f"bulk-{n}",
                    "mac_address": f"fa:16:3f:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}",
                    "security_groups": [], "created_at": now, "updated_at": now} for n in chunk])
                await s.execute(insert(IPAllocation), [{
                    "subnet_id": sub["id"], "ip_address": f"10.{128 + (n >> 16)}.{n >> 8 & 255}.{n & 255}",
                    "port_id": ids[n], "network_id": net_id} for n in chunk])
        await db.close()

    asyncio.run(fill())
    r = httpx.get(f"{lcloud.network_url}/ports?network_id={net_id}&fields=id&fields=fixed_ips", headers=h(demo),
                  timeout=120)
    assert r.status_code == 200, r.text[:500]
    listed = r.json()["ports"]
    assert len(listed) == MANY_PORTS and all(len(p["fixed_ips"]) == 1 for p in listed)
    picked = ids[::110][:300]
    query = "&".join(f"id={i}" for i in picked)
    r = httpx.get(f"{lcloud.network_url}/ports?{query}&fields=id", headers=h(demo), timeout=60)
    assert r.status_code == 200, r.text[:500]
    assert {p["id"] for p in r.json()["ports"]} == set(picked)
    r = httpx.get(f"{lcloud.network_url}/ports?network_id={net_id}&limit=1000&marker={listed[0]['id']}",
                  headers=h(demo))
    assert r.status_code == 200 and len(r.json()["ports"]) == 1000 and r.json()["ports_links"]
