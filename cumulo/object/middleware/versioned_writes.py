"""Object versioning, Swift's ``versioned_writes`` (its legacy modes): a container that names an
*archive container* keeps every overwritten copy of its objects there.

Turning it on and off
    On by default; ``[object] disabled_features = versioned_writes`` turns it off for the whole
    cloud (the headers below are then ignored, and containers that had them behave as plain
    containers until it is on again: what they named is kept).  ``GET /info`` shows
    ``"versioned_writes": {"allowed_flags": ["x-versions-location", "x-history-location"]}``.

Per container (its owners only: a container PUT or POST, which readers and ACL users cannot make)
    ``X-Versions-Location: <archive>``
        *stack* mode: a DELETE takes the newest archived copy back in place (and out of the
        archive); the name answers 404 only once every archived copy has been taken back.
    ``X-History-Location: <archive>``
        *history* mode: a DELETE first archives the current copy, then writes a *delete marker*
        (a zero-byte object of type ``application/x-deleted;swift_versions_deleted=1``) in the
        archive, then deletes the object.  Nothing is ever taken back by itself.
    Only one of the two at a time: both with values is a 400; an empty value, or
    ``X-Remove-Versions-Location`` / ``X-Remove-History-Location`` with any non-empty value,
    turns versioning off (setting wins over removing in the same request).  The value is a
    container name of the same account, URL-encoded, without a slash (412 otherwise); it is kept
    as given and shown back on the container's HEAD and GET in the header that set it.  The
    archive container need not exist when it is named, but must when something is archived.

What is archived
    A PUT, a PUT with ``X-Copy-From`` or a COPY whose destination is an object that exists in a
    versioned container first copies that object, server side, to
    ``<archive>/<len><name>/<timestamp>``: ``<len>`` is the name's length in UTF-8 bytes as three
    hex digits, ``<timestamp>`` the archived copy's own X-Timestamp (so the archive's name order is
    the versions' age order).  The copy keeps the data, Content-Type, ETag, user metadata and the
    kept headers (Content-Disposition, Content-Encoding, X-Object-Manifest...).  A POST makes no
    version.  To bring back an older version, COPY it from the archive onto the object (which
    archives the current one); to drop one, DELETE it in the archive.

Access
    As in Swift, versioning asks for write access to the *versioned* container only (the token's
    project, or its write ACL): the archive is written on the user's behalf, so one archive can
    serve containers that different users may write, and those users need no access to it.

Failures, as Swift answers them
    412 when the archive container does not exist (or an archived name would be longer than
    1,024 bytes), before anything is changed; 503 when a copy cannot be stored.  An object larger
    than ``[object] max_file_size`` is not archived (413).

Limits
    A stack-mode DELETE looks through at most 10,000 archived entries of one object for one to
    take back.  Versioning an archive container itself is allowed but not useful.  The newer
    ``X-Versions-Enabled`` versioning (Swift's ``object_versioning``) is not implemented."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from starlette.responses import Response

from cumulo.core.config import Config
from cumulo.object.api.common import MAX_CONTAINER_NAME, MAX_OBJECT_NAME, SwiftError
from cumulo.object.middleware import Handler
from cumulo.object.service import ContainerInfo, Listing, NotFound, ObjectInfo, now_timestamp

if TYPE_CHECKING:
    from cumulo.object.api import Call

NAME = "versioned_writes"
ORDER = 60

VERSIONS, HISTORY = "x-versions-location", "x-history-location"
REMOVE = ("x-remove-versions-location", "x-remove-history-location")
DELETE_MARKER = "application/x-deleted;swift_versions_deleted=1"
# system metadata: container meta keys with a ':' no header can set, and no listing shows
LOCATION_KEY, MODE_KEY = "sysmeta:versions-location", "sysmeta:versions-mode"

PAGE = 100
MAX_SCANNED = 10000
_TIMESTAMP = re.compile(r"\d{10}\.\d{5}")


def capabilities(cfg: Config) -> dict[str, Any] | None:
    return {"allowed_flags": [VERSIONS, HISTORY]}


async def handle(call: Call, app: Handler) -> Response:
    if not call.container:
        return await app(call)
    if not call.obj:
        return await _container_request(call, app)
    method = call.request.method
    if method == "PUT":
        copy_from = call.request.headers.get("x-copy-from")
        source = _split(copy_from) if copy_from else None
        if copy_from and source is None:
            return await app(call)  # a malformed X-Copy-From: the object handler says so
        await _archive_before_write(call, call.container, call.obj, source)
        return await app(call)
    if method == "COPY":
        target = _split(call.request.headers.get("destination") or "")
        if target is not None:
            await _archive_before_write(call, target[0], target[1], (call.container, call.obj))
        return await app(call)
    if method == "DELETE":
        return await _delete(call, app)
    return await app(call)


# ---- containers ----

def _location_of(info: ContainerInfo) -> tuple[str, str]:
    """(the header value as it was set, 'stack' or 'history'), or ('', '') when not versioned."""
    location = info.meta.get(LOCATION_KEY, "")
    return location, (info.meta.get(MODE_KEY) or "stack") if location else ""


async def _container_request(call: Call, app: Handler) -> Response:
    method = call.request.method
    if method not in ("PUT", "POST"):
        response = await app(call)
        if method in ("GET", "HEAD") and 200 <= response.status_code < 300:
            info = await call.svc.container(call.account, call.container)
            location, mode = _location_of(info) if info is not None else ("", "")
            if location:
                response.headers[HISTORY if mode == "history" else VERSIONS] = location
        return response
    change = _requested_change(call)
    if change is None:
        return await app(call)
    response = await app(call)
    if 200 <= response.status_code < 300:
        location, mode = change
        await call.svc.update_container(call.account, call.container,
                                        {LOCATION_KEY: location, MODE_KEY: mode}, None, None)
    return response


def _requested_change(call: Call) -> tuple[str, str] | None:
    """What a container PUT/POST asks of versioning: (location, mode), ('', '') to turn it off,
    or None to leave it as it is."""
    h = call.request.headers
    versions, history = h.get(VERSIONS), h.get(HISTORY)
    if versions is not None and history is not None:
        if not history:
            history = None  # an empty X-History-Location defers to X-Versions-Location
        elif versions:
            raise SwiftError(400, f"Only one of {VERSIONS} or {HISTORY} may be specified")
        else:
            versions = None
    if versions is not None or history is not None:
        value, mode = (versions, "stack") if versions is not None else (history, "history")
        assert value is not None
        if not value:
            return "", ""
        if "/" in value:
            raise SwiftError(412, "Container name cannot contain slashes")
        name = archive_name(value)
        if not name:
            raise SwiftError(412, "Container name cannot be empty")
        if len(name.encode()) > MAX_CONTAINER_NAME:
            raise SwiftError(412, f"Container name length of {len(name.encode())} longer than "
                                  f"{MAX_CONTAINER_NAME}")
        return value, mode
    if any(h.get(name) for name in REMOVE):
        return "", ""
    return None


# ---- objects ----

def archive_name(location: str) -> str:
    """The archive container a location header names: URL-decoded, up to a first slash.  A header
    arrives as latin-1 text; one sent as raw UTF-8 is read as such."""
    try:
        location = location.encode("latin-1").decode("utf-8")
    except UnicodeError:
        pass
    return unquote(location).split("/")[0]


def _split(value: str) -> tuple[str, str] | None:
    container, _, obj = unquote(value).lstrip("/").partition("/")
    return (container, obj) if container and obj else None


def prefix_of(name: str) -> str:
    """The archive's name prefix of one object's versions: its UTF-8 length in 3 hex digits."""
    return f"{len(name.encode()):03x}{name}/"


def _version_name(name: str, timestamp: str) -> str:
    ts = timestamp if _TIMESTAMP.fullmatch(timestamp) else f"{float(timestamp):016.5f}"
    version = prefix_of(name) + ts
    if len(version.encode()) > MAX_OBJECT_NAME:
        raise SwiftError(412)  # Swift's answer when the archive refuses the copy
    return version


async def _versioned(call: Call, container: str) -> tuple[ContainerInfo, str, str] | None:
    """The container, its archive container's name and mode, or None when it is not versioned."""
    info = await call.svc.container(call.account, container)
    if info is None:
        return None
    location, mode = _location_of(info)
    if not location:
        return None
    return info, archive_name(location), mode


