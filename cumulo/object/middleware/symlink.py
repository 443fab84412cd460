"""Symbolic links between objects, Swift's ``symlink``: a zero-byte object that names another
object (in the same account or another), and whose GET and HEAD answer that object.

Turning it on and off
    On by default; ``[object] disabled_features = symlink`` turns it off (links are then served as
    the empty objects they are, and ``X-Symlink-Target`` on a PUT is ignored).  ``GET /info``
    shows ``"symlink": {"symloop_limit": 2, "static_links": true}``.

Making a link: ``PUT <object>`` with ``X-Symlink-Target: <container>/<object>``
    (URL-encoded as a Swift header), optionally ``X-Symlink-Target-Account: AUTH_<project>`` for
    another account, and an empty body (a body is a 400 ``Symlink requests require a zero byte
    body``).  A target not of that form is a 412, as Swift answers; a link to itself is a 400.
    The link's Content-Type is ``application/symlink`` unless the PUT gives one; it keeps the PUT's
    ``X-Object-Meta-*``.  The target need not exist (a *soft* link: its GET is a 404 until it
    does).  With ``X-Symlink-Target-Etag: <etag>`` the link is *static*: the target must exist and
    be readable by the uploader, with that ETag (a large object's ETag for a static or dynamic
    large object), or the PUT is a 409 (``X-Symlink-Target does not exist``, ``Object Etag ...
    does not match X-Symlink-Target-Etag header ...``).

Reading
    GET and HEAD of a link follow it: the answer is the target's (large objects included, ranges
    and conditions as on the target) with ``Content-Location: /v1/<account>/<container>/<object>``
    naming it.  A link to a link is followed too, at most ``symloop_limit`` (2) hops; more is a 409
    ``Too many levels of symbolic links, maximum allowed is 2``.  A static link whose target's
    ETag has changed since is a 409 on every read.  Following a link needs read access to the
    link's container *and* to the target's container, as the target's account judges it (its
    project's roles or that container's read ACL): a link never lends access.
    ``?symlink=get`` answers the link itself, with ``X-Symlink-Target`` (and
    ``X-Symlink-Target-Account``, ``X-Symlink-Target-Etag`` where set).

Not done
    A POST to a link changes the link's own metadata (its target stays; Swift redirects a POST to
    the target with a 307); a COPY copies
    the link object; listings do not show ``symlink_path``."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from starlette.responses import Response

from cumulo.core.config import Config
from cumulo.object.api import common as c
from cumulo.object.middleware import Handler, dlo, slo, with_headers
from cumulo.object.service import ContainerInfo, ObjectInfo

if TYPE_CHECKING:
    from cumulo.object.api import Call

NAME = "symlink"
ORDER = 70

SYMLOOP_LIMIT = 2
TARGET, ACCOUNT, ETAG = "x-symlink-target", "x-symlink-target-account", "x-symlink-target-etag"
SYS_TARGET, SYS_ACCOUNT, SYS_ETAG = ("x-object-sysmeta-symlink-target", "x-object-sysmeta-symlink-target-account",
                                     "x-object-sysmeta-symlink-target-etag")
SHOWN = ((SYS_TARGET, "X-Symlink-Target"), (SYS_ACCOUNT, "X-Symlink-Target-Account"),
         (SYS_ETAG, "X-Symlink-Target-Etag"))
FORM = "X-Symlink-Target header must be of the form <container name>/<object name>"


def capabilities(cfg: Config) -> dict[str, Any] | None:
    return {"symloop_limit": SYMLOOP_LIMIT, "static_links": True}


async def handle(call: Call, app: Handler) -> Response:
    if not call.obj:
        return await app(call)
    method = call.request.method
    if method == "PUT" and call.request.headers.get(TARGET) is not None:
        return await _put(call, app)
    if method in ("GET", "HEAD") and call.request.query_params.get("symlink") != "get":
        return await _follow(call, app)
    if method == "POST":
        return _show(await slo.keep_on_post(call, app, lambda key: key in (SYS_TARGET, SYS_ACCOUNT, SYS_ETAG)))
    return _show(await app(call))


def _show(response: Response, link: bool = True) -> Response:
    """The link's stored target as X-Symlink-* headers (its own answer) or not at all (a target's)."""
    for key, shown in SHOWN:
        if key in response.headers:
            value = response.headers[key]
            del response.headers[key]
            if link:
                response.headers[shown] = value
    return response


def _target(call: Call, value: str, account_value: str | None) -> tuple[str, str, str]:
    path = unquote(value)
    if path.startswith("/"):
        raise c.SwiftError(412, FORM)
    container, _, obj = path.partition("/")
    if not container or not obj:
        raise c.SwiftError(412, FORM)
    c.check_container_name(container)
    c.check_object_name(obj)
    account = call.account
    if account_value is not None:
        account = unquote(account_value)
        if not account or "/" in account or len(account.encode()) > c.MAX_ACCOUNT_NAME:
            raise c.SwiftError(412, "Account name cannot contain slashes")
    return account, container, obj


def _etag_of(info: ObjectInfo) -> str:
    return slo.large_etag(info)


def in_account(call: Call, account: str, container: str, obj: str) -> Call:
    """The same request made to another object (maybe in another account)."""
    moved = with_headers(call, {}, path=f"/v1/{account}/{container}/{obj}")
    return dataclasses.replace(moved, account=account, project_id=account[len("AUTH_"):]
                               if account.startswith("AUTH_") else account)


async def _put(call: Call, app: Handler) -> Response:
    request = call.request
    if request.headers.get("content-length", "0") not in ("", "0") or \
            "chunked" in request.headers.get("transfer-encoding", "").lower():
        raise c.SwiftError(400, "Symlink requests require a zero byte body")
    account, container_name, obj = _target(call, request.headers[TARGET], request.headers.get(ACCOUNT))
    if (account, container_name, obj) == (call.account, call.container, call.obj):
        raise c.SwiftError(400, "Symlink cannot target itself")
    etag = request.headers.get(ETAG)
    if etag is not None:
        etag = etag.strip().strip('"')
        if not etag or any(ch in etag for ch in ';"\\'):
            raise c.SwiftError(400, "Bad X-Symlink-Target-Etag format")
    container = await call.svc.container(call.account, call.container)
    call.authorize("object_store:object:put", container)
    if container is None:
        raise c.SwiftError(404)
    location = f"/v1/{account}/{container_name}/{obj}"
    meta = {SYS_TARGET: quote(f"{container_name}/{obj}")}
    if account != call.account:
        meta[SYS_ACCOUNT] = quote(account)
    if etag is not None:
        there = in_account(call, account, container_name, obj)
        target_container = await call.svc.container(account, container_name)
        there.authorize("object_store:object:get", target_container)
        info = await call.svc.object(target_container, obj) if target_container is not None else None
        if info is None:
            raise c.SwiftError(409, "X-Symlink-Target does not exist", headers={"Content-Location": location})
        if _etag_of(info) != etag:
            raise c.SwiftError(409, f"Object Etag {_etag_of(info)!r} does not match X-Symlink-Target-Etag header "
                                    f"{etag!r}", headers={"Content-Location": location})
        meta[SYS_ETAG] = etag
    # the link goes down the pipeline as an ordinary empty PUT (quotas, versioning, expiry see
    # it), then gets its target as system metadata
    inner = slo.body_call(call, b"", {TARGET: None, ACCOUNT: None, ETAG: None,
                                      "content-type": request.headers.get("content-type") or "application/symlink"})
    response = await app(inner)
    if response.status_code != 201:
        return response
    await slo.add_sysmeta(call, container, call.obj, response.headers.get("etag", ""), meta)
    if etag is not None:
        response.headers["X-Symlink-Target-Etag"] = etag
    return response


async def _follow(call: Call, app: Handler) -> Response:
    current = call
    container, info = await slo.lookup(call)
    if container is None or info is None or SYS_TARGET not in info.meta:
        return _show(await app(call))
    hops = 0
    expected: str | None = None
    location = ""
    link: ObjectInfo | None = info
    link_container: ContainerInfo | None = container
    while link is not None and SYS_TARGET in link.meta:
        current.authorize("object_store:object:get", link_container)
        if expected is not None and link.meta.get(SYS_ETAG) and link.meta[SYS_ETAG] != expected:
            raise c.SwiftError(409, "X-Symlink-Target-Etag headers do not match",
                               headers={"Content-Location": location})
        expected = link.meta.get(SYS_ETAG) or expected
        if hops >= SYMLOOP_LIMIT:
            raise c.SwiftError(409, f"Too many levels of symbolic links, maximum allowed is {SYMLOOP_LIMIT}")
        hops += 1
        account = unquote(link.meta.get(SYS_ACCOUNT, "")) or current.account
        target_container, _, obj = unquote(link.meta[SYS_TARGET]).partition("/")
        location = quote(f"/v1/{account}/{target_container}/{obj}")
        current = in_account(current, account, target_container, obj)
        link_container = await call.svc.container(account, target_container)
        link = await call.svc.object(link_container, obj) if link_container is not None else None
    if link_container is not None:
        current.authorize("object_store:object:get", link_container)
    if link is not None and expected is not None and _etag_of(link) != expected:
        raise c.SwiftError(409, f"Object Etag {_etag_of(link)!r} does not match X-Symlink-Target-Etag header "
                                f"{expected!r}", headers={"Content-Location": location})
    off = {name.strip() for name in call.svc.cfg.object.disabled_features}
    if link is not None and link_container is not None and slo.is_slo(link) and "slo" not in off:
        response = await slo.serve(current, link_container, link)
    elif link is not None and link_container is not None and link.meta.get(dlo.HEADER) and "dlo" not in off:
        response = await dlo.serve(current, link)
    else:
        response = _show(await app(current), link=False)
    response.headers["Content-Location"] = location
    return response
