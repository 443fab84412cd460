"""The replicator: every primary holds the newest copy of each object; handoffs hand theirs home.

One pass walks the partitions found on this node's devices.  For each object it finds the
newest file (.data or .ts) any device holds, copies it (checked against its md5 while copied) to
every primary that lacks it or holds an older one, and removes the copies on non-primary devices
once every primary has the newest.  A pass is bounded in time; the next one goes on from the
partition where the last stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from cumulo.object.storage.ring import Device
from cumulo.object.storage.store import (
    ObjectStore,
    cleanup_hash_dir,
    fsync_dir,
    newest,
    read_trailer,
    ts_key,
    walk_partition,
)

COPY_CHUNK = 1 << 20
TMP_MAX_AGE = 3600.0  # a temp file this old is the leftover of a write that died (a crash)


@dataclass
class ReplicationPass:
    partitions: int = 0
    objects: int = 0
    copied: int = 0
    removed: int = 0
    failed: int = 0
    removed_tmp: int = 0
    complete: bool = True  # False when the time ran out before every partition was seen
    seconds: float = 0.0


class Replicator:
    def __init__(self, store: ObjectStore, *, max_seconds: float = 60.0) -> None:
        self.store = store
        self.max_seconds = max_seconds
        self._resume_at = 0  # partition where the next pass starts

    def _local_devices(self) -> list[Device]:
        # every device of the ring is served by this node today (address empty); later a node
        # takes those whose address is its own
        return [d for d in self.store.ring.devices.values() if not d.address]

    def _partitions_present(self, devices: list[Device]) -> list[int]:
        parts: set[int] = set()
        for dev in devices:
            with contextlib.suppress(OSError):
                parts.update(int(p) for p in os.listdir(self.store.device_path(dev) / "objects") if p.isdigit())
        return sorted(p for p in parts if p < self.store.ring.partitions)

    def run_once(self) -> ReplicationPass:
        started = time.monotonic()
        result = ReplicationPass()
        devices = self._local_devices()
        for dev in devices:
            result.removed_tmp += _remove_stale_tmp(self.store.device_path(dev) / "tmp")
        parts = self._partitions_present(devices)
        ordered = [p for p in parts if p >= self._resume_at] + [p for p in parts if p < self._resume_at]
        for part in ordered:
            if time.monotonic() - started > self.max_seconds:
                result.complete = False
                self._resume_at = part
                break
            self.replicate_partition(part, devices, result)
            result.partitions += 1
        else:
            self._resume_at = 0
        result.seconds = time.monotonic() - started
        return result

    def replicate_partition(self, part: int, devices: list[Device], result: ReplicationPass) -> None:
        store = self.store
        primaries = store.ring.get_part_nodes(part)
        primary_ids = {d.id for d in primaries}
        # hash -> [(device, its hash dir, its newest file)] over every local device
        holders: dict[str, list[tuple[Device, Path, str | None]]] = {}
        for dev in devices:
            part_dir = store.device_path(dev) / "objects" / str(part)
            for _, hash_hex, hash_dir, files in walk_partition(part_dir, part):
                holders.setdefault(hash_hex, []).append((dev, hash_dir, newest(files)))
        for hash_hex, held in holders.items():
            result.objects += 1
            self._replicate_object(part, hash_hex, held, primaries, primary_ids, result)
        for dev in devices:  # empty partition directories of handoffs go too
            if dev.id not in primary_ids:
                _remove_empty(store.device_path(dev) / "objects" / str(part))

    def _replicate_object(self, part: int, hash_hex: str, held: list[tuple[Device, Path, str | None]],
                          primaries: list[Device], primary_ids: set[int], result: ReplicationPass) -> None:
        sources = sorted(((ts_key(f), dev, hash_dir / f) for dev, hash_dir, f in held if f),
                         key=lambda s: s[0], reverse=True)
        if not sources:
            return
        best_key, best_name = sources[0][0], sources[0][2].name
        have = {dev.id: f for dev, _, f in held}
        all_home = True
        for dev in primaries:
            current = have.get(dev.id)
            if current is not None and ts_key(current) >= best_key:
                continue
            if self._copy_in(part, hash_hex, dev, [s for s in sources if s[0] == best_key], best_name):
                result.copied += 1
            else:
                result.failed += 1
                all_home = False
        if not all_home:
            return
        for dev, hash_dir, f in held:
            if dev.id in primary_ids or f is None:
                continue
            # only the files seen, so that a write landing here meanwhile is not lost
            with contextlib.suppress(OSError):
                for name in os.listdir(hash_dir):
                    if ts_key(name) <= best_key and name.endswith((".data", ".ts")):
                        os.unlink(hash_dir / name)
            _remove_empty(hash_dir)
            _remove_empty(hash_dir.parent)
            result.removed += 1

    def _copy_in(self, part: int, hash_hex: str, target: Device,
                 sources: list[tuple[tuple[float, int], Device, Path]], name: str) -> bool:
        """Copy the newest file onto ``target`` from the first source that reads back sound."""
        store = self.store
        for _, dev, path in sources:
            if dev.id == target.id:
                continue
            tmp_dir = store.device_path(target) / "tmp"
            hash_dir = store.hash_dir(target, part, hash_hex)
            try:
                hash_dir.mkdir(parents=True, exist_ok=True)
                tmp_dir.mkdir(parents=True, exist_ok=True)
            except OSError:
                return False  # the target itself cannot take it: try again next pass
            tmp = tmp_dir / uuid.uuid4().hex
            try:
                sound = _copy_checked(path, tmp, store.fsync)
            except OSError:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                continue
            if not sound:
                tmp.unlink()
                store.quarantine(dev, path.parent)
                continue
            try:
                os.rename(tmp, hash_dir / name)
                if store.fsync:
                    fsync_dir(hash_dir)
            except OSError:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                return False
            cleanup_hash_dir(hash_dir)
            return True
        return False


def _copy_checked(src: Path, dst: Path, fsync: bool) -> bool:
    """Copy ``src`` to ``dst``; False when the source's body fails its md5 (or its trailer is bad)."""
    with open(src, "rb") as f, open(dst, "xb") as out:
        size = os.fstat(f.fileno()).st_size
        try:
            meta, body_size = read_trailer(f.fileno(), size)
        except ValueError:
            return False
        md5 = hashlib.md5(usedforsecurity=False)
        done = 0
        while True:
            data = f.read(COPY_CHUNK)
            if not data:
                break
            if done < body_size:
                md5.update(data[:body_size - done])
            done += len(data)
            out.write(data)
        if done != size:
            return False
        if not src.name.endswith(".ts") and md5.hexdigest() != meta.get("etag"):
            return False
        out.flush()
        if fsync:
            os.fsync(out.fileno())
    return True


def _remove_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


def _remove_stale_tmp(tmp_dir: Path) -> int:
    removed = 0
    cutoff = time.time() - TMP_MAX_AGE
    try:
        entries = list(os.scandir(tmp_dir))
    except OSError:
        return 0
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
    return removed
