"""Role assignments: grants, the roles a user effectively holds, and the assignment report.

A user's roles on a project are the union of: roles granted to the user or any of its groups on
the project; roles granted *inherited* on the project's domain or any ancestor project; and every
role those imply, transitively.  Domain and system scopes work the same way without inheritance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from cumulo.core.http.faults import NotFound
from cumulo.identity import models as m
from cumulo.identity.service.base import NULL_DOMAIN, ServiceBase

SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Grant:
    """One row of /v3/role_assignments (also used for effective, computed rows)."""

    actor_type: str  # "user" or "group"
    actor_id: str
    scope_type: str  # "project", "domain" or "system"
    scope_id: str
    role_id: str
    inherited: bool = False
    via_group: str | None = None  # set on effective rows that came from a group
    prior_role_id: str | None = None  # set on effective rows that came from an implied role


def assignment_type(actor_type: str, scope_type: str) -> str:
    return actor_type.capitalize() + scope_type.capitalize()


class AssignmentMixin(ServiceBase):
    async def grant(self, actor_type: str, actor_id: str, scope_type: str, scope_id: str, role_id: str,
                    inherited: bool = False) -> None:
        await self._check_grant_parts(actor_type, actor_id, scope_type, scope_id, role_id)
        key = (assignment_type(actor_type, scope_type), actor_id, scope_id, role_id, inherited)
        async with self.db.session() as s:
            if await s.get(m.Assignment, key) is None:
                s.add(m.Assignment(type=key[0], actor_id=actor_id, target_id=scope_id, role_id=role_id,
                                   inherited=inherited))
        await self.changed("grant")

    async def check_grant(self, actor_type: str, actor_id: str, scope_type: str, scope_id: str,
                          role_id: str, inherited: bool = False) -> None:
        await self._check_grant_parts(actor_type, actor_id, scope_type, scope_id, role_id)
        key = (assignment_type(actor_type, scope_type), actor_id, scope_id, role_id, inherited)
        async with self.db.session() as s:
            if await s.get(m.Assignment, key) is None:
                raise NotFound(f"Could not find role assignment with role: {role_id}, {actor_type}: "
                               f"{actor_id}, {scope_type}: {scope_id}.")

    async def revoke_grant(self, actor_type: str, actor_id: str, scope_type: str, scope_id: str,
                           role_id: str, inherited: bool = False) -> None:
        await self.check_grant(actor_type, actor_id, scope_type, scope_id, role_id, inherited)
        await self.delete_where(
            m.Assignment, m.Assignment.type == assignment_type(actor_type, scope_type),
            m.Assignment.actor_id == actor_id, m.Assignment.target_id == scope_id,
            m.Assignment.role_id == role_id, m.Assignment.inherited == inherited)
        await self.changed("revoke grant")

    async def _check_grant_parts(self, actor_type: str, actor_id: str, scope_type: str, scope_id: str,
                                 role_id: str) -> None:
        async with self.db.session() as s:
            await self.get(m.User if actor_type == "user" else m.Group, actor_id, s)
            if scope_type == "project":
                await self.get(m.Project, scope_id, s)
            elif scope_type == "domain":
                await self.get(m.Domain, scope_id, s)
            await self.get(m.Role, role_id, s)

    async def grants_for_user(self, user_id: str, scope_type: str, scope_id: str) -> set[str]:
        """Role ids given directly (user, groups, inheritance), before implied roles."""
        return await self.memo(("grants", user_id, scope_type, scope_id),  # type: ignore[no-any-return]
                               lambda: self._load_grants(user_id, scope_type, scope_id))

    async def _load_grants(self, user_id: str, scope_type: str, scope_id: str) -> set[str]:
        async with self.db.session() as s:
            group_ids = (await s.execute(select(m.Membership.group_id)
                                         .where(m.Membership.user_id == user_id))).scalars().all()
            actors = [user_id, *group_ids]
            if scope_type == "project":
                project = await s.get(m.Project, scope_id)
                if project is None:
                    return set()
                ancestors: list[str] = []
                parent_id = project.parent_id
                while parent_id:
                    ancestors.append(parent_id)
                    parent = await s.get(m.Project, parent_id)
                    parent_id = parent.parent_id if parent else None
                targets = [scope_id, project.domain_id, *ancestors]
            else:
                targets = [scope_id]
            rows = (await s.execute(select(m.Assignment).where(
                m.Assignment.actor_id.in_(actors), m.Assignment.target_id.in_(targets)))).scalars().all()
        out: set[str] = set()
        for a in rows:
            kind = a.type[4:] if a.type.startswith("User") else a.type[5:]
            if scope_type == "project":
                if a.target_id == scope_id and kind == "Project" and not a.inherited:
                    out.add(a.role_id)
                elif a.inherited and a.target_id != scope_id:
                    out.add(a.role_id)
            elif kind.lower() == scope_type and not a.inherited:
                out.add(a.role_id)
        return out

    async def effective_roles(self, user_id: str, scope_type: str, scope_id: str) -> list[m.Role]:
        direct = await self.grants_for_user(user_id, scope_type, scope_id)
        roles = await self.roles_by_id()
        # domain-specific roles never reach a token: only the global roles they imply do
        return [roles[r] for r in await self.expand_implied(direct)
                if r in roles and roles[r].domain_id == NULL_DOMAIN]

    async def user_projects(self, user_id: str) -> list[m.Project]:
        """Projects on which the user holds at least one role (directly, by group or inherited)."""
        async with self.db.session() as s:
            group_ids = (await s.execute(select(m.Membership.group_id)
                                         .where(m.Membership.user_id == user_id))).scalars().all()
            rows = (await s.execute(select(m.Assignment).where(
                m.Assignment.actor_id.in_([user_id, *group_ids])))).scalars().all()
            ids = {a.target_id for a in rows if a.type.endswith("Project") and not a.inherited}
            inherited_domains = {a.target_id for a in rows if a.type.endswith("Domain") and a.inherited}
            inherited_projects = {a.target_id for a in rows if a.type.endswith("Project") and a.inherited}
            if inherited_domains:
                ids.update((await s.execute(select(m.Project.id).where(
                    m.Project.domain_id.in_(inherited_domains)))).scalars())
            frontier = list(inherited_projects)
            while frontier:
                children = (await s.execute(select(m.Project.id).where(
                    m.Project.parent_id.in_(frontier)))).scalars().all()
                ids.update(children)
                frontier = list(children)
            if not ids:
                return []
            return list((await s.execute(select(m.Project).where(m.Project.id.in_(ids))
                                         .order_by(m.Project.name))).scalars())

    async def user_domains(self, user_id: str) -> list[m.Domain]:
        async with self.db.session() as s:
            group_ids = (await s.execute(select(m.Membership.group_id)
                                         .where(m.Membership.user_id == user_id))).scalars().all()
            ids = set((await s.execute(select(m.Assignment.target_id).where(
                m.Assignment.actor_id.in_([user_id, *group_ids]),
                m.Assignment.type.in_(["UserDomain", "GroupDomain"]),
                m.Assignment.inherited.is_(False)))).scalars())
            if not ids:
                return []
            return list((await s.execute(select(m.Domain).where(m.Domain.id.in_(ids))
                                         .order_by(m.Domain.name))).scalars())

    async def has_system_roles(self, user_id: str) -> bool:
        return bool(await self.grants_for_user(user_id, "system", SYSTEM))

    async def list_grants(self, filters: dict[str, Any]) -> list[Grant]:
        """/v3/role_assignments.  filters: user, group, role, project, domain, system, inherited,
        effective, subtree (include_subtree with a project)."""
        stmt = select(m.Assignment)
        if filters.get("role"):
            stmt = stmt.where(m.Assignment.role_id == filters["role"])
        scope_targets: list[str] | None = None
        if filters.get("project"):
            scope_targets = [filters["project"]]
            if filters.get("subtree"):
                scope_targets += [p.id for p in await self.project_subtree(filters["project"])]
        elif filters.get("domain"):
            scope_targets = [filters["domain"]]
        elif filters.get("system"):
            scope_targets = [SYSTEM]
        effective = bool(filters.get("effective"))
        if filters.get("group") and not effective:
            stmt = stmt.where(m.Assignment.actor_id == filters["group"])
        if filters.get("user") and not effective:
            stmt = stmt.where(m.Assignment.actor_id == filters["user"])
        if scope_targets is not None and not effective:
            stmt = stmt.where(m.Assignment.target_id.in_(scope_targets))
        if filters.get("inherited") is not None and not effective:
            stmt = stmt.where(m.Assignment.inherited.is_(bool(filters["inherited"])))
        async with self.db.session() as s:
            rows = (await s.execute(stmt)).scalars().all()
        grants = [Grant("user" if a.type.startswith("User") else "group", a.actor_id,
                        a.type[4:].lower() if a.type.startswith("User") else a.type[5:].lower(),
                        a.target_id, a.role_id, a.inherited) for a in rows]
        if effective:
            grants = await self._effective(grants)
            grants = [g for g in grants if
                      (not filters.get("user") or g.actor_id == filters["user"]) and
                      (not filters.get("group") or g.actor_id == filters["group"]) and
                      (scope_targets is None or g.scope_id in scope_targets)]
        if filters.get("role") and effective:
            grants = [g for g in grants if g.role_id == filters["role"]]
        return grants

    async def _effective(self, grants: list[Grant]) -> list[Grant]:
        """Expand groups into their members, inheritance into projects, and implied roles."""
        out: list[Grant] = []
        roles = await self.roles_by_id()
        group_ids = {g.actor_id for g in grants if g.actor_type == "group"}
        members: dict[str, list[str]] = {}
        async with self.db.session() as s:
            if group_ids:
                for mem in (await s.execute(select(m.Membership).where(
                        m.Membership.group_id.in_(group_ids)))).scalars():
                    members.setdefault(mem.group_id, []).append(mem.user_id)
            inherited_domains = {g.scope_id for g in grants if g.inherited and g.scope_type == "domain"}
            domain_projects: dict[str, list[str]] = {}
            if inherited_domains:
                for pid, did in (await s.execute(select(m.Project.id, m.Project.domain_id).where(
                        m.Project.domain_id.in_(inherited_domains)))).all():
                    domain_projects.setdefault(did, []).append(pid)
        subtrees: dict[str, list[str]] = {}
        for g in grants:
            if g.inherited and g.scope_type == "project" and g.scope_id not in subtrees:
                subtrees[g.scope_id] = [p.id for p in await self.project_subtree(g.scope_id)]
        for g in grants:
            actors = ([(g.actor_id, None)] if g.actor_type == "user"
                      else [(u, g.actor_id) for u in members.get(g.actor_id, [])])
            if g.inherited:
                scopes = (domain_projects.get(g.scope_id, []) if g.scope_type == "domain"
                          else subtrees.get(g.scope_id, []))
                scope_type = "project"
            else:
                scopes, scope_type = [g.scope_id], g.scope_type
            expanded = await self.expand_implied({g.role_id})
            for user_id, via in actors:
                for scope_id in scopes:
                    if g.role_id in roles and roles[g.role_id].domain_id == NULL_DOMAIN:
                        out.append(Grant("user", user_id, scope_type, scope_id, g.role_id, False, via))
                    for implied in expanded[1:]:
                        if implied in roles and roles[implied].domain_id == NULL_DOMAIN:
                            out.append(Grant("user", user_id, scope_type, scope_id, implied, False, via,
                                             g.role_id))
        seen: set[tuple[str, str, str, str]] = set()
        unique = []
        for g in out:
            key = (g.actor_id, g.scope_type, g.scope_id, g.role_id)
            if key not in seen:
                seen.add(key)
                unique.append(g)
        return unique
