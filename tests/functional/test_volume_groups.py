"""Generic volume groups: group types and their specs (3.11), groups (3.13; create-from-src 3.14,
reset_status 3.20), group snapshots (3.14; reset_status 3.19) and volumes made in a group.

Two halves: VolumeService in process (SQLite, the in-process bus, a real file agent) for the data
(a group snapshot of two volumes, a group made from it whose volumes hold the same bytes, read
through the agent's driver), the leases and the rules that keep members together; then one cloud
per backend (SQLite, PostgreSQL) driven over HTTP by each persona, for the API's shapes per
microversion, policies, quotas and bad input."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cumulo.core.bus.memory import MemoryBus
from cumulo.core.config import Config
from cumulo.core.db import Database
from cumulo.core.http.faults import BadRequest, NotFound, PayloadTooLarge
from cumulo.volume.agent import VolumeAgent
from cumulo.volume.drivers.file import FileDriver
from cumulo.volume.reconcile import Reconciler
from cumulo.volume.service import Caller, VolumeService
from tests.functional.conftest import (
    Cloud,
    block_storage_cloud,
    personas,
    unique,
    wait_for,
)
from tests.functional.test_volumes import Api, cli_json
from tests.unit.test_volume_service import Limits

WHO = Caller("p1", "u1")


# -- in process ----------------------------------------------------------------------------------------
@pytest.fixture
async def world(tmp_path: Path) -> Any:
    cfg = Config(state_dir=str(tmp_path))
    cfg.volume.operation_timeout = 0.4
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
    holder = {"agent": agent}

    async def lost(method: str, args: dict[str, Any]) -> None:  # what the agent's messages meet while it is away
        return None

    async def away(back: bool) -> None:
        """The agent goes away (its messages are lost), or comes back anew."""
        await holder["agent"].stop()
        await bus.serve("volume.node1", lost)
        if back:
            holder["agent"] = VolumeAgent(bus, "node1", driver, report_interval=60)
            await holder["agent"].start()

    yield svc, driver, away
    await holder["agent"].stop()
    await bus.stop()
    await db.close()


async def until(check: Any, what: str, tries: int = 250) -> Any:
    for _ in range(tries):
        got = await check()
        if got:
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def volume_status(svc: VolumeService, volume_id: str, status: str) -> Any:
    return await until(lambda: _status_is(svc.volume(volume_id, WHO), status), f"volume {volume_id} {status}")


async def _status_is(coro: Any, status: str) -> Any:
    got = await coro
    return got if got.status == status else None


def qemu_write(path: Path, pattern: int, offset: str) -> None:
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern:#x} {offset} 1M", str(path)], check=True,
                   capture_output=True)


def same_data(a: Path, b: Path) -> bool:
    """qemu-img compare: the guest-visible bytes are equal (whatever the files' layout)."""
    return subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(a), str(b)],
                          capture_output=True).returncode == 0


async def group_with_volumes(svc: VolumeService, n: int = 2) -> tuple[Any, list[str]]:
    gtype = await svc.create_group_type(unique("gt"))
    vtype = await svc.default_type()
    group = await svc.create_group(WHO, gtype.id, [vtype.id], name="g")
    assert group.status == "available" and group.host == "node1"
    vids = []
    for _ in range(n):
        vol = await svc.create_volume(WHO, 1, volume_type=vtype.id, group_id=group.id)
        assert vol.group_id == group.id
        await volume_status(svc, vol.id, "available")
        vids.append(vol.id)
    return group, vids


