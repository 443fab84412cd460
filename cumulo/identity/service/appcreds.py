"""Application credentials: a user's delegated secret for one project, with a subset of its roles."""

from __future__ import annotations

import base64
import os
from typing import Any

from sqlalchemy import select

from cumulo.core.context import AuthContext
from cumulo.core.db import new_id, utcnow
from cumulo.core.http.faults import BadRequest, Forbidden, NotFound
from cumulo.identity import models as m
from cumulo.identity.service.auth import AuthMixin
from cumulo.identity.service.passwords import hash_async


def new_secret() -> str:
    return base64.urlsafe_b64encode(os.urandom(48)).rstrip(b"=").decode()


class AppCredMixin(AuthMixin):
    async def create_app_cred(self, auth: AuthContext, user_id: str, values: dict[str, Any],
                              role_refs: list[dict[str, Any]] | None,
                              rules: list[dict[str, Any]] | None) -> tuple[m.ApplicationCredential, str]:
        if auth.user_id != user_id:
            raise Forbidden("Application credentials can only be created for yourself.")
        if auth.application_credential_id:
            cred = await self.find(m.ApplicationCredential, auth.application_credential_id)
            if cred is None or not cred.unrestricted:
                raise Forbidden("A restricted application credential cannot create application "
                                "credentials.")
        if auth.trust_id:
            raise Forbidden("A trust-scoped token cannot create application credentials.")
        if not auth.project_id and not auth.system_scope:
            raise BadRequest("Application credentials must be created with a project-scoped token.")
        expires = values.get("expires_at")
        if expires is not None and expires <= utcnow():
            raise BadRequest("The expiration time of an application credential must be in the future.")
        roles = await self.roles_by_id()
        held = dict(zip(auth.role_ids, auth.roles, strict=False))
        role_ids: list[str] = []
        for ref in role_refs or []:
            rid = ref.get("id")
            if not rid and ref.get("name"):
                rid = next((r.id for r in roles.values() if r.name == ref["name"]
                            and r.id in held), None)
            if not rid or rid not in held:
                raise Forbidden(f"You cannot delegate the role {ref.get('id') or ref.get('name')}: "
                                "the token does not hold it.")
            role_ids.append(rid)
        if not role_refs:
            role_ids = list(auth.role_ids)
        secret = values.pop("secret", None) or new_secret()
        rule_ids = await self._access_rules(user_id, rules or [])
        row = m.ApplicationCredential(
            id=new_id(), user_id=user_id, project_id=auth.project_id, system=auth.system_scope,
            secret_hash=await hash_async(secret, self.cfg.identity.password_hash_rounds),
            role_ids=list(dict.fromkeys(role_ids)), access_rule_ids=rule_ids, **values)
        await self.insert(row, f"Conflict occurred attempting to store application_credential - "
                               f"Duplicate entry found with name {row.name}.")
        return row, secret

    async def _access_rules(self, user_id: str, rules: list[dict[str, Any]]) -> list[str]:
        ids: list[str] = []
        async with self.db.session() as s:
            for rule in rules:
                if rule.get("id"):
                    row = await s.get(m.AccessRule, rule["id"])
                    if row is None or row.user_id != user_id:
                        raise NotFound(f"Could not find access rule: {rule['id']}.")
                else:
                    row = (await s.execute(select(m.AccessRule).where(
                        m.AccessRule.user_id == user_id, m.AccessRule.service == rule["service"],
                        m.AccessRule.path == rule["path"], m.AccessRule.method == rule["method"]))).scalar()
                    if row is None:
                        row = m.AccessRule(id=new_id(), user_id=user_id, service=rule["service"],
                                           path=rule["path"], method=rule["method"])
                        s.add(row)
                ids.append(row.id)
        return ids

    async def get_app_cred(self, user_id: str, cred_id: str) -> m.ApplicationCredential:
        cred = await self.find(m.ApplicationCredential, cred_id)
        if cred is None or cred.user_id != user_id:
            raise NotFound(f"Could not find application credential: {cred_id}.")
        return cred

    async def delete_app_cred(self, user_id: str, cred_id: str) -> None:
        await self.get_app_cred(user_id, cred_id)
        await self.remove(m.ApplicationCredential, cred_id)
        await self.revoke(application_credential_id=cred_id)

    async def delete_access_rule(self, user_id: str, rule_id: str) -> None:
        rule = await self.find(m.AccessRule, rule_id)
        if rule is None or rule.user_id != user_id:
            raise NotFound(f"Could not find access rule: {rule_id}.")
        for cred in await self.list(m.ApplicationCredential, m.ApplicationCredential.user_id == user_id):
            if rule_id in (cred.access_rule_ids or []):
                raise Forbidden(f"Access rule {rule_id} is in use by application credential {cred.id}.")
        await self.remove(m.AccessRule, rule_id)

