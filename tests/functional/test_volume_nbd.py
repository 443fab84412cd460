"""A compute node that reaches its volumes over NBD, as one on another machine does: this cloud's
node is told to use the export (``[compute] volume_transport = nbd``), so the volume agent serves
each attached volume through a qemu-storage-daemon on 127.0.0.1 and the guest's QEMU opens it
with its NBD client.  A real TCG guest writes a pattern to the hot-plugged disk; an in-use
snapshot is read through the export; an in-use extend is refused in words; after the detach the
daemon is gone and the volume's qcow2 file holds what the guest wrote."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.conftest import Cloud, personas, start_cloud, stop_cloud, wait_for
from tests.functional.test_qemu import READY, qemu_pids
from tests.functional.test_volume_attach import SERVICES, Clients, boot, volume_bytes


def export_pids(root: Path) -> list[int]:
    """The qemu-storage-daemon processes whose command line names a path under ``root`` (ours)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"qemu-storage-daemon") and str(root).encode() in cmd:
            out.append(int(entry.name))
    return out


@pytest.fixture(scope="module")
def nbdcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """One QEMU node told to reach volumes over NBD, one volume node exporting on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("nbd-cloud")
    c = start_cloud(tmp, "sqlite", {
        "CUMULO_SERVICES": SERVICES, "CUMULO_COMPUTE__FAKE_NODES": "0", "CUMULO_COMPUTE__LOCAL_NODE": "true",
        "CUMULO_COMPUTE__HOST": "nnode", "CUMULO_COMPUTE__SHUTDOWN_TIMEOUT": "15",
        "CUMULO_COMPUTE__BUILD_TIMEOUT": "120", "CUMULO_COMPUTE__VOLUME_TRANSPORT": "nbd",
        "CUMULO_VOLUME__EXPORT_HOST": "127.0.0.1"})
    yield c
    stop_cloud(c)
    for pid in qemu_pids(tmp) + export_pids(tmp):  # a failed test must leave no guest nor daemon
        os.kill(pid, signal.SIGKILL)


def test_a_guest_writes_to_a_volume_over_nbd_and_the_file_holds_it(nbdcloud: Cloud, tmp_path: Path) -> None:
    token, project = personas(nbdcloud, "nbd")["member"]
    member = Clients(nbdcloud, token, project)
    sid = boot(member, "nbd-guest")
    r = member.volume("POST", "/volumes", {"volume": {"size": 1, "name": "over-nbd"}})
    assert r.status_code == 202, r.text
    vid = r.json()["volume"]["id"]
    serial = vid[:20]
    member.volume_status(vid, "available")
    member.server_status(sid, "ACTIVE")
    member.wait_console(sid, READY)
    assert export_pids(nbdcloud.state_dir) == []

    # attach: the agent starts a qemu-storage-daemon, the guest's QEMU connects to it
    started = time.monotonic()
    r = member.compute("POST", f"/servers/{sid}/os-volume_attachments", {"volumeAttachment": {"volumeId": vid}})
    assert r.status_code == 200, r.text
    member.wait_console(sid, f"volume {serial} on vd")
    print(f"attach over NBD -> visible in the guest: {time.monotonic() - started:.2f} s")
    assert "wrote PATTERN" in member.console(sid)
    member.volume_status(vid, "in-use")
    attachments = member.volume("GET", f"/attachments/detail?volume_id={vid}", version="3.27").json()["attachments"]
    info = attachments[0]["connection_info"]
    assert info["driver_volume_type"] == "nbd", info
    assert (info["data"]["host"], info["data"]["export"], info["data"]["format"]) == (
        "127.0.0.1", f"volume-{vid}", "raw")
    daemons = export_pids(nbdcloud.state_dir)
    assert len(daemons) == 1, daemons

    # in use over NBD: an extend is refused in words; a snapshot (force) is read through the export
    r = member.volume("POST", f"/volumes/{vid}/action", {"os-extend": {"new_size": 2}}, version="3.42")
    assert r.status_code == 400 and "NBD" in r.text, r.text
    r = member.volume("POST", "/snapshots", {"snapshot": {"volume_id": vid, "force": True}})
    assert r.status_code == 202, r.text
    snap = r.json()["snapshot"]["id"]
    wait_for(lambda: member.volume("GET", f"/snapshots/{snap}").json()["snapshot"]["status"] == "available", 60,
             "the in-use snapshot")
    r = member.volume("POST", "/volumes", {"volume": {"snapshot_id": snap, "size": 1}})
    assert r.status_code == 202, r.text
    copy = r.json()["volume"]["id"]
    member.volume_status(copy, "available")
    assert volume_bytes(nbdcloud, copy, tmp_path).rstrip(b"\0") == b"PATTERN\n"

    # detach: the guest lets go, the attachment goes, and the daemon with it
    r = member.compute("DELETE", f"/servers/{sid}/os-volume_attachments/{vid}")
    assert r.status_code == 202, r.text
    member.wait_console(sid, f"volume {serial} gone")
    member.volume_status(vid, "available")
    wait_for(lambda: not export_pids(nbdcloud.state_dir), 30, "the qemu-storage-daemon to be gone")
    assert volume_bytes(nbdcloud, vid, tmp_path).rstrip(b"\0") == b"PATTERN\n"

    assert member.compute("DELETE", f"/servers/{sid}").status_code == 204
    wait_for(lambda: not qemu_pids(nbdcloud.state_dir / "instances"), 30, "the guest to be gone")
    assert member.volume("DELETE", f"/volumes/{copy}").status_code == 202
    assert member.volume("DELETE", f"/snapshots/{snap}").status_code == 202
    wait_for(lambda: member.volume("DELETE", f"/volumes/{vid}").status_code == 202, 30, "the volume to be deletable")
    assert export_pids(nbdcloud.state_dir) == []
