"""Volume transfers, retype, and the storage services' disable-log-reason, freeze and thaw.

Two halves, as test_volume_actions.py: VolumeService in process (SQLite, the in-process bus, a
real file agent), for the transactions (an accept moves the volume and its snapshots within the
quota, or nothing; two racing accepts, one wins; the key is stored only as a digest); then one
cloud per backend (SQLite, PostgreSQL) driven over HTTP by each persona, for the API's shapes by
microversion, policies, faults and tempest's negative os-services cases."""

from __future__ import annotations

import asyncio
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
from cumulo.volume.service import Caller, VolumeService
from cumulo.volume.transfer_models import VolumeTransfer
from tests.functional.conftest import (
    Cloud,
    block_storage_cloud,
    personas,
    unique,
    wait_for,
)
from tests.functional.test_volumes import Api
from tests.unit.test_volume_service import Limits

DONOR, TAKER = Caller("p1", "u1"), Caller("p2", "u2")
ADMIN = Caller("admin-project", "admin", True)


# -- in process ----------------------------------------------------------------------------------------
@pytest.fixture
async def world(tmp_path: Path) -> Any:
    cfg = Config(state_dir=str(tmp_path))
    db = Database(f"sqlite:///{tmp_path / 'cumulo.db'}")
    await db.migrate()
    bus = MemoryBus(5)
    await bus.start()
    svc = VolumeService(cfg, db, bus, Limits())  # type: ignore[arg-type]
    await svc.start()
    agent = VolumeAgent(bus, "node1", FileDriver(tmp_path / "volumes" / "node1"), report_interval=60)
    await agent.start()
    await asyncio.sleep(0.05)
    yield svc
    await agent.stop()
    await bus.stop()
    await db.close()


async def settled(svc: VolumeService, volume_id: str, who: Caller, status: str = "available") -> Any:
    for _ in range(250):
        vol = await svc.volume(volume_id, who)
        if vol.status == status:
            return vol
        await asyncio.sleep(0.02)
    raise AssertionError(f"volume {volume_id} never became {status} (it is {vol.status})")


async def volume_with_snapshot(svc: VolumeService, size: int = 1) -> tuple[str, str]:
    vol = await svc.create_volume(DONOR, size)
    await settled(svc, vol.id, DONOR)
    snap = await svc.create_snapshot(DONOR, vol.id)
    for _ in range(250):
        if (await svc.snapshot(snap.id, DONOR)).status == "available":
            break
        await asyncio.sleep(0.02)
    return vol.id, snap.id


async def test_an_accept_moves_the_volume_and_its_snapshots_within_the_takers_quota(world: Any) -> None:
    svc: VolumeService = world
    vid, sid = await volume_with_snapshot(svc, 2)
    made = await svc.create_transfer(DONOR, vid, "gift")
    assert made.auth_key and len(made.auth_key) == 16 and (await svc.volume(vid, DONOR)).status == "awaiting-transfer"
    async with svc.db.session() as s:  # the key is not stored, only a salted digest of it
        row = await s.get(VolumeTransfer, made.id)
        assert row is not None and made.auth_key not in (row.crypt_hash + row.salt)
        assert row.crypt_hash.startswith("scrypt$")
    with pytest.raises(BadRequest, match="awaiting-transfer"):  # a pending volume is not deleted
        await svc.delete_volume(vid, DONOR)
    # the taker's quota counts the volume, its snapshot and both their gigabytes
    await svc.set_quotas(TAKER.project_id, {"gigabytes": 3})
    with pytest.raises(PayloadTooLarge, match="gigabytes"):
        await svc.accept_transfer(made.id, TAKER, made.auth_key)
    await svc.set_quotas(TAKER.project_id, {"gigabytes": 4, "snapshots": 0})
    with pytest.raises(PayloadTooLarge, match="snapshots"):
        await svc.accept_transfer(made.id, TAKER, made.auth_key)
    assert (await svc.volume(vid, DONOR)).status == "awaiting-transfer"  # nothing moved
    await svc.set_quotas(TAKER.project_id, {"snapshots": 10})
    done = await svc.accept_transfer(made.id, TAKER, made.auth_key)
    assert done.accepted and done.destination_project_id == TAKER.project_id
    vol = await svc.volume(vid, TAKER)
    assert (vol.status, vol.project_id, vol.user_id) == ("available", TAKER.project_id, TAKER.user_id)
    assert (await svc.snapshot(sid, TAKER)).project_id == TAKER.project_id
    with pytest.raises(NotFound):
        await svc.volume(vid, DONOR)
    assert (await svc.usage(TAKER.project_id))["gigabytes"] == 4
    assert (await svc.usage(DONOR.project_id))["gigabytes"] == 0
    with pytest.raises(NotFound):  # a transfer is consumed by its accept
        await svc.accept_transfer(made.id, TAKER, made.auth_key)


