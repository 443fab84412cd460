"""FormPost: a browser's ``multipart/form-data`` POST stores its files as objects, without a token,
under a form signed with a Temp-URL key, as Swift's formpost middleware does.

On by default; ``[object] disabled_features = ["formpost"]`` turns it off (such a POST is then an
ordinary object or container POST).

The form is POSTed to ``/v1/<account>/<container>/<prefix>`` (the prefix may be empty) and holds,
before its file fields, ``redirect`` (optional), ``max_file_size``, ``max_file_count``,
``expires`` (unix seconds) and ``signature``: the HMAC, under one of the account's or the
container's Temp-URL keys (see tempurl), of
``"<path>\\n<redirect>\\n<max_file_size>\\n<max_file_count>\\n<expires>"``, in hex or
``<digest>:<base64>`` with the digests TempURL takes (sha1, sha256, sha512).  Optional fields
``x_delete_at`` / ``x_delete_after`` and ``content-type`` / ``content-encoding`` apply to every
file (a file part's own Content-Type and Content-Encoding otherwise).  Each file is stored as
``<prefix><its filename>``; fields after a file apply only to the files after them.

Answers (Swift's): no key or a bad signature ``401 FormPost: Invalid Signature``; a form past its
expiry ``401 FormPost: Form Expired``; a file larger than ``max_file_size`` (or than ``[object]
max_file_size``) ``400 FormPost: max_file_size exceeded`` and nothing stored for it; a field that
should be an integer and is not, a 400 naming it; no file ``400 ... No Files To Process``; more
files than ``max_file_count`` stops at the first one over (``400 ... Max File Count Exceeded``,
those before it kept).  With ``redirect`` the answer is a ``303`` to it with ``status=<the last
upload's status>&message=<why not, or empty>`` added; without, the status line as text.

Bounds: a field's value is read up to 4 KiB (the rest dropped), a part's headers up to 8 KiB, at
most 256 fields besides files, and no field longer than 1 MiB in all; a body that is not well
formed multipart is a 400 ``FormPost: invalid starting boundary`` or ``FormPost: malformed form``."""

from __future__ import annotations

import dataclasses
import email.parser
import email.utils
import hmac
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from cumulo.object.api.common import SwiftError
from cumulo.object.middleware import tempurl, with_headers

if TYPE_CHECKING:
    from cumulo.object.api import Call
    from cumulo.object.middleware import Handler

NAME = "formpost"
ORDER = 31

MAX_VALUE_LENGTH = 4096
MAX_FIELD_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 8192
MAX_FIELDS = 256
MAX_PREAMBLE = 65536

_STATUS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
           401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 411: "Length Required",
           413: "Request Entity Too Large", 422: "Unprocessable Entity", 499: "Client Disconnect",
           503: "Service Unavailable"}


class FormInvalid(Exception):
    """A 400 ``FormPost: <message>``."""


class FormUnauthorized(Exception):
    """A 401 ``FormPost: <Message Titled>``."""


def capabilities(cfg: Any) -> dict[str, Any]:
    return {"allowed_digests": list(tempurl.DIGESTS), "deprecated_digests": list(tempurl.DEPRECATED_DIGESTS)}


def _params(value: str) -> tuple[str, dict[str, str]]:
    """``form-data; name="x"; filename="y"`` -> ("form-data", {"name": "x", "filename": "y"})."""
    msg = email.parser.HeaderParser().parsestr(f"Content-Type: {value}\n\n")
    params = msg.get_params() or [("", "")]
    main = params[0][0].lower()
    return main, {k.lower(): email.utils.collapse_rfc2231_value(v) for k, v in params[1:]}


