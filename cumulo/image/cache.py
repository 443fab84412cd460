"""The image cache and its admin API (Glance's /v2/cache, Image API 2.14).

The cache is a directory, ``<state_dir>/image-cache``, of whole copies of active images, with one
``image_cache_entry`` row per image (queued, caching or cached; its hits and times).  An admin
queues an image (PUT /v2/cache/{id}); a background copy from the image's store fills the entry,
and downloads of a cached image are then read from the cache's copy (each one a hit).  As in
Glance, only the prefetch queue fills the cache here: a download of an image that is not cached
does not cache it.  Every store of this cloud is a local directory too, so today the cache saves
no network trip; it is what a remote store would sit behind.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.db import Database, utcnow
from cumulo.core.http.app import JSON, Router, auth_of, no_content
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, NotFound
from cumulo.image.models import Image, ImageCacheEntry
from cumulo.image.stores.filesystem import FilesystemStore

LOG = logging.getLogger(__name__)
STALE = dt.timedelta(minutes=10)


class ImageCache:
    def __init__(self, db: Database, root: Path, svc: Any) -> None:
        # svc: the ImageService (not imported here: it imports this module)
        self.db, self.svc = db, svc
        self.store = FilesystemStore(root, "cache", "The image cache")
        self._filling: set[str] = set()
        self._started = False  # the first reconcile of this process restarts every unfinished copy

    async def entries(self) -> tuple[list[ImageCacheEntry], list[str]]:
        """The cached images, and the ids still queued (or being copied)."""
        async with self.db.session() as s:
            rows = list((await s.execute(select(ImageCacheEntry).order_by(ImageCacheEntry.last_modified))).scalars())
        return [r for r in rows if r.status == "cached"], [r.image_id for r in rows if r.status != "cached"]

    async def has(self, image_id: str) -> bool:
        async with self.db.session() as s:
            return await s.get(ImageCacheEntry, image_id) is not None

    async def queue(self, image_id: str) -> None:
        async with self.db.session() as s:
            if await s.get(ImageCacheEntry, image_id) is None:
                s.add(ImageCacheEntry(image_id=image_id, status="queued"))
        self._start(image_id)

    def _start(self, image_id: str) -> None:
        if image_id not in self._filling:
            self._filling.add(image_id)
            self.svc._spawn(self._fill(image_id))

    async def _fill(self, image_id: str) -> None:
        """Copy the image's data into the cache (the prefetcher)."""
        try:
            async with self.db.session() as s:
                entry = await s.get(ImageCacheEntry, image_id)
                image = await s.get(Image, image_id)
                if entry is None or entry.status == "cached":
                    return
                entry.status, entry.last_modified = "caching", utcnow()
            source = self.svc.data_store(image) if image is not None and image.status == "active" else None
            if source is None:
                raise RuntimeError("the image is not active or has no data")
            written = await self.store.write(image_id, source.open(image_id))
            if image is not None and image.os_hash_value and written.sha512 != image.os_hash_value:
                raise RuntimeError("the cached copy does not match the image's hash")
            async with self.db.session() as s:
                result = await s.execute(update(ImageCacheEntry).where(ImageCacheEntry.image_id == image_id).values(
                    status="cached", size=written.size, last_modified=utcnow(), last_accessed=utcnow()))
            if result.rowcount != 1:  # taken off the queue meanwhile
                await self.store.delete(image_id)
        except Exception as exc:
            LOG.warning("caching image %s failed: %s", image_id, exc)
            await self.store.delete(image_id)
            async with self.db.session() as s:
                await s.execute(delete(ImageCacheEntry).where(ImageCacheEntry.image_id == image_id))
        finally:
            self._filling.discard(image_id)

    async def serving(self, image: Image) -> FilesystemStore | None:
        """The cache, when it holds the image (counting a hit), else None."""
        async with self.db.session() as s:
            result = await s.execute(update(ImageCacheEntry).where(
                ImageCacheEntry.image_id == image.id, ImageCacheEntry.status == "cached").values(
                hits=ImageCacheEntry.hits + 1, last_accessed=utcnow()))
        if result.rowcount == 1 and self.store.size(image.id) is not None:
            return self.store
        return None

    async def forget(self, image_id: str) -> None:
        async with self.db.session() as s:
            await s.execute(delete(ImageCacheEntry).where(ImageCacheEntry.image_id == image_id))
        await self.store.delete(image_id)

    async def clear(self, cached: bool, queued: bool) -> dict[str, int]:
        cached_rows, queued_ids = await self.entries()
        out = {}
        if cached:
            for row in cached_rows:
                await self.forget(row.image_id)
            out["cache_deleted"] = len(cached_rows)
        if queued:
            for image_id in queued_ids:
                await self.forget(image_id)
            out["queue_deleted"] = len(queued_ids)
        return out

    async def reconcile(self, live: set[str]) -> int:
        """Remove cached files of no cached entry (or of deleted images); restart the copies that
        no one is making: all of them when this process starts, later those untouched for
        ``STALE`` (their process stopped; another API worker may be making a younger one)."""
        async with self.db.session() as s:
            rows = list((await s.execute(select(ImageCacheEntry))).scalars())
        removed, now, starting = 0, utcnow(), not self._started
        self._started = True
        known = {r.image_id for r in rows if r.image_id in live}
        for key in self.store.keys() - known:
            await self.store.delete(key)
            removed += 1
        for row in rows:
            if row.image_id not in live:
                await self.forget(row.image_id)
            elif row.status != "cached" and row.image_id not in self._filling and (
                    starting or row.last_modified < now - STALE):
                self._start(row.image_id)
        return removed


