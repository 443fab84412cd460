"""What the storage and access pages share: reading a form, paging a list with limit+marker,
turning an API's refusal into words beside a field, and streaming bytes through the dashboard.

A list page asks the API for one item more than it shows: that extra item says there is a next
page, and the last shown item's id (or name, for Swift) is its marker.  A form's refusal (400,
409, 413: bad input, a conflict, a quota) goes back to the form with the service's message beside
the field it names, status 400; any other fault (403, 404) is the error page, as every view does.
Uploads and downloads go through the dashboard as streams (``upload``, ``download``): the
request's body is handed to the service chunk by chunk and never held whole in memory.
``account`` aims object storage's URL (which names a project) at the session's own account.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from cumulo.dashboard.client import HEADERS, Api, ApiError, Unauthorized, fault_message, safe_path
from cumulo.dashboard.session import Session

PAGE_SIZES = (20, 50, 100)
MAX_FIELD = 255
FORM_FAULTS = (400, 409, 413)  # refusals a form shows beside its fields; the rest is the error page


async def fields(request: Request, *names: str, limit: int = MAX_FIELD) -> dict[str, str]:
    """The named fields of a posted form, stripped and cut to ``limit`` characters."""
    form = await request.form()
    return {n: str(form.get(n, "")).strip()[:limit] for n in names}


def paging(request: Request) -> dict[str, Any]:
    """``limit`` (one of PAGE_SIZES) and ``marker`` from the query string."""
    try:
        limit = int(request.query_params.get("limit", "20"))
    except ValueError:
        limit = 20
    return {"limit": limit if limit in PAGE_SIZES else 20, "marker": request.query_params.get("marker", "")[:1024]}


def one_page(items: list[Any], limit: int, key: str = "id") -> tuple[list[Any], str]:
    """The page's items (asked for ``limit + 1``) and the next page's marker ("" on the last one)."""
    more = len(items) > limit
    items = items[:limit]
    return items, str(items[-1][key]) if more and items else ""


def form_refusal(exc: ApiError) -> bool:
    """Whether a fault goes back to the form (bad input, conflict, quota) rather than the error page."""
    return exc.status in FORM_FAULTS


def beside(message: str, names: tuple[str, ...], words: dict[str, tuple[str, ...]] | None = None) -> dict[str, str]:
    """The field a fault's message is about (the first whose name or words it mentions), else the form's own."""
    lower = message.lower()
    for name in names:
        if name.replace("_", " ") in lower or name in lower or any(w in lower for w in (words or {}).get(name, ())):
            return {name: message}
    return {"form": message}


async def upload(api: Api, method: str, service: str, path: str, request: Request,
                 headers: dict[str, str] | None = None, timeout: float = 600.0) -> httpx.Response:
    """Send ``request``'s body to the service as it arrives (chunk by chunk, never held whole)."""
    base = await api.catalog.url(service, api.token)
    h = {"X-Auth-Token": api.token, "Accept": "application/json", **HEADERS.get(service, {}), **(headers or {})}
    if api.request_id:
        h["X-OpenStack-Request-ID"] = api.request_id
    if request.headers.get("content-length"):
        h["Content-Length"] = request.headers["content-length"]
    try:
        r = await api.http.request(method, base + safe_path(path), content=request.stream(), headers=h,
                                   timeout=httpx.Timeout(timeout, connect=5.0))
    except httpx.HTTPError as exc:
        raise ApiError(503, f"The {service} service did not take the data ({type(exc).__name__}).") from None
    if r.status_code == 401:
        raise Unauthorized(401, "The session has expired: sign in again.")
    if r.status_code >= 400:
        raise ApiError(r.status_code, fault_message(r.status_code, r.content),
                       r.headers.get("x-openstack-request-id", ""))
    return r


async def download(api: Api, service: str, path: str, filename: str,
                   keep: tuple[str, ...] = ("content-type", "content-length", "etag", "last-modified")) -> Response:
    """The service's answer to GET ``path``, passed on to the browser as it comes, as an attachment."""
    base = await api.catalog.url(service, api.token)
    h = {"X-Auth-Token": api.token, **HEADERS.get(service, {})}
    try:
        r = await api.http.send(api.http.build_request("GET", base + safe_path(path), headers=h), stream=True)
    except httpx.HTTPError as exc:
        raise ApiError(503, f"The {service} service did not answer ({type(exc).__name__}).") from None
    if r.status_code >= 400:
        body = await r.aread()
        await r.aclose()
        if r.status_code == 401:
            raise Unauthorized(401, "The session has expired: sign in again.")
        raise ApiError(r.status_code, fault_message(r.status_code, body), r.headers.get("x-openstack-request-id", ""))

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in r.aiter_raw():
                yield chunk
        finally:
            await r.aclose()

    out = {k: r.headers[k] for k in keep if k in r.headers}
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename)[:200] or "download"
    out["Content-Disposition"] = f'attachment; filename="{safe}"'
    out["Cache-Control"] = "no-store"
    out["X-Content-Type-Options"] = "nosniff"
    out["Content-Security-Policy"] = "default-src 'none'; sandbox"  # a user's bytes never run as this site's page
    return StreamingResponse(chunks(), status_code=200, headers=out)


class AccountCatalog:
    """The catalog with object-store's URL aimed at the session's own account.

    Swift's endpoint carries the project (``/v1/AUTH_<project>``), while the dashboard's catalog is
    shared by every session of the process: the account is taken from the session, not the cache.
    """

    def __init__(self, catalog: Any, project_id: str) -> None:
        self.catalog, self.project_id, self.region = catalog, project_id, catalog.region

    async def url(self, service: str, token: str) -> str:
        url: str = await self.catalog.url(service, token)
        if service == "object-store":
            url = re.sub(r"/AUTH_[^/]*$", "/AUTH_" + self.project_id, url)
        return url


def account(api: Api, session: Session) -> Api:
    """``api`` with the session's own Swift account."""
    return Api(api.http, AccountCatalog(api.catalog, session.project_id), api.token,  # type: ignore[arg-type]
               api.request_id)
