"""Static large objects, Swift's ``slo``: one object made of other objects (its *segments*), named
in a JSON *manifest* the client uploads.  A read of the manifest object streams the segments one
after another, so an object can be far larger than ``[object] max_file_size``.

Turning it on and off
    On by default; ``[object] disabled_features = slo`` turns it off (a manifest is then served as
    the JSON it is, and ``?multipart-manifest=`` means nothing).  ``GET /info`` shows
    ``"slo": {"max_manifest_segments": 1000, "max_manifest_size": 8388608, "min_segment_size": 1}``.

Uploading: ``PUT <object>?multipart-manifest=put``
    The body is a JSON list, at most 8 MiB, at most 1,000 object segments.  Each item is either
    ``{"path": "/<container>/<object>", "etag": ..., "size_bytes": ..., "range": "a-b"}`` (etag,
    size_bytes and range are optional; null means "do not check") or ``{"data": "<base64>"}``,
    bytes given inline (at least one item must name an object).  Every named segment is looked up
    with the uploader's rights (read access to its container is needed); it must exist, and its
    ETag and size must be the ones given.  Every segment but the last must be at least 1 byte.
    A segment may itself be a static large object (nested at most 10 deep).  What is wrong is a
    400 listing every problem as Swift words it: ``Index <n>: ...`` lines for a malformed item,
    or ``Errors:`` followed by ``<path>, <reason>`` lines (``404 Not Found``, ``Etag Mismatch``,
    ``Size Mismatch``, ...), as JSON ``{"Errors": [[path, reason], ...]}`` when the client
    accepts ``application/json``.  An ``Etag`` header on the PUT must be the large object's ETag
    (422 otherwise).  The answer is 201 with the large object's ETag, quoted: the md5 of the
    segments' ETags concatenated (``<etag>:<range>;`` for a ranged segment, the md5 of the bytes
    for an inline one).  ``X-Static-Large-Object`` in a plain PUT is a 400: it is reserved.

Reading
    GET and HEAD answer the large object: ``X-Static-Large-Object: True``, its ETag (quoted), the
    whole Content-Length, the manifest object's Content-Type and metadata.  Range (one or more
    byte ranges, across segment boundaries) works as on any object; If-Match, If-None-Match and
    the date conditions compare the large object's ETag.  Each segment's container must be
    readable by the reader (401/403 otherwise, before anything is sent).  A segment that is gone
    or changed since the upload ends the answer: a 409 when it is the first one read, a cut
    connection later (the headers are sent by then), as in Swift.
    ``?multipart-manifest=get`` answers the stored manifest (JSON, the items as ``name``,
    ``hash``, ``bytes``, ``content_type``, ``last_modified``, ``range``, ``sub_slo``); with
    ``&format=raw`` in the form it was uploaded in (``path``, ``etag``, ``size_bytes``).

Changing and versioning
    The manifest is written down the pipeline as an ordinary PUT of its JSON, so quotas count its
    bytes (not the segments'), a versioned container archives the copy it replaces, and
    X-Delete-At works.  A POST replaces the manifest's metadata and leaves it a large object;
    ``X-Static-Large-Object`` in a POST is ignored.

Deleting
    A plain DELETE removes the manifest only.  ``DELETE ...?multipart-manifest=delete`` removes
    every segment (nested manifests' too), then the manifest, with delete access to each
    segment's container, at most 10,000 objects in all; the answer is 200 with Swift's
    bulk-delete report (``Number Deleted``, ``Number Not Found``, ``Response Status``,
    ``Errors``), plain text, or JSON when accepted.

Limits and what is not done
    The limits above are fixed.  Copying a large object (COPY, X-Copy-From) copies the manifest
    object, not the concatenated data; ``heartbeat=on``, ``part-number=`` and Swift's async
    delete are not implemented.  Segments are checked at upload, not kept from changing after:
    deleting or overwriting a segment breaks the large object."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import math
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from cumulo.core.config import Config
from cumulo.object.api import common as c
from cumulo.object.api.objects import parse_ranges
from cumulo.object.middleware import Handler, with_headers
from cumulo.object.service import ContainerInfo, ObjectInfo

if TYPE_CHECKING:
    from cumulo.object.api import Call

NAME = "slo"
ORDER = 50

MAX_SEGMENTS = 1000
MAX_MANIFEST_SIZE = 8 * 1024 * 1024
MIN_SEGMENT_SIZE = 1
MAX_DEPTH = 10
SLO = "x-static-large-object"
ETAG_KEY, SIZE_KEY = "x-object-sysmeta-slo-etag", "x-object-sysmeta-slo-size"
PUT_KEYS = {"path", "etag", "size_bytes", "range"}
MAX_DELETES = 10000  # objects one ?multipart-manifest=delete removes (nested manifests' segments included)
TOO_MANY_DELETES = f"Too many objects to delete: more than {MAX_DELETES}"


def capabilities(cfg: Config) -> dict[str, Any] | None:
    return {"max_manifest_segments": MAX_SEGMENTS, "max_manifest_size": MAX_MANIFEST_SIZE,
            "min_segment_size": MIN_SEGMENT_SIZE}


def is_slo(info: ObjectInfo) -> bool:
    return info.meta.get(SLO, "").lower() in ("true", "1", "yes")


def large_etag(info: ObjectInfo) -> str:
    """The large object's ETag (unquoted) for a manifest, the object's own otherwise."""
    return info.meta.get(ETAG_KEY, info.etag) if is_slo(info) else info.etag


async def handle(call: Call, app: Handler) -> Response:
    if not call.obj:
        return await app(call)
    method, mode = call.request.method, call.request.query_params.get("multipart-manifest", "")
    if method == "PUT":
        if mode == "put":
            return await _put(call, app)
        if call.request.headers.get(SLO) is not None:
            raise c.SwiftError(400, "X-Static-Large-Object is a reserved header. To create a static large object "
                                    "add query param multipart-manifest=put.")
        return _hide(await app(call))
    if method == "DELETE" and mode == "delete":
        return await _delete(call)
    if method == "POST":
        # a POST replaces the user metadata only: a manifest stays one (and no POST makes one)
        return _hide(await keep_on_post(with_headers(call, {SLO: None}), app,
                                        lambda key: key == SLO or key in (ETAG_KEY, SIZE_KEY)))
    if method in ("GET", "HEAD"):
        container, info = await lookup(call)
        if container is not None and info is not None and is_slo(info):
            call.authorize("object_store:object:get", container)
            if mode == "get":
                return await _manifest_get(call, container, info)
            return await serve(call, container, info)
    return _hide(await app(call))


lookup = c.lookup  # the call's container and object rows, read once per request


def _hide(response: Response) -> Response:
    for key in (ETAG_KEY, SIZE_KEY):
        if key in response.headers:
            del response.headers[key]
    return response


# ---- reading a stored object whole (a manifest: bounded by MAX_MANIFEST_SIZE) ----

async def read_small(call: Call, container: ContainerInfo, name: str, limit: int = MAX_MANIFEST_SIZE) -> bytes | None:
    opened = await call.svc.open_object(container, name)
    if opened is None:
        return None
    info, reader = opened
    try:
        if info.size > limit:
            raise c.SwiftError(409, "Manifest too large")
        return b"".join([chunk async for chunk in reader.iter_range(0, info.size)])
    finally:
        reader.close()


async def load_manifest(call: Call, container: ContainerInfo, name: str) -> list[dict[str, Any]]:
    body = await read_small(call, container, name)
    if body is None:
        raise c.SwiftError(409, "Object segment no longer valid")
    try:
        items = json.loads(body)
    except ValueError:
        raise c.SwiftError(500, "Unable to load SLO manifest") from None
    if not isinstance(items, list):
        raise c.SwiftError(500, "Unable to load SLO manifest")
    return items


# ---- PUT ----

def _accept_json(call: Call) -> bool:
    accept = call.request.headers.get("accept", "")
    return any(p.split(";")[0].strip().lower() == "application/json" for p in accept.split(","))


def _split_path(path: str) -> tuple[str, str]:
    container, _, obj = path.lstrip("/").partition("/")
    return container, obj


def _parse(body: bytes, own_path: str) -> list[dict[str, Any]]:
    try:
        items = json.loads(body)
    except ValueError:
        raise c.SwiftError(400, "Manifest must be valid JSON.\n") from None
    if not isinstance(items, list):
        raise c.SwiftError(400, "Manifest must be a list.\n")
    errors: list[str] = []
    last = len(items) - 1
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(f"Index {i}: not a JSON object")
            continue
        kind = "path" if "path" in item else "data" if "data" in item else ""
        if not kind:
            errors.append(f"Index {i}: expected keys to include one of 'path' or 'data'")
            continue
        extra = sorted(k for k in item if k not in (PUT_KEYS if kind == "path" else {"data"}))
        if extra:
            errors.append(f"Index {i}: extraneous keys " + ", ".join(json.dumps(k) for k in extra))
            continue
        if kind == "data":
            try:
                raw = base64.b64decode(item["data"], validate=True) if isinstance(item["data"], str) else None
            except (binascii.Error, ValueError):
                raw = None
            if raw is None:
                errors.append(f"Index {i}: data must be valid base64")
            elif not raw:
                errors.append(f"Index {i}: too small; each segment must be at least 1 byte.")
            else:
                item["data"] = base64.b64encode(raw).decode("ascii")
            continue
        path = item["path"]
        if not isinstance(path, str):
            errors.append(f'Index {i}: "path" must be a string')
            continue
        if not (item.get("etag") is None or isinstance(item["etag"], str)):
            errors.append(f'Index {i}: "etag" must be a string or null (if provided)')
            continue
        container, obj = _split_path(path)
        if not container or not obj:
            errors.append(f"Index {i}: path does not refer to an object. Path must be of the form "
                          "/container/object.")
            continue
        if len(container.encode()) > c.MAX_CONTAINER_NAME or len(obj.encode()) > c.MAX_OBJECT_NAME:
            errors.append(f"Index {i}: path does not refer to an object. Path must be of the form "
                          "/container/object.")
            continue
        size = item.get("size_bytes")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, (int, str)) or not str(size).strip().isdigit():
                errors.append(f"Index {i}: invalid size_bytes")
                continue
            size = item["size_bytes"] = int(size)
            if size < MIN_SEGMENT_SIZE and i != last:
                errors.append(f"Index {i}: too small; each segment must be at least 1 byte.")
                continue
        if "/" + path.lstrip("/") == own_path:
            errors.append(f"Index {i}: manifest must not include itself as a segment")
            continue
        if item.get("range"):
            rng = item["range"]
            parsed = parse_ranges(f"bytes={rng}", 1 << 62) if isinstance(rng, str) else None
            if parsed is None or not parsed:
                errors.append(f"Index {i}: invalid range")
                continue
            if len(parsed) > 1:
                errors.append(f"Index {i}: multiple ranges (only one allowed)")
                continue
            if size is not None and not parse_ranges(f"bytes={rng}", size):
                errors.append(f"Index {i}: unsatisfiable range")
                continue
    if items and all(isinstance(x, dict) and "data" in x for x in items) and not errors:
        errors.append("Inline data segments require at least one object-backed segment.")
    if errors:
        raise c.SwiftError(400, "".join(e + "\n" for e in errors))
    return items


def _problems(call: Call, problems: list[list[str]]) -> Response:
    if _accept_json(call):
        body, ctype = json.dumps({"Errors": problems}).encode(), "application/json; charset=utf-8"
    else:
        body = ("Errors:\n" + "".join(f"{name}, {why}\n" for name, why in problems)).encode()
        ctype = "text/plain; charset=utf-8"
    return Response(body, status_code=400, media_type=ctype)


async def _segment_head(call: Call, path: str, cache: dict[str, ContainerInfo | None]) -> ObjectInfo | str:
    """The segment's listing row, or the status line to report."""
    container_name, obj = _split_path(path)
    if container_name not in cache:
        cache[container_name] = await call.svc.container(call.account, container_name)
    container = cache[container_name]
    try:
        call.authorize("object_store:object:get", container)
    except c.SwiftError as err:
        return "401 Unauthorized" if err.status == 401 else "403 Forbidden"
    info = await call.svc.object(container, obj) if container is not None else None
    return "404 Not Found" if info is None else info


