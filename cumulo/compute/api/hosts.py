"""/v2.1/os-services, os-hypervisors, os-hosts (until 2.42) and os-instance_usage_audit_log: the
compute agents and their nodes.

A service is ``up`` while its agent has reported within ``[compute] service_down_time`` seconds
and nobody forced it down; an operator disables a host (with a reason) to keep new servers off it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
import zlib
from typing import Any

from sqlalchemy import delete, select
from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.common import at_least
from cumulo.compute.models import Aggregate, AggregateHost, ComputeNode, Server, ServiceRecord
from cumulo.compute.service import ComputeService
from cumulo.core.db import utcnow
from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, NotFound, NotImplementedFault


def router(svc: ComputeService) -> Router:
    r = Router()
    down_after = dt.timedelta(seconds=svc.cfg.compute.service_down_time)

    def is_up(s: ServiceRecord) -> bool:
        return not s.forced_down and s.last_seen_at is not None and utcnow() - s.last_seen_at <= down_after

    def service_view(request: Request, s: ServiceRecord) -> dict[str, Any]:
        out: dict[str, Any] = {"id": s.id if at_least(request, 53) else legacy_id(s.id),
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
    async def nodes(pattern: str | None = None) -> list[tuple[ComputeNode, ServiceRecord | None]]:
        stmt = select(ComputeNode).order_by(ComputeNode.hypervisor_hostname)
        if pattern is not None:  # Nova matches the pattern anywhere in the name (SQL LIKE %pattern%)
            escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(ComputeNode.hypervisor_hostname.like(f"%{escaped}%", escape="\\"))
        async with svc.db.session() as s:
            rows = list((await s.execute(stmt)).scalars())
            by_host = {x.host: x for x in (await s.execute(select(ServiceRecord).where(
                ServiceRecord.binary == "nova-compute"))).scalars()}
        return [(n, by_host.get(n.host)) for n in rows]

    async def servers_on(hosts: list[str]) -> dict[str, list[Server]]:
        out: dict[str, list[Server]] = {h: [] for h in hosts}
        if not hosts:
            return out
        async with svc.db.session() as s:
            for row in (await s.execute(select(Server).where(Server.host.in_(hosts), Server.deleted_at.is_(None))
                                        .order_by(Server.created_at))).scalars():
                out[row.host or ""].append(row)
        return out

    def node_view(request: Request, n: ComputeNode, service: ServiceRecord | None, detail: bool,
                  servers: list[Server] | None = None, listed: bool = False,
                  with_servers: bool = False) -> dict[str, Any]:
        """One hypervisor; ``servers`` (those on its host) count in the detail and are listed when
        ``listed``; with_servers (2.53) lists them even when there are none (from 2.75)."""
        out: dict[str, Any] = {"id": n.id if at_least(request, 53) else legacy_id(n.id),
                               "hypervisor_hostname": n.hypervisor_hostname,
                               "state": "up" if service and is_up(service) else "down",
                               "status": "disabled" if service and service.disabled else "enabled"}
        if detail:
            out.update(host_ip=n.host_ip, hypervisor_type=n.hypervisor_type, hypervisor_version=n.hypervisor_version,
                       service={"host": n.host, "id": (service.id if at_least(request, 53) else legacy_id(service.id))
                                if service else None,
                                "disabled_reason": service.disabled_reason if service else None})
        if detail and not at_least(request, 88):
            mine = servers or []
            vcpus = sum(x.flavor["vcpus"] for x in mine)
            ram = sum(x.flavor["ram"] for x in mine)
            disk = sum(x.flavor["disk"] + x.flavor.get("ephemeral", 0) for x in mine)
            # cpu_info is a JSON text until 2.28, an object from then on
            out.update(vcpus=n.vcpus, memory_mb=n.memory_mb, local_gb=n.local_gb, vcpus_used=vcpus,
                       memory_mb_used=ram, local_gb_used=disk, free_ram_mb=n.memory_mb - ram,
                       free_disk_gb=n.local_gb - disk, current_workload=0, running_vms=len(mine),
                       disk_available_least=n.local_gb - disk,
                       cpu_info=(n.cpu_info or {}) if at_least(request, 28) else json.dumps(n.cpu_info or {}))
        if detail and at_least(request, 88):
            out["uptime"] = uptime_text()
        if listed and servers:
            out["servers"] = [{"name": x.name, "uuid": x.id} for x in servers]
        elif with_servers and at_least(request, 75):
            out["servers"] = []
        return out

    def query_flags(request: Request) -> tuple[str | None, bool]:
        """hypervisor_hostname_pattern and with_servers (2.53)."""
        q = request.query_params
        if not at_least(request, 53):
            return None, False
        raw = q.get("with_servers", "false").lower()
        if raw not in ("true", "false", "1", "0", "yes", "no", "on", "off", "t", "f", "y", "n"):
            raise BadRequest(f"Invalid with_servers value {q['with_servers']!r}: true or false.")
        return q.get("hypervisor_hostname_pattern"), raw in ("true", "1", "yes", "on", "t", "y")

    async def hypervisor_list(request: Request, detail: bool) -> Response:
        pattern, with_servers = query_flags(request)
        q = request.query_params
        if pattern is not None and ("limit" in q or "marker" in q):
            raise BadRequest("Paging over hypervisors with the hypervisor_hostname_pattern query parameter is not "
                             "supported.")
        rows = await nodes(pattern)
        if pattern is not None and not rows:
            raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
        body: dict[str, Any] = {}
        if at_least(request, 33) and pattern is None:
            if "marker" in q:
                ids = [str(node_view(request, n, s, False)["id"]) for n, s in rows]
                if q["marker"] not in ids:
                    raise BadRequest(f"marker [{q['marker']}] not found")
                rows = rows[ids.index(q["marker"]) + 1:]
            if "limit" in q:
                if not q["limit"].isdigit() or len(q["limit"]) > 9:
                    raise BadRequest("limit must be a non-negative integer.")
                limit = min(int(q["limit"]) or 1000, 1000)
                if len(rows) > limit:
                    rows = rows[:limit]
                    marker = node_view(request, rows[-1][0], rows[-1][1], False)["id"]
                    path = "os-hypervisors/detail" if detail else "os-hypervisors"
                    body["hypervisors_links"] = [{"rel": "next", "href": f"{base(request)}/{path}?limit={limit}"
                                                                         f"&marker={marker}"}]
        on = await servers_on([n.host for n, _ in rows]) if detail or with_servers else {}
        body["hypervisors"] = [node_view(request, n, s, detail, on.get(n.host), with_servers, with_servers)
                               for n, s in rows]
        return JSON(body)

    @r.get("/v2.1/os-hypervisors")
    async def list_hypervisors(request: Request) -> Response:
        authorize(request, "os_compute_api:os-hypervisors:list")
        return await hypervisor_list(request, False)

    @r.get("/v2.1/os-hypervisors/detail")
    async def list_hypervisors_detail(request: Request) -> Response:
        authorize(request, "os_compute_api:os-hypervisors:list-detail")
        return await hypervisor_list(request, True)

    @r.get("/v2.1/os-hypervisors/statistics")
    async def statistics(request: Request) -> Response:
        authorize(request, "os_compute_api:os-hypervisors:statistics")
        if at_least(request, 88):
            raise NotFound("os-hypervisors/statistics was removed in microversion 2.88: use placement.")
        views = [node_view(request, n, s, True, x) for n, s in await nodes()
                 for x in [(await servers_on([n.host]))[n.host]]]
        total: dict[str, Any] = {"count": len(views)}
        for key in ("vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used",
                    "free_ram_mb", "free_disk_gb", "current_workload", "running_vms", "disk_available_least"):
            total[key] = sum(v[key] for v in views)
        return JSON({"hypervisor_statistics": total})

    async def find_node(request: Request) -> tuple[ComputeNode, ServiceRecord | None]:
        wanted = request.path_params["node_id"]
        if at_least(request, 53):
            try:
                uuid.UUID(wanted)
            except ValueError:
                raise BadRequest(f"Invalid uuid {wanted}") from None
        for n, s in await nodes():
            if wanted == (n.id if at_least(request, 53) else str(legacy_id(n.id))):
                return n, s
        raise NotFound(f"Hypervisor with ID '{wanted}' could not be found.")

    @r.get("/v2.1/os-hypervisors/{node_id}")
    async def show_hypervisor(request: Request) -> Response:
        authorize(request, "os_compute_api:os-hypervisors:show")
        _, with_servers = query_flags(request)
        n, s = await find_node(request)
        on = (await servers_on([n.host]))[n.host]
        view = node_view(request, n, s, True, on, with_servers, with_servers)
        return JSON({"hypervisor": view})

    @r.get("/v2.1/os-hypervisors/{node_id}/uptime")
    async def hypervisor_uptime(request: Request) -> Response:
        authorize(request, "os_compute_api:os-hypervisors:uptime")
        if at_least(request, 88):
            raise NotFound("os-hypervisors/{id}/uptime was removed in microversion 2.88: the detail shows uptime.")
        n, s = await find_node(request)
        return JSON({"hypervisor": {**node_view(request, n, s, False), "uptime": uptime_text()}})

    async def by_pattern(request: Request, with_servers: bool) -> Response:
        if at_least(request, 53):
            raise NotFound("Use GET /os-hypervisors?hypervisor_hostname_pattern=... from microversion 2.53.")
        pattern = request.path_params["pattern"]
        rows = await nodes(pattern)
        if not rows:
            raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
        on = await servers_on([n.host for n, _ in rows]) if with_servers else {}
        return JSON({"hypervisors": [node_view(request, n, s, False, on.get(n.host), with_servers)
                                     for n, s in rows]})

    @r.get("/v2.1/os-hypervisors/{pattern}/search")
    async def search_hypervisors(request: Request) -> Response:
        authorize(request, "os_compute_api:os-hypervisors:search")
        return await by_pattern(request, False)

    @r.get("/v2.1/os-hypervisors/{pattern}/servers")
    async def hypervisor_servers(request: Request) -> Response:
        authorize(request, "os_compute_api:os-hypervisors:servers")
        return await by_pattern(request, True)

    # -- os-hosts (until 2.42): the hosts of the services, with their resources ------------
    def hosts_gone(request: Request) -> None:
        if at_least(request, 43):
            raise NotFound("os-hosts was removed in microversion 2.43: use os-hypervisors and os-services.")

    async def host_zones() -> dict[str, str]:
        async with svc.db.session() as s:
            pairs = (await s.execute(select(AggregateHost.host, Aggregate.meta).join(
                Aggregate, Aggregate.id == AggregateHost.aggregate_id))).all()
        return {host: meta["availability_zone"] for host, meta in pairs if (meta or {}).get("availability_zone")}

    @r.get("/v2.1/os-hosts")
    async def list_hosts(request: Request) -> Response:
        hosts_gone(request)
        authorize(request, "os_compute_api:os-hosts:list")
        zones = await host_zones()
        default = svc.cfg.compute.default_availability_zone
        wanted = request.query_params.get("zone")
        out = []
        for s in await services():
            if s.disabled:  # Nova lists the enabled services' hosts
                continue
            zone = zones.get(s.host, default) if s.binary == "nova-compute" else "internal"
            if wanted and zone != wanted:
                continue
            out.append({"host_name": s.host, "service": s.binary.removeprefix("nova-"), "zone": zone})
        return JSON({"hosts": out})

    async def compute_host(name: str) -> tuple[ComputeNode, ServiceRecord]:
        async with svc.db.session() as s:
            node = (await s.execute(select(ComputeNode).where(ComputeNode.host == name)
                                    .order_by(ComputeNode.hypervisor_hostname))).scalars().first()
            service = (await s.execute(select(ServiceRecord).where(
                ServiceRecord.host == name, ServiceRecord.binary == "nova-compute"))).scalars().first()
        if node is None or service is None:
            raise NotFound(f"Compute host {name} could not be found.")
        return node, service

    @r.get("/v2.1/os-hosts/{host_name}")
    async def show_host(request: Request) -> Response:
        hosts_gone(request)
        authorize(request, "os_compute_api:os-hosts:show")
        name = request.path_params["host_name"]
        node, service = await compute_host(name)
        mine = (await servers_on([name]))[name]
        used = node_view(request, node, service, True, mine)

        def resource(project: str, cpu: int, ram: int, disk: int) -> dict[str, Any]:
            return {"resource": {"host": name, "project": project, "cpu": cpu, "memory_mb": ram, "disk_gb": disk}}

        projects: dict[str, list[int]] = {}
        for x in mine:
            totals = projects.setdefault(x.project_id, [0, 0, 0])
            totals[0] += x.flavor["vcpus"]
            totals[1] += x.flavor["ram"]
            totals[2] += x.flavor["disk"] + x.flavor.get("ephemeral", 0)
        out = [resource("(total)", node.vcpus, node.memory_mb, node.local_gb),
               resource("(used_now)", used["vcpus_used"], used["memory_mb_used"], used["local_gb_used"]),
               resource("(used_max)", used["vcpus_used"], used["memory_mb_used"], used["local_gb_used"])]
        out += [resource(project, *totals) for project, totals in projects.items()]
        return JSON({"host": out})

    @r.put("/v2.1/os-hosts/{host_name}")
    async def update_host(request: Request) -> Response:
        hosts_gone(request)
        authorize(request, "os_compute_api:os-hosts:update")
        body = await json_body(request)
        words = ("enable", "disable")
        if not isinstance(body, dict) or not body or set(body) - {"status", "maintenance_mode"} or any(
                not isinstance(v, str) or v.strip().lower() not in words for v in body.values()):
            raise BadRequest("Give status and/or maintenance_mode, each 'enable' or 'disable'.")
        name = request.path_params["host_name"]
        _, service = await compute_host(name)
        out: dict[str, Any] = {"host": name}
        if "maintenance_mode" in body:  # Nova's libvirt driver has no host maintenance either
            raise NotImplementedFault("Host maintenance mode is not implemented: disable the host's compute service.")
        enabled = body["status"].strip().lower() == "enable"
        await update(request, service, {"disabled": not enabled, "disabled_reason": None})
        out["status"] = "enabled" if enabled else "disabled"
        return JSON(out)

    async def power_action(request: Request, rule: str) -> Response:
        hosts_gone(request)
        authorize(request, rule)
        await compute_host(request.path_params["host_name"])
        # as Nova's libvirt driver: a compute host's power is not the API's to switch
        raise NotImplementedFault("Host power actions are not implemented: the host's power is the operator's.")

    @r.get("/v2.1/os-hosts/{host_name}/reboot")
    async def reboot_host(request: Request) -> Response:
        return await power_action(request, "os_compute_api:os-hosts:reboot")

    @r.get("/v2.1/os-hosts/{host_name}/shutdown")
    async def shutdown_host(request: Request) -> Response:
        return await power_action(request, "os_compute_api:os-hosts:shutdown")

    @r.get("/v2.1/os-hosts/{host_name}/startup")
    async def startup_host(request: Request) -> Response:
        return await power_action(request, "os_compute_api:os-hosts:start")

    # -- os-instance_usage_audit_log: no audit task runs here, so every host is "not run" ----
    async def audit_log(before: dt.datetime) -> dict[str, Any]:
        end = before.replace(day=1, hour=0, minute=0, second=0, microsecond=0)  # the last whole month
        begin = (end - dt.timedelta(days=1)).replace(day=1)
        hosts = sorted({s.host for s in await services(binary="nova-compute")})
        return {"period_beginning": str(begin), "period_ending": str(end), "num_hosts": len(hosts),
                "num_hosts_done": 0, "num_hosts_running": 0, "num_hosts_not_run": len(hosts),
                "hosts_not_run": hosts, "total_instances": 0, "total_errors": 0,
                "overall_status": f"{'ALL' if not hosts else f'0 of {len(hosts)}'} hosts done. 0 errors.",
                "log": {}}

    @r.get("/v2.1/os-instance_usage_audit_log")
    async def audit_logs(request: Request) -> Response:
        authorize(request, "os_compute_api:os-instance-usage-audit-log:list")
        return JSON({"instance_usage_audit_logs": await audit_log(utcnow())})

    @r.get("/v2.1/os-instance_usage_audit_log/{before}")
    async def audit_log_before(request: Request) -> Response:
        authorize(request, "os_compute_api:os-instance-usage-audit-log:show")
        raw = request.path_params["before"]
        try:
            before = dt.datetime.strptime(raw, "%Y-%m-%d %H:%M:%S.%f" if "." in raw else "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise BadRequest(f"Invalid timestamp for date {raw}") from None
        return JSON({"instance_usage_audit_log": await audit_log(before)})

    return r


def legacy_id(ident: str) -> int:
    """The integer id shown before 2.53: the same in every process (Python's hash is not)."""
    return zlib.crc32(ident.encode()) & 0x7FFFFFFF


def base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}/v2.1"


def uptime_text() -> str:
    """What ``uptime`` prints, as Nova's libvirt driver shows it: the nodes run on this machine."""
    try:
        seconds = float(open("/proc/uptime").read().split()[0])
        load = open("/proc/loadavg").read().split()[:3]
    except (OSError, ValueError, IndexError):
        return ""
    days, rest = divmod(int(seconds), 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    now = time.strftime("%H:%M:%S")
    return f" {now} up {days} days, {hours:2d}:{minutes:02d},  load average: {', '.join(load)}"
