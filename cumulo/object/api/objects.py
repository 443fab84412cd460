"""``/v1/AUTH_<project_id>/<container>/<object>``: PUT stores (ETag checked, Content-Length or
chunked), GET reads (Range, several ranges as multipart/byteranges, If-Match, If-None-Match,
If-Modified-Since, If-Unmodified-Since), HEAD, POST replaces the metadata, DELETE, and COPY (or
PUT with X-Copy-From) copies server side."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from starlette.responses import Response, StreamingResponse

from cumulo.object.api import common as c
from cumulo.object.api import quotas
from cumulo.object.service import ContainerInfo, ObjectInfo

if TYPE_CHECKING:
    from cumulo.object.api import Call

MAX_RANGES = 100  # more than this and Swift answers the whole object

# headers an object keeps besides X-Object-Meta-* (Swift's allowed_headers)
KEPT = ("content-disposition", "content-encoding", "x-delete-at", "x-object-manifest", "x-static-large-object",
        "cache-control", "content-language", "expires", "x-robots-tag")


def _object_meta(call: Call) -> dict[str, str]:
    # an object keeps a metadata item with an empty value (Swift's object server does), and
    # X-Remove-Object-Meta-* means nothing: a PUT or POST replaces the object's metadata whole
    meta = {f"x-object-meta-{k}": v for k, v in c.metadata(call.request, "object", removals=False).items()}
    for name in KEPT:
        value = call.request.headers.get(name)
        if value:
            meta[name] = value
    return meta


def _headers(info: ObjectInfo) -> dict[str, str]:
    # Content-Type as stored (a media_type argument would gain a charset)
    headers = {"Etag": info.etag, "Last-Modified": c.http_date(info.timestamp), "X-Timestamp": info.timestamp,
               "Accept-Ranges": "bytes", "Content-Type": info.content_type}
    for key, value in info.meta.items():
        if key.startswith("x-object-meta-"):
            headers["X-Object-Meta-" + key[len("x-object-meta-"):].title()] = value
        else:
            headers[key.title()] = value
    return headers


async def _container(call: Call, rule: str) -> ContainerInfo:
    info = await call.svc.container(call.account, call.container)
    if info is None:
        call.authorize(rule)
        raise c.SwiftError(404)
    call.authorize(rule, info)
    return info


async def handle(call: Call) -> Response:
    c.check_object_name(call.obj)
    method = call.request.method
    if method == "PUT":
        return await put(call)
    if method in ("GET", "HEAD"):
        return await get(call)
    if method == "POST":
        container = await _container(call, "object_store:object:post")
        meta = _object_meta(call)
        c.check_merged_meta({k: v for k, v in meta.items() if k.startswith("x-object-meta-")})
        await call.svc.update_object(container, call.obj, call.request.headers.get("content-type"), meta)
        return Response(status_code=202)
    if method == "DELETE":
        container = await _container(call, "object_store:object:delete")
        await call.svc.delete_object(container, call.obj)
        return Response(status_code=204)
    if method == "COPY":
        dest = call.request.headers.get("destination")
        if not dest:
            raise c.SwiftError(412, "You must provide a Destination header")
        dest_container, dest_obj = _split_target(dest, "Destination")
        return await copy(call, (call.container, call.obj), (dest_container, dest_obj))
    raise c.SwiftError(405, headers={"Allow": "COPY, DELETE, GET, HEAD, POST, PUT"})


def _split_target(value: str, header: str) -> tuple[str, str]:
    path = unquote(value).lstrip("/")
    container, _, obj = path.partition("/")
    if not container or not obj:
        raise c.SwiftError(412, f"{header} header must be of the form <container name>/<object name>")
    c.check_container_name(container)
    c.check_object_name(obj)
    return container, obj


async def put(call: Call) -> Response:
    request = call.request
    copy_from = request.headers.get("x-copy-from")
    if copy_from:
        if request.headers.get("content-length", "0") not in ("", "0"):
            raise c.SwiftError(400, "Copy requests require a zero byte body")
        return await copy(call, _split_target(copy_from, "X-Copy-From"), (call.container, call.obj))
    length_header = request.headers.get("content-length")
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    length: int | None = None
    if length_header is not None:
        try:
            length = int(length_header)
        except ValueError:
            raise c.SwiftError(400, "Invalid Content-Length") from None
        if length < 0:
            raise c.SwiftError(400, "Invalid Content-Length")
        if length > call.max_file_size:
            raise c.SwiftError(413, "Your request is too large.")
    elif not chunked:
        raise c.SwiftError(411, "Missing Content-Length header.")
    if not call.obj:
        raise c.SwiftError(400, "Object name is empty")
    etag = request.headers.get("etag")
    if etag is not None:
        etag = etag.strip('"').lower()
        if len(etag) != 32 or any(ch not in "0123456789abcdef" for ch in etag):
            raise c.SwiftError(422)
    container = await _container(call, "object_store:object:put")
    meta = _object_meta(call)
    ctype = request.headers.get("content-type") or "application/octet-stream"
    if len(ctype) > 256:
        raise c.SwiftError(400, "Content-Type is longer than 256 characters")
    existing = await call.svc.object(container, call.obj)
    left = await quotas.room(call, container, length, existing.size if existing else None)
    info = await _store(call, container, call.obj, request.stream(), ctype, meta, etag, length, left)
    return Response(status_code=201, headers={"Etag": info.etag, "Last-Modified": c.http_date(info.timestamp),
                                              "X-Timestamp": info.timestamp, "Content-Length": "0"},
                    media_type="text/html; charset=UTF-8")


async def _store(call: Call, container: ContainerInfo, name: str, chunks: AsyncIterator[bytes], ctype: str,
                 meta: dict[str, str], etag: str | None, length: int | None, quota_left: int | None) -> ObjectInfo:
    from cumulo.object.storage import EtagMismatch, QuorumError, TooLarge

    if call.room is not None:  # a pipeline feature's bound (project_quota)
        quota_left = call.room if quota_left is None else min(quota_left, call.room)
    limit = call.max_file_size if quota_left is None else min(call.max_file_size, quota_left)
    try:
        return await call.svc.put_object(container, name, chunks, content_type=ctype, meta=meta,
                                         expected_etag=etag, content_length=length, max_size=limit)
    except TooLarge:
        if quota_left is not None and quota_left < call.max_file_size:
            raise c.SwiftError(413, quotas.EXCEEDED) from None
        raise c.SwiftError(413, "Your request is too large.") from None
    except EtagMismatch:
        raise c.SwiftError(422) from None
    except QuorumError:
        raise c.SwiftError(503) from None
    except ValueError as exc:  # the store's ShortBody: the client sent less than it said
        if type(exc).__name__ == "ShortBody":
            raise c.SwiftError(499, "Client Disconnect") from None
        raise


async def copy(call: Call, source: tuple[str, str], dest: tuple[str, str]) -> Response:
    src_info = await call.svc.container(call.account, source[0])
    if src_info is None:
        call.authorize("object_store:object:get")
        raise c.SwiftError(404)
    call.authorize("object_store:object:get", src_info)
    dest_info = await call.svc.container(call.account, dest[0])
    if dest_info is None:
        call.authorize("object_store:object:put")
        raise c.SwiftError(404)
    call.authorize("object_store:object:put", dest_info)
    opened = await call.svc.open_object(src_info, source[1])
    if opened is None:
        raise c.SwiftError(404)
    info, reader = opened
    if info.size > call.max_file_size:
        reader.close()
        raise c.SwiftError(413, "Your request is too large.")
    fresh = call.request.headers.get("x-fresh-metadata", "").lower() in ("true", "1", "yes")
    meta = {} if fresh else dict(info.meta)
    meta.update(_object_meta(call))
    c.check_merged_meta({k: v for k, v in meta.items() if k.startswith("x-object-meta-")})
    ctype = call.request.headers.get("content-type") if call.request.method == "COPY" else None
    if call.request.method == "PUT" and call.request.headers.get("content-type"):
        ctype = call.request.headers.get("content-type")
    try:
        existing = await call.svc.object(dest_info, dest[1])
        left = await quotas.room(call, dest_info, info.size, existing.size if existing else None)
        new = await _store(call, dest_info, dest[1], _chunks(reader, 0, info.size), ctype or info.content_type, meta,
                           None, info.size, left)
    finally:
        reader.close()
    # as Swift's copy middleware: the new object's metadata (the source's and the request's) is
    # in the answer, and where it came from, quoted
    headers = {k: v for k, v in _headers(new).items() if k.startswith("X-Object-Meta-") or k.lower() in KEPT}
    return Response(status_code=201, headers={
        **headers, "Etag": new.etag, "Last-Modified": c.http_date(new.timestamp), "X-Timestamp": new.timestamp,
        "Content-Length": "0", "X-Copied-From": quote(f"{source[0]}/{source[1]}"),
        "X-Copied-From-Account": quote(call.account),
        "X-Copied-From-Last-Modified": c.http_date(info.timestamp)}, media_type="text/html; charset=UTF-8")


async def _chunks(reader: Any, start: int, end: int) -> AsyncIterator[bytes]:
    async for chunk in reader.iter_range(start, end):
        yield chunk


def parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """``bytes=a-b,c-,-n`` as [start, end) pairs within ``size``; None when the header is not a
    byte range Swift honours (then the whole object is sent); [] when no range is satisfiable."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return None
    out: list[tuple[int, int]] = []
    items = spec.split(",")
    if len(items) > MAX_RANGES:
        return None
    for item in items:
        first, dash, last = item.strip().partition("-")
        if not dash:
            return None
        try:
            if first == "":
                n = int(last)
                if n < 0:
                    return None
                if n == 0:
                    continue
                out.append((max(0, size - n), size))
                continue
            a = int(first)
            b = int(last) if last else max(a, size - 1)  # "a-": to the end, unsatisfiable from past it
        except ValueError:
            return None
        if a < 0 or b < a:
            return None
        if a >= size:
            continue
        out.append((a, min(b, size - 1) + 1))
    return out