async def test_no_snapshots_leaves_them_with_the_donor_and_a_wrong_key_moves_nothing(world: Any) -> None:
    svc: VolumeService = world
    vid, sid = await volume_with_snapshot(svc)
    made = await svc.create_transfer(DONOR, vid, None, no_snapshots=True)
    with pytest.raises(BadRequest, match="Invalid auth key"):
        await svc.accept_transfer(made.id, TAKER, "0" * 16)
    assert (await svc.volume(vid, DONOR)).project_id == DONOR.project_id
    await svc.accept_transfer(made.id, TAKER, made.auth_key or "")
    assert (await svc.volume(vid, TAKER)).project_id == TAKER.project_id
    assert (await svc.snapshot(sid, DONOR)).project_id == DONOR.project_id


async def test_of_two_racing_accepts_one_takes_the_volume(world: Any) -> None:
    svc: VolumeService = world
    vol = await svc.create_volume(DONOR, 1)
    await settled(svc, vol.id, DONOR)
    made = await svc.create_transfer(DONOR, vol.id)
    third = Caller("p3", "u3")
    results = await asyncio.gather(svc.accept_transfer(made.id, TAKER, made.auth_key or ""),
                                   svc.accept_transfer(made.id, third, made.auth_key or ""), return_exceptions=True)
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1, results
    assert all(isinstance(r, (NotFound, BadRequest)) for r in results if isinstance(r, Exception))
    owner = winners[0].destination_project_id
    assert (await svc.volume(vol.id, ADMIN)).project_id == owner


async def test_a_transfer_needs_an_available_volume_and_its_delete_gives_it_back(world: Any) -> None:
    svc: VolumeService = world
    vol = await svc.create_volume(DONOR, 1)
    await settled(svc, vol.id, DONOR)
    made = await svc.create_transfer(DONOR, vol.id)
    with pytest.raises(BadRequest, match="must be available"):  # one pending transfer per volume
        await svc.create_transfer(DONOR, vol.id)
    with pytest.raises(NotFound):  # another project sees no transfer of a volume not its own
        await svc.transfer(made.id, TAKER)
    assert [t.id for t in await svc.transfers(DONOR)] == [made.id]
    assert await svc.transfers(TAKER) == []
    await svc.delete_transfer(made.id, DONOR)
    assert (await svc.volume(vol.id, DONOR)).status == "available"
    with pytest.raises(NotFound):
        await svc.transfer(made.id, DONOR)


async def test_a_volume_types_own_quotas_bound_a_retype_and_an_accept(world: Any) -> None:
    svc: VolumeService = world
    gold = await svc.create_volume_type(unique("gold"))
    vid, _ = await volume_with_snapshot(svc, 2)
    await svc.set_quotas(DONOR.project_id, {f"gigabytes_{gold.name}": 3})  # the volume and its snapshot: 4
    with pytest.raises(PayloadTooLarge, match=f"gigabytes_{gold.name}"):
        await svc.retype_volume(DONOR, vid, gold.name)
    await svc.set_quotas(DONOR.project_id, {f"gigabytes_{gold.name}": 4})
    assert (await svc.retype_volume(DONOR, vid, gold.name)).volume_type == gold.name
    assert (await svc.usage(DONOR.project_id))[f"gigabytes_{gold.name}"] == 4
    made = await svc.create_transfer(DONOR, vid)
    await svc.set_quotas(TAKER.project_id, {f"snapshots_{gold.name}": 0})
    with pytest.raises(PayloadTooLarge, match=f"snapshots_{gold.name}"):
        await svc.accept_transfer(made.id, TAKER, made.auth_key or "")
    await svc.set_quotas(TAKER.project_id, {f"snapshots_{gold.name}": 1})
    await svc.accept_transfer(made.id, TAKER, made.auth_key or "")
    assert (await svc.usage(TAKER.project_id))[f"volumes_{gold.name}"] == 1