async def test_a_group_made_from_a_group_snapshot_holds_the_same_data(world: Any) -> None:
    svc, driver, _ = world
    group, (a, b) = await group_with_volumes(svc)
    qemu_write(driver.volume_path(a), 0xAB, "0")
    qemu_write(driver.volume_path(b), 0x5A, "512M")
    gs = await svc.create_group_snapshot(WHO, group.id, name="gs")
    assert gs.group_type_id == group.group_type_id
    await until(lambda: _status_is(svc.group_snapshot(gs.id, WHO), "available"), "the group snapshot")
    members = [x for x in await svc.snapshots(WHO) if x.group_snapshot_id == gs.id]
    assert sorted(x.volume_id for x in members) == sorted([a, b])
    assert all(x.status == "available" and x.name == "gs" for x in members)
    # the volumes change after the snapshot: the new group must hold what the snapshot saw
    qemu_write(driver.volume_path(a), 0x11, "0")
    copy = await svc.create_group_from_src(WHO, name="copy", group_snapshot_id=gs.id)
    assert (copy.status, copy.group_snapshot_id, copy.group_type_id) == ("creating", gs.id, group.group_type_id)
    copy = await until(lambda: _status_is(svc.group(copy.id, WHO), "available"), "the new group")
    assert len(copy.volume_ids) == 2
    made = {(await svc.volume(v, WHO)).snapshot_id: v for v in copy.volume_ids}
    source_of = {x.id: x.volume_id for x in members}
    for snap_id, new in made.items():
        assert same_data(driver.snapshot_path(snap_id), driver.volume_path(new))
    new_a = next(v for s, v in made.items() if source_of[s] == a)
    assert not same_data(driver.volume_path(a), driver.volume_path(new_a))  # a was written after
    # and a group copied from a group: its volumes are copies of the source's volumes as they are now
    clone = await svc.create_group_from_src(WHO, source_group_id=group.id)
    clone = await until(lambda: _status_is(svc.group(clone.id, WHO), "available"), "the cloned group")
    assert clone.source_group_id == group.id
    for vid in clone.volume_ids:
        src = (await svc.volume(vid, WHO)).source_volid
        assert src in (a, b) and same_data(driver.volume_path(src), driver.volume_path(vid))
    assert (await svc.usage(WHO.project_id))["groups"] == 3
    # deleting: the group snapshot (its snapshots go with it), then the groups with their volumes
    with pytest.raises(BadRequest, match="existing snapshots"):
        await svc.delete_group(WHO, group.id, delete_volumes=True)
    await svc.delete_group_snapshot(WHO, gs.id)
    await until(lambda: _gone(svc.group_snapshot(gs.id, WHO)), "the group snapshot's delete")
    assert not [x for x in await svc.snapshots(WHO) if x.group_snapshot_id == gs.id]
    for g in (group, copy, clone):
        await svc.delete_group(WHO, g.id, delete_volumes=True)
        await until(lambda g=g: _gone(svc.group(g.id, WHO)), f"group {g.id} deleted")
    assert not await svc.volumes(WHO)
    assert not list(driver.path.glob("*.qcow2"))  # every volume and snapshot file is gone
    assert (await svc.usage(WHO.project_id))["groups"] == 0


async def _gone(coro: Any) -> bool:
    try:
        await coro
    except NotFound:
        return True
    return False


async def test_a_group_snapshot_nobody_reports_ends_in_error_and_is_deleted_later(world: Any) -> None:
    svc, _, away = world
    group, _ = await group_with_volumes(svc)
    await away(back=False)  # nobody makes the snapshots
    gs = await svc.create_group_snapshot(WHO, group.id)
    assert gs.status == "creating"
    with pytest.raises(BadRequest, match="must be available or error"):
        await svc.delete_group_snapshot(WHO, gs.id)
    await asyncio.sleep(0.5)
    await Reconciler(svc).reconcile()  # the snapshots' leases end them in error, and the group snapshot follows
    assert (await svc.group_snapshot(gs.id, WHO)).status == "error"
    assert {x.status for x in await svc.snapshots(WHO) if x.group_snapshot_id == gs.id} == {"error"}
    # a group created from a source nobody makes ends in error at its lease too
    clone = await svc.create_group_from_src(WHO, source_group_id=group.id)
    await asyncio.sleep(0.5)
    await Reconciler(svc).reconcile()
    assert (await svc.group(clone.id, WHO)).status == "error"
    await away(back=True)
    await asyncio.sleep(0.05)
    await svc.delete_group_snapshot(WHO, gs.id)
    await until(lambda: _gone(svc.group_snapshot(gs.id, WHO)), "the group snapshot's delete")
    await svc.delete_group(WHO, clone.id, delete_volumes=True)
    await until(lambda: _gone(svc.group(clone.id, WHO)), "the failed clone's delete")


