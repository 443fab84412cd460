"""The Identity v3 API (Keystone's twin): one router per resource area, assembled here."""

from __future__ import annotations

from starlette.types import ASGIApp

from cumulo.core.http.app import Router, create_app
from cumulo.core.policy import Enforcer
from cumulo.identity import nodes
from cumulo.identity.api import (
    appcreds,
    auth,
    catalog,
    consumers,
    credentials,
    domain_config,
    ec2,
    endpoint_filter,
    limits,
    policies,
    projects,
    roles,
    trusts,
    users,
    versions,
)
from cumulo.identity.api.common import IdentityAPI
from cumulo.identity.schemas import SCHEMAS
from cumulo.identity.service import IdentityService

MODULES = [auth, projects, users, roles, catalog, appcreds, credentials, policies, endpoint_filter,
           domain_config, consumers, trusts, limits, ec2, nodes]


def build_app(svc: IdentityService, policy: Enforcer, max_body: int) -> ASGIApp:
    api = IdentityAPI(svc, policy)
    router = Router()
    router.include(versions.router())
    for module in MODULES:
        router.include(module.router(api))
    return create_app("identity", router, svc, max_body=max_body, schemas=SCHEMAS)
