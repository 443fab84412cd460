"""Block storage's actions and admin resources: extend (in-use from 3.42, grown by compute), upload to
an image, the image metadata a volume carries, os-reset_status and os-force_delete, os-services,
scheduler-stats/get_pools and the user messages (3.3).

Two halves: VolumeService in process (SQLite, the in-process bus, a real file agent, and a fake
conductor that records what compute is asked), for the transitions, leases and the in-use extend's
bus message; then one cloud per backend (SQLite, PostgreSQL) driven over HTTP by each persona, for the API's shapes,
policies and bad input."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cumulo.core.bus.memory import MemoryBus
from cumulo.core.config import Config
from cumulo.core.db import Database
from cumulo.core.http.faults import BadRequest, PayloadTooLarge
from cumulo.volume.agent import VolumeAgent
from cumulo.volume.drivers.file import FileDriver, GiB, virtual_size
from cumulo.volume.reconcile import Reconciler
from cumulo.volume.service import Caller, VolumeService, unmet_capabilities
from tests.functional.conftest import (
    Cloud,
    block_storage_cloud,
    unique,
    wait_for,
)
from tests.functional.test_volumes import Api, qemu_info, volume_files
from tests.unit.test_volume_service import Limits

WHO = Caller("p1", "u1")


# -- in process ----------------------------------------------------------------------------------------
@pytest.fixture
async def world(tmp_path: Path) -> Any:
    cfg = Config(state_dir=str(tmp_path))
    cfg.volume.operation_timeout = 0.3
    db = Database(f"sqlite:///{tmp_path / 'cumulo.db'}")
    await db.migrate()
    bus = MemoryBus(5)
    await bus.start()
    svc = VolumeService(cfg, db, bus, Limits())  # type: ignore[arg-type]
    await svc.start()
    driver = FileDriver(tmp_path / "volumes" / "node1")
    agent = VolumeAgent(bus, "node1", driver, report_interval=60)
    await agent.start()
    await asyncio.sleep(0.05)
    asked: list[tuple[str, dict[str, Any]]] = []

    async def conductor(method: str, args: dict[str, Any]) -> None:  # compute's side, recorded
        asked.append((method, args))

    await bus.serve("conductor", conductor)
    yield svc, driver, asked
    await agent.stop()
    await bus.stop()
    await db.close()


async def status_of(svc: VolumeService, volume_id: str, status: str) -> Any:
    for _ in range(250):
        vol = await svc.volume(volume_id, WHO)
        if vol.status == status:
            return vol
        await asyncio.sleep(0.02)
    raise AssertionError(f"volume {volume_id} never became {status} (it is {vol.status})")


async def test_extend_grows_the_file_and_the_size_within_the_quota(world: Any) -> None:
    svc, driver, _ = world
    vol = await svc.create_volume(WHO, 1)
    await status_of(svc, vol.id, "available")
    with pytest.raises(BadRequest, match="greater than current size"):
        await svc.extend_volume(WHO, vol.id, 1)
    await svc.set_quotas(WHO.project_id, {"gigabytes": 2})
    with pytest.raises(PayloadTooLarge, match="gigabytes"):
        await svc.extend_volume(WHO, vol.id, 3)
    await svc.extend_volume(WHO, vol.id, 2)
    assert (await svc.usage(WHO.project_id))["gigabytes"] == 2  # counted from the extend's start
    with pytest.raises(PayloadTooLarge):  # so a create racing it finds no room
        await svc.create_volume(WHO, 1)
    done = await status_of(svc, vol.id, "available")
    assert done.size == 2 and virtual_size(driver.volume_path(vol.id)) == 2 * GiB
    await svc.set_quotas(WHO.project_id, {"per_volume_gigabytes": 2, "gigabytes": 100})
    with pytest.raises(PayloadTooLarge, match="maximum allowed"):
        await svc.extend_volume(WHO, vol.id, 3)


async def test_an_in_use_extend_is_cast_to_compute_and_its_report_ends_it(world: Any) -> None:
    svc, driver, asked = world
    vol = await svc.create_volume(WHO, 1, multiattach=True)
    await status_of(svc, vol.id, "available")
    for server in ("server-a", "server-b"):
        att = await svc.attachment_create(WHO, vol.id, server, {"host": "cn1"})
        await svc.attachment_complete(WHO, att.id)
    with pytest.raises(BadRequest, match="3.42"):  # below 3.42 an attached volume is not extended
        await svc.extend_volume(WHO, vol.id, 2)
    await svc.extend_volume(WHO, vol.id, 2, attached=True)
    assert (await svc.volume(vol.id, WHO)).status == "extending"
    for _ in range(50):
        if asked:
            break
        await asyncio.sleep(0.02)
    ((method, args),) = asked
    assert method == "volume_extended"
    assert (args["volume_id"], args["new_size"], args["server_ids"]) == (vol.id, 2, ["server-a", "server-b"])
    ctx = args["ctx"]
    assert (ctx["op"], ctx["volume_id"], ctx["new_size"]) == ("extend", vol.id, 2) and ctx["request_id"]
    assert virtual_size(driver.volume_path(vol.id)) == GiB  # the agent never touched the open file
    # compute's report, as an agent's: the volume is in-use again with its new size
    await svc.handle("volume_update", {"ctx": ctx, "error": None})
    done = await svc.volume(vol.id, WHO)
    assert (done.status, done.size) == ("in-use", 2)
    # a failed one: error_extending, the fault, and a user message
    await svc.extend_volume(WHO, vol.id, 3, attached=True)
    await svc.handle("volume_update", {"ctx": asked[-1][1]["ctx"], "error": "block_resize failed"})
    failed = await svc.volume(vol.id, WHO)
    assert failed.status == "error_extending" and "block_resize failed" in (failed.fault or "")
    (msg,) = await svc.messages(WHO)
    assert msg.resource_uuid == vol.id and msg.message_level == "ERROR" and "extend volume" in msg.user_message


async def test_an_extend_nobody_reports_ends_in_error_extending_at_its_lease(world: Any) -> None:
    svc, _, asked = world
    vol = await svc.create_volume(WHO, 1)
    await status_of(svc, vol.id, "available")
    att = await svc.attachment_create(WHO, vol.id, "server-a", {"host": "cn1"})
    await svc.attachment_complete(WHO, att.id)
    await svc.extend_volume(WHO, vol.id, 2, attached=True)  # compute stays silent
    await asyncio.sleep(0.4)
    assert await Reconciler(svc).reconcile() == 1
    ended = await svc.volume(vol.id, WHO)
    assert ended.status == "error_extending" and "not reported" in (ended.fault or "") and ended.size == 1
    assert [m.event_id for m in await svc.messages(WHO)] == ["VOLUME_VOLUME_009_001"]


async def test_an_upload_nobody_reports_goes_back_and_drops_its_image(world: Any) -> None:
    svc, _, _ = world
    vol = await svc.create_volume(WHO, 1)
    await status_of(svc, vol.id, "available")
    dropped: list[str] = []

    class Images:
        async def create_image(self, who: Any, values: dict[str, Any]) -> Any:
            assert values["disk_format"] == "qcow2" and values["min_disk"] == 1
            return type("Image", (), {"id": "img-1"})()

        async def delete_image(self, image_id: str, who: Any) -> None:
            dropped.append(image_id)

    svc.images, svc.image_url = Images(), "http://127.0.0.1:9"  # type: ignore[assignment]
    with pytest.raises(BadRequest, match="disk_format"):
        await svc.upload_to_image(WHO, vol.id, "tok", image_name="x", disk_format="vmdk")
    served = svc.bus._servers.pop("volume.node1")  # type: ignore[attr-defined]
    _, image_id = await svc.upload_to_image(WHO, vol.id, "tok", image_name="x", disk_format="qcow2")
    assert image_id == "img-1" and (await svc.volume(vol.id, WHO)).status == "uploading"
    await asyncio.sleep(0.4)
    await Reconciler(svc).reconcile()
    svc.bus._servers["volume.node1"] = served  # type: ignore[attr-defined]
    ended = await svc.volume(vol.id, WHO)
    assert ended.status == "available" and "upload" in (ended.fault or "") and dropped == ["img-1"]


async def test_the_file_driver_exports_raw_and_qcow2_and_extends_idempotently(tmp_path: Path) -> None:
    driver = FileDriver(tmp_path / "node")
    await driver.create_volume("v1", 1)
    await driver.extend_volume("v1", 2)
    await driver.extend_volume("v1", 2)
    assert virtual_size(driver.volume_path("v1")) == 2 * GiB
    for fmt in ("qcow2", "raw"):
        path = await driver.export_volume("v1", fmt)
        assert qemu_info(path)["format"] == fmt and qemu_info(path)["virtual-size"] == 2 * GiB
        path.unlink()
    with pytest.raises(LookupError):
        await driver.extend_volume("nope", 2)


def test_a_types_capability_specs_must_match_the_file_pools() -> None:
    assert unmet_capabilities({}) == "" and unmet_capabilities({"tier": "gold"}) == ""
    assert unmet_capabilities({"volume_backend_name": "file", "capabilities:storage_protocol": "FILE",
                               "multiattach": "<is> True", "vendor_name": "<or> Acme <or> Cumulo"}) == ""
    assert unmet_capabilities({"storage_protocol": "iSCSI"}) == "storage_protocol=iSCSI"
    assert unmet_capabilities({"capabilities:thick_provisioning_support": "<is> True"}) != ""
    assert unmet_capabilities({"vendor_name": "<in> Acme"}) == "vendor_name=<in> Acme"


async def test_update_snapshot_status_moves_only_as_cinder_allows(world: Any) -> None:
    svc, _, _ = world
    vol = await svc.create_volume(WHO, 1)
    await status_of(svc, vol.id, "available")
    snap = await svc.create_snapshot(WHO, vol.id)
    for _ in range(100):
        if (await svc.snapshot(snap.id, WHO)).status == "available":
            break
        await asyncio.sleep(0.02)
    with pytest.raises(BadRequest, match="not allowed"):
        await svc.update_snapshot_status(snap.id, WHO, "error")
    await svc.reset_snapshot_status(snap.id, "creating")
    await svc.update_snapshot_status(snap.id, WHO, "creating", "40%")
    assert (await svc.snapshot(snap.id, WHO)).progress == "40%"
    await svc.update_snapshot_status(snap.id, WHO, "available", "100%")
    assert (await svc.snapshot(snap.id, WHO)).status == "available"


# -- one cloud, over HTTP ---------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def acloud(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    yield from block_storage_cloud(request, tmp_path_factory, "volume-actions")


@pytest.fixture(scope="module")
def admin(acloud: Cloud) -> Api:
    token, body = acloud.token()
    return Api(acloud, token, body["project"]["id"])


@pytest.fixture(scope="module")
def people(acloud: Cloud, admin: Api) -> dict[str, Api]:
    """A project P with a member and a reader, and a member of another project Q."""
    h = {"X-Auth-Token": admin.token}

    def v3(method: str, path: str, body: Any = None) -> Any:
        r = httpx.request(method, f"{acloud.url}{path}", json=body, headers=h)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    roles = {x["name"]: x["id"] for x in v3("GET", "/roles")["roles"]}
    projects = {key: v3("POST", "/projects", {"project": {"name": unique(f"act-{key}"), "domain_id": "default"}})[
        "project"] for key in ("P", "Q")}
    out = {}
    for name, key, role in (("member", "P", "member"), ("reader", "P", "reader"), ("other", "Q", "member")):
        user_name, password = unique(f"act-{name}"), uuid.uuid4().hex
        user = v3("POST", "/users", {"user": {"name": user_name, "password": password, "domain_id": "default"}})["user"]
        v3("PUT", f"/projects/{projects[key]['id']}/users/{user['id']}/roles/{roles[role]}")
        tok, _ = acloud.token(user_name, password, projects[key]["name"])
        out[name] = Api(acloud, tok, projects[key]["id"])
    return out


def new_volume(api: Api, size: int = 1, **extra: Any) -> str:
    r = api("POST", "/volumes", {"volume": {"size": size, **extra}})
    assert r.status_code == 202, r.text
    vid = r.json()["volume"]["id"]
    api.wait_status(vid, "available")
    return str(vid)


def act(api: Api, volume_id: str, body: Any, version: str = "") -> httpx.Response:
    return api("POST", f"/volumes/{volume_id}/action", body, version=version)


def test_extend_through_the_api_and_the_cli(acloud: Cloud, admin: Api) -> None:
    vid = new_volume(admin)
    r = act(admin, vid, {"os-extend": {"new_size": 2}})
    assert r.status_code == 202, r.text
    assert admin.wait_status(vid, "available")["size"] == 2
    assert qemu_info(volume_files(acloud)[f"volume-{vid}.qcow2"])["virtual-size"] == 2 * GiB
    acloud.cli("volume", "set", "--size", "3", vid)
    wait_for(lambda: admin.volume(vid)["size"] == 3, 20, "the volume to be 3 GiB")
    for body in ({"os-extend": {"new_size": 3}}, {"os-extend": {"new_size": 1}}, {"os-extend": {"new_size": 0}},
                 {"os-extend": {"new_size": -1}}, {"os-extend": {"new_size": "x"}}, {"os-extend": {}},
                 {"os-extend": None}, {"os-extend": {"new_size": 4, "bogus": 1}}):
        r = act(admin, vid, body)
        assert r.status_code == 400, (body, r.status_code, r.text)
    assert act(admin, str(uuid.uuid4()), {"os-extend": {"new_size": 4}}).status_code == 404
    assert admin("DELETE", f"/volumes/{vid}").status_code == 202


def test_an_attached_volume_extends_from_3_42_only(admin: Api) -> None:
    vid = new_volume(admin)
    att = admin("POST", "/attachments", {"attachment": {"volume_uuid": vid, "instance_uuid": str(uuid.uuid4()),
                                                        "connector": {"host": "cn-1"}}}, version="3.44")
    aid = att.json()["attachment"]["id"]
    assert admin("POST", f"/attachments/{aid}/action", {"os-complete": None}, version="3.44").status_code == 204
    r = act(admin, vid, {"os-extend": {"new_size": 2}})
    assert r.status_code == 400 and "3.42" in r.json()["badRequest"]["message"]
    assert act(admin, vid, {"os-extend": {"new_size": 2}}, version="3.42").status_code == 202
    # compute's conductor has it now: no server of its knows this volume, so it reports a failure
    failed = admin.wait_status(vid, "error_extending")
    assert failed["size"] == 1
    messages = admin("GET", "/messages", version="3.3").json()["messages"]
    assert any(m["resource_uuid"] == vid and m["event_id"] == "VOLUME_VOLUME_009_001" for m in messages)
    assert act(admin, vid, {"os-reset_status": {"status": "in-use"}}).status_code == 202
    admin("DELETE", f"/attachments/{aid}", version="3.44")
    assert admin.volume(vid)["status"] == "available"
    assert admin("DELETE", f"/volumes/{vid}").status_code == 202


def test_upload_to_image_makes_an_active_image_and_a_volume_from_it_carries_its_metadata(
        acloud: Cloud, admin: Api, tmp_path: Path) -> None:
    vid = new_volume(admin)
    name = unique("upl")
    r = act(admin, vid, {"os-volume_upload_image": {"image_name": name, "disk_format": "qcow2",
                                                    "container_format": "bare"}}, version="3.1")
    assert r.status_code == 202, r.text
    up = r.json()["os-volume_upload_image"]
    assert set(up) == {"id", "updated_at", "status", "display_description", "size", "volume_type", "image_id",
                       "container_format", "disk_format", "image_name", "visibility", "protected"}
    assert (up["id"], up["status"], up["image_name"], up["disk_format"], up["visibility"]) == (
        vid, "uploading", name, "qcow2", "private")
    assert up["volume_type"]["name"] == "__DEFAULT__"
    h = {"X-Auth-Token": admin.token}
    wait_for(lambda: httpx.get(f"{acloud.image_url}/v2/images/{up['image_id']}", headers=h).json()["status"] ==
             "active", 30, "the image to be active")
    image = httpx.get(f"{acloud.image_url}/v2/images/{up['image_id']}", headers=h).json()
    assert image["disk_format"] == "qcow2" and image["name"] == name and image["min_disk"] == 1
    assert admin.wait_status(vid, "available")
    # a volume from that image carries volume_image_metadata, and the image-metadata actions edit it
    copy = new_volume(admin, imageRef=up["image_id"])
    meta = admin.volume(copy)["volume_image_metadata"]
    assert (meta["image_id"], meta["image_name"], meta["disk_format"], meta["container_format"]) == (
        up["image_id"], name, "qcow2", "bare")
    assert meta["checksum"] == image["checksum"] and meta["min_disk"] == "1"
    assert "volume_image_metadata" not in admin.volume(vid)
    r = act(admin, copy, {"os-set_image_metadata": {"metadata": {"os_distro": "debian"}}})
    assert r.status_code == 200 and r.json()["metadata"]["os_distro"] == "debian"
    assert act(admin, copy, {"os-unset_image_metadata": {"key": "os_distro"}}).status_code == 200
    assert act(admin, copy, {"os-unset_image_metadata": {"key": "os_distro"}}).status_code == 404
    shown = act(admin, copy, {"os-show_image_metadata": None})
    assert shown.status_code == 200 and shown.json()["metadata"] == meta
    for volume_id in (vid, copy):
        assert admin("DELETE", f"/volumes/{volume_id}").status_code == 202


def test_upload_refuses_bad_formats_busy_volumes_and_in_use_without_force(admin: Api) -> None:
    vid = new_volume(admin)
    for body in ({"os-volume_upload_image": {"image_name": "x", "disk_format": "vmdk"}},
                 {"os-volume_upload_image": {"image_name": "x", "container_format": "ovf"}},
                 {"os-volume_upload_image": {}}, {"os-volume_upload_image": {"image_name": ""}},
                 {"os-volume_upload_image": {"image_name": "x", "visibility": "everyone"}},
                 {"os-volume_upload_image": {"image_name": "x", "force": "maybe"}}):
        r = act(admin, vid, body, version="3.1")
        assert r.status_code == 400, (body, r.status_code, r.text)
    r = act(admin, vid, {"os-volume_upload_image": {"image_name": "x", "visibility": "private"}})
    assert r.status_code == 400 and "3.1" in r.json()["badRequest"]["message"]
    admin("POST", f"/volumes/{vid}/action", {"os-attach": {"host_name": "cn-1", "mountpoint": "/dev/vdb"}})
    assert admin.volume(vid)["status"] == "in-use"
    r = act(admin, vid, {"os-volume_upload_image": {"image_name": unique("x"), "disk_format": "qcow2"}})
    assert r.status_code == 400 and "force" in r.json()["badRequest"]["message"]
    r = act(admin, vid, {"os-volume_upload_image": {"image_name": unique("x"), "disk_format": "raw", "force": True}})
    assert r.status_code == 202, r.text
    assert admin.wait_status(vid, "in-use", timeout=60)  # back to what its attachment makes it
    act(admin, vid, {"os-force_detach": {}})
    assert admin("DELETE", f"/volumes/{vid}").status_code == 202


def test_a_force_detach_of_a_volume_reset_to_error_makes_it_available(admin: Api) -> None:
    """tempest's test_force_detach_volume: attached, reset to error by the admin, force-detached
    -> available with no attachment (as Cinder's detach leaves it)."""
    vid = new_volume(admin)
    admin("POST", f"/volumes/{vid}/action", {"os-attach": {"host_name": "cn-1", "mountpoint": "/dev/vdb"}})
    assert admin.volume(vid)["status"] == "in-use"
    attachment = admin.volume(vid)["attachments"][0]["attachment_id"]
    assert act(admin, vid, {"os-reset_status": {"status": "error"}}).status_code == 202
    assert act(admin, vid, {"os-force_detach": {"attachment_id": attachment, "connector": None}}).status_code == 202
    vol = admin.volume(vid)
    assert (vol["status"], vol["attachments"]) == ("available", [])
    # a detach of a volume with nothing attached changes nothing (Cinder's manager only logs it)
    assert act(admin, vid, {"os-detach": {}}).status_code == 202
    assert admin.volume(vid)["status"] == "available"
    assert admin("DELETE", f"/volumes/{vid}").status_code == 202


def test_reset_status_and_force_delete_are_an_admins(admin: Api, people: dict[str, Api]) -> None:
    member, reader, other = people["member"], people["reader"], people["other"]
    admin("PUT", f"/os-quota-sets/{member.project_id}", {"quota_set": {"volumes": 20, "gigabytes": 100}})
    vid = new_volume(member)
    for body in ({"os-reset_status": {"status": "error"}}, {"os-force_delete": {}}):
        r = act(member, vid, body)
        assert r.status_code == 403 and "volume_admin_actions" in r.json()["forbidden"]["message"], body
    assert act(other, vid, {"os-reset_status": {"status": "error"}}).status_code == 404
    for body in ({"os-reset_status": {}}, {"os-reset_status": {"status": "bogus"}},
                 {"os-reset_status": {"attach_status": "sideways"}}, {"os-reset_status": {"migration_status": 5}},
                 {"os-reset_status": {"status": "error", "nope": 1}}):
        r = act(admin, vid, body)
        assert r.status_code == 400, (body, r.status_code, r.text)
    r = act(admin, vid, {"os-reset_status": {"status": "error", "attach_status": "detached",
                                             "migration_status": "migrating"}})
    assert r.status_code == 202, r.text
    shown = admin.volume(vid)
    assert (shown["status"], shown["migration_status"], shown["os-vol-mig-status-attr:migstat"]) == (
        "error", "migrating", "migrating")
    assert member.volume(vid)["status"] == "error" and reader.volume(vid)["status"] == "error"
    assert act(admin, vid, {"os-reset_status": {"status": "maintenance", "migration_status": "none"}}).status_code \
        == 202
    assert member("DELETE", f"/volumes/{vid}").status_code == 400  # maintenance: not deletable
    assert act(admin, vid, {"os-force_delete": {}}).status_code == 202
    wait_for(lambda: admin("GET", f"/volumes/{vid}").status_code == 404, 20, "the volume to be gone")
    # snapshots
    vid = new_volume(member)
    sid = member("POST", "/snapshots", {"snapshot": {"volume_id": vid}}).json()["snapshot"]["id"]
    wait_for(lambda: member("GET", f"/snapshots/{sid}").json()["snapshot"]["status"] == "available", 20, "snap")
    r = act(admin, vid, {"os-force_delete": None})
    assert r.status_code == 400 and "snapshots" in r.json()["badRequest"]["message"]
    snap_act = f"/snapshots/{sid}/action"
    assert member("POST", snap_act, {"os-reset_status": {"status": "error"}}).status_code == 403
    assert reader("POST", snap_act, {"os-force_delete": {}}).status_code == 403
    assert other("POST", snap_act, {"os-force_delete": {}}).status_code == 404
    for body in ({"os-reset_status": {}}, {"os-reset_status": {"status": "weird"}}, {"os-nope": {}}, {}, []):
        assert admin("POST", snap_act, body).status_code == 400, body
    assert admin("POST", snap_act, {"os-reset_status": {"status": "error"}}).status_code == 202
    assert member("GET", f"/snapshots/{sid}").json()["snapshot"]["status"] == "error"
    assert admin("POST", snap_act, {"os-force_delete": {}}).status_code == 202
    wait_for(lambda: admin("GET", f"/snapshots/{sid}").status_code == 404, 20, "the snapshot to be gone")
    assert member("DELETE", f"/volumes/{vid}").status_code == 202


def test_members_extend_and_upload_readers_may_not_and_others_see_nothing(admin: Api,
                                                                          people: dict[str, Api]) -> None:
    member, reader, other = people["member"], people["reader"], people["other"]
    admin("PUT", f"/os-quota-sets/{member.project_id}", {"quota_set": {"volumes": 20, "gigabytes": 100}})
    vid = new_volume(member)
    for body, rule in (({"os-extend": {"new_size": 2}}, "volume:extend"),
                       ({"os-volume_upload_image": {"image_name": "x"}}, "upload_image"),
                       ({"os-set_image_metadata": {"metadata": {"k": "v"}}}, "volume_image_metadata:set"),
                       ({"os-unset_image_metadata": {"key": "k"}}, "volume_image_metadata:remove")):
        r = act(reader, vid, body)
        assert r.status_code == 403 and rule in r.json()["forbidden"]["message"], (body, r.text)
        assert act(other, vid, body).status_code == 404, body
    assert act(reader, vid, {"os-show_image_metadata": None}).json() == {"metadata": {}}
    r = act(member, vid, {"os-volume_upload_image": {"image_name": "x", "visibility": "public"}}, version="3.1")
    assert r.status_code == 403 and "upload_public" in r.json()["forbidden"]["message"]
    assert act(member, vid, {"os-extend": {"new_size": 2}}).status_code == 202
    assert member.wait_status(vid, "available")["size"] == 2
    admin("PUT", f"/os-quota-sets/{member.project_id}", {"quota_set": {"gigabytes": 2}})
    r = act(member, vid, {"os-extend": {"new_size": 3}})
    assert r.status_code == 413 and "gigabytes" in r.json()["overLimit"]["message"]
    admin("PUT", f"/os-quota-sets/{member.project_id}", {"quota_set": {"gigabytes": 100}})
    assert member("DELETE", f"/volumes/{vid}").status_code == 202


def test_services_and_pools_are_an_admins_and_say_what_runs(admin: Api, people: dict[str, Api]) -> None:
    services = admin("GET", "/os-services").json()["services"]
    binaries = {s["binary"]: s for s in services}
    assert set(binaries) == {"cinder-scheduler", "cinder-volume", "cinder-backup"}
    vol = binaries["cinder-volume"]
    assert vol["host"].endswith("@file") and (vol["state"], vol["status"], vol["zone"]) == ("up", "enabled", "nova")
    assert set(vol) == {"binary", "host", "zone", "status", "state", "updated_at", "disabled_reason", "frozen",
                        "replication_status", "active_backend_id"}
    latest = admin("GET", "/os-services", version="3.71").json()["services"]
    assert all("cluster" in s for s in latest)
    assert {s.get("backend_state") for s in latest if s["binary"] == "cinder-volume"} == {"up"}
    only = admin("GET", "/os-services?binary=cinder-scheduler").json()["services"]
    assert [s["binary"] for s in only] == ["cinder-scheduler"]
    pools = admin("GET", "/scheduler-stats/get_pools").json()["pools"]
    assert pools and all(set(p) == {"name"} and p["name"].count("@") == 1 and "#" in p["name"] for p in pools)
    (detail, *_) = admin("GET", "/scheduler-stats/get_pools?detail=true").json()["pools"]
    caps = detail["capabilities"]
    assert (caps["storage_protocol"], caps["vendor_name"], caps["volume_backend_name"],
            caps["reserved_percentage"]) == ("file", "Cumulo", "file", 0)
    assert caps["total_capacity_gb"] >= caps["free_capacity_gb"] >= 0 and "allocated_capacity_gb" in caps
    assert admin("GET", "/scheduler-stats/get_pools?detail=perhaps").status_code == 400
    # a backend's capabilities (by pool, backend or host name) say what get_pools says
    for name in (pools[0]["name"], pools[0]["name"].split("#")[0]):
        backend = admin("GET", f"/capabilities/{name}").json()
        assert (backend["storage_protocol"], backend["vendor_name"], backend["volume_backend_name"]) == (
            caps["storage_protocol"], caps["vendor_name"], caps["volume_backend_name"])
        assert backend["namespace"].startswith("OS::Storage::Capabilities::")
    assert admin("GET", "/capabilities/nonesuch@file").status_code == 404
    for persona in ("member", "reader", "other"):
        for path in ("/os-services", "/scheduler-stats/get_pools", f"/capabilities/{pools[0]['name']}"):
            r = people[persona]("GET", path)
            assert r.status_code == 403, (persona, path, r.status_code)
        r = people[persona]("PUT", "/os-services/disable", {"host": vol["host"], "binary": "cinder-volume"})
        assert r.status_code == 403 and "services:update" in r.json()["forbidden"]["message"]
    # a disabled pool takes no new volume (the only one here: the volume is in error, saying so)
    r = admin("PUT", "/os-services/disable", {"host": vol["host"], "binary": "cinder-volume"})
    assert r.status_code == 200 and r.json() == {"disabled": True, "status": "disabled", "host": vol["host"],
                                                 "service": "cinder-volume", "binary": "cinder-volume"}
    try:
        shown = {s["binary"]: s for s in admin("GET", f"/os-services?host={vol['host']}").json()["services"]}
        assert shown["cinder-volume"]["status"] == "disabled"
        if len(pools) == 1:
            vid = admin("POST", "/volumes", {"volume": {"size": 1}}).json()["volume"]["id"]
            assert admin.wait_status(vid, "error")
            assert admin("DELETE", f"/volumes/{vid}").status_code == 202
    finally:
        r = admin("PUT", "/os-services/enable", {"host": vol["host"], "binary": "cinder-volume"})
    assert r.status_code == 200 and r.json()["status"] == "enabled" and r.json()["disabled_reason"] is None
    for path, body, status in (("/os-services/enable", {"host": "nowhere@file"}, 404),
                               ("/os-services/enable", {"host": vol["host"], "binary": "cinder-scheduler"}, 404),
                               ("/os-services/enable", {"host": binaries["cinder-scheduler"]["host"],
                                                        "binary": "cinder-scheduler"}, 400),
                               ("/os-services/enable", {}, 400), ("/os-services/enable", {"host": 5}, 400),
                               ("/os-services/failover_host", {"host": vol["host"]}, 404)):
        assert admin("PUT", path, body).status_code == status, (path, body)


def test_a_failed_create_leaves_a_user_message_its_project_reads(admin: Api, people: dict[str, Api]) -> None:
    member, reader, other = people["member"], people["reader"], people["other"]
    admin("PUT", f"/os-quota-sets/{member.project_id}", {"quota_set": {"volumes": 20, "gigabytes": -1}})
    r = member("POST", "/volumes", {"volume": {"size": 900000}})  # no pool has room: error, and a message
    assert r.status_code == 202, r.text
    vid = r.json()["volume"]["id"]
    assert member.volume(vid)["status"] == "error"
    assert member("GET", "/messages").status_code == 404  # below 3.3 there is no such resource
    listed = member("GET", "/messages", version="3.3").json()["messages"]
    (msg,) = [m for m in listed if m["resource_uuid"] == vid]
    assert set(msg) == {"id", "event_id", "user_message", "message_level", "resource_type", "resource_uuid",
                        "request_id", "created_at", "guaranteed_until", "links"}
    assert (msg["message_level"], msg["resource_type"], msg["event_id"]) == ("ERROR", "VOLUME",
                                                                             "VOLUME_VOLUME_001_002")
    assert "No valid backend" in msg["user_message"] and msg["request_id"].startswith("req-")
    assert reader("GET", f"/messages/{msg['id']}", version="3.3").json()["message"] == msg
    assert other("GET", f"/messages/{msg['id']}", version="3.3").status_code == 404
    assert msg["id"] not in {m["id"] for m in other("GET", "/messages", version="3.3").json()["messages"]}
    assert reader("DELETE", f"/messages/{msg['id']}", version="3.3").status_code == 403
    assert other("DELETE", f"/messages/{msg['id']}", version="3.3").status_code == 404
    for query in ("limit=x", "sort=created_at:sideways", "sort=name:asc"):
        assert member("GET", f"/messages?{query}", version="3.5").status_code == 400, query
    assert member("GET", "/messages?marker=nope", version="3.5").status_code == 404  # Cinder's MarkerNotFound
    assert len(member("GET", "/messages?limit=1&sort=created_at:asc", version="3.5").json()["messages"]) == 1
    assert member("DELETE", f"/messages/{msg['id']}", version="3.3").status_code == 204
    assert member("GET", f"/messages/{msg['id']}", version="3.3").status_code == 404
    assert member("DELETE", f"/volumes/{vid}").status_code == 202


def test_a_type_asking_for_another_backend_makes_an_error_volume_and_a_message(admin: Api) -> None:
    """Tempest's way to a user message: a type whose storage_protocol no pool has."""
    vtype = admin("POST", "/types", {"volume_type": {"name": unique("bogus"), "extra_specs": {
        "storage_protocol": unique("proto"), "vendor_name": unique("vendor")}}}).json()["volume_type"]
    vid = admin("POST", "/volumes", {"volume": {"size": 1, "volume_type": vtype["id"]}}).json()["volume"]["id"]
    vol = admin.wait_status(vid, "error")
    assert vol["volume_type"] == vtype["name"]
    messages = admin("GET", "/messages", version="3.3").json()["messages"]
    (msg,) = [m for m in messages if m["resource_uuid"] == vid]
    assert "storage_protocol" in msg["user_message"] or "vendor_name" in msg["user_message"]
    assert admin("DELETE", f"/volumes/{vid}").status_code == 202
    wait_for(lambda: admin("GET", f"/volumes/{vid}").status_code == 404, 20, "the volume to be gone")
    assert admin("DELETE", f"/types/{vtype['id']}").status_code == 202


def test_a_member_updates_a_creating_snapshots_status(admin: Api, people: dict[str, Api]) -> None:
    member, reader = people["member"], people["reader"]
    admin("PUT", f"/os-quota-sets/{member.project_id}", {"quota_set": {"volumes": 20, "gigabytes": 100}})
    vid = new_volume(member)
    sid = member("POST", "/snapshots", {"snapshot": {"volume_id": vid}}).json()["snapshot"]["id"]
    wait_for(lambda: member("GET", f"/snapshots/{sid}").json()["snapshot"]["status"] == "available", 20, "snap")
    path = f"/snapshots/{sid}/action"
    r = member("POST", path, {"os-update_snapshot_status": {"status": "error"}})
    assert r.status_code == 400 and "not allowed" in r.json()["badRequest"]["message"]
    assert admin("POST", path, {"os-reset_status": {"status": "creating"}}).status_code == 202
    time.sleep(1.5)  # the agent reports every second: an admin's "creating" is not rolled forward
    assert member("GET", f"/snapshots/{sid}").json()["snapshot"]["status"] == "creating"
    r = reader("POST", path, {"os-update_snapshot_status": {"status": "available"}})
    assert r.status_code == 403 and "update_snapshot_status" in r.json()["forbidden"]["message"]
    for body in ({"os-update_snapshot_status": {}}, {"os-update_snapshot_status": {"status": "available",
                                                                                    "progress": "lots"}}):
        assert member("POST", path, body).status_code == 400, body
    r = member("POST", path, {"os-update_snapshot_status": {"status": "available", "progress": "100%"}})
    assert r.status_code == 202, r.text
    shown = member("GET", f"/snapshots/{sid}").json()["snapshot"]
    assert (shown["status"], shown["os-extended-snapshot-attributes:progress"]) == ("available", "100%")
    assert member("DELETE", f"/snapshots/{sid}").status_code == 202
    wait_for(lambda: member("GET", f"/snapshots/{sid}").status_code == 404, 20, "the snapshot to be gone")
    assert member("DELETE", f"/volumes/{vid}").status_code == 202


def test_bad_action_bodies_are_400s_never_500s(admin: Api) -> None:
    vid = new_volume(admin)
    for body in ({"os-set_image_metadata": {"metadata": "x"}}, {"os-set_image_metadata": {}},
                 {"os-set_image_metadata": {"metadata": {"k": 5}}}, {"os-unset_image_metadata": {}},
                 {"os-unset_image_metadata": {"key": 5}}, {"os-show_image_metadata": "x"},
                 {"os-force_delete": "x"}, {"os-reset_status": "error"}, {"os-extend": {"new_size": 10**12}},
                 {"os-volume_upload_image": "x"}, {"os-extend": {"new_size": 2}, "os-reset_status": {}}):
        r = act(admin, vid, body, version="3.71")
        assert r.status_code == 400, (body, r.status_code, r.text)
    assert admin("DELETE", f"/volumes/{vid}").status_code == 202


def test_hosts_quota_classes_summary_and_extensions(admin: Api, people: dict[str, Api]) -> None:
    member = people["member"]
    vid = new_volume(admin, metadata={"tier": "gold"})
    # os-hosts: the services' hosts, and what a storage host holds (an admin's)
    hosts = admin("GET", "/os-hosts").json()["hosts"]
    storage = next(h["host_name"] for h in hosts if h["service"] == "cinder-volume")
    assert all(h["service-status"] == "available" for h in hosts if h["host_name"] == storage)
    shown = admin("GET", f"/os-hosts/{storage}").json()["host"]
    assert shown[0]["resource"]["project"] == "(total)" and int(shown[0]["resource"]["volume_count"]) >= 1
    assert admin("GET", "/os-hosts/nonesuch@file").status_code == 404
    assert member("GET", "/os-hosts").status_code == 403
    # the default quota class: every project's defaults
    before = admin("GET", "/os-quota-class-sets/default").json()["quota_class_set"]
    assert before["id"] == "default" and before["volumes"] == 10
    r = admin("PUT", "/os-quota-class-sets/default", {"quota_class_set": {"backups": 12}})
    assert r.status_code == 200 and r.json()["quota_class_set"]["backups"] == 12
    assert admin("GET", f"/os-quota-sets/{member.project_id}/defaults").json()["quota_set"]["backups"] == 12
    admin("PUT", "/os-quota-class-sets/default", {"quota_class_set": {"backups": before["backups"]}})
    assert admin("PUT", "/os-quota-class-sets/default", {"quota_class_set": {"nonsense": 1}}).status_code == 400
    assert admin("PUT", "/os-quota-class-sets/default", {"quota_class_set": {"volumes": "many"}}).status_code == 400
    assert member("GET", "/os-quota-class-sets/default").status_code == 403
    # the summary (3.12, metadata 3.36)
    assert admin("GET", "/volumes/summary", version="3.11").status_code == 404
    summary = admin("GET", "/volumes/summary", version="3.36").json()["volume-summary"]
    assert summary["total_count"] >= 1 and summary["total_size"] >= 1 and "gold" in summary["metadata"]["tier"]
    assert member("GET", "/volumes/summary", version="3.12").json()["volume-summary"]["total_count"] == len(
        member("GET", "/volumes").json()["volumes"])
    names = {x["name"] for x in admin("GET", "/extensions").json()["extensions"]}
    assert {"Hosts", "QuotaClasses", "Backups"} <= names
    admin("DELETE", f"/volumes/{vid}")


def test_a_types_encryption_spec_is_an_admins_and_its_volumes_are_refused(admin: Api,
                                                                          people: dict[str, Api]) -> None:
    """/types/{id}/encryption: create, show (whole and one key), update, delete as Cinder answers;
    a volume of an encrypted type is refused in words (no key manager runs), and the spec of a
    type that volumes use cannot change."""
    tid = admin("POST", "/types", {"volume_type": {"name": unique("enc")}}).json()["volume_type"]["id"]
    assert admin("GET", f"/types/{tid}/encryption").json() == {}
    spec = {"provider": "luks", "cipher": "aes-xts-plain64", "key_size": 256, "control_location": "front-end"}
    for persona in ("member", "reader", "other"):
        r = people[persona]("POST", f"/types/{tid}/encryption", {"encryption": spec})
        assert r.status_code == 403 and "volume_type_encryption:create" in r.json()["forbidden"]["message"]
    for bad in ({"key_size": -1, "provider": "luks"}, {"provider": "luks", "control_location": "middle"},
                {"cipher": "x"}, {"provider": "luks", "colour": "red"}):
        assert admin("POST", f"/types/{tid}/encryption", {"encryption": bad}).status_code == 400, bad
    made = admin("POST", f"/types/{tid}/encryption", {"encryption": spec}).json()["encryption"]
    assert {k: made[k] for k in spec} == spec and made["volume_type_id"] == tid
    assert admin("POST", f"/types/{tid}/encryption", {"encryption": spec}).status_code == 400  # one per type
    shown = admin("GET", f"/types/{tid}/encryption").json()
    assert shown["encryption_id"] == made["encryption_id"] and shown["deleted"] is False
    r = admin("PUT", f"/types/{tid}/encryption/{made['encryption_id']}", {"encryption": {"key_size": 128}})
    assert r.status_code == 200 and r.json() == {"encryption": {"key_size": 128}}
    assert admin("GET", f"/types/{tid}/encryption/key_size").json() == {"key_size": 128}
    assert admin("GET", f"/types/{tid}/encryption/colour").status_code == 404
    r = admin("POST", "/volumes", {"volume": {"size": 1, "volume_type": tid}})
    assert r.status_code == 400 and "key manager" in r.json()["badRequest"]["message"]
    assert admin("DELETE", f"/types/{tid}/encryption/{uuid.uuid4()}").status_code == 404
    assert admin("DELETE", f"/types/{tid}/encryption/{made['encryption_id']}").status_code == 202
    assert admin("GET", f"/types/{tid}/encryption").json() == {}
    vid = new_volume(admin, volume_type=tid)  # unencrypted again: its volumes are made
    r = admin("POST", f"/types/{tid}/encryption", {"encryption": spec})
    assert r.status_code == 400 and "in use" in r.json()["badRequest"]["message"]
    assert admin("DELETE", f"/volumes/{vid}").status_code == 202
