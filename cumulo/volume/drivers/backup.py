"""Volume backups as chunks in a backup store: a volume's virtual disk is cut into fixed chunks
(4 MiB), an all-zero chunk is not stored, every other one is checksummed (sha256), compressed
(zstd) and written as one object; a manifest names, for each chunk, "zero" or its hash and object.

An incremental backup compares each chunk's hash with its parent's manifest and stores only the
chunks that changed; an unchanged one points at the object the parent uses (which may be the
grandparent's), so a backup that an incremental depends on must stay (the service refuses its
delete).  A restore reads the manifest, checks every chunk's hash after decompressing it (a
mismatch fails the restore, naming the chunk) and writes a qcow2.

The store is a small interface (``BackupStore``: put, get, exists, delete a prefix) so that an
object store (Swift's container ``volumebackups``, as Cinder's default driver) can take the
place of ``DirectoryStore``, whose keys are paths under ``[volume] backups_path``.  That
directory must be shared by the storage nodes (as Cinder's posix driver's is) for a backup made
on one node to be restored on another.

Reading a volume: ``qemu-img map`` tells which ranges hold data and where they are in the qcow2
file, so only those are read, straight from the file; an image whose data is not laid out plainly
(compressed clusters) or that a running server holds (``force``) is first converted to a sparse
raw file with ``qemu-img convert`` (``-U``: force-share, crash-consistent) and read the same way
through SEEK_DATA.  Chunks are read, hashed, compressed and written by a few threads: hashlib,
zstandard and the file reads release the GIL.  A restore writes the qcow2 itself
(``Qcow2Writer``), in one pass, without a raw copy.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import zstandard

CHUNK_SIZE = 4 * 1024 * 1024
FORMAT = "cumulo-backup-1"
MANIFEST = "manifest.json"
ZERO = "zero"
WORKERS = 4
ZSTD_LEVEL = 3
ZEROS = bytes(CHUNK_SIZE)


class BackupError(RuntimeError):
    """A backup or restore that cannot go on; its message is the fault the user reads."""


class BackupStore(Protocol):
    """Where a backup's objects live: keys are ``<container>/<backup id>/<name>``."""

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def keys(self, prefix: str) -> list[str]: ...


class DirectoryStore:
    """Objects as files under one directory; a file is written under a temporary name first, so an
    object under its final name is always complete."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _file(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(not p or p in (".", "..") or p.startswith(".") for p in parts):
            raise ValueError(f"not a backup object key: {key!r}")
        return self.path.joinpath(*parts)

    def put(self, key: str, data: bytes) -> None:
        target = self._file(key)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = target.with_name(f".{target.name}.{threading.get_ident()}.part")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # on disk before the manifest that names it
        os.replace(tmp, target)

    def get(self, key: str) -> bytes:
        try:
            return self._file(key).read_bytes()
        except FileNotFoundError:
            raise BackupError(f"the backup object {key} is missing from the backup store") from None

    def exists(self, key: str) -> bool:
        return self._file(key).is_file()

    def keys(self, prefix: str) -> list[str]:
        base = self._file(prefix)
        if not base.is_dir():
            return []
        return sorted(f"{prefix}/{p.name}" for p in base.iterdir() if p.is_file() and not p.name.startswith("."))

    def delete_prefix(self, prefix: str) -> int:
        base = self._file(prefix)
        if not base.is_dir():
            return 0
        count = 0
        for p in base.iterdir():
            p.unlink(missing_ok=True)
            count += 1
        with contextlib.suppress(OSError):
            base.rmdir()
        return count


@dataclass(frozen=True)
class BackupResult:
    """What a backup stored: ``object_count`` chunk objects of its own (plus the manifest),
    ``stored_bytes`` compressed; ``data_bytes`` the volume's non-zero data it read."""

    object_count: int
    stored_bytes: int
    data_bytes: int
    chunks: int
    zero_chunks: int
    reused_chunks: int


def prefix_of(container: str, backup_id: str) -> str:
    return f"{container}/{backup_id}"


def read_manifest(store: BackupStore, container: str, backup_id: str) -> dict[str, Any]:
    raw = store.get(f"{prefix_of(container, backup_id)}/{MANIFEST}")
    try:
        manifest: dict[str, Any] = json.loads(raw)
    except ValueError:
        raise BackupError(f"the manifest of backup {backup_id} is not JSON: the backup is damaged") from None
    if manifest.get("format") != FORMAT or manifest.get("backup_id") != backup_id:
        raise BackupError(f"the manifest of backup {backup_id} is not one of this cloud's backups")
    return manifest


