"""The filesystem store: one file per image under ``<state_dir>/images`` (staging under ``staging/``).

Data is written to a hidden temporary name and renamed into place only when complete and synced,
so a reader never sees half an image; a failed or interrupted write removes its temporary file.
Hashing (MD5 for ``checksum``, SHA-512 for ``os_hash_value``) and disk writes run in a worker
thread on batches of a few MiB, so the event loop stays free and memory stays flat.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from cumulo.image.stores import StoreFull, Watcher, Written

BATCH = 4 << 20  # bytes handed to the writer thread at a time
READ = 4 << 20


class FilesystemStore:
    def __init__(self, root: Path, name: str = "file", description: str = "") -> None:
        self.name = name
        self.description = description or f"Filesystem store {name}"
        self.root = Path(root)
        self.staging = self.root / "staging"
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(parents=True, exist_ok=True)
        for stale in [*self.root.glob(".tmp-*"), *self.staging.glob(".tmp-*")]:
            stale.unlink(missing_ok=True)  # left by a process that died mid-write

    def path(self, key: str, staging: bool = False) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"bad image key {key!r}")
        return (self.staging if staging else self.root) / key

    async def write(self, key: str, chunks: AsyncIterator[bytes], limit: int | None = None,
                    staging: bool = False) -> Written:
        final = self.path(key, staging)
        tmp = final.with_name(f".tmp-{key}-{uuid.uuid4().hex[:8]}")
        md5, sha512 = hashlib.md5(usedforsecurity=False), hashlib.sha512()
        fh = open(tmp, "wb")  # noqa: SIM115 (closed in finally)
        size = 0
        pending: list[bytes] = []
        pending_size = 0

        def digest_md5(parts: list[bytes]) -> None:
            for part in parts:
                md5.update(part)

        def digest_sha_and_write(parts: list[bytes]) -> None:
            for part in parts:
                sha512.update(part)
                fh.write(part)

        async def flush(parts: list[bytes]) -> None:
            # hashlib and file writes release the GIL: the two digests run on two cores
            await asyncio.gather(asyncio.to_thread(digest_md5, parts), asyncio.to_thread(digest_sha_and_write, parts))

        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if limit is not None and size > limit:
                    raise StoreFull(f"the upload is larger than the {limit} bytes allowed")
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= BATCH:
                    parts, pending, pending_size = pending, [], 0
                    await flush(parts)
            await flush(pending)
            await asyncio.to_thread(self._sync_close, fh)
            os.replace(tmp, final)
        except BaseException:
            fh.close()
            tmp.unlink(missing_ok=True)
            raise
        return Written(size, md5.hexdigest(), sha512.hexdigest(), str(final))

    @staticmethod
    def _sync_close(fh: Any) -> None:
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()

    async def promote(self, key: str, watcher: Watcher | None = None, into: FilesystemStore | None = None) -> Written:
        """Move staged data into the store proper (or into the store ``into``), hashing it (and
        showing it to ``watcher``) on the way; if the watcher refuses, the data stays staged and
        nothing enters the store."""
        src = self.path(key, staging=True)
        target = into or self

        def run() -> Written:
            md5, sha512 = hashlib.md5(usedforsecurity=False), hashlib.sha512()
            size = 0
            with open(src, "rb") as fh:
                while block := fh.read(BATCH):
                    if watcher is not None:
                        watcher.feed(block)
                    md5.update(block)
                    sha512.update(block)
                    size += len(block)
            if watcher is not None:
                watcher.finish()
            final = target.path(key)
            if final.parent.stat().st_dev == src.parent.stat().st_dev:
                os.replace(src, final)
            else:  # another file system: copy under a hidden name, then rename into place
                tmp = final.with_name(f".tmp-{key}-{uuid.uuid4().hex[:8]}")
                try:
                    shutil.copyfile(src, tmp)
                    os.replace(tmp, final)
                finally:
                    tmp.unlink(missing_ok=True)
                src.unlink()
            return Written(size, md5.hexdigest(), sha512.hexdigest(), str(final))

        return await asyncio.to_thread(run)

    def size(self, key: str, staging: bool = False) -> int | None:
        try:
            return self.path(key, staging).stat().st_size
        except FileNotFoundError:
            return None

    async def open(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` (inclusive; None = to the end) of an image.

        The next block is read while the current one is being sent, so the disk and the network
        work at the same time."""
        fh = await asyncio.to_thread(open, self.path(key), "rb")
        pending: asyncio.Future[bytes] | None = None
        try:
            fd = fh.fileno()
            os.posix_fadvise(fd, start, 0, os.POSIX_FADV_SEQUENTIAL)
            position = start
            stop = None if end is None else end + 1

            def read_at(offset: int) -> bytes:
                want = READ if stop is None else min(READ, stop - offset)
                return os.pread(fd, want, offset) if want > 0 else b""

            pending = asyncio.ensure_future(asyncio.to_thread(read_at, position))
            while True:
                block = await pending
                if not block:
                    break
                position += len(block)
                pending = asyncio.ensure_future(asyncio.to_thread(read_at, position))
                yield block
        finally:
            if pending is not None and not pending.done():  # never close the fd under a running read
                await asyncio.gather(pending, return_exceptions=True)
            fh.close()

    async def delete(self, key: str, staging: bool = False) -> None:
        self.path(key, staging).unlink(missing_ok=True)

    def keys(self, staging: bool = False) -> set[str]:
        folder = self.staging if staging else self.root
        return {p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}