async def test_members_stay_together_and_quotas_count_groups(world: Any) -> None:
    svc, _, _ = world
    group, (a, b) = await group_with_volumes(svc)
    with pytest.raises(BadRequest, match="belong to a group"):
        await svc.delete_volume(a, WHO)
    with pytest.raises(BadRequest, match="volume_type must be provided"):
        await svc.create_volume(WHO, 1, group_id=group.id)
    other_type = await svc.create_volume_type(unique("vt"))
    with pytest.raises(BadRequest, match="supported by this group"):
        await svc.create_volume(WHO, 1, volume_type=other_type.id, group_id=group.id)
    gs = await svc.create_group_snapshot(WHO, group.id)
    await until(lambda: _status_is(svc.group_snapshot(gs.id, WHO), "available"), "the group snapshot")
    member = next(x for x in await svc.snapshots(WHO) if x.group_snapshot_id == gs.id)
    with pytest.raises(BadRequest, match="part of a group"):
        await svc.delete_snapshot(member.id, WHO)
    # out and back in: a removed volume is deletable on its own, an added one must fit
    await svc.update_group(WHO, group.id, remove_volumes=b)
    assert (await svc.volume(b, WHO)).group_id is None
    with pytest.raises(BadRequest, match="both add and remove"):
        await svc.update_group(WHO, group.id, add_volumes=b, remove_volumes=b)
    with pytest.raises(BadRequest, match="not in the group"):
        await svc.update_group(WHO, group.id, remove_volumes=b)
    stranger = await svc.create_volume(WHO, 1, volume_type=other_type.id)
    await volume_status(svc, stranger.id, "available")
    with pytest.raises(BadRequest, match="is not supported by the group"):
        await svc.update_group(WHO, group.id, add_volumes=stranger.id)
    with pytest.raises(BadRequest, match="cannot be found"):
        await svc.update_group(WHO, group.id, add_volumes="0000-nonesuch")
    with pytest.raises(BadRequest, match="no valid name"):
        await svc.update_group(WHO, group.id, name="g")
    updated = await svc.update_group(WHO, group.id, name="renamed", add_volumes=f"{b},")
    assert updated.name == "renamed" and sorted(updated.volume_ids) == sorted([a, b])
    with pytest.raises(NotFound):  # another project's group is no one's to see
        await svc.group(group.id, Caller("p2", "u2"))
    # quota: groups in the project's turn
    await svc.set_quotas(WHO.project_id, {"groups": 1})
    with pytest.raises(PayloadTooLarge, match="groups"):
        await svc.create_group(WHO, group.group_type_id, group.volume_type_ids)
    with pytest.raises(PayloadTooLarge, match="groups"):
        await svc.create_group_from_src(WHO, group_snapshot_id=gs.id)
    await svc.set_quotas(WHO.project_id, {"groups": 10, "volumes": 3})
    with pytest.raises(PayloadTooLarge, match="volumes"):  # two more volumes would make four
        await svc.create_group_from_src(WHO, group_snapshot_id=gs.id)
    with pytest.raises(BadRequest, match="still in use"):
        await svc.delete_group_type(group.group_type_id)
    # an admin's reset ends any lease: the status stays what was set
    await svc.reset_group_status(group.id, "error")
    assert (await svc.group(group.id, WHO)).status == "error"
    with pytest.raises(BadRequest, match="invalid"):
        await svc.reset_group_snapshot_status(gs.id, "frozen")
    await svc.reset_group_snapshot_status(gs.id, "creating")
    await Reconciler(svc).reconcile()  # no lease: what the admin set stays, theirs to move
    assert (await svc.group_snapshot(gs.id, WHO)).status == "creating"