def seg_size(info: ObjectInfo) -> int:
    return int(info.meta.get(SIZE_KEY, info.size)) if is_slo(info) else info.size


async def _put(call: Call, app: Handler) -> Response:
    request = call.request
    if request.headers.get("x-copy-from"):
        raise c.SwiftError(405, "Multipart Manifest PUTs cannot be COPY requests")
    length = request.headers.get("content-length")
    if length is None and "chunked" not in request.headers.get("transfer-encoding", "").lower():
        raise c.SwiftError(411, "Missing Content-Length header.")
    too_big = f"Manifest File > {MAX_MANIFEST_SIZE} bytes"
    if length is not None:
        if not length.isdigit():
            raise c.SwiftError(400, "Invalid Content-Length")
        if int(length) > MAX_MANIFEST_SIZE:
            raise c.SwiftError(413, too_big)
    container = await call.svc.container(call.account, call.container)
    call.authorize("object_store:object:put", container)
    if container is None:
        raise c.SwiftError(404)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_MANIFEST_SIZE:
            raise c.SwiftError(413, too_big)
    items = _parse(bytes(body), f"/{call.container}/{call.obj}")
    if sum(1 for item in items if "path" in item) > MAX_SEGMENTS:
        raise c.SwiftError(413, f"Number of object-backed segments must be <= {MAX_SEGMENTS}")
    problems: list[list[str]] = []
    stored: list[dict[str, Any]] = []
    total = 0
    cache: dict[str, ContainerInfo | None] = {}
    heads: dict[str, ObjectInfo | str] = {}
    for i, item in enumerate(items):
        if "data" in item:
            stored.append({"data": item["data"]})
            total += len(base64.b64decode(item["data"]))
            continue
        path = item["path"]
        if path not in heads:
            heads[path] = await _segment_head(call, path, cache)
        head = heads[path]
        name = quote(path)
        if isinstance(head, str):
            problems.append([name, head])
            continue
        full = seg_size(head)
        length_of = full
        rng = item.get("range")
        if rng:
            ranges = parse_ranges(f"bytes={rng}", full)
            if not ranges:
                problems.append([name, "Unsatisfiable Range"])
                rng = None
            elif ranges[0] == (0, full):
                rng = None
            else:
                rng = f"{ranges[0][0]}-{ranges[0][1] - 1}"
                length_of = ranges[0][1] - ranges[0][0]
        if length_of < MIN_SEGMENT_SIZE and i != len(items) - 1:
            problems.append([name, "Too small; each segment must be at least 1 byte."])
        if item.get("size_bytes") is not None and item["size_bytes"] != full:
            problems.append([name, "Size Mismatch"])
        etag = large_etag(head)
        if item.get("etag") is not None and item["etag"].strip('"') != etag:
            problems.append([name, "Etag Mismatch"])
        entry: dict[str, Any] = {"name": "/" + path.lstrip("/"), "bytes": full, "hash": etag,
                                 "content_type": head.content_type,
                                 "last_modified": c.iso_time(head.timestamp)}
        if rng:
            entry["range"] = rng
        if is_slo(head):
            entry["sub_slo"] = True
        stored.append(entry)
        total += length_of
    if problems:
        return _problems(call, problems)
    slo_etag, _ = totals(stored)
    client_etag = request.headers.get("etag")
    if client_etag and client_etag.strip('"') != slo_etag:
        raise c.SwiftError(422)
    data = json.dumps(stored).encode()
    # the manifest goes down the pipeline as an ordinary PUT (quotas, versioning, expiry see it),
    # then gets the large object's ETag and size as system metadata
    inner = body_call(call, data, {SLO: "True", "etag": hashlib.md5(data, usedforsecurity=False).hexdigest(),
                                   "x-object-manifest": None, "x-symlink-target": None,
                                   "content-type": request.headers.get("content-type") or "application/octet-stream"})
    response = await app(inner)
    if response.status_code != 201:
        return response
    await add_sysmeta(call, container, call.obj, response.headers.get("etag", ""),
                      {ETAG_KEY: slo_etag, SIZE_KEY: str(total)})
    response.headers["Etag"] = f'"{slo_etag}"'
    return response