# -- reading a volume's data ----------------------------------------------------------------------
@dataclass(frozen=True)
class Extent:
    start: int  # in the virtual disk
    length: int
    offset: int  # where those bytes are in the file read


def _run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BackupError(f"{args[0]} {args[1]} failed: {proc.stderr.strip()[:300]}")
    return proc.stdout


def qcow2_extents(path: Path) -> tuple[int, list[Extent]] | None:
    """(virtual size, the data extents and their offsets in the file), or None when some data is
    not stored plainly in the file (compressed clusters, a backing file) and must be converted."""
    info = json.loads(_run("qemu-img", "info", "--output=json", "-f", "qcow2", str(path)))
    if info.get("backing-filename"):
        return None
    out: list[Extent] = []
    for e in json.loads(_run("qemu-img", "map", "--output=json", "-f", "qcow2", str(path))):
        if not e.get("data") or e.get("zero"):
            continue
        if "offset" not in e or e.get("depth", 0) != 0:
            return None
        out.append(Extent(int(e["start"]), int(e["length"]), int(e["offset"])))
    return int(info["virtual-size"]), out


def raw_extents(fd: int, size: int) -> list[Extent]:
    """The data extents of a sparse raw file, by SEEK_DATA/SEEK_HOLE."""
    out: list[Extent] = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after pos
            break
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        out.append(Extent(start, end - start, start))
        pos = end
    return out