# -- one cloud, over HTTP ---------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gcloud(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    yield from block_storage_cloud(request, tmp_path_factory, "volume-groups")


@pytest.fixture(scope="module")
def admin(gcloud: Cloud) -> Api:
    token, body = gcloud.token()
    return Api(gcloud, token, body["project"]["id"])


@pytest.fixture(scope="module")
def people(gcloud: Cloud) -> dict[str, Api]:
    return {name: Api(gcloud, token, project) for name, (token, project) in personas(gcloud, "grp").items()}


LATEST = "3.71"


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


@pytest.fixture(scope="module")
def types(admin: Api) -> dict[str, str]:
    gt = ok(admin("POST", "/group_types", {"group_type": {"name": unique("gt"), "description": "d",
                                                          "group_specs": {"consistent_group_snapshot_enabled":
                                                                          "<is> False"}}}, "3.11"), 202)
    vt = ok(admin("POST", "/types", {"volume_type": {"name": unique("vt")}}))
    return {"group_type": gt["group_type"]["id"], "volume_type": vt["volume_type"]["id"]}


def test_group_types_and_their_specs(admin: Api, people: dict[str, Api], types: dict[str, str]) -> None:
    member = people["member"]
    assert admin("GET", "/group_types", version="3.10").status_code == 404
    body = ok(admin("POST", "/group_types", {"group_type": {"name": unique("gt"), "is_public": False}}, "3.11"), 202)
    private = body["group_type"]
    assert set(private) == {"id", "name", "description", "is_public", "group_specs"}
    assert private["group_specs"] == {} and private["is_public"] is False
    assert ok(admin("POST", "/group_types", {"group_type": {"name": private["name"]}}, "3.11"), 409)
    listed = ok(admin("GET", "/group_types?is_public=None&sort=name:asc", version="3.11"))["group_types"]
    names = [t["name"] for t in listed]
    assert private["name"] in names and names == sorted(names)
    assert private["id"] not in {t["id"] for t in ok(admin("GET", "/group_types", version="3.11"))["group_types"]}
    # a member sees the public ones, without their specs, and never a private one
    seen = ok(member("GET", "/group_types", version="3.11"))["group_types"]
    assert types["group_type"] in {t["id"] for t in seen} and all("group_specs" not in t for t in seen)
    assert member("GET", f"/group_types/{private['id']}", version="3.11").status_code == 404
    assert member("POST", "/group_types", {"group_type": {"name": "x"}}, "3.11").status_code == 403
    assert member("GET", f"/group_types/{types['group_type']}/group_specs", version="3.11").status_code == 403
    assert admin("GET", "/group_types/default", version="3.11").status_code == 404
    # update (200), specs (create 202, show, update 200, list, delete 202)
    upd = ok(admin("PUT", f"/group_types/{private['id']}", {"group_type": {"name": private["name"] + "-x",
                                                                          "description": "new"}}, "3.11"))
    assert upd["group_type"]["description"] == "new"
    assert admin("PUT", f"/group_types/{private['id']}", {"group_type": {}}, "3.11").status_code == 400
    base = f"/group_types/{private['id']}/group_specs"
    assert ok(admin("POST", base, {"group_specs": {"key1": "value1", "key2": "value2"}}, "3.11"), 202) == {
        "group_specs": {"key1": "value1", "key2": "value2"}}
    assert ok(admin("GET", f"{base}/key1", version="3.11")) == {"key1": "value1"}
    assert ok(admin("PUT", f"{base}/key1", {"key1": "v"}, "3.11")) == {"key1": "v"}
    assert admin("PUT", f"{base}/key1", {"key2": "v"}, "3.11").status_code == 400
    assert ok(admin("GET", base, version="3.11")) == {"group_specs": {"key1": "v", "key2": "value2"}}
    assert admin("DELETE", f"{base}/key1", version="3.11").status_code == 202
    assert admin("GET", f"{base}/key1", version="3.11").status_code == 404
    assert admin("DELETE", f"{base}/key1", version="3.11").status_code == 404
    assert admin("POST", base, {"group_specs": {"bad key": "v"}}, "3.11").status_code == 400
    assert admin("DELETE", f"/group_types/{private['id']}", version="3.11").status_code == 202
    assert admin("GET", f"/group_types/{private['id']}", version="3.11").status_code == 404


