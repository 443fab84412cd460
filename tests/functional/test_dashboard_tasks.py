"""The dashboard's task log (/project/tasks, its rows and its running count) and a server's metrics
route (/project/metrics/servers/{id}) for its graphs.

One cloud (SQLite, fake nodes).  A member boots a server, resizes it and snapshots it, and boots
one that cannot fit any node; the log shows each with the request id the API answered with and
the failed boot's fault in words; nobody else sees the member's tasks.  Diagnostics are an
administrator's (Nova's default policy): the admin gets numbers, the member the API's 403 words.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.functional.conftest import Cloud, Persona, make_people, start_cloud, stop_cloud, unique, wait_for
from tests.functional.dashboard_helpers import Browser, dashboard_url

SMALL = {"name": "tasks.small", "ram": 128, "vcpus": 1, "disk": 1}
LARGER = {"name": "tasks.larger", "ram": 256, "vcpus": 1, "disk": 1}
HUGE = {"name": "tasks.huge", "ram": 128, "vcpus": 1, "disk": 5000}  # a fake node has 500 GB of disk


@pytest.fixture(scope="module")
def tcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("dash-tasks"), "sqlite", {
        "CUMULO_SERVICES": "identity,image,compute,placement,network,volume,dashboard"})
    yield c
    stop_cloud(c)


@pytest.fixture(scope="module")
def people(tcloud: Cloud) -> dict[str, Persona]:
    return make_people(tcloud, "tasks")


def compute(cloud: Cloud, token: str, method: str, path: str, body: object = None) -> httpx.Response:
    return httpx.request(method, cloud.compute_url + path, json=body, timeout=30,
                         headers={"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.79"})


def flavor(cloud: Cloud, spec: dict[str, object]) -> str:
    admin = cloud.token()[0]
    for f in compute(cloud, admin, "GET", "/flavors?is_public=None").json()["flavors"]:
        if f["name"] == spec["name"]:
            return str(f["id"])
    return str(compute(cloud, admin, "POST", "/flavors", {"flavor": spec}).json()["flavor"]["id"])


def status(cloud: Cloud, token: str, server_id: str) -> str:
    return str(compute(cloud, token, "GET", f"/servers/{server_id}").json()["server"]["status"])


def request_id(r: httpx.Response) -> str:
    return r.headers.get("x-openstack-request-id") or r.headers["x-compute-request-id"]


def boot(cloud: Cloud, member: Persona, flavor_spec: dict[str, object], want: str) -> tuple[str, str]:
    image = httpx.get(f"{cloud.image_url}/v2/images", headers={"X-Auth-Token": member.token}).json()["images"][0]["id"]
    r = compute(cloud, member.token, "POST", "/servers", {"server": {
        "name": unique("task"), "flavorRef": flavor(cloud, flavor_spec), "imageRef": image, "networks": "none"}})
    assert r.status_code == 202, r.text
    server_id = r.json()["server"]["id"]
    wait_for(lambda: status(cloud, member.token, server_id) == want, 40, f"the server {want}")
    return server_id, request_id(r)


def browser(cloud: Cloud, p: Persona | None = None) -> Browser:
    b = Browser(cloud)
    if p is None:
        b.login("admin", cloud.admin_password, "admin")
    else:
        b.login(p.user_name, p.password, p.project_name)
    return b


def task_rows(page: str) -> list[str]:
    return [html.unescape(re.sub(r"<[^>]+>", " ", row)) for row in re.findall(r"<tr id=\"task-.*?</tr>", page, re.S)]


@pytest.fixture(scope="module")
def story(tcloud: Cloud, people: dict[str, Persona]) -> dict[str, str]:
    """What the member did: a boot, a resize and a snapshot of that server, and a boot that failed."""
    member = people["member"]
    server, boot_rid = boot(tcloud, member, SMALL, "ACTIVE")
    action = f"/servers/{server}/action"
    r = compute(tcloud, member.token, "POST", action, {"resize": {"flavorRef": flavor(tcloud, LARGER)}})
    assert r.status_code == 202, r.text
    resize_rid = request_id(r)
    wait_for(lambda: status(tcloud, member.token, server) == "VERIFY_RESIZE", 40, "VERIFY_RESIZE")
    assert compute(tcloud, member.token, "POST", action, {"confirmResize": None}).status_code == 204
    wait_for(lambda: status(tcloud, member.token, server) == "ACTIVE", 40, "ACTIVE after the resize")
    r = compute(tcloud, member.token, "POST", action, {"createImage": {"name": unique("snap")}})
    assert r.status_code == 202, r.text
    snapshot_rid = request_id(r)
    failed, failed_rid = boot(tcloud, member, HUGE, "ERROR")
    fault = compute(tcloud, member.token, "GET", f"/servers/{failed}").json()["server"]["fault"]["message"]
    return {"server": server, "boot": boot_rid, "resize": resize_rid, "snapshot": snapshot_rid, "failed": failed,
            "failed_rid": failed_rid, "fault": fault}


def test_the_log_shows_the_members_boot_resize_and_snapshot_with_their_request_ids(
        tcloud: Cloud, people: dict[str, Persona], story: dict[str, str]) -> None:
    b = browser(tcloud, people["member"])
    r = b.page("/project/tasks")
    assert r.status_code == 200
    rows = task_rows(r.text)
    for what, rid in (("Boot", story["boot"]), ("Resize", story["resize"]), ("Snapshot", story["snapshot"])):
        row = next((x for x in rows if rid in x), None)
        assert row is not None, (what, rid, rows)
        assert what in row and story["server"] not in ("",)
    resize = next(x for x in rows if story["resize"] in x)
    assert "Done" in resize or "Running" in resize, resize


def test_a_failed_boot_shows_the_servers_fault_in_words(
        tcloud: Cloud, people: dict[str, Persona], story: dict[str, str]) -> None:
    b = browser(tcloud, people["member"])
    rows = task_rows(b.page("/project/tasks").text)
    row = next(x for x in rows if story["failed_rid"] in x)
    assert "Boot" in row and "Error" in row and "ERROR" in row
    assert story["fault"] and story["fault"] in row, (story["fault"], row)
    assert "No valid host" in story["fault"]
    # the rows the page's script fetches when an event comes are the same
    fragment = b.page("/project/tasks/rows").text
    assert fragment.lstrip().startswith("<tbody>") and story["failed_rid"] in fragment


def test_nobody_else_sees_the_members_tasks(tcloud: Cloud, people: dict[str, Persona], story: dict[str, str]) -> None:
    for who in (people["reader"], people["other"], None):
        b = browser(tcloud, who)
        r = b.page("/project/tasks")
        assert r.status_code == 200
        assert story["boot"] not in r.text and story["failed_rid"] not in r.text
        assert b.page("/project/tasks/count").json() == {"running": 0}


def test_the_running_count_is_json_for_a_session_and_refused_without(
        tcloud: Cloud, people: dict[str, Persona], story: dict[str, str]) -> None:
    b = browser(tcloud, people["member"])
    r = b.page("/project/tasks/count")
    assert r.status_code == 200 and isinstance(r.json()["running"], int)
    r = httpx.get(f"{dashboard_url(tcloud)}/project/tasks/count", headers={"X-Requested-With": "cumulo"})
    assert r.status_code == 401
    page = b.page("/project/").text
    assert '<script src="/static/tasks.js" defer></script>' in page and 'id="task-count"' in page
    for script in ("/static/tasks.js", "/static/graphs.js"):
        assert b.page(script).status_code == 200


def test_the_admin_gets_a_servers_metrics_as_numbers(tcloud: Cloud, story: dict[str, str]) -> None:
    b = browser(tcloud)
    r = b.page(f"/project/metrics/servers/{story['server']}")
    assert r.status_code == 200, r.text
    sample = r.json()
    assert sample["memory_max_mib"] == LARGER["ram"] and sample["cpus"] == 1
    for key in ("at", "cpu_time_ns", "memory_used_mib", "disk_read_bytes", "disk_write_bytes", "rx_bytes", "tx_bytes"):
        assert isinstance(sample[key], (int, float)), key


def test_a_member_gets_the_apis_403_in_words_for_metrics(
        tcloud: Cloud, people: dict[str, Persona], story: dict[str, str]) -> None:
    direct = compute(tcloud, people["member"].token, "GET", f"/servers/{story['server']}/diagnostics")
    assert direct.status_code == 403
    for who in ("member", "reader"):
        r = browser(tcloud, people[who]).page(f"/project/metrics/servers/{story['server']}")
        assert r.status_code == 403 and r.json()["error"] == direct.json()["forbidden"]["message"], r.text
    r = browser(tcloud, people["other"]).page(f"/project/metrics/servers/{story['server']}")
    assert r.status_code in (403, 404) and r.json()["error"]


def test_a_volume_that_found_no_backend_shows_cinders_user_message(
        tcloud: Cloud, people: dict[str, Persona]) -> None:
    member = people["member"]
    base = f"{tcloud.volume_url}/{member.project_id}"
    h = {"X-Auth-Token": member.token, "OpenStack-API-Version": "volume 3.60"}
    r = httpx.post(f"{base}/volumes", headers=h, json={"volume": {"name": unique("too-big"), "size": 900}})
    assert r.status_code == 202, r.text
    volume = r.json()["volume"]["id"]
    wait_for(lambda: httpx.get(f"{base}/volumes/{volume}", headers=h).json()["volume"]["status"] == "error", 20,
             "the volume in error")
    said = [m for m in httpx.get(f"{base}/messages", headers=h).json()["messages"] if m["resource_uuid"] == volume]
    assert said, "Cinder kept no user message"
    rows = task_rows(browser(tcloud, member).page("/project/tasks").text)
    row = next(x for x in rows if volume[:8] in x or "too-big" in x)
    assert "Error" in row and said[0]["user_message"] in row and said[0]["request_id"] in row, row
    assert all(volume not in x for x in task_rows(browser(tcloud, people["other"]).page("/project/tasks").text))
