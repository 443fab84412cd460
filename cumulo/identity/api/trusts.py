"""OS-TRUST: a trustor delegates some of its roles on a project to a trustee.

The trustee authenticates with scope ``{"OS-TRUST:trust": {"id": ...}}`` and gets a token for the
trust's project carrying only the delegated roles (as the trustor when ``impersonation`` is set).
A trust cannot be changed, only deleted; deleting it (or the trustor losing a delegated role)
ends every token made from it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.db import new_id, utcnow
from cumulo.core.http.app import JSON, Router, auth_of, json_body, no_content
from cumulo.core.http.faults import BadRequest, Forbidden, NotFound, ValidationError
from cumulo.identity import models as m
from cumulo.identity.api import validate as v
from cumulo.identity.api.common import IdentityAPI, base, collection, role_view

PREFIX = "/v3/OS-TRUST/trusts"


def router(api: IdentityAPI) -> Router:
    r = Router()
    svc = api.svc

    def target(t: Any) -> dict[str, Any]:
        return {"trust": {"trustor_user_id": t.trustor_user_id, "trustee_user_id": t.trustee_user_id}}

    async def view(request: Request, t: m.Trust) -> dict[str, Any]:
        roles = await svc.roles_by_id()
        return {
            "id": t.id, "trustor_user_id": t.trustor_user_id, "trustee_user_id": t.trustee_user_id,
            "project_id": t.project_id, "impersonation": t.impersonation,
            "expires_at": v.time_out(t.expires_at), "remaining_uses": t.remaining_uses,
            "allow_redelegation": bool((t.extra or {}).get("allow_redelegation")),
            "redelegation_count": t.redelegation_count, "redelegated_trust_id": t.redelegated_trust_id,
            "roles": [role_view(request, roles[rid]) for rid in t.role_ids if rid in roles],
            "roles_links": {"self": f"{base(request)}/OS-TRUST/trusts/{t.id}/roles", "previous": None,
                            "next": None},
            "links": {"self": f"{base(request)}/OS-TRUST/trusts/{t.id}"},
        }

    async def live(trust_id: str) -> m.Trust:
        trust = await svc.find(m.Trust, trust_id)
        if trust is None or trust.deleted_at is not None:
            raise NotFound(f"Could not find trust: {trust_id}.")
        return trust

    @r.post(PREFIX)
    async def create(request: Request) -> Response:
        data = v.entity(await json_body(request), "trust")
        trustor = v.string(data, "trustor_user_id", required=True, max_len=64)
        trustee = v.string(data, "trustee_user_id", required=True, max_len=64)
        api.authorize(request, "identity:trust_create", {"trust": {"trustor_user_id": trustor}})
        auth = auth_of(request)
        if auth.trust_id:
            raise Forbidden("Redelegating a trust is not supported.")
        impersonation = v.boolean(data, "impersonation")
        if not v.present(impersonation):
            raise ValidationError("'impersonation' is a required property.")
        expires = v.timestamp(data, "expires_at")
        if v.present(expires) and expires is not None and expires <= utcnow():
            raise BadRequest("The trust's expires_at is in the past.")
        uses = data.get("remaining_uses")
        if uses is not None and (not isinstance(uses, int) or isinstance(uses, bool) or uses <= 0):
            raise ValidationError("remaining_uses must be a positive integer or null.")
        project_id = v.string(data, "project_id", nullable=True, max_len=64)
        await svc.get(m.User, trustee)
        role_refs = data.get("roles") or []
        if not isinstance(role_refs, list) or not all(isinstance(x, dict) for x in role_refs):
            raise ValidationError("roles must be a list of {\"id\"} or {\"name\"} objects.")
        role_ids: list[str] = []
        if v.present(project_id) and project_id:
            await svc.get(m.Project, project_id)
            held = {x.id: x for x in await svc.effective_roles(trustor, "project", project_id)}
            by_name = {x.name: x.id for x in held.values()}
            for ref in role_refs:
                rid = ref.get("id") or by_name.get(ref.get("name", ""))
                if not rid or rid not in held:
                    raise Forbidden(f"The trustor does not hold the role {ref.get('id') or ref.get('name')} "
                                    f"on project {project_id}.")
                role_ids.append(rid)
        elif role_refs:
            raise ValidationError("Roles can only be delegated together with a project_id.")
        trust = m.Trust(id=new_id(), trustor_user_id=trustor, trustee_user_id=trustee,
                        project_id=project_id if v.present(project_id) else None,
                        impersonation=impersonation, expires_at=expires if v.present(expires) else None,
                        remaining_uses=uses, role_ids=list(dict.fromkeys(role_ids)),
                        extra={"allow_redelegation": bool(data.get("allow_redelegation", False))})
        await svc.insert(trust, "Conflict creating the trust.")
        return JSON({"trust": await view(request, trust)}, status_code=201)

    @r.get(PREFIX)
    async def list_trusts(request: Request) -> Response:
        auth = auth_of(request)
        q = request.query_params
        where: list[Any] = [m.Trust.deleted_at.is_(None)]
        for key in ("trustor_user_id", "trustee_user_id"):
            if key in q:
                where.append(getattr(m.Trust, key) == q[key])
                if q[key] != auth.user_id:
                    api.authorize(request, "identity:trust_read", {"trust": {key: q[key]}})
        if not any(k in q for k in ("trustor_user_id", "trustee_user_id")) and not api.allowed(
                request, "identity:trust_read", {"trust": {}}):
            where.append(or_(m.Trust.trustor_user_id == auth.user_id, m.Trust.trustee_user_id == auth.user_id))
        rows = await svc.list(m.Trust, *where)
        items = []
        for t in rows:
            item = await view(request, t)
            item.pop("roles", None)
            item.pop("roles_links", None)
            items.append(item)
        return JSON(collection(request, "trusts", items))

    @r.get(PREFIX + "/{trust_id}")
    async def show(request: Request) -> Response:
        trust = await live(request.path_params["trust_id"])
        api.authorize(request, "identity:trust_read", target(trust))
        return JSON({"trust": await view(request, trust)})

    @r.delete(PREFIX + "/{trust_id}")
    async def delete(request: Request) -> Response:
        trust = await live(request.path_params["trust_id"])
        api.authorize(request, "identity:trust_delete", target(trust))
        await svc.save(m.Trust, trust.id, {"deleted_at": utcnow()})
        await svc.revoke(trust_id=trust.id)
        return no_content()

    @r.get(PREFIX + "/{trust_id}/roles")
    async def roles(request: Request) -> Response:
        trust = await live(request.path_params["trust_id"])
        api.authorize(request, "identity:trust_read", target(trust))
        by_id = await svc.roles_by_id()
        return JSON(collection(request, "roles", [role_view(request, by_id[x]) for x in trust.role_ids
                                                  if x in by_id]))

    @r.get(PREFIX + "/{trust_id}/roles/{role_id}")
    async def role(request: Request) -> Response:
        trust = await live(request.path_params["trust_id"])
        api.authorize(request, "identity:trust_read", target(trust))
        role_id = request.path_params["role_id"]
        by_id = await svc.roles_by_id()
        if role_id not in trust.role_ids or role_id not in by_id:
            raise NotFound(f"Role {role_id} is not delegated by trust {trust.id}.")
        return JSON({"role": role_view(request, by_id[role_id])})

    return r