def make_group(api: Api, types: dict[str, str], **extra: Any) -> str:
    body = ok(api("POST", "/groups", {"group": {"group_type": types["group_type"],
                                                "volume_types": [types["volume_type"]], "name": unique("g"),
                                                **extra}}, "3.13"), 202)
    assert set(body["group"]) == {"id", "name"}
    gid = body["group"]["id"]
    wait_group(api, gid)
    return str(gid)


def wait_group(api: Api, gid: str, status: str = "available") -> dict[str, Any]:
    return wait_for(lambda: (g := ok(api("GET", f"/groups/{gid}", version="3.13"))["group"])["status"] == status
                    and g, 30, f"group {gid} {status}")  # type: ignore[return-value]


def wait_group_snapshot(api: Api, gsid: str, status: str = "available") -> dict[str, Any]:
    return wait_for(lambda: (g := ok(api("GET", f"/group_snapshots/{gsid}", version="3.14"))["group_snapshot"])[
        "status"] == status and g, 30, f"group snapshot {gsid} {status}")  # type: ignore[return-value]


def group_volume(api: Api, types: dict[str, str], gid: str) -> str:
    body = ok(api("POST", "/volumes", {"volume": {"size": 1, "volume_type": types["volume_type"], "group_id": gid}},
                  "3.13"), 202)
    assert body["volume"]["group_id"] == gid
    api.wait_status(body["volume"]["id"], "available")
    return str(body["volume"]["id"])


GROUP_313 = {"id", "status", "availability_zone", "created_at", "name", "description", "group_type", "volume_types"}