async def _archive_container(call: Call, name: str) -> ContainerInfo:
    info = await call.svc.container(call.account, name)
    if info is None:
        raise SwiftError(412)
    return info


async def _archive_before_write(call: Call, container: str, obj: str, source: tuple[str, str] | None) -> None:
    """Before a PUT or COPY onto ``container/obj``: the copy there moves to the archive."""
    found = await _versioned(call, container)
    if found is None or not obj:
        return
    info, archive_name, _ = found
    call.authorize("object_store:object:put", info)
    if source is not None:
        src = await call.svc.container(call.account, source[0])
        if src is None or await call.svc.object(src, source[1]) is None:
            return  # the copy will fail on its own; nothing to version
    if await call.svc.object(info, obj) is None:
        return
    archive = await _archive_container(call, archive_name)
    await _copy(call, info, obj, archive, None)


async def _copy(call: Call, src: ContainerInfo, name: str, dest: ContainerInfo, dest_name: str | None) -> bool:
    """Copy one object server side, metadata and all; ``dest_name`` None means the archive name
    by the copy's timestamp.  False when the source is gone."""
    from cumulo.object.storage import QuorumError, TooLarge

    opened = await call.svc.open_object(src, name)
    if opened is None:
        return False
    info, reader = opened
    try:
        if info.size > call.max_file_size:
            raise SwiftError(413, "Your request is too large.")
        target = dest_name if dest_name is not None else _version_name(name, info.timestamp)
        await call.svc.put_object(dest, target, _chunks(reader, info), content_type=info.content_type,
                                  meta=dict(info.meta), expected_etag=None, content_length=info.size,
                                  max_size=call.max_file_size)
    except TooLarge:
        raise SwiftError(413, "Your request is too large.") from None
    except (QuorumError, NotFound):
        raise SwiftError(503) from None
    finally:
        reader.close()
    return True


