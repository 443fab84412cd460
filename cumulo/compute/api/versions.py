"""The version documents: ``/``, ``/v2.1`` (and ``/v2.1/``), and the legacy ``/v2`` root, with v2.0
listed as Nova lists it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.common import MICROVERSIONS
from cumulo.core.http.app import JSON, Router


def versions_router() -> Router:
    r = Router()

    def doc(request: Request) -> dict[str, Any]:
        return {"id": "v2.1", "status": "CURRENT", "version": str(MICROVERSIONS.maximum),
                "min_version": str(MICROVERSIONS.minimum), "updated": "2013-07-23T11:33:21Z",
                "links": [{"rel": "self", "href": f"{request.url.scheme}://{request.url.netloc}/v2.1/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.compute+json;version=2.1"}]}

    def legacy(request: Request, media: bool = False) -> dict[str, Any]:
        """v2.0 is listed first, as Nova does (clients and tempest expect it); its root answers
        with its own document, without microversions."""
        out: dict[str, Any] = {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
                               "updated": "2011-01-21T11:33:21Z",
                               "links": [{"rel": "self",
                                          "href": f"{request.url.scheme}://{request.url.netloc}/v2/"}]}
        if media:
            out["links"].append({"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"})
            out["media-types"] = [{"base": "application/json",
                                   "type": "application/vnd.openstack.compute+json;version=2"}]
        return out

    @r.get("/", auth=False)
    async def versions(request: Request) -> Response:
        return JSON({"versions": [legacy(request), doc(request)]})

    @r.get("/v2", auth=False)
    async def legacy_version(request: Request) -> Response:
        return JSON({"version": legacy(request, media=True)})

    @r.get("/v2/", auth=False)
    async def legacy_version_slash(request: Request) -> Response:
        return JSON({"version": legacy(request, media=True)})

    @r.get("/v2.1", auth=False)
    async def version(request: Request) -> Response:
        return JSON({"version": doc(request)})

    @r.get("/v2.1/", auth=False)
    async def version_slash(request: Request) -> Response:
        return JSON({"version": doc(request)})

    return r
