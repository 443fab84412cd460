"""Volumes as qcow2 files in one directory per host, and their snapshots as qcow2 overlays in a
chain (Cinder's remotefs model): a volume's *active* image is always ``volume-<id>.qcow2`` (so
connection infos, NBD exports and compute's instance.json stay valid); a snapshot freezes the
active image under ``snapshot-<snapshot id>.qcow2`` and the volume goes on in a new, empty overlay
backed by it.  So the files form the chain ``base <- ... <- snapshot <- volume``, each naming its
backing file by a name relative to this directory in its qcow2 header.

* **Taking a snapshot** of a volume no process writes: an overlay is made under a temporary name
  (``qemu-img create -u -b snapshot-<sid>.qcow2``), the active image gets its snapshot name as a
  hard link, and the overlay replaces ``volume-<id>.qcow2`` (``os.replace``).  At every instant
  ``volume-<id>.qcow2`` is a complete image.  For a volume a running guest writes, ``switch``
  (compute's ``snapshot_volume``) first tells the guest's QEMU to go on in the overlay
  (``blockdev-snapshot-sync``, mode existing), and only then are the names moved: QEMU reopens the
  image it froze by the name it opened it with, which must still be that image then.  The overlay
  keeps a hidden second name, ``.overlay-<id>.<sid>.qcow2`` (the name QEMU knows it by), until
  the next snapshot freezes it.
* **Deleting a snapshot** whose file F has children (the images whose backing F is): each child
  takes F's data (``qemu-img rebase`` in safe mode onto F's own backing, or none), then F goes.
  When F is in the chain of a running guest, ``merge`` (compute's ``merge_volume``, QMP
  ``block-stream`` into the active image with F's backing as the base) first takes F, and every
  snapshot between it and the active image, out of the guest's chain; those snapshot files keep
  their own data and backing, so every snapshot still reads what it read.  No snapshot's data
  ever moves to another snapshot's file: ``snapshot_path`` is the only lookup.
* A volume whose writer is not a guest of compute (another consumer holds it, or an NBD export
  of ``drivers/nbd.py``) gets a standalone copy as its snapshot (``copy``, or ``qemu-img
  convert`` with force-share), as before the chains: a file that is nobody's backing is simply
  removed at its delete.
* A volume made from a snapshot or another volume is a ``qemu-img convert`` of the chain, grown
  to its size: a standalone file.  A volume's delete removes its active image, every file of its
  chain and whatever hangs off them.

Every operation is idempotent and safe to run again after a crash at any step (the steps are
ordered so that what is on disk is always a readable chain), and operations on chains take turns
(one lock per driver).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GiB = 1024**3

# switch(overlay) -> True when the volume's running QEMU now writes to ``overlay``; False when no
# running guest has the volume (then the snapshot is taken offline)
Switch = Callable[[Path], Awaitable[bool]]
# merge(volume_id, chain, base) -> True when the running QEMU of the volume streamed every image of
# ``chain`` (file names, active first) above ``base`` into the active one; False when none runs
Merge = Callable[[str, list[str], str | None], Awaitable[bool]]


@dataclass(frozen=True)
class PoolState:
    capacity_gb: int
    allocated_gb: int
    free_gb: int


class FileDriver:
    def __init__(self, path: Path, capacity_gb: int = 0) -> None:
        self.path, self.capacity_gb = Path(path), capacity_gb
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._chains = asyncio.Lock()  # snapshot creates and deletes and volume deletes take turns

    def volume_path(self, volume_id: str) -> Path:
        """The volume's active image (its chain's top)."""
        return self.path / f"volume-{_safe(volume_id)}.qcow2"

    def snapshot_path(self, snapshot_id: str) -> Path:
        """The file that holds the snapshot (a member of its volume's chain, or a standalone copy)."""
        return self.path / f"snapshot-{_safe(snapshot_id)}.qcow2"

    def _overlay_path(self, volume_id: str, snapshot_id: str) -> Path:
        return self.path / f".overlay-{_safe(volume_id)}.{_safe(snapshot_id)}.qcow2"

    async def create_volume(self, volume_id: str, size_gb: int, source: Path | None = None,
                            source_format: str = "qcow2") -> Path:
        """An empty volume, or a copy of ``source`` (a snapshot, a volume, or a downloaded image in
        ``source_format``) grown to ``size_gb``; a source larger than that is refused.  A qcow2
        source is read with its backing chain, so the copy is standalone."""
        target = self.volume_path(volume_id)
        if target.exists():
            return target
        if source is not None and source.name.startswith("snapshot-"):  # no rebase changes it meanwhile
            async with self._chains:
                return await self._create_volume(target, size_gb, source, source_format)
        return await self._create_volume(target, size_gb, source, source_format)

    async def _create_volume(self, target: Path, size_gb: int, source: Path | None, source_format: str) -> Path:
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
        """The active image, every file of its chain and every snapshot file whose chain reaches
        one of them (a branch a snapshot's delete left), its temporary and overlay names."""
        async with self._chains:
            top = self.volume_path(volume_id)
            doomed = set(self.chain(top)) if top.exists() else set()
            for snap in self.path.glob("snapshot-*.qcow2"):
                if doomed.intersection(self.chain(snap)):
                    doomed.add(snap)
            doomed |= set(self.path.glob(f".overlay-{_safe(volume_id)}.*.qcow2"))
            doomed |= {top.with_name(f".{top.name}.part"), top.with_name(f".{top.name}.new")}
            for path in [top, *sorted(doomed)]:
                path.unlink(missing_ok=True)

    async def create_snapshot(self, snapshot_id: str, volume_id: str, force_share: bool = False,
                              copy: Callable[[Path], Awaitable[Any]] | None = None,
                              switch: Switch | None = None) -> Path:
        """Freeze the volume's active image as the snapshot and go on in a new overlay (see the
        module's docstring).  ``switch`` moves the running guest that writes the volume onto the
        overlay first.  ``copy(tmp)``, when given, writes a standalone copy instead (an NBD export
        reads it); so does ``qemu-img convert -U`` when ``force_share`` says the volume is in use
        and some process other than a guest of compute holds it open (its image lock)."""
        async with self._chains:
            target = self.snapshot_path(snapshot_id)
            source = self.volume_path(volume_id)
            if target.exists() and not (source.exists() and os.path.samefile(source, target)):
                return target  # done (a chain member, or a standalone copy)
            if not source.exists():
                raise LookupError(f"volume {volume_id} is not on this node")
            if copy is not None:
                return await self._copy_snapshot(target, copy)
            overlay = self._overlay_path(volume_id, snapshot_id)
            fresh = not overlay.exists()  # one left by an earlier try may hold the guest's writes: kept
            if fresh:
                await self._new_overlay(overlay, target, source)
            switched = switch is not None and await switch(overlay)
            if not switched and fresh and force_share and await _held(source):  # not a guest of compute
                overlay.unlink(missing_ok=True)

                async def convert(tmp: Path) -> None:
                    await _qemu_img("convert", "-q", "-U", "-O", "qcow2", str(source), str(tmp))
                return await self._copy_snapshot(target, convert)
            if not target.exists():  # the frozen image gets the snapshot's name ...
                os.link(source, target)
            if not os.path.samefile(source, overlay):  # ... and the overlay the volume's
                new = source.with_name(f".{source.name}.new")
                new.unlink(missing_ok=True)
                os.link(overlay, new)
                os.replace(new, source)
            if not switched:  # no QEMU knows the overlay by its hidden name
                overlay.unlink(missing_ok=True)
            self._forget_overlays(volume_id, source)
            return target

    async def repair(self) -> list[str]:
        """Finish the snapshots a crash cut between the guest's switch and the names' move: an
        overlay that is not the volume's active image yet but that a QEMU holds, or that holds
        data of its own (a guest wrote it, then stopped), becomes the active image and the image
        it is backed by the snapshot; an empty one nobody holds is removed (the switch never
        happened, or nothing was written since).  The agent runs it with every report; the ids of
        the snapshots finished are returned."""
        done = []
        async with self._chains:
            for overlay in self.path.glob(".overlay-*.qcow2"):
                volume_id, _, snapshot_id = overlay.name[len(".overlay-"):-len(".qcow2")].partition(".")
                source = self.volume_path(volume_id)
                with contextlib.suppress(OSError, ValueError):
                    if not source.exists():
                        overlay.unlink()
                        continue
                    if os.path.samefile(source, overlay):
                        continue
                    if not (await _held(overlay) or await _has_own_data(overlay)):
                        overlay.unlink()
                        continue
                    target = self.snapshot_path(snapshot_id)
                    if not target.exists():
                        os.link(source, target)
                    new = source.with_name(f".{source.name}.new")
                    new.unlink(missing_ok=True)
                    os.link(overlay, new)
                    os.replace(new, source)
                    done.append(snapshot_id)
        return done

    async def _new_overlay(self, path: Path, backing: Path, volume: Path) -> None:
        """An empty qcow2 of the volume's size whose backing is ``backing`` (named relative to
        this directory; ``-u``: not opened, it may not exist yet or be held by a QEMU)."""
        tmp = path.with_name(f"{path.name}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            await _qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", backing.name, "-F", "qcow2", str(tmp),
                            str(virtual_size(volume)))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def _forget_overlays(self, volume_id: str, active: Path) -> None:
        """The hidden overlay names of images that are frozen now (QEMU froze them already)."""
        for path in self.path.glob(f".overlay-{_safe(volume_id)}.*.qcow2"):
            with contextlib.suppress(OSError):
                if not os.path.samefile(path, active):
                    path.unlink()

    @staticmethod
    async def _copy_snapshot(target: Path, copy: Callable[[Path], Awaitable[Any]]) -> Path:
        tmp = target.with_name(f".{target.name}.part")
        tmp.unlink(missing_ok=True)
        try:
            await copy(tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    async def delete_snapshot(self, snapshot_id: str, merge: Merge | None = None) -> None:
        """Remove the snapshot's file F once each image backed by it holds F's data: a running
        guest's chain through ``merge`` (block-stream into its active image), every other child
        by ``qemu-img rebase`` onto F's backing.  Run again after a crash, it goes on where it
        stopped (a child that no longer names F needs nothing)."""
        async with self._chains:
            target = self.snapshot_path(snapshot_id)
            if not target.exists():
                return
            base = backing_file(target)
            base_path = self.path / base if base else None
            if base_path is not None and not base_path.exists():
                raise RuntimeError(f"the backing file {base} of snapshot {snapshot_id} is missing")
            for top in self.path.glob("volume-*.qcow2"):
                chain = self.chain(top)
                if merge is not None and target in chain[1:] and await _held(top):  # a QEMU writes it
                    volume_id = top.name[len("volume-"):-len(".qcow2")]
                    if await merge(volume_id, [p.name for p in chain], base) and backing_file(top) != base:
                        raise RuntimeError(f"the guest's QEMU merged volume {volume_id}, but its image does not "
                                           f"name {base or 'no backing file'} as its backing")
            for child in self.children(target):
                await _qemu_img("rebase", "-q", "-f", "qcow2", *(("-F", "qcow2") if base else ()), "-b", base or "",
                                str(child))
            target.unlink(missing_ok=True)

    def chain(self, top: Path) -> list[Path]:
        """``top`` and its backing files down to the base, by their headers."""
        out = [top]
        while (name := backing_file(out[-1])) is not None:
            nxt = self.path / name
            if "/" in name or nxt in out or not nxt.exists():
                break  # a backing outside this directory, a loop or a missing file ends the walk
            out.append(nxt)
        return out

    def children(self, path: Path) -> list[Path]:
        """The images here whose backing file is ``path``."""
        out = []
        for p in sorted([*self.path.glob("volume-*.qcow2"), *self.path.glob("snapshot-*.qcow2")]):
            with contextlib.suppress(OSError, ValueError):
                if backing_file(p) == path.name:
                    out.append(p)
        return out

    async def extend_volume(self, volume_id: str, size_gb: int) -> None:
        """Grow a volume no process holds open (an attached one is grown by its QEMU); growing to
        a size it has already is harmless.  Only the active image grows: its backing may be smaller."""
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


def backing_file(path: Path) -> str | None:
    """The backing file a qcow2 header names (bytes 8-15 its offset, 16-19 its length), or None.
    Read from the file itself: no image lock is taken, so it works on an image a QEMU holds."""
    with open(path, "rb") as fh:
        header = fh.read(20)
        if len(header) < 20 or header[:4] != b"QFI\xfb":
            raise ValueError(f"{path.name} is not a qcow2 file")
        offset, length = struct.unpack(">QI", header[8:20])
        if not offset or not length:
            return None
        fh.seek(offset)
        return fh.read(length).decode(errors="replace")


def _safe(ident: str) -> str:
    if not ident or "/" in ident or ident.startswith("."):
        raise ValueError(f"not an id: {ident!r}")
    return ident


async def _held(path: Path) -> bool:
    """Whether some process (a QEMU) writes the image: qemu-img cannot take its shared lock then."""
    proc = await asyncio.create_subprocess_exec("qemu-img", "info", "-f", "qcow2", str(path),
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    return proc.returncode != 0 and b"lock" in err


async def _has_own_data(path: Path) -> bool:
    """Whether a qcow2 file holds data itself (not only through its backing file)."""
    alone = "json:" + json.dumps({"driver": "qcow2", "backing": None,  # its backing may not exist yet
                                  "file": {"driver": "file", "filename": str(path)}})
    proc = await asyncio.create_subprocess_exec("qemu-img", "map", "-U", "--output=json", alone,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"qemu-img map failed: {err.decode(errors='replace').strip()[:300]}")
    return any(e.get("depth") == 0 and (e.get("data") or e.get("zero")) and e.get("present", True)
               for e in json.loads(out))


async def _qemu_img(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec("qemu-img", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"qemu-img {args[0]} failed: {err.decode(errors='replace').strip()[:300]}")
