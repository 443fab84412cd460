"""What every Swift v1 resource shares: Swift's errors (a status with a short HTML or plain-text
body), its constraints on names and metadata, timestamps and dates, and the listing formats."""

from __future__ import annotations

import json
import math
import time
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

from starlette.requests import Request
from starlette.responses import Response

from cumulo.object.service import ContainerInfo, Listing, ObjectInfo

if TYPE_CHECKING:
    from cumulo.object.api import Call

MAX_META_NAME = 128
MAX_META_VALUE = 256
MAX_META_COUNT = 90
MAX_META_OVERALL = 4096
MAX_HEADER_SIZE = 8192
MAX_OBJECT_NAME = 1024
MAX_CONTAINER_NAME = 256
MAX_ACCOUNT_NAME = 256
LISTING_LIMIT = 10000

_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 411: "Length Required", 412: "Precondition Failed",
           413: "Request Entity Too Large", 416: "Requested Range Not Satisfiable", 422: "Unprocessable Entity",
           499: "Client Disconnect", 503: "Service Unavailable"}
_DEFAULTS = {401: "This server could not verify that you are authorized to access the document you requested.",
             403: "Access was denied to this resource.", 404: "The resource could not be found.",
             409: "There was a conflict when trying to complete your request.",
             411: "Length Required", 412: "A precondition for this request was not met.",
             413: "The body of your request was too large for this server.",
             416: "The Range requested is not available.",
             422: "Unable to process the contained instructions",
             503: "The server is currently unavailable. Please try again at a later time."}


class SwiftError(Exception):
    """An answer other than success: ``message`` is sent as text/plain, or Swift's default HTML
    body for the status when there is none."""

    def __init__(self, status: int, message: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(message or _TITLES.get(status, ""))
        self.status, self.message, self.headers = status, message, headers or {}

    def response(self, method: str) -> Response:
        if self.message:
            body, ctype = self.message, "text/plain; charset=UTF-8"
        else:
            title = _TITLES.get(self.status, "Error")
            body = f"<html><h1>{title}</h1><p>{_DEFAULTS.get(self.status, title)}</p></html>"
            ctype = "text/html; charset=UTF-8"
        data = body.encode()
        headers = {**self.headers, "Content-Length": str(len(data))}
        return Response(b"" if method == "HEAD" else data, status_code=self.status, headers=headers,
                        media_type=ctype)


def http_date(timestamp: str | float) -> str:
    """Last-Modified: Swift rounds the timestamp up to the whole second."""
    return formatdate(math.ceil(float(timestamp)), usegmt=True)


def iso_time(timestamp: str | float) -> str:
    """A listing's last_modified: ISO 8601 in UTC with microseconds, no zone (as Swift writes it)."""
    t = float(timestamp)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(round((t % 1) * 1e6)) % 1000000:06d}"


def parse_http_date(value: str) -> float | None:
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def metadata(request: Request, kind: str, removals: bool = True) -> dict[str, str]:
    """``X-<kind>-Meta-*`` (and ``X-Remove-<kind>-Meta-*``, an empty value, unless not
    ``removals``) of the request, checked against Swift's limits (400 with Swift's words)."""
    prefix = f"x-{kind}-meta-"
    remove = f"x-remove-{kind}-meta-" if removals else "\0"
    out: dict[str, str] = {}
    count = size = 0
    for raw_key, raw_value in request.headers.raw:
        key = raw_key.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if key.startswith(remove):
            name, value = key[len(remove):], ""
        elif key.startswith(prefix):
            name = key[len(prefix):]
        else:
            continue
        if not name:
            raise SwiftError(400, "Metadata name cannot be empty")
        if len(name) > MAX_META_NAME:
            raise SwiftError(400, f"Metadata name too long: {prefix}{name}; max {MAX_META_NAME}")
        if len(value) > MAX_META_VALUE:
            raise SwiftError(400, f"Metadata value longer than {MAX_META_VALUE}: {prefix}{name}")
        count += 1
        size += len(name) + len(value)
        if count > MAX_META_COUNT:
            raise SwiftError(400, f"Too many metadata items; max {MAX_META_COUNT}")
        if size > MAX_META_OVERALL:
            raise SwiftError(400, f"Total metadata too large; max {MAX_META_OVERALL}")
        out[name] = value
    return out


# the prefix of the system metadata the API itself keeps (account quotas); features use it too
SYSMETA = "sysmeta:"


def meta_headers(kind: str, meta: dict[str, str]) -> dict[str, str]:
    # a name with ':' is system metadata a feature keeps (no header can set it): never shown
    return {f"X-{kind.capitalize()}-Meta-{name.title()}": value for name, value in meta.items() if ":" not in name}


def check_merged_meta(meta: dict[str, str]) -> None:
    """The stored metadata after an update must fit Swift's limits too (system metadata aside)."""
    meta = {k: v for k, v in meta.items() if ":" not in k}
    if len(meta) > MAX_META_COUNT:
        raise SwiftError(400, f"Too many metadata items; max {MAX_META_COUNT}")
    if sum(len(k) + len(v) for k, v in meta.items()) > MAX_META_OVERALL:
        raise SwiftError(400, f"Total metadata too large; max {MAX_META_OVERALL}")


