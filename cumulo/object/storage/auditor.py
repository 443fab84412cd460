"""The auditor: read every stored object, recompute its md5, quarantine the copies that fail.

A quarantined copy is gone from its device's objects tree, so the next replicator pass copies a
sound replica back.  A pass is bounded in time and in bytes per second; the next goes on from the
device and partition where the last stopped.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

from cumulo.object.storage.store import ObjectStore, newest, read_trailer, walk_objects

READ_CHUNK = 1 << 20


@dataclass
class AuditPass:
    checked: int = 0
    bytes: int = 0
    quarantined: int = 0
    complete: bool = True
    seconds: float = 0.0


class Auditor:
    def __init__(self, store: ObjectStore, *, max_seconds: float = 60.0,
                 bytes_per_second: int = 50 * 1024 * 1024) -> None:
        self.store = store
        self.max_seconds = max_seconds
        self.bytes_per_second = bytes_per_second
        self._resume: tuple[int, int] = (0, 0)  # (device id, partition) of the next pass's start

    def run_once(self) -> AuditPass:
        started = time.monotonic()
        result = AuditPass()
        devices = sorted((d for d in self.store.ring.devices.values() if not d.address), key=lambda d: d.id)
        for dev in devices:
            if dev.id < self._resume[0]:
                continue
            for part, _hash, hash_dir, files in walk_objects(self.store.device_path(dev)):
                if (dev.id, part) < self._resume:
                    continue
                if time.monotonic() - started > self.max_seconds:
                    self._resume = (dev.id, part)
                    result.complete = False
                    result.seconds = time.monotonic() - started
                    return result
                top = newest(files)
                if not top or not top.endswith(".data"):
                    continue
                result.checked += 1
                sound, size = _check(str(hash_dir / top))
                result.bytes += size
                if not sound and self.store.quarantine(dev, hash_dir) is not None:
                    result.quarantined += 1
                # rate limit: sleep while ahead of the allowed bytes per second
                ahead = result.bytes / self.bytes_per_second - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(min(ahead, 1.0))
        self._resume = (0, 0)
        result.seconds = time.monotonic() - started
        return result


def _check(path: str) -> tuple[bool, int]:
    """(whether the body's md5 is the trailer's etag, bytes read); a vanished file counts sound."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True, 0
    try:
        size = os.fstat(fd).st_size
        try:
            meta, body_size = read_trailer(fd, size)
        except ValueError:
            return False, 0
        md5 = hashlib.md5(usedforsecurity=False)
        offset = 0
        while offset < body_size:
            data = os.pread(fd, min(READ_CHUNK, body_size - offset), offset)
            if not data:
                return False, offset
            md5.update(data)
            offset += len(data)
        return md5.hexdigest() == meta.get("etag") and meta.get("size") == body_size, body_size
    finally:
        os.close(fd)
