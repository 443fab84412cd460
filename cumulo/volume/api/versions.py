"""The version documents: ``GET /`` (300 Multiple Choices, as Cinder answers) and ``/v3/``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router
from cumulo.volume.api.common import MICROVERSIONS, base_url


def version_doc(request: Request) -> dict[str, Any]:
    return {"id": "v3.0", "status": "CURRENT", "version": str(MICROVERSIONS.maximum),
            "min_version": str(MICROVERSIONS.minimum), "updated": "2023-08-31T00:00:00Z",
            "links": [{"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
                      {"rel": "self", "href": f"{base_url(request)}/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.volume+json;version=3"}]}


def router() -> Router:
    r = Router()

    @r.get("/", auth=False)
    async def versions(request: Request) -> Response:
        return JSON({"versions": [version_doc(request)]}, status_code=300)

    @r.get("/v3", auth=False)
    async def version(request: Request) -> Response:
        return JSON({"versions": [version_doc(request)]})

    @r.get("/v3/", auth=False)
    async def version_slash(request: Request) -> Response:
        return JSON({"versions": [version_doc(request)]})

    return r
