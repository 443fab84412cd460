"""Authorize a request against a named policy rule, with the service's own 403.

Every API but identity (which has its own ``IdentityAPI.authorize``) binds a ``ServicePolicy``
around its app: the policy rides in the ASGI scope, so a handler only says which rule and which
target::

    authorize(request, "os_compute_api:servers:delete", {"project_id": server.project_id})

The target is what the rule's ``%(...)s`` substitutions read: the resource acted on, with its
``project_id`` at least.  Without one, the caller's own project and user are the target (what
Nova and Neutron use for creates and lists).  A rule name with no default is a programming error
(``PolicyNotRegistered``), never a 403.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from cumulo.core.context import AuthContext
from cumulo.core.http.app import auth_of
from cumulo.core.http.faults import Forbidden
from cumulo.core.policy import Enforcer

SCOPE_KEY = "cumulo.policy"


@dataclass(frozen=True)
class Rule:
    name: str
    check: str
    description: str


def defaults(rules: Iterable[Rule]) -> tuple[dict[str, str], dict[str, str]]:
    """The default check strings and descriptions of a service's rules, by name (no duplicates)."""
    checks: dict[str, str] = {}
    descriptions: dict[str, str] = {}
    for rule in rules:
        if rule.name in checks:
            raise ValueError(f"policy rule {rule.name} is defined twice")
        checks[rule.name] = rule.check
        descriptions[rule.name] = rule.description
    return checks, descriptions


@dataclass
class ServicePolicy:
    """A service's enforcer and how it words a refusal (``{rule}`` is replaced by the rule name)."""

    service: str
    enforcer: Enforcer
    message: str

    @classmethod
    def build(cls, service: str, rules: Iterable[Rule], policy_file: str | os.PathLike[str] | None,
              message: str) -> ServicePolicy:
        checks, descriptions = defaults(rules)
        return cls(service, Enforcer(checks, policy_file or None, descriptions), message)

    def bind(self, app: ASGIApp) -> ASGIApp:
        async def with_policy(scope: Scope, receive: Receive, send: Send) -> None:
            scope[SCOPE_KEY] = self
            await app(scope, receive, send)
        with_policy.app = app  # type: ignore[attr-defined]  # what it wraps (its OpenAPI document)
        return with_policy

    def enforce(self, rule: str, target: Mapping[str, Any], auth: AuthContext) -> bool:
        return self.enforcer.enforce(rule, target, auth.creds())


def policy_of(request: Request) -> ServicePolicy:
    policy = request.scope.get(SCOPE_KEY)
    if policy is None:
        raise RuntimeError(f"no policy is bound around the app serving {request.url.path}")
    return policy  # type: ignore[no-any-return]


def verb(request: Request) -> str:
    """The request's method for choosing its rule: HEAD asks what GET asks."""
    return "GET" if request.method == "HEAD" else request.method


def default_target(auth: AuthContext) -> dict[str, Any]:
    return {"project_id": auth.project_id, "user_id": auth.user_id}


def allowed(request: Request, rule: str, target: Mapping[str, Any] | None = None) -> bool:
    auth = auth_of(request)
    return policy_of(request).enforce(rule, default_target(auth) if target is None else target, auth)


def authorize(request: Request, rule: str, target: Mapping[str, Any] | None = None) -> AuthContext:
    """The caller, once ``rule`` allows them on ``target``; otherwise the service's 403."""
    auth = auth_of(request)
    policy = policy_of(request)
    if not policy.enforce(rule, default_target(auth) if target is None else target, auth):
        raise Forbidden(policy.message.format(rule=rule))
    return auth