def _conditions(call: Call, info: ObjectInfo) -> Response | None:
    h = call.request.headers
    etag = info.etag
    modified = math.ceil(float(info.timestamp))  # Last-Modified's whole second
    headers = _headers(info)
    if_match = h.get("if-match")
    if if_match is not None:
        tags = [t.strip().strip('"') for t in if_match.split(",")]
        if "*" not in tags and etag not in tags:
            return c.SwiftError(412, headers=headers).response(call.request.method)
    if_none = h.get("if-none-match")
    if if_none is not None:
        tags = [t.strip().strip('"') for t in if_none.split(",")]
        if "*" in tags or etag in tags:
            return Response(status_code=304, headers=headers)
    ius = h.get("if-unmodified-since")
    if ius is not None and if_match is None:
        when = c.parse_http_date(ius)
        if when is not None and modified > when:
            return c.SwiftError(412, headers=headers).response(call.request.method)
    ims = h.get("if-modified-since")
    if ims is not None and if_none is None:
        when = c.parse_http_date(ims)
        if when is not None and modified <= when:
            return Response(status_code=304, headers=headers)
    return None


async def get(call: Call) -> Response:
    container, info = await c.lookup(call)
    if container is None:
        call.authorize("object_store:object:get")
        raise c.SwiftError(404)
    call.authorize("object_store:object:get", container)
    reader = None if info is None else await call.svc.reader(container, info)
    if info is None or reader is None:
        raise c.SwiftError(404)
    try:
        early = _conditions(call, info)
        if early is not None:
            reader.close()
            return early
        headers = _headers(info)
        size = info.size
        ranges = None
        range_header = call.request.headers.get("range")
        if range_header:
            ranges = parse_ranges(range_header, size)
            if ranges == []:
                reader.close()
                raise c.SwiftError(416, headers={"Content-Range": f"bytes */{size}"})
        if call.request.method == "HEAD":
            reader.close()
            return Response(status_code=200, headers={**headers, "Content-Length": str(size)})
    except BaseException:
        reader.close()
        raise
    if not ranges:
        return StreamingResponse(_stream(reader, [(0, size)]), status_code=200,
                                 headers={**headers, "Content-Length": str(size)})
    if len(ranges) == 1:
        start, end = ranges[0]
        return StreamingResponse(_stream(reader, ranges), status_code=206, headers={
            **headers, "Content-Length": str(end - start), "Content-Range": f"bytes {start}-{end - 1}/{size}"})
    boundary = uuid.uuid4().hex
    parts = [(f"--{boundary}\r\nContent-Type: {info.content_type}\r\n"
              f"Content-Range: bytes {a}-{b - 1}/{size}\r\n\r\n").encode() for a, b in ranges]
    tail = f"\r\n--{boundary}--".encode()
    total = sum(len(p) for p in parts) + sum(b - a for a, b in ranges) + 2 * (len(ranges) - 1) + len(tail)
    return StreamingResponse(_multipart(reader, ranges, parts, tail), status_code=206, headers={
        **headers, "Content-Length": str(total), "Content-Type": f"multipart/byteranges;boundary={boundary}"})


async def _stream(reader: Any, ranges: list[tuple[int, int]]) -> AsyncIterator[bytes]:
    try:
        for start, end in ranges:
            async for chunk in reader.iter_range(start, end):
                yield chunk
    finally:
        reader.close()


async def _multipart(reader: Any, ranges: list[tuple[int, int]], parts: list[bytes],
                     tail: bytes) -> AsyncIterator[bytes]:
    try:
        for i, ((start, end), head) in enumerate(zip(ranges, parts, strict=True)):
            yield (b"\r\n" if i else b"") + head
            async for chunk in reader.iter_range(start, end):
                yield chunk
        yield tail
    finally:
        reader.close()
