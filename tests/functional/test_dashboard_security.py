"""The dashboard as a hostile tenant attacks it (one SQLite cloud, fake nodes, block storage).

* names a tenant chooses (a network, router, port, server, image, volume, its project's name, a
  port's device id) are shown escaped on every page that lists them, the topology's SVG and the
  admin's lists included, and on another project's page for a community image;
* an id from the page's URL or a form cannot leave the API path the page meant (``..``, ``?``):
  an admin's bulk form naming ``../flavors/<id>`` deletes no flavor;
* a HEAD (which a page of another origin can send with the cookie) gets no view's POST branch;
* a posted form is at most 1 MiB (with or without a Content-Length);
* every answer (redirects, fragments, 404s) carries the framing headers; the session cookie is
  HttpOnly and SameSite; sign-in's ``next`` never leads off the site; signing in again ends the
  session before;
* the usage CSV's file name is a safe header for any project name, and a name like ``=HYPERLINK``
  is text in it;
* the event stream: a signed-out session's copied cookie gets 401, not a stream; a session whose
  admin role was taken away gets no other project's events; a stream ends when its token is revoked.
"""

from __future__ import annotations

import asyncio
import csv
import io
import threading
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
from markupsafe import escape

from cumulo.dashboard.client import safe_path
from cumulo.dashboard.events import EventStream
from cumulo.dashboard.session import COOKIE
from tests.functional.conftest import Cloud, identity_admin, start_cloud, stop_cloud, unique, wait_for
from tests.functional.dashboard_helpers import Browser

COMPUTE = {"OpenStack-API-Version": "compute 2.79"}
VOLUME = {"OpenStack-API-Version": "volume 3.60"}
# what must never reach a page unescaped: each hostile name's markup
RAW = ("<script>", "<svg onload", "<img src=x", "<svg/onload", "<iframe", "<a href=javascript", '"><svg', "<b>P")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("dashboard-security"), "sqlite", {
        "CUMULO_SERVICES": "identity,image,compute,placement,network,volume,dashboard",
        "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false"})
    yield c
    stop_cloud(c)


def call(method: str, url: str, token: str, body: Any = None, headers: dict[str, str] | None = None,
         **kw: Any) -> Any:
    r = httpx.request(method, url, json=body, headers={"X-Auth-Token": token, **(headers or {})}, timeout=30, **kw)
    assert r.status_code < 300, f"{method} {url}: {r.status_code} {r.text[:500]}"
    return r.json() if r.content and "json" in r.headers.get("content-type", "") else None


def person(cloud: Cloud, v3: Any, project: dict[str, Any], role: str) -> SimpleNamespace:
    name, password = unique(f"sec-{role}"), uuid.uuid4().hex
    user = v3("POST", "/users", {"user": {"name": name, "password": password, "domain_id": "default"}})["user"]
    role_id = v3("GET", f"/roles?name={role}")["roles"][0]["id"]
    v3("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{role_id}")
    return SimpleNamespace(name=name, password=password, id=user["id"], project=project,
                           token=cloud.token(name, password, project["name"])[0])


