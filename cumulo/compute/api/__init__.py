"""The Compute v2.1 API (Nova's twin), with microversions: one module per area, assembled here."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp

from cumulo.compute import policies
from cumulo.compute.api import (
    aggregates,
    external_events,
    flavors,
    hosts,
    interfaces,
    keypairs,
    legacy,
    network_proxy,
    quotas,
    security_groups,
    server_actions,
    server_extras,
    server_groups,
    volume_attachments,
    volumes_proxy,
)
from cumulo.compute.api import consoles as consoles_api
from cumulo.compute.api import images as images_proxy
from cumulo.compute.api import servers as servers_api
from cumulo.compute.api.common import MICROVERSIONS, at_least, version_of
from cumulo.compute.api.versions import versions_router
from cumulo.compute.consoles.service import remote_consoles
from cumulo.compute.schemas import SCHEMAS
from cumulo.compute.service import ComputeService
from cumulo.core.http.app import create_app
from cumulo.core.http.authz import ServicePolicy
from cumulo.identity.service import IdentityService

__all__ = ["MICROVERSIONS", "at_least", "build_app", "version_of"]


def build_app(svc: ComputeService, identity: IdentityService, max_body: int, servers: Any = None,
              images: Any = None) -> ASGIApp:
    router = versions_router()
    for module in (flavors, keypairs, quotas, server_groups, hosts, aggregates):
        router.include(module.router(svc))
    if servers is not None:
        router.include(servers_api.router(servers, images))
        remote = remote_consoles(identity.cfg, servers.db, servers.bus)
        router.include(server_actions.router(servers, images, {**consoles_api.legacy_actions(remote),
                                                               **network_proxy.actions(servers)}))
        router.include(external_events.router(servers))
        router.include(consoles_api.router(servers, remote))
        router.include(server_extras.router(servers))
        router.include(interfaces.router(servers))
        router.include(security_groups.router(servers))
        router.include(volume_attachments.router(servers))
        router.include(volumes_proxy.router(servers))
    router.include(network_proxy.router(servers))
    router.include(legacy.router())
    if images is not None:
        router.include(images_proxy.router(images, svc))
    known = {(m, ep.path) for ep in router.endpoints for m in ep.methods}
    policy = ServicePolicy.build("compute", policies.RULES, identity.cfg.policy.file, policies.MESSAGE)
    return policy.bind(create_app("compute", router, identity, max_body=max_body, microversions=MICROVERSIONS,
                                  schemas={key: value for key, value in SCHEMAS.items() if key in known}))
