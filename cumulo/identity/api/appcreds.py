"""/v3/users/{user_id}/application_credentials and /access_rules."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, auth_of, json_body, no_content
from cumulo.core.http.faults import NotFound, ValidationError
from cumulo.identity import models as m
from cumulo.identity.api import validate as v
from cumulo.identity.api.common import IdentityAPI, base, collection
from cumulo.identity.service.appcreds import new_secret

__all__ = ["router", "new_secret"]

METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}


async def app_cred_view(request: Request, api: IdentityAPI, c: m.ApplicationCredential,
                        secret: str | None = None) -> dict[str, Any]:
    roles = await api.svc.roles_by_id()
    out: dict[str, Any] = {
        "id": c.id, "name": c.name, "description": c.description, "user_id": c.user_id,
        "project_id": c.project_id, "system": c.system,
        # Keystone renders this one without the trailing Z
        "expires_at": c.expires_at.isoformat() if c.expires_at else None,
        "unrestricted": c.unrestricted,
        "roles": [{"id": r, "name": roles[r].name, "domain_id": None} for r in c.role_ids if r in roles],
        "links": {"self": f"{base(request)}/users/{c.user_id}/application_credentials/{c.id}"},
    }
    if c.access_rule_ids:
        rules = await api.svc.list(m.AccessRule, m.AccessRule.id.in_(c.access_rule_ids))
        out["access_rules"] = [{"id": r.id, "service": r.service, "path": r.path, "method": r.method}
                               for r in rules]
    else:
        out["access_rules"] = []
    if secret is not None:
        out["secret"] = secret
    return out


def access_rule_view(request: Request, r: m.AccessRule) -> dict[str, Any]:
    return {"id": r.id, "service": r.service, "path": r.path, "method": r.method,
            "links": {"self": f"{base(request)}/users/{r.user_id}/access_rules/{r.id}"}}


def check_rules(rules: Any) -> list[dict[str, Any]]:
    if rules is None:
        return []
    if not isinstance(rules, list):
        raise ValidationError("access_rules must be a list.")
    out = []
    for rule in rules:
        if not isinstance(rule, dict):
            raise ValidationError("Each access rule must be an object.")
        if "id" in rule:
            out.append({"id": str(rule["id"])})
            continue
        for key in ("service", "path", "method"):
            if not isinstance(rule.get(key), str) or not rule[key]:
                raise ValidationError(f"An access rule needs a '{key}' string.")
        if rule["method"] not in METHODS:
            raise ValidationError(f"Invalid access rule method {rule['method']!r}.")
        out.append({"service": rule["service"], "path": rule["path"], "method": rule["method"]})
    return out


def router(api: IdentityAPI) -> Router:
    r = Router()
    svc = api.svc
    prefix = "/v3/users/{user_id}/application_credentials"

    def target(request: Request) -> dict[str, Any]:
        return {"user_id": request.path_params["user_id"], "user": {"id": request.path_params["user_id"]}}

    @r.post(prefix)
    async def create(request: Request) -> Response:
        api.authorize(request, "identity:application_credential_write", target(request))
        data = v.entity(await json_body(request), "application_credential")
        values = v.pick(data, name=v.name(data),
                        description=v.string(data, "description", nullable=True, max_len=65535),
                        secret=v.string(data, "secret", nullable=True, max_len=4096),
                        expires_at=v.timestamp(data, "expires_at"),
                        unrestricted=v.boolean(data, "unrestricted"))
        roles = data.get("roles")
        if roles is not None and (not isinstance(roles, list) or not all(isinstance(x, dict) for x in roles)):
            raise ValidationError("roles must be a list of {\"id\": ...} or {\"name\": ...} objects.")
        cred, secret = await svc.create_app_cred(auth_of(request), request.path_params["user_id"], values,
                                                 roles, check_rules(data.get("access_rules")))
        return JSON({"application_credential": await app_cred_view(request, api, cred, secret)},
                    status_code=201)

    @r.get(prefix)
    async def list_creds(request: Request) -> Response:
        api.authorize(request, "identity:application_credential_read", target(request))
        user_id = request.path_params["user_id"]
        await svc.get(m.User, user_id)
        where = [m.ApplicationCredential.user_id == user_id]
        if "name" in request.query_params:
            where.append(m.ApplicationCredential.name == request.query_params["name"])
        rows = await svc.list(m.ApplicationCredential, *where, order=m.ApplicationCredential.name)
        return JSON(collection(request, "application_credentials",
                               [await app_cred_view(request, api, c) for c in rows]))

    @r.get(prefix + "/{cred_id}")
    async def get_cred(request: Request) -> Response:
        api.authorize(request, "identity:application_credential_read", target(request))
        cred = await svc.get_app_cred(request.path_params["user_id"], request.path_params["cred_id"])
        return JSON({"application_credential": await app_cred_view(request, api, cred)})

    @r.delete(prefix + "/{cred_id}")
    async def delete_cred(request: Request) -> Response:
        api.authorize(request, "identity:application_credential_write", target(request))
        await svc.delete_app_cred(request.path_params["user_id"], request.path_params["cred_id"])
        return no_content()

    @r.get("/v3/users/{user_id}/access_rules")
    async def list_rules(request: Request) -> Response:
        api.authorize(request, "identity:access_rule_read", target(request))
        rows = await svc.list(m.AccessRule, m.AccessRule.user_id == request.path_params["user_id"])
        q = request.query_params
        rows = [x for x in rows if all(getattr(x, k) == q[k] for k in ("service", "path", "method") if k in q)]
        return JSON(collection(request, "access_rules", [access_rule_view(request, x) for x in rows]))

    @r.get("/v3/users/{user_id}/access_rules/{rule_id}")
    async def get_rule(request: Request) -> Response:
        api.authorize(request, "identity:access_rule_read", target(request))
        row = await svc.get(m.AccessRule, request.path_params["rule_id"])
        if row.user_id != request.path_params["user_id"]:
            raise NotFound(f"Could not find access rule: {row.id}.")
        return JSON({"access_rule": access_rule_view(request, row)})

    @r.delete("/v3/users/{user_id}/access_rules/{rule_id}")
    async def delete_rule(request: Request) -> Response:
        api.authorize(request, "identity:access_rule_write", target(request))
        await svc.delete_access_rule(request.path_params["user_id"], request.path_params["rule_id"])
        return no_content()

    return r
