"""The interoperable image import (Glance's /v2/images/{id}/import): ``glance-direct`` (staged
data), ``web-download`` (data fetched from a URL) and ``copy-image`` (an active image's data copied
into more stores).  Each import is a task (GET /v2/tasks/{id}, /v2/images/{id}/tasks) that runs in
the background: ``processing`` -> ``success`` or ``failure`` with a message; while it runs the task's
message says how much was copied, and the image's ``os_glance_importing_to_stores`` names the stores
still to come (``os_glance_failed_import`` those that failed), as Glance shows them.

Flow of glance-direct and web-download: (fetch into the staging area) -> (convert, when
``[image] import_convert_to`` says so) -> promote into the first target store with the format
inspection -> copy into the other target stores -> active.  A failure puts the image back to
``queued`` with nothing kept (``all_stores_must_succeed: false`` keeps the stores that worked).

``web-download`` fetches only from URLs an operator allowed (``[image] web_download_allowed``: URL
prefixes; empty turns the method off); a redirect is followed only to an allowed URL, at most
``MAX_REDIRECTS`` times; the body is bounded by the caller (the image size cap and the project's
quota), so a server that sends more is cut off.  Conversion runs ``qemu-img convert`` on staged
data that the format inspection has already passed (no backing or data files), so QEMU opens only
that one file.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from sqlalchemy import or_, update

from cumulo.core.db import utcnow
from cumulo.core.format_inspector import ImageRefused, Inspection
from cumulo.core.http.faults import BadRequest, Conflict, PayloadTooLarge
from cumulo.image.models import Image, ImageTask
from cumulo.image.stores import StoreFull

LOG = logging.getLogger(__name__)
MIB = 1 << 20
PROGRESS_EVERY = 1.0  # seconds between two progress messages of a running task

MAX_REDIRECTS = 5
IMPORTING_KEY, FAILED_KEY = "os_glance_importing_to_stores", "os_glance_failed_import"
CONVERTIBLE = ("qcow2", "vmdk", "vhd", "vhdx", "vdi")
QEMU_FORMATS = {"vhd": "vpc"}  # qemu-img's name for a disk format, where it differs


@dataclass
class ImportRequest:
    """What POST /v2/images/{id}/import asks, checked by the API: the method, its URL
    (web-download), the target stores (None: the default store, or all of them with
    ``all_stores``) and whether one failed store fails the whole import."""

    method: str
    uri: str | None = None
    stores: list[str] | None = None
    all_stores: bool = False
    all_stores_must_succeed: bool = True


class FetchFailed(Exception):
    """The URL did not give the image data (an HTTP error, a refused redirect, no connection)."""


def allowed(uri: object, prefixes: list[str]) -> bool:
    """Whether ``uri`` is an http(s) URL that starts with one of the operator's ``prefixes``."""
    if not isinstance(uri, str) or len(uri) > 2048:
        return False
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return False
    for prefix in prefixes:
        allowed_parts = urlsplit(prefix)
        # scheme, host and port compared as parsed (so "http://127.0.0.1" does not admit
        # "http://127.0.0.1.example.com"), then the path as a prefix
        if (allowed_parts.scheme == parts.scheme and allowed_parts.hostname == parts.hostname
                and _port(allowed_parts.scheme, allowed_parts.port) == _port(parts.scheme, port)
                and parts.path.startswith(allowed_parts.path or "/")):
            return True
    return False


def _port(scheme: str, port: int | None) -> int:
    return port if port is not None else (443 if scheme == "https" else 80)


async def fetch(uri: str, prefixes: list[str], progress: Callable[[int], object] | None = None,
                timeout: float = 30.0) -> AsyncIterator[bytes]:
    """The body of ``uri`` in chunks (``progress`` is told the bytes so far); redirects are followed
    only to allowed URLs.  The caller bounds the size (the store's write limit)."""
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        url = uri
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with client.stream("GET", url) as response:
                    if response.is_redirect:
                        target = urljoin(url, response.headers.get("location", ""))
                        if not allowed(target, prefixes):
                            raise FetchFailed(f"{url} redirects to {target}, which is not an allowed URL")
                        url = target
                        continue
                    if response.status_code != 200:
                        raise FetchFailed(f"{url} answered HTTP {response.status_code}")
                    total = 0
                    async for chunk in response.aiter_bytes():
                        total += len(chunk)
                        if progress is not None:
                            progress(total)
                        yield chunk
                    return
            except httpx.HTTPError as exc:
                raise FetchFailed(f"{url} could not be read: {exc}") from None
        raise FetchFailed(f"{uri} redirects more than {MAX_REDIRECTS} times")