async def test_a_grouped_volume_is_neither_transferred_nor_retyped(world: Any) -> None:
    svc: VolumeService = world
    gtype = await svc.create_group_type(unique("gt"))
    default, other = await svc.default_type(), await svc.create_volume_type(unique("other"))
    group = await svc.create_group(DONOR, gtype.id, [default.id])
    vol = await svc.create_volume(DONOR, 1, volume_type=default.id, group_id=group.id)
    await settled(svc, vol.id, DONOR)
    with pytest.raises(BadRequest, match="group"):
        await svc.create_transfer(DONOR, vol.id)
    with pytest.raises(BadRequest, match="group"):
        await svc.retype_volume(DONOR, vol.id, other.id)


async def test_retype_changes_only_the_type_and_refuses_what_no_pool_offers(world: Any) -> None:
    svc: VolumeService = world
    gold = await svc.create_volume_type(unique("gold"))
    shared = await svc.create_volume_type(unique("shared"), extra_specs={"multiattach": "<is> True"})
    iscsi = await svc.create_volume_type(unique("iscsi"), extra_specs={"storage_protocol": "iSCSI"})
    vol = await svc.create_volume(DONOR, 1)
    await settled(svc, vol.id, DONOR)
    done = await svc.retype_volume(DONOR, vol.id, gold.name, "never")
    assert (done.volume_type, done.volume_type_id, done.host) == (gold.name, gold.id, vol.host)
    with pytest.raises(BadRequest, match="already has type"):
        await svc.retype_volume(DONOR, vol.id, gold.id)
    with pytest.raises(NotFound):
        await svc.retype_volume(DONOR, vol.id, "no-such-type")
    with pytest.raises(BadRequest, match="storage_protocol=iSCSI"):
        await svc.retype_volume(DONOR, vol.id, iscsi.name, "on-demand")
    assert (await svc.retype_volume(DONOR, vol.id, shared.name)).multiattach is True
    # in use: a retype that keeps multiattach is allowed, one that changes it is not
    att = await svc.attachment_create(DONOR, vol.id, "server-a", {"host": "cn1"})
    await svc.attachment_complete(DONOR, att.id)
    with pytest.raises(BadRequest, match="multiattach"):
        await svc.retype_volume(DONOR, vol.id, gold.name)
    await svc.attachment_delete(DONOR, att.id)
    assert (await svc.retype_volume(DONOR, vol.id, gold.name)).multiattach is False


async def test_a_frozen_pool_refuses_management_and_new_volumes_until_thawed(world: Any) -> None:
    svc: VolumeService = world
    vol = await svc.create_volume(DONOR, 1)
    await settled(svc, vol.id, DONOR)
    await svc.set_service_frozen("node1@file", True)
    with pytest.raises(BadRequest, match="already frozen"):
        await svc.set_service_frozen("node1", True)
    for attempt in (svc.delete_volume(vol.id, DONOR), svc.extend_volume(DONOR, vol.id, 2),
                    svc.create_snapshot(DONOR, vol.id)):
        with pytest.raises(BadRequest, match="frozen"):
            await attempt
    late = await svc.create_volume(DONOR, 1)  # the only pool is frozen: no valid backend
    assert late.status == "error"
    await svc.set_service_frozen("node1@file#file", False)
    with pytest.raises(BadRequest, match="could not be found"):
        await svc.set_service_frozen("elsewhere", True)
    await svc.extend_volume(DONOR, vol.id, 2)
    await settled(svc, vol.id, DONOR)


