"""Static web sites served from containers, as Swift's ``staticweb`` middleware serves them.

Turning it on and off
    On by default (``GET /info`` has a ``staticweb`` section); ``[object] disabled_features =
    staticweb`` turns it off.  A container takes part only when its owner sets one of the
    metadata items below; nothing changes for the others.

When it acts
    On ``GET`` and ``HEAD`` of a container or object path made without a token (anonymous, the
    usual way a browser calls), by a TempURL, or with ``X-Web-Mode: true`` (for a client with a
    token who wants the web view).  The container must be readable by the caller: for an
    anonymous reader that is a read ACL such as ``X-Container-Read: .r:*`` (``.r:*,.rlistings``
    for listings and for the index of the container's root).

What the owner sets (``POST`` on the container)
    ``X-Container-Meta-Web-Index: index.html``
        a path ending in ``/`` (or a container, or a pseudo-directory) answers with its
        ``index.html`` object;
    ``X-Container-Meta-Web-Listings: true``
        a path with no index object answers an HTML listing of the objects and pseudo-directories
        under it (404 for a pseudo-directory with nothing in it); without it such a path is a 404
        page saying listings are off;
    ``X-Container-Meta-Web-Listings-CSS: listing.css``
        the listing links that style sheet (relative to the container, unless it starts with
        ``/`` or ``http(s)://``) instead of its built-in style;
    ``X-Container-Meta-Web-Listings-Label: example.com``
        the listing's title reads ``Listing of example.com/<path>`` instead of the full path;
    ``X-Container-Meta-Web-Error: error.html``
        a 404 (a missing object or directory) answers with the object ``404error.html``, a 401
        (a reader the ACL refuses) with ``401error.html``, keeping the status;
    ``X-Container-Meta-Web-Directory-Type: text/directory``
        objects of that type and at most one byte are directory markers, treated as missing
        (default ``application/directory``).

Redirects
    With an index or listings on, a container or pseudo-directory path without its trailing
    slash is a 301 to the same path with the slash (so relative links in the page work)."""

from __future__ import annotations

import dataclasses
import html
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from cumulo.object.api.common import SwiftError, iso_time
from cumulo.object.service import ContainerInfo, Listing, ObjectError

if TYPE_CHECKING:
    from cumulo.core.config import Config
    from cumulo.object.api import Call
    from cumulo.object.middleware import Handler

NAME = "staticweb"
ORDER = 40

LISTING_LIMIT = 10000  # entries in one listing page


def capabilities(cfg: Config) -> dict[str, Any] | None:
    return {}


