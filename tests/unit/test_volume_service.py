"""Block storage without servers: the qcow2 file driver, and VolumeService's leases, reconciler and
quota turns on a SQLite database and the in-process bus, with agents that answer or stay silent."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cumulo.core.bus.memory import MemoryBus
from cumulo.core.config import Config
from cumulo.core.db import Database
from cumulo.core.http.faults import BadRequest, Fault, NotFound, PayloadTooLarge
from cumulo.volume.agent import VolumeAgent
from cumulo.volume.drivers.file import FileDriver, GiB, virtual_size
from cumulo.volume.reconcile import Reconciler
from cumulo.volume.service import Caller, VolumeService


class Limits:
    """Identity's unified limits, as VolumeService uses them (LimitsMixin's signatures)."""

    def __init__(self) -> None:
        self.defaults: dict[str, int] = {}
        self.projects: dict[tuple[str, str], int] = {}

    async def limit(self, project_id: str, service_type: str, resource_name: str, region_id: str | None = None) -> int:
        return self.projects.get((project_id, resource_name), self.defaults.get(resource_name, -1))

    async def registered_limits(self, service_type: str) -> dict[str, int]:
        return dict(self.defaults)

    async def register_default_limits(self, service_type: str, defaults: dict[str, tuple[int, str]]) -> None:
        for name, (value, _) in defaults.items():
            self.defaults.setdefault(name, value)

    async def set_limits(self, service_type: str, project_id: str | None, values: dict[str, int]) -> None:
        for name, value in values.items():
            if project_id is None:
                self.defaults[name] = value
            else:
                self.projects[(project_id, name)] = value

    async def delete_project_limits(self, service_type: str, project_id: str) -> None:
        self.projects = {k: v for k, v in self.projects.items() if k[0] != project_id}


WHO = Caller("p1", "u1")


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
    yield svc, bus, tmp_path
    await bus.stop()
    await db.close()


async def wait_status(svc: VolumeService, volume_id: str, status: str) -> None:
    for _ in range(200):
        if (await svc.volume(volume_id, WHO)).status == status:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"volume {volume_id} never became {status}")


async def test_file_driver_makes_real_qcow2_files_snapshots_and_copies(tmp_path: Path) -> None:
    driver = FileDriver(tmp_path / "node", capacity_gb=10)
    path = await driver.create_volume("v1", 1)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output", "json", str(path)], capture_output=True,
                                     text=True, check=True).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == GiB == virtual_size(path)
    assert await driver.create_volume("v1", 1) == path  # twice is harmless
    snap = await driver.create_snapshot("s1", "v1")
    copy = await driver.create_volume("v2", 3, snap)
    assert virtual_size(copy) == 3 * GiB
    assert driver.volumes() == {"v1": GiB, "v2": 3 * GiB}
    assert (driver.pool().capacity_gb, driver.pool().allocated_gb, driver.pool().free_gb) == (10, 4, 6)
    await driver.delete_volume("v1")
    await driver.delete_volume("v1")
    await driver.delete_snapshot("s1")
    assert sorted(p.name for p in (tmp_path / "node").iterdir()) == ["volume-v2.qcow2"]


async def test_an_agent_makes_the_volume_available(world: Any) -> None:
    svc, bus, tmp = world
    agent = VolumeAgent(bus, "node1", FileDriver(tmp / "volumes" / "node1"), report_interval=60)
    await agent.start()
    await asyncio.sleep(0.05)  # the pool report is a cast
    assert [p.host for p in await svc.pools() if p.up] == ["node1"]
    vol = await svc.create_volume(WHO, 1, name="v")
    await wait_status(svc, vol.id, "available")
    assert (tmp / "volumes" / "node1" / f"volume-{vol.id}.qcow2").exists()
    await svc.delete_volume(vol.id, WHO)
    for _ in range(100):
        if not (tmp / "volumes" / "node1" / f"volume-{vol.id}.qcow2").exists():
            break
        await asyncio.sleep(0.02)
    assert not await svc.volumes(WHO)
    await agent.stop()


async def test_a_create_no_agent_reports_ends_in_error_at_its_lease(world: Any) -> None:
    svc, bus, _ = world
    await svc.report_pool("ghost", {"capacity_gb": 100, "allocated_gb": 0, "free_gb": 100})  # then silent
    vol = await svc.create_volume(WHO, 1)
    assert vol.status == "creating"
    reconciler = Reconciler(svc)
    assert await reconciler.reconcile() == 0  # the lease still runs
    await asyncio.sleep(0.4)
    assert await reconciler.reconcile() == 1
    ended = await svc.volume(vol.id, WHO)
    assert ended.status == "error" and "did not report" in (ended.fault or "")


async def test_a_create_with_no_pool_is_an_error_that_says_why(world: Any) -> None:
    svc, _, _ = world
    vol = await svc.create_volume(WHO, 1)
    ended = await svc.volume(vol.id, WHO)
    assert ended.status == "error" and "No valid backend" in (ended.fault or "")
    await svc.delete_volume(vol.id, WHO)  # never made anywhere: gone at once
    assert not await svc.volumes(WHO)


async def test_a_delete_the_agent_missed_is_resumed_after_its_lease(world: Any) -> None:
    svc, bus, tmp = world
    agent = VolumeAgent(bus, "node1", FileDriver(tmp / "volumes" / "node1"), report_interval=60)
    await agent.start()
    await asyncio.sleep(0.05)
    vol = await svc.create_volume(WHO, 1)
    await wait_status(svc, vol.id, "available")
    served = bus._servers.pop("volume.node1")  # the agent goes away: the delete is lost
    await svc.delete_volume(vol.id, WHO)
    assert (await svc.volume(vol.id, WHO)).status == "deleting"
    await asyncio.sleep(0.4)
    bus._servers["volume.node1"] = served  # back again
    await Reconciler(svc).reconcile()
    for _ in range(100):
        if not await svc.volumes(WHO):
            break
        await asyncio.sleep(0.02)
    assert not await svc.volumes(WHO)
    assert not (tmp / "volumes" / "node1" / f"volume-{vol.id}.qcow2").exists()
    await agent.stop()


async def test_racing_creates_get_exactly_the_room_the_quota_has(world: Any) -> None:
    svc, _, _ = world
    await svc.set_quotas(WHO.project_id, {"volumes": 3})
    results = await asyncio.gather(*(svc.create_volume(WHO, 1) for _ in range(6)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 3
    assert all(isinstance(r, PayloadTooLarge) for r in results if isinstance(r, BaseException))
    assert len(await svc.volumes(WHO)) == 3


async def test_gigabytes_count_volumes_and_snapshots(world: Any) -> None:
    svc, bus, tmp = world
    agent = VolumeAgent(bus, "node1", FileDriver(tmp / "volumes" / "node1"), report_interval=60)
    await agent.start()
    await asyncio.sleep(0.05)
    await svc.set_quotas(WHO.project_id, {"gigabytes": 3})
    vol = await svc.create_volume(WHO, 2)
    await wait_status(svc, vol.id, "available")
    with pytest.raises(PayloadTooLarge, match="gigabytes"):
        await svc.create_snapshot(WHO, vol.id)
    await svc.set_quotas(WHO.project_id, {"gigabytes": 4})
    snap = await svc.create_snapshot(WHO, vol.id)
    assert (await svc.usage(WHO.project_id))["gigabytes"] == 4
    with pytest.raises(BadRequest, match="snapshots"):
        await svc.delete_volume(vol.id, WHO)
    for _ in range(100):
        if (await svc.snapshot(snap.id, WHO)).status == "available":
            break
        await asyncio.sleep(0.02)
    await svc.delete_volume(vol.id, WHO, cascade=True)
    for _ in range(100):
        if not await svc.volumes(WHO) and not await svc.snapshots(WHO):
            break
        await asyncio.sleep(0.02)
    assert not await svc.volumes(WHO) and not await svc.snapshots(WHO)
    await agent.stop()


async def test_the_agents_report_settles_lost_reports_and_removes_files_nobody_owns(world: Any) -> None:
    svc, bus, tmp = world
    driver = FileDriver(tmp / "volumes" / "node1")
    agent = VolumeAgent(bus, "node1", driver, report_interval=60)
    await agent.start()
    await asyncio.sleep(0.05)
    reports: list[Any] = []
    controller = bus._servers["volume.controller"]

    async def lose_creates(method: str, args: dict[str, Any]) -> Any:  # the create's report goes missing
        if method == "volume_update" and args["ctx"].get("op") == "create":
            reports.append(args)
            return None
        return await controller(method, args)

    bus._servers["volume.controller"] = lose_creates
    vol = await svc.create_volume(WHO, 1)
    for _ in range(100):
        if reports:
            break
        await asyncio.sleep(0.02)
    assert (await svc.volume(vol.id, WHO)).status == "creating"
    bus._servers["volume.controller"] = controller
    await driver.create_volume("not-a-volume", 1)  # a file no volume owns
    await agent.report()
    await asyncio.sleep(0.1)
    assert (await svc.volume(vol.id, WHO)).status == "available"
    assert set(driver.volumes()) == {vol.id}
    await agent.stop()


# -- attachments ---------------------------------------------------------------------------------
async def _attached_world(world: Any, multiattach: bool = False) -> tuple[VolumeService, Any, Any, str]:
    svc, bus, tmp = world
    agent = VolumeAgent(bus, "node1", FileDriver(tmp / "volumes" / "node1"), report_interval=60)
    await agent.start()
    await asyncio.sleep(0.05)
    vol = await svc.create_volume(WHO, 1, multiattach=multiattach)
    await wait_status(svc, vol.id, "available")
    return svc, agent, tmp, vol.id


async def test_an_attachment_reserves_connects_completes_and_frees_the_volume(world: Any) -> None:
    svc, agent, tmp, vid = await _attached_world(world)
    att = await svc.attachment_create(WHO, vid, "server-1")
    assert att.status == "reserved" and att.connection_info is None
    assert (await svc.volume(vid, WHO)).status == "reserved"
    att = await svc.attachment_update(WHO, att.id, {"host": "cn1", "mountpoint": "/dev/vdb"})
    info = att.connection_info or {}
    assert info["driver_volume_type"] == "file" and info["data"]["access_mode"] == "rw"
    assert Path(info["data"]["path"]) == (tmp / "volumes" / "node1" / f"volume-{vid}.qcow2").resolve()
    assert (att.status, att.attached_host, att.mountpoint) == ("attaching", "cn1", "/dev/vdb")
    assert (await svc.volume(vid, WHO)).status == "attaching"
    await svc.attachment_complete(WHO, att.id)
    vol = await svc.volume(vid, WHO)
    assert (vol.status, vol.attach_status) == ("in-use", "attached")
    assert [(a.id, a.status) for a in vol.attachments] == [(att.id, "attached")]
    assert vol.attachments[0].attached_at is not None
    with pytest.raises(BadRequest):
        await svc.delete_volume(vid, WHO)
    with pytest.raises(NotFound):
        await svc.attachment(att.id, Caller("p2", "u2"))
    await svc.attachment_delete(WHO, att.id)
    vol = await svc.volume(vid, WHO)
    assert (vol.status, vol.attach_status, vol.attachments) == ("available", "detached", ())
    with pytest.raises(NotFound):
        await svc.attachment_delete(WHO, att.id)
    await agent.stop()


async def test_racing_creates_reserve_a_single_attach_volume_once(world: Any) -> None:
    svc, agent, _, vid = await _attached_world(world)
    results = await asyncio.gather(*(svc.attachment_create(WHO, vid, f"s{i}") for i in range(5)),
                                   return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, BadRequest) for r in results if isinstance(r, Exception))
    assert len(await svc.attachments(WHO, volume_id=vid)) == 1
    await agent.stop()


async def test_a_multiattach_volume_takes_several_and_stays_in_use_until_the_last_goes(world: Any) -> None:
    svc, agent, _, vid = await _attached_world(world, multiattach=True)
    made = []
    for server in ("s1", "s2"):
        att = await svc.attachment_create(WHO, vid, server, {"host": "cn1"})
        await svc.attachment_complete(WHO, att.id)
        made.append(att.id)
    assert (await svc.volume(vid, WHO)).status == "in-use"
    await svc.attachment_delete(WHO, made[0])
    assert (await svc.volume(vid, WHO)).status == "in-use"
    await svc.attachment_delete(WHO, made[1])
    assert (await svc.volume(vid, WHO)).status == "available"
    await agent.stop()


async def test_a_silent_agent_leaves_the_attachment_reserved_and_says_so(world: Any, monkeypatch: Any) -> None:
    from cumulo.volume import attachments

    svc, agent, _, vid = await _attached_world(world)
    _, bus, _ = world
    monkeypatch.setattr(attachments, "CONNECT_TIMEOUT", 0.1)
    att = await svc.attachment_create(WHO, vid, "s1")
    served = bus._servers.pop("volume.node1")
    with pytest.raises(Fault) as err:
        await svc.attachment_update(WHO, att.id, {"host": "cn1"})
    assert err.value.code == 503 and "did not answer" in err.value.message
    assert (await svc.attachment(att.id, WHO)).status == "reserved"
    # a create with a connector undoes its reservation when the connection fails
    await svc.attachment_delete(WHO, att.id)
    with pytest.raises(Fault):
        await svc.attachment_create(WHO, vid, "s1", {"host": "cn1"})
    assert (await svc.volume(vid, WHO)).status == "available" and not await svc.attachments(WHO)
    bus._servers["volume.node1"] = served
    await agent.stop()


async def test_legacy_actions_walk_the_same_states(world: Any) -> None:
    svc, agent, _, vid = await _attached_world(world)
    await svc.reserve(WHO, vid)
    assert (await svc.volume(vid, WHO)).status == "attaching"
    await svc.unreserve(WHO, vid)
    assert (await svc.volume(vid, WHO)).status == "available"
    await svc.reserve(WHO, vid)
    att = await svc.attach(WHO, vid, "s1", "/dev/vdb")
    assert att.status == "attached" and (await svc.volume(vid, WHO)).status == "in-use"
    await svc.begin_detaching(WHO, vid)
    assert (await svc.volume(vid, WHO)).status == "detaching"
    await svc.roll_detaching(WHO, vid)
    assert (await svc.volume(vid, WHO)).status == "in-use"
    await svc.begin_detaching(WHO, vid)
    await svc.detach(WHO, vid)
    vol = await svc.volume(vid, WHO)
    assert (vol.status, vol.attach_status) == ("available", "detached")
    await svc.set_metadata(vid, WHO, {"readonly": "True"})
    assert (await svc.attach(WHO, vid, "s1", "/dev/vdb", mode="rw")).attach_mode == "ro"
    await agent.stop()


async def test_the_file_drivers_connection_info_is_the_files_absolute_path(tmp_path: Path) -> None:
    driver = FileDriver(tmp_path / "node", capacity_gb=10)
    with pytest.raises(LookupError):
        driver.connection_info("v1", "rw")
    path = await driver.create_volume("v1", 1)
    info = driver.connection_info("v1", "ro")
    assert info == {"driver_volume_type": "file", "data": {"path": str(path.resolve()), "format": "qcow2",
                                                           "name": "volume-v1", "volume_id": "v1",
                                                           "access_mode": "ro"}}
