"""Volume backups without a cloud: the chunked engine and its qcow2 writer on real qcow2 files
(checked by ``qemu-img check`` and ``compare``), and the leases of VolumeService's backups on a
SQLite database with an agent that stays silent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from cumulo.volume.backup_models import Backup
from cumulo.volume.drivers.backup import BackupEngine, BackupError, DirectoryStore, Qcow2Writer
from cumulo.volume.reconcile import Reconciler
from tests.unit.test_volume_service import WHO, world  # noqa: F401  (a fixture)

MiB = 1024**2


def qcow2(path: Path, size: str, *writes: str) -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    if writes:
        subprocess.run(["qemu-io", "-f", "qcow2", *[a for w in writes for a in ("-c", w)], str(path)], check=True,
                       capture_output=True)
    return path


def same(a: Path, b: Path) -> bool:
    out = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(a), str(b)], capture_output=True,
                         text=True)
    return out.returncode == 0


def checked(path: Path) -> bool:
    return subprocess.run(["qemu-img", "check", "-q", str(path)], capture_output=True).returncode == 0


def test_an_odd_sized_disk_round_trips_and_the_written_qcow2_passes_qemu_img_check(tmp_path: Path) -> None:
    # 13 MiB + 512 bytes: a partial last chunk and a partial last cluster
    src = qcow2(tmp_path / "src.qcow2", f"{13 * MiB + 512}", "write -P 0x11 0 64k", "write -P 0x22 13M 512",
                "write -P 0 5M 1M")
    engine = BackupEngine(DirectoryStore(tmp_path / "store"))
    result = engine.backup(src, backup_id="b1", volume_id="v", container="c")
    assert result.chunks == 4 and result.object_count == 2 and result.zero_chunks == 2  # written zeros: not stored
    out = tmp_path / "out.qcow2"
    assert engine.restore("c", "b1", out) == 4 * MiB + MiB + 512
    assert checked(out) and same(src, out)
    assert engine.backup(src, backup_id="b1", volume_id="v", container="c") == result  # again: the same answer


def test_an_incremental_chain_points_at_the_chunks_its_ancestors_stored(tmp_path: Path) -> None:
    src = qcow2(tmp_path / "src.qcow2", "64M", "write -P 1 0 4M", "write -P 2 8M 4M", "write -P 3 16M 4M")
    engine = BackupEngine(DirectoryStore(tmp_path / "store"))
    engine.backup(src, backup_id="full", volume_id="v", container="c")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 9 8M 4k", str(src)], check=True, capture_output=True)
    assert engine.backup(src, backup_id="inc1", volume_id="v", container="c", parent=("c", "full")).object_count == 1
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 8 40M 4k", str(src)], check=True, capture_output=True)
    second = engine.backup(src, backup_id="inc2", volume_id="v", container="c", parent=("c", "inc1"))
    assert (second.object_count, second.reused_chunks) == (1, 3)
    manifest = json.loads((tmp_path / "store" / "c" / "inc2" / "manifest.json").read_text())
    assert [manifest["chunks"][i]["object"].split("/")[1] for i in (0, 2, 4, 10)] == ["full", "inc1", "full", "inc2"]
    out = tmp_path / "out.qcow2"
    engine.restore("c", "inc2", out, 128 * MiB)  # into a larger volume
    assert checked(out) and same(src, out)
    assert json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(out)], capture_output=True,
                                     text=True, check=True).stdout)["virtual-size"] == 128 * MiB
    assert engine.delete("c", "inc2") == 2 and not engine.exists("c", "inc2")


def test_a_disk_a_server_holds_is_read_through_a_converted_copy(tmp_path: Path) -> None:
    src = qcow2(tmp_path / "src.qcow2", "16M", "write -P 0x33 4M 1M")
    engine = BackupEngine(DirectoryStore(tmp_path / "store"))
    assert engine.backup(src, backup_id="b", volume_id="v", container="c", force_share=True).object_count == 1
    out = tmp_path / "out.qcow2"
    engine.restore("c", "b", out)
    assert same(src, out) and sorted(p.name for p in tmp_path.iterdir()) == ["out.qcow2", "src.qcow2", "store"]


def test_a_missing_or_damaged_chunk_fails_the_restore_naming_it_and_leaves_no_file(tmp_path: Path) -> None:
    src = qcow2(tmp_path / "src.qcow2", "16M", "write -P 0x44 0 4M", "write -P 0x45 4M 4M")
    store = DirectoryStore(tmp_path / "store")
    engine = BackupEngine(store)
    engine.backup(src, backup_id="b", volume_id="v", container="c")
    manifest = json.loads(store.get("c/b/manifest.json"))
    # a chunk that decompresses, but to other data: the checksum catches it
    store.put("c/b/chunk-00000001.zst", engine._compressor().compress(b"\x46" * (4 * MiB)))
    out = tmp_path / "out.qcow2"
    with pytest.raises(BackupError, match="chunk 1 of backup b .* does not match its checksum"):
        engine.restore("c", "b", out)
    (tmp_path / "store" / "c" / "b" / "chunk-00000000.zst").unlink()
    with pytest.raises(BackupError, match="missing"):
        engine.restore("c", "b", out)
    assert not out.exists() and not list(tmp_path.glob(".*"))
    assert manifest["chunks"][2] == "zero"
    with pytest.raises(ValueError):
        store.put("../escape", b"x")


def test_the_qcow2_writer_refuses_unaligned_writes(tmp_path: Path) -> None:
    with Qcow2Writer(tmp_path / "w.qcow2", 1024 * 1024) as w, pytest.raises(ValueError):
        w.write(512, b"x")


async def expire(svc: Any) -> None:
    """End the backups' leases now (they are the operation's and 10 s a GiB more)."""
    async with svc.db.session() as s:
        await s.execute(update(Backup).where(Backup.lease_until.is_not(None)).values(lease_until=Backup.created_at))


async def test_a_backup_no_agent_reports_ends_in_error_and_the_volume_is_given_back(world: Any) -> None:  # noqa: F811
    svc, _, _ = world
    await svc.report_pool("ghost", {"capacity_gb": 100, "allocated_gb": 0, "free_gb": 100})  # then silent
    vol = await svc.create_volume(WHO, 1)
    await svc._done_create({"volume_id": vol.id, "host": "ghost"}, None, None)
    backup = await svc.create_backup(WHO, vol.id)
    assert backup.status == "creating" and (await svc.volume(vol.id, WHO)).status == "backing-up"
    await expire(svc)
    assert await Reconciler(svc).reconcile() == 1
    ended = await svc.backup(backup.id, WHO)
    assert ended.status == "error" and "did not report" in (ended.fail_reason or "")
    assert (await svc.volume(vol.id, WHO)).status == "available"
    # a restore nobody answers leaves its new volume in error_restoring and the backup available
    await svc.reset_backup_status(backup.id, WHO, "available")
    done = await svc.restore_backup(backup.id, WHO)
    assert (await svc.volume(done.volume_id, WHO)).status == "restoring-backup"
    await expire(svc)
    assert await Reconciler(svc).reconcile() == 1
    assert (await svc.volume(done.volume_id, WHO)).status == "error_restoring"
    assert (await svc.backup(backup.id, WHO)).status == "available"
