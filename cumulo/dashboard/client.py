"""The dashboard's way to the cloud: the public APIs, called with the signed-in user's token.

``Api`` is made per request from the session; it finds each service in the catalog that
identity returns for that token (kept a minute per process), sends the microversions the pages
are written for, and turns an OpenStack fault of any service's format into ``ApiError`` with the
service's own words, which the pages show beside the form that caused it.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

# the microversions the pages read and write
HEADERS = {
    "compute": {"OpenStack-API-Version": "compute 2.79", "X-OpenStack-Nova-API-Version": "2.79"},
    "block-storage": {"OpenStack-API-Version": "volume 3.60"},
    "placement": {"OpenStack-API-Version": "placement 1.39"},
}
CATALOG_TTL = 60.0
# what a value put into an API path (an id from a form or the page's URL) may not do there: end the
# path (? #), climb out of it (a . or .. segment, which httpx resolves), or break the request line
_UNSAFE = re.compile(r"[?#\\\s\x00-\x1f\x7f]")


def safe_path(path: str) -> str:
    """``path`` as the literal path it names: ``?``, ``#``, ``\\``, spaces and control characters
    percent-encoded and a ``.`` or ``..`` segment as ``%2E``s, so an id like ``../../v3/users`` or
    ``x?all_tenants=1`` stays inside the one resource path the page meant (the service answers 404)
    instead of reaching another route.  ``/`` stays: object names hold it."""
    path = _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), path)
    return "/".join("%2E" * len(part) if part in (".", "..") else part for part in path.split("/"))


class ApiError(Exception):
    """A service answered with a fault: ``status`` and the fault's own message."""

    def __init__(self, status: int, message: str, request_id: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.request_id = status, message, request_id


class Unauthorized(ApiError):
    """The token is no longer valid: the session is over."""


class ServiceMissing(ApiError):
    def __init__(self, service: str) -> None:
        super().__init__(503, f"The {service} service does not run in this cloud.")


def fault_message(status: int, body: bytes) -> str:
    """The words of a fault in any of the services' formats (Nova's, Neutron's, Keystone's, ...)."""
    try:
        data = orjson.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text[:500] or f"HTTP {status}"
    if isinstance(data, dict):
        for key in ("NeutronError", "error"):
            inner = data.get(key)
            if isinstance(inner, dict) and inner.get("message"):
                return str(inner["message"])[:500]
        if isinstance(data.get("message"), str):
            return data["message"][:500]
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("detail") or errors[0].get("title") or f"HTTP {status}")[:500]
        for value in data.values():  # Nova and Cinder: {"badRequest": {"message": ..., "code": 400}}
            if isinstance(value, dict) and value.get("message"):
                return str(value["message"])[:500]
    return f"HTTP {status}"


@dataclass
class Response:
    status: int
    data: Any
    headers: httpx.Headers

    @property
    def request_id(self) -> str:
        return self.headers.get("x-openstack-request-id") or self.headers.get("x-compute-request-id") or ""


class Catalog:
    """Each service's public URL, from identity's catalog for a user's token, kept CATALOG_TTL seconds."""

    def __init__(self, http: httpx.AsyncClient, identity_url: str, region: str) -> None:
        self.http, self.identity_url, self.region = http, identity_url.rstrip("/"), region
        self.urls: dict[str, str] = {"identity": self.identity_url}
        self.fetched = 0.0
        self._lock = asyncio.Lock()

    async def url(self, service: str, token: str) -> str:
        if time.monotonic() - self.fetched > CATALOG_TTL:
            async with self._lock:
                if time.monotonic() - self.fetched > CATALOG_TTL:
                    await self._fetch(token)
        alias = {"volume": "block-storage", "volumev3": "block-storage"}.get(service, service)
        url = self.urls.get(alias)
        if url is None:
            raise ServiceMissing(service)
        return url

    def has(self, service: str) -> bool:
        return service in self.urls

    async def _fetch(self, token: str) -> None:
        r = await self.http.get(f"{self.identity_url}/auth/catalog", headers={"X-Auth-Token": token})
        if r.status_code == 401:
            raise Unauthorized(401, "The session has expired: sign in again.")
        if r.status_code != 200:
            raise ApiError(r.status_code, fault_message(r.status_code, r.content))
        urls = {"identity": self.identity_url}
        for entry in r.json().get("catalog", []):
            for ep in entry.get("endpoints", []):
                if ep.get("interface") == "public" and ep.get("region_id", ep.get("region")) in (self.region, None):
                    urls[entry["type"]] = ep["url"].rstrip("/")
        self.urls, self.fetched = urls, time.monotonic()


class Api:
    """The APIs as one user sees them: ``await api.get("compute", "/servers/detail", limit=20)``."""

    def __init__(self, http: httpx.AsyncClient, catalog: Catalog, token: str, request_id: str = "") -> None:
        self.http, self.catalog, self.token, self.request_id = http, catalog, token, request_id

    async def call(self, method: str, service: str, path: str, *, json: Any = None, params: Any = None,
                   headers: dict[str, str] | None = None, content: Any = None, ok: tuple[int, ...] = ()) -> Response:
        base = await self.catalog.url(service, self.token)
        path = safe_path(path)
        h = {"X-Auth-Token": self.token, "Accept": "application/json", **HEADERS.get(service, {})}
        if self.request_id:
            h["X-OpenStack-Request-ID"] = self.request_id
        h.update(headers or {})
        if params:
            params = {k: v for k, v in params.items() if v not in (None, "")}
        try:
            r = await self.http.request(method, base + path, json=json, params=params, headers=h, content=content)
        except httpx.HTTPError as exc:
            raise ApiError(503, f"The {service} service did not answer ({type(exc).__name__}).") from None
        if r.status_code == 401:
            raise Unauthorized(401, "The session has expired: sign in again.")
        if r.status_code >= 400 and r.status_code not in ok:
            raise ApiError(r.status_code, fault_message(r.status_code, r.content),
                           r.headers.get("x-openstack-request-id", ""))
        data = None
        if r.content and "json" in r.headers.get("content-type", ""):
            data = r.json()
        return Response(r.status_code, data, r.headers)

    async def get(self, service: str, path: str, **params: Any) -> Any:
        return (await self.call("GET", service, path, params=params)).data

    async def find(self, service: str, path: str, **params: Any) -> Any:
        """``get``, but None where the service answers 404 (a row's resource that is gone, or hidden)."""
        r = await self.call("GET", service, path, params=params, ok=(404,))
        return None if r.status == 404 else r.data

    async def post(self, service: str, path: str, body: Any = None, **kw: Any) -> Response:
        return await self.call("POST", service, path, json=body, **kw)

    async def put(self, service: str, path: str, body: Any = None, **kw: Any) -> Response:
        return await self.call("PUT", service, path, json=body, **kw)

    async def patch(self, service: str, path: str, body: Any = None, **kw: Any) -> Response:
        return await self.call("PATCH", service, path, json=body, **kw)

    async def delete(self, service: str, path: str, **kw: Any) -> Response:
        return await self.call("DELETE", service, path, **kw)
