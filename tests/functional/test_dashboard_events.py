"""The dashboard's event stream (GET /events): the services' resource events reach the signed-in
users who may see them, and nobody else.

One cloud (SQLite, fake nodes, block storage) with two API processes (``[api] workers = 2``): the
dashboard's streams are served by whichever process accepts them, while the builds' state
changes are written by the leader (the conductor) and the API's by either, so an event crosses
the bus hub (``cumulo.core.bus.local``) from the process that wrote to the one that streams.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.functional.conftest import Cloud, Persona, make_people, start_cloud, stop_cloud, unique
from tests.functional.dashboard_helpers import Browser, boot, compute, dashboard_url

STREAMS_PER_USER = 3  # two processes accept connections: three streams are served by both most of the time


@pytest.fixture(scope="module")
def ecloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("dash-events"), "sqlite", {
        "CUMULO_API__WORKERS": "2", "CUMULO_SERVICES": "identity,image,compute,placement,network,volume,dashboard"})
    yield c
    stop_cloud(c)


@pytest.fixture(scope="module")
def people(ecloud: Cloud) -> dict[str, Persona]:
    return make_people(ecloud, "events")


class Stream:
    """One open ``GET /events`` of a signed-in browser, read by a thread into ``events``."""

    def __init__(self, browser: Browser) -> None:
        self.events: list[dict[str, Any]] = []
        self.connected = threading.Event()
        self.http = httpx.Client(base_url=browser.base, cookies=browser.http.cookies,
                                 timeout=httpx.Timeout(10, read=None))
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.connected.wait(10), "the stream did not open"

    def _read(self) -> None:
        try:
            with self.http.stream("GET", "/events") as r:
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
                for line in r.iter_lines():
                    if line.startswith(": connected"):
                        self.connected.set()
                    elif line.startswith("data: "):
                        self.events.append(orjson.loads(line[6:]))
        except httpx.HTTPError:
            pass

    def wait(self, match: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in list(self.events):
                if match(e):
                    return e
            time.sleep(0.1)
        raise AssertionError(f"no {what} within {timeout} s; the stream had {self.events[-10:]}")

    def about(self, resource_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["id"] == resource_id]

    def close(self) -> None:
        self.http.close()


def signed_in(cloud: Cloud, user: str, password: str, project: str) -> Browser:
    b = Browser(cloud)
    b.login(user, password, project)
    return b


@pytest.fixture(scope="module")
def streams(ecloud: Cloud, people: dict[str, Persona]) -> Iterator[dict[str, list[Stream]]]:
    browsers = {"member": signed_in(ecloud, people["member"].user_name, people["member"].password,
                                    people["member"].project_name),
                "other": signed_in(ecloud, people["other"].user_name, people["other"].password,
                                   people["other"].project_name),
                "admin": signed_in(ecloud, "admin", ecloud.admin_password, "admin")}
    out = {name: [Stream(b) for _ in range(STREAMS_PER_USER)] for name, b in browsers.items()}
    yield out
    for group in out.values():
        for s in group:
            s.close()
    for b in browsers.values():
        b.close()


@pytest.fixture(scope="module")
def server(ecloud: Cloud, people: dict[str, Persona], streams: dict[str, list[Stream]]) -> str:
    return boot(ecloud, people["member"], unique("live"), active=False)


def test_a_member_sees_the_boot_of_a_server_created_then_active(
        people: dict[str, Persona], streams: dict[str, list[Stream]], server: str) -> None:
    for s in streams["member"]:
        created = s.wait(lambda e: e["id"] == server and e["action"] == "create", 10, "create event")
        assert created["kind"] == "server" and created["project_id"] == people["member"].project_id
        assert created["status"] == "BUILD"
        s.wait(lambda e: e["id"] == server and e["status"] == "ACTIVE", 30, "ACTIVE event")
        order = [e["status"] for e in s.about(server)]
        assert order.index("BUILD") < order.index("ACTIVE"), order


def test_the_admin_sees_every_projects_events(streams: dict[str, list[Stream]], server: str) -> None:
    for s in streams["admin"]:
        s.wait(lambda e: e["id"] == server and e["status"] == "ACTIVE", 30, "the admin's ACTIVE event")


def test_a_member_of_another_project_sees_none_of_them(
        people: dict[str, Persona], streams: dict[str, list[Stream]], server: str) -> None:
    streams["member"][0].wait(lambda e: e["id"] == server and e["status"] == "ACTIVE", 30, "ACTIVE event")
    time.sleep(0.5)  # the other streams had the same time to receive it
    for s in streams["other"]:
        assert s.about(server) == []
        assert all(e["project_id"] == people["other"].project_id for e in s.events), s.events


def test_a_volume_create_is_an_event_with_cinders_status(
        ecloud: Cloud, people: dict[str, Persona], streams: dict[str, list[Stream]]) -> None:
    member = people["member"]
    r = httpx.post(f"{ecloud.volume_url}/{member.project_id}/volumes", headers={"X-Auth-Token": member.token},
                   json={"volume": {"name": unique("live-vol"), "size": 1}})
    assert r.status_code == 202, r.text
    volume = r.json()["volume"]["id"]
    for s in streams["member"]:
        e = s.wait(lambda e: e["id"] == volume and e["action"] == "create", 10, "volume create event")
        assert e["kind"] == "volume" and e["status"] == "creating"
    assert all(s.about(volume) == [] for s in streams["other"])


def test_an_image_and_a_network_are_events_with_their_apis_status(
        ecloud: Cloud, people: dict[str, Persona], streams: dict[str, list[Stream]]) -> None:
    member = people["member"]
    h = {"X-Auth-Token": member.token}
    r = httpx.post(f"{ecloud.image_url}/v2/images", headers=h, json={
        "name": unique("live-img"), "disk_format": "raw", "container_format": "bare"})
    assert r.status_code == 201, r.text
    image = r.json()["id"]
    r = httpx.post(f"{ecloud.network_url}/networks", headers=h, json={"network": {"name": unique("live-net")}})
    assert r.status_code == 201, r.text
    network = r.json()["network"]["id"]
    for s in streams["member"]:
        e = s.wait(lambda e: e["id"] == image, 10, "image event")
        assert (e["kind"], e["action"], e["status"]) == ("image", "create", "queued")
        assert e["project_id"] == member.project_id
        e = s.wait(lambda e: e["id"] == network, 10, "network event")
        assert (e["kind"], e["action"], e["status"]) == ("network", "create", "ACTIVE")
    assert httpx.delete(f"{ecloud.image_url}/v2/images/{image}", headers=h).status_code == 204
    for s in streams["member"]:
        s.wait(lambda e: e["id"] == image and e["action"] == "delete", 10, "image delete event")
    assert all(s.about(image) == [] and s.about(network) == [] for s in streams["other"])


def test_a_deleted_server_is_a_delete_event(
        ecloud: Cloud, people: dict[str, Persona], streams: dict[str, list[Stream]], server: str) -> None:
    streams["member"][0].wait(lambda e: e["id"] == server and e["status"] == "ACTIVE", 30, "ACTIVE event")
    assert compute(ecloud, people["member"].token, "DELETE", f"/servers/{server}").status_code == 204
    for s in streams["member"]:
        s.wait(lambda e: e["id"] == server and e["action"] == "delete", 15, "delete event")


def test_a_stream_without_a_session_is_refused(ecloud: Cloud) -> None:
    base = dashboard_url(ecloud)
    r = httpx.get(f"{base}/events", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/auth/login")
    r = httpx.get(f"{base}/events", headers={"X-Requested-With": "cumulo"})
    assert r.status_code == 401
    r = httpx.get(f"{base}/events", cookies={"cumulo_session": "forged"}, follow_redirects=False)
    assert r.status_code in (303, 401)
