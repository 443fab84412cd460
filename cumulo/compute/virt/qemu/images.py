"""The node's base-image cache: each image downloaded once from the image service (as the user who
boots it), verified against the hash the image service recorded, then shared read-only by every
overlay built on it.  Bases no instance uses are removed after a configurable age."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import httpx

LOG = logging.getLogger(__name__)


class ImageCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, asyncio.Lock] = {}
        for stale in self.root.glob("*.part"):  # a download cut short by a restart
            stale.unlink(missing_ok=True)

    def path(self, image_id: str) -> Path:
        return self.root / image_id

    async def fetch(self, image_id: str, image_url: str, token: str) -> tuple[Path, dict[str, Any]]:
        """The cached file and the image's record, downloading it if this node has not yet."""
        lock = self._locks.setdefault(image_id, asyncio.Lock())
        async with lock:
            target = self.path(image_id)
            meta_file = target.with_suffix(".json")
            if target.exists() and meta_file.exists():
                os.utime(target)  # in use: not stale
                import json

                return target, json.loads(meta_file.read_text())
            if not image_url or not token:
                raise RuntimeError(f"image {image_id} is not cached on this node and no image service credentials "
                                   "came with the request")
            url = f"{image_url.rstrip('/')}/v2/images/{image_id}"
            headers = {"X-Auth-Token": token}
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
                part = target.with_suffix(".part")
                started = time.monotonic()
                with open(part, "wb") as out:
                    async with client.stream("GET", f"{url}/file", headers=headers) as resp:
                        if resp.status_code != 200:
                            raise RuntimeError(f"image {image_id}: download answered {resp.status_code}")
                        async for chunk in resp.aiter_bytes(1 << 20):
                            digest.update(chunk)
                            out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            if expected and digest.hexdigest() != expected:
                part.unlink(missing_ok=True)
                raise RuntimeError(f"image {image_id}: the download does not match its {algo} hash")
            part.chmod(0o444)
            os.replace(part, target)
            import json

            keep = {k: meta.get(k) for k in ("disk_format", "size", "virtual_size", "min_ram", "name")}
            keep["properties"] = {k: v for k, v in meta.items() if k in ("kernel_id", "ramdisk_id", "kernel_args")}
            meta_file.write_text(json.dumps(keep))
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
