"""/v3/auth: issue, validate and revoke tokens; the token's catalog, projects, domains, system."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.context import AuthContext
from cumulo.core.http.app import JSON, Router, auth_of, json_body, no_content
from cumulo.core.http.faults import NotFound, Unauthorized
from cumulo.core.http.paging import parse_bool
from cumulo.identity import models as m
from cumulo.identity.api import validate as v
from cumulo.identity.api.common import IdentityAPI, collection, domain_view, project_view
from cumulo.identity.service.auth import TokenInvalid


def token_catalog(catalog: list[dict[str, Any]], ctx: AuthContext) -> list[dict[str, Any]]:
    """The catalog as one token sees it: ``$(project_id)s``/``%(project_id)s`` (and ``tenant_id``,
    ``user_id``) in an endpoint's URL become the token's own, as Keystone substitutes them; an
    endpoint that needs a project is left out of a token that has none."""
    values = {"project_id": ctx.project_id or "", "tenant_id": ctx.project_id or "", "user_id": ctx.user_id or ""}
    if not any("(" in ep["url"] for svc in catalog for ep in svc["endpoints"]):
        return catalog
    out = []
    for svc in catalog:
        endpoints = []
        for ep in svc["endpoints"]:
            url = ep["url"]
            for key, value in values.items():
                for form in (f"$({key})s", f"%({key})s"):
                    if form in url:
                        url = url.replace(form, value) if value else ""
            if url:
                endpoints.append({**ep, "url": url})
        out.append({**svc, "endpoints": endpoints})
    return out


async def token_body(api: IdentityAPI, ctx: AuthContext, catalog: bool) -> dict[str, Any]:
    token: dict[str, Any] = {
        "methods": ctx.methods,
        "user": {"id": ctx.user_id, "name": ctx.user_name,
                 "domain": {"id": ctx.user_domain_id, "name": ctx.user_domain_name},
                 "password_expires_at": v.time_out(ctx.password_expires_at)},
        "audit_ids": ctx.audit_ids,
        "expires_at": v.time_out(ctx.expires_at),
        "issued_at": v.time_out(ctx.issued_at),
    }
    if ctx.project_id:
        token["project"] = {"id": ctx.project_id, "name": ctx.project_name,
                            "domain": {"id": ctx.project_domain_id, "name": ctx.project_domain_name}}
        token["is_domain"] = False
        if ctx.is_admin_project:
            token["is_admin_project"] = True
    elif ctx.domain_id:
        token["domain"] = {"id": ctx.domain_id, "name": ctx.domain_name}
    elif ctx.system_scope:
        token["system"] = {ctx.system_scope: True}
    if ctx.scope != "unscoped":
        token["roles"] = [{"id": i, "name": n} for i, n in zip(ctx.role_ids, ctx.roles, strict=False)]
        if catalog:
            token["catalog"] = token_catalog(await api.svc.catalog(), ctx)
    if ctx.application_credential_id:
        cred = await api.svc.find(m.ApplicationCredential, ctx.application_credential_id)
        token["application_credential"] = {
            "id": ctx.application_credential_id, "name": cred.name if cred else "",
            "restricted": not (cred.unrestricted if cred else False)}
        if ctx.access_rules is not None:
            token["application_credential"]["access_rules"] = ctx.access_rules
    if ctx.trust_id:
        trust = await api.svc.find(m.Trust, ctx.trust_id)
        if trust is not None:
            token["OS-TRUST:trust"] = {"id": trust.id, "impersonation": trust.impersonation,
                                       "trustee_user": {"id": trust.trustee_user_id},
                                       "trustor_user": {"id": trust.trustor_user_id}}
    return {"token": token}


def router(api: IdentityAPI) -> Router:
    r = Router()

    @r.post("/v3/auth/tokens", auth=False)
    async def issue_token(request: Request) -> Response:
        body = await json_body(request)
        auth = v.entity(body, "auth")
        token, ctx = await api.svc.authenticate(auth)
        catalog = "nocatalog" not in request.query_params
        return JSON(await token_body(api, ctx, catalog), status_code=201,
                    headers={"X-Subject-Token": token})

    async def subject(request: Request) -> AuthContext:
        token = request.headers.get("x-subject-token")
        if not token:
            raise NotFound("X-Subject-Token is required: name the token to check.")
        allow_expired = parse_bool("allow_expired", request.query_params.get("allow_expired", "false"))
        try:
            return await api.svc.validate(token, allow_expired=allow_expired)
        except TokenInvalid as exc:
            raise NotFound(f"Could not find token: {exc.message}") from None

    @r.get("/v3/auth/tokens")
    async def validate_token(request: Request) -> Response:
        caller = auth_of(request)
        subj = await subject(request)
        rule = "identity:check_token" if request.method == "HEAD" else "identity:validate_token"
        if subj.user_id != caller.user_id:
            api.authorize(request, rule, {"token": {"user_id": subj.user_id}})
        headers = {"X-Subject-Token": subj.token}
        if request.method == "HEAD":
            return Response(status_code=200, headers=headers)
        catalog = "nocatalog" not in request.query_params
        return JSON(await token_body(api, subj, catalog), headers=headers)

    @r.delete("/v3/auth/tokens")
    async def revoke_token(request: Request) -> Response:
        caller = auth_of(request)
        subj = await subject(request)
        if subj.user_id != caller.user_id:
            api.authorize(request, "identity:revoke_token", {"token": {"user_id": subj.user_id}})
        await api.svc.revoke(audit_id=subj.audit_ids[0])
        return no_content()

    @r.get("/v3/auth/catalog")
    async def auth_catalog(request: Request) -> Response:
        auth = auth_of(request)
        if auth.scope == "unscoped":
            raise Unauthorized("The catalog is only available to a scoped token.")
        return JSON({"catalog": token_catalog(await api.svc.catalog(), auth),
                     "links": {"self": str(request.url), "previous": None, "next": None}})

    @r.get("/v3/auth/projects")
    async def auth_projects(request: Request) -> Response:
        auth = auth_of(request)
        projects = [p for p in await api.svc.user_projects(auth.user_id) if p.enabled]
        return JSON(collection(request, "projects", [project_view(request, p) for p in projects]))

    @r.get("/v3/auth/domains")
    async def auth_domains(request: Request) -> Response:
        auth = auth_of(request)
        domains = [d for d in await api.svc.user_domains(auth.user_id) if d.enabled]
        return JSON(collection(request, "domains", [domain_view(request, d) for d in domains]))

    @r.get("/v3/auth/system")
    async def auth_system(request: Request) -> Response:
        auth = auth_of(request)
        system = [{"all": True}] if await api.svc.has_system_roles(auth.user_id) else []
        return JSON({"system": system, "links": {"self": str(request.url), "previous": None,
                                                 "next": None}})

    @r.post("/v3/users/{user_id}/password", auth=False)
    async def change_password(request: Request) -> Response:
        """No token needed (an expired password can be changed): the original password is the proof."""
        data = v.entity(await json_body(request), "user")
        original = v.string(data, "original_password", required=True, max_len=4096)
        new = v.string(data, "password", required=True, max_len=4096)
        await api.svc.change_password(request.path_params["user_id"], original, new)
        return no_content()

    return r
