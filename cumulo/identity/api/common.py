"""What every identity API module shares: the service handle, policy checks, links and views."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from cumulo.core.context import AuthContext
from cumulo.core.http.app import auth_of
from cumulo.core.http.faults import Forbidden
from cumulo.core.policy import Enforcer, PolicyNotAuthorized
from cumulo.identity import models as m
from cumulo.identity.api.validate import time_out
from cumulo.identity.service import IdentityService
from cumulo.identity.service.base import NULL_DOMAIN


@dataclass
class IdentityAPI:
    svc: IdentityService
    policy: Enforcer

    def authorize(self, request: Request, rule: str, target: dict[str, Any] | None = None) -> AuthContext:
        auth = auth_of(request)
        try:
            self.policy.authorize(rule, target or {}, auth.creds())
        except PolicyNotAuthorized:
            raise Forbidden(f"You are not authorized to perform the requested action: {rule}.") from None
        return auth

    def allowed(self, request: Request, rule: str, target: dict[str, Any] | None = None) -> bool:
        return self.policy.enforce(rule, target or {}, auth_of(request).creds())


def base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}/v3"


def self_link(request: Request, path: str) -> dict[str, str]:
    return {"self": f"{base(request)}/{path}"}


def collection(request: Request, key: str, items: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    url = str(request.url)
    return {key: items, "links": {"self": url, "previous": None, "next": None}, **extra}


# -- views: rows to Keystone's representations ---------------------------------------------
def domain_view(request: Request, d: m.Domain) -> dict[str, Any]:
    return {**(d.extra or {}), "id": d.id, "name": d.name, "description": d.description or "",
            "enabled": d.enabled, "tags": [], "options": d.options or {},
            "links": self_link(request, f"domains/{d.id}")}


def project_view(request: Request, p: m.Project) -> dict[str, Any]:
    return {**(p.extra or {}), "id": p.id, "name": p.name, "domain_id": p.domain_id,
            "description": p.description or "", "enabled": p.enabled,
            "parent_id": p.parent_id or p.domain_id, "is_domain": False, "tags": p.tags or [],
            "options": p.options or {}, "links": self_link(request, f"projects/{p.id}")}


def user_view(request: Request, u: m.User, password_expires_at: Any = None) -> dict[str, Any]:
    out = {**(u.extra or {}), "id": u.id, "name": u.name, "domain_id": u.domain_id,
           "enabled": u.enabled, "password_expires_at": time_out(password_expires_at),
           "options": u.options or {}, "links": self_link(request, f"users/{u.id}")}
    if u.default_project_id:
        out["default_project_id"] = u.default_project_id
    if u.description is not None:
        out["description"] = u.description
    return out


def group_view(request: Request, g: m.Group) -> dict[str, Any]:
    return {**(g.extra or {}), "id": g.id, "name": g.name, "domain_id": g.domain_id,
            "description": g.description or "", "links": self_link(request, f"groups/{g.id}")}


def role_view(request: Request, r: m.Role) -> dict[str, Any]:
    out = {**(r.extra or {}), "id": r.id, "name": r.name,
           "domain_id": None if r.domain_id == NULL_DOMAIN else r.domain_id,
           "options": r.options or {}, "links": self_link(request, f"roles/{r.id}")}
    out.setdefault("description", r.description)
    return out


def role_ref(request: Request, r: m.Role) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "links": self_link(request, f"roles/{r.id}")}