async def _chunks(reader: Any, info: ObjectInfo) -> AsyncIterator[bytes]:
    async for chunk in reader.iter_range(0, info.size):
        yield chunk


async def _empty() -> AsyncIterator[bytes]:
    for chunk in ():
        yield chunk


async def _delete(call: Call, app: Handler) -> Response:
    found = await _versioned(call, call.container)
    if found is None:
        return await app(call)
    info, archive_name, mode = found
    call.authorize("object_store:object:delete", info)
    if mode == "history":
        archive = await _archive_container(call, archive_name)
        if await call.svc.object(info, call.obj) is not None:
            await _copy(call, info, call.obj, archive, None)
        marker = _version_name(call.obj, now_timestamp())
        await call.svc.put_object(archive, marker, _empty(), content_type=DELETE_MARKER, meta={},
                                  expected_etag=None, content_length=0)
        return await app(call)
    archive_info = await call.svc.container(call.account, archive_name)
    if archive_info is None:
        return await app(call)  # nothing can have been archived: a plain DELETE
    return await _pop(call, app, info, archive_info)


async def _history(call: Call, archive: ContainerInfo, name: str) -> AsyncIterator[dict[str, Any]]:
    """One object's archived entries, newest first."""
    marker, seen = "", 0
    while seen < MAX_SCANNED:
        page = await call.svc.objects(archive, Listing(prefix=prefix_of(name), marker=marker, limit=PAGE,
                                                       reverse=True))
        for entry in page:
            yield entry
        seen += len(page)
        if len(page) < PAGE:
            return
        marker = page[-1]["name"]


async def _pop(call: Call, app: Handler, info: ContainerInfo, archive: ContainerInfo) -> Response:
    """Stack mode's DELETE: the newest archived copy replaces the object and leaves the archive."""
    versions = _history(call, archive, call.obj)
    async for entry in versions:
        if entry["content_type"] == DELETE_MARKER:
            # the object was deleted in history mode: if it came back since, only it goes
            if await call.svc.object(info, call.obj) is not None:
                break
            async for older in versions:
                if older["content_type"] == DELETE_MARKER:
                    break
                if await _copy(call, archive, older["name"], info, call.obj):
                    await _drop(call, archive, older["name"])
                    break
            await _drop(call, archive, entry["name"])
            return Response(status_code=204)
        if await _copy(call, archive, entry["name"], info, call.obj):
            await _drop(call, archive, entry["name"])
            return Response(status_code=204)
    return await app(call)


async def _drop(call: Call, archive: ContainerInfo, name: str) -> None:
    try:
        await call.svc.delete_object(archive, name)
    except NotFound:
        pass  # another DELETE took it first; it was there long enough to be copied
