"""Server history: os-instance-actions (with events), os-migrations and a server's own migrations,
and os-simple-tenant-usage."""

from __future__ import annotations

import datetime as dt
import hashlib
import zlib
from typing import Any

from sqlalchemy import or_, select, update
from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.common import at_least
from cumulo.compute.api.servers import check_int, parse_time
from cumulo.compute.models import InstanceAction, InstanceActionEvent, Migration, Server
from cumulo.compute.servers import ServerManager
from cumulo.core.db import utcnow
from cumulo.core.http.app import JSON, Router, auth_of
from cumulo.core.http.authz import allowed, authorize
from cumulo.core.http.faults import BadRequest, NotFound


def stamp(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None


def internal_flavor_id(flavor_id: str | None) -> int | None:
    """Nova's migrations show a flavor by its internal integer key, which no other API exposes; a
    flavor here has only its (string) flavorid, so this is a stable 31-bit number derived from it."""
    return None if flavor_id is None else zlib.crc32(flavor_id.encode()) & 0x7FFFFFFF


def router(manager: ServerManager) -> Router:
    r = Router()

    async def server_for(request: Request, include_deleted: bool, rule: str) -> Server:
        auth = auth_of(request)
        server_id = request.path_params["server_id"]
        row = await manager.get(server_id) if len(server_id) <= 36 else None
        if row is None or (row.deleted_at is not None and not include_deleted) or (
                row.project_id != auth.project_id and not auth.is_admin()):
            raise NotFound(f"Instance {server_id} could not be found.")
        authorize(request, rule, {"project_id": row.project_id, "user_id": row.user_id})
        return row

    def action_view(request: Request, a: InstanceAction) -> dict[str, Any]:
        out = {"action": a.action, "instance_uuid": a.server_id, "request_id": a.request_id, "user_id": a.user_id,
               "project_id": a.project_id, "start_time": stamp(a.start_time), "message": a.message}
        if at_least(request, 58):
            out["updated_at"] = stamp(a.updated_at)
        return out

    # -- instance actions ---------------------------------------------------------------------
    @r.get("/v2.1/servers/{server_id}/os-instance-actions")
    async def list_actions(request: Request) -> Response:
        # deleted servers keep their history (microversion 2.21)
        server = await server_for(request, at_least(request, 21), "os_compute_api:os-instance-actions:list")
        q = request.query_params
        stmt = select(InstanceAction).where(InstanceAction.server_id == server.id).order_by(
            InstanceAction.start_time.desc(), InstanceAction.id.desc())
        if at_least(request, 58):
            if "changes-since" in q:
                stmt = stmt.where(InstanceAction.updated_at >= parse_time("changes-since", q["changes-since"]))
            if "changes-before" in q and at_least(request, 66):
                stmt = stmt.where(InstanceAction.updated_at <= parse_time("changes-before", q["changes-before"]))
        async with manager.db.session() as s:
            rows = list((await s.execute(stmt)).scalars())
        if at_least(request, 58) and "marker" in q:
            ids = [a.request_id for a in rows]
            if q["marker"] not in ids:
                raise BadRequest(f"Marker {q['marker']} could not be found.")
            rows = rows[ids.index(q["marker"]) + 1:]
        if at_least(request, 58) and "limit" in q:
            rows = rows[:check_int(q["limit"], "limit", 0)]
        return JSON({"instanceActions": [action_view(request, a) for a in rows]})

    @r.get("/v2.1/servers/{server_id}/os-instance-actions/{request_id}")
    async def show_action(request: Request) -> Response:
        server = await server_for(request, at_least(request, 21), "os_compute_api:os-instance-actions:show")
        admin = allowed(request, "os_compute_api:os-instance-actions:events",
                        {"project_id": server.project_id, "user_id": server.user_id})
        async with manager.db.session() as s:
            action = (await s.execute(select(InstanceAction).where(
                InstanceAction.server_id == server.id,
                InstanceAction.request_id == request.path_params["request_id"]))).scalar()
            if action is None:
                raise NotFound(f"Action for request_id {request.path_params['request_id']} on instance "
                               f"{server.id} not found")
            events = list((await s.execute(select(InstanceActionEvent).where(
                InstanceActionEvent.action_id == action.id).order_by(InstanceActionEvent.id))).scalars())
        out = action_view(request, action)
        if admin or at_least(request, 51):
            out["events"] = []
            for e in events:
                ev: dict[str, Any] = {"event": e.event, "start_time": stamp(e.start_time),
                                      "finish_time": stamp(e.finish_time), "result": e.result}
                if admin:
                    ev["traceback"] = e.details
                    if at_least(request, 62):
                        ev["host"] = e.host
                if at_least(request, 62):
                    ev["hostId"] = hashlib.sha224((server.project_id + (e.host or "")).encode()).hexdigest() \
                        if e.host else ""
                if at_least(request, 84):
                    ev["details"] = e.details if e.result == "Error" else None
                out["events"].append(ev)
        return JSON({"instanceAction": out})

    # -- the password the guest stored through the metadata service ----------------------------
    @r.get("/v2.1/servers/{server_id}/os-server-password")
    async def show_password(request: Request) -> Response:
        server = await server_for(request, False, "os_compute_api:os-server-password:show")
        return JSON({"password": (server.system_meta or {}).get("password") or ""})

    @r.delete("/v2.1/servers/{server_id}/os-server-password")
    async def clear_password(request: Request) -> Response:
        # forgets the stored (encrypted) password, so the guest may post a new one; the guest's own
        # password does not change
        server = await server_for(request, False, "os_compute_api:os-server-password:clear")
        kept = {k: v for k, v in (server.system_meta or {}).items() if k != "password"}
        async with manager.db.session() as s:
            await s.execute(update(Server).where(Server.id == server.id).values(system_meta=kept))
        return Response(status_code=204)

    # -- migrations -----------------------------------------------------------------------------
    def migration_view(request: Request, m: Migration) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": m.id, "instance_uuid": m.server_id, "status": m.status, "source_compute": m.source_compute,
            "source_node": m.source_node, "dest_compute": m.dest_compute, "dest_node": m.dest_node,
            "dest_host": "127.0.0.1" if m.dest_compute else None,
            "old_instance_type_id": internal_flavor_id(m.old_flavor_id),
            "new_instance_type_id": internal_flavor_id(m.new_flavor_id), "created_at": stamp(m.created_at),
            "updated_at": stamp(m.updated_at)}
        if at_least(request, 23):
            out["migration_type"] = m.migration_type
            out["links"] = [] if m.migration_type != "live-migration" else [
                {"rel": "self", "href": f"{request.url.scheme}://{request.url.netloc}/v2.1/servers/"
                                        f"{m.server_id}/migrations/{m.id}"}]
        if at_least(request, 59):
            out["uuid"] = m.uuid
        if at_least(request, 80):
            out["user_id"], out["project_id"] = m.user_id, m.project_id
        return out

    @r.get("/v2.1/os-migrations")
    async def list_migrations(request: Request) -> Response:
        auth = authorize(request, "os_compute_api:os-migrations:index")
        q = request.query_params
        stmt = select(Migration).order_by(Migration.created_at.desc(), Migration.id.desc())
        if not allowed(request, "os_compute_api:os-migrations:index:all_projects"):
            stmt = stmt.where(Migration.project_id == (auth.project_id or ""))
        for key, column in (("status", Migration.status), ("instance_uuid", Migration.server_id),
                            ("migration_type", Migration.migration_type),
                            ("source_compute", Migration.source_compute)):
            if key in q:
                stmt = stmt.where(column == q[key])
        if "host" in q:
            stmt = stmt.where(or_(Migration.source_compute == q["host"], Migration.dest_compute == q["host"]))
        if at_least(request, 80):
            if "user_id" in q:
                stmt = stmt.where(Migration.user_id == q["user_id"])
            if "project_id" in q:
                stmt = stmt.where(Migration.project_id == q["project_id"])
        if at_least(request, 59) and "changes-since" in q:
            stmt = stmt.where(Migration.updated_at >= parse_time("changes-since", q["changes-since"]))
        async with manager.db.session() as s:
            rows = list((await s.execute(stmt)).scalars())
        if at_least(request, 59):
            if "marker" in q:
                ids = [m.uuid for m in rows]
                if q["marker"] not in ids:
                    raise BadRequest(f"Marker {q['marker']} could not be found.")
                rows = rows[ids.index(q["marker"]) + 1:]
            if "limit" in q:
                rows = rows[:check_int(q["limit"], "limit", 0)]
        return JSON({"migrations": [migration_view(request, m) for m in rows]})

    @r.get("/v2.1/servers/{server_id}/migrations")
    async def server_migrations(request: Request) -> Response:
        server = await server_for(request, False, "os_compute_api:servers:migrations:index")
        async with manager.db.session() as s:
            rows = list((await s.execute(select(Migration).where(
                Migration.server_id == server.id, Migration.migration_type == "live-migration",
                Migration.status.in_(("queued", "preparing", "running", "accepted"))))).scalars())
        return JSON({"migrations": [migration_view(request, m) for m in rows]})

    # -- simple tenant usage --------------------------------------------------------------------
    def period(request: Request) -> tuple[dt.datetime, dt.datetime]:
        q = request.query_params
        now = utcnow()
        end = parse_time("end", q["end"]) if q.get("end") else now
        start = parse_time("start", q["start"]) if q.get("start") else end - dt.timedelta(days=1)
        if start > end:
            raise BadRequest("Invalid start time: the start must be before the end.")
        return start, end

    async def usage_of(request: Request, project_id: str | None) -> list[dict[str, Any]]:
        start, end = period(request)
        stmt = select(Server).where(Server.created_at <= end, or_(Server.terminated_at.is_(None),
                                                                  Server.terminated_at >= start))
        if project_id is not None:
            stmt = stmt.where(Server.project_id == project_id)
        async with manager.db.session() as s:
            rows = list((await s.execute(stmt.order_by(Server.created_at))).scalars())
        detailed = request.query_params.get("detailed", "0") in ("1", "true", "True") or project_id is not None
        now = utcnow()
        by_project: dict[str, dict[str, Any]] = {}
        for x in rows:
            began = max(x.launched_at or x.created_at, start)
            ended = min(x.terminated_at or end, end)
            hours = max(0.0, (ended - began).total_seconds() / 3600)
            f = x.flavor
            u = by_project.setdefault(x.project_id, {
                "tenant_id": x.project_id, "start": stamp(start), "stop": stamp(end), "total_hours": 0.0,
                "total_vcpus_usage": 0.0, "total_memory_mb_usage": 0.0, "total_local_gb_usage": 0.0,
                "server_usages": []})
            u["total_hours"] += hours
            u["total_vcpus_usage"] += hours * f["vcpus"]
            u["total_memory_mb_usage"] += hours * f["ram"]
            u["total_local_gb_usage"] += hours * (f["disk"] + f.get("ephemeral", 0))
            if detailed:
                state = "terminated" if x.deleted_at else x.vm_state
                u["server_usages"].append({
                    "instance_id": x.id, "name": x.name, "hours": hours, "memory_mb": f["ram"],
                    "local_gb": f["disk"] + f.get("ephemeral", 0), "vcpus": f["vcpus"], "tenant_id": x.project_id,
                    "flavor": f["name"], "started_at": stamp(x.launched_at or x.created_at),
                    "ended_at": stamp(x.terminated_at), "state": state,
                    "uptime": int(((x.terminated_at or now) - (x.launched_at or x.created_at)).total_seconds())})
        out = list(by_project.values())
        if not detailed:
            for u in out:
                u.pop("server_usages")
        return out

    @r.get("/v2.1/os-simple-tenant-usage")
    async def all_usage(request: Request) -> Response:
        authorize(request, "os_compute_api:os-simple-tenant-usage:list")
        return JSON({"tenant_usages": await usage_of(request, None)})

    @r.get("/v2.1/os-simple-tenant-usage/")
    async def no_usage(request: Request) -> Response:
        # Nova routes no empty project id (the slash is not dropped): a 404, not the list
        raise NotFound("The resource could not be found: no project id was given.")

    @r.get("/v2.1/os-simple-tenant-usage/{project_id}")
    async def one_usage(request: Request) -> Response:
        project_id = request.path_params["project_id"]
        authorize(request, "os_compute_api:os-simple-tenant-usage:show", {"project_id": project_id})
        usages = await usage_of(request, project_id)
        return JSON({"tenant_usage": usages[0] if usages else {}})

    return r