def _true(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes", "on", "t", "y")


@dataclasses.dataclass
class _Site:
    index: str
    error: str
    listings: str
    label: str
    css: str
    dir_type: str

    @classmethod
    def of(cls, info: ContainerInfo | None) -> _Site:
        meta = info.meta if info is not None else {}
        return cls(*(meta.get(f"web-{k}", "").strip() for k in
                     ("index", "error", "listings", "listings-label", "listings-css", "directory-type")))


def _web_mode(call: Call) -> bool:
    return _true(call.request.headers.get("x-web-mode", "f"))


async def handle(call: Call, app: Handler) -> Response:
    if call.request.method not in ("GET", "HEAD") or not call.container:
        return await app(call)
    if call.auth is not None and call.granted != "tempurl" and not _web_mode(call):
        return await app(call)
    info = await call.svc.container(call.account, call.container)
    site = _Site.of(info)
    if info is None:
        return await app(call)
    if call.obj:
        return await _object(call, app, info, site)
    return await _container(call, app, info, site)


def _path(call: Call) -> str:
    return str(call.request.scope["path"])


def _sub(call: Call, obj: str, query: bytes = b"") -> Call:
    path = f"/v1/{call.account}/{call.container}/{obj}"
    scope = dict(call.request.scope)
    drop = {"range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since"}
    scope["headers"] = [(k, v) for k, v in scope["headers"] if k.decode("latin-1").lower() not in drop]
    scope.update(path=path, raw_path=quote(path).encode(), query_string=query)
    return dataclasses.replace(call, request=Request(scope, call.request.receive), obj=obj)


async def _run(app: Handler, call: Call) -> tuple[int, Response]:
    try:
        response = await app(call)
    except SwiftError as err:
        return err.status, err.response(call.request.method)
    except ObjectError as err:
        return err.status, SwiftError(err.status).response(call.request.method)
    return response.status_code, response


async def _close(response: Response) -> None:
    iterator = getattr(response, "body_iterator", None)
    if iterator is not None and hasattr(iterator, "aclose"):
        await iterator.aclose()


def _redirect(call: Call) -> Response:
    return Response(status_code=301, headers={"Location": quote(_path(call) + "/")},
                    media_type="text/html; charset=UTF-8")


async def _error(call: Call, app: Handler, site: _Site, status: int, default: Response) -> Response:
    """The container's <status><web-error> page with the status, else the default answer."""
    if not site.error:
        return default
    got, page = await _run(app, dataclasses.replace(_sub(call, f"{status}{site.error}"), granted=call.granted))
    if got // 100 != 2:
        await _close(page)
        return default
    page.status_code = status
    return page


def _not_found(call: Call) -> Response:
    return SwiftError(404).response(call.request.method)


async def _container(call: Call, app: Handler, info: ContainerInfo, site: _Site) -> Response:
    try:
        call.authorize("object_store:container:get", info, listing=True)
    except SwiftError as err:
        return await _error(call, app, site, err.status, err.response(call.request.method))
    if not site.listings and not site.index:
        if _web_mode(call):
            return _not_found(call)
        return await app(call)
    if not _path(call).endswith("/"):
        return _redirect(call)
    if not site.index:
        return await _listing(call, app, info, site, "")
    status, response = await _run(app, _sub(call, site.index))
    if status == 404:
        return await _listing(call, app, info, site, "")
    if status // 100 not in (2, 3):
        return await _error(call, app, site, status, response)
    return response


async def _object(call: Call, app: Handler, info: ContainerInfo, site: _Site) -> Response:
    status, response = await _run(app, call)
    if status // 100 in (2, 3):
        length = int(response.headers.get("content-length") or 0)
        marker = response.headers.get("content-type") == (site.dir_type or "application/directory") and length <= 1
        if not marker:
            return response
        await _close(response)
        status, response = 404, _not_found(call)
    if status != 404:
        return response  # only a missing object has the custom error page here, as in Swift
    if not site.listings and not site.index:
        return response
    ends = _path(call).endswith("/")
    if site.index:
        index_obj = call.obj + ("" if call.obj.endswith("/") else "/") + site.index
        got, page = await _run(app, _sub(call, index_obj))
        if got // 100 in (2, 3):
            if not ends:
                await _close(page)
                return _redirect(call)
            return page
        await _close(page)
    if not ends:
        try:
            call.authorize("object_store:container:get", info, listing=True)
            under = await call.svc.objects(info, Listing(prefix=call.obj + "/", delimiter="/", limit=1))
        except SwiftError:
            under = []
        if not under:
            return await _error(call, app, site, 404, _not_found(call))
        return _redirect(call)
    return await _listing(call, app, info, site, call.obj)


def _css_link(site: _Site, prefix: str) -> str:
    if site.css.startswith(("/", "http://", "https://")):
        href = quote(site.css, ":/")
    else:
        href = "../" * prefix.count("/") + quote(site.css)
    return f'  <link rel="stylesheet" type="text/css" href="{html.escape(href)}" />\n'


def _size(n: int) -> str:
    """Sizes as Swift's listings show them: bytes, then Ki, Mi, ... with one decimal rounded off."""
    value = float(n)
    for suffix in ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if value < 1024 or suffix == "Yi":
            return f"{round(value)}{suffix}" if suffix else str(n)
        value /= 1024
    return str(n)


async def _listing(call: Call, app: Handler, info: ContainerInfo, site: _Site, prefix: str) -> Response:
    label = _path(call)
    if site.label:
        label = f"{site.label}/" + "/".join(_path(call).split("/")[4:])
    head = f"<!DOCTYPE html>\n<html>\n <head>\n  <title>Listing of {html.escape(label)}</title>\n"
    if not _true(site.listings):
        body = head + (_css_link(site, prefix) if site.css else
                       "  <style type=\"text/css\">\n   h1 {font-size: 1em; font-weight: bold;}\n  </style>\n")
        body += (" </head>\n <body>\n  <h1>Web Listing Disabled</h1>\n"
                 "  <p>The owner of this web site has disabled web listing.</p>\n"
                 "  <p>If you are the owner of this web site, you can enable web listing by setting"
                 " X-Container-Meta-Web-Listings.</p>\n")
        if site.index:
            body += ("  <h1>Index File Not Found</h1>\n  <p>The owner of this web site has set"
                     f" <b>X-Container-Meta-Web-Index: {html.escape(site.index)}</b>."
                     " However, this file is not found.</p>\n")
        body += " </body>\n</html>\n"
        page = Response(body.encode(), status_code=404, media_type="text/html; charset=UTF-8")
        return await _error(call, app, site, 404, page)
    try:
        call.authorize("object_store:container:get", info, listing=True)
    except SwiftError as err:
        return await _error(call, app, site, err.status, err.response(call.request.method))
    entries = await call.svc.objects(info, Listing(prefix=prefix, delimiter="/", limit=LISTING_LIMIT))
    if prefix and not entries:
        return await _error(call, app, site, 404, _not_found(call))
    body = head + (_css_link(site, prefix) if site.css else (
        "  <style type=\"text/css\">\n   h1 {font-size: 1em; font-weight: bold;}\n"
        "   th {text-align: left; padding: 0px 1em 0px 1em;}\n   td {padding: 0px 1em 0px 1em;}\n"
        "   a {text-decoration: none;}\n  </style>\n"))
    rows = [body, " </head>\n <body>\n", f'  <h1 id="title">Listing of {html.escape(label)}</h1>\n',
            '  <table id="listing">\n   <tr id="heading">\n    <th class="colname">Name</th>\n'
            '    <th class="colsize">Size</th>\n    <th class="coldate">Date</th>\n   </tr>\n']
    if prefix:
        rows.append('   <tr id="parent" class="item">\n    <td class="colname"><a href="../">../</a></td>\n'
                    '    <td class="colsize">&nbsp;</td>\n    <td class="coldate">&nbsp;</td>\n   </tr>\n')
    for entry in entries:
        if "subdir" in entry:
            name = entry["subdir"][len(prefix):]
            rows.append(f'   <tr class="item subdir">\n    <td class="colname"><a href="./'
                        f'{quote(name).replace(".", "%2E")}">{html.escape(name)}</a></td>\n'
                        '    <td class="colsize">&nbsp;</td>\n    <td class="coldate">&nbsp;</td>\n   </tr>\n')
    for entry in entries:
        if "name" in entry:
            name = entry["name"][len(prefix):]
            kinds = " ".join("type-" + html.escape(t.lower()) for t in entry["content_type"].split("/"))
            when = iso_time(entry["last_modified"]).split(".")[0].replace("T", " ")
            rows.append(f'   <tr class="item {kinds}">\n    <td class="colname"><a href="./'
                        f'{quote(name).replace(".", "%2E")}">{html.escape(name)}</a></td>\n'
                        f'    <td class="colsize">{_size(entry["bytes"])}</td>\n'
                        f'    <td class="coldate">{when}</td>\n   </tr>\n')
    rows.append("  </table>\n </body>\n</html>\n")
    data = "".join(rows).encode()
    return Response(b"" if call.request.method == "HEAD" else data, status_code=200,
                    headers={"Content-Length": str(len(data))}, media_type="text/html; charset=UTF-8")
