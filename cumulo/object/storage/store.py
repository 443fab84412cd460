"""Replicated object files on this node's devices: put, get, delete with a write quorum.

The on-disk format of a ``.data`` file is the body, then a JSON trailer with the object's
metadata, then 8 bytes: the trailer's length (big-endian u32) and the magic ``CUMO``.  A ``.ts``
(tombstone) file is the trailer alone.  See the package docstring for the layout and the rules.
With a key master (``crypto``), bodies are written encrypted and the trailer says how to decrypt.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import struct
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cumulo.object.storage.crypto import CryptoError, Decrypter, KeyMaster
from cumulo.object.storage.ring import Device, Ring, RingBuilder, RingError

MAGIC = b"CUMO"
TAIL = struct.Struct(">I4s")
log = logging.getLogger(__name__)

RING_CHECK_SECONDS = 1.0  # how often a store looks whether its ring file changed
MAX_TRAILER = 1 << 20  # the metadata of one object: names and user metadata are bounded far below this
VERIFY_IN_GET = 1 << 20  # bodies up to this size are read and checked before get() returns them
SMALL_READ = 128 * 1024  # copies up to this size are opened and checked on the event loop itself
MAX_HANDOFFS = 8  # how many handoffs a write tries, and a read searches, beyond the primaries


class QuorumError(Exception):
    """Fewer than a quorum of replicas could be written; nothing is kept."""


class EtagMismatch(ValueError):
    """The body's md5 is not the ETag the client sent; nothing is kept."""


class TooLarge(ValueError):
    """The body is longer than max_size; nothing is kept."""


class ShortBody(ValueError):
    """The body's length is not the Content-Length announced; nothing is kept."""


class ChecksumError(OSError):
    """A copy failed its md5 while being streamed: it is quarantined, the response must be cut."""


@dataclass(frozen=True)
class StoredObject:
    etag: str
    size: int
    timestamp: str


TIMESTAMP = re.compile(r"\d{10}\.\d{5}")


def check_timestamp(timestamp: str) -> None:
    """Timestamps name files: only Swift's normalized form (10.5 digits) is taken."""
    if not TIMESTAMP.fullmatch(timestamp):
        raise ValueError(f"timestamp {timestamp!r} is not in the form 1700000000.12345")


def quorum(replicas: int) -> int:
    return replicas // 2 + 1


def ts_key(name: str) -> tuple[float, int]:
    """Sort key of a file name ``<timestamp>.data|.ts``; a tombstone wins a tie with a data file."""
    stem, _, ext = name.rpartition(".")
    try:
        return float(stem), 1 if ext == "ts" else 0
    except ValueError:
        return -1.0, 0


def newest(names: list[str]) -> str | None:
    files = [n for n in names if n.endswith((".data", ".ts"))]
    return max(files, key=ts_key) if files else None


def fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_trailer(meta: dict[str, Any]) -> bytes:
    raw = json.dumps(meta, separators=(",", ":")).encode()
    return raw + TAIL.pack(len(raw), MAGIC)


def read_trailer(fd: int, file_size: int) -> tuple[dict[str, Any], int]:
    """(metadata, body length) of an open object file; ValueError when the trailer is damaged."""
    if file_size < TAIL.size:
        raise ValueError("file too short for a trailer")
    length, magic = TAIL.unpack(os.pread(fd, TAIL.size, file_size - TAIL.size))
    if magic != MAGIC or length > MAX_TRAILER or length > file_size - TAIL.size:
        raise ValueError("bad trailer")
    raw = os.pread(fd, length, file_size - TAIL.size - length)
    meta = json.loads(raw)
    if not isinstance(meta, dict):
        raise ValueError("trailer is not an object")
    return meta, file_size - TAIL.size - length