class Parts:
    """A streaming reader of a multipart body: headers then a body per part, held to bounds."""

    def __init__(self, stream: AsyncIterator[bytes], boundary: bytes) -> None:
        self.stream, self.buf, self.eof = stream, bytearray(b"\r\n"), False
        self.delim = b"\r\n--" + boundary

    async def _fill(self) -> bool:
        if self.eof:
            return False
        async for chunk in self.stream:
            if chunk:
                self.buf += chunk
                return True
        self.eof = True
        return False

    async def body(self) -> AsyncIterator[bytes]:
        """The current part's data up to the next delimiter (which is consumed)."""
        keep = len(self.delim) - 1
        while True:
            at = self.buf.find(self.delim)
            if at >= 0:
                if at:
                    yield bytes(self.buf[:at])
                del self.buf[:at + len(self.delim)]
                return
            if len(self.buf) > keep:
                out = bytes(self.buf[:-keep])
                del self.buf[:-keep]
                yield out
            if not await self._fill():
                raise FormInvalid("malformed form")

    async def start(self) -> None:
        size = 0
        async for chunk in self.body():
            size += len(chunk)
            if size > MAX_PREAMBLE:
                raise FormInvalid("invalid starting boundary")

    async def next_headers(self) -> dict[str, str] | None:
        """After a delimiter: the next part's headers, or None at the closing delimiter."""
        while len(self.buf) < 2:
            if not await self._fill():
                raise FormInvalid("malformed form")
        if self.buf[:2] == b"--":
            return None
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > MAX_HEADER_BYTES:
                raise FormInvalid("malformed form")
            if not await self._fill():
                raise FormInvalid("malformed form")
        block = bytes(self.buf[:end]).decode("utf-8", "replace")
        del self.buf[:end + 4]
        headers: dict[str, str] = {}
        for line in block.split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return headers


async def handle(call: Call, app: Handler) -> Response:
    if call.request.method != "POST":
        return await app(call)
    kind, attrs = _params(call.request.headers.get("content-type", ""))
    if kind != "multipart/form-data" or not attrs.get("boundary"):
        return await app(call)
    try:
        return await _translate(call, app, attrs["boundary"].encode("latin-1", "replace"))
    except FormInvalid as err:
        body = f"FormPost: {err}".encode()
        return Response(body, status_code=400, media_type="text/plain")
    except FormUnauthorized as err:
        body = f"FormPost: {str(err).title()}".encode()
        return Response(body, status_code=401, media_type="text/html; charset=UTF-8")


async def _keys(call: Call) -> list[str]:
    if not call.container:
        return []
    keys = tempurl.keys_of((await call.svc.account(call.account)).meta)
    container = await call.svc.container(call.account, call.container)
    if container is not None:
        keys += tempurl.keys_of(container.meta)
    return keys


async def _translate(call: Call, app: Handler, boundary: bytes) -> Response:
    keys = await _keys(call)
    parts = Parts(call.request.stream(), boundary)
    await parts.start()
    fields: dict[str, str] = {}
    status, message, sub_body = 0, "", b""
    files = 0
    while (headers := await parts.next_headers()) is not None:
        disp, attrs = _params(headers.get("content-disposition", ""))
        if disp == "form-data" and attrs.get("filename"):
            files += 1
            try:
                allowed_files = int(fields.get("max_file_count") or 0)
            except ValueError:
                raise FormInvalid("max_file_count not an integer") from None
            if files > allowed_files:
                status, message = 400, "max file count exceeded"
                break
            file_fields = dict(fields, filename=attrs["filename"])
            if "content-type" not in fields and "content-type" in headers:
                file_fields["content-type"] = headers["content-type"] or "application/octet-stream"
            if "content-encoding" not in fields and "content-encoding" in headers:
                file_fields["content-encoding"] = headers["content-encoding"]
            status, sub_body = await _upload(call, app, file_fields, parts, keys)
            if not 200 <= status < 300:
                break
            continue
        if len(fields) >= MAX_FIELDS:
            raise FormInvalid("too many form fields")
        data, size = bytearray(), 0
        async for chunk in parts.body():
            size += len(chunk)
            if size > MAX_FIELD_BYTES:
                raise FormInvalid("form field too large")
            if len(data) < MAX_VALUE_LENGTH:
                data += chunk[:MAX_VALUE_LENGTH - len(data)]
        if "name" in attrs:
            fields[attrs["name"].lower()] = data.decode("utf-8", "replace").rstrip("\r\n-")
    if not status:
        status, message = 400, "no files to process"
    line = f"{status} {_STATUS.get(status, '')}".strip()
    redirect = fields.get("redirect")
    if not redirect:
        text = line + (f"\r\nFormPost: {message.title()}" if message else "")
        body = sub_body if not 200 <= status < 300 and sub_body else text.encode()
        return Response(body, status_code=status, media_type="text/plain")
    location = redirect + ("&" if "?" in redirect else "?") + f"status={quote(str(status))}&message={quote(message)}"
    body = f'<html><body><p><a href="{location}">Click to continue...</a></p></body></html>'.encode()
    return Response(body, status_code=303, headers={"Location": location}, media_type="text/html; charset=UTF-8")


