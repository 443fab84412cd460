"""Dynamic large objects, Swift's ``dlo``: an object whose ``X-Object-Manifest:
<container>/<prefix>`` header makes it stand for every object under that prefix, joined in name
order.  Nothing is checked at upload: what the listing holds when the object is read is what is
served, so segments can be added after the manifest (the prefix decides).

Turning it on and off
    On by default; ``[object] disabled_features = dlo`` turns it off (the manifest object is then
    served as the bytes it holds, usually none).  ``GET /info`` shows ``"dlo": {"max_segments":
    10000}``.

Making one
    Upload the segments (``<container>/<prefix><anything>``), then the manifest: any PUT (or
    POST) with ``X-Object-Manifest: <container>/<prefix>``, the container part URL-encoded as a
    Swift header, its body normally empty.  A value without a ``/`` or with an empty container is
    a 400 (``X-Object-Manifest must be in the format container/prefix``).

Reading
    GET and HEAD answer the concatenation: Content-Length is the segments' sum, ETag the md5 of
    their ETags concatenated, quoted (as Swift sends it); the manifest object's Content-Type and
    metadata; ``X-Object-Manifest`` shown back.  Range (one or several byte ranges, across
    segment boundaries) and If-Match/If-None-Match (against that ETag) work as on any object.
    The segment container must be readable by the reader (401/403).  ``?multipart-manifest=get``
    answers the manifest object itself.  A segment that changes while it is being read cuts the
    answer (or is a 409 when it is the first).

Limits
    At most 10,000 segments are joined (the listing's page limit in Swift); more is a 409.  The
    segments are listed once per read; DELETE of the manifest leaves the segments."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from starlette.responses import Response

from cumulo.core.config import Config
from cumulo.object.api import common as c
from cumulo.object.middleware import Handler, slo
from cumulo.object.service import ContainerInfo, Listing, ObjectInfo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from cumulo.object.api import Call

NAME = "dlo"
ORDER = 51

MAX_SEGMENTS = 10000
HEADER = "x-object-manifest"
PAGE = 1000


def capabilities(cfg: Config) -> dict[str, Any] | None:
    return {"max_segments": MAX_SEGMENTS}


def split_manifest(value: str) -> tuple[str, str] | None:
    container, slash, prefix = unquote(value).lstrip("/").partition("/")
    if not slash or not container or len(container.encode()) > c.MAX_CONTAINER_NAME or "\x00" in value:
        return None
    return container, prefix


async def handle(call: Call, app: Handler) -> Response:
    if not call.obj:
        return await app(call)
    method = call.request.method
    if method in ("PUT", "POST"):
        value = call.request.headers.get(HEADER)
        if value is not None and split_manifest(value) is None:
            raise c.SwiftError(400, "X-Object-Manifest must be in the format container/prefix")
        return await app(call)
    if method not in ("GET", "HEAD") or call.request.query_params.get("multipart-manifest") == "get":
        return await app(call)
    container, info = await slo.lookup(call)
    if container is None or info is None or not info.meta.get(HEADER) or slo.is_slo(info):
        return await app(call)
    call.authorize("object_store:object:get", container)
    return await serve(call, info)


async def listing(call: Call, seg_container: ContainerInfo, prefix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    marker = ""
    while True:
        page = await call.svc.objects(seg_container, Listing(prefix=prefix, marker=marker, limit=PAGE))
        out.extend(page)
        if len(out) > MAX_SEGMENTS:
            raise c.SwiftError(409, f"Too many segments: more than {MAX_SEGMENTS} under the prefix")
        if len(page) < PAGE:
            return out
        marker = page[-1]["name"]


async def serve(call: Call, info: ObjectInfo) -> Response:
    parsed = split_manifest(info.meta[HEADER])
    if parsed is None:
        raise c.SwiftError(409, "Bad X-Object-Manifest")
    seg_name, prefix = parsed
    seg = slo.Segments(call, call.account)
    seg_container = await seg.container(seg_name)
    entries = await listing(call, seg_container, prefix)
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    for entry in entries:
        digest.update(entry["hash"].strip('"').encode())
        size += int(entry["bytes"])
    etag = digest.hexdigest()
    headers = {**slo.object_headers(info), "Etag": f'"{etag}"', "X-Object-Manifest": info.meta[HEADER]}
    early = slo.conditions(call, etag, info, headers)
    if early is not None:
        return early

    async def pieces(start: int, end: int) -> AsyncIterator[slo.Piece]:
        offset = 0
        for entry in entries:
            if offset >= end:
                return
            length = int(entry["bytes"])
            if length and offset + length > start:
                yield slo.Piece(seg_name, entry["name"], entry["hash"], length,
                                max(0, start - offset), min(length, end - offset))
            offset += length

    return await slo.respond(call, seg, pieces, size, headers, info.content_type)