async def keep_on_post(call: Call, app: Handler, kept: Any) -> Response:
    """The object POST, the stored metadata keys ``kept(key)`` chooses put back after it."""
    container = await call.svc.container(call.account, call.container)
    before = await call.svc.object(container, call.obj) if container is not None else None
    response = await app(call)
    keep = {k: v for k, v in before.meta.items() if kept(k)} if before is not None else {}
    if keep and response.status_code == 202 and container is not None:
        after = await call.svc.object(container, call.obj)
        if after is not None and after.etag == before.etag:  # type: ignore[union-attr]
            await call.svc.update_object(container, call.obj, None, {**after.meta, **keep})
    return response


def body_call(call: Call, data: bytes, changes: dict[str, str | None]) -> Call:
    """The call with another (small) body and some headers changed."""
    changed = with_headers(call, {**changes, "content-length": str(len(data)), "transfer-encoding": None})
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    return dataclasses.replace(changed, request=Request(changed.request.scope, receive))


async def add_sysmeta(call: Call, container: ContainerInfo, name: str, etag: str, sysmeta: dict[str, str]) -> None:
    """Add system metadata to the object just written (unless another write replaced it since)."""
    info = await call.svc.object(container, name)
    if info is not None and info.etag == etag.strip('"'):
        await call.svc.update_object(container, name, None, {**info.meta, **sysmeta})


