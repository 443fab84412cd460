"""First-run set-up, safe to repeat: the Default domain, the default roles, the admin and demo
projects and users, and the catalog entries of the services that run."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from cumulo.identity import models as m
from cumulo.identity.service import IdentityService
from cumulo.identity.service.base import NULL_DOMAIN
from cumulo.identity.service.passwords import check_async, hash_async

LOG = logging.getLogger(__name__)
# admin implies manager implies member implies reader, as in Keystone's defaults
DEFAULT_ROLES = ("admin", "manager", "member", "reader", "service")
IMPLIES = (("admin", "manager"), ("manager", "member"), ("member", "reader"))


@dataclass
class CatalogEntry:
    type: str
    name: str
    url: str  # the same URL serves the public, internal and admin interfaces


async def bootstrap(svc: IdentityService, admin_password: str, demo_password: str,
                    catalog: list[CatalogEntry], region: str) -> None:
    cfg = svc.cfg
    domain_id = cfg.identity.default_domain_id
    async with svc.db.session() as s:
        if await s.get(m.Domain, domain_id) is None:
            s.add(m.Domain(id=domain_id, name="Default", description="The default domain",
                           enabled=True, extra={}, options={}))
        roles = {r.name: r for r in (await s.execute(select(m.Role).where(
            m.Role.domain_id == NULL_DOMAIN))).scalars()}
        for name in DEFAULT_ROLES:
            if name not in roles:
                roles[name] = m.Role(name=name, domain_id=NULL_DOMAIN, extra={}, options={})
                s.add(roles[name])
        await s.flush()
        for prior, implied in IMPLIES:
            key = (roles[prior].id, roles[implied].id)
            if await s.get(m.ImpliedRole, key) is None:
                s.add(m.ImpliedRole(prior_role_id=key[0], implied_role_id=key[1]))
        if await s.get(m.Region, region) is None:
            s.add(m.Region(id=region, description="", extra={}))
    for project, user, password, role in (
            (cfg.bootstrap.admin_project, cfg.bootstrap.admin_user, admin_password, "admin"),
            (cfg.bootstrap.demo_project, cfg.bootstrap.demo_user, demo_password, "member")):
        await _ensure_user(svc, domain_id, project, user, password, roles[role].id)
    async with svc.db.session() as s:
        admin = (await s.execute(select(m.User).where(m.User.domain_id == domain_id,
                                                      m.User.name == cfg.bootstrap.admin_user))).scalar_one()
        key = ("UserSystem", admin.id, "system", roles["admin"].id, False)
        if await s.get(m.Assignment, key) is None:
            s.add(m.Assignment(type="UserSystem", actor_id=admin.id, target_id="system",
                               role_id=roles["admin"].id, inherited=False))
        for entry in catalog:
            service = (await s.execute(select(m.Service).where(m.Service.type == entry.type))).scalar()
            if service is None:
                service = m.Service(type=entry.type, enabled=True, extra={"name": entry.name})
                s.add(service)
                await s.flush()
            existing = {e.interface: e for e in (await s.execute(select(m.Endpoint).where(
                m.Endpoint.service_id == service.id, m.Endpoint.region_id == region))).scalars()}
            for interface in ("public", "internal", "admin"):
                if interface in existing:
                    existing[interface].url = entry.url
                else:
                    s.add(m.Endpoint(service_id=service.id, interface=interface, url=entry.url,
                                     region_id=region, enabled=True, extra={}))
    await svc.changed("bootstrap")


async def _ensure_user(svc: IdentityService, domain_id: str, project_name: str, user_name: str,
                       password: str, role_id: str) -> None:
    async with svc.db.session() as s:
        project = (await s.execute(select(m.Project).where(m.Project.domain_id == domain_id,
                                                           m.Project.name == project_name))).scalar()
        if project is None:
            project = m.Project(name=project_name, domain_id=domain_id, enabled=True, extra={},
                                options={}, tags=[], description=f"Bootstrap project {project_name}")
            s.add(project)
        user = (await s.execute(select(m.User).where(m.User.domain_id == domain_id,
                                                     m.User.name == user_name))).scalar()
        if user is None:
            user = m.User(name=user_name, domain_id=domain_id, enabled=True, extra={}, options={})
            s.add(user)
        await s.flush()
        user.default_project_id = user.default_project_id or project.id
        current = (await s.execute(select(m.Password).where(m.Password.user_id == user.id)
                                   .order_by(m.Password.id.desc()).limit(1))).scalar()
        if current is None or not await check_async(password, current.hash):
            s.add(m.Password(user_id=user.id, hash=await hash_async(password,
                                                                     svc.cfg.identity.password_hash_rounds)))
        key = ("UserProject", user.id, project.id, role_id, False)
        if await s.get(m.Assignment, key) is None:
            s.add(m.Assignment(type="UserProject", actor_id=user.id, target_id=project.id,
                               role_id=role_id, inherited=False))
