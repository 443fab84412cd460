"""Domains, projects, users, groups and roles: the records identity is made of."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, or_, select

from cumulo.core.db import IntegrityError, is_duplicate, new_id, utcnow
from cumulo.core.http.faults import BadRequest, Conflict, Forbidden, NotFound
from cumulo.identity import models as m
from cumulo.identity.service.base import NULL_DOMAIN, ServiceBase
from cumulo.identity.service.passwords import check_async, hash_async


class ResourceMixin(ServiceBase):
    # -- domains ----------------------------------------------------------------------------
    async def create_domain(self, values: dict[str, Any]) -> m.Domain:
        row = m.Domain(id=values.pop("id", None) or new_id(), **values)
        return await self.insert(row, f"Conflict occurred attempting to store domain - Duplicate entry "
                                      f"found with name {row.name}.")

    async def update_domain(self, domain_id: str, values: dict[str, Any]) -> m.Domain:
        row = await self.save(m.Domain, domain_id, values,
                              f"Conflict occurred attempting to update domain - Duplicate entry found "
                              f"with name {values.get('name')}.")
        if "enabled" in values:
            await self.changed("domain")
        return row

    async def delete_domain(self, domain_id: str) -> None:
        domain = await self.get(m.Domain, domain_id)
        if domain.enabled:
            raise Forbidden("Cannot delete a domain that is enabled, please disable it first.")
        async with self.db.session() as s:
            project_ids = (await s.execute(select(m.Project.id).where(m.Project.domain_id == domain_id))
                           ).scalars().all()
            user_ids = (await s.execute(select(m.User.id).where(m.User.domain_id == domain_id))
                        ).scalars().all()
            group_ids = (await s.execute(select(m.Group.id).where(m.Group.domain_id == domain_id))
                         ).scalars().all()
            targets = [domain_id, *project_ids]
            actors = [*user_ids, *group_ids]
            await s.execute(delete(m.Assignment).where(or_(m.Assignment.target_id.in_(targets),
                                                           m.Assignment.actor_id.in_(actors))))
            await s.execute(delete(m.Membership).where(or_(m.Membership.user_id.in_(user_ids),
                                                           m.Membership.group_id.in_(group_ids))))
            await s.execute(delete(m.Password).where(m.Password.user_id.in_(user_ids)))
            await s.execute(delete(m.ApplicationCredential).where(
                m.ApplicationCredential.user_id.in_(user_ids)))
            await s.execute(delete(m.AccessRule).where(m.AccessRule.user_id.in_(user_ids)))
            await s.execute(delete(m.User).where(m.User.domain_id == domain_id))
            await s.execute(delete(m.Group).where(m.Group.domain_id == domain_id))
            # children before parents
            while project_ids:
                parents = set((await s.execute(select(m.Project.parent_id).where(
                    m.Project.id.in_(project_ids)))).scalars())
                leaves = [p for p in project_ids if p not in parents]
                await s.execute(delete(m.Project).where(m.Project.id.in_(leaves)))
                project_ids = [p for p in project_ids if p in parents]
            await s.execute(delete(m.Role).where(m.Role.domain_id == domain_id))
            await s.delete(domain)
        await self.changed("domain")

    # -- projects ---------------------------------------------------------------------------
    async def create_project(self, values: dict[str, Any]) -> m.Project:
        async with self.db.session() as s:
            domain = await s.get(m.Domain, values["domain_id"])
            if domain is None:
                raise NotFound(f"Could not find domain: {values['domain_id']}.")
            parent_id = values.get("parent_id")
            if parent_id == domain.id:
                values["parent_id"] = parent_id = None
            if parent_id:
                parent = await s.get(m.Project, parent_id)
                if parent is None:
                    raise NotFound(f"Could not find project: {parent_id}.")
                if parent.domain_id != domain.id:
                    raise Forbidden("Cannot create project, the parent and the project must be in "
                                    "the same domain.")
                if not parent.enabled and values.get("enabled", True):
                    raise Forbidden(f"Cannot enable project {values['name']} since it has disabled "
                                    "parents.")
        row = m.Project(id=new_id(), **values)
        return await self.insert(row, f"Conflict occurred attempting to store project - it is not "
                                      f"permitted to have two projects with the same name in the same "
                                      f"domain : {row.name}.")

    async def update_project(self, project_id: str, values: dict[str, Any]) -> m.Project:
        project = await self.get(m.Project, project_id)
        if "domain_id" in values and values["domain_id"] != project.domain_id:
            raise BadRequest("Cannot change the domain_id of a project.")
        if "parent_id" in values and values["parent_id"] not in (project.parent_id, None):
            raise Forbidden("Updating the parent of a project is not allowed.")
        values.pop("domain_id", None)
        values.pop("parent_id", None)
        if values.get("enabled") is False and project.enabled:
            children = await self.list(m.Project, m.Project.parent_id == project_id,
                                       m.Project.enabled.is_(True))
            if children:
                raise Forbidden(f"Cannot disable project {project_id} since its subtree contains "
                                "enabled projects.")
        row = await self.save(m.Project, project_id, values,
                              f"Conflict occurred attempting to update project - it is not permitted "
                              f"to have two projects with the same name in the same domain : "
                              f"{values.get('name')}.")
        if "enabled" in values:
            await self.changed("project")
        return row

    async def delete_project(self, project_id: str) -> None:
        async with self.db.session() as s:
            project = await self.get(m.Project, project_id, s)
            child = (await s.execute(select(m.Project.id).where(m.Project.parent_id == project_id)
                                     .limit(1))).first()
            if child:
                raise Forbidden(f"Cannot delete the project {project_id} since it is not a leaf in the "
                                "hierarchy. Delete its child projects first.")
            await s.execute(delete(m.Assignment).where(m.Assignment.target_id == project_id))
            await s.execute(delete(m.ProjectEndpoint).where(m.ProjectEndpoint.project_id == project_id))
            await s.execute(delete(m.Limit).where(m.Limit.project_id == project_id))  # as Keystone does
            await s.delete(project)
        await self.changed("project")

    async def project_parents(self, project: m.Project) -> list[m.Project]:
        out: list[m.Project] = []
        parent_id = project.parent_id
        async with self.db.session() as s:
            while parent_id:
                parent = await s.get(m.Project, parent_id)
                if parent is None:
                    break
                out.append(parent)
                parent_id = parent.parent_id
        return out

    async def project_subtree(self, project_id: str) -> list[m.Project]:
        out: list[m.Project] = []
        frontier = [project_id]
        async with self.db.session() as s:
            while frontier:
                children = (await s.execute(select(m.Project).where(m.Project.parent_id.in_(frontier))
                                            .order_by(m.Project.name))).scalars().all()
                out.extend(children)
                frontier = [c.id for c in children]
        return out

    async def project_ids(self, names: list[str], domain_id: str) -> dict[str, str]:
        """Project name -> id for the projects of ``domain_id`` named in ``names`` (others absent)."""
        if not names:
            return {}
        async with self.db.session() as s:
            rows = (await s.execute(select(m.Project.name, m.Project.id).where(
                m.Project.domain_id == domain_id, m.Project.name.in_(names)))).all()
        return {name: id_ for name, id_ in rows}

    # -- users ------------------------------------------------------------------------------
    def _password_expiry(self, options: dict[str, Any], now: dt.datetime) -> dt.datetime | None:
        days = self.cfg.identity.security_compliance.password_expires_days
        if days and not options.get("ignore_password_expiry"):
            return now + dt.timedelta(days=days)
        return None

    async def create_user(self, values: dict[str, Any], password: str | None) -> m.User:
        await self.get(m.Domain, values["domain_id"])
        row = m.User(id=new_id(), **values)
        hashed = await hash_async(password, self.cfg.identity.password_hash_rounds) if password else None
        now = utcnow()
        try:
            async with self.db.session() as s:
                s.add(row)
                await s.flush()
                if hashed:
                    s.add(m.Password(user_id=row.id, hash=hashed, created_at=now,
                                     expires_at=self._password_expiry(row.options or {}, now)))
        except IntegrityError as exc:
            if is_duplicate(exc):
                raise Conflict(f"Conflict occurred attempting to store user - Duplicate entry found "
                               f"with name {row.name} at domain ID {row.domain_id}.") from None
            raise
        return row

    async def current_password(self, user_id: str) -> m.Password | None:
        async def load() -> m.Password | None:
            async with self.db.session() as s:
                return (await s.execute(select(m.Password).where(m.Password.user_id == user_id)
                                        .order_by(m.Password.id.desc()).limit(1))).scalar()

        return await self.memo(("password", user_id), load)  # type: ignore[no-any-return]

    async def password_expires_at(self, user_ids: Sequence[str]) -> dict[str, dt.datetime | None]:
        """The current password's expiry of each user, in one query (for user lists)."""
        if not user_ids:
            return {}
        async with self.db.session() as s:
            rows = (await s.execute(select(m.Password.user_id, m.Password.expires_at, m.Password.id)
                                    .where(m.Password.user_id.in_(list(user_ids))))).all()
        latest: dict[str, tuple[int, dt.datetime | None]] = {}
        for uid, expires, pid in rows:
            if uid not in latest or pid > latest[uid][0]:
                latest[uid] = (pid, expires)
        return {uid: latest.get(uid, (0, None))[1] for uid in user_ids}

    async def update_user(self, user_id: str, values: dict[str, Any], password: str | None) -> m.User:
        user = await self.get(m.User, user_id)
        if "domain_id" in values and values["domain_id"] != user.domain_id:
            raise BadRequest("Cannot change the domain_id of a user.")
        values.pop("domain_id", None)
        if "options" in values:
            merged = dict(user.options or {})
            for key, value in values["options"].items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            values["options"] = merged
        if values.get("enabled") is True and not user.enabled:
            values["failed_auth_count"] = 0
        row = await self.save(m.User, user_id, values,
                              f"Conflict occurred attempting to update user - Duplicate entry found "
                              f"with name {values.get('name')} at domain ID {user.domain_id}.")
        if password is not None:
            await self.set_password(row, password, self_service=False)
        if values.get("enabled") is False:
            await self.revoke(user_id=user_id)
        elif "enabled" in values:
            await self.changed("user")
        return row

    async def set_password(self, user: m.User, password: str, self_service: bool) -> None:
        """Store a new password, checking history rules; revokes the user's tokens."""
        sc = self.cfg.identity.security_compliance
        if sc.password_regex:
            if not re.match(sc.password_regex, password):
                raise BadRequest("The password does not match the requirements: "
                                 f"{sc.password_regex_description or sc.password_regex}.")
        if sc.unique_last_password_count > 1 and self_service:  # an admin reset is not checked
            async with self.db.session() as s:
                recent = (await s.execute(select(m.Password.hash).where(m.Password.user_id == user.id)
                                          .order_by(m.Password.id.desc())
                                          .limit(sc.unique_last_password_count))).scalars().all()
            for old in recent:
                if await check_async(password, old):
                    raise BadRequest(f"The new password cannot be identical to a previous password. "
                                     f"The total number which includes the new password must be unique "
                                     f"is {sc.unique_last_password_count}.")
        hashed = await hash_async(password, self.cfg.identity.password_hash_rounds)
        now = utcnow()
        expires = self._password_expiry(user.options or {}, now)
        if not self_service and sc.change_password_upon_first_use and not (
                user.options or {}).get("ignore_change_password_upon_first_use"):
            expires = now
        async with self.db.session() as s:
            s.add(m.Password(user_id=user.id, hash=hashed, created_at=now, expires_at=expires,
                             self_service=self_service))
            await s.execute(
                m.User.__table__.update().where(m.User.id == user.id).values(failed_auth_count=0))
        await self.revoke(user_id=user.id)

    async def delete_user(self, user_id: str) -> None:
        async with self.db.session() as s:
            user = await self.get(m.User, user_id, s)
            await s.execute(delete(m.Assignment).where(m.Assignment.actor_id == user_id))
            await s.execute(delete(m.Membership).where(m.Membership.user_id == user_id))
            await s.execute(delete(m.Password).where(m.Password.user_id == user_id))
            await s.execute(delete(m.ApplicationCredential).where(
                m.ApplicationCredential.user_id == user_id))
            await s.execute(delete(m.AccessRule).where(m.AccessRule.user_id == user_id))
            await s.execute(delete(m.Credential).where(m.Credential.user_id == user_id))
            await s.delete(user)
        await self.changed("user")

    # -- groups -----------------------------------------------------------------------------
    async def create_group(self, values: dict[str, Any]) -> m.Group:
        await self.get(m.Domain, values["domain_id"])
        row = m.Group(id=new_id(), **values)
        return await self.insert(row, f"Conflict occurred attempting to store group - Duplicate entry "
                                      f"found with name {row.name}.")

    async def delete_group(self, group_id: str) -> None:
        async with self.db.session() as s:
            group = await self.get(m.Group, group_id, s)
            await s.execute(delete(m.Assignment).where(m.Assignment.actor_id == group_id))
            await s.execute(delete(m.Membership).where(m.Membership.group_id == group_id))
            await s.delete(group)
        await self.changed("group")

    async def add_member(self, group_id: str, user_id: str) -> None:
        async with self.db.session() as s:
            await self.get(m.Group, group_id, s)
            await self.get(m.User, user_id, s)
            if await s.get(m.Membership, (user_id, group_id)) is None:
                s.add(m.Membership(user_id=user_id, group_id=group_id))
        await self.changed("membership")

    async def remove_member(self, group_id: str, user_id: str) -> None:
        async with self.db.session() as s:
            await self.get(m.Group, group_id, s)
            await self.get(m.User, user_id, s)
            row = await s.get(m.Membership, (user_id, group_id))
            if row is None:
                raise NotFound(f"Could not find user, {user_id}, in group, {group_id}.")
            await s.delete(row)
        await self.changed("membership")

    async def is_member(self, group_id: str, user_id: str) -> bool:
        async with self.db.session() as s:
            await self.get(m.Group, group_id, s)
            await self.get(m.User, user_id, s)
            return await s.get(m.Membership, (user_id, group_id)) is not None

    async def group_users(self, group_id: str) -> Sequence[m.User]:
        await self.get(m.Group, group_id)
        async with self.db.session() as s:
            return (await s.execute(select(m.User).join(m.Membership, m.Membership.user_id == m.User.id)
                                    .where(m.Membership.group_id == group_id))).scalars().all()

    async def user_groups(self, user_id: str) -> Sequence[m.Group]:
        await self.get(m.User, user_id)
        async with self.db.session() as s:
            return (await s.execute(select(m.Group).join(m.Membership, m.Membership.group_id == m.Group.id)
                                    .where(m.Membership.user_id == user_id))).scalars().all()

    # -- roles ------------------------------------------------------------------------------
    async def create_role(self, values: dict[str, Any]) -> m.Role:
        if values.get("domain_id"):
            await self.get(m.Domain, values["domain_id"])
        else:
            values["domain_id"] = NULL_DOMAIN
        row = m.Role(id=values.pop("id", None) or new_id(), **values)
        row = await self.insert(row, f"Conflict occurred attempting to store role - Duplicate entry "
                                     f"found with name {row.name}.")
        self.invalidate()
        return row

    async def update_role(self, role_id: str, values: dict[str, Any]) -> m.Role:
        role = await self.get(m.Role, role_id)
        if "domain_id" in values and (values["domain_id"] or NULL_DOMAIN) != role.domain_id:
            raise BadRequest("Cannot change the domain_id of a role.")
        values.pop("domain_id", None)
        if (role.options or {}).get("immutable") and set(values) - {"options"}:
            raise Forbidden(f"Role {role_id} is immutable.")
        row = await self.save(m.Role, role_id, values,
                              f"Conflict occurred attempting to update role - Duplicate entry found "
                              f"with name {values.get('name')}.")
        await self.changed("role")
        return row

    async def delete_role(self, role_id: str) -> None:
        role = await self.get(m.Role, role_id)
        if (role.options or {}).get("immutable"):
            raise Forbidden(f"Role {role_id} is immutable.")
        async with self.db.session() as s:
            await s.execute(delete(m.Assignment).where(m.Assignment.role_id == role_id))
            await s.execute(delete(m.ImpliedRole).where(or_(m.ImpliedRole.prior_role_id == role_id,
                                                            m.ImpliedRole.implied_role_id == role_id)))
            await s.execute(delete(m.Role).where(m.Role.id == role_id))
        await self.changed("role")

    async def add_implied_role(self, prior_id: str, implied_id: str) -> tuple[m.Role, m.Role]:
        prior = await self.get(m.Role, prior_id)
        implied = await self.get(m.Role, implied_id)
        if prior.domain_id == NULL_DOMAIN and implied.domain_id != NULL_DOMAIN:
            raise Forbidden("A global role cannot imply a domain-specific role.")
        if prior_id in await self.expand_implied({implied_id}):
            raise Forbidden(f"Implying {implied.name} from {prior.name} would create a cycle.")
        async with self.db.session() as s:
            if await s.get(m.ImpliedRole, (prior_id, implied_id)) is None:
                s.add(m.ImpliedRole(prior_role_id=prior_id, implied_role_id=implied_id))
        await self.changed("implied role")
        return prior, implied

    async def get_implied_role(self, prior_id: str, implied_id: str) -> tuple[m.Role, m.Role]:
        prior = await self.get(m.Role, prior_id)
        implied = await self.get(m.Role, implied_id)
        async with self.db.session() as s:
            if await s.get(m.ImpliedRole, (prior_id, implied_id)) is None:
                raise NotFound(f"{prior_id} does not imply {implied_id}.")
        return prior, implied

    async def remove_implied_role(self, prior_id: str, implied_id: str) -> None:
        await self.get_implied_role(prior_id, implied_id)
        await self.delete_where(m.ImpliedRole, m.ImpliedRole.prior_role_id == prior_id,
                                m.ImpliedRole.implied_role_id == implied_id)
        await self.changed("implied role")

    async def implied_roles(self, prior_id: str | None = None) -> dict[str, list[str]]:
        if prior_id:
            await self.get(m.Role, prior_id)
        _, implies = await self.role_graph()
        if prior_id:
            return {prior_id: implies.get(prior_id, [])}
        return dict(implies)