def entry_view(e: ImageCacheEntry) -> dict[str, Any]:
    return {"image_id": e.image_id, "hits": e.hits, "last_accessed": e.last_accessed.timestamp(),
            "last_modified": e.last_modified.timestamp(), "size": e.size}


def router(svc: Any) -> Router:
    """The /v2/cache routes over ``svc``, the ImageService."""
    r = Router()

    @r.get("/v2/cache")
    async def list_cache(request: Request) -> Response:
        authorize(request, "cache_list")
        cached, queued = await svc.cache.entries()
        return JSON({"cached_images": [entry_view(e) for e in cached], "queued_images": queued})

    @r.put("/v2/cache/{image_id}")
    async def queue_image(request: Request) -> Response:
        image_id = request.path_params["image_id"]
        try:
            image = await svc.get(image_id, svc.caller(auth_of(request)))
        except NotFound:
            raise NotFound(f"Image {image_id} not found.") from None
        authorize(request, "cache_image", {"project_id": image.owner, "owner": image.owner})
        if image.status != "active":
            raise BadRequest("Only images with status active can be targeted for queueing")
        await svc.cache.queue(image.id)
        return Response(status_code=202)

    @r.delete("/v2/cache/{image_id}")
    async def delete_entry(request: Request) -> Response:
        image_id = request.path_params["image_id"]
        target: dict[str, Any] = {}
        try:
            image = await svc.get(image_id, svc.caller(auth_of(request)))
            target = {"project_id": image.owner, "owner": image.owner}
        except NotFound:
            if not await svc.cache.has(image_id):
                raise NotFound(f"Image {image_id} not found.") from None
        authorize(request, "cache_delete", target)
        await svc.cache.forget(image_id)
        return no_content()

    @r.delete("/v2/cache")
    async def clear_cache(request: Request) -> Response:
        authorize(request, "cache_delete")
        target = request.headers.get("x-image-cache-clear-target", "").strip().lower()
        if target not in ("", "cache", "queue"):
            raise BadRequest("If provided 'x-image-cache-clear-target' must be 'cache', 'queue' or empty string.")
        await svc.cache.clear(cached=target in ("", "cache"), queued=target in ("", "queue"))
        return no_content()

    return r


__all__ = ["ImageCache", "router"]