class ObjectReader:
    """One replica's open file; iterate the body (or a range of it), then close."""

    def __init__(self, store: ObjectStore, device: Device, path: Path, fd: int, meta: dict[str, Any],
                 size: int, body: bytes | None) -> None:
        self.etag: str = meta["etag"]  # the plaintext's md5 once decrypt() is set
        self.stored_etag: str = meta["etag"]  # the md5 of the bytes on disk
        self.decrypt: Decrypter | None = None
        self.name: str = str(meta.get("name", ""))
        self.crypto_meta: Any = meta.get("crypto")  # how the body was encrypted, None for plain
        self.size = size
        self.timestamp: str = meta["timestamp"]
        self.metadata: dict[str, str] = dict(meta.get("metadata", {}))
        self._store, self._device, self._path, self._fd, self._body = store, device, path, fd, body

    async def iter_range(self, start: int = 0, end: int | None = None, chunk: int = 65536) -> AsyncIterator[bytes]:
        end = self.size if end is None else min(end, self.size)
        start = max(0, start)
        plain = None if self.decrypt is None else self.decrypt.at(start)
        if self._body is not None:  # already read and checked in get()
            for offset in range(start, end, chunk):
                data = self._body[offset:min(end, offset + chunk)]
                yield data if plain is None else plain.update(data)
            return
        whole = start == 0 and end == self.size
        md5 = hashlib.md5(usedforsecurity=False) if whole else None
        offset = start
        while offset < end:
            data = await asyncio.to_thread(os.pread, self._fd, min(chunk, end - offset), offset)
            if not data:
                raise ChecksumError(f"{self._path} is shorter than its trailer says")
            if md5 is not None:
                md5.update(data)
            offset += len(data)
            yield data if plain is None else plain.update(data)
        if md5 is not None and md5.hexdigest() != self.stored_etag:
            self._store.quarantine(self._device, self._path.parent)
            raise ChecksumError(f"{self._path} failed its md5 while read; quarantined")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


@dataclass
class _Writer:
    device: Device
    hash_dir: str
    tmp: str
    fd: int
    ok: bool = True
    final: str | None = field(default=None)


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino, st.st_size