@pytest.fixture(scope="module")
def world(cloud: Cloud) -> SimpleNamespace:
    """Project P (its name is markup, in Cyrillic) whose member names everything hostile; project Q's member."""
    v3 = identity_admin(cloud)
    p = v3("POST", "/projects", {"project": {"name": unique('<b>P"; x=проект</b>'), "domain_id": "default"}})[
        "project"]
    q = v3("POST", "/projects", {"project": {"name": unique("sec-q"), "domain_id": "default"}})["project"]
    member, other = person(cloud, v3, p, "member"), person(cloud, v3, q, "member")
    t = member.token
    names = SimpleNamespace(network=unique('<script>alert("net")</script>'),
                            router=unique('"><svg onload=alert(1)>'),
                            server=unique('=HYPERLINK("http://evil")</title><img src=x onerror=alert(2)>'),
                            port=unique("'><svg/onload=alert(3)>"),
                            image=unique('<iframe srcdoc="<script>alert(4)</script>">'),
                            volume=unique("<a href=javascript:alert(5)>v</a>"))
    image = call("POST", cloud.image_url + "/v2/images", t, {
        "name": names.image, "disk_format": "raw", "container_format": "bare", "visibility": "community"})
    call("PUT", f"{cloud.image_url}/v2/images/{image['id']}/file", t, content=b"\0" * 4096,
         headers={"Content-Type": "application/octet-stream"})
    net = call("POST", cloud.network_url + "/networks", t, {"network": {"name": names.network}})["network"]
    call("POST", cloud.network_url + "/subnets", t, {"subnet": {
        "network_id": net["id"], "cidr": "10.66.0.0/24", "ip_version": 4, "name": names.network}})
    router = call("POST", cloud.network_url + "/routers", t, {"router": {"name": names.router}})["router"]
    port = call("POST", cloud.network_url + "/ports", t, {"port": {"network_id": net["id"],
                                                                        "name": names.port}})["port"]
    wait_for(lambda: call("GET", f"{cloud.image_url}/v2/images/{image['id']}", t)["status"] == "active", 30,
             "image active")
    server = call("POST", cloud.compute_url + "/servers", t, {"server": {
        "name": names.server, "imageRef": image["id"], "flavorRef": "1", "networks": [{"uuid": net["id"]}]}},
        COMPUTE)["server"]
    volume = call("POST", cloud.volume_url + "/volumes", t, {"volume": {"name": names.volume, "size": 1}},
                  VOLUME)["volume"]
    wait_for(lambda: call("GET", f"{cloud.compute_url}/servers/{server['id']}", t, headers=COMPUTE)["server"][
        "status"] == "ACTIVE", 90, "the server ACTIVE")
    wait_for(lambda: call("GET", f"{cloud.volume_url}/volumes/{volume['id']}", t, headers=VOLUME)["volume"][
        "status"] == "available", 60, "the volume available")
    return SimpleNamespace(p=p, q=q, member=member, other=other, names=names, image=image, net=net, router=router,
                           port=port, server=server, volume=volume, admin_token=cloud.token()[0], v3=v3)


def browser_of(cloud: Cloud, user: str, password: str, project: str) -> Browser:
    b = Browser(cloud)
    b.login(user, password, project)
    return b


@pytest.fixture(scope="module")
def member(cloud: Cloud, world: SimpleNamespace) -> Iterator[Browser]:
    b = browser_of(cloud, world.member.name, world.member.password, world.p["name"])
    yield b
    b.close()


@pytest.fixture(scope="module")
def admin(cloud: Cloud) -> Iterator[Browser]:
    b = browser_of(cloud, "admin", cloud.admin_password, "admin")
    yield b
    b.close()


def shows_escaped(b: Browser, path: str, *names: str, **params: Any) -> str:
    r = b.page(path, **params)
    assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:300]}"
    for marker in RAW:
        assert marker not in r.text, f"{path} has {marker!r} unescaped"
    for name in names:
        assert str(escape(name)) in r.text, f"{path} does not show {name!r} (escaped)"
    return r.text


def test_hostile_names_are_escaped_on_every_page(world: SimpleNamespace, member: Browser, admin: Browser,
                                                 cloud: Cloud) -> None:
    n, server_id = world.names, world.server["id"]
    shows_escaped(member, "/project/", world.p["name"])  # the header names the project
    shows_escaped(member, "/project/instances", n.server)
    shows_escaped(member, f"/project/instances/{server_id}", n.server, n.network)
    shows_escaped(member, f"/project/instances/{server_id}/row", n.server)
    shows_escaped(member, f"/project/instances/{server_id}/status")
    shows_escaped(member, f"/project/instances/{server_id}/console", n.server)
    shows_escaped(member, f"/project/instances/{server_id}/snapshot", n.server)
    shows_escaped(member, "/project/networks", n.network)
    shows_escaped(member, f"/project/networks/{world.net['id']}", n.network, n.port)
    shows_escaped(member, "/project/routers", n.router)
    topology = shows_escaped(member, "/project/network/topology", n.network, n.router, n.server, n.port)
    assert "<svg" in topology and f"/project/instances/{server_id}" in topology
    shows_escaped(member, "/project/images", n.image, visibility="community")
    shows_escaped(member, f"/project/images/{world.image['id']}", n.image)
    shows_escaped(member, "/project/volumes", n.volume)
    shows_escaped(member, f"/project/volumes/{world.volume['id']}", n.volume)
    shows_escaped(member, "/project/tasks")
    # another project sees the community image: its name is escaped there too
    other = browser_of(cloud, world.other.name, world.other.password, world.q["name"])
    try:
        shows_escaped(other, "/project/images", n.image, visibility="community")
    finally:
        other.close()
    shows_escaped(admin, "/admin/instances", n.server, world.p["name"])
    shows_escaped(admin, f"/admin/instances/{server_id}/row", n.server)
    shows_escaped(admin, "/admin/networks", n.network)
    shows_escaped(admin, "/admin/routers", n.router)
    shows_escaped(admin, "/admin/images", n.image)
    shows_escaped(admin, "/admin/volumes", n.volume)
    shows_escaped(admin, "/admin/projects", world.p["name"])