async def convert(source: Path, disk_format: str, output_format: str, target: Path) -> None:
    """``qemu-img convert`` of ``source`` (in ``disk_format``) to ``target`` in ``output_format``
    (RuntimeError with qemu-img's words when it fails; ``target`` is then removed)."""
    proc = await asyncio.create_subprocess_exec(
        "qemu-img", "convert", "-f", QEMU_FORMATS.get(disk_format, disk_format), "-O", output_format,
        str(source), str(target), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        target.unlink(missing_ok=True)
        raise RuntimeError(f"qemu-img convert failed: {err.decode(errors='replace').strip()[:500]}")


class Importer:
    """Starts and runs the imports of one image service (``svc``, the ImageService: not imported
    here, as it imports this module)."""

    def __init__(self, svc: Any) -> None:
        self.svc = svc

    # -- the checks of POST /v2/images/{id}/import, in Glance's order and words ---------------
    def targets(self, image: Image, request: ImportRequest) -> list[str]:
        svc = self.svc
        names = list(svc.stores) if request.all_stores else list(dict.fromkeys(request.stores or [svc.store.name]))
        unknown = [n for n in names if n not in svc.stores]
        if unknown:
            raise Conflict(f"Store {unknown[0]} is not available: this cloud's stores are {', '.join(svc.stores)}.")
        if request.method == "copy-image":
            present = set(svc.stores_of(image))
            if request.all_stores:
                return [n for n in names if n not in present]
            for name in names:
                if name in present:
                    raise BadRequest(f"Image is already present at store '{name}'")
        return names

    async def start(self, image: Image, who: Any, request: ImportRequest, request_id: str | None
                    ) -> ImageTask | None:
        svc, method = self.svc, request.method
        if method != "copy-image":  # copy-image is allowed by its own policy (copy_image, an admin's)
            svc.must_own(image, who)
        if method not in svc.import_methods:
            raise BadRequest(f"Import method {method} is not enabled in this cloud: use "
                             f"{', '.join(svc.import_methods)}.")
        room = await svc.bytes_allowed(image.owner, "image_size_total", Image.size, image.id)
        if room is not None and room <= 0:
            raise PayloadTooLarge(f"Project {image.owner} is at its image_size_total quota.")
        if image.status == "active" and method != "copy-image":
            raise Conflict("Image with status active cannot be target for import")
        if image.status != "active" and method == "copy-image":
            raise Conflict("Only images with status active can be targeted for copying")
        if method == "web-download" and image.status != "queued":
            raise Conflict(f"Image needs to be in 'queued' state to use '{method}' method")
        if method == "glance-direct" and (image.status != "uploading"
                                          or svc.store.size(image.id, staging=True) is None):
            raise Conflict("Image needs to be staged before 'glance-direct' method can be used")
        if not image.container_format:
            raise Conflict("'container_format' needs to be set before import")
        if not image.disk_format:
            raise Conflict("'disk_format' needs to be set before import")
        targets = self.targets(image, request)
        if not targets:
            return None  # copy-image with all_stores: the data is in every store already
        if method == "web-download" and not allowed(request.uri, svc.web_download_allowed):
            raise BadRequest(f"URI for web-download does not pass filtering: {request.uri}")
        if method == "glance-direct":
            staged = svc.store.size(image.id, staging=True) or 0
            if room is not None and staged > room:
                raise PayloadTooLarge(f"The image data exceeds the image_size_total quota of project {image.owner}.")
            await svc._claim(image, ("uploading",), "importing")
        elif method == "web-download":
            await svc._claim(image, ("queued",), "importing")
        else:
            await self.lock(image)
        body: dict[str, Any] = {"method": {"name": method, **({"uri": request.uri} if request.uri else {})}}
        if request.stores is not None:
            body["stores"] = request.stores
        if request.all_stores:
            body["all_stores"] = True
        body["all_stores_must_succeed"] = request.all_stores_must_succeed
        task = ImageTask(id=str(uuid.uuid4()), image_id=image.id, owner=who.project_id or image.owner,
                         type="api_image_import", status="processing", request_id=request_id, user_id=who.user_id,
                         input={"image_id": image.id, "import_req": body, "backend": targets})
        async with svc.db.session() as s:
            s.add(task)
        await svc.set_import_properties(image.id, **{IMPORTING_KEY: ",".join(targets), FAILED_KEY: ""})
        run = self.copy if method == "copy-image" else self.run
        svc._spawn(self.guarded(run, image, task.id, request, targets))
        return task

    async def lock(self, image: Image) -> None:
        """The lease on an active image that one copy-image holds while it runs (Glance's import
        lock): a second operation meanwhile is a 409."""
        svc, now = self.svc, utcnow()
        async with svc.db.session() as s:
            result = await s.execute(update(Image).where(
                Image.id == image.id, Image.status == "active",
                or_(Image.lease_owner.is_(None), Image.lease_until < now)).values(
                lease_owner=svc.instance, lease_until=now + svc.lease))
        if result.rowcount != 1:
            raise Conflict(f"New operation on image '{image.id}' is not permitted as prior operation is still "
                           "in progress")

    # -- the background part ------------------------------------------------------------------
    async def guarded(self, run: Any, image: Image, task_id: str, request: ImportRequest, targets: list[str]) -> None:
        """Run the import holding the image's lease; the task ends in success or failure."""
        stop = asyncio.Event()
        renew = asyncio.get_running_loop().create_task(self.svc._renew(image.id, stop))
        try:
            result = await run(image, task_id, request, targets)
            await self.finish(task_id, "success", "", {"image_id": image.id, **(result or {})})
        except Exception as exc:
            if isinstance(exc, (ImageRefused, FetchFailed, StoreFull, RuntimeError)):
                LOG.warning("import of image %s failed: %s", image.id, exc)
            else:
                LOG.exception("import of image %s failed", image.id)
            await self.finish(task_id, "failure", str(exc) or type(exc).__name__, None)
        finally:
            stop.set()
            await renew

    async def finish(self, task_id: str, status: str, message: str, result: dict[str, Any] | None) -> None:
        async with self.svc.db.session() as s:
            await s.execute(update(ImageTask).where(ImageTask.id == task_id).values(
                status=status, message=message[:1024], result=result, updated_at=utcnow()))

    async def progress(self, task_id: str, copied: int) -> None:
        async with self.svc.db.session() as s:
            await s.execute(update(ImageTask).where(ImageTask.id == task_id).values(
                message=f"Copied {copied // MIB} MiB", updated_at=utcnow()))

    async def counted(self, task_id: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The chunks, with the task's message saying how much has passed, about once a second."""
        copied, last = 0, time.monotonic()
        async for chunk in chunks:
            copied += len(chunk)
            if time.monotonic() - last >= PROGRESS_EVERY:
                last = time.monotonic()
                await self.progress(task_id, copied)
            yield chunk
        await self.progress(task_id, copied)

    async def run(self, image: Image, task_id: str, request: ImportRequest, targets: list[str]) -> dict[str, Any]:
        """glance-direct and web-download: stage (fetch), convert, promote, copy, activate."""
        svc = self.svc
        done: list[str] = []
        try:
            if request.method == "web-download":
                await self.download(image, task_id, str(request.uri))
            extra = await self.convert(image)
            inspection = Inspection(image.disk_format, image.container_format, svc.require_format_match)
            written = await svc.store.promote(image.id, inspection, into=svc.stores[targets[0]])
            done.append(targets[0])
            failed = []
            for name in targets[1:]:
                try:
                    await self.copy_into(image, svc.stores[targets[0]], name, task_id)
                    done.append(name)
                except Exception as exc:
                    if request.all_stores_must_succeed:
                        raise
                    LOG.warning("import of image %s into store %s failed: %s", image.id, name, exc)
                    failed.append(name)
            assert inspection.verdict is not None
            await svc._activate(image, written, inspection.verdict, done, extra)
            await svc.set_import_properties(image.id, **{IMPORTING_KEY: "", FAILED_KEY: ",".join(failed)})
            return {}
        except BaseException:
            for name in done:
                await svc.stores[name].delete(image.id)
            await svc.store.delete(image.id, staging=True)
            await svc._release(image.id, "queued")
            await svc.set_import_properties(image.id, **{IMPORTING_KEY: "", FAILED_KEY: ",".join(targets)})
            raise

    async def download(self, image: Image, task_id: str, uri: str) -> None:
        """web-download's fetch into the staging area, bounded by the size cap and the quota."""
        svc = self.svc
        room = await svc.bytes_allowed(image.owner, "image_size_total", Image.size, image.id)
        limit = svc.size_cap_for(room)
        try:
            written = await svc.store.write(image.id, self.counted(task_id, fetch(uri, svc.web_download_allowed)),
                                            limit, staging=True)
        except StoreFull:
            raise StoreFull(f"The data at {uri} is larger than the {limit} bytes this image may have (the image "
                            "size cap or the project's image_size_total quota).") from None
        async with svc.db.session() as s:
            await s.execute(update(Image).where(Image.id == image.id).values(staged_size=written.size))

    async def convert(self, image: Image) -> dict[str, Any]:
        """Glance's image_conversion: staged data in a convertible format becomes ``import_convert_to``
        (raw), once the inspection has passed it as safe; the new disk_format, or nothing."""
        svc = self.svc
        target = svc.convert_to
        if not target or image.disk_format == target or image.disk_format not in CONVERTIBLE:
            return {}
        staged = svc.store.path(image.id, staging=True)
        inspection = Inspection(image.disk_format, image.container_format, svc.require_format_match)

        def inspect() -> None:
            with open(staged, "rb") as fh:
                while block := fh.read(4 * MIB):
                    inspection.feed(block)
            inspection.finish()

        await asyncio.to_thread(inspect)
        verdict = inspection.verdict
        assert verdict is not None
        room = await svc.bytes_allowed(image.owner, "image_size_total", Image.size, image.id)
        if verdict.virtual_size and verdict.virtual_size > svc.size_cap_for(room):
            raise StoreFull(f"Converted to {target}, the image would be {verdict.virtual_size} bytes: more than "
                            "the image size cap or the project's image_size_total quota allows.")
        out = staged.with_name(f".tmp-{image.id}-{uuid.uuid4().hex[:8]}")
        await convert(staged, image.disk_format, target, out)
        out.replace(staged)
        LOG.info("image %s converted from %s to %s on import", image.id, image.disk_format, target)
        image.disk_format = target
        return {"disk_format": target}

    async def copy_into(self, image: Image, source: Any, name: str, task_id: str) -> None:
        """A copy of the image's data from ``source`` into the store ``name``, checked against the
        image's SHA-512 when it has one."""
        written = await self.svc.stores[name].write(image.id, self.counted(task_id, source.open(image.id)))
        if image.os_hash_value and written.sha512 != image.os_hash_value:
            await self.svc.stores[name].delete(image.id)
            raise RuntimeError(f"the copy of image {image.id} in store {name} does not match its hash")

    async def copy(self, image: Image, task_id: str, request: ImportRequest, targets: list[str]) -> dict[str, Any]:
        """copy-image: the active image's data into more stores; the image stays active throughout."""
        svc = self.svc
        source = svc.data_store(image)
        if source is None:
            raise RuntimeError(f"image {image.id} has no data in any store")
        done, failed = [], []
        try:
            for name in targets:
                try:
                    await self.copy_into(image, source, name, task_id)
                    done.append(name)
                except Exception as exc:
                    if request.all_stores_must_succeed:
                        raise
                    LOG.warning("copy of image %s into store %s failed: %s", image.id, name, exc)
                    failed.append(name)
                await svc.set_import_properties(image.id, **{IMPORTING_KEY: ",".join(
                    n for n in targets if n not in done and n not in failed), FAILED_KEY: ",".join(failed)})
            if not done:
                raise RuntimeError(f"image {image.id} could not be copied into any of {', '.join(targets)}")
            async with svc.db.session() as s:
                row = await s.get(Image, image.id)
                if row is None or row.status == "deleted":
                    raise RuntimeError(f"image {image.id} was deleted while it was copied")
                row.stores = ",".join(sorted(set(svc.stores_of(row)) | set(done)))
                row.lease_owner, row.lease_until = None, None
        except BaseException:
            for name in done:
                await svc.stores[name].delete(image.id)
            await svc.set_import_properties(image.id, **{IMPORTING_KEY: "", FAILED_KEY: ",".join(targets)})
            async with svc.db.session() as s:
                await s.execute(update(Image).where(Image.id == image.id, Image.lease_owner == svc.instance)
                                .values(lease_owner=None, lease_until=None))
            raise
        return {}