# -- one cloud per backend, over HTTP ------------------------------------------------------------------
@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def tcloud(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    yield from block_storage_cloud(request, tmp_path_factory, "volume-transfers")


@pytest.fixture(scope="module")
def admin(tcloud: Cloud) -> Api:
    token, body = tcloud.token()
    return Api(tcloud, token, body["project"]["id"])


@pytest.fixture(scope="module")
def people(tcloud: Cloud) -> dict[str, Api]:
    """P's member and reader, and Q's member (``other``)."""
    return {name: Api(tcloud, token, project) for name, (token, project) in personas(tcloud, "xfer").items()}


def new_volume(api: Api, **extra: Any) -> str:
    r = api("POST", "/volumes", {"volume": {"size": 1, **extra}})
    assert r.status_code == 202, r.text
    vid = str(r.json()["volume"]["id"])
    api.wait_status(vid, "available")
    return vid


def offer(api: Api, volume_id: str, path: str = "/os-volume-transfer", version: str = "",
          **extra: Any) -> dict[str, Any]:
    r = api("POST", path, {"transfer": {"volume_id": volume_id, "name": unique("t"), **extra}}, version=version)
    assert r.status_code == 202, r.text
    return r.json()["transfer"]  # type: ignore[no-any-return]


def test_create_show_list_accept_across_projects_as_tempest_does(admin: Api, people: dict[str, Api]) -> None:
    member, other, reader = people["member"], people["other"], people["reader"]
    vid = new_volume(member)
    donor_user = member.volume(vid)["user_id"]
    made = offer(member, vid)
    assert set(made) == {"id", "name", "volume_id", "auth_key", "created_at", "links"}  # 3.0: tempest's schema
    assert member.volume(vid)["status"] == "awaiting-transfer"
    shown = member("GET", f"/os-volume-transfer/{made['id']}").json()["transfer"]
    assert set(shown) == {"id", "name", "volume_id", "created_at", "links"} and shown["volume_id"] == vid
    assert reader("GET", f"/os-volume-transfer/{made['id']}").status_code == 200
    for path in ("/os-volume-transfer", "/os-volume-transfer/detail"):
        assert made["id"] in [t["id"] for t in member("GET", path).json()["transfers"]]
        assert made["id"] in [t["id"] for t in reader("GET", path).json()["transfers"]]
        assert made["id"] not in [t["id"] for t in other("GET", path).json()["transfers"]]
    assert set(member("GET", "/os-volume-transfer").json()["transfers"][0]) == {"id", "name", "volume_id", "links"}
    assert other("GET", f"/os-volume-transfer/{made['id']}").status_code == 404
    everyone = admin("GET", "/os-volume-transfer?all_tenants=1").json()["transfers"]
    assert made["id"] in [t["id"] for t in everyone]
    # a reader may not accept, a wrong key is a 400, the right one moves the volume
    assert reader("POST", f"/os-volume-transfer/{made['id']}/accept", {"accept": {"auth_key": made["auth_key"]}}
                  ).status_code == 403
    r = other("POST", f"/os-volume-transfer/{made['id']}/accept", {"accept": {"auth_key": "0123456789abcdef"}})
    assert r.status_code == 400 and r.json()["badRequest"]["message"].startswith("Invalid auth key")
    r = other("POST", f"/os-volume-transfer/{made['id']}/accept", {"accept": {"auth_key": made["auth_key"]}})
    assert r.status_code == 202, r.text
    assert set(r.json()["transfer"]) == {"id", "name", "volume_id", "links"}
    taken = other.wait_status(vid, "available")
    assert taken["user_id"] != donor_user and taken["os-vol-tenant-attr:tenant_id"] == other.project_id
    assert member("GET", f"/volumes/{vid}").status_code == 404
    assert other("POST", f"/os-volume-transfer/{made['id']}/accept", {"accept": {"auth_key": made["auth_key"]}}
                 ).status_code == 404
    assert other("DELETE", f"/volumes/{vid}").status_code == 202


def test_volume_transfers_3_55_and_3_57_fields_no_snapshots_and_delete(people: dict[str, Api]) -> None:
    member, other = people["member"], people["other"]
    vid = new_volume(member)
    snap = member("POST", "/snapshots", {"snapshot": {"volume_id": vid}}).json()["snapshot"]["id"]
    wait_for(lambda: member("GET", f"/snapshots/{snap}").json()["snapshot"]["status"] == "available", 20,
             "the snapshot")
    r = member("POST", "/volume-transfers", {"transfer": {"volume_id": vid, "no_snapshots": True}}, version="3.54")
    assert r.status_code == 400  # no_snapshots from 3.55
    r = member("POST", "/os-volume-transfer", {"transfer": {"volume_id": vid, "no_snapshots": True}}, version="3.57")
    assert r.status_code == 400  # and on /volume-transfers only
    made = offer(member, vid, "/volume-transfers", "3.57", no_snapshots=True)
    assert (made["no_snapshots"], made["accepted"], made["destination_project_id"], made["source_project_id"]) == (
        True, False, None, member.project_id)
    shown = member("GET", f"/volume-transfers/{made['id']}", version="3.55").json()["transfer"]
    assert "no_snapshots" in shown and "accepted" not in shown
    detail = member("GET", "/volume-transfers/detail", version="3.57").json()["transfers"]
    assert {"source_project_id", "accepted"} <= set(detail[0])
    # deleted: the volume is available again; accepted: the snapshot stays with the donor
    assert member("DELETE", f"/volume-transfers/{made['id']}").status_code == 202
    assert member.volume(vid)["status"] == "available"
    assert member("GET", f"/volume-transfers/{made['id']}").status_code == 404
    made = offer(member, vid, "/volume-transfers", "3.55", no_snapshots=True)
    r = other("POST", f"/volume-transfers/{made['id']}/accept", {"accept": {"auth_key": made["auth_key"]}})
    assert r.status_code == 202, r.text
    assert other.volume(vid)["status"] == "available"
    assert member("GET", f"/snapshots/{snap}").status_code == 200
    assert member("DELETE", f"/snapshots/{snap}").status_code == 202


def test_accept_by_the_owner_project_and_bad_requests(people: dict[str, Api]) -> None:
    member, reader, other = people["member"], people["reader"], people["other"]
    vid = new_volume(member)
    made = offer(member, vid)
    assert reader("POST", "/os-volume-transfer", {"transfer": {"volume_id": vid}}).status_code == 403
    assert other("POST", "/os-volume-transfer", {"transfer": {"volume_id": vid}}).status_code == 404
    assert reader("DELETE", f"/os-volume-transfer/{made['id']}").status_code == 403
    assert other("DELETE", f"/os-volume-transfer/{made['id']}").status_code == 404
    for body in ({"transfer": {"volume_id": "not-a-uuid"}}, {"transfer": {}}, {"transfer": {"volume_id": vid,
                                                                                           "name": "x" * 256}},
                 {"transfer": {"volume_id": vid, "extra": 1}}):
        assert member("POST", "/os-volume-transfer", body).status_code == 400, body
    for body in ({"accept": {}}, {"accept": {"auth_key": "k" * 256}}, {"accept": {"auth_key": None}}):
        assert other("POST", f"/os-volume-transfer/{made['id']}/accept", body).status_code == 400, body
    assert other("POST", "/os-volume-transfer/00000000-0000-0000-0000-000000000000/accept",
                 {"accept": {"auth_key": "x"}}).status_code == 404
    assert member("GET", "/os-volume-transfer?limit=-1").status_code == 400
    assert member("GET", "/os-volume-transfer?marker=nonesuch").status_code == 404
    # the owner project may accept its own transfer (as in Cinder): the volume is its again
    r = member("POST", f"/os-volume-transfer/{made['id']}/accept", {"accept": {"auth_key": made["auth_key"]}})
    assert r.status_code == 202, r.text
    vol = member.volume(vid)
    assert vol["status"] == "available"
    assert member("DELETE", f"/volumes/{vid}").status_code == 202


def test_paging_transfers_oldest_first(people: dict[str, Api]) -> None:
    member = people["member"]
    made = [offer(member, new_volume(member))["id"] for _ in range(3)]
    page = member("GET", "/volume-transfers?limit=2", version="3.59").json()
    ids = [t["id"] for t in page["transfers"]]
    assert ids == made[:2]
    nxt = page["transfers_links"][0]["href"]
    rest = httpx.get(nxt, headers={"X-Auth-Token": member.token, "OpenStack-API-Version": "volume 3.59"}).json()
    assert set(ids).isdisjoint(t["id"] for t in rest["transfers"])
    for tid in made:
        assert member("DELETE", f"/volume-transfers/{tid}").status_code == 202


def test_retype_through_the_api(admin: Api, people: dict[str, Api]) -> None:
    member, reader = people["member"], people["reader"]
    gold = admin("POST", "/types", {"volume_type": {"name": unique("gold")}}).json()["volume_type"]
    bad = admin("POST", "/types", {"volume_type": {"name": unique("fc"), "extra_specs": {
        "storage_protocol": "FC"}}}).json()["volume_type"]
    vid = new_volume(member)
    before = admin.volume(vid)
    body = {"os-retype": {"new_type": gold["name"], "migration_policy": "never"}}
    assert reader("POST", f"/volumes/{vid}/action", body).status_code == 403
    r = member("POST", f"/volumes/{vid}/action", body)
    assert r.status_code == 202, r.text
    after = admin.volume(vid)
    assert after["volume_type"] == gold["name"] and after["os-vol-host-attr:host"] == before["os-vol-host-attr:host"]
    assert after["migration_status"] is None
    assert admin("GET", f"/volumes/{vid}", version="3.63").json()["volume"]["volume_type_id"] == gold["id"]
    for args, status in (({"new_type": gold["id"]}, 400), ({"new_type": "no-such-type"}, 404),
                         ({"new_type": bad["name"], "migration_policy": "on-demand"}, 400),
                         ({"new_type": gold["name"], "migration_policy": "sometimes"}, 400), ({}, 400)):
        r = member("POST", f"/volumes/{vid}/action", {"os-retype": args})
        assert r.status_code == status, (args, r.text)
    assert member("DELETE", f"/volumes/{vid}").status_code == 202


def test_migrate_volume_is_an_admins_and_refuses_in_words(admin: Api, people: dict[str, Api]) -> None:
    vid = new_volume(people["member"])
    here = admin.volume(vid)["os-vol-host-attr:host"]
    assert people["member"]("POST", f"/volumes/{vid}/action", {"os-migrate_volume": {"host": here}}
                            ).status_code == 403
    for host, words in ((here, "another host"), ("nowhere@file#file", "No available service")):
        r = admin("POST", f"/volumes/{vid}/action", {"os-migrate_volume": {"host": host}})
        assert r.status_code == 400 and words in r.json()["badRequest"]["message"], r.text
    assert people["member"]("DELETE", f"/volumes/{vid}").status_code == 202


def test_disable_log_reason_freeze_and_thaw(admin: Api, people: dict[str, Api]) -> None:
    services = admin("GET", "/os-services").json()["services"]
    vol = next(s for s in services if s["binary"] == "cinder-volume")
    first = services[0]  # tempest's negative tests use the first service listed
    r = admin("PUT", "/os-services/disable-log-reason", {"host": vol["host"], "binary": "cinder-volume",
                                                        "disabled_reason": "disk replacement"})
    assert r.status_code == 200, r.text
    assert r.json() == {"disabled": True, "status": "disabled", "host": vol["host"], "service": "cinder-volume",
                        "binary": "cinder-volume", "disabled_reason": "disk replacement"}
    shown = next(s for s in admin("GET", "/os-services").json()["services"] if s["host"] == vol["host"])
    assert (shown["status"], shown["disabled_reason"]) == ("disabled", "disk replacement")
    r = admin("PUT", "/os-services/enable", {"host": vol["host"], "binary": "cinder-volume"})
    assert r.json()["disabled_reason"] is None
    # a frozen backend: its volumes refuse management operations, and it says it is frozen
    member = people["member"]
    vid = new_volume(member)
    assert admin("PUT", "/os-services/freeze", {"host": vol["host"]}).status_code == 200
    try:
        shown = next(s for s in admin("GET", "/os-services").json()["services"] if s["host"] == vol["host"])
        assert shown["frozen"] is True
        for method, path, body in (("DELETE", f"/volumes/{vid}", None),
                                   ("POST", f"/volumes/{vid}/action", {"os-extend": {"new_size": 2}}),
                                   ("POST", "/snapshots", {"snapshot": {"volume_id": vid}})):
            r = member(method, path, body)
            assert r.status_code == 400 and "frozen" in r.json()["badRequest"]["message"], (path, r.text)
        assert member("PUT", f"/volumes/{vid}", {"volume": {"name": "still-renamable"}}).status_code == 200
        assert admin("PUT", "/os-services/freeze", {"host": vol["host"]}).status_code == 400
        for persona in ("member", "reader", "other"):
            assert people[persona]("PUT", "/os-services/thaw", {"host": vol["host"]}).status_code == 403
    finally:
        assert admin("PUT", "/os-services/thaw", {"host": vol["host"]}).status_code == 200
    assert member("DELETE", f"/volumes/{vid}").status_code == 202
    # tempest's test_volume_services_negative.py
    for path, body, status in (
            ("/os-services/enable", {"host": "invalid_host", "binary": first["binary"]}, 404),
            ("/os-services/disable", {"host": first["host"], "binary": "invalid_binary"}, 404),
            ("/os-services/disable-log-reason", {"host": first["host"], "binary": first["binary"],
                                                 "disabled_reason": None}, 400),
            ("/os-services/freeze", {"host": "invalid_host"}, 400),
            ("/os-services/thaw", {"host": "invalid_host"}, 400),
            ("/os-services/disable-log-reason", {"host": vol["host"], "binary": "cinder-volume",
                                                 "disabled_reason": "x" * 256}, 400),
            ("/os-services/failover_host", {"host": vol["host"]}, 404)):
        r = admin("PUT", path, body)
        assert r.status_code == status, (path, body, r.text)
    # tempest's test_get_service_by_host_name: the bare host names its backend too
    bare = vol["host"].split("@", 1)[0]
    listed = {s["binary"] for s in admin("GET", f"/os-services?host={bare}").json()["services"]}
    assert "cinder-volume" in listed
