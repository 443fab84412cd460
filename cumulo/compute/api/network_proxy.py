"""Nova's deprecated network proxies (os-networks), removed at microversion 2.36: there are no
nova-network networks, so the list is empty and every network is missing."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.common import at_least
from cumulo.core.http.app import JSON, Router
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import NotFound


def router() -> Router:
    """The deprecated network proxies (removed at 2.36): no networks until networking exists."""
    r = Router()

    def proxy_gone(request: Request) -> None:
        if at_least(request, 36):
            raise NotFound("The network proxy APIs were removed in microversion 2.36: use the Network API.")

    @r.get("/v2.1/os-networks")
    async def networks(request: Request) -> Response:
        proxy_gone(request)
        authorize(request, "os_compute_api:os-networks:list")
        return JSON({"networks": []})

    @r.get("/v2.1/os-networks/{network_id}")
    async def network(request: Request) -> Response:
        proxy_gone(request)
        authorize(request, "os_compute_api:os-networks:show")
        raise NotFound(f"Network {request.path_params['network_id']} could not be found.")

    return r