def test_a_members_groups_volumes_and_group_snapshots(admin: Api, people: dict[str, Api],
                                                      types: dict[str, str]) -> None:
    member, reader, other = people["member"], people["reader"], people["other"]
    gid = make_group(member, types)
    vols = [group_volume(member, types, gid) for _ in range(2)]
    # the fields of each microversion, and no others
    assert set(ok(member("GET", f"/groups/{gid}", version="3.13"))["group"]) == GROUP_313
    assert set(ok(member("GET", f"/groups/{gid}", version="3.14"))["group"]) == GROUP_313 | {
        "group_snapshot_id", "source_group_id"}
    shown = ok(member("GET", f"/groups/{gid}?list_volume=true", version=LATEST))["group"]
    assert set(shown) == GROUP_313 | {"group_snapshot_id", "source_group_id", "volumes", "replication_status"}
    assert sorted(shown["volumes"]) == sorted(vols) and shown["replication_status"] == "disabled"
    assert "project_id" in ok(admin("GET", f"/groups/{gid}", version="3.58"))["group"]
    assert member("GET", f"/groups/{gid}", version="3.12").status_code == 404
    assert "group_id" not in member.volume(vols[0])  # the default microversion is below 3.13
    assert ok(member("GET", f"/volumes/{vols[0]}", version="3.13"))["volume"]["group_id"] == gid
    in_group = ok(member("GET", f"/volumes/detail?group_id={gid}", version="3.10"))["volumes"]
    assert sorted(v["id"] for v in in_group) == sorted(vols)  # the group_id filter (3.10)
    detail = ok(member("GET", "/groups/detail", version="3.14"))["groups"]
    assert [g["volume_types"] for g in detail if g["id"] == gid] == [[types["volume_type"]]]
    assert ok(member("GET", "/groups", version="3.13"))["groups"] == [{"id": gid, "name": shown["name"]}]
    assert member("GET", "/groups?marker=nonesuch", version="3.13").status_code == 404  # Cinder's MarkerNotFound
    assert ok(reader("GET", "/groups", version="3.13"))["groups"][0]["id"] == gid
    assert ok(other("GET", "/groups", version="3.13"))["groups"] == []
    assert other("GET", f"/groups/{gid}", version="3.13").status_code == 404
    assert reader("PUT", f"/groups/{gid}", {"group": {"name": "x"}}, "3.13").status_code == 403
    assert member("DELETE", f"/volumes/{vols[0]}").status_code == 400  # a member volume goes with its group
    assert admin("POST", f"/volumes/{vols[0]}/action", {"os-force_delete": {}}).status_code == 400  # even forced
    # update: out and back in (202), then nothing to change (400)
    assert member("PUT", f"/groups/{gid}", {"group": {"name": "new", "description": "d",
                                                      "remove_volumes": vols[1]}}, "3.13").status_code == 202
    assert ok(member("GET", f"/volumes/{vols[1]}", version="3.13"))["volume"]["group_id"] is None
    assert member("PUT", f"/groups/{gid}", {"group": {"add_volumes": vols[1]}}, "3.13").status_code == 202
    assert member("PUT", f"/groups/{gid}", {"group": {"name": "new"}}, "3.13").status_code == 400
    # group snapshots
    assert reader("POST", "/group_snapshots", {"group_snapshot": {"group_id": gid}}, "3.14").status_code == 403
    body = ok(member("POST", "/group_snapshots", {"group_snapshot": {"group_id": gid, "name": "gs"}}, "3.14"), 202)
    assert set(body["group_snapshot"]) == {"id", "name", "group_type_id"}
    gsid = body["group_snapshot"]["id"]
    gs = wait_group_snapshot(member, gsid)
    assert set(gs) == {"id", "group_id", "group_type_id", "status", "created_at", "name", "description"}
    assert (gs["group_id"], gs["group_type_id"]) == (gid, types["group_type"])
    snaps = [s for s in ok(member("GET", "/snapshots/detail", version="3.14"))["snapshots"]
             if s["group_snapshot_id"] == gsid]
    assert sorted(s["volume_id"] for s in snaps) == sorted(vols) and {s["status"] for s in snaps} == {"available"}
    assert member("DELETE", f"/snapshots/{snaps[0]['id']}").status_code == 400
    assert admin("POST", f"/snapshots/{snaps[0]['id']}/action", {"os-force_delete": {}}).status_code == 400
    assert ok(member("GET", "/group_snapshots", version="3.14"))["group_snapshots"] == [{"id": gsid, "name": "gs"}]
    assert [x["id"] for x in ok(reader("GET", "/group_snapshots/detail", version="3.14"))["group_snapshots"]] == [gsid]
    assert other("GET", f"/group_snapshots/{gsid}", version="3.14").status_code == 404
    assert member("GET", "/group_snapshots", version="3.13").status_code == 404
    # create from the group snapshot and from the group (3.14)
    made = ok(member("POST", "/groups/action", {"create-from-src": {"group_snapshot_id": gsid, "name": "fs"}},
                     "3.14"), 202)["group"]
    assert made["name"] == "fs"
    new = wait_group(member, made["id"])
    assert ok(member("GET", f"/groups/{made['id']}", version="3.14"))["group"]["group_snapshot_id"] == gsid
    clone = ok(member("POST", "/groups/action", {"create-from-src": {"source_group_id": gid}}, "3.14"), 202)["group"]
    wait_group(member, clone["id"])
    assert new["group_type"] == types["group_type"]
    assert member("POST", "/groups/action", {"create-from-src": {"source_group_id": gid}}, "3.13").status_code == 404
    quota = ok(admin("GET", f"/os-quota-sets/{member.project_id}?usage=true"))["quota_set"]
    assert quota["groups"]["in_use"] == 3 and quota["groups"]["limit"] == 10
    # the admin's resets (3.19, 3.20); a member may not
    act = {"reset_status": {"status": "error"}}
    assert member("POST", f"/groups/{gid}/action", act, "3.20").status_code == 403
    assert admin("POST", f"/groups/{gid}/action", act, "3.19").status_code == 404
    assert admin("POST", f"/groups/{gid}/action", act, "3.20").status_code == 202
    assert ok(member("GET", f"/groups/{gid}", version="3.20"))["group"]["status"] == "error"
    assert admin("POST", f"/groups/{gid}/action", {"reset_status": {"status": "available"}}, "3.20").status_code == 202
    assert admin("POST", f"/group_snapshots/{gsid}/action", act, "3.18").status_code == 404
    assert member("POST", f"/group_snapshots/{gsid}/action", act, "3.19").status_code == 403
    assert admin("POST", f"/group_snapshots/{gsid}/action", act, "3.19").status_code == 202
    assert ok(member("GET", f"/group_snapshots/{gsid}", version="3.19"))["group_snapshot"]["status"] == "error"
    # replication is refused in words
    r = member("POST", f"/groups/{gid}/action", {"enable_replication": {}}, "3.38")
    assert r.status_code == 400 and "replicat" in r.json()["badRequest"]["message"]
    # delete: a group with group snapshots stays; the group snapshot, then each group with its volumes
    assert member("POST", f"/groups/{gid}/action", {"delete": {"delete-volumes": True}}, "3.13").status_code == 400
    assert member("DELETE", f"/group_snapshots/{gsid}", version="3.14").status_code == 202
    wait_for(lambda: member("GET", f"/group_snapshots/{gsid}", version="3.14").status_code == 404, 30,
             "the group snapshot's delete")
    assert member("POST", f"/groups/{gid}/action", {"delete": {}}, "3.13").status_code == 400  # it holds volumes
    for g in (gid, made["id"], clone["id"]):
        assert member("POST", f"/groups/{g}/action", {"delete": {"delete-volumes": True}}, "3.13").status_code == 202
    for g in (gid, made["id"], clone["id"]):
        wait_for(lambda g=g: member("GET", f"/groups/{g}", version="3.13").status_code == 404, 30, f"group {g} gone")
    for vid in vols:
        assert member("GET", f"/volumes/{vid}").status_code == 404


