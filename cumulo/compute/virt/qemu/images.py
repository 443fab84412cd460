"""The node's base-image cache: each image downloaded once from the image service (as the user who
boots it), verified against the hash the image service recorded, then shared read-only by every
overlay built on it.  Bases no instance uses are removed after a configurable age.

Nothing reaches QEMU unchecked (the class of CVE-2024-32498): while a base downloads, the image
service's format inspection runs again on its bytes, and before it enters the cache ``qemu-img info``
(with a timeout and resource limits) must agree that it is the image's ``disk_format``, with no
backing file, no external data file and, for a VMDK, no extent outside itself.  A base cached
before these checks existed is checked the same way before its first use.  A refused image fails
the build with a fault that says why.  Hashing, writing and fsync run in worker threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from cumulo.core.format_inspector import ImageRefused, Inspection, inspect_file, qemu_format

LOG = logging.getLogger(__name__)
FETCH_RETRY_FOR = 60.0  # seconds a download is retried while the image service cannot be reached
INSPECTED = 1  # the version of the checks a cached base passed (recorded in its .json)
BATCH = 4 << 20  # bytes handed to the writer thread at a time
QEMU_IMG_LIMITS = ["prlimit", "--as=1073741824", "--cpu=30", "--"]  # as Nova limits qemu-img info


class ImageUnacceptable(RuntimeError):
    """The image must not be given to QEMU; the message (the server's fault) says why."""


async def run_helper(cmd: list[str], timeout: float) -> tuple[int, bytes, bytes]:
    """Run a helper program (qemu-img, cp, genisoimage) to its end: its exit status, output and
    errors; past ``timeout`` seconds it and anything it started are killed and TimeoutError raised."""
    proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    return proc.returncode or 0, out, err


async def qemu_img_info(path: Path, timeout: float) -> dict[str, Any]:
    """``qemu-img info --output=json`` of ``path``, letting qemu-img probe the format itself."""
    cmd = ["qemu-img", "info", "--output=json", str(path)]
    if shutil.which("prlimit"):
        cmd = QEMU_IMG_LIMITS + cmd
    try:
        returncode, out, err = await run_helper(cmd, timeout)
    except TimeoutError:
        raise ImageUnacceptable(f"qemu-img info did not answer within {timeout:g} s") from None
    if returncode != 0:
        raise ImageUnacceptable(f"qemu-img info failed: {err.decode(errors='replace').strip()[-300:]}")
    try:
        info = json.loads(out)
    except ValueError:
        raise ImageUnacceptable("qemu-img info gave no readable answer") from None
    if not isinstance(info, dict):
        raise ImageUnacceptable("qemu-img info gave no readable answer")
    return info


def judge_qemu_info(info: dict[str, Any], path: Path, disk_format: str | None) -> None:
    """Refuse what qemu-img sees that the image must not be: another format, a backing file, an
    external data file, a VMDK reading other files."""
    expected = qemu_format(disk_format)
    seen = info.get("format")
    if seen != expected:
        raise ImageUnacceptable(f"qemu-img reads it as {seen}, but its disk_format {disk_format} means {expected}")
    backing = info.get("full-backing-filename") or info.get("backing-filename")
    if backing:
        raise ImageUnacceptable(f"qemu-img finds a backing file ({backing!r:.120})")
    specific = (info.get("format-specific") or {}).get("data") or {}
    if specific.get("data-file"):
        raise ImageUnacceptable(f"qemu-img finds an external data file ({specific['data-file']!r:.120})")
    if seen == "vmdk":
        kind = specific.get("create-type")
        if kind not in ("monolithicSparse", "streamOptimized"):
            raise ImageUnacceptable(f"it is a VMDK of type {kind!r}: only monolithicSparse and streamOptimized")
        own = os.path.realpath(path)
        for extent in specific.get("extents") or []:
            name = extent.get("filename") if isinstance(extent, dict) else None
            if not name or os.path.realpath(name) != own:
                raise ImageUnacceptable(f"its VMDK extent {name!r:.120} is another file")


class ImageCache:
    def __init__(self, root: Path, qemu_img_timeout: float = 30.0) -> None:
        self.root = root
        self.qemu_img_timeout = qemu_img_timeout
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, asyncio.Lock] = {}
        for stale in self.root.glob("*.part"):  # a download cut short by a restart
            stale.unlink(missing_ok=True)

    def path(self, image_id: str) -> Path:
        return self.root / image_id

    async def check(self, image_id: str, path: Path, disk_format: str | None,
                    inspection: Inspection | None = None) -> None:
        """Both checks on a file: the format inspection (already fed, or read from the file's
        headers now) and then qemu-img's own reading."""
        try:
            if inspection is not None:
                inspection.finish()
            else:
                await asyncio.to_thread(inspect_file, path, disk_format)
            judge_qemu_info(await qemu_img_info(path, self.qemu_img_timeout), path, disk_format)
        except (ImageRefused, ImageUnacceptable) as exc:
            LOG.warning("image %s refused before use: %s", image_id, exc)
            raise ImageUnacceptable(f"Image {image_id} is not acceptable: {exc}") from None

    async def fetch(self, image_id: str, image_url: str, token: str) -> tuple[Path, dict[str, Any]]:
        """The cached file and the image's record, downloading it if this node has not yet."""
        lock = self._locks.setdefault(image_id, asyncio.Lock())
        async with lock:
            target = self.path(image_id)
            meta_file = target.with_suffix(".json")
            if target.exists() and meta_file.exists():
                keep: dict[str, Any] = json.loads(await asyncio.to_thread(meta_file.read_text))
                if keep.get("inspected") != INSPECTED:  # cached before bases were checked
                    try:
                        await self.check(image_id, target, keep.get("disk_format"))
                    except ImageUnacceptable:
                        target.unlink(missing_ok=True)
                        meta_file.unlink(missing_ok=True)
                        raise
                    keep["inspected"] = INSPECTED
                    await asyncio.to_thread(meta_file.write_text, json.dumps(keep))
                os.utime(target)  # in use: not stale
                return target, keep
            if not image_url or not token:
                raise RuntimeError(f"image {image_id} is not cached on this node and no image service credentials "
                                   "came with the request")
            part = target.with_suffix(".part")
            deadline = time.monotonic() + FETCH_RETRY_FOR
            while True:
                try:
                    return await self._download(image_id, image_url, token, part, target, meta_file)
                except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                    # the image service is restarting (a controller restart mid-build): try again a while
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"image {image_id}: the image service at {image_url} cannot be "
                                           f"reached ({exc or type(exc).__name__})") from None
                    LOG.info("image %s: the image service is not answering (%s); trying again", image_id,
                             exc or type(exc).__name__)
                    await asyncio.sleep(1.0)
                finally:
                    part.unlink(missing_ok=True)

    async def _download(self, image_id: str, image_url: str, token: str, part: Path, target: Path,
                        meta_file: Path) -> tuple[Path, dict[str, Any]]:
        url = f"{image_url.rstrip('/')}/v2/images/{image_id}"
        headers = {"X-Auth-Token": token}
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=300.0)) as client:
            r = await client.get(url, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"image {image_id}: the image service answered {r.status_code}")
            meta = r.json()
            if meta.get("status") != "active":
                raise RuntimeError(f"image {image_id} is {meta.get('status')}, not active")
            algo = meta.get("os_hash_algo") or "md5"
            expected = meta.get("os_hash_value") if meta.get("os_hash_algo") else meta.get("checksum")
            digest = hashlib.new(algo)
            inspection = Inspection(meta.get("disk_format"))  # the data must be its disk_format, whatever wraps it
            out = await asyncio.to_thread(open, part, "wb")

            def write(parts: list[bytes]) -> None:
                for chunk in parts:
                    digest.update(chunk)
                    out.write(chunk)

            def sync_close() -> None:
                out.flush()
                os.fsync(out.fileno())
                out.close()

            try:
                async with client.stream("GET", f"{url}/file", headers=headers) as resp:
                    if resp.status_code != 200:
                        raise RuntimeError(f"image {image_id}: download answered {resp.status_code}")
                    pending: list[bytes] = []
                    size = 0
                    async for chunk in resp.aiter_bytes(1 << 20):
                        inspection.feed(chunk)
                        pending.append(chunk)
                        size += len(chunk)
                        if size >= BATCH:
                            batch, pending, size = pending, [], 0
                            await asyncio.to_thread(write, batch)
                    await asyncio.to_thread(write, pending)
                await asyncio.to_thread(sync_close)
            except ImageRefused as exc:
                LOG.warning("image %s refused while downloading: %s", image_id, exc)
                raise ImageUnacceptable(f"Image {image_id} is not acceptable: {exc}") from None
            finally:
                out.close()
        if expected and digest.hexdigest() != expected:
            raise RuntimeError(f"image {image_id}: the download does not match its {algo} hash")
        await self.check(image_id, part, meta.get("disk_format"), inspection)
        part.chmod(0o444)
        os.replace(part, target)
        keep = {k: meta.get(k) for k in ("disk_format", "size", "virtual_size", "min_ram", "name")}
        keep["properties"] = {k: v for k, v in meta.items() if k in ("kernel_id", "ramdisk_id", "kernel_args")}
        keep["inspected"] = INSPECTED
        await asyncio.to_thread(meta_file.write_text, json.dumps(keep))
        LOG.info("cached image %s (%s bytes) in %.1f s", image_id, meta.get("size"), time.monotonic() - started)
        return target, keep

    def clean(self, in_use: set[str], max_age: float) -> list[str]:
        """Remove bases no instance uses that were last used more than ``max_age`` seconds ago."""
        removed = []
        now = time.time()
        for f in self.root.iterdir():
            if f.suffix or f.name in in_use:
                continue
            if now - f.stat().st_mtime > max_age:
                f.unlink(missing_ok=True)
                f.with_suffix(".json").unlink(missing_ok=True)
                removed.append(f.name)
        return removed