def _check(call: Call, fields: dict[str, str], keys: list[str]) -> None:
    if not keys:
        raise FormUnauthorized("invalid signature")
    for name in ("max_file_size",):
        try:
            int(fields.get(name) or 0)
        except ValueError:
            raise FormInvalid(f"{name} not an integer") from None
    try:
        if int(fields.get("expires") or 0) < time.time():
            raise FormUnauthorized("form expired")
    except ValueError:
        raise FormInvalid("expired not an integer") from None
    message = "\n".join((call.request.url.path, fields.get("redirect") or "", fields.get("max_file_size") or "0",
                         fields.get("max_file_count") or "0", fields.get("expires") or "0"))
    try:
        digest, signature = tempurl.parse_signature(fields.get("signature", ""))
    except ValueError:
        raise FormUnauthorized("invalid signature") from None
    if digest not in tempurl.DIGESTS:
        raise FormUnauthorized("invalid signature")
    if not any(hmac.compare_digest(tempurl.sign(key, message, digest), signature) for key in keys):
        raise FormUnauthorized("invalid signature")


async def _upload(call: Call, app: Handler, fields: dict[str, str], parts: Parts,
                  keys: list[str]) -> tuple[int, bytes]:
    """One file part as an object PUT through the rest of the pipeline: (status, body)."""
    _check(call, fields, keys)
    max_size = max(0, int(fields.get("max_file_size") or 0))
    headers: dict[str, str | None] = {"content-length": None, "transfer-encoding": "chunked", "etag": None,
                                      "content-type": fields.get("content-type") or "application/octet-stream",
                                      "x-copy-from": None, "x-object-manifest": None, "x-symlink-target": None,
                                      "x-timestamp": None}
    for field, header, what in (("x_delete_at", "x-delete-at", "Unix timestamp required."),
                                ("x_delete_after", "x-delete-after", "Number of seconds required.")):
        if field in fields:
            try:
                headers[header] = str(int(fields[field]))
            except ValueError:
                raise FormInvalid(f"{field} not an integer: {what}") from None
    if "content-encoding" in fields:
        headers["content-encoding"] = fields["content-encoding"]
    path = call.request.url.path
    if not path.endswith("/") and path.count("/") < 4:
        path += "/"
    path += fields["filename"]
    sent = 0
    body = parts.body()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        try:
            chunk = await body.__anext__()
        except StopAsyncIteration:
            return {"type": "http.request", "body": b"", "more_body": False}
        sent += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    sub = with_headers(call, headers, method="PUT", path=path)
    sub.request.scope["query_string"] = b""
    sub = dataclasses.replace(sub, request=Request(sub.request.scope, receive), granted=NAME,
                              grant=(call.account, call.container),
                              max_file_size=min(call.max_file_size, max_size))
    try:
        response = await app(sub)
    except SwiftError as err:
        if err.status == 413 and sent > max_size:
            raise FormInvalid("max_file_size exceeded") from None
        response = err.response("PUT")
    async for _ in body:  # the rest of the part, when the handler stopped early
        sent += len(_)
        if sent > max_size:
            raise FormInvalid("max_file_size exceeded")
    return response.status_code, bytes(getattr(response, "body", b"") or b"")
