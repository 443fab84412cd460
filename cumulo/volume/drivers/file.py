"""Volumes as qcow2 files in one directory per host: ``volume-<id>.qcow2`` and, for snapshots,
``snapshot-<id>.qcow2`` (a full, standalone copy made with ``qemu-img convert``, so a snapshot
outlives changes to its volume and needs no chain).  A volume made from a snapshot or another
volume is a converted copy too, grown to its size.

Every operation is idempotent: creating what exists or deleting what is gone is harmless, and a
create writes to a temporary name first, so a file under the final name is always complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GiB = 1024**3


@dataclass(frozen=True)
class PoolState:
    capacity_gb: int
    allocated_gb: int
    free_gb: int


class FileDriver:
    def __init__(self, path: Path, capacity_gb: int = 0) -> None:
        self.path, self.capacity_gb = Path(path), capacity_gb
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)

    def volume_path(self, volume_id: str) -> Path:
        return self.path / f"volume-{_safe(volume_id)}.qcow2"

    def snapshot_path(self, snapshot_id: str) -> Path:
        return self.path / f"snapshot-{_safe(snapshot_id)}.qcow2"

    async def create_volume(self, volume_id: str, size_gb: int, source: Path | None = None,
                            source_format: str = "qcow2") -> Path:
        """An empty volume, or a copy of ``source`` (a snapshot, a volume, or a downloaded image in
        ``source_format``) grown to ``size_gb``; a source larger than that is refused."""
        target = self.volume_path(volume_id)
        if target.exists():
            return target
        tmp = target.with_name(f".{target.name}.part")
        tmp.unlink(missing_ok=True)
        try:
            if source is None:
                await _qemu_img("create", "-q", "-f", "qcow2", str(tmp), f"{size_gb}G")
            else:
                if not source.exists():
                    raise LookupError(f"the source {source.name} is not on this node")
                await _qemu_img("convert", "-q", "-f", source_format, "-O", "qcow2", str(source), str(tmp))
                size = virtual_size(tmp)
                if size > size_gb * GiB:
                    raise RuntimeError(f"the source's virtual size is {-(-size // GiB)} GiB and does not fit in a "
                                       f"volume of {size_gb} GiB")
                if size < size_gb * GiB:
                    await _qemu_img("resize", "-q", "-f", "qcow2", str(tmp), f"{size_gb}G")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def download_path(self, volume_id: str) -> Path:
        """Where an image is downloaded to before it becomes the volume (removed after)."""
        return self.path / f".image-{_safe(volume_id)}.download"

    async def delete_volume(self, volume_id: str) -> None:
        for path in (self.volume_path(volume_id), self.volume_path(volume_id).with_name(
                f".{self.volume_path(volume_id).name}.part")):
            path.unlink(missing_ok=True)

    async def create_snapshot(self, snapshot_id: str, volume_id: str, force_share: bool = False,
                              copy: Callable[[Path], Awaitable[Any]] | None = None) -> Path:
        """A standalone copy of the volume.  ``copy(tmp)``, when given, writes it instead (the QEMU
        of the server that has the volume, as of one instant, while the guest runs); else
        ``force_share`` reads a volume a running server holds (qemu's image lock), a
        crash-consistent copy at best."""
        target = self.snapshot_path(snapshot_id)
        if target.exists():
            return target
        source = self.volume_path(volume_id)
        if not source.exists():
            raise LookupError(f"volume {volume_id} is not on this node")
        tmp = target.with_name(f".{target.name}.part")
        tmp.unlink(missing_ok=True)
        try:
            if copy is not None:
                await copy(tmp)
            else:
                share = ("-U",) if force_share else ()
                await _qemu_img("convert", "-q", *share, "-O", "qcow2", str(source), str(tmp))
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    async def extend_volume(self, volume_id: str, size_gb: int) -> None:
        """Grow a volume no process holds open (an attached one is grown by its QEMU); growing to
        a size it has already is harmless."""
        path = self.volume_path(volume_id)
        if not path.exists():
            raise LookupError(f"volume {volume_id} is not on this node")
        if virtual_size(path) >= size_gb * GiB:
            return
        await _qemu_img("resize", "-q", "-f", "qcow2", str(path), f"{size_gb}G")

    async def export_volume(self, volume_id: str, disk_format: str, force_share: bool = False) -> Path:
        """A copy of the volume in ``disk_format`` (raw or qcow2) for an image upload; the caller
        removes it.  ``force_share`` reads a volume a running server holds."""
        source = self.volume_path(volume_id)
        if not source.exists():
            raise LookupError(f"volume {volume_id} is not on this node")
        if disk_format not in ("raw", "qcow2"):
            raise ValueError(f"disk format {disk_format} is not supported")
        target = self.path / f".upload-{_safe(volume_id)}.{disk_format}"
        target.unlink(missing_ok=True)
        share = ("-U",) if force_share else ()
        try:
            await _qemu_img("convert", "-q", *share, "-f", "qcow2", "-O", disk_format, str(source), str(target))
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target

    def connection_info(self, volume_id: str, access_mode: str) -> dict[str, Any]:
        """How a compute node on this machine reaches the volume: the file itself (os-brick's
        ``file`` connector shape).  LookupError when the file is not here."""
        path = self.volume_path(volume_id)
        if not path.exists():
            raise LookupError(f"volume {volume_id} is not on this node")
        return {"driver_volume_type": "file",
                "data": {"path": str(path.resolve()), "format": "qcow2", "name": f"volume-{volume_id}",
                         "volume_id": volume_id, "access_mode": access_mode}}

    async def delete_snapshot(self, snapshot_id: str) -> None:
        self.snapshot_path(snapshot_id).unlink(missing_ok=True)

    def volumes(self) -> dict[str, int]:
        """{volume id: virtual size in bytes} of the complete volume files here."""
        out = {}
        for path in self.path.glob("volume-*.qcow2"):
            with contextlib.suppress(OSError, ValueError):
                out[path.name[len("volume-"):-len(".qcow2")]] = virtual_size(path)
        return out

    def snapshots(self) -> list[str]:
        """The ids of the complete snapshot files here."""
        return sorted(p.name[len("snapshot-"):-len(".qcow2")] for p in self.path.glob("snapshot-*.qcow2"))

    def pool(self) -> PoolState:
        allocated = sum(self.volumes().values())
        fs = os.statvfs(self.path)
        capacity = self.capacity_gb or fs.f_blocks * fs.f_frsize // GiB
        free = max(0, capacity - (allocated + GiB - 1) // GiB) if self.capacity_gb else fs.f_bavail * fs.f_frsize // GiB
        return PoolState(capacity, (allocated + GiB - 1) // GiB, free)


def virtual_size(path: Path) -> int:
    """The virtual size of a qcow2 file, from its header (bytes 24-31, big-endian)."""
    with open(path, "rb") as fh:
        header = fh.read(32)
    if len(header) < 32 or header[:4] != b"QFI\xfb":
        raise ValueError(f"{path.name} is not a qcow2 file")
    return int(struct.unpack(">Q", header[24:32])[0])


def _safe(ident: str) -> str:
    if not ident or "/" in ident or ident.startswith("."):
        raise ValueError(f"not an id: {ident!r}")
    return ident


async def _qemu_img(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec("qemu-img", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"qemu-img {args[0]} failed: {err.decode(errors='replace').strip()[:300]}")