def test_a_ports_device_id_is_an_escaped_link_in_the_topology(world: SimpleNamespace, member: Browser,
                                                               cloud: Cloud) -> None:
    device = '"><svg onload=alert(6)>'
    r = httpx.post(cloud.network_url + "/ports", headers={"X-Auth-Token": world.member.token}, timeout=30,
                   json={"port": {"network_id": world.net["id"], "device_owner": "compute:nova", "device_id": device}})
    if r.status_code >= 300:
        pytest.skip(f"Neutron refused the device id ({r.status_code})")
    try:
        text = shows_escaped(member, "/project/network/topology")
        assert f'href="/project/instances/{escape(device)}"' in text
    finally:
        httpx.delete(f"{cloud.network_url}/ports/{r.json()['port']['id']}",
                     headers={"X-Auth-Token": world.member.token}, timeout=30)


def test_safe_path_keeps_a_value_inside_its_path() -> None:
    assert safe_path("/servers/../../v3/users") == "/servers/%2E%2E/%2E%2E/v3/users"
    assert safe_path("/servers/x?all_tenants=1") == "/servers/x%3Fall_tenants=1"
    assert safe_path("/servers/a#b/action") == "/servers/a%23b/action"
    assert safe_path("/servers/a\r\nX: y") == "/servers/a%0D%0AX:%20y"
    assert safe_path("/c/obj/./x") == "/c/obj/%2E/x"
    assert safe_path("/servers/8a3f-1/action") == "/servers/8a3f-1/action"
    assert safe_path("/os-keypairs/k%2Fx") == "/os-keypairs/k%2Fx"  # what a page quoted stays quoted


def test_ids_that_would_leave_the_path_get_404(world: SimpleNamespace, member: Browser, admin: Browser,
                                               cloud: Cloud) -> None:
    # /servers/detail?x=1 and /servers/.. (the API's root) are other routes: the page must not read them
    for raw in ("detail%3Fx%3D1", "%2E%2E", "detail%23"):
        for page in ("row", "status"):
            r = member.http.get(f"/project/instances/{raw}/{page}")
            assert r.status_code == 404, f"{raw}/{page}: {r.status_code} {r.text[:200]}"
        r = member.http.get(f"/project/instances/{raw}")
        assert r.status_code == 404, f"{raw}: {r.status_code} {r.text[:200]}"
    # an admin's bulk form naming ../flavors/<id> as a server: DELETE /servers/%2E%2E/flavors/<id>, no flavor gone
    fl = call("POST", cloud.compute_url + "/flavors", world.admin_token, {"flavor": {
        "name": unique("sec-flavor"), "ram": 64, "vcpus": 1, "disk": 1}}, COMPUTE)["flavor"]
    admin.page("/project/instances")
    r = admin.post("/project/instances/bulk", {"action": "delete", "server_id": f"../flavors/{fl['id']}"})
    assert "could not be found" in admin.flash(r)
    call("GET", f"{cloud.compute_url}/flavors/{fl['id']}", world.admin_token, headers=COMPUTE)  # still there
    # the member's own server with a query after its id: not that server's action
    r = member.post("/project/instances/bulk", {"action": "stop", "server_id": f"{world.server['id']}?x=1"})
    assert "could not be found" in member.flash(r)
    server = call("GET", f"{cloud.compute_url}/servers/{world.server['id']}", world.member.token, headers=COMPUTE)
    assert server["server"]["status"] == "ACTIVE"