@pytest.mark.parametrize("method,path,body,version", [
    ("POST", "/groups", {"group": {"volume_types": ["x"]}}, "3.13"),  # no group_type
    ("POST", "/groups", {"group": {"group_type": "x", "volume_types": []}}, "3.13"),
    ("POST", "/groups", {"group": {"group_type": "x", "volume_types": ["a"], "bogus": 1}}, "3.13"),
    ("POST", "/groups", {"group": {"group_type": "no-such-type", "volume_types": ["a"]}}, "3.13"),
    ("POST", "/groups/action", {"create-from-src": {}}, "3.14"),
    ("POST", "/groups/action", {"create-from-src": {"group_snapshot_id": "a", "source_group_id": "b"}}, "3.14"),
    ("POST", "/group_snapshots", {"group_snapshot": {}}, "3.14"),
    ("POST", "/group_snapshots", {"group_snapshot": {"group_id": "0000"}}, "3.14"),
    ("POST", "/group_types", {"group_type": {"name": ""}}, "3.11"),
    ("POST", "/group_types", {"group_type": {"name": "x", "is_public": "maybe"}}, "3.11"),
    ("POST", "/group_types", {}, "3.11"),
    ("POST", "/volumes", {"volume": {"size": 1, "group_id": "no-such-group", "volume_type": "__DEFAULT__"}}, "3.13"),
])
def test_bad_input_is_a_4xx_never_a_500(people: dict[str, Api], admin: Api, method: str, path: str, body: Any,
                                        version: str) -> None:
    api = admin if path.startswith("/group_types") else people["member"]
    r = api(method, path, body, version)
    assert 400 <= r.status_code < 500, r.text


