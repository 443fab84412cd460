"""The Block Storage v3 API (Cinder's twin) on ``[volume] port``: every route under
``/v3/{project_id}`` and under ``/v3`` (3.67), microversions 3.0-3.71 (``OpenStack-API-Version:
volume 3.x``), Cinder's faults and default policies.  A path with a trailing slash is not
redirected: ``/v3/volumes/`` names no volume, a 404 as in Cinder."""

from __future__ import annotations

from starlette.types import ASGIApp

from cumulo.core.http.app import create_app
from cumulo.core.http.authz import ServicePolicy
from cumulo.identity.service import IdentityService
from cumulo.volume import policies
from cumulo.volume.api import (
    admin,
    attachments,
    backups,
    encryption,
    groups,
    qos,
    quotas,
    snapshots,
    transfers,
    types,
    versions,
    volumes,
)
from cumulo.volume.api.common import MICROVERSIONS, PREFIXES
from cumulo.volume.schemas import BODIES
from cumulo.volume.service import VolumeService

__all__ = ["MICROVERSIONS", "build_app"]


def build_app(svc: VolumeService, identity: IdentityService, max_body: int) -> ASGIApp:
    router = versions.router()
    for module in (volumes, types, snapshots, quotas, attachments, admin):
        router.include(module.router(svc))
    for module in (backups, qos, transfers, groups, encryption):
        router.include(module.router(svc))
    schemas = {(method, prefix + path): body for (method, path), body in BODIES.items() for prefix in PREFIXES}
    policy = ServicePolicy.build("block-storage", policies.RULES, identity.cfg.policy.file, policies.MESSAGE)
    return policy.bind(create_app("block-storage", router, identity, max_body=max_body, microversions=MICROVERSIONS,
                                  schemas=schemas, redirect_slashes=False))
