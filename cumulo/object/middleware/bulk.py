"""Bulk operations: deleting many objects and containers in one request, and storing the files
of a tar archive in one upload, as Swift's ``bulk`` middleware does.

Turning them on and off
    Both are on by default.  ``[object] disabled_features`` lists ``bulk_delete`` to turn off
    bulk delete (this module) and ``bulk_upload`` to turn off archive extraction (its switch is
    the small module ``bulk_upload.py``; the work is done here).  ``GET /info`` has a
    ``bulk_delete`` section (``max_deletes_per_request``, ``max_failed_deletes``) and a
    ``bulk_upload`` section (``max_containers_per_extraction``, ``max_failed_extractions``).

Bulk delete: ``POST`` or ``DELETE`` on the account's URL with ``?bulk-delete``
    The body (``Content-Type: text/plain`` or none; a length or chunked) is one URL-encoded path
    per line: ``/container/object``, or ``/container`` for a container, which must be empty.
    Objects are deleted first, then containers, each as if its own ``DELETE`` were sent with
    the request's credentials (so each is authorized on its own).  Limits: 10,000 paths per
    request (more is a 413 'Maximum Bulk Deletes: 10000 per request'), a line no longer than
    twice the longest path (1,282 bytes; else 400 'Invalid File Name'), and at most 1,000
    failures before the rest is given up ('Max delete failures exceeded').

Archive extraction: ``PUT`` with ``?extract-archive=tar``, ``tar.gz`` or ``tar.bz2``
    On a container (or a pseudo-directory in one) each regular file of the archive becomes an
    object under that path; on the account's URL the first directory of each file's path is its
    container, made when missing (files at the top of the archive are skipped).  Directories,
    links and other entries are skipped.  Each file is stored as if its own ``PUT`` were sent:
    authorized, within quotas and ``[object] max_file_size`` (a larger file is a '413' error
    for that file).  The objects get the request's ``Content-Type`` (guessed from each file's
    name when there is none), its ``X-Object-Meta-*``, ``X-Delete-At`` and ``X-Delete-After``,
    and the ``user.mime_type`` / ``user.meta.*`` extended attributes a pax archive carries.
    The archive is read from the request as it arrives (never held whole).  Limits: 10,000
    containers made per archive, 1,000 failed files (then the rest is skipped), 1,000,000
    entries of any kind.  Another format value is a 400 'Unsupported archive format'.

The answer
    As in Swift, a bulk request the middleware takes is answered ``200 OK`` and its outcome is
    in the body, in the format ``Accept`` picks among ``text/plain`` (the default),
    ``application/json``, ``application/xml`` and ``text/xml`` (another one: '406 Not
    Acceptable' in the body): ``Response Status`` (``200 OK`` / ``201 Created`` when all went
    well; else the status of the failures, ``400 Bad Request`` or ``502 Bad Gateway`` for
    errors of the store), ``Response Body`` (why the whole request failed), ``Errors`` (pairs
    of a quoted path and its status) and ``Number Deleted`` with ``Number Not Found``, or
    ``Number Files Created``.  Unlike Swift no whitespace is sent while the work goes on: the
    answer comes when it is done, so a client's read timeout must allow for the whole work."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import mimetypes
import tarfile
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote_to_bytes
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import Response

from cumulo.object.api.common import MAX_CONTAINER_NAME, MAX_OBJECT_NAME, SwiftError
from cumulo.object.service import ObjectError

if TYPE_CHECKING:
    from cumulo.core.config import Config
    from cumulo.object.api import Call
    from cumulo.object.middleware import Handler

NAME = "bulk_delete"
ORDER = 20

MAX_DELETES_PER_REQUEST = 10000
MAX_FAILED_DELETES = 1000
MAX_CONTAINERS_PER_EXTRACTION = 10000
MAX_FAILED_EXTRACTIONS = 1000
MAX_ARCHIVE_ENTRIES = 1_000_000
MAX_PATH_LENGTH = MAX_OBJECT_NAME + MAX_CONTAINER_NAME + 2
READ_SIZE = 64 * 1024

ACCEPTABLE = ("text/plain", "application/json", "application/xml", "text/xml")
ARCHIVES = {"tar": "", "tar.gz": "gz", "tar.bz2": "bz2"}


class Failed(Exception):
    """The whole bulk request fails with this status and message (in the answer's body)."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status, self.message = status, message


def capabilities(cfg: Config) -> dict[str, Any] | None:
    return {"max_deletes_per_request": MAX_DELETES_PER_REQUEST, "max_failed_deletes": MAX_FAILED_DELETES}


def upload_capabilities() -> dict[str, Any]:
    return {"max_containers_per_extraction": MAX_CONTAINERS_PER_EXTRACTION,
            "max_failed_extractions": MAX_FAILED_EXTRACTIONS}


async def handle(call: Call, app: Handler) -> Response:
    if "bulk-delete" in call.request.query_params and call.request.method in ("POST", "DELETE"):
        return await bulk_delete(call, app)
    return await app(call)


# ---- what both share ----

def status_line(status: int) -> str:
    if status == 499:
        return "499 Client Disconnect"
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def answer_format(call: Call) -> str | None:
    """The best of ACCEPTABLE for the Accept header (text/plain without one), None for none."""
    header = call.request.headers.get("accept", "").strip()
    if not header:
        return ACCEPTABLE[0]
    best: tuple[float, int, str] | None = None
    for part in header.split(",")[:100]:
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    return None
        media = media.lower()
        for rank, option in enumerate(ACCEPTABLE):
            kind = option.split("/")[0]
            if media in (option, f"{kind}/*", "*/*") and q > 0:
                specificity = 2 if media == option else 1 if media.endswith("/*") and media != "*/*" else 0
                candidate = (q, specificity * 10 - rank, option)
                if best is None or candidate[:2] > best[:2]:
                    best = candidate
    return best[2] if best else None


def render(fmt: str | None, result: dict[str, Any], errors: list[list[str]], root: str) -> Response:
    if fmt == "application/json":
        body = json.dumps({**result, "Errors": errors}).encode()
    elif fmt is not None and fmt.endswith("/xml"):
        out = [f"<{root}>\n"]
        for key in sorted(result):
            tag = key.replace(" ", "_").lower()
            out.append(f"<{tag}>{escape(str(result[key]))}</{tag}>\n")
        out.append("<errors>\n")
        out.extend(f"<object><name>{escape(n)}</name><status>{escape(s)}</status></object>\n" for n, s in errors)
        out.append(f"</errors>\n</{root}>\n")
        body = "".join(out).encode()
    else:
        lines = [f"{key}: {result[key]}\n" for key in sorted(result)] + ["Errors:\n"]
        lines += [f"{name}, {status}\n" for name, status in errors]
        body = "".join(lines).encode()
    return Response(body, status_code=200, media_type=fmt or "text/plain")


def sub_call(call: Call, method: str, container: str, obj: str, headers: dict[str, str],
             receive: Callable[[], Awaitable[dict[str, Any]]] | None = None) -> Call:
    """A request of the same client to another path of the account (no query string)."""
    path = f"/v1/{call.account}/{container}" + (f"/{obj}" if obj else "")
    scope = dict(call.request.scope)
    keep = {"x-auth-token", "x-storage-token", "referer", "user-agent", "host"}
    scope["headers"] = [(k, v) for k, v in scope["headers"] if k.decode("latin-1").lower() in keep]
    scope["headers"] += [(k.lower().encode("latin-1"), v.encode("utf-8")) for k, v in headers.items()]
    scope.update(method=method, path=path, raw_path=quote(path).encode(), query_string=b"")

    async def empty() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    return dataclasses.replace(call, request=Request(scope, receive or empty), container=container, obj=obj)


async def status_of(app: Handler, call: Call) -> tuple[int, Response | None]:
    """Run a sub-request; its status, and its response when it gave one."""
    try:
        response = await app(call)
    except SwiftError as err:
        return err.status, None
    except ObjectError as err:
        return err.status, None
    return response.status_code, response


async def _drain(response: Response | None) -> None:
    iterator = getattr(response, "body_iterator", None)
    if iterator is not None:
        async for _ in iterator:
            pass


# ---- bulk delete ----

async def _paths(call: Call) -> list[str]:
    """The request's lines, unquoted, bounded in count and length."""
    request = call.request
    if request.headers.get("content-length") is None and \
            "chunked" not in request.headers.get("transfer-encoding", "").lower():
        raise Failed(411)
    paths: list[str] = []
    pending = b""

    def take(line: bytes) -> None:
        line = line.strip()
        if line:
            paths.append(line.decode("latin-1"))
        if len(paths) > MAX_DELETES_PER_REQUEST:
            raise Failed(413, f"Maximum Bulk Deletes: {MAX_DELETES_PER_REQUEST} per request")

    async for chunk in request.stream():
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if len(line) > MAX_PATH_LENGTH * 2:
                raise Failed(400, "Invalid File Name")
            take(line)
        if len(pending) > MAX_PATH_LENGTH * 2:
            raise Failed(400, "Invalid File Name")
    take(pending)
    return paths


async def bulk_delete(call: Call, app: Handler) -> Response:
    fmt = answer_format(call)
    result: dict[str, Any] = {"Response Status": status_line(200), "Response Body": "",
                              "Number Deleted": 0, "Number Not Found": 0}
    errors: list[list[str]] = []
    try:
        if fmt is None:
            raise Failed(406)
        incoming = call.request.headers.get("content-type")
        if incoming and not incoming.startswith("text/plain"):
            raise Failed(406)
        failure = 400
        raw = await _paths(call)
        objects = [p for p in raw if "/" in p.strip("/")]
        containers = [p for p in raw if "/" not in p.strip("/")]
        for quoted in objects + containers:
            try:
                name = unquote_to_bytes(quoted).decode("utf-8")
            except UnicodeDecodeError:
                errors.append([quoted, status_line(412)])
                continue
            path = name.lstrip("/")
            if not path:
                continue
            container, _, obj = path.partition("/")
            status, response = await status_of(app, sub_call(call, "DELETE", container, obj, {}))
            await _drain(response)
            if status // 100 == 2:
                result["Number Deleted"] += 1
            elif status == 404:
                result["Number Not Found"] += 1
            else:
                if status // 100 == 5:
                    failure = 502
                errors.append([quote(name), status_line(status)])
            if len(errors) >= MAX_FAILED_DELETES:
                raise Failed(400, "Max delete failures exceeded")
        if errors:
            result["Response Status"] = status_line(failure)
        elif not (result["Number Deleted"] or result["Number Not Found"]):
            result["Response Status"] = status_line(400)
            result["Response Body"] = "Invalid bulk delete."
    except Failed as err:
        result["Response Status"] = status_line(err.status)
        result["Response Body"] = err.message
    return render(fmt, result, errors, "delete")


# ---- archive extraction ----

class _RequestBody(io.RawIOBase):
    """The request's body as a blocking file for tarfile, read in a worker thread: each read
    waits for the next chunks from the event loop."""

    def __init__(self, chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self.chunks, self.loop = chunks, loop
        self.buffer = b""
        self.done = False

    def readable(self) -> bool:
        return True

    async def _next(self) -> bytes | None:
        try:
            return await self.chunks.__anext__()
        except StopAsyncIteration:
            return None

    def read(self, size: int = -1) -> bytes:
        want = READ_SIZE if size is None or size < 0 else size
        while len(self.buffer) < want and not self.done:
            chunk = asyncio.run_coroutine_threadsafe(self._next(), self.loop).result()
            if chunk is None:
                self.done = True
            else:
                self.buffer += chunk
        out, self.buffer = self.buffer[:want], self.buffer[want:]
        return out

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


def _pax_headers(member: tarfile.TarInfo) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in member.pax_headers.items():
        for prefix in ("SCHILY.xattr.user.", "LIBARCHIVE.xattr.user."):
            if key.startswith(prefix):
                attr = key[len(prefix):]
                if attr == "mime_type":
                    out["content-type"] = value
                elif attr.startswith("meta.") and len(attr) > len("meta."):
                    out[f"x-object-meta-{attr[len('meta.'):]}"] = value
    return out


async def extract_archive(call: Call, app: Handler) -> Response:
    kind = ARCHIVES.get(call.request.query_params.get("extract-archive", "").lower().strip("."))
    if kind is None:
        raise SwiftError(400, "Unsupported archive format")
    fmt = answer_format(call)
    result: dict[str, Any] = {"Response Status": status_line(201), "Response Body": "", "Number Files Created": 0}
    errors: list[list[str]] = []
    try:
        if fmt is None:
            raise Failed(406)
        await _extract(call, app, kind, result, errors)
    except Failed as err:
        result["Response Status"] = status_line(err.status)
        result["Response Body"] = err.message
    except (tarfile.TarError, zlib.error, EOFError, OSError, ValueError) as exc:
        # a damaged archive: tarfile's own errors, and gzip/bz2 ones (OSError, EOFError)
        result["Response Status"] = status_line(400)
        result["Response Body"] = f"Invalid Tar File: {exc}"
    return render(fmt, result, errors, "extract")


async def _extract(call: Call, app: Handler, kind: str, result: dict[str, Any], errors: list[list[str]]) -> None:
    request = call.request
    if request.headers.get("content-length") is None and \
            "chunked" not in request.headers.get("transfer-encoding", "").lower():
        raise Failed(411)
    base = call.container + (f"/{call.obj}" if call.obj else "")
    base = base.rstrip("/")
    body = _RequestBody(request.stream(), asyncio.get_running_loop())
    tar = await asyncio.to_thread(tarfile.open, mode=f"r|{kind}", fileobj=body)
    copied = {k: v for k, v in request.headers.items()
              if k in ("x-delete-at", "x-delete-after") or k.startswith("x-object-meta-")}
    given_type = request.headers.get("content-type")
    detect = request.headers.get("x-detect-content-type", "").lower() in ("true", "1", "yes", "on")
    failure = 400
    seen: set[str] = set()
    made = 0
    for _ in range(MAX_ARCHIVE_ENTRIES):
        member = await asyncio.to_thread(tar.next)
        if member is None or len(errors) >= MAX_FAILED_EXTRACTIONS:
            break
        if not member.isfile():
            continue
        path = member.name
        if path.startswith("./"):
            path = path[2:]
        path = path.lstrip("/")
        if base:
            path = f"{base}/{path}"
        if "/" not in path:
            continue  # a file at the account's top has no container
        shown = quote(path[:MAX_PATH_LENGTH].encode("utf-8", "surrogateescape"))
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            errors.append([shown, status_line(412)])
            continue
        if member.size > call.max_file_size:
            errors.append([shown, status_line(413)])
            continue
        container, _, obj = path.partition("/")
        container_failure = None
        if container not in seen:
            if len(container.encode()) > MAX_CONTAINER_NAME or not container:
                errors.append([shown, status_line(400)])
                continue
            if await call.svc.container(call.account, container) is None:
                status, response = await status_of(app, sub_call(call, "PUT", container, "",
                                                                 {"content-length": "0"}))
                await _drain(response)
                if status // 100 == 2:
                    made += 1
                    if made > MAX_CONTAINERS_PER_EXTRACTION:
                        raise Failed(400, f"More than {MAX_CONTAINERS_PER_EXTRACTION} containers to create "
                                          "from tar.")
                else:
                    # the object's PUT may still pass, by the container's write ACL
                    container_failure = [quote(f"/v1/{call.account}/{container}"[:MAX_PATH_LENGTH]),
                                         status_line(status)]
                    if status == 401:
                        raise Failed(401)
        headers = {**copied, "content-length": str(member.size), **_pax_headers(member)}
        if "content-type" not in headers:
            guessed = mimetypes.guess_type(obj)[0] if detect or not given_type else None
            headers["content-type"] = guessed or given_type or "application/octet-stream"
        source = await asyncio.to_thread(tar.extractfile, member)
        status, response = await status_of(app, sub_call(call, "PUT", container, obj, headers,
                                                         _member_receiver(source)))
        await _drain(response)
        seen.add(container)
        if status // 100 == 2:
            result["Number Files Created"] += 1
            continue
        if container_failure:
            errors.append(container_failure)
        if status == 401:
            errors.append([shown, status_line(401)])
            raise Failed(401)
        if status // 100 == 5:
            failure = 502
        errors.append([shown, status_line(status)])
    else:
        raise Failed(400, f"More than {MAX_ARCHIVE_ENTRIES} entries in the archive")
    if errors:
        result["Response Status"] = status_line(failure)
    elif not result["Number Files Created"]:
        result["Response Status"] = status_line(400)
        result["Response Body"] = "Invalid Tar File: No Valid Files"


def _member_receiver(source: Any) -> Callable[[], Awaitable[dict[str, Any]]]:
    """An ASGI receive that gives one archive member's bytes, read in a worker thread."""
    async def receive() -> dict[str, Any]:
        data = await asyncio.to_thread(source.read, READ_SIZE) if source is not None else b""
        return {"type": "http.request", "body": data, "more_body": bool(data)}
    return receive