def test_bad_group_actions_and_updates(people: dict[str, Api], types: dict[str, str]) -> None:
    member = people["member"]
    gid = make_group(member, types)
    for body in ({}, {"delete": {}, "reset_status": {"status": "x"}}, {"nonesuch": {}},
                 {"delete": {"delete-volumes": "perhaps"}}):
        assert member("POST", f"/groups/{gid}/action", body, "3.20").status_code == 400, body
    for body in ({"group": {}}, {"group": {"add_volumes": 7}}, {"group": {"name": "x", "extra": 1}}):
        assert member("PUT", f"/groups/{gid}", body, "3.13").status_code == 400, body
    assert member("PUT", f"/groups/{gid}", {"group": {"add_volumes": "no-such-volume"}}, "3.13").status_code == 400
    assert member("POST", f"/groups/{gid}/action", {"delete": {}}, "3.13").status_code == 202
    wait_for(lambda: member("GET", f"/groups/{gid}", version="3.13").status_code == 404, 30, "the group gone")


def test_the_openstack_cli_makes_groups_and_group_snapshots(gcloud: Cloud, admin: Api, types: dict[str, str]) -> None:
    """``openstack volume group type / group / group snapshot``, as a user would type them."""
    if gcloud.backend != "sqlite":
        pytest.skip("the CLI's requests are the same on every backend: run once")
    def cli(version: str, *args: str) -> Any:
        return cli_json(gcloud, "--os-volume-api-version", version, *args)

    gtype = cli("3.11", "volume", "group", "type", "create", unique("cli-gt"))
    assert gtype["Is Public"] is True, gtype
    group = cli("3.13", "volume", "group", "create", "--volume-group-type", gtype["ID"], "--volume-type",
                types["volume_type"], "--name", unique("cli-g"))
    wait_group(admin, group["ID"])
    vol = cli("3.13", "volume", "create", "--size", "1", "--type", types["volume_type"], unique("cli-v"))
    admin.wait_status(vol["id"], "available")
    gcloud.cli("--os-volume-api-version", "3.13", "volume", "group", "add", "volume", group["ID"], vol["id"])
    shown = cli("3.25", "volume", "group", "show", group["ID"])
    assert shown["ID"] == group["ID"] and shown["Status"] == "available"
    assert ok(admin("GET", f"/volumes/{vol['id']}", version="3.13"))["volume"]["group_id"] == group["ID"]
    snap = cli("3.14", "volume", "group", "snapshot", "create", "--name", unique("cli-gs"), group["ID"])
    wait_group_snapshot(admin, snap["ID"])
    assert snap["ID"] in {x["ID"] for x in cli("3.14", "volume", "group", "snapshot", "list")}
    copy = cli("3.14", "volume", "group", "create", "--group-snapshot", snap["ID"], "--name", unique("cli-copy"))
    wait_group(admin, copy["ID"])
    assert {group["ID"], copy["ID"]} <= {x["ID"] for x in cli("3.13", "volume", "group", "list")}
    gcloud.cli("--os-volume-api-version", "3.13", "volume", "group", "delete", "--force", copy["ID"])
    gcloud.cli("--os-volume-api-version", "3.14", "volume", "group", "snapshot", "delete", snap["ID"])
    wait_for(lambda: admin("GET", f"/group_snapshots/{snap['ID']}", version="3.14").status_code == 404, 30,
             "the group snapshot's delete")
    gcloud.cli("--os-volume-api-version", "3.13", "volume", "group", "delete", "--force", group["ID"])
    for g in (group["ID"], copy["ID"]):
        wait_for(lambda g=g: admin("GET", f"/groups/{g}", version="3.13").status_code == 404, 30, f"group {g} gone")
    gcloud.cli("--os-volume-api-version", "3.11", "volume", "group", "type", "delete", gtype["ID"])
