"""/v2.1/os-services and /v2.1/os-hypervisors: the compute agents and their nodes.

A service is ``up`` while its agent has reported within ``[compute] service_down_time`` seconds
and nobody forced it down; an operator disables a host (with a reason) to keep new servers off it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, select
from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.common import at_least
from cumulo.compute.models import ComputeNode, ServiceRecord
from cumulo.compute.service import ComputeService
from cumulo.core.db import utcnow
from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, NotFound


def router(svc: ComputeService) -> Router:
    r = Router()
    down_after = dt.timedelta(seconds=svc.cfg.compute.service_down_time)

    def is_up(s: ServiceRecord) -> bool:
        return not s.forced_down and s.last_seen_at is not None and utcnow() - s.last_seen_at <= down_after

    def service_view(request: Request, s: ServiceRecord) -> dict[str, Any]:
        out: dict[str, Any] = {"id": s.id if at_least(request, 53) else abs(hash(s.id)) % 10**6,
                               "binary": s.binary, "host": s.host, "zone": "nova",
                               "status": "disabled" if s.disabled else "enabled",
                               "state": "up" if is_up(s) else "down", "disabled_reason": s.disabled_reason,
                               "updated_at": s.last_seen_at.strftime("%Y-%m-%dT%H:%M:%S.%f") if s.last_seen_at
                               else None}
        if at_least(request, 11):
            out["forced_down"] = s.forced_down
        return out

    async def services(host: str | None = None, binary: str | None = None) -> list[ServiceRecord]:
        stmt = select(ServiceRecord).order_by(ServiceRecord.host)
        if host:
            stmt = stmt.where(ServiceRecord.host == host)
        if binary:
            stmt = stmt.where(ServiceRecord.binary == binary)
        async with svc.db.session() as s:
            return list((await s.execute(stmt)).scalars())

    @r.get("/v2.1/os-services")
    async def list_services(request: Request) -> Response:
        authorize(request, "os_compute_api:os-services:list")
        q = request.query_params
        return JSON({"services": [service_view(request, s) for s in await services(q.get("host"), q.get("binary"))]})

    async def update(request: Request, row: ServiceRecord, values: dict[str, Any]) -> Response:
        async with svc.db.session() as s:
            fresh = await s.get(ServiceRecord, row.id)
            assert fresh is not None
            for key, value in values.items():
                setattr(fresh, key, value)
        return JSON({"service": service_view(request, fresh)})

    @r.put("/v2.1/os-services/{service_id}")
    async def update_service(request: Request) -> Response:
        authorize(request, "os_compute_api:os-services:update")
        body = await json_body(request)
        if not isinstance(body, dict):
            raise BadRequest("The request body must be an object.")
        target = request.path_params["service_id"]
        if not at_least(request, 53):  # the old form: PUT /os-services/{disable|enable|force-down|...}
            rows = await services(body.get("host"), body.get("binary"))
            if not rows:
                raise NotFound(f"Service {body.get('binary')} on host {body.get('host')} could not be found.")
            values = {"enable": {"disabled": False, "disabled_reason": None}, "disable": {"disabled": True},
                      "disable-log-reason": {"disabled": True, "disabled_reason": body.get("disabled_reason")},
                      "force-down": {"forced_down": bool(body.get("forced_down"))}}.get(target)
            if values is None:
                raise NotFound(f"Unknown action {target}.")
            await update(request, rows[0], values)
            out = {"host": rows[0].host, "binary": rows[0].binary,
                   "status": "disabled" if values.get("disabled", rows[0].disabled) else "enabled"}
            if "disabled_reason" in values and values["disabled_reason"]:
                out["disabled_reason"] = values["disabled_reason"]
            if "forced_down" in values:
                out["forced_down"] = values["forced_down"]
            return JSON({"service": out})
        async with svc.db.session() as s:
            row = await s.get(ServiceRecord, target)
        if row is None:
            raise NotFound(f"Service {target} could not be found.")
        values: dict[str, Any] = {}
        if "status" in body:
            if body["status"] not in ("enabled", "disabled"):
                raise BadRequest("status must be enabled or disabled.")
            values["disabled"] = body["status"] == "disabled"
            values["disabled_reason"] = body.get("disabled_reason") if values["disabled"] else None
        elif "disabled_reason" in body:
            raise BadRequest("disabled_reason needs status=disabled.")
        if "forced_down" in body:
            if not isinstance(body["forced_down"], bool):
                raise BadRequest("forced_down must be true or false.")
            values["forced_down"] = body["forced_down"]
        if not values:
            raise BadRequest("Give status and/or forced_down.")
        return await update(request, row, values)

    @r.delete("/v2.1/os-services/{service_id}")
    async def delete_service(request: Request) -> Response:
        authorize(request, "os_compute_api:os-services:delete")
        async with svc.db.session() as s:
            row = await s.get(ServiceRecord, request.path_params["service_id"])
            if row is None:
                raise NotFound(f"Service {request.path_params['service_id']} could not be found.")
            await s.execute(delete(ComputeNode).where(ComputeNode.host == row.host))
            await s.delete(row)
        return Response(status_code=204)

    # -- hypervisors ------------------------------------------------------------------------
    async def nodes() -> list[tuple[ComputeNode, ServiceRecord | None]]:
        async with svc.db.session() as s:
            rows = list((await s.execute(select(ComputeNode).order_by(ComputeNode.hypervisor_hostname))).scalars())
            by_host = {x.host: x for x in (await s.execute(select(ServiceRecord).where(
                ServiceRecord.binary == "nova-compute"))).scalars()}
        return [(n, by_host.get(n.host)) for n in rows]

    def node_view(request: Request, n: ComputeNode, service: ServiceRecord | None, detail: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"id": n.id if at_least(request, 53) else abs(hash(n.id)) % 10**6,
                               "hypervisor_hostname": n.hypervisor_hostname,
                               "state": "up" if service and is_up(service) else "down",
                               "status": "disabled" if service and service.disabled else "enabled"}
        if not detail:
            return out
        out.update(host_ip=n.host_ip, hypervisor_type=n.hypervisor_type, hypervisor_version=n.hypervisor_version,
                   service={"host": n.host, "id": service.id if service else None,
                            "disabled_reason": service.disabled_reason if service else None})
        if not at_least(request, 88):
            out.update(vcpus=n.vcpus, memory_mb=n.memory_mb, local_gb=n.local_gb, vcpus_used=0, memory_mb_used=0,
                       local_gb_used=0, free_ram_mb=n.memory_mb, free_disk_gb=n.local_gb, current_workload=0,
                       running_vms=0, disk_available_least=n.local_gb, cpu_info=n.cpu_info)
        else:
            out["uptime"] = None
        return out

    @r.get("/v2.1/os-hypervisors")
    async def list_hypervisors(request: Request) -> Response:
        authorize(request, "os_compute_api:os-hypervisors:list")
        return JSON({"hypervisors": [node_view(request, n, s, False) for n, s in await nodes()]})

    @r.get("/v2.1/os-hypervisors/detail")
    async def list_hypervisors_detail(request: Request) -> Response:
        authorize(request, "os_compute_api:os-hypervisors:list-detail")
        return JSON({"hypervisors": [node_view(request, n, s, True) for n, s in await nodes()]})

    @r.get("/v2.1/os-hypervisors/statistics")
    async def statistics(request: Request) -> Response:
        authorize(request, "os_compute_api:os-hypervisors:statistics")
        if at_least(request, 88):
            raise NotFound("os-hypervisors/statistics was removed in microversion 2.88: use placement.")
        rows = [n for n, _ in await nodes()]
        total = {"count": len(rows), "vcpus": sum(n.vcpus for n in rows), "memory_mb": sum(n.memory_mb for n in rows),
                 "local_gb": sum(n.local_gb for n in rows), "vcpus_used": 0, "memory_mb_used": 0,
                 "local_gb_used": 0, "current_workload": 0, "running_vms": 0}
        total.update(free_ram_mb=total["memory_mb"], free_disk_gb=total["local_gb"],
                     disk_available_least=total["local_gb"])
        return JSON({"hypervisor_statistics": total})

    @r.get("/v2.1/os-hypervisors/{node_id}")
    async def show_hypervisor(request: Request) -> Response:
        authorize(request, "os_compute_api:os-hypervisors:show")
        for n, s in await nodes():
            if n.id == request.path_params["node_id"] or str(node_view(request, n, s, False)["id"]) == \
                    request.path_params["node_id"]:
                return JSON({"hypervisor": node_view(request, n, s, True)})
        raise NotFound(f"Hypervisor {request.path_params['node_id']} could not be found.")

    return r