# ---- GET / HEAD ----

def object_headers(info: ObjectInfo) -> dict[str, str]:
    headers = {"Last-Modified": c.http_date(info.timestamp), "X-Timestamp": info.timestamp,
               "Accept-Ranges": "bytes", "Content-Type": info.content_type}
    for key, value in info.meta.items():
        if key.startswith("x-object-sysmeta-"):
            continue
        if key.startswith("x-object-meta-"):
            headers["X-Object-Meta-" + key[len("x-object-meta-"):].title()] = value
        else:
            headers[key.title()] = value
    return headers


def conditions(call: Call, etag: str, info: ObjectInfo, headers: dict[str, str]) -> Response | None:
    """If-Match, If-None-Match, If-(Un)Modified-Since against ``etag`` (unquoted)."""
    h = call.request.headers
    modified = math.ceil(float(info.timestamp))
    if_match, if_none = h.get("if-match"), h.get("if-none-match")
    if if_match is not None:
        tags = [t.strip().strip('"') for t in if_match.split(",")]
        if "*" not in tags and etag not in tags:
            return c.SwiftError(412, headers=headers).response(call.request.method)
    if if_none is not None:
        tags = [t.strip().strip('"') for t in if_none.split(",")]
        if "*" in tags or etag in tags:
            return Response(status_code=304, headers=headers)
    ius, ims = h.get("if-unmodified-since"), h.get("if-modified-since")
    if ius is not None and if_match is None:
        when = c.parse_http_date(ius)
        if when is not None and modified > when:
            return c.SwiftError(412, headers=headers).response(call.request.method)
    if ims is not None and if_none is None:
        when = c.parse_http_date(ims)
        if when is not None and modified <= when:
            return Response(status_code=304, headers=headers)
    return None