class ObjectStore:
    """The node's object files on the ring's devices under ``root``."""

    def __init__(self, root: Path, ring: Ring, *, fsync: bool = True, crypto: KeyMaster | None = None,
                 encrypt: bool = False, ring_file: Path | None = None) -> None:
        self.root = Path(root)
        self._ring = ring
        self.fsync = fsync
        # reads decrypt with crypto whenever a copy is encrypted; writes encrypt when encrypt is set
        self.crypto, self.encrypt = crypto, encrypt and crypto is not None
        self.quorum = quorum(ring.replicas)
        self._root = str(self.root)
        # the ring file this store follows: an operator's `cumulo object ring rebalance` (or any
        # new ring file) is taken within RING_CHECK_SECONDS, without a restart
        self.ring_file = ring_file
        self._ring_stat = _stat_key(ring_file) if ring_file is not None else None
        self._ring_checked = time.monotonic()

    @property
    def ring(self) -> Ring:
        """The current ring; the ring file is looked at (one stat) at most once a second."""
        if self.ring_file is not None and time.monotonic() - self._ring_checked >= RING_CHECK_SECONDS:
            self._ring_checked = time.monotonic()
            self.reload_ring()
        return self._ring

    @ring.setter
    def ring(self, ring: Ring) -> None:
        self._ring = ring
        self.quorum = quorum(ring.replicas)

    def reload_ring(self) -> bool:
        """Take the ring file's ring if it changed since it was read (True when a new ring is in
        use).  A ring that cannot be read, or places objects otherwise (another partition power or
        hash prefix/suffix: every object would be looked for in the wrong partition), is refused
        with an error in the log and the current ring is kept."""
        if self.ring_file is None:
            return False
        key = _stat_key(self.ring_file)
        if key is None or key == self._ring_stat:
            return False
        self._ring_stat = key
        try:
            new = Ring.load(self.ring_file)
        except (RingError, OSError, ValueError, KeyError, TypeError) as exc:
            log.error("object ring %s not taken: %s", self.ring_file, exc)
            return False
        old = self._ring
        if (new.part_power, new.hash_prefix, new.hash_suffix) != (old.part_power, old.hash_prefix, old.hash_suffix):
            log.error("object ring %s not taken: its partition power or hash prefix/suffix differs from the "
                      "ring in use (restart with the old ring, or move the data first)", self.ring_file)
            return False
        for dev in new.devices.values():
            if not dev.address:
                (self.root / dev.name).mkdir(parents=True, exist_ok=True)
        self.ring = new
        log.info("object ring %s reloaded: %d devices, %d replicas", self.ring_file, len(new.devices), new.replicas)
        return True

    @classmethod
    def open(cls, state_dir: Path, *, replicas: int = 3, part_power: int = 10, devices: int = 3,
             fsync: bool = True, encryption: bool = False) -> ObjectStore:
        base = Path(state_dir) / "object"
        ring_file = base / "object.ring.json"
        if not ring_file.exists():
            builder = RingBuilder(part_power, replicas)
            for i in range(1, devices + 1):
                builder.add_device(f"d{i}", region=1, zone=i, weight=100)
            builder.rebalance()
            builder.save(ring_file)
        ring = Ring.load(ring_file)
        root = base / "devices"
        for dev in ring.devices.values():
            (root / dev.name).mkdir(parents=True, exist_ok=True)
        crypto = KeyMaster.open(Path(state_dir), create=encryption)
        return cls(root, ring, fsync=fsync, crypto=crypto, encrypt=encryption, ring_file=ring_file)

    # ---- paths ----

    def device_path(self, device: Device) -> Path:
        return self.root / device.name

    def hash_dir(self, device: Device, part: int, hash_hex: str) -> Path:
        return self.root / device.name / "objects" / str(part) / hash_hex[-3:] / hash_hex

    def locate(self, account: str, container: str, name: str) -> tuple[str, int, list[Device]]:
        hash_hex = self.ring.hash(account, container, name)
        part = self.ring.partition_of(hash_hex)
        return hash_hex, part, self.ring.get_part_nodes(part)

    # ---- writes ----

    def _open_writer(self, device: Device, part: int, hash_hex: str) -> _Writer | None:
        """A temp file on ``device`` and the object's directory made; None when the device fails."""
        # plain strings: pathlib's joins cost as much as the syscalls of a 4 KiB write
        dev_dir = f"{self._root}/{device.name}"
        hash_dir = f"{dev_dir}/objects/{part}/{hash_hex[-3:]}/{hash_hex}"
        tmp_dir = f"{dev_dir}/tmp"
        try:
            try:  # the common cases in one syscall: the directory is there, or only it is missing
                os.mkdir(hash_dir)
            except FileExistsError:
                pass
            except FileNotFoundError:
                os.makedirs(hash_dir, exist_ok=True)
            tmp = f"{tmp_dir}/{uuid.uuid4().hex}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileNotFoundError:
                os.makedirs(tmp_dir, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            return None
        return _Writer(device, hash_dir, tmp, fd)

    def _open_writers(self, part: int, hash_hex: str) -> list[_Writer]:
        """One writer per replica: the primaries, a handoff standing in for each one that fails."""
        writers = []
        failed = 0
        for dev in self.ring.get_part_nodes(part):
            w = self._open_writer(dev, part, hash_hex)
            if w is None:
                failed += 1
            else:
                writers.append(w)
        if failed:
            for tried, dev in enumerate(self.ring.get_more_nodes(part)):
                if failed == 0 or tried >= MAX_HANDOFFS:
                    break
                w = self._open_writer(dev, part, hash_hex)
                if w is not None:
                    writers.append(w)
                    failed -= 1
        return writers

    @staticmethod
    def _write_all(writers: list[_Writer], data: bytes) -> None:
        for w in writers:
            if w.ok:
                try:
                    _write_fully(w.fd, data)
                except OSError:
                    w.ok = False

    def _commit(self, w: _Writer, filename: str) -> None:
        """fsync the temp file, rename it into the object's directory, fsync that directory."""
        try:
            if self.fsync:
                os.fsync(w.fd)
            os.close(w.fd)
            w.fd = -1
            final = f"{w.hash_dir}/{filename}"
            os.rename(w.tmp, final)
            w.final = final
            if self.fsync:
                fsync_dir(w.hash_dir)
        except OSError:
            w.ok = False

    def _discard(self, writers: list[_Writer], committed_too: bool) -> None:
        for w in writers:
            if w.fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(w.fd)
                w.fd = -1
            with contextlib.suppress(OSError):
                os.unlink(w.tmp)
            if committed_too and w.final is not None:
                with contextlib.suppress(OSError):
                    os.unlink(w.final)
                with contextlib.suppress(OSError):
                    os.rmdir(w.hash_dir)

    async def _finish(self, writers: list[_Writer], filename: str) -> list[_Writer]:
        live = [w for w in writers if w.ok]
        if len(live) > 1 and self.fsync:
            await asyncio.gather(*(asyncio.to_thread(self._commit, w, filename) for w in live))
        else:
            for w in live:
                self._commit(w, filename)
        done = [w for w in live if w.ok]
        if len(done) < self.quorum:
            self._discard(writers, committed_too=True)
            raise QuorumError(f"{len(done)} of {self.ring.replicas} replicas written; {self.quorum} needed")
        self._discard([w for w in writers if not w.ok], committed_too=True)
        for w in done:
            cleanup_hash_dir(w.hash_dir)
        return done

    async def put(self, account: str, container: str, name: str, chunks: AsyncIterator[bytes], *,
                  timestamp: str, metadata: dict[str, str], max_size: int,
                  expected_etag: str | None = None, content_length: int | None = None) -> StoredObject:
        check_timestamp(timestamp)
        hash_hex = self.ring.hash(account, container, name)
        part = self.ring.partition_of(hash_hex)
        writers = self._open_writers(part, hash_hex)
        if len(writers) < self.quorum:
            self._discard(writers, committed_too=False)
            raise QuorumError(f"{len(writers)} of {self.ring.replicas} devices writable; {self.quorum} needed")
        md5 = hashlib.md5(usedforsecurity=False)
        path = f"/{account}/{container}/{name}"
        enc = self.crypto.encrypter(path) if self.encrypt and self.crypto is not None else None
        stored_md5 = hashlib.md5(usedforsecurity=False) if enc is not None else md5
        size = 0
        try:
            async for data in chunks:
                if not data:
                    continue
                size += len(data)
                if size > max_size:
                    raise TooLarge(f"the body is over {max_size} bytes")
                if content_length is not None and size > content_length:
                    raise ShortBody(f"more than the {content_length} bytes announced")
                md5.update(data)
                if enc is not None:
                    data = enc.update(data)
                    stored_md5.update(data)
                self._write_all(writers, data)
                if sum(w.ok for w in writers) < self.quorum:
                    raise QuorumError(f"writes failed on {sum(not w.ok for w in writers)} devices")
            if content_length is not None and size != content_length:
                raise ShortBody(f"{size} bytes came, {content_length} were announced")
            etag = md5.hexdigest()
            if expected_etag is not None and expected_etag.lower() != etag:
                raise EtagMismatch(f"the body's md5 is {etag}, not {expected_etag}")
            meta: dict[str, Any] = {"name": path, "etag": stored_md5.hexdigest(), "size": size,
                                    "timestamp": timestamp, "metadata": dict(metadata)}
            if enc is not None:
                meta["crypto"] = enc.trailer(etag)
            trailer = encode_trailer(meta)
            if len(trailer) > MAX_TRAILER:
                raise ValueError(f"the object's name and metadata take more than {MAX_TRAILER} bytes")
            self._write_all(writers, trailer)
        except BaseException:
            self._discard(writers, committed_too=False)
            raise
        await self._finish(writers, f"{timestamp}.data")
        return StoredObject(etag, size, timestamp)

    async def delete(self, account: str, container: str, name: str, *, timestamp: str) -> None:
        check_timestamp(timestamp)
        hash_hex = self.ring.hash(account, container, name)
        part = self.ring.partition_of(hash_hex)
        writers = self._open_writers(part, hash_hex)
        if len(writers) < self.quorum:
            self._discard(writers, committed_too=False)
            raise QuorumError(f"{len(writers)} of {self.ring.replicas} devices writable; {self.quorum} needed")
        meta = {"name": f"/{account}/{container}/{name}", "timestamp": timestamp, "deleted": True}
        self._write_all(writers, encode_trailer(meta))
        await self._finish(writers, f"{timestamp}.ts")

    # ---- reads ----

    def _candidates(self, part: int, hash_hex: str) -> list[tuple[tuple[float, int], Device, Path]]:
        """The newest file of each device holding the object, newest first (primaries, then up to
        MAX_HANDOFFS handoffs when no primary has one)."""
        found = []
        for dev in self.ring.get_part_nodes(part):
            hash_dir = self.hash_dir(dev, part, hash_hex)
            try:
                top = newest(os.listdir(hash_dir))
            except OSError:
                continue
            if top:
                found.append((ts_key(top), dev, hash_dir / top))
        if len(found) < self.ring.replicas:
            for tried, dev in enumerate(self.ring.get_more_nodes(part)):
                if tried >= MAX_HANDOFFS:
                    break
                hash_dir = self.hash_dir(dev, part, hash_hex)
                try:
                    top = newest(os.listdir(hash_dir))
                except OSError:
                    continue
                if top:
                    found.append((ts_key(top), dev, hash_dir / top))
        found.sort(key=lambda c: c[0], reverse=True)
        return found

    def _open_copy(self, dev: Device, path: Path) -> ObjectReader | None:
        """The copy at ``path`` opened and (up to VERIFY_IN_GET) checked; None when it is damaged
        (then quarantined) or gone."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            meta, size = read_trailer(fd, os.fstat(fd).st_size)
            if meta.get("size") != size or not isinstance(meta.get("etag"), str):
                raise ValueError("trailer disagrees with the file")
            body = None
            if size <= VERIFY_IN_GET:
                body = os.pread(fd, size, 0)
                if len(body) != size or hashlib.md5(body, usedforsecurity=False).hexdigest() != meta["etag"]:
                    raise ValueError("md5 mismatch")
            return ObjectReader(self, dev, path, fd, meta, size, body)
        except (ValueError, KeyError, TypeError, OSError):
            os.close(fd)
            self.quarantine(dev, path.parent)
            return None

    async def get(self, account: str, container: str, name: str) -> ObjectReader | None:
        hash_hex = self.ring.hash(account, container, name)
        part = self.ring.partition_of(hash_hex)
        for _, dev, path in self._candidates(part, hash_hex):
            if path.name.endswith(".ts"):
                return None
            # a small copy is read and checked here at once; a bigger one in a thread
            try:
                small = os.stat(path).st_size <= SMALL_READ
            except OSError:
                continue
            reader = self._open_copy(dev, path) if small else await asyncio.to_thread(self._open_copy, dev, path)
            if reader is not None:
                if reader.crypto_meta is not None:
                    self._attach_decrypter(reader)
                return reader
        return None

    def _attach_decrypter(self, reader: ObjectReader) -> None:
        """Set the reader to decrypt; CryptoError (the copy is sound, the key is not here)."""
        try:
            if self.crypto is None:
                raise CryptoError("the object is encrypted and there is no root secret file")
            reader.decrypt = self.crypto.decrypter(reader.name, reader.crypto_meta)
        except BaseException:
            reader.close()
            raise
        reader.etag = reader.decrypt.etag

    # ---- damage ----

    def quarantine(self, device: Device, hash_dir: Path) -> Path | None:
        """Move an object's directory aside, to <device>/quarantined/objects/<hash>[-n]."""
        target_dir = self.root / device.name / "quarantined" / "objects"
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
            target = target_dir / hash_dir.name
            if target.exists():
                target = target_dir / f"{hash_dir.name}-{uuid.uuid4().hex[:8]}"
            os.rename(hash_dir, target)
            return target
        except OSError:
            return None

    # ---- status ----

    def usage(self) -> dict[str, Any]:
        devices = {}
        for dev in sorted(self.ring.devices.values(), key=lambda d: d.id):
            path = self.device_path(dev)
            used = objects = tombstones = 0
            for _, _, hash_dir, files in walk_objects(path):
                top = newest(files)
                for f in files:
                    with contextlib.suppress(OSError):
                        used += (hash_dir / f).stat().st_size
                if top and top.endswith(".data"):
                    objects += 1
                elif top:
                    tombstones += 1
            qdir = path / "quarantined" / "objects"
            try:
                quarantined = len(os.listdir(qdir))
            except OSError:
                quarantined = 0
            disk: dict[str, int] = {}
            with contextlib.suppress(OSError):
                du = shutil.disk_usage(path)
                disk = {"disk_total": du.total, "disk_free": du.free}
            devices[dev.name] = {"id": dev.id, "path": str(path), "zone": dev.zone, "region": dev.region,
                                 "weight": dev.weight, "bytes_used": used, "objects": objects,
                                 "tombstones": tombstones, "quarantined": quarantined,
                                 "present": path.is_dir(), **disk}
        return {"replicas": self.ring.replicas, "part_power": self.ring.part_power,
                "quorum": self.quorum, "devices": devices}


def _write_fully(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def cleanup_hash_dir(hash_dir: Path | str) -> str | None:
    """Keep only the newest .data/.ts of an object (older versions and tombstones go)."""
    try:
        names = os.listdir(hash_dir)
    except OSError:
        return None
    top = newest(names)
    for n in names:
        if n != top and n.endswith((".data", ".ts")):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(hash_dir, n))
    return top


def walk_objects(device_path: Path) -> Iterator[tuple[int, str, Path, list[str]]]:
    """(partition, hash, hash directory, its files) of every object directory on a device."""
    objects = device_path / "objects"
    try:
        parts = sorted(os.listdir(objects), key=lambda p: int(p) if p.isdigit() else -1)
    except OSError:
        return
    for part in parts:
        if not part.isdigit():
            continue
        yield from walk_partition(objects / part, int(part))


def walk_partition(part_dir: Path, part: int) -> Iterator[tuple[int, str, Path, list[str]]]:
    try:
        suffixes = os.listdir(part_dir)
    except OSError:
        return
    for suffix in suffixes:
        try:
            hashes = os.listdir(part_dir / suffix)
        except OSError:
            continue
        for h in hashes:
            hash_dir = part_dir / suffix / h
            try:
                files = os.listdir(hash_dir)
            except OSError:
                continue
            yield part, h, hash_dir, files


__all__ = ["ChecksumError", "EtagMismatch", "ObjectReader", "ObjectStore", "QuorumError", "RingError",
           "ShortBody", "StoredObject", "TooLarge", "cleanup_hash_dir", "walk_objects"]
