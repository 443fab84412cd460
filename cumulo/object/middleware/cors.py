"""Cross-origin requests (CORS) to containers and objects, as Swift's proxy answers them.

Turning it on and off
    On by default; ``[object] disabled_features = cors`` turns it off (OPTIONS is then a 405,
    and no ``Access-Control-*`` header is ever sent).  There is no cloud-wide list of allowed
    origins: each container says who may call it, so ``GET /info`` reports
    ``strict_cors_mode: true``.

What a container's owner sets (``POST`` on the container)
    ``X-Container-Meta-Access-Control-Allow-Origin``
        the origins allowed, separated by spaces (``https://a.example https://b.example``),
        or ``*`` for any;
    ``X-Container-Meta-Access-Control-Max-Age``
        how long a browser may keep a preflight answer, in seconds;
    ``X-Container-Meta-Access-Control-Expose-Headers``
        response headers (space-separated) a script may read besides the ones always exposed.

Preflight: ``OPTIONS`` on an account, container or object path
    Needs no token.  Without an ``Origin`` header it is a plain 200 with ``Allow`` listing the
    methods of that kind of path.  With one, on a container or object: a 401 when the origin is
    not among the container's allowed origins (or the container does not exist) or when
    ``Access-Control-Request-Method`` is not one of the allowed methods; else a 200 with
    ``Access-Control-Allow-Origin`` (``*`` when the container allows any, else the origin, with
    ``Vary: Origin``), ``Access-Control-Allow-Methods``, ``Access-Control-Max-Age`` when set, and
    ``Access-Control-Allow-Headers`` repeating what ``Access-Control-Request-Headers`` asked.
    On an account path an ``Origin`` changes nothing (200 with ``Allow``).

Actual requests with an ``Origin`` header, to a container or object
    The request runs as usual (authorization included).  When the origin is allowed, the answer,
    errors included, gains ``Access-Control-Allow-Origin`` and ``Access-Control-Expose-Headers``:
    the simple response headers, ``Etag``, ``X-Timestamp``, ``X-Trans-Id``,
    ``X-Openstack-Request-Id``, every ``X-Container-Meta-*``/``X-Object-Meta-*`` header of the
    answer, and the container's own list.  For another origin the answer has no CORS header
    (strict mode), so a browser does not hand it to the script."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from cumulo.object.api.common import SwiftError
from cumulo.object.service import ObjectError

if TYPE_CHECKING:
    from cumulo.core.config import Config
    from cumulo.object.api import Call
    from cumulo.object.middleware import Handler

NAME = "cors"
ORDER = 10

MAX_REQUEST_HEADERS = 100  # names repeated from Access-Control-Request-Headers

_METHODS = {"object": ("COPY", "DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"),
            "container": ("DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"),
            "account": ("GET", "HEAD", "OPTIONS", "POST")}
_ALWAYS_EXPOSED = ("cache-control", "content-language", "content-type", "expires", "last-modified", "pragma",
                   "etag", "x-timestamp", "x-trans-id", "x-openstack-request-id")


def capabilities(cfg: Config) -> dict[str, Any] | None:
    return None  # Swift has no /info section for CORS; strict_cors_mode is in the swift section


def _origins(meta: dict[str, str]) -> list[str]:
    return [o for o in meta.get("access-control-allow-origin", "").split(" ") if o]


def _allowed(meta: dict[str, str], origin: str) -> bool:
    origins = _origins(meta)
    return origin in origins or "*" in origins


def _any_origin(meta: dict[str, str]) -> bool:
    return meta.get("access-control-allow-origin", "").strip() == "*"


async def handle(call: Call, app: Handler) -> Response:
    origin = call.request.headers.get("origin")
    if call.request.method == "OPTIONS":
        return await _preflight(call, origin)
    if not origin or not call.container:
        return await app(call)
    info = await call.svc.container(call.account, call.container)
    try:
        response = await app(call)
    except SwiftError as err:
        response = err.response(call.request.method)
    except ObjectError as err:
        response = SwiftError(err.status, "" if err.status in (404, 409) else err.message).response(
            call.request.method)
    meta = info.meta if info is not None else {}
    if not _allowed(meta, origin):
        return response
    headers = response.headers
    if "access-control-expose-headers" not in headers:
        exposed = set(_ALWAYS_EXPOSED)
        exposed.update(k for k in headers if k.startswith(("x-container-meta-", "x-object-meta-")))
        exposed.update(h.lower() for h in meta.get("access-control-expose-headers", "").split(" ") if h)
        headers["Access-Control-Expose-Headers"] = ", ".join(sorted(exposed))
    if "access-control-allow-origin" not in headers:
        if _any_origin(meta):
            headers["Access-Control-Allow-Origin"] = "*"
        else:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Vary"] = f"{headers['vary']}, Origin" if "vary" in headers else "Origin"
    return response


async def _preflight(call: Call, origin: str | None) -> Response:
    kind = "object" if call.obj else "container" if call.container else "account"
    methods = _METHODS[kind]
    headers = {"Allow": ", ".join(methods)}
    if not origin or kind == "account":
        return Response(status_code=200, headers=headers)
    info = await call.svc.container(call.account, call.container)
    meta = info.meta if info is not None else {}
    asked = call.request.headers.get("access-control-request-method")
    if not _allowed(meta, origin) or asked not in methods:
        return Response(status_code=401, headers=headers)
    if _any_origin(meta):
        headers["Access-Control-Allow-Origin"] = "*"
    else:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Vary"] = "Origin"
    if meta.get("access-control-max-age") is not None:
        headers["Access-Control-Max-Age"] = meta["access-control-max-age"]
    headers["Access-Control-Allow-Methods"] = ", ".join(methods)
    requested = []
    for name in call.request.headers.get("access-control-request-headers", "").split(","):
        name = name.strip()
        if name and name not in requested:
            requested.append(name)
    if requested:
        headers["Access-Control-Allow-Headers"] = ", ".join(requested[:MAX_REQUEST_HEADERS])
        headers["Vary"] = f"{headers['Vary']}, Access-Control-Request-Headers" if "Vary" in headers \
            else "Access-Control-Request-Headers"
    return Response(status_code=200, headers=headers)