class Piece:
    """A stretch of one stored object (or inline bytes) in a large object's body."""

    def __init__(self, container: str = "", name: str = "", etag: str | None = None, size: int | None = None,
                 start: int = 0, end: int = 0, data: bytes = b"") -> None:
        self.container, self.name, self.etag, self.size = container, name, etag, size
        self.start, self.end, self.data = start, end, data


class Segments:
    """Opens and streams the pieces of a large object, checking read access to each segment's
    container once; ``pieces(start, end)`` is an async iterator of the pieces in that span."""

    def __init__(self, call: Call, account: str) -> None:
        self.call, self.account = call, account
        self.containers: dict[str, ContainerInfo] = {}

    async def container(self, name: str) -> ContainerInfo:
        if name not in self.containers:
            info = await self.call.svc.container(self.account, name)
            self.call.authorize("object_store:object:get", info)
            if info is None:
                raise c.SwiftError(409, "Object segment no longer valid")
            self.containers[name] = info
        return self.containers[name]

    async def open(self, piece: Piece) -> Any:
        """The piece's reader, checked against what the manifest says; None for inline data."""
        if not piece.container:
            return None
        container = await self.container(piece.container)
        opened = await self.call.svc.open_object(container, piece.name)
        if opened is None:
            raise c.SwiftError(409, "Object segment no longer valid")
        info, reader = opened
        if (piece.etag is not None and info.etag != piece.etag) or (piece.size is not None and info.size != piece.size):
            reader.close()
            raise c.SwiftError(409, "Object segment no longer valid")
        return reader

    async def stream(self, pieces: AsyncIterator[Piece], first: tuple[Piece, Any] | None) -> AsyncIterator[bytes]:
        """The bytes of the pieces; ``first`` is the one already taken from ``pieces`` and opened."""
        current = first
        try:
            while current is not None:
                piece, reader = current
                current = None
                if reader is None:
                    yield piece.data
                else:
                    try:
                        async for chunk in reader.iter_range(piece.start, piece.end):
                            yield chunk
                    finally:
                        reader.close()
                nxt = await anext(pieces, None)
                if nxt is not None:
                    current = (nxt, await self.open(nxt))
        finally:
            if current is not None and current[1] is not None:
                current[1].close()