def listing_query(request: Request) -> Listing:
    q = request.query_params
    raw_limit = q.get("limit")
    limit = LISTING_LIMIT
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            raise SwiftError(412, "Value of limit must be a positive integer") from None
        if limit < 0:
            raise SwiftError(412, "Value of limit must be a positive integer")
        if limit > LISTING_LIMIT:
            raise SwiftError(412, f"Maximum limit is {LISTING_LIMIT}")
    params = {}
    for name in ("prefix", "marker", "end_marker", "delimiter"):
        value = q.get(name, "")
        if len(value.encode()) > MAX_OBJECT_NAME or "\x00" in value:
            raise SwiftError(400, f"Bad {name} parameter")
        params[name] = value
    if params["delimiter"] and len(params["delimiter"]) != 1:
        raise SwiftError(412, "Bad delimiter")
    reverse = q.get("reverse", "").lower() in ("1", "true", "yes", "on", "t", "y")
    return Listing(params["prefix"], params["marker"], params["end_marker"], limit, params["delimiter"], reverse)


def listing_format(request: Request) -> str:
    fmt = request.query_params.get("format", "").lower()
    if fmt in ("json", "xml", "plain"):
        return fmt
    if fmt:  # any other format is plain text, as in Swift's listing_formats (tempest asks for "txt")
        return "plain"
    accept = request.headers.get("accept", "")
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media == "application/json":
            return "json"
        if media in ("application/xml", "text/xml"):
            return "xml"
        if media in ("text/plain", "*/*", "text/*"):
            return "plain"
    return "plain"


_MEDIA = {"json": "application/json; charset=utf-8", "xml": "application/xml; charset=utf-8",
          "plain": "text/plain; charset=utf-8"}


JSON_EXTRA = ("symlink_path", "symlink_etag")  # only JSON listings show them, and only on symlinks


def render_listing(fmt: str, root: str, root_name: str, entry: str, entries: list[dict[str, Any]],
                   fields: tuple[str, ...]) -> tuple[bytes, str]:
    """A listing body in ``fmt`` and its Content-Type; ``last_modified`` becomes ISO time."""
    rows = []
    for e in entries:
        if "subdir" in e:
            rows.append(e)
        else:
            rows.append({**e, "last_modified": iso_time(e["last_modified"])} if "last_modified" in e else e)
    if fmt == "json":
        return json.dumps([{k: r[k] for k in (("subdir",) if "subdir" in r else fields + JSON_EXTRA) if k in r}
                           for r in rows]).encode(), _MEDIA[fmt]
    if fmt == "xml":
        parts = ['<?xml version="1.0" encoding="UTF-8"?>', f"<{root} name={quoteattr(root_name)}>"]
        for r in rows:
            if "subdir" in r:
                parts.append(f"<subdir name={quoteattr(r['subdir'])}><name>{escape(r['subdir'])}</name></subdir>")
            else:
                inner = "".join(f"<{k}>{escape(str(r[k]))}</{k}>" for k in fields)
                parts.append(f"<{entry}>{inner}</{entry}>")
        parts.append(f"</{root}>")
        return "".join(parts).encode(), _MEDIA[fmt]
    return "".join((r.get("subdir") or r["name"]) + "\n" for r in rows).encode(), _MEDIA[fmt]


def listing_response(request: Request, body: bytes, media: str, fmt: str, empty: bool,
                     headers: dict[str, str]) -> Response:
    if fmt == "plain" and empty:
        return Response(status_code=204, headers=headers)
    headers = {**headers, "Content-Length": str(len(body))}
    return Response(b"" if request.method == "HEAD" else body, status_code=200, headers=headers, media_type=media)


def check_container_name(name: str) -> None:
    if not name:
        raise SwiftError(400, "Container name is empty")
    if len(name.encode()) > MAX_CONTAINER_NAME:
        raise SwiftError(400, f"Container name length of {len(name.encode())} longer than {MAX_CONTAINER_NAME}")
    if "\x00" in name:
        raise SwiftError(400, "Container name contains a NUL byte")


def check_object_name(name: str) -> None:
    if len(name.encode()) > MAX_OBJECT_NAME:
        raise SwiftError(400, f"Object name length of {len(name.encode())} longer than {MAX_OBJECT_NAME}")
    if "\x00" in name:
        raise SwiftError(400, "Object name contains a NUL byte")


_LOOKUP = "cumulo.object.lookup"


async def lookup(call: Call) -> tuple[ContainerInfo | None, ObjectInfo | None]:
    """The call's container and object rows, read once per request by whatever looks at them on
    a GET or HEAD (the features and the handler; kept in the request's scope, which changed calls
    share)."""
    cache = call.request.scope.setdefault(_LOOKUP, {})
    key = (call.account, call.container, call.obj)
    if key not in cache:
        cache[key] = await call.svc.container_and_object(call.account, call.container, call.obj)
    return cache[key]  # type: ignore[no-any-return]
