"""Unified limits as other services read them: a project's limit, else the registered default."""

from __future__ import annotations

from sqlalchemy import select

from cumulo.identity import models as m
from cumulo.identity.service import IdentityService


async def effective_limit(svc: IdentityService, project_id: str, service_type: str, resource_name: str,
                          region_id: str | None = None) -> int | None:
    """The limit on ``resource_name`` for the project, or None when nothing is registered."""
    region = region_id or svc.cfg.api.region
    async with svc.db.session() as s:
        service_ids = (await s.execute(select(m.Service.id).where(m.Service.type == service_type))).scalars().all()
        if not service_ids:
            return None
        for region_value in (region, ""):
            limit = (await s.execute(select(m.Limit.resource_limit).where(
                m.Limit.project_id == project_id, m.Limit.service_id.in_(service_ids),
                m.Limit.region_id == region_value, m.Limit.resource_name == resource_name))).scalar()
            if limit is not None:
                return int(limit)
        for region_value in (region, ""):
            default = (await s.execute(select(m.RegisteredLimit.default_limit).where(
                m.RegisteredLimit.service_id.in_(service_ids), m.RegisteredLimit.region_id == region_value,
                m.RegisteredLimit.resource_name == resource_name))).scalar()
            if default is not None:
                return int(default)
    return None