async def slo_pieces(seg: Segments, items: list[dict[str, Any]], start: int, end: int,
                     depth: int = 0) -> AsyncIterator[Piece]:
    """The pieces covering [start, end) of the large object the manifest ``items`` make."""
    if depth > MAX_DEPTH:
        raise c.SwiftError(409, f"Max recursion depth exceeded on {MAX_DEPTH} nested manifests")
    offset = 0
    for item in items:
        if offset >= end:
            return
        if "data" in item:
            raw = base64.b64decode(item["data"])
            if offset + len(raw) > start:
                yield Piece(data=raw[max(0, start - offset):end - offset])
            offset += len(raw)
            continue
        first, last = 0, int(item["bytes"])
        if item.get("range"):
            a, _, b = str(item["range"]).partition("-")
            first, last = int(a), int(b) + 1
        length = last - first
        if offset + length > start:
            lo, hi = first + max(0, start - offset), first + min(length, end - offset)
            container, name = _split_path(item["name"])
            if item.get("sub_slo"):
                sub_container = await seg.container(container)
                sub = await seg.call.svc.object(sub_container, name)
                if sub is None or not is_slo(sub) or large_etag(sub) != item.get("hash"):
                    raise c.SwiftError(409, "Object segment no longer valid")
                sub_items = await load_manifest(seg.call, sub_container, name)
                async for piece in slo_pieces(seg, sub_items, lo, hi, depth + 1):
                    yield piece
            else:
                yield Piece(container, name, item.get("hash"), int(item["bytes"]), lo, hi)
        offset += length