def test_head_needs_the_csrf_token(world: SimpleNamespace, member: Browser, cloud: Cloud) -> None:
    before = call("GET", cloud.image_url + "/v2/images", world.member.token)["images"]
    for path in (f"/project/instances/{world.server['id']}/snapshot", "/admin/defaults", "/project/"):
        r = member.http.head(path, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403, f"HEAD {path}: {r.status_code}"
    r = member.http.request("OPTIONS", "/project/instances/bulk")
    assert r.status_code in (403, 405)
    assert len(call("GET", cloud.image_url + "/v2/images", world.member.token)["images"]) == len(before)
    assert member.page("/project/").status_code == 200  # a GET is still a GET


def test_a_form_is_at_most_a_mebibyte(member: Browser) -> None:
    member.page("/project/instances")
    big = {"csrf_token": member.csrf, "action": "stop", "server_id": "x", "pad": "a" * (1024 * 1024 + 10)}
    r = member.http.post("/project/instances/bulk", data=big)
    assert r.status_code == 413, r.status_code
    body = httpx.QueryParams(big).__str__().encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 65536):
            yield body[i:i + 65536]

    r = member.http.post("/project/instances/bulk", content=chunks(),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413, r.status_code
    r = member.http.post("/auth/login", content=b"username=" + b"a" * (2 * 1024 * 1024),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    # a form of ordinary size still works
    r = member.post("/project/instances/bulk", {"action": "nothing", "server_id": "x"})
    assert r.status_code == 303


def test_headers_on_every_answer_and_the_cookie(world: SimpleNamespace, member: Browser, cloud: Cloud) -> None:
    answers = [member.http.get("/project/instances/00000000-0000-0000-0000-000000000000/row"),  # 404 fragment
               member.http.get("/no/such/page"),  # Starlette's own 404
               member.http.get("/"),  # a redirect
               member.post("/project/instances/bulk", {"action": "nothing", "server_id": "x"}),
               member.http.get("/project/instances")]
    for r in answers:
        assert r.headers.get("x-frame-options") == "SAMEORIGIN", (r.url, r.status_code)
        assert r.headers.get("x-content-type-options") == "nosniff", r.url
        assert "frame-ancestors 'self'" in r.headers.get("content-security-policy", ""), r.url
    b = Browser(cloud)
    try:
        r = b.http.post("/auth/login", data={"username": world.member.name, "password": world.member.password,
                                             "project": world.p["name"], "next": "/project/"})
        cookie = r.headers["set-cookie"].lower()
        assert cookie.startswith(COOKIE) and "httponly" in cookie and "samesite=lax" in cookie
        assert "secure" not in cookie  # the test's dashboard is plain HTTP
    finally:
        b.close()


@pytest.mark.parametrize("target", ["//evil.example/", "/\\evil.example", "https://evil.example/",
                                    "/\t/evil.example", "javascript:alert(1)", "\\\\evil.example", "/%0d%0aX:y"])
def test_next_never_leaves_the_site(world: SimpleNamespace, cloud: Cloud, target: str) -> None:
    b = Browser(cloud)
    try:
        page = b.http.get("/auth/login", params={"next": target})
        assert 'value="/project/"' in page.text or "evil" not in page.text
        r = b.http.post("/auth/login", data={"username": world.member.name, "password": world.member.password,
                                             "project": world.p["name"], "next": target})
        assert r.status_code == 303
        location = r.headers["location"]
        assert location.startswith("/") and not location.startswith(("//", "/\\")) and "\n" not in location
        assert "evil" not in location or location.startswith("/%")
    finally:
        b.close()


def test_signing_in_again_ends_the_session_before(world: SimpleNamespace, cloud: Cloud) -> None:
    b = browser_of(cloud, world.member.name, world.member.password, world.p["name"])
    try:
        first = b.http.cookies[COOKIE]
        b.login(world.member.name, world.member.password, world.p["name"])
        assert b.http.cookies[COOKIE] != first
        with httpx.Client(base_url=b.base, cookies={COOKIE: first}, timeout=30) as old:
            r = old.get("/project/instances")
        assert r.status_code == 303 and "expired=1" in r.headers["location"]
        assert b.page("/project/instances").status_code == 200
    finally:
        b.close()


def test_usage_csv_name_and_cells(world: SimpleNamespace, member: Browser) -> None:
    r = member.http.get("/project/usage.csv")
    assert r.status_code == 200, r.text[:300]
    disposition = r.headers["content-disposition"]
    plain = disposition.split('filename="', 1)[1].split('"', 1)[0]
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in plain), disposition
    assert "filename*=UTF-8''" in disposition and "%D0%BF" in disposition  # the Cyrillic name, encoded
    rows = list(csv.reader(io.StringIO(r.text)))
    names = [row[0] for row in rows[1:]]
    assert "'" + world.names.server in names, names


def stream_lines(client: httpx.Client, out: list[str], connected: threading.Event, status: list[int]) -> None:
    try:
        with client.stream("GET", "/events") as r:
            status.append(r.status_code)
            if r.status_code != 200:
                connected.set()
                return
            for line in r.iter_lines():
                if line.startswith(": connected"):
                    connected.set()
                out.append(line)
    except httpx.HTTPError:
        connected.set()


def test_a_signed_out_sessions_cookie_gets_no_stream(world: SimpleNamespace, cloud: Cloud) -> None:
    b = browser_of(cloud, world.member.name, world.member.password, world.p["name"])
    copied = b.http.cookies[COOKIE]
    with httpx.Client(base_url=b.base, cookies={COOKIE: copied}, timeout=10) as c:
        with c.stream("GET", "/events") as r:
            assert r.status_code == 200  # while signed in, a stream
    r = b.post("/auth/logout")
    assert r.status_code == 303
    b.close()
    with httpx.Client(base_url=b.base, cookies={COOKIE: copied}, timeout=10) as c:
        r = c.get("/events")
    assert r.status_code == 401, r.status_code


def test_a_taken_admin_role_streams_no_other_projects_events(world: SimpleNamespace, cloud: Cloud) -> None:
    v3 = world.v3
    project = v3("POST", "/projects", {"project": {"name": unique("sec-adm"), "domain_id": "default"}})["project"]
    boss = person(cloud, v3, project, "admin")
    b = browser_of(cloud, boss.name, boss.password, project["name"])
    admin_role = v3("GET", "/roles?name=admin")["roles"][0]["id"]
    member_role = v3("GET", "/roles?name=member")["roles"][0]["id"]
    v3("PUT", f"/projects/{project['id']}/users/{boss.id}/roles/{member_role}")
    v3("DELETE", f"/projects/{project['id']}/users/{boss.id}/roles/{admin_role}")
    lines: list[str] = []
    connected, status = threading.Event(), []
    client = httpx.Client(base_url=b.base, cookies=b.http.cookies, timeout=httpx.Timeout(10, read=None))
    threading.Thread(target=stream_lines, args=(client, lines, connected, status), daemon=True).start()
    try:
        assert connected.wait(10)
        if status == [401]:
            return  # identity revoked the token with the role: no stream at all
        theirs = call("POST", cloud.network_url + "/networks", world.other.token,
                      {"network": {"name": unique("sec-q-net")}})["network"]
        mine = call("POST", cloud.network_url + "/networks", world.admin_token,
                    {"network": {"name": unique("sec-own-net"), "project_id": project["id"]}})["network"]
        wait_for(lambda: any(mine["id"] in line for line in lines), 20, "the own project's event")
        time.sleep(1)
        assert not any(theirs["id"] in line for line in lines), "another project's event reached a non-admin"
    finally:
        client.close()
        b.close()


class Bus:
    def __init__(self) -> None:
        self.handler: Any = None

    async def subscribe(self, topic: str, handler: Any) -> None:
        self.handler = handler


def test_a_stream_ends_when_its_token_is_revoked() -> None:
    async def scenario() -> list[bytes]:
        bus = Bus()
        streams = EventStream(bus)
        valid = [True]

        async def still_valid() -> bool:
            return valid[0]

        got: list[bytes] = []
        gen = streams.stream("p1", False, time.time() + 60, still_valid, revalidate=0.05)
        got.append(await gen.__anext__())
        await bus.handler("resource.server.update", {"kind": "server", "id": "s1", "project_id": "p1"})
        await bus.handler("resource.server.update", {"kind": "server", "id": "s2", "project_id": "p2"})
        got.append(await asyncio.wait_for(gen.__anext__(), 5))
        valid[0] = False
        async for chunk in gen:
            got.append(chunk)
        return got

    got = asyncio.run(scenario())
    assert b"connected" in got[0]
    assert orjson.loads(got[1][6:])["id"] == "s1"
    assert not any(b"s2" in g for g in got)
    assert got[-1].startswith(b": the session has ended")


def test_one_user_cannot_take_every_stream() -> None:
    from cumulo.dashboard.events import MAX_PER_USER

    async def scenario() -> tuple[list[bytes], bytes, bytes]:
        streams = EventStream(Bus())
        gens = [streams.stream("p1", False, time.time() + 60, user="u1") for _ in range(MAX_PER_USER + 1)]
        first = [await g.__anext__() for g in gens]
        other = await streams.stream("p2", False, time.time() + 60, user="u2").__anext__()
        await gens[0].aclose()  # a tab closed: its place is free again
        again = await streams.stream("p1", False, time.time() + 60, user="u1").__anext__()
        return first, other, again

    first, other, again = asyncio.run(scenario())
    assert all(b"connected" in f for f in first[:-1]) and b"too many" in first[-1]
    assert b"connected" in other and b"connected" in again
