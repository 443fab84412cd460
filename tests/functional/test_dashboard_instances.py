"""The dashboard's instances pages on one cloud (two fake nodes and one QEMU node, SQLite, block
storage): the launch
wizard boots a server the API then shows ACTIVE, and shows Nova's refusals beside the field they
are about; an instance's page shows what the API has (addresses, volumes, security groups,
console log, instance actions with their request ids); each action form does what it says
(stop/start, resize + confirm, snapshot, rebuild, attach and detach a volume and an interface,
floating IPs, lock, migrate for an admin, delete); the console pages ask Nova for a console: for
a guest on the QEMU node the page's websocket URL opens its serial shell (or its VNC server)
once, with the dashboard's Origin; a fake node has none, and Nova's words are shown; and each
persona sees and may do what the API lets it.  The scheduler's spreading weighers keep every
server but the one guest (placed by host) on the fake nodes, which have more of everything.
"""

from __future__ import annotations

import base64
import html
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.functional.conftest import Cloud, identity_admin, start_cloud, stop_cloud, unique, wait_for
from tests.functional.dashboard_helpers import Browser, dashboard_url, qemu_pids

SERVICES = "identity,image,compute,placement,network,volume,dashboard"
QEMU_HOST = "dqnode"
READY = "cumulo-guest ready"


@dataclass
class Person:
    """A user with a password (to sign in to the dashboard) and a token (to check the API)."""

    name: str
    password: str
    project: str
    project_id: str
    token: str


@pytest.fixture(scope="module")
def dcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    tmp = tmp_path_factory.mktemp("dqi")  # short: QEMU's monitor socket paths are limited to 107 bytes
    c = start_cloud(tmp, "sqlite", {
        "CUMULO_SERVICES": SERVICES, "CUMULO_COMPUTE__LOCAL_NODE": "true", "CUMULO_COMPUTE__HOST": QEMU_HOST,
        "CUMULO_COMPUTE__SHUTDOWN_TIMEOUT": "5", "CUMULO_COMPUTE__BUILD_TIMEOUT": "120"})
    yield c
    admin = c.token()[0]
    servers = nova(c, admin, "GET", "/servers", all_tenants="1")["servers"]
    for s in servers:
        nova(c, admin, "DELETE", f"/servers/{s['id']}", ok=(204, 404))
    deadline = time.monotonic() + 30
    while servers and time.monotonic() < deadline:
        servers = nova(c, admin, "GET", "/servers", all_tenants="1")["servers"]
        time.sleep(0.3)
    stop_cloud(c)
    for pid in qemu_pids(tmp):  # a failed test must not leave guests running
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def people(dcloud: Cloud) -> dict[str, Person]:
    """P's member and reader, Q's member (``other``) and the cloud's admin (in project admin)."""
    v3 = identity_admin(dcloud)
    projects = {k: v3("POST", "/projects", {"project": {"name": unique(f"dash-{k}"), "domain_id": "default"}})[
        "project"] for k in ("P", "Q")}
    roles = {r["name"]: r["id"] for r in v3("GET", "/roles")["roles"]}
    out: dict[str, Person] = {}
    for who, key, role in (("member", "P", "member"), ("reader", "P", "reader"), ("other", "Q", "member")):
        name, password = unique(f"dash-{who}"), uuid.uuid4().hex
        user = v3("POST", "/users", {"user": {"name": name, "password": password, "domain_id": "default"}})["user"]
        v3("PUT", f"/projects/{projects[key]['id']}/users/{user['id']}/roles/{roles[role]}")
        project = projects[key]
        out[who] = Person(name, password, project["name"], project["id"],
                          dcloud.token(name, password, project["name"])[0])
    token, body = dcloud.token()
    out["admin"] = Person("admin", dcloud.admin_password, "admin", body["project"]["id"], token)
    return out


def nova(cloud: Cloud, token: str, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201, 202, 204),
         **params: Any) -> Any:
    r = httpx.request(method, f"{cloud.compute_url}{path}", json=body, params=params or None, timeout=30,
                      headers={"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.79"})
    assert r.status_code in ok, r.text
    return r.json() if r.content else None


def neutron(cloud: Cloud, token: str, method: str, path: str, body: Any = None, **params: Any) -> Any:
    r = httpx.request(method, f"{cloud.network_url}{path}", json=body, params=params or None, timeout=30,
                      headers={"X-Auth-Token": token})
    assert r.status_code < 300, r.text
    return r.json() if r.content else None


def cinder(cloud: Cloud, token: str, method: str, path: str, body: Any = None) -> Any:
    r = httpx.request(method, f"{cloud.volume_url}{path}", json=body, timeout=30, headers={"X-Auth-Token": token})
    assert r.status_code < 300, r.text
    return r.json() if r.content else None


