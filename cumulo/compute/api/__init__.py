"""The Compute v2.1 API (Nova's twin), with microversions: versions, flavors, key pairs, limits,
quota sets and availability zones so far.  Servers arrive with the scheduler and drivers."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from cumulo.compute.service import ComputeService
from cumulo.core.http.app import JSON, Router, create_app
from cumulo.core.http.microversion import Microversions, Version
from cumulo.identity.service import IdentityService

MICROVERSIONS = Microversions("compute", Version(2, 1), Version(2, 96), "x-openstack-nova-api-version")


def version_of(request: Request) -> Version:
    return request.scope.get("cumulo.version", MICROVERSIONS.minimum)  # type: ignore[no-any-return]


def at_least(request: Request, minor: int) -> bool:
    return version_of(request) >= Version(2, minor)


def versions_router() -> Router:
    r = Router()

    def doc(request: Request) -> dict[str, Any]:
        return {"id": "v2.1", "status": "CURRENT", "version": str(MICROVERSIONS.maximum),
                "min_version": str(MICROVERSIONS.minimum), "updated": "2013-07-23T11:33:21Z",
                "links": [{"rel": "self", "href": f"{request.url.scheme}://{request.url.netloc}/v2.1/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.compute+json;version=2.1"}]}

    def legacy(request: Request) -> dict[str, Any]:
        """v2.0 is listed first, as Nova does (clients and tempest expect it); it is served by the
        same code at the base microversion."""
        return {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
                "updated": "2011-01-21T11:33:21Z",
                "links": [{"rel": "self", "href": f"{request.url.scheme}://{request.url.netloc}/v2/"}]}

    @r.get("/", auth=False)
    async def versions(request: Request) -> Response:
        return JSON({"versions": [legacy(request), doc(request)]})

    @r.get("/v2.1", auth=False)
    async def version(request: Request) -> Response:
        return JSON({"version": doc(request)})

    @r.get("/v2.1/", auth=False)
    async def version_slash(request: Request) -> Response:
        return JSON({"version": doc(request)})

    return r


def network_proxy_router() -> Router:
    """The deprecated network proxies (removed at 2.36): no networks until networking exists."""
    from cumulo.core.http.authz import authorize
    from cumulo.core.http.faults import NotFound

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


def build_app(svc: ComputeService, identity: IdentityService, max_body: int, servers: Any = None,
              images: Any = None) -> ASGIApp:
    from cumulo.compute.api import (
        aggregates,
        flavors,
        hosts,
        keypairs,
        quotas,
        security_groups,
        server_actions,
        server_extras,
        server_groups,
    )
    from cumulo.compute.api import servers as servers_api

    router = versions_router()
    for module in (flavors, keypairs, quotas, server_groups, hosts, aggregates):
        router.include(module.router(svc))
    if servers is not None:
        router.include(servers_api.router(servers, images))
        router.include(server_actions.router(servers, images))
        router.include(server_extras.router(servers))
        router.include(security_groups.router(servers))
    router.include(network_proxy_router())
    if images is not None:
        from cumulo.compute.api import images as images_proxy

        router.include(images_proxy.router(images))
    from cumulo.compute.schemas import SCHEMAS

    known = {(m, ep.path) for ep in router.endpoints for m in ep.methods}
    from cumulo.compute import policies
    from cumulo.core.http.authz import ServicePolicy

    policy = ServicePolicy.build("compute", policies.RULES, identity.cfg.policy.file, policies.MESSAGE)
    return policy.bind(create_app("compute", router, identity, max_body=max_body, microversions=MICROVERSIONS,
                                  schemas={key: value for key, value in SCHEMAS.items() if key in known}))
