"""Object expiry, Swift's ``X-Delete-At`` / ``X-Delete-After`` and its object-expirer: an object
can be given a time after which it is deleted by itself.

Turning it on and off
    On by default; ``[object] disabled_features = expiry`` stops the checks below:
    ``X-Delete-After`` is then ignored, and an ``X-Delete-At`` is stored as given (an integer one
    still schedules the object, any other is kept as plain metadata).  Objects already scheduled
    still expire.  ``GET /info`` has no section for it, as Swift's has none.

Setting it (object PUT, POST, COPY, and PUT with ``X-Copy-From``)
    ``X-Delete-At: <Unix seconds>``
        an integer time in the future; a non-integer is a 400 ``Non-integer X-Delete-At``, a time
        not after now a 400 ``X-Delete-At in past``.  Times past 9999999999 are taken as
        9999999999 (Swift's ten-digit bound).  The object shows it back as ``X-Delete-At``.
    ``X-Delete-After: <seconds>``
        the same, counted from now: it becomes ``X-Delete-At = now + seconds`` (and wins over an
        ``X-Delete-At`` in the same request).  A non-integer is a 400 ``Non-integer
        X-Delete-After``, zero or less a 400 ``X-Delete-After in past``.  A number of more than 20 digits (either
        header) is taken as a non-integer: the only bound Cumulo adds to Swift's checks.
    As in Swift, an object POST replaces all of an object's metadata: a POST without either
    header takes the schedule away (so does ``X-Remove-Delete-At``, which sets nothing).  A COPY
    keeps the source's ``X-Delete-At`` unless the request gives another or ``X-Fresh-Metadata``.

When the time comes
    At once the object answers 404 to GET, HEAD, POST and COPY (even before the expirer has run);
    a DELETE removes it and answers 404.  As in Swift it stays in its container's listing and
    counts until the expirer deletes it.

The expirer
    The leader runs it every ``[object] expirer_interval`` seconds (30 by default; environment
    ``CUMULO_OBJECT__EXPIRER_INTERVAL``).  A pass reads the objects that are due from an index of
    the object table, the longest due first, in batches of at most 200 (at most 50 batches a
    pass), and deletes each as a client DELETE would (row, container counts, then a tombstone in
    the store), so a pass that is cut short leaves each object either deleted or still
    scheduled; a cloud that was down catches up after it starts.  An object written again after
    the pass read the index is not deleted unless its new copy is due as well."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from cumulo.core.config import Config
from cumulo.object.api.common import SwiftError
from cumulo.object.middleware import Handler, with_headers

if TYPE_CHECKING:
    from cumulo.object.api import Call

NAME = "expiry"
ORDER = 80

MAX_DELETE_AT = 9999999999  # Swift's normalize_delete_at_timestamp bound: ten digits
_INTEGER = re.compile(r"\s*[+-]?\d{1,20}\s*")


def capabilities(cfg: Config) -> dict[str, Any] | None:
    return None


def _integer(value: str, header: str) -> int:
    if not _INTEGER.fullmatch(value):
        raise SwiftError(400, f"Non-integer {header}")
    return int(value)


def delete_at(headers: Any, now: float) -> str | None:
    """The X-Delete-At a request sets (normalized to ten digits), None when it sets none; a
    SwiftError 400 for a bad or past value."""
    after = headers.get("x-delete-after")
    if after is not None:
        when = int(now) + _integer(after, "X-Delete-After")
        if when <= now:
            raise SwiftError(400, "X-Delete-After in past")
    else:
        at = headers.get("x-delete-at")
        if at is None:
            return None
        when = max(0, _integer(at, "X-Delete-At"))
        if when <= now:
            raise SwiftError(400, "X-Delete-At in past")
    return f"{min(when, MAX_DELETE_AT):010d}"


async def handle(call: Call, app: Handler) -> Response:
    method = call.request.method
    headers = call.request.headers
    if not call.obj or method not in ("PUT", "POST", "COPY"):
        return await app(call)
    if "x-delete-at" not in headers and "x-delete-after" not in headers:
        return await app(call)
    value = delete_at(headers, time.time())
    return await app(with_headers(call, {"x-delete-at": value, "x-delete-after": None}))