def server(cloud: Cloud, token: str, sid: str) -> dict[str, Any]:
    return nova(cloud, token, "GET", f"/servers/{sid}")["server"]


def wait_status(cloud: Cloud, token: str, sid: str, status: str, timeout: float = 20) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        s = server(cloud, token, sid)
        assert s["status"] != "ERROR" or status == "ERROR", s.get("fault")
        return s if s["status"] == status and not s.get("OS-EXT-STS:task_state") else None
    return wait_for(check, timeout, f"server {sid} {status}")  # type: ignore[return-value]


def browser(cloud: Cloud, person: Person) -> Browser:
    b = Browser(cloud)
    b.login(person.name, person.password, person.project)
    return b


def field_error(page: str, name: str) -> str:
    m = re.search(rf'<span class="field-error" role="alert" data-field="{name}">(.*?)</span>', page, re.S)
    return html.unescape(m.group(1)) if m else ""


def text(page: str) -> str:
    return html.unescape(page)


def alerts(page: str) -> list[str]:
    """What a page says went wrong (its alerts), for a failed assertion's message."""
    return [html.unescape(m) for m in re.findall(r'role="alert"[^>]*>(.*?)</', page, re.S)]


@pytest.fixture(scope="module")
def world(dcloud: Cloud, people: dict[str, Person]) -> dict[str, Any]:
    """P's network (with a router to an external network, for floating IPs) and the guest image."""
    admin, member = people["admin"].token, people["member"].token
    ext = neutron(dcloud, admin, "POST", "/networks", {"network": {"name": unique("ext"), "router:external": True}})[
        "network"]
    neutron(dcloud, admin, "POST", "/subnets", {"subnet": {"network_id": ext["id"], "cidr": "198.51.100.0/24",
                                                            "ip_version": 4}})
    net = neutron(dcloud, member, "POST", "/networks", {"network": {"name": unique("pnet")}})["network"]
    subnet = neutron(dcloud, member, "POST", "/subnets", {"subnet": {"network_id": net["id"], "cidr": "10.7.0.0/24",
                                                                      "ip_version": 4}})["subnet"]
    router = neutron(dcloud, member, "POST", "/routers", {"router": {
        "name": unique("prouter"), "external_gateway_info": {"network_id": ext["id"]}}})["router"]
    neutron(dcloud, member, "PUT", f"/routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]})
    images = httpx.get(f"{dcloud.image_url}/v2/images", params={"name": "cumulo-tiny"},
                       headers={"X-Auth-Token": member}).json()["images"]
    # a real guest on the QEMU node (the admin names the host), for the console pages; it boots
    # while the other tests run
    guest = nova(dcloud, admin, "POST", "/servers", {"server": {
        "name": unique("guest"), "flavorRef": "10", "imageRef": images[0]["id"], "networks": "none",
        "availability_zone": f"nova:{QEMU_HOST}"}})["server"]["id"]
    # P's volumes, made now so that they are ready when their tests come: one from the image, one blank
    boot_volume = cinder(dcloud, member, "POST", "/volumes", {"volume": {
        "size": 1, "imageRef": images[0]["id"], "name": unique("bootvol")}})["volume"]
    data_volume = cinder(dcloud, member, "POST", "/volumes", {"volume": {"size": 1, "name": unique("data")}})["volume"]
    return {"net": net, "ext": ext, "image": images[0]["id"], "guest": guest, "boot_volume": boot_volume,
            "data_volume": data_volume}


@pytest.fixture(scope="module")
def launched(dcloud: Cloud, people: dict[str, Person], world: dict[str, Any]) -> dict[str, Any]:
    """A server of P launched through the wizard by P's member, ACTIVE."""
    b = browser(dcloud, people["member"])
    page = b.page("/project/instances/launch")
    assert page.status_code == 200, page.text[:500]
    name = unique("wiz")
    r = b.post("/project/instances/launch", {
        "name": name, "count": "1", "source": "image", "image_id": world["image"], "flavor": "10",
        "networks": world["net"]["id"], "security_groups": "default", "user_data": "#!/bin/sh\necho wizard\n"})
    assert r.status_code == 303, alerts(r.text)
    sid = r.headers["location"].rsplit("/", 1)[1]
    assert b.flash(r) == f"Launching {name}."
    s = wait_status(dcloud, people["member"].token, sid, "ACTIVE")
    b.close()
    return {"id": sid, "name": name, "server": s, "launch_page": page.text}


def test_the_wizard_lists_each_choice_with_the_quota_a_flavor_would_use(launched: dict[str, Any],
                                                                        world: dict[str, Any]) -> None:
    page = text(launched["launch_page"])
    assert "cumulo-tiny" in page and world["net"]["name"] in page and 'value="default"' in page
    # the quota left (P's defaults: 10 instances, 20 vCPUs, 51200 MiB) and what each flavor uses of it
    assert "10 instances, 20 vCPUs, 51200 MiB of RAM" in page
    assert "8 of 20 vCPUs, 16384 of 51200 MiB RAM, 1 of 10 instances" in page  # m1.xlarge
    row = re.search(r"<label for=\"flavor-5\".*?</tr>", page, re.S)
    assert row and "2 more" in row.group(0)  # 20 vCPUs / 8
    assert world["ext"]["name"] not in page  # an external network is not offered for a NIC
    assert "cumulo-tiny-kernel" not in page  # nor a kernel image


def test_the_wizard_launches_a_server_with_what_was_chosen(dcloud: Cloud, people: dict[str, Person],
                                                           launched: dict[str, Any], world: dict[str, Any]) -> None:
    s = launched["server"]
    assert s["name"] == launched["name"] and s["flavor"]["original_name"] == "cumulo.nano"
    assert s["image"]["id"] == world["image"] and [g["name"] for g in s["security_groups"]] == ["default"]
    assert list(s["addresses"]) == [world["net"]["name"]]
    admin_view = server(dcloud, people["admin"].token, launched["id"])
    assert base64.b64decode(admin_view["OS-EXT-SRV-ATTR:user_data"]) == b"#!/bin/sh\necho wizard\n"
    # the list shows it, and takes rows of servers it has not shown yet
    b = browser(dcloud, people["member"])
    page = b.page("/project/instances").text
    assert 'data-live-kind="server" data-fragment-template="/project/instances/{id}/row"' in page
    assert f'id="row-server-{launched["id"]}"' in page and launched["name"] in page
    row = b.page(f"/project/instances/{launched['id']}/row")
    assert row.status_code == 200 and row.text.lstrip().startswith(f'<tr id="row-server-{launched["id"]}"')
    b.close()


def test_refusals_come_back_beside_the_field_in_novas_words(dcloud: Cloud, people: dict[str, Person],
                                                            world: dict[str, Any]) -> None:
    b = browser(dcloud, people["member"])
    b.page("/project/instances/launch")
    base = {"count": "1", "source": "image", "image_id": world["image"], "flavor": "10", "networks": world["net"]["id"]}
    r = b.post("/project/instances/launch", {**base, "name": " padded"})
    assert r.status_code == 400
    assert "leading or trailing whitespace" in field_error(r.text, "name")
    assert 'value=" padded"' in r.text  # what was typed stays
    # three m1.xlarge (8 vCPUs each) are more than P's 20 vCPUs: Nova's 403, shown by the flavor
    name = unique("big")
    r = b.post("/project/instances/launch", {**base, "name": name, "flavor": "5", "count": "3"})
    assert r.status_code == 400
    assert field_error(r.text, "flavor").startswith("Quota exceeded for cores")
    assert f'value="{name}"' in r.text and 'value="5" id="flavor-5" checked' in r.text
    # nothing was made
    assert not nova(dcloud, people["member"].token, "GET", "/servers", name=name)["servers"]
    # a zone that is not there: Nova's words beside the zone
    r = b.post("/project/instances/launch", {**base, "name": name, "availability_zone": "atlantis"})
    assert r.status_code == 400 and "atlantis" in field_error(r.text, "availability_zone")
    # a missing choice is said before Nova is asked
    r = b.post("/project/instances/launch", {**base, "name": name, "image_id": ""})
    assert r.status_code == 400 and field_error(r.text, "source") == "Choose the image to boot from."
    b.close()


def test_a_volume_boots_a_server_through_the_wizard(dcloud: Cloud, people: dict[str, Person],
                                                    world: dict[str, Any]) -> None:
    member = people["member"].token
    vol = world["boot_volume"]
    wait_for(lambda: cinder(dcloud, member, "GET", f"/volumes/{vol['id']}")["volume"]["status"] == "available",
             30, "the boot volume")
    b = browser(dcloud, people["member"])
    page = text(b.page("/project/instances/launch").text)
    assert vol["name"] in page
    name = unique("bfv")
    r = b.post("/project/instances/launch", {"name": name, "count": "1", "source": "volume", "volume_id": vol["id"],
                                             "flavor": "10", "delete_volume": "on"})
    assert r.status_code == 303, alerts(r.text)
    sid = r.headers["location"].rsplit("/", 1)[1]
    s = wait_status(dcloud, member, sid, "ACTIVE", 30)
    assert not s["image"] and [v["id"] for v in s["os-extended-volumes:volumes_attached"]] == [vol["id"]]
    detail = text(b.page(f"/project/instances/{sid}").text)
    assert "booted from a volume" in detail and vol["id"] in detail
    nova(dcloud, member, "DELETE", f"/servers/{sid}")
    # an image onto a new volume: Nova makes the volume, of the size asked, and boots from it
    r = b.post("/project/instances/launch", {"name": unique("newvol"), "count": "1", "source": "image",
                                             "image_id": world["image"], "volume_size": "1", "flavor": "10",
                                             "delete_new_volume": "on"})
    assert r.status_code == 303, alerts(r.text)
    sid = r.headers["location"].rsplit("/", 1)[1]
    s = wait_status(dcloud, member, sid, "ACTIVE", 30)
    (attached,) = s["os-extended-volumes:volumes_attached"]
    made = cinder(dcloud, member, "GET", f"/volumes/{attached['id']}")["volume"]
    assert not s["image"] and made["size"] == 1 and made["bootable"] == "true" and attached["delete_on_termination"]
    nova(dcloud, member, "DELETE", f"/servers/{sid}")
    b.close()


def test_the_instance_page_shows_what_the_api_has(dcloud: Cloud, people: dict[str, Person],
                                                  launched: dict[str, Any]) -> None:
    sid, member = launched["id"], people["member"].token
    b = browser(dcloud, people["member"])
    page = text(b.page(f"/project/instances/{sid}").text)
    s = server(dcloud, member, sid)
    addr = next(iter(s["addresses"].values()))[0]["addr"]
    assert f"Instance {launched['name']}" in page and "cumulo.nano (1 vCPUs, 128 MiB RAM, 1 GiB disk)" in page
    assert addr in page and '<span class="tag">default</span>' in page
    assert s["OS-EXT-STS:power_state"] == 1 and "<dd>running</dd>" in page
    # the graphs' place, which static/graphs.js fills from /project/metrics/servers/{id}
    assert f'<div id="graphs" data-server="{sid}"></div>' in page and "/static/graphs.js" in page
    # the console log, the tail asked for
    log = nova(dcloud, member, "POST", f"/servers/{sid}/action", {"os-getConsoleOutput": {"length": 20}})["output"]
    shown = re.search(r'<pre class="console" id="console-log">(.*?)</pre>', page, re.S)
    assert shown and log.strip() and shown.group(1).strip().splitlines()[-1] == log.strip().splitlines()[-1]
    short = text(b.page(f"/project/instances/{sid}", length="20").text)
    assert re.search(r"<option selected>20</option>", short)
    # the instance actions with their request ids
    actions = nova(dcloud, member, "GET", f"/servers/{sid}/os-instance-actions")["instanceActions"]
    assert actions and all(a["request_id"] in page for a in actions) and "<td>create</td>" in page
    # the interfaces from Neutron, with their network's name; the image by its name
    assert re.search(r'<table class="list" id="interfaces">.*?' + re.escape(next(iter(s["addresses"]))) + ".*?"
                     + re.escape(addr), page, re.S)
    assert re.search(r"<dt>Image</dt><dd>cumulo-tiny <code>", page)
    b.close()


def test_an_instance_in_error_shows_its_fault_in_words(dcloud: Cloud, people: dict[str, Person],
                                                       world: dict[str, Any]) -> None:
    # a flavor no node has the disk for: the scheduler finds no host and the server ends in ERROR
    flavor = nova(dcloud, people["admin"].token, "POST", "/flavors", {"flavor": {
        "name": unique("vast"), "vcpus": 1, "ram": 128, "disk": 100000}})["flavor"]
    b = browser(dcloud, people["member"])
    b.page("/project/instances/launch")
    r = b.post("/project/instances/launch", {"name": unique("doomed"), "count": "1", "source": "image",
                                             "image_id": world["image"], "flavor": flavor["id"]})
    assert r.status_code == 303, alerts(r.text)
    sid = r.headers["location"].rsplit("/", 1)[1]
    s = wait_status(dcloud, people["member"].token, sid, "ERROR")
    page = text(b.page(f"/project/instances/{sid}").text)
    assert s["fault"]["message"] and f"Fault: {s['fault']['message']}" in page
    assert '<b class="status s-error">ERROR</b>' in page
    nova(dcloud, people["member"].token, "DELETE", f"/servers/{sid}")
    nova(dcloud, people["admin"].token, "DELETE", f"/flavors/{flavor['id']}")
    b.close()


def test_stop_start_lock_and_unlock_from_the_instance_page(dcloud: Cloud, people: dict[str, Person],
                                                           launched: dict[str, Any]) -> None:
    sid, member = launched["id"], people["member"].token
    b = browser(dcloud, people["member"])
    b.page(f"/project/instances/{sid}")
    here = f"/project/instances/{sid}"
    r = b.post(f"{here}/action", {"action": "stop", "next": here})
    assert r.headers["location"] == here and b.flash(r) == "Stopping 1 instance."
    wait_status(dcloud, member, sid, "SHUTOFF")
    page = text(b.page(here).text)
    assert 'value="start">Start</button>' in page and 'value="stop">Stop</button>' not in page
    r = b.post(f"{here}/action", {"action": "start", "next": here})
    assert b.flash(r) == "Starting 1 instance."
    wait_status(dcloud, member, sid, "ACTIVE")
    r = b.post(f"{here}/action", {"action": "lock", "next": here})
    assert b.flash(r) == "Locking 1 instance." and server(dcloud, member, sid)["locked"] is True
    assert 'value="unlock">Unlock</button>' in b.page(here).text
    r = b.post(f"{here}/action", {"action": "unlock", "next": here})
    assert b.flash(r) == "Unlocking 1 instance." and server(dcloud, member, sid)["locked"] is False
    # the fragment the page's script swaps when the server changes
    frag = b.page(f"{here}/status")
    assert frag.status_code == 200 and f'id="status-server-{sid}"' in frag.text and "ACTIVE" in frag.text
    b.close()


def test_resize_then_confirm(dcloud: Cloud, people: dict[str, Person], launched: dict[str, Any]) -> None:
    sid, member = launched["id"], people["member"].token
    b = browser(dcloud, people["member"])
    here = f"/project/instances/{sid}"
    form = b.page(f"{here}/resize").text
    assert "cumulo.micro" in form and 'value="10"' not in form  # the current flavor is not offered
    r = b.post(f"{here}/resize", {"flavor": "10"})  # the same flavor, forced: Nova's words beside the field
    assert r.status_code == 400 and field_error(r.text, "flavor") == "When resizing, instances must change flavor!"
    r = b.post(f"{here}/resize", {"flavor": "11"})
    assert r.status_code == 303 and b.flash(r).startswith(f"Resizing {launched['name']}")
    wait_status(dcloud, member, sid, "VERIFY_RESIZE")
    page = b.page(here).text
    assert 'value="confirm_resize">Confirm resize</button>' in page and 'value="revert_resize">' in page
    r = b.post(f"{here}/action", {"action": "confirm_resize", "next": here})
    assert b.flash(r) == "Confirming the resize of 1 instance."
    s = wait_status(dcloud, member, sid, "ACTIVE")
    assert s["flavor"]["original_name"] == "cumulo.micro"
    # and a resize reverted keeps the flavor it had
    r = b.post(f"{here}/resize", {"flavor": "1"})
    wait_status(dcloud, member, sid, "VERIFY_RESIZE")
    r = b.post(f"{here}/action", {"action": "revert_resize", "next": here})
    assert b.flash(r) == "Reverting the resize of 1 instance."
    s = wait_status(dcloud, member, sid, "ACTIVE")
    assert s["flavor"]["original_name"] == "cumulo.micro"
    b.close()


def test_snapshot_then_boot_from_it_and_rebuild(dcloud: Cloud, people: dict[str, Person],
                                                launched: dict[str, Any], world: dict[str, Any]) -> None:
    sid, member = launched["id"], people["member"].token
    b = browser(dcloud, people["member"])
    here = f"/project/instances/{sid}"
    assert f'value="{launched["name"]}-snapshot"' in b.page(f"{here}/snapshot").text
    snap = unique("snap")
    r = b.post(f"{here}/snapshot", {"name": snap})
    assert r.status_code == 303 and b.flash(r).startswith(f"Making snapshot {snap} of {launched['name']}")
    images = httpx.get(f"{dcloud.image_url}/v2/images", params={"name": snap},
                       headers={"X-Auth-Token": member}).json()["images"]
    assert len(images) == 1 and images[0]["image_type"] == "snapshot" and images[0]["instance_uuid"] == sid
    wait_for(lambda: httpx.get(f"{dcloud.image_url}/v2/images/{images[0]['id']}",
                               headers={"X-Auth-Token": member}).json()["status"] == "active", 20, "the snapshot")
    # the wizard offers it among the instance snapshots, not among the images
    launch = text(b.page("/project/instances/launch").text)
    snapshots = re.search(r'<select name="snapshot_id".*?</select>', launch, re.S)
    plain = re.search(r'<select name="image_id".*?</select>', launch, re.S)
    assert snapshots and snap in snapshots.group(0) and plain and snap not in plain.group(0)
    wait_status(dcloud, member, sid, "ACTIVE")
    r = b.post(f"{here}/rebuild", {"image": world["image"]})
    assert r.status_code == 303 and b.flash(r) == f"Rebuilding {launched['name']}."
    wait_status(dcloud, member, sid, "ACTIVE")
    actions = [a["action"] for a in nova(dcloud, member, "GET", f"/servers/{sid}/os-instance-actions")[
        "instanceActions"]]
    assert "createImage" in actions and "rebuild" in actions
    b.close()


def test_attach_and_detach_a_volume(dcloud: Cloud, people: dict[str, Person], launched: dict[str, Any],
                                    world: dict[str, Any]) -> None:
    sid, member = launched["id"], people["member"].token
    vol = world["data_volume"]
    wait_for(lambda: cinder(dcloud, member, "GET", f"/volumes/{vol['id']}")["volume"]["status"] == "available",
             20, "the volume")
    b = browser(dcloud, people["member"])
    here = f"/project/instances/{sid}"
    assert vol["name"] in text(b.page(f"{here}/attach-volume").text)
    r = b.post(f"{here}/attach-volume", {"volume": vol["id"]})
    assert r.status_code == 303 and b.flash(r) == f"Attaching volume {vol['id'][:8]} to {launched['name']}."
    wait_for(lambda: cinder(dcloud, member, "GET", f"/volumes/{vol['id']}")["volume"]["status"] == "in-use",
             20, "the volume in use")
    attached = nova(dcloud, member, "GET", f"/servers/{sid}/os-volume_attachments")["volumeAttachments"]
    assert [a["volumeId"] for a in attached] == [vol["id"]]
    page = b.page(here).text
    assert re.search(r'<table class="list" id="volumes">.*?' + vol["id"], page, re.S)
    assert f'action="{here}/volumes/{vol["id"]}/detach"' in page
    # attaching it again is Nova's refusal, beside the field
    r = b.post(f"{here}/attach-volume", {"volume": vol["id"]})
    assert r.status_code == 400 and field_error(r.text, "volume")
    r = b.post(f"{here}/volumes/{vol['id']}/detach")
    assert b.flash(r) == f"Detaching volume {vol['id'][:8]}."
    wait_for(lambda: cinder(dcloud, member, "GET", f"/volumes/{vol['id']}")["volume"]["status"] == "available",
             20, "the volume detached")
    assert not nova(dcloud, member, "GET", f"/servers/{sid}/os-volume_attachments")["volumeAttachments"]
    b.close()


def test_interfaces_and_floating_ips(dcloud: Cloud, people: dict[str, Person], launched: dict[str, Any],
                                     world: dict[str, Any]) -> None:
    sid, member = launched["id"], people["member"].token
    b = browser(dcloud, people["member"])
    here = f"/project/instances/{sid}"
    assert world["net"]["name"] in b.page(f"{here}/attach-interface").text
    r = b.post(f"{here}/attach-interface", {"network": world["net"]["id"]})
    assert r.status_code == 303 and b.flash(r).startswith("Attached interface")
    ports = neutron(dcloud, member, "GET", "/ports", device_id=sid)["ports"]
    assert len(ports) == 2
    # no floating IP is free: the form offers to allocate one from the external network
    form = text(b.page(f"{here}/floating-ip").text)
    assert f'value="new:{world["ext"]["id"]}"' in form and f"allocate a new one from {world['ext']['name']}" in form
    r = b.post(f"{here}/floating-ip", {"address": f"new:{world['ext']['id']}", "port": ports[0]["id"]})
    assert r.status_code == 303, alerts(r.text)
    (fip,) = neutron(dcloud, member, "GET", "/floatingips", port_id=ports[0]["id"])["floatingips"]
    assert b.flash(r) == f"Floating IP {fip['floating_ip_address']} now points at {launched['name']}."
    page = b.page(here).text
    assert fip["floating_ip_address"] in page and f'action="{here}/floating-ips/{fip["id"]}/detach"' in page
    r = b.post(f"{here}/floating-ips/{fip['id']}/detach")
    assert b.flash(r).startswith(f"Floating IP {fip['floating_ip_address']} disassociated")
    assert neutron(dcloud, member, "GET", f"/floatingips/{fip['id']}")["floatingip"]["port_id"] is None
    # now it is free: offered again, and associated by a PUT
    form = b.page(f"{here}/floating-ip").text
    assert f'<option value="{fip["id"]}"' in form
    r = b.post(f"{here}/floating-ip", {"address": fip["id"], "port": ports[1]["id"]})
    assert r.status_code == 303
    assert neutron(dcloud, member, "GET", f"/floatingips/{fip['id']}")["floatingip"]["port_id"] == ports[1]["id"]
    # the interface made above goes again
    extra = next(p for p in ports if p["id"] != ports[0]["id"] or len(ports) == 1)
    r = b.post(f"{here}/interfaces/{extra['id']}/detach")
    assert b.flash(r) == f"Detaching interface {extra['id'][:8]}."
    wait_for(lambda: len(neutron(dcloud, member, "GET", "/ports", device_id=sid)["ports"]) == 1, 20,
             "the interface detached")
    b.close()


def test_console_pages_ask_nova_and_show_its_words_on_a_fake_node(dcloud: Cloud, people: dict[str, Person],
                                                                    launched: dict[str, Any]) -> None:
    b = browser(dcloud, people["member"])
    here = f"/project/instances/{launched['id']}"
    r = b.page(f"{here}/console")
    assert r.status_code == 200
    assert re.search(r'id="console-error">Unavailable console type serial\.</p>', r.text)
    assert "/vendor/@xterm/xterm/lib/xterm.js" in r.text and "/static/console.js" in r.text
    assert "'unsafe-inline'" in r.headers["content-security-policy"]  # xterm.js adds its own <style>
    r = b.page(f"{here}/vnc")
    assert r.status_code == 200 and 'id="console-error">Unavailable console type novnc.</p>' in r.text
    assert '<script type="module" src="/static/vnc.js">' in r.text
    for path in ("/static/console.js", "/static/vnc.js", "/vendor/@novnc/novnc/core/rfb.js",
                 "/vendor/@xterm/addon-fit/lib/addon-fit.js", "/vendor/@xterm/xterm/css/xterm.css"):
        assert b.http.get(path).status_code == 200, path
    b.close()


def read_until(ws: ClientConnection, marker: bytes, timeout: float = 20) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{marker!r} never came over the console; got {seen[-500:]!r}"
        try:
            seen += ws.recv(timeout=left)
        except TimeoutError:
            continue
    return seen


def refused(url: str, **kwargs: Any) -> int:
    try:
        with connect(url, open_timeout=10, **kwargs):
            pass
    except InvalidStatus as exc:
        return exc.response.status_code
    raise AssertionError(f"{url} opened a console")


def page_url(page: str) -> str:
    m = re.search(r'data-url="([^"]+)"', page)
    assert m, page[-1500:]
    return html.unescape(m.group(1))


def test_the_console_pages_open_a_qemu_guests_serial_shell_and_vnc_once(dcloud: Cloud, people: dict[str, Person],
                                                                        world: dict[str, Any]) -> None:
    sid, admin = world["guest"], people["admin"].token

    def ready() -> bool:
        s = server(dcloud, admin, sid)
        assert s["status"] != "ERROR", s.get("fault")
        return s["status"] == "ACTIVE" and READY in nova(dcloud, admin, "POST", f"/servers/{sid}/action",
                                                          {"os-getConsoleOutput": {}})["output"]

    wait_for(ready, 120, "the guest's ready marker on its console")
    assert server(dcloud, admin, sid)["OS-EXT-SRV-ATTR:host"] == QEMU_HOST
    b = browser(dcloud, people["admin"])
    here = f"/project/instances/{sid}"
    page = b.page(f"{here}/console")
    assert page.status_code == 200 and 'id="console-error"' not in page.text
    url = page_url(page.text)
    assert url.startswith(f"ws://127.0.0.1:{dcloud.env['CUMULO_COMPUTE__SERIAL_PROXY_PORT']}/?token=")
    # what the page's script does: the dashboard's Origin (the proxy checks the host name), binary frames
    with connect(url, origin=dashboard_url(dcloud), subprotocols=["binary"], open_timeout=10) as ws:  # type: ignore[list-item]
        ws.send(b"\n")
        read_until(ws, b"cumulo-guest:/# ")
        ws.send(b"echo dashboard-$((6*7))\n")
        read_until(ws, b"dashboard-42")
    assert refused(url) == 403  # the page's token opened one session
    again = page_url(b.page(f"{here}/console").text)
    assert again != url  # a new page view, a new token
    # the VNC page: the websocket in the path noVNC's URL names
    page = b.page(f"{here}/vnc")
    url = page_url(page.text)
    assert url.startswith(f"ws://127.0.0.1:{dcloud.env['CUMULO_COMPUTE__NOVNC_PROXY_PORT']}/?token=")
    with connect(url, origin=dashboard_url(dcloud), subprotocols=["binary"], open_timeout=10) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "binary"
        version = ws.recv(timeout=10)
        assert isinstance(version, bytes) and version.startswith(b"RFB 003.00")
    assert refused(url) == 403
    b.close()


def test_a_reader_sees_everything_and_writes_nothing(dcloud: Cloud, people: dict[str, Person],
                                                     launched: dict[str, Any]) -> None:
    sid = launched["id"]
    b = browser(dcloud, people["reader"])
    here = f"/project/instances/{sid}"
    listing = b.page("/project/instances").text
    assert launched["name"] in listing and "Launch instance" not in listing and 'name="action"' not in listing
    page = b.page(here)
    assert page.status_code == 200 and launched["name"] in page.text
    assert f'action="{here}/action"' not in page.text and "/detach" not in page.text and "Resize…" not in page.text
    # the console log is a member's: the reader reads Nova's refusal where it would be
    assert "os_compute_api:os-console-output" in page.text
    # forced posts: the API's 403 in words, nothing done
    r = b.post(f"{here}/snapshot", {"name": "not-mine"})
    assert r.status_code == 403 and "os_compute_api:servers:create_image" in field_error(r.text, "name")
    r = b.post(f"{here}/action", {"action": "stop", "next": here})
    assert "os_compute_api:servers:stop" in b.flash(r)
    assert server(dcloud, people["member"].token, sid)["status"] == "ACTIVE"
    r = b.post("/project/instances/launch", {"name": "reader-vm", "source": "image", "image_id": "x", "flavor": "10"})
    assert r.status_code == 400 and "os_compute_api:servers:create" in text(r.text)
    r = b.page(f"{here}/console")
    assert "os_compute_api:os-remote-consoles" in r.text
    b.close()


def test_another_projects_member_finds_nothing(dcloud: Cloud, people: dict[str, Person],
                                               launched: dict[str, Any]) -> None:
    sid = launched["id"]
    b = browser(dcloud, people["other"])
    assert launched["name"] not in b.page("/project/instances").text
    for path in ("", "/row", "/status", "/resize", "/console", "/vnc"):
        r = b.page(f"/project/instances/{sid}{path}")
        assert r.status_code == 404, (path, r.status_code)
        assert launched["name"] not in r.text
    r = b.post(f"/project/instances/{sid}/snapshot", {"name": "theirs"})
    assert r.status_code == 404
    b.close()


def test_an_admin_sees_and_uses_migrate(dcloud: Cloud, people: dict[str, Person], launched: dict[str, Any]) -> None:
    sid, admin = launched["id"], people["admin"].token
    member_page = browser(dcloud, people["member"])
    assert "Migrate (admin)" not in member_page.page(f"/project/instances/{sid}").text
    member_page.close()
    b = browser(dcloud, people["admin"])
    here = f"/project/instances/{sid}"
    assert 'value="migrate">Migrate (admin)</button>' in b.page(here).text
    assert '<option value="migrate">migrate</option>' in b.page("/project/instances").text  # the bulk form's
    before = server(dcloud, admin, sid)["OS-EXT-SRV-ATTR:host"]
    r = b.post(f"{here}/action", {"action": "migrate", "next": here})
    assert b.flash(r) == "Migrating 1 instance."
    wait_status(dcloud, admin, sid, "VERIFY_RESIZE")
    r = b.post(f"{here}/action", {"action": "confirm_resize", "next": here})
    s = wait_status(dcloud, admin, sid, "ACTIVE")
    assert s["OS-EXT-SRV-ATTR:host"] != before
    b.close()


def test_delete_from_the_instance_page(dcloud: Cloud, people: dict[str, Person], world: dict[str, Any]) -> None:
    member = people["member"].token
    key = nova(dcloud, member, "POST", "/os-keypairs", {"keypair": {"name": unique("key")}})["keypair"]
    group = nova(dcloud, member, "POST", "/os-server-groups", {"server_group": {
        "name": unique("spread"), "policy": "soft-anti-affinity"}})["server_group"]
    b = browser(dcloud, people["member"])
    page = b.page("/project/instances/launch").text
    assert f"<option>{key['name']}</option>" in page and f'<option value="{group["id"]}">{group["name"]}' in page
    assert '<select name="availability_zone">' in page and "<option>nova</option>" in page
    name = unique("gone")
    r = b.post("/project/instances/launch", {"name": name, "count": "2", "source": "image", "image_id": world["image"],
                                             "flavor": "10", "key_name": key["name"], "server_group": group["id"],
                                             "availability_zone": "nova"})
    assert r.status_code == 303 and r.headers["location"] == "/project/instances", alerts(r.text)
    assert b.flash(r) == f"Launching {name} (2 instances)."
    made = nova(dcloud, member, "GET", "/servers/detail", name=name)["servers"]
    assert len(made) == 2
    assert {(s["key_name"], s["OS-EXT-AZ:availability_zone"]) for s in made} == {(key["name"], "nova")}
    members = nova(dcloud, member, "GET", f"/os-server-groups/{group['id']}")["server_group"]["members"]
    assert sorted(members) == sorted(s["id"] for s in made)
    sid = made[0]["id"]
    page = b.page(f"/project/instances/{sid}").text
    assert f'data-confirm="Delete {name}' in page
    r = b.post(f"/project/instances/{sid}/action", {"action": "delete", "next": f"/project/instances/{sid}"})
    assert r.headers["location"] == "/project/instances" and b.flash(r) == "Deleting 1 instance."
    wait_for(lambda: b.page(f"/project/instances/{sid}/row").status_code == 404, 20, "the server gone")
    # the bulk form still takes the rest
    r = b.post("/project/instances/bulk", {"action": "delete", "server_id": made[1]["id"]})
    assert b.flash(r) == "Deleting 1 instance."
    b.close()
