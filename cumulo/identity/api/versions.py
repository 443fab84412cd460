"""Version discovery: ``GET /`` (300 Multiple Choices) and ``GET /v3``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router

UPDATED = "2024-02-28T00:00:00Z"
MEDIA_TYPES = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]


def v3(request: Request) -> dict[str, Any]:
    return {"id": "v3.14", "status": "stable", "updated": UPDATED, "media-types": MEDIA_TYPES,
            "links": [{"rel": "self", "href": f"{request.url.scheme}://{request.url.netloc}/v3/"}]}


def router() -> Router:
    r = Router()

    @r.get("/", auth=False)
    async def versions(request: Request) -> Response:
        return JSON({"versions": {"values": [v3(request)]}}, status_code=300)

    @r.get("/v3", auth=False)
    async def version(request: Request) -> Response:
        return JSON({"version": v3(request)})

    @r.get("/v3/", auth=False)
    async def version_slash(request: Request) -> Response:
        return JSON({"version": v3(request)})

    return r
