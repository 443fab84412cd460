"""The dashboard's admin pages against one cloud (SQLite, fake nodes, block storage): each page shows
real content to the admin, each form changes the API's state (read back through the API), bad
input comes back beside its field in the API's words with a 400, a member and a reader get the
403 page with nothing of the page on every admin route, and a form without its CSRF token is
refused.

Project Q holds a server, a volume, a network, a router and a private image, made by Q's member;
their names must appear on the admin's pages and on none of the pages a member or reader gets.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from tests.functional.conftest import Cloud, identity_admin, start_cloud, stop_cloud, unique, wait_for
from tests.functional.dashboard_helpers import Browser

COMPUTE = {"OpenStack-API-Version": "compute 2.79"}
VOLUME = {"OpenStack-API-Version": "volume 3.60"}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("dashboard-admin"), "sqlite", {
        "CUMULO_SERVICES": "identity,image,compute,placement,network,volume,dashboard",
        "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false"})
    yield c
    stop_cloud(c)


class Apis:
    """The cloud's APIs with one token: ``apis.compute("GET", "/servers")`` returns the JSON."""

    def __init__(self, cloud: Cloud, token: str) -> None:
        self.cloud, self.h = cloud, {"X-Auth-Token": token}

    def call(self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
             ok: int = 300, **kw: Any) -> Any:
        r = httpx.request(method, url, json=body, headers={**self.h, **(headers or {})}, timeout=30, **kw)
        assert r.status_code < ok, f"{method} {url}: {r.status_code} {r.text[:500]}"
        return r.json() if r.content and "json" in r.headers.get("content-type", "") else None

    def status(self, method: str, url: str) -> int:
        return httpx.request(method, url, headers=self.h, timeout=30).status_code

    def compute(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return self.call(method, self.cloud.compute_url + path, body, COMPUTE, **kw)

    def volume(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return self.call(method, self.cloud.volume_url + path, body, VOLUME, **kw)

    def network(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return self.call(method, self.cloud.network_url + path, body, **kw)

    def identity(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return self.call(method, self.cloud.url + path, body, **kw)

    def image(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return self.call(method, self.cloud.image_url + path, body, **kw)


def person(cloud: Cloud, v3: Any, project: dict[str, Any], role: str, prefix: str) -> SimpleNamespace:
    """A new user with ``role`` on ``project``, its password and its token."""
    name, password = unique(f"{prefix}-{role}"), uuid.uuid4().hex
    user = v3("POST", "/users", {"user": {"name": name, "password": password, "domain_id": "default"}})["user"]
    role_id = v3("GET", f"/roles?name={role}")["roles"][0]["id"]
    v3("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{role_id}")
    return SimpleNamespace(name=name, password=password, id=user["id"], project=project,
                           token=cloud.token(name, password, project["name"])[0])


@pytest.fixture(scope="module")
def world(cloud: Cloud) -> SimpleNamespace:
    """Projects P (a member and a reader) and Q (a member with a server, volume, network, router, image)."""
    v3 = identity_admin(cloud)
    p = v3("POST", "/projects", {"project": {"name": unique("adm-p"), "domain_id": "default"}})["project"]
    q = v3("POST", "/projects", {"project": {"name": unique("adm-q"), "domain_id": "default"}})["project"]
    member, reader, other = (person(cloud, v3, p, "member", "adm"), person(cloud, v3, p, "reader", "adm"),
                             person(cloud, v3, q, "member", "adm"))
    qa = Apis(cloud, other.token)
    names = SimpleNamespace(server=unique("q-secret-vm"), volume=unique("q-secret-vol"),
                            network=unique("q-secret-net"), router=unique("q-secret-rtr"),
                            image=unique("q-secret-img"))
    image = qa.image("POST", "/v2/images", {"name": names.image, "disk_format": "raw", "container_format": "bare"})
    qa.call("PUT", f"{cloud.image_url}/v2/images/{image['id']}/file", content=b"\0" * 4096,
            headers={"Content-Type": "application/octet-stream"})
    wait_for(lambda: qa.image("GET", f"/v2/images/{image['id']}")["status"] == "active", 30, "image active")
    server = qa.compute("POST", "/servers", {"server": {"name": names.server, "imageRef": image["id"],
                                                        "flavorRef": "1", "networks": "none"}})["server"]
    volume = qa.volume("POST", "/volumes", {"volume": {"name": names.volume, "size": 1}})["volume"]
    network = qa.network("POST", "/networks", {"network": {"name": names.network}})["network"]
    router = qa.network("POST", "/routers", {"router": {"name": names.router}})["router"]
    wait_for(lambda: qa.compute("GET", f"/servers/{server['id']}")["server"]["status"] == "ACTIVE", 60,
             "Q's server ACTIVE")
    wait_for(lambda: qa.volume("GET", f"/volumes/{volume['id']}")["volume"]["status"] == "available", 60,
             "Q's volume available")
    admin = Apis(cloud, cloud.token()[0])
    return SimpleNamespace(p=p, q=q, member=member, reader=reader, other=other, names=names, admin=admin,
                           server=server, volume=volume, network=network, router=router, image=image,
                           secrets=[q["name"], *vars(names).values()])


@pytest.fixture(scope="module")
def browser(cloud: Cloud) -> Iterator[Browser]:
    b = Browser(cloud)
    b.login("admin", cloud.admin_password, "admin")
    yield b
    b.close()


def field_error(html: str, name: str) -> str:
    m = re.search(rf'<span class="field-error" id="error-{re.escape(name)}"[^>]*>(.*?)</span>', html, re.S)
    return m.group(1).strip() if m else ""


def ok_page(browser: Browser, path: str, *expected: str, **params: Any) -> str:
    r = browser.page(path, **params)
    assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:800]}"
    for text in expected:
        assert text in r.text, f"{path} does not show {text!r}"
    return r.text


# -- every page renders real content ----------------------------------------------------------------
def test_every_admin_page_shows_every_projects_resources_to_the_admin(browser: Browser, world: SimpleNamespace,
                                                                      cloud: Cloud) -> None:
    n, q = world.names, world.q
    host = world.admin.compute("GET", f"/servers/{world.server['id']}")["server"]["OS-EXT-SRV-ATTR:host"]
    ok_page(browser, "/admin/", q["name"])
    csv = browser.page("/admin/usage.csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert q["id"] in csv.text and q["name"] in csv.text
    ok_page(browser, "/admin/hypervisors", "fake-0", "fake-1", "Compute services", "16",
            f'href="/admin/instances?host={host}"')
    page = ok_page(browser, "/admin/instances", n.server, q["name"], host)
    assert n.server in ok_page(browser, "/admin/instances", project_id=q["id"])
    assert n.server not in ok_page(browser, "/admin/instances", project_id=world.p["id"])
    other_host = "fake-1" if host == "fake-0" else "fake-0"
    assert n.server not in ok_page(browser, "/admin/instances", host=other_host)
    assert 'id="all-instances"' in page
    ok_page(browser, "/admin/aggregates", "Availability zones", "nova")
    ok_page(browser, "/admin/flavors", "m1.tiny", "cumulo.nano")
    ok_page(browser, "/admin/images", n.image, q["name"])
    ok_page(browser, "/admin/volumes", n.volume, q["name"], "available")
    ok_page(browser, "/admin/volume-types", "__DEFAULT__")
    ok_page(browser, "/admin/networks", n.network, q["name"])
    ok_page(browser, "/admin/routers", n.router, q["name"])
    ok_page(browser, "/admin/projects", q["name"], world.p["name"], q["id"])
    ok_page(browser, "/admin/users", world.other.name, world.member.name)
    ok_page(browser, "/admin/groups", "Create a group")
    ok_page(browser, "/admin/roles", "reader", "manager")
    ok_page(browser, "/admin/defaults", "Compute: cores", "Block storage: gigabytes", "security_group_rule")
    info = ok_page(browser, "/admin/info", "nova-compute", "cinder-volume", "Network agents", cloud.compute_url)
    assert "block-storage" in info and "identity" in info
    ok_page(browser, f"/admin/hosts/{host}/evacuate", n.server)
    ok_page(browser, f"/admin/projects/{q['id']}/quotas", "Compute: instances", "Network: port",
            "Block storage: volumes")
    ok_page(browser, f"/admin/users/{world.other.id}/roles", q["name"], "member")


def test_lists_are_paged_by_the_apis(browser: Browser, world: SimpleNamespace) -> None:
    made = {world.admin.compute("POST", "/flavors", {"flavor": {
        "name": unique("page"), "vcpus": 1, "ram": 64, "disk": 0, "os-flavor-access:is_public": i % 2 == 0}})[
        "flavor"]["id"] for i in range(21)}
    seen: list[str] = []
    url = "/admin/flavors?limit=20"
    pages = 0
    while url:
        page = ok_page(browser, url.replace("&amp;", "&"))
        seen += re.findall(r'<tr id="flavor-([^"]+)"', page)
        pages += 1
        m = re.search(r'<a href="([^"]+)">Next page</a>', page)
        url = m.group(1) if m else ""
    assert pages == 2 and len(seen) == len(set(seen)) and made <= set(seen)  # private ones too
    for flavor_id in made:
        world.admin.compute("DELETE", f"/flavors/{flavor_id}")
    for path in ("/admin/instances", "/admin/images", "/admin/volumes", "/admin/networks", "/admin/routers",
                 "/admin/hypervisors"):
        ok_page(browser, path, limit=20)


# -- compute ---------------------------------------------------------------------------------------
def service_of(world: SimpleNamespace, host: str) -> dict[str, Any]:
    services = world.admin.compute("GET", "/os-services?binary=nova-compute")["services"]
    return next(s for s in services if s["host"] == host)


def test_compute_service_disable_enable_force_down_and_evacuate(browser: Browser, world: SimpleNamespace) -> None:
    host = world.admin.compute("GET", f"/servers/{world.server['id']}")["server"]["OS-EXT-SRV-ATTR:host"]
    service = service_of(world, host)
    browser.page("/admin/hypervisors")
    r = browser.post(f"/admin/services/{service['id']}/disable", {"reason": "disk swap", "host": host})
    assert "Disabled" in browser.flash(r)
    s = service_of(world, host)
    assert s["status"] == "disabled" and s["disabled_reason"] == "disk swap"
    assert "disk swap" in ok_page(browser, "/admin/hypervisors")
    r = browser.post(f"/admin/services/{service['id']}/enable", {"host": host})
    assert "Enabled" in browser.flash(r)
    assert service_of(world, host)["status"] == "enabled"

    # evacuating a host that is up: Nova refuses, and the form says so in its words
    r = browser.post(f"/admin/hosts/{host}/evacuate", {"target": ""})
    assert r.status_code == 400 and field_error(r.text, "target")

    r = browser.post(f"/admin/services/{service['id']}/force-down", {"host": host})
    assert "forced" in browser.flash(r).lower()
    s = service_of(world, host)
    assert s["forced_down"] is True and s["state"] == "down"
    assert f"/admin/hosts/{host}/evacuate" in ok_page(browser, "/admin/hypervisors")
    ok_page(browser, f"/admin/hosts/{host}/evacuate", world.names.server)
    r = browser.post(f"/admin/hosts/{host}/evacuate", {"target": ""})
    assert "Evacuating 1 server" in browser.flash(r)
    wait_for(lambda: (lambda s: s["OS-EXT-SRV-ATTR:host"] != host and s["status"] == "ACTIVE")(
        world.admin.compute("GET", f"/servers/{world.server['id']}")["server"]), 60, "the server rebuilt elsewhere")
    r = browser.post(f"/admin/services/{service['id']}/force-up", {"host": host})
    assert browser.flash(r)
    assert service_of(world, host)["forced_down"] is False


def test_instance_actions_on_any_project(browser: Browser, world: SimpleNamespace) -> None:
    server = world.admin.compute("GET", f"/servers/{world.server['id']}")["server"]
    host = server["OS-EXT-SRV-ATTR:host"]
    browser.page("/admin/instances")
    r = browser.post(f"/admin/instances/{server['id']}/action", {"action": "live_migrate"})
    assert "Live-migrating" in browser.flash(r)
    wait_for(lambda: (lambda s: s["OS-EXT-SRV-ATTR:host"] != host and s["status"] == "ACTIVE")(
        world.admin.compute("GET", f"/servers/{server['id']}")["server"]), 60, "the server live-migrated")
    # nothing to confirm: Nova's refusal, in its words, on the list
    r = browser.post(f"/admin/instances/{server['id']}/action", {"action": "confirm_resize"})
    assert r.status_code == 303
    assert '<div class="flash error"' in browser.page(r.headers["location"]).text
    mine = world.admin.compute("POST", "/servers", {"server": {"name": unique("adm-vm"), "flavorRef": "1",
                                                               "imageRef": world.image["id"], "networks": "none"}})
    server_id = mine["server"]["id"]
    # the row the page's script fetches when the event stream says a server changed
    row = browser.page(f"/admin/instances/{world.server['id']}/row")
    assert row.status_code == 200 and row.text.startswith(f'<tr id="row-server-{world.server["id"]}"')
    assert world.names.server in row.text and world.q["name"] in row.text and "ACTIVE" in row.text
    r = browser.post(f"/admin/instances/{server_id}/action", {"action": "delete"})
    assert "Deleting" in browser.flash(r)
    wait_for(lambda: world.admin.status("GET", f"{world.admin.cloud.compute_url}/servers/{server_id}") == 404, 60,
             "the server deleted")
    assert browser.page(f"/admin/instances/{server_id}/row").status_code == 404


def test_host_aggregate_create_hosts_metadata_zone_delete(browser: Browser, world: SimpleNamespace) -> None:
    name, zone = unique("agg"), unique("zone")
    browser.page("/admin/aggregates/create")
    r = browser.post("/admin/aggregates/create", {"name": name, "availability_zone": zone})
    assert r.status_code == 303
    agg = next(a for a in world.admin.compute("GET", "/os-aggregates")["aggregates"] if a["name"] == name)
    assert agg["availability_zone"] == zone
    base = f"/admin/aggregates/{agg['id']}"
    ok_page(browser, base, name, zone)
    assert "Added" in browser.flash(browser.post(f"{base}/hosts/add", {"host": "fake-1"}))
    r = browser.post(base, {"metadata": f"availability_zone={zone}\nssd=true"})
    assert "Saved" in browser.flash(r)
    agg = world.admin.compute("GET", f"/os-aggregates/{agg['id']}")["aggregate"]
    assert agg["hosts"] == ["fake-1"] and agg["metadata"]["ssd"] == "true"
    zones = world.admin.compute("GET", "/os-availability-zone/detail")["availabilityZoneInfo"]
    assert "fake-1" in next(z for z in zones if z["zoneName"] == zone)["hosts"]
    assert zone in ok_page(browser, "/admin/aggregates")
    # a line that is not key=value is refused beside the field, nothing changed
    r = browser.post(base, {"metadata": "no equals sign"})
    assert r.status_code == 400 and "key=value" in field_error(r.text, "metadata")
    r = browser.post(base, {"metadata": f"availability_zone={zone}"})  # ssd removed
    assert "Saved" in browser.flash(r)
    assert "ssd" not in world.admin.compute("GET", f"/os-aggregates/{agg['id']}")["aggregate"]["metadata"]
    assert "Removed" in browser.flash(browser.post(f"{base}/hosts/remove", {"host": "fake-1"}))
    assert world.admin.compute("GET", f"/os-aggregates/{agg['id']}")["aggregate"]["hosts"] == []
    assert "Deleted" in browser.flash(browser.post(f"{base}/delete"))
    assert all(a["id"] != agg["id"] for a in world.admin.compute("GET", "/os-aggregates")["aggregates"])


# -- flavors ---------------------------------------------------------------------------------------
def test_flavor_create_specs_access_delete_and_bad_values(browser: Browser, world: SimpleNamespace) -> None:
    name = unique("flv")
    browser.page("/admin/flavors/create")
    good = {"name": name, "id": "", "vcpus": "2", "ram": "256", "disk": "1", "ephemeral": "0", "swap": "0",
            "description": ""}  # no is_public: a private flavor
    r = browser.post("/admin/flavors/create", {**good, "ram": "lots"})
    assert r.status_code == 400
    assert field_error(r.text, "ram"), r.text[-2000:]
    assert 'value="lots"' in r.text  # what was typed stays in the form
    r = browser.post("/admin/flavors/create", {**good, "vcpus": "-3"})
    assert r.status_code == 400 and field_error(r.text, "vcpus")
    assert not [f for f in world.admin.compute("GET", "/flavors/detail?is_public=none")["flavors"]
                if f["name"] == name]
    r = browser.post("/admin/flavors/create", good)
    assert r.status_code == 303, r.text[-2000:]
    flavor = next(f for f in world.admin.compute("GET", "/flavors/detail?is_public=none")["flavors"]
                  if f["name"] == name)
    assert (flavor["vcpus"], flavor["ram"], flavor["os-flavor-access:is_public"]) == (2, 256, False)
    # the same name again: Nova's conflict, beside the name
    r = browser.post("/admin/flavors/create", good)
    assert r.status_code == 400 and field_error(r.text, "name")

    base = f"/admin/flavors/{flavor['id']}"
    ok_page(browser, base, name, "Access")
    assert "Saved" in browser.flash(browser.post(base, {"metadata": "hw:cpu_policy=dedicated\nquota:cpu_shares=512"}))
    specs = world.admin.compute("GET", f"/flavors/{flavor['id']}/os-extra_specs")["extra_specs"]
    assert specs == {"hw:cpu_policy": "dedicated", "quota:cpu_shares": "512"}
    assert "Saved" in browser.flash(browser.post(base, {"metadata": "quota:cpu_shares=1024"}))
    specs = world.admin.compute("GET", f"/flavors/{flavor['id']}/os-extra_specs")["extra_specs"]
    assert specs == {"quota:cpu_shares": "1024"}

    assert browser.flash(browser.post(f"{base}/access/add", {"project_id": world.q["id"]}))
    access = world.admin.compute("GET", f"/flavors/{flavor['id']}/os-flavor-access")["flavor_access"]
    assert [a["tenant_id"] for a in access] == [world.q["id"]]
    assert world.q["name"] in ok_page(browser, base)
    assert browser.flash(browser.post(f"{base}/access/remove", {"project_id": world.q["id"]}))
    assert world.admin.compute("GET", f"/flavors/{flavor['id']}/os-flavor-access")["flavor_access"] == []
    assert "Deleted" in browser.flash(browser.post(f"{base}/delete"))
    assert world.admin.status("GET", f"{world.admin.cloud.compute_url}/flavors/{flavor['id']}") == 404


# -- storage ---------------------------------------------------------------------------------------
def test_volume_and_image_actions_on_another_projects(browser: Browser, world: SimpleNamespace,
                                                      cloud: Cloud) -> None:
    pa = Apis(cloud, world.member.token)
    volume = pa.volume("POST", "/volumes", {"volume": {"name": unique("p-vol"), "size": 1}})["volume"]
    image = pa.image("POST", "/v2/images", {"name": unique("p-img"), "disk_format": "raw",
                                            "container_format": "bare"})
    wait_for(lambda: pa.volume("GET", f"/volumes/{volume['id']}")["volume"]["status"] == "available", 60,
             "P's volume available")
    assert volume["name"] in ok_page(browser, "/admin/volumes", project_id=world.p["id"])
    base = f"/admin/volumes/{volume['id']}/action"
    assert "error" in browser.flash(browser.post(base, {"action": "reset_to_error"}))
    assert world.admin.volume("GET", f"/volumes/{volume['id']}")["volume"]["status"] == "error"
    row = browser.page(f"/admin/volumes/{volume['id']}/row")
    assert row.status_code == 200 and ">error<" in row.text and world.p["name"] in row.text
    assert "available" in browser.flash(browser.post(base, {"action": "reset_to_available"}))
    assert world.admin.volume("GET", f"/volumes/{volume['id']}")["volume"]["status"] == "available"
    assert "Deleting" in browser.flash(browser.post(base, {"action": "delete"}))
    wait_for(lambda: world.admin.status("GET", f"{cloud.volume_url}/volumes/{volume['id']}") == 404, 60,
             "the volume deleted")
    assert browser.page(f"/admin/volumes/{volume['id']}/row").status_code == 404
    assert "Deleted" in browser.flash(browser.post(f"/admin/images/{image['id']}/delete"))
    assert world.admin.status("GET", f"{cloud.image_url}/v2/images/{image['id']}") == 404


def test_volume_type_create_specs_delete(browser: Browser, world: SimpleNamespace) -> None:
    name = unique("vtype")
    browser.page("/admin/volume-types/create")
    r = browser.post("/admin/volume-types/create", {"name": name, "description": "fast disks", "is_public": "on",
                                                    "metadata": "volume_backend_name=file"})
    assert "Created" in browser.flash(r)
    vtype = next(t for t in world.admin.volume("GET", "/types")["volume_types"] if t["name"] == name)
    assert vtype["extra_specs"] == {"volume_backend_name": "file"} and vtype["description"] == "fast disks"
    assert name in ok_page(browser, "/admin/volume-types")
    r = browser.post("/admin/volume-types/create", {"name": name, "is_public": "on", "metadata": ""})
    assert r.status_code == 400 and field_error(r.text, "name")
    base = f"/admin/volume-types/{vtype['id']}"
    assert "Saved" in browser.flash(browser.post(base, {"metadata": "tier=gold"}))
    specs = world.admin.volume("GET", f"/types/{vtype['id']}/extra_specs")["extra_specs"]
    assert specs == {"tier": "gold"}
    assert "Deleted" in browser.flash(browser.post(f"{base}/delete"))
    assert all(t["id"] != vtype["id"] for t in world.admin.volume("GET", "/types")["volume_types"])


def test_network_create_for_a_project_and_delete_networks_and_routers(browser: Browser, world: SimpleNamespace,
                                                                      cloud: Cloud) -> None:
    name = unique("ext-net")
    browser.page("/admin/networks/create")
    form = {"name": name, "project_id": world.p["id"], "network_type": "vxlan", "physical_network": "",
            "segmentation_id": "lots", "shared": "on", "external": "on", "admin_state_up": "on"}
    r = browser.post("/admin/networks/create", form)
    assert r.status_code == 400 and "segmentation_id" in field_error(r.text, "segmentation_id"), r.text[-1500:]
    assert "Created" in browser.flash(browser.post("/admin/networks/create", {**form, "segmentation_id": "4242"}))
    net = world.admin.network("GET", f"/networks?name={name}")["networks"][0]
    assert (net["project_id"], net["shared"], net["router:external"], net["provider:segmentation_id"]) == (
        world.p["id"], True, True, 4242)
    assert name in ok_page(browser, "/admin/networks", project_id=world.p["id"])
    assert "Deleted" in browser.flash(browser.post(f"/admin/networks/{net['id']}/delete"))
    assert world.admin.network("GET", f"/networks?name={name}")["networks"] == []
    router = Apis(cloud, world.member.token).network("POST", "/routers", {"router": {"name": unique("p-rtr")}})[
        "router"]
    assert router["name"] in ok_page(browser, "/admin/routers")
    assert "Deleted" in browser.flash(browser.post(f"/admin/routers/{router['id']}/delete"))
    assert world.admin.status("GET", f"{cloud.network_url}/routers/{router['id']}") == 404


# -- identity --------------------------------------------------------------------------------------
def test_project_create_duplicate_edit_disable_quotas_delete(browser: Browser, world: SimpleNamespace) -> None:
    name = unique("proj")
    browser.page("/admin/projects/create")
    r = browser.post("/admin/projects/create", {"name": name, "description": "made here", "enabled": "on"})
    assert "Created" in browser.flash(r)
    project = world.admin.identity("GET", f"/projects?name={name}")["projects"][0]
    assert project["description"] == "made here" and project["enabled"] is True
    r = browser.post("/admin/projects/create", {"name": world.q["name"], "enabled": "on"})
    assert r.status_code == 400
    assert field_error(r.text, "name"), r.text[-1500:]
    assert len(world.admin.identity("GET", f"/projects?name={world.q['name']}")["projects"]) == 1

    base = f"/admin/projects/{project['id']}"
    ok_page(browser, f"{base}/edit", name, "made here")
    r = browser.post(f"{base}/edit", {"name": name, "description": "edited", "enabled": "on"})
    assert "Saved" in browser.flash(r)
    assert world.admin.identity("GET", f"/projects/{project['id']}")["project"]["description"] == "edited"
    r = browser.post(f"{base}/edit", {"name": world.q["name"], "description": "x", "enabled": "on"})
    assert r.status_code == 400 and field_error(r.text, "name")
    assert "Disabled" in browser.flash(browser.post(f"{base}/disable"))
    assert world.admin.identity("GET", f"/projects/{project['id']}")["project"]["enabled"] is False
    assert "Enabled" in browser.flash(browser.post(f"{base}/enable"))
    assert world.admin.identity("GET", f"/projects/{project['id']}")["project"]["enabled"] is True

    page = ok_page(browser, f"{base}/quotas")
    values = dict(re.findall(r'name="((?:compute|network|block-storage)\.[a-z_]+)" value="(-?\d*)"', page))
    assert values["compute.cores"] and values["network.port"] and values["block-storage.gigabytes"]
    r = browser.post(f"{base}/quotas", {**values, "compute.cores": "7", "network.port": "33",
                                        "block-storage.gigabytes": "44"})
    assert "Saved" in browser.flash(r)
    assert world.admin.compute("GET", f"/os-quota-sets/{project['id']}")["quota_set"]["cores"] == 7
    assert world.admin.network("GET", f"/quotas/{project['id']}")["quota"]["port"] == 33
    assert world.admin.volume("GET", f"/os-quota-sets/{project['id']}")["quota_set"]["gigabytes"] == 44
    r = browser.post(f"{base}/quotas", {**values, "compute.cores": "7", "network.port": "33",
                                        "block-storage.gigabytes": "44", "compute.ram": "plenty"})
    assert r.status_code == 400 and field_error(r.text, "compute.ram"), r.text[-1500:]

    roles = {r["name"]: r["id"] for r in world.admin.identity("GET", "/roles")["roles"]}
    ok_page(browser, f"{base}/members", "Nobody has a role", world.other.name)
    r = browser.post(f"{base}/members", {"user": world.other.id, "role": roles["reader"]})
    assert "Assigned" in browser.flash(r)
    assignments = world.admin.identity("GET", f"/role_assignments?scope.project.id={project['id']}")[
        "role_assignments"]
    assert [(a["user"]["id"], a["role"]["id"]) for a in assignments] == [(world.other.id, roles["reader"])]
    assert world.other.name in ok_page(browser, f"{base}/members", "reader")
    r = browser.post(f"{base}/members/remove", {"user": world.other.id, "role": roles["reader"]})
    assert "Removed" in browser.flash(r)
    assert world.admin.identity("GET", f"/role_assignments?scope.project.id={project['id']}")[
        "role_assignments"] == []

    assert "Deleted" in browser.flash(browser.post(f"{base}/delete"))
    assert world.admin.identity("GET", f"/projects?name={name}")["projects"] == []


def test_user_create_edit_password_roles_disable_delete(browser: Browser, world: SimpleNamespace,
                                                        cloud: Cloud) -> None:
    name, password = unique("usr"), uuid.uuid4().hex
    roles = {r["name"]: r["id"] for r in world.admin.identity("GET", "/roles")["roles"]}
    browser.page("/admin/users/create")
    form = {"name": name, "email": "", "description": "", "password": password, "confirm": password,
            "project": world.p["id"], "role": roles["member"], "enabled": "on"}
    r = browser.post("/admin/users/create", {**form, "confirm": "other"})
    assert r.status_code == 400 and field_error(r.text, "confirm")
    assert "Created" in browser.flash(browser.post("/admin/users/create", form))
    user = world.admin.identity("GET", f"/users?name={name}")["users"][0]
    assert user["default_project_id"] == world.p["id"]
    cloud.token(name, password, world.p["name"])  # the role on P lets it in
    r = browser.post("/admin/users/create", form)
    assert r.status_code == 400 and field_error(r.text, "name")

    base = f"/admin/users/{user['id']}"
    r = browser.post(f"{base}/edit", {"name": name, "email": "u@example.org", "description": "",
                                      "default_project_id": world.p["id"], "enabled": "on"})
    assert "Saved" in browser.flash(r)
    assert world.admin.identity("GET", f"/users/{user['id']}")["user"]["email"] == "u@example.org"
    fresh = uuid.uuid4().hex
    assert "Changed" in browser.flash(browser.post(f"{base}/password", {"password": fresh, "confirm": fresh}))
    cloud.token(name, fresh, world.p["name"])

    ok_page(browser, f"{base}/roles", world.p["name"], "member")
    assert "Assigned" in browser.flash(browser.post(f"{base}/roles", {"project": world.q["id"],
                                                                      "role": roles["reader"]}))
    assignments = world.admin.identity("GET", f"/role_assignments?user.id={user['id']}")["role_assignments"]
    assert {(a["scope"]["project"]["id"], a["role"]["id"]) for a in assignments} == {
        (world.p["id"], roles["member"]), (world.q["id"], roles["reader"])}
    r = browser.post(f"{base}/roles/remove", {"project": world.q["id"], "role": roles["reader"]})
    assert "Removed" in browser.flash(r)
    assignments = world.admin.identity("GET", f"/role_assignments?user.id={user['id']}")["role_assignments"]
    assert [a["scope"]["project"]["id"] for a in assignments] == [world.p["id"]]

    assert "Disabled" in browser.flash(browser.post(f"{base}/disable"))
    assert world.admin.identity("GET", f"/users/{user['id']}")["user"]["enabled"] is False
    assert "Enabled" in browser.flash(browser.post(f"{base}/enable"))
    assert "Deleted" in browser.flash(browser.post(f"{base}/delete"))
    assert world.admin.identity("GET", f"/users?name={name}")["users"] == []


def test_groups_members_and_roles(browser: Browser, world: SimpleNamespace) -> None:
    name = unique("grp")
    browser.page("/admin/groups/create")
    assert "Created" in browser.flash(browser.post("/admin/groups/create", {"name": name, "description": "ops"}))
    group = world.admin.identity("GET", f"/groups?name={name}")["groups"][0]
    base = f"/admin/groups/{group['id']}"
    ok_page(browser, base, world.member.name)  # a candidate to add
    assert "Added" in browser.flash(browser.post(base, {"user": world.member.id}))
    members = world.admin.identity("GET", f"/groups/{group['id']}/users")["users"]
    assert [u["id"] for u in members] == [world.member.id]
    assert world.member.name in ok_page(browser, base)
    assert "Removed" in browser.flash(browser.post(f"{base}/remove", {"user": world.member.id}))
    assert world.admin.identity("GET", f"/groups/{group['id']}/users")["users"] == []
    assert "Deleted" in browser.flash(browser.post(f"{base}/delete"))
    assert world.admin.identity("GET", f"/groups?name={name}")["groups"] == []

    role = unique("role")
    browser.page("/admin/roles")
    assert "Created" in browser.flash(browser.post("/admin/roles", {"name": role}))
    made = world.admin.identity("GET", f"/roles?name={role}")["roles"]
    assert len(made) == 1 and role in ok_page(browser, "/admin/roles")
    r = browser.post("/admin/roles", {"name": role})
    assert r.status_code == 400 and field_error(r.text, "name")
    assert "Deleted" in browser.flash(browser.post(f"/admin/roles/{made[0]['id']}/delete"))
    assert world.admin.identity("GET", f"/roles?name={role}")["roles"] == []


def test_default_quotas_form(browser: Browser, world: SimpleNamespace) -> None:
    page = ok_page(browser, "/admin/defaults")
    values = dict(re.findall(r'name="((?:compute|block-storage)\.[a-z_]+)" value="(-?\d*)"', page))
    before = world.admin.compute("GET", "/os-quota-class-sets/default")["quota_class_set"]["key_pairs"]
    r = browser.post("/admin/defaults", {**values, "compute.key_pairs": str(before + 5),
                                         "block-storage.snapshots": "17"})
    assert "Saved" in browser.flash(r)
    assert world.admin.compute("GET", "/os-quota-class-sets/default")["quota_class_set"]["key_pairs"] == before + 5
    assert world.admin.volume("GET", "/os-quota-class-sets/default")["quota_class_set"]["snapshots"] == 17
    r = browser.post("/admin/defaults", {**values, "compute.key_pairs": "many"})
    assert r.status_code == 400 and field_error(r.text, "compute.key_pairs")
    browser.post("/admin/defaults", values)  # back as it was


# -- who may open the admin pages ---------------------------------------------------------------------
def admin_routes() -> list[tuple[str, str]]:
    """Every (method, path template) of the admin panel, from the page modules themselves."""
    from cumulo.dashboard import pages

    out = []
    for module in pages.MODULES:
        for route in module.routes(SimpleNamespace()):
            if route.path.startswith("/admin"):
                out += [(m, route.path) for m in sorted(route.methods or ()) if m in ("GET", "POST")]
    return out


def fill(template: str, world: SimpleNamespace) -> str:
    """A route's template with real ids of Q's things (a leak would have something to show)."""
    values = {"project_id": world.q["id"], "user_id": world.other.id, "host": "fake-0", "flavor_id": "1",
              "server_id": world.server["id"], "action": "delete"}
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "x"), template)


@pytest.mark.parametrize("who", ["member", "reader", "other"])
def test_members_and_readers_get_the_403_page_without_data_on_every_admin_route(
        cloud: Cloud, world: SimpleNamespace, who: str) -> None:
    routes = admin_routes()
    assert len(routes) >= 40 and ("GET", "/admin/hypervisors") in routes
    p = getattr(world, who)
    # Q's own member sees Q's name in the page's header; none of Q's resources may show
    secrets = [x for x in world.secrets if x != p.project["name"]] + [world.p["name"] if who == "other" else
                                                                     world.q["name"]]
    b = Browser(cloud)
    try:
        b.login(p.name, p.password, p.project["name"])
        home = b.page("/project/").text
        assert "/admin/" not in home  # no admin menu for them
        for method, template in routes:
            path = fill(template, world)
            r = b.page(path) if method == "GET" else b.post(path, {"name": "x", "host": "fake-0"})
            assert r.status_code == 403, f"{who} {method} {path}: {r.status_code}"
            assert "for administrators" in r.text
            for secret in secrets:
                assert secret not in r.text, f"{who} {method} {path} shows {secret}"
    finally:
        b.close()
    # nothing the posts asked for happened
    assert world.admin.identity("GET", f"/projects/{world.q['id']}")["project"]["enabled"] is True
    assert world.admin.identity("GET", f"/users/{world.other.id}")["user"]["enabled"] is True


def test_admin_form_without_its_csrf_token_is_refused(browser: Browser, world: SimpleNamespace) -> None:
    name = unique("nocsrf")
    browser.page("/admin/projects/create")
    r = browser.post("/admin/projects/create", {"name": name, "enabled": "on"}, csrf=False)
    assert r.status_code == 403 and "CSRF" in r.text
    r = browser.post(f"/admin/projects/{world.q['id']}/disable", {"csrf_token": "0" * 64}, csrf=False)
    assert r.status_code == 403
    assert world.admin.identity("GET", f"/projects?name={name}")["projects"] == []
    assert world.admin.identity("GET", f"/projects/{world.q['id']}")["project"]["enabled"] is True


def test_an_admin_sees_the_admin_menu(browser: Browser) -> None:
    home = ok_page(browser, "/project/")
    for path in ("/admin/hypervisors", "/admin/projects", "/admin/info", "/admin/volume-types"):
        assert f'href="{path}"' in home

