"""Volumes over NBD without guests: the shapes a compute node's QEMU gets (blockdev over nbd, raw),
and the volume agent's qemu-storage-daemon exports, real daemons on 127.0.0.1 or a unix socket:
started for an NBD connector, adopted or started again by a restarted agent, stopped with the last
attachment, at the sync, and at the volume's delete, leaving no process behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cumulo.compute.virt.qemu.volumes import NBD_RECONNECT, blockdev, local_file, node_name, volume_args
from cumulo.core.http.faults import BadRequest
from cumulo.volume import agent as agent_module
from cumulo.volume.agent import VolumeAgent
from cumulo.volume.drivers.file import FileDriver
from cumulo.volume.drivers.nbd import NBDExports
from tests.unit.test_volume_service import WHO, wait_status, world  # noqa: F401  (the fixture)

NBD = {"host": "cn2", "ip": "192.0.2.10", "cumulo_transport": "nbd"}


def qemu_io(uri: str, command: str, fmt: str = "raw") -> str:
    r = subprocess.run(["qemu-io", "-f", fmt, "-c", command, uri], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "fail" not in r.stdout.lower(), r.stdout + r.stderr
    return r.stdout


def alive(pid: int | None) -> bool:
    try:
        return pid is not None and Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"qemu-storage-daemon")
    except OSError:
        return False


async def stopped(agent: VolumeAgent, pid: int | None) -> None:
    """Wait for the agent to have stopped its export (a cast: it lands a little later)."""
    for _ in range(200):
        if not alive(pid) and agent.exports.exported() == []:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the export (pid {pid}) is still there: {agent.exports.exported()}")


@pytest.fixture
def exports(tmp_path: Path) -> Any:
    """An export manager whose daemons are all gone at the end, whatever the test did."""
    made: list[NBDExports] = []

    def make(**kw: Any) -> NBDExports:
        made.append(NBDExports(tmp_path / "node", **kw))
        return made[-1]
    yield make
    for pidfile in tmp_path.rglob(".exports/*.pid"):
        pid = int(pidfile.read_text())
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_an_nbd_volume_is_raw_over_qemus_nbd_client() -> None:
    tcp = {"volume_id": "v-1", "connection_info": {"driver_volume_type": "nbd", "data": {
        "host": "192.0.2.7", "port": 10809, "export": "volume-v-1", "format": "raw", "access_mode": "rw"}}}
    assert blockdev(tcp) == {
        "driver": "raw", "node-name": node_name("v-1"), "discard": "unmap", "read-only": False,
        "cache": {"direct": False, "no-flush": False},
        "file": {"driver": "nbd", "server": {"type": "inet", "host": "192.0.2.7", "port": "10809"},
                 "export": "volume-v-1", "reconnect-delay": NBD_RECONNECT}}
    unix = {"volume_id": "v-1", "connection_info": {"driver_volume_type": "nbd", "data": {
        "socket": "/run/x.sock", "export": "volume-v-1", "access_mode": "ro"}}}
    assert json.loads(volume_args([{**tcp, "slot": 0}])[1]) == blockdev(tcp)  # a start plugs it in the same way
    node = blockdev(unix)
    assert node["read-only"] is True and node["file"]["server"] == {"type": "unix", "path": "/run/x.sock"}
    with pytest.raises(RuntimeError, match="without a host"):
        blockdev({"volume_id": "v-1", "connection_info": {"driver_volume_type": "nbd", "data": {}}})
    with pytest.raises(RuntimeError, match="raw over NBD"):
        blockdev({"volume_id": "v-1", "connection_info": {"driver_volume_type": "nbd", "data": {
            "socket": "/s", "format": "qcow2"}}})
    with pytest.raises(RuntimeError, match="over NBD"):  # what needs the file says why it cannot
        local_file(tcp, "it cannot grow")
    file = {"volume_id": "v-1", "connection_info": {"driver_volume_type": "file", "data": {
        "path": "/v/volume-v-1.qcow2", "format": "qcow2"}}}
    assert local_file(file, "") == ("qcow2", "/v/volume-v-1.qcow2")
    assert blockdev(file)["file"] == {"driver": "file", "filename": "/v/volume-v-1.qcow2"}


async def test_an_export_serves_the_qcow2_as_raw_and_survives_an_agent_restart(tmp_path: Path, exports: Any) -> None:
    driver = FileDriver(tmp_path / "node")
    image = await driver.create_volume("v1", 1)
    first = exports()
    e = await first.export("v1", image, "rw")
    assert (e.host, e.mode, e.data()["export"], e.data()["format"]) == ("127.0.0.1", "rw", "volume-v1", "raw")
    uri = f"nbd://127.0.0.1:{e.port}/volume-v1"
    qemu_io(uri, "write -P 0x5a 0 64k")
    assert await first.export("v1", image, "rw") == e  # asked again: the same daemon

    # a restarted agent adopts the live daemon
    second = exports()
    await second.adopt({"v1": image})
    assert second.exported() == ["v1"] and second.get("v1").pid == e.pid  # type: ignore[union-attr]
    # a daemon that died meanwhile is started again where its clients look for it
    os.kill(e.pid, signal.SIGKILL)  # type: ignore[arg-type]
    await asyncio.sleep(0.2)
    third = exports()
    await third.adopt({"v1": image})
    again = third.get("v1")
    assert again is not None and again.port == e.port and again.pid != e.pid and alive(again.pid)
    qemu_io(uri, "read -P 0x5a 0 64k")
    # a copy read through the export holds the data
    await third.copy("v1", tmp_path / "copy.qcow2")
    qemu_io(str(tmp_path / "copy.qcow2"), "read -P 0x5a 0 64k", fmt="qcow2")

    await third.stop("v1")
    assert not alive(again.pid) and third.exported() == [] and not list((tmp_path / "node" / ".exports").iterdir())
    await third.stop("v1")  # twice is harmless
    qemu_io(str(image), "read -P 0x5a 0 64k", fmt="qcow2")  # the writes are in the file


async def test_a_read_only_export_refuses_writes_and_a_unix_socket_works(tmp_path: Path, exports: Any) -> None:
    driver = FileDriver(tmp_path / "node")
    image = await driver.create_volume("v1", 1)
    m = exports(export_host=str(tmp_path / "sockets"))
    e = await m.export("v1", image, "ro")
    assert e.socket == str(tmp_path / "sockets" / "volume-v1.sock") and e.data().keys() >= {"socket", "export"}
    uri = f"nbd+unix:///volume-v1?socket={e.socket}"
    r = subprocess.run(["qemu-io", "-f", "raw", "-c", "write 0 4k", uri], capture_output=True, text=True)
    assert "read-only" in (r.stdout + r.stderr).lower() or "permission" in (r.stdout + r.stderr).lower()
    rw = await m.export("v1", image, "rw")  # a writer on a read-only export: restarted writable, same address
    assert rw.mode == "rw" and rw.socket == e.socket and not alive(e.pid)
    qemu_io(uri, "write -P 0x11 0 4k")
    # a daemon left without its record (the agent died at the wrong moment) is stopped at adoption
    (tmp_path / "node" / ".exports" / "v1.json").unlink()
    fresh = exports(export_host=str(tmp_path / "sockets"))
    await fresh.adopt({"v1": image})
    assert fresh.exported() == [] and not alive(rw.pid)


async def test_the_agent_exports_for_an_nbd_connector_and_stops_with_the_last_attachment(
        world: Any, exports: Any, monkeypatch: Any) -> None:  # noqa: F811
    svc, bus, tmp = world
    agent = VolumeAgent(bus, "node1", FileDriver(tmp / "volumes" / "node1"), report_interval=60)
    await agent.start()
    await asyncio.sleep(0.05)
    vol = await svc.create_volume(WHO, 1)
    await wait_status(svc, vol.id, "available")

    # a node on this machine (auto) gets the file; the same node asking for nbd gets an export
    local = await svc.attachment_create(WHO, vol.id, "s1", {"host": "cn1", "ip": "127.0.0.1",
                                                             "cumulo_transport": "auto"})
    assert (local.connection_info or {})["driver_volume_type"] == "file"
    await svc.attachment_delete(WHO, local.id)
    att = await svc.attachment_create(WHO, vol.id, "s1", NBD)
    info = att.connection_info or {}
    assert info["driver_volume_type"] == "nbd"
    data = info["data"]
    assert (data["host"], data["export"], data["format"], data["volume_id"], data["access_mode"]) == (
        "127.0.0.1", f"volume-{vol.id}", "raw", vol.id, "rw")
    pid = agent.exports.get(vol.id).pid  # type: ignore[union-attr]
    assert alive(pid)
    qemu_io(f"nbd://127.0.0.1:{data['port']}/volume-{vol.id}", "write -P 0x42 0 4k")
    await svc.attachment_complete(WHO, att.id)
    # an in-use volume on NBD cannot grow: its client keeps the size it connected with
    with pytest.raises(BadRequest, match="NBD"):
        await svc.extend_volume(WHO, vol.id, 2, attached=True)
    # the last attachment's delete stops the daemon
    await svc.attachment_delete(WHO, att.id)
    await stopped(agent, pid)

    # an export no attachment holds (os-initialize_connection, no os-attach) goes at the sync
    monkeypatch.setattr(agent_module, "EXPORT_GRACE", 0.0)
    legacy = await svc.initialize_connection(WHO, vol.id, NBD)
    assert legacy["driver_volume_type"] == "nbd" and agent.exports.exported() == [vol.id]
    pid = agent.exports.get(vol.id).pid  # type: ignore[union-attr]
    await agent.report()
    await stopped(agent, pid)

    # a volume's delete stops its export
    await svc.initialize_connection(WHO, vol.id, NBD)
    pid = agent.exports.get(vol.id).pid  # type: ignore[union-attr]
    await svc.delete_volume(vol.id, WHO)
    await stopped(agent, pid)
    with pytest.raises(Exception, match="transport"):
        await agent.handle("initialize_connection", {"volume_id": "x", "connector": {"cumulo_transport": "iscsi"}})
    await agent.stop()


async def test_a_multiattach_volumes_export_stays_until_its_last_attachment_goes(
        world: Any, exports: Any) -> None:  # noqa: F811
    svc, bus, tmp = world
    agent = VolumeAgent(bus, "node1", FileDriver(tmp / "volumes" / "node1"), report_interval=60)
    await agent.start()
    await asyncio.sleep(0.05)
    vol = await svc.create_volume(WHO, 1, multiattach=True)
    await wait_status(svc, vol.id, "available")
    first = await svc.attachment_create(WHO, vol.id, "s1", NBD)
    second = await svc.attachment_create(WHO, vol.id, "s2", {**NBD, "host": "cn3"})
    assert (first.connection_info or {})["data"]["port"] == (second.connection_info or {})["data"]["port"]
    pid = agent.exports.get(vol.id).pid  # type: ignore[union-attr]
    await svc.attachment_delete(WHO, first.id)
    await asyncio.sleep(0.2)  # the cast has landed: the other attachment holds it
    assert alive(pid) and agent.exports.exported() == [vol.id]
    await svc.attachment_delete(WHO, second.id)
    await stopped(agent, pid)
    await agent.stop()
