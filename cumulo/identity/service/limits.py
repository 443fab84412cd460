"""Unified limits as other services use them: a project's limit, else the registered default,
and the writes a service makes to its own defaults and project overrides (plain values only)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from cumulo.core.db import new_id
from cumulo.core.http.faults import NotFound
from cumulo.identity import models as m
from cumulo.identity.service.base import ServiceBase


class LimitsMixin(ServiceBase):
    async def limit(self, project_id: str, service_type: str, resource_name: str,
                    region_id: str | None = None) -> int | None:
        """The limit on ``resource_name`` for the project, or None when nothing is registered.

        A project limit wins over the registered default; in each, the region's row wins over
        the region-less one ("").
        """
        region = region_id or self.cfg.api.region
        async with self.db.session() as s:
            service_ids = (await s.execute(select(m.Service.id).where(m.Service.type == service_type))
                           ).scalars().all()
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

    @staticmethod
    async def _catalog_service(s: AsyncSession, service_type: str) -> m.Service | None:
        return (await s.execute(select(m.Service).where(m.Service.type == service_type))).scalar()

    async def registered_limits(self, service_type: str) -> dict[str, int]:
        """resource name -> default limit registered for the service (empty when it is not in the catalog)."""
        async with self.db.session() as s:
            service = await self._catalog_service(s, service_type)
            if service is None:
                return {}
            rows = (await s.execute(select(m.RegisteredLimit).where(
                m.RegisteredLimit.service_id == service.id))).scalars()
            return {r.resource_name: r.default_limit for r in rows}

    async def register_default_limits(self, service_type: str, defaults: dict[str, tuple[int, str]]) -> None:
        """Register ``{resource: (default, description)}`` in this region for those not registered yet.

        Nothing happens when the service is not in the catalog.
        """
        async with self.db.session() as s:
            service = await self._catalog_service(s, service_type)
            if service is None:
                return
            have = set((await s.execute(select(m.RegisteredLimit.resource_name).where(
                m.RegisteredLimit.service_id == service.id))).scalars())
            for resource, (value, description) in defaults.items():
                if resource not in have:
                    s.add(m.RegisteredLimit(id=new_id(), service_id=service.id, region_id=self.cfg.api.region,
                                            resource_name=resource, default_limit=value, description=description))

    async def set_limits(self, service_type: str, project_id: str | None, values: dict[str, int]) -> None:
        """Write the project's limits (``project_id``) or the registered defaults (None), by resource.

        An existing row (of any region) is updated, a missing one is created in this region.
        """
        async with self.db.session() as s:
            service = await self._catalog_service(s, service_type)
            if service is None:
                raise NotFound(f"The {service_type} service is not in the catalog.")
            region = self.cfg.api.region
            for resource, value in values.items():
                if project_id is None:
                    default = (await s.execute(select(m.RegisteredLimit).where(
                        m.RegisteredLimit.service_id == service.id,
                        m.RegisteredLimit.resource_name == resource))).scalar()
                    if default is None:
                        s.add(m.RegisteredLimit(id=new_id(), service_id=service.id, region_id=region,
                                                resource_name=resource, default_limit=value))
                    else:
                        default.default_limit = value
                    continue
                limit = (await s.execute(select(m.Limit).where(
                    m.Limit.project_id == project_id, m.Limit.service_id == service.id,
                    m.Limit.resource_name == resource))).scalar()
                if limit is None:
                    s.add(m.Limit(id=new_id(), project_id=project_id, domain_id="", service_id=service.id,
                                  region_id=region, resource_name=resource, resource_limit=value))
                else:
                    limit.resource_limit = value

    async def delete_project_limits(self, service_type: str, project_id: str) -> None:
        """Drop every limit the project has for the service, so the registered defaults apply again."""
        async with self.db.session() as s:
            service = await self._catalog_service(s, service_type)
            if service is not None:
                await s.execute(delete(m.Limit).where(m.Limit.project_id == project_id,
                                                      m.Limit.service_id == service.id))