PieceSource = Any  # (start, end) -> AsyncIterator[Piece]


async def respond(call: Call, seg: Segments, source: PieceSource, size: int, headers: dict[str, str],
                  content_type: str) -> Response:
    """The answer for a large object of ``size`` bytes whose pieces ``source(start, end)`` gives:
    Range honoured (one or several), the first piece opened before anything is sent."""
    ranges = None
    range_header = call.request.headers.get("range")
    if range_header:
        ranges = parse_ranges(range_header, size)
        if ranges == []:
            raise c.SwiftError(416, headers={"Content-Range": f"bytes */{size}"})
    if call.request.method == "HEAD":
        return Response(status_code=200, headers={**headers, "Content-Length": str(size)})
    if not ranges or len(ranges) == 1:
        start, end = ranges[0] if ranges else (0, size)
        body = await _body(seg, source, start, end)
        extra = {"Content-Length": str(end - start)}
        if ranges:
            extra["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        return StreamingResponse(body, status_code=206 if ranges else 200, headers={**headers, **extra})
    boundary = uuid.uuid4().hex
    heads = [(f"--{boundary}\r\nContent-Type: {content_type}\r\n"
              f"Content-Range: bytes {a}-{b - 1}/{size}\r\n\r\n").encode() for a, b in ranges]
    tail = f"\r\n--{boundary}--".encode()
    total = sum(len(p) for p in heads) + sum(b - a for a, b in ranges) + 2 * (len(ranges) - 1) + len(tail)
    first_body = await _body(seg, source, *ranges[0])

    async def multipart() -> AsyncIterator[bytes]:
        for i, ((a, b), head) in enumerate(zip(ranges, heads, strict=True)):
            yield (b"\r\n" if i else b"") + head
            async for chunk in (first_body if i == 0 else await _body(seg, source, a, b)):
                yield chunk
        yield tail
    return StreamingResponse(multipart(), status_code=206, headers={
        **headers, "Content-Length": str(total), "Content-Type": f"multipart/byteranges;boundary={boundary}"})


async def _body(seg: Segments, source: PieceSource, start: int, end: int) -> AsyncIterator[bytes]:
    pieces = source(start, end)
    first = await anext(pieces, None)
    opened = None if first is None else (first, await seg.open(first))
    return seg.stream(pieces, opened)


def totals(items: list[dict[str, Any]]) -> tuple[str, int]:
    """The large object's ETag and size from its stored manifest."""
    digest, size = hashlib.md5(usedforsecurity=False), 0
    for item in items:
        if "data" in item:
            raw = base64.b64decode(item["data"])
            digest.update(hashlib.md5(raw, usedforsecurity=False).hexdigest().encode())
            size += len(raw)
        elif item.get("range"):
            digest.update(f"{item['hash']}:{item['range']};".encode())
            a, _, b = str(item["range"]).partition("-")
            size += int(b) + 1 - int(a)
        else:
            digest.update(str(item["hash"]).encode())
            size += int(item["bytes"])
    return digest.hexdigest(), size


async def serve(call: Call, container: ContainerInfo, info: ObjectInfo) -> Response:
    items: list[dict[str, Any]] | None = None
    if ETAG_KEY in info.meta and SIZE_KEY in info.meta:
        etag, size = large_etag(info), seg_size(info)
    else:  # written by a PUT whose system metadata is not there (yet)
        items = await load_manifest(call, container, info.name)
        etag, size = totals(items)
    headers = {**object_headers(info), "Etag": f'"{etag}"', "X-Static-Large-Object": "True"}
    early = conditions(call, etag, info, headers)
    if early is not None:
        return early
    if items is None:
        items = await load_manifest(call, container, info.name)
    seg = Segments(call, call.account)
    return await respond(call, seg, lambda a, b: slo_pieces(seg, items, a, b), size, headers, info.content_type)


async def _manifest_get(call: Call, container: ContainerInfo, info: ObjectInfo) -> Response:
    items = await load_manifest(call, container, info.name)
    if call.request.query_params.get("format") == "raw":
        raw = []
        for item in items:
            if "data" in item:
                raw.append({"data": item["data"]})
                continue
            out = {"path": item["name"], "etag": item["hash"], "size_bytes": item["bytes"]}
            if item.get("range"):
                out["range"] = item["range"]
            raw.append(out)
        body = json.dumps(raw).encode()
        etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
    else:
        body, etag = json.dumps(items).encode(), info.etag
    headers = {**object_headers(info), "Etag": etag, "X-Static-Large-Object": "True",
               "Content-Type": "application/json; charset=utf-8", "Content-Length": str(len(body))}
    return Response(b"" if call.request.method == "HEAD" else body, status_code=200, headers=headers)


# ---- DELETE ?multipart-manifest=delete ----

async def _delete(call: Call) -> Response:
    deleted = not_found = 0
    errors: list[list[str]] = []
    status = "200 OK"
    containers: dict[str, ContainerInfo | None] = {}

    async def container_for(name: str) -> ContainerInfo | None:
        if name not in containers:
            containers[name] = await call.svc.container(call.account, name)
        return containers[name]

    async def remove(container_name: str, name: str, depth: int) -> None:
        nonlocal deleted, not_found
        path = quote(f"/{container_name}/{name}")
        if deleted + not_found + len(errors) >= MAX_DELETES:
            if not errors or errors[-1][1] != TOO_MANY_DELETES:
                errors.append([path, TOO_MANY_DELETES])
            return
        container = await container_for(container_name)
        try:
            call.authorize("object_store:object:delete", container)
        except c.SwiftError as err:
            errors.append([path, "401 Unauthorized" if err.status == 401 else "403 Forbidden"])
            return
        info = await call.svc.object(container, name) if container is not None else None
        if info is None:
            not_found += 1
            return
        if is_slo(info) and depth <= MAX_DEPTH:
            for item in await load_manifest(call, container, name):  # type: ignore[arg-type]
                if "name" in item:
                    seg_container, seg_name = _split_path(item["name"])
                    await remove(seg_container, seg_name, depth + 1)
        try:
            await call.svc.delete_object(container, name)  # type: ignore[arg-type]
            deleted += 1
        except c.SwiftError:
            raise
        except Exception as exc:  # noqa: BLE001  (the service's NotFound: gone meanwhile)
            if getattr(exc, "status", 0) == 404:
                not_found += 1
            else:
                raise

    container = await call.svc.container(call.account, call.container)
    call.authorize("object_store:object:delete", container)
    info = await call.svc.object(container, call.obj) if container is not None else None
    if info is None:
        not_found = 1
    elif not is_slo(info):
        status = "400 Bad Request"
        errors.append([quote(f"/{call.container}/{call.obj}"), "Not an SLO manifest"])
    else:
        await remove(call.container, call.obj, 0)
    if errors and status == "200 OK":
        status = "400 Bad Request"
    report = {"Number Deleted": deleted, "Number Not Found": not_found, "Response Body": "",
              "Response Status": status, "Errors": errors}
    if _accept_json(call):
        body, ctype = json.dumps(report).encode(), "application/json; charset=utf-8"
    else:
        lines = [f"{k}: {report[k]}\n" for k in sorted(report) if k != "Errors"]
        body = ("".join(lines) + "Errors:\n" + "".join(f"{n}, {why}\n" for n, why in errors)).encode()
        ctype = "text/plain; charset=utf-8"
    return Response(body, status_code=200, media_type=ctype)