@contextlib.contextmanager
def volume_source(path: Path, scratch: Path, force_share: bool = False) -> Iterator[tuple[int, int, list[Extent]]]:
    """(an open fd, the virtual size, its data extents) of the qcow2 at ``path``: the file itself
    when its data is laid out plainly and nobody writes to it, else a sparse raw copy in
    ``scratch`` (removed after)."""
    plain = None if force_share else qcow2_extents(path)
    if plain is not None:
        fd = os.open(path, os.O_RDONLY)
        try:
            yield fd, plain[0], plain[1]
        finally:
            os.close(fd)
        return
    raw = scratch.with_name(f".{scratch.name}.raw")
    raw.unlink(missing_ok=True)
    try:
        _run("qemu-img", "convert", "-q", *(("-U",) if force_share else ()), "-f", "qcow2", "-O", "raw",
             str(path), str(raw))
        fd = os.open(raw, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            yield fd, size, raw_extents(fd, size)
        finally:
            os.close(fd)
    finally:
        raw.unlink(missing_ok=True)


def _chunk_extents(extents: list[Extent], chunk_size: int) -> dict[int, list[Extent]]:
    """The data extents cut at chunk boundaries, by chunk index (chunks with no data are absent)."""
    out: dict[int, list[Extent]] = {}
    for e in extents:
        pos, end = e.start, e.start + e.length
        while pos < end:
            index = pos // chunk_size
            stop = min(end, (index + 1) * chunk_size)
            out.setdefault(index, []).append(Extent(pos, stop - pos, e.offset + (pos - e.start)))
            pos = stop
    return out


# -- backup, restore, delete ----------------------------------------------------------------------
class BackupEngine:
    def __init__(self, store: BackupStore, chunk_size: int = CHUNK_SIZE, workers: int = WORKERS,
                 level: int = ZSTD_LEVEL) -> None:
        self.store, self.chunk_size, self.workers, self.level = store, chunk_size, workers, level
        self._local = threading.local()

    def _compressor(self) -> zstandard.ZstdCompressor:
        c = getattr(self._local, "c", None)
        if c is None:
            c = self._local.c = zstandard.ZstdCompressor(level=self.level)
        return c

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        d = getattr(self._local, "d", None)
        if d is None:
            d = self._local.d = zstandard.ZstdDecompressor()
        return d

    def backup(self, volume: Path, *, backup_id: str, volume_id: str, container: str,
               parent: tuple[str, str] | None = None, force_share: bool = False) -> BackupResult:
        """Back up the qcow2 ``volume`` as ``<container>/<backup_id>/``; ``parent`` (its container
        and id) makes it incremental.  The manifest is written last: a backup without one is
        incomplete and is deleted as a whole."""
        if self.store.exists(f"{prefix_of(container, backup_id)}/{MANIFEST}"):
            manifest = read_manifest(self.store, container, backup_id)  # done already: the same answer
            return BackupResult(**manifest["result"])
        base: list[Any] = []
        if parent is not None:
            pm = read_manifest(self.store, *parent)
            if pm["chunk_size"] != self.chunk_size:
                raise BackupError(f"the parent backup {parent[1]} has chunks of {pm['chunk_size']} bytes")
            base = pm["chunks"]
        prefix = prefix_of(container, backup_id)
        with volume_source(volume, volume.with_name(f"backup-{backup_id}"), force_share) as (fd, size, extents):
            count = -(-size // self.chunk_size)
            by_chunk = _chunk_extents(extents, self.chunk_size)

            def one(index: int) -> tuple[Any, int, int, bool]:
                """(manifest entry, bytes stored, data bytes read, reused) of chunk ``index``."""
                parts = by_chunk.get(index)
                previous = base[index] if index < len(base) else ZERO
                if not parts:
                    return ZERO, 0, 0, False
                length = min(self.chunk_size, size - index * self.chunk_size)
                buf = bytearray(length)
                view = memoryview(buf)
                read = 0
                for e in parts:
                    rel = e.start - index * self.chunk_size
                    got = os.preadv(fd, [view[rel:rel + e.length]], e.offset)
                    if got != e.length:
                        raise BackupError(f"short read of the volume at {e.start}: {got} of {e.length} bytes")
                    read += got
                if buf == (ZEROS if length == len(ZEROS) else bytes(length)):  # written zeros: not stored either
                    return ZERO, 0, read, False
                digest = hashlib.sha256(buf).hexdigest()
                if isinstance(previous, dict) and previous.get("sha256") == digest:
                    return previous, 0, read, True
                data = self._compressor().compress(buf)
                key = f"{prefix}/chunk-{index:08d}.zst"
                self.store.put(key, data)
                return {"sha256": digest, "object": key, "length": length, "stored": len(data)}, len(data), read, False

            with ThreadPoolExecutor(self.workers) as pool:
                results = list(pool.map(one, range(count)))
        chunks = [r[0] for r in results]
        result = BackupResult(
            object_count=sum(1 for r in results if r[1]), stored_bytes=sum(r[1] for r in results),
            data_bytes=sum(r[2] for r in results), chunks=count, zero_chunks=sum(1 for c in chunks if c == ZERO),
            reused_chunks=sum(1 for r in results if r[3]))
        manifest = {"format": FORMAT, "backup_id": backup_id, "volume_id": volume_id, "container": container,
                    "parent_id": parent[1] if parent else None, "virtual_size": size, "chunk_size": self.chunk_size,
                    "created_at": dt.datetime.now(dt.UTC).isoformat(), "result": result.__dict__, "chunks": chunks}
        self.store.put(f"{prefix}/{MANIFEST}", json.dumps(manifest, separators=(",", ":")).encode())
        return result

    def restore(self, container: str, backup_id: str, target: Path, size_bytes: int | None = None) -> int:
        """Write the backup as the qcow2 ``target`` (of ``size_bytes``, at least the backup's), under
        a temporary name first; every chunk's hash is checked.  Returns the bytes of data written."""
        manifest = read_manifest(self.store, container, backup_id)
        size, chunk_size = int(manifest["virtual_size"]), int(manifest["chunk_size"])
        part = target.with_name(f".{target.name}.restore.part")
        part.unlink(missing_ok=True)
        try:
            with Qcow2Writer(part, max(size, size_bytes or 0)) as image:

                def one(item: tuple[int, Any]) -> int:
                    index, entry = item
                    if entry == ZERO:
                        return 0
                    try:
                        data = self._decompressor().decompress(self.store.get(entry["object"]))
                    except zstandard.ZstdError as exc:
                        raise BackupError(f"chunk {index} of backup {backup_id} ({entry['object']}) is corrupt: "
                                          f"{exc}") from None
                    if len(data) != entry["length"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
                        raise BackupError(f"chunk {index} of backup {backup_id} ({entry['object']}) does not match "
                                          "its checksum: the backup is damaged")
                    image.write(index * chunk_size, data)
                    return len(data)

                with ThreadPoolExecutor(self.workers) as pool:
                    written = sum(pool.map(one, enumerate(manifest["chunks"])))
            os.replace(part, target)
            return written
        finally:
            part.unlink(missing_ok=True)

    def delete(self, container: str, backup_id: str) -> int:
        """Remove the backup's own objects (chunks it shares with a parent are the parent's)."""
        return self.store.delete_prefix(prefix_of(container, backup_id))

    def exists(self, container: str, backup_id: str) -> bool:
        return self.store.exists(f"{prefix_of(container, backup_id)}/{MANIFEST}")


# -- writing a qcow2 -------------------------------------------------------------------------------
class Qcow2Writer:
    """A new qcow2 (version 3, 64 KiB clusters, 16-bit refcounts, no backing file) written in one
    pass: data clusters are appended as they come (an all-zero cluster is left unallocated), and
    the tables (L2, L1, refcounts) and the header go at the end, when every cluster is known.
    That spares a restore the raw copy and the ``qemu-img convert`` it would otherwise take.
    ``write`` may be called from several threads, at cluster-aligned offsets."""

    CLUSTER_BITS = 16
    CLUSTER = 1 << CLUSTER_BITS
    L2_ENTRIES = CLUSTER // 8
    REFCOUNTS_PER_BLOCK = CLUSTER // 2  # refcount_order 4: 16 bits each
    COPIED = 1 << 63  # QCOW_OFLAG_COPIED: the cluster's refcount is exactly 1

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size = path, size
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.next = self.CLUSTER  # cluster 0 is the header
        self.l2: dict[int, int] = {}  # guest cluster -> host offset
        self.lock = threading.Lock()
        self._zero = bytes(self.CLUSTER)

    def __enter__(self) -> Qcow2Writer:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        try:
            if kind is None:
                self._finish()
        finally:
            os.close(self.fd)

    def write(self, offset: int, data: bytes) -> None:
        if offset % self.CLUSTER:
            raise ValueError("qcow2 writes must start on a cluster")
        view = memoryview(data)
        clusters = [i for i in range(0, len(data), self.CLUSTER) if view[i:i + self.CLUSTER] != self._zero[
            :min(self.CLUSTER, len(data) - i)]]
        if not clusters:
            return
        with self.lock:
            base = self.next
            self.next += len(clusters) * self.CLUSTER
            for n, i in enumerate(clusters):
                self.l2[(offset + i) >> self.CLUSTER_BITS] = base + n * self.CLUSTER
        buffers = [view[i:i + self.CLUSTER] for i in clusters]
        if len(buffers[-1]) < self.CLUSTER:  # the disk's last, partial cluster
            buffers[-1] = bytes(buffers[-1]) + bytes(self.CLUSTER - len(buffers[-1]))
        # runs of adjacent clusters go in one pwritev each
        start = 0
        for k in range(1, len(clusters) + 1):
            if k == len(clusters) or clusters[k] != clusters[k - 1] + self.CLUSTER:
                os.pwritev(self.fd, buffers[start:k], base + start * self.CLUSTER)
                start = k

    def _finish(self) -> None:
        import struct

        c = self.CLUSTER
        guest_clusters = -(-self.size // c)
        l1_size = max(1, -(-guest_clusters // self.L2_ENTRIES))
        tables = sorted({g // self.L2_ENTRIES for g in self.l2})
        pos = self.next
        l2_offsets = {t: pos + n * c for n, t in enumerate(tables)}
        pos += len(tables) * c
        l1_offset, l1_clusters = pos, -(-l1_size * 8 // c)
        pos += l1_clusters * c
        # the refcount blocks cover every cluster, themselves and their table included
        used = pos // c
        blocks = table = 0
        while True:
            total = used + blocks + table
            need_blocks = -(-total // self.REFCOUNTS_PER_BLOCK)
            need_table = -(-need_blocks * 8 // c)
            if (need_blocks, need_table) == (blocks, table):
                break
            blocks, table = need_blocks, need_table
        rt_offset = pos
        rb_offset = rt_offset + table * c
        total = used + blocks + table
        for t in tables:  # the L2 tables
            l2 = bytearray(c)
            for g in range(t * self.L2_ENTRIES, (t + 1) * self.L2_ENTRIES):
                host = self.l2.get(g)
                if host is not None:
                    struct.pack_into(">Q", l2, (g - t * self.L2_ENTRIES) * 8, host | self.COPIED)
            os.pwrite(self.fd, bytes(l2), l2_offsets[t])
        l1 = bytearray(l1_clusters * c)
        for t, off in l2_offsets.items():
            struct.pack_into(">Q", l1, t * 8, off | self.COPIED)
        os.pwrite(self.fd, bytes(l1), l1_offset)
        rt = bytearray(table * c)
        for b in range(blocks):
            struct.pack_into(">Q", rt, b * 8, rb_offset + b * c)
        os.pwrite(self.fd, bytes(rt), rt_offset)
        one = struct.pack(">H", 1)
        refcounts = bytearray(blocks * c)
        refcounts[:total * 2] = one * total  # every cluster up to the end is used exactly once
        os.pwrite(self.fd, bytes(refcounts), rb_offset)
        header = struct.pack(">IIQIIQIIQQIIQQQQII", 0x514649FB, 3, 0, 0, self.CLUSTER_BITS, self.size, 0, l1_size,
                             l1_offset, rt_offset, table, 0, 0, 0, 0, 0, 4, 104)
        os.pwrite(self.fd, header + bytes(8), 0)  # then the end of the header extensions
        os.ftruncate(self.fd, (rb_offset + blocks * c))
        os.fsync(self.fd)
