"""The cloud's side of the Block Storage API: ``/os-services``, ``/os-hosts`` and
``/scheduler-stats/get_pools`` (an admin's), and the user messages (``/messages``, 3.3: why an
asynchronous request failed, in words; below 3.3 the resource does not exist, a 404 as Cinder
answers).

Fields follow tempest's response schemas, which refuse extras: a service's ``cluster`` from 3.7,
a cinder-volume's ``backend_state`` from 3.49."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, NotFound
from cumulo.core.http.paging import parse_bool
from cumulo.volume.api.common import at_least, base_url, caller, route, stamp, version_of
from cumulo.volume.service import POOL_CAPABILITIES, MessageInfo, ServiceInfo, VolumeFilters, VolumeService

BACKEND = "file"  # the backend and pool name of every file agent


def service_view(request: Request, s: ServiceInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"binary": s.binary, "host": s.host, "zone": s.zone,
                           "status": "disabled" if s.disabled else "enabled", "state": "up" if s.up else "down",
                           "updated_at": stamp(s.updated_at), "disabled_reason": s.disabled_reason}
    if s.binary == "cinder-volume":
        out.update({"frozen": s.frozen, "replication_status": "disabled", "active_backend_id": None})
        if at_least(request, 49):
            out["backend_state"] = "up" if s.up else "down"
    if at_least(request, 7):
        out["cluster"] = None
    return out


def message_view(request: Request, m: MessageInfo) -> dict[str, Any]:
    base = base_url(request)
    return {"id": m.id, "event_id": m.event_id, "user_message": m.user_message, "message_level": m.message_level,
            "resource_type": m.resource_type, "resource_uuid": m.resource_uuid, "request_id": m.request_id,
            "created_at": stamp(m.created_at), "guaranteed_until": stamp(m.expires_at),
            "links": [{"href": f"{base}/v3/{m.project_id}/messages/{m.id}", "rel": "self"},
                      {"href": f"{base}/{m.project_id}/messages/{m.id}", "rel": "bookmark"}]}


def _since_3_3(request: Request) -> None:
    if not at_least(request, 3):
        raise NotFound(f"API version {version_of(request)} is not supported on this method (it needs 3.3).")


def router(svc: VolumeService) -> Router:
    r = Router()

    @route(r, "GET", "/os-services")
    async def list_services(request: Request) -> Response:
        """Filtered by ``binary`` and by ``host`` as Cinder's is: ``node`` also names its
        ``node@file`` (the backend on that host)."""
        authorize(request, "volume_extension:services:index")
        params = request.query_params
        host = params.get("host")
        rows = [s for s in await svc.services()
                if host in (None, s.host, s.host.split("@", 1)[0]) and params.get("binary") in (None, s.binary)]
        return JSON({"services": [service_view(request, s) for s in rows]})

    @route(r, "PUT", "/os-services/{action}")
    async def update_service(request: Request) -> Response:
        """``enable``, ``disable`` and ``disable-log-reason`` a cinder-volume (``{"host", "binary"}``,
        the reason in ``disabled_reason``); 200 with what it is now.  ``freeze`` and ``thaw``
        (``{"host"}``): 200 with no body, as Cinder answers."""
        authorize(request, "volume_extension:services:update")
        action = request.path_params["action"]
        if action not in ("enable", "disable", "disable-log-reason", "freeze", "thaw"):
            raise NotFound(f"Unknown action {action!r}: enable, disable, disable-log-reason, freeze or thaw "
                           "(failover_host, get-log and set-log are not supported here).")
        body = await json_body(request)
        if action in ("freeze", "thaw"):
            authorize(request, f"volume:{action}_host")
            host = body.get("host") if isinstance(body, dict) else None
            if not isinstance(host, str) or not host:
                raise BadRequest("Invalid input received: 'host' must be given as a string.")
            await svc.set_service_frozen(host, action == "freeze")
            return Response(status_code=200)
        if not isinstance(body, dict):
            raise BadRequest("Invalid input received: the body must be {\"host\": ..., \"binary\": ...}.")
        host, binary = body.get("host"), body.get("binary", "cinder-volume")
        if not isinstance(host, str) or not host or not isinstance(binary, str):
            raise BadRequest("Invalid input received: 'host' (and 'binary') must be given as strings.")
        reason = body.get("disabled_reason")
        if action == "disable-log-reason" and (not isinstance(reason, str) or not reason.strip()):
            raise BadRequest("Invalid input received: disable-log-reason needs a disabled_reason.")
        service = await svc.set_service_disabled(host, binary, action != "enable",
                                                 reason.strip() if action == "disable-log-reason" else None)
        out: dict[str, Any] = {"disabled": service.disabled, "status": "disabled" if service.disabled else "enabled",
                               "host": service.host, "service": service.binary, "binary": service.binary}
        if action != "disable":
            out["disabled_reason"] = service.disabled_reason
        return JSON(out)

    # -- os-hosts: the hosts of the services, and what a storage host holds ------------------------
    @route(r, "GET", "/os-hosts")
    async def list_hosts(request: Request) -> Response:
        authorize(request, "volume_extension:hosts")
        return JSON({"hosts": [{"zone": x.zone, "service-status": "available" if x.up else "unavailable",
                                "service-state": "disabled" if x.disabled else "enabled", "host_name": x.host,
                                "last-update": stamp(x.updated_at), "service": x.binary}
                               for x in await svc.services()]})

    @route(r, "GET", "/os-hosts/{host_name}")
    async def show_host(request: Request) -> Response:
        """A storage host's volumes and snapshots: the total, then each project's."""
        authorize(request, "volume_extension:hosts")
        name = request.path_params["host_name"]
        if not any(x.host == name and x.binary == "cinder-volume" for x in await svc.services()):
            raise NotFound(f"Host {name} could not be found.")
        agent = name.split("@", 1)[0]
        admin = caller(request)
        projects: dict[str, list[int]] = {}
        for v in await svc.volumes(admin, VolumeFilters(all_projects=True)):
            if v.host == agent:
                count = projects.setdefault(v.project_id, [0, 0, 0, 0])
                count[0] += 1
                count[1] += v.size
        for snap in await svc.snapshots(admin, VolumeFilters(all_projects=True)):
            if snap.project_id in projects:
                projects[snap.project_id][2] += 1
                projects[snap.project_id][3] += snap.size
        total = [sum(c[i] for c in projects.values()) for i in range(4)]

        def resource(project: str, c: list[int]) -> dict[str, Any]:
            return {"resource": {"project": project, "host": name, "volume_count": str(c[0]),
                                 "total_volume_gb": str(c[1]), "snapshot_count": str(c[2]),
                                 "total_snapshot_gb": str(c[3])}}

        return JSON({"host": [resource("(total)", total), *(resource(p, c) for p, c in sorted(projects.items()))]})

    @route(r, "GET", "/scheduler-stats/get_pools")
    async def get_pools(request: Request) -> Response:
        """Each agent's pool, ``host@file#file``; ``detail=true`` adds its capabilities."""
        authorize(request, "scheduler_extension:scheduler_stats:get_pools")
        detail = parse_bool("detail", request.query_params.get("detail", "false"))
        pools = []
        for p in await svc.pools():
            item: dict[str, Any] = {"name": f"{p.host}@{BACKEND}#{BACKEND}"}
            if detail:
                item["capabilities"] = {
                    **POOL_CAPABILITIES, "pool_name": BACKEND, "total_capacity_gb": p.capacity_gb,
                    "free_capacity_gb": p.free_gb, "allocated_capacity_gb": p.allocated_gb,
                    "provisioned_capacity_gb": p.allocated_gb, "reserved_percentage": 0,
                    "max_over_subscription_ratio": "1.0", "backend_state": "up" if p.up else "down",
                    "timestamp": stamp(p.reported_at)}
            pools.append(item)
        return JSON({"pools": pools})

    @route(r, "GET", "/capabilities/{host_name}")
    async def capabilities(request: Request) -> Response:
        """What a backend offers (Cinder's get_capabilities): ``host``, ``host@file`` or the pool's
        ``host@file#file``."""
        authorize(request, "volume_extension:capabilities")
        name = request.path_params["host_name"]
        host = name.split("@", 1)[0]
        backend = name.split("@", 1)[1].split("#", 1)[0] if "@" in name else BACKEND
        pool = next((p for p in await svc.pools() if p.host == host), None)
        if pool is None or backend != BACKEND:
            raise NotFound(f"Service {name} could not be found.")
        caps = POOL_CAPABILITIES
        return JSON({
            "namespace": f"OS::Storage::Capabilities::{host}@{BACKEND}", "volume_backend_name": BACKEND,
            "pool_name": BACKEND, "vendor_name": caps["vendor_name"], "driver_version": caps["driver_version"],
            "storage_protocol": caps["storage_protocol"], "visibility": None, "display_name": None,
            "description": "qcow2 files in the volume agent's directory", "replication_targets": [],
            "properties": {
                "thin_provisioning": {"type": "boolean", "title": "Thin provisioning",
                                      "description": "Volumes take disk space only as they are written."},
                "multiattach": {"type": "boolean", "title": "Multi-attach",
                                "description": "A multiattach volume can be attached to several servers."}}})

    @route(r, "GET", "/messages")
    async def list_messages(request: Request) -> Response:
        """Newest first (``sort=created_at:asc`` the other way), ``limit`` and ``marker`` (3.5)."""
        _since_3_3(request)
        authorize(request, "message:get_all")
        params = request.query_params
        limit = params.get("limit")
        if limit is not None and not limit.isdigit():
            raise BadRequest(f"Invalid limit {limit!r}: expected a positive integer or zero.")
        key, _, direction = params.get("sort", "created_at").partition(":")
        direction = (direction or params.get("sort_dir") or "desc").lower()
        if key not in ("created_at", "") or direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort {params.get('sort')!r}: created_at:asc or created_at:desc.")
        ascending = direction == "asc"
        rows = await svc.messages(caller(request), int(limit) if limit is not None else None, params.get("marker"),
                                  ascending)
        return JSON({"messages": [message_view(request, m) for m in rows]})

    @route(r, "GET", "/messages/{message_id}")
    async def show_message(request: Request) -> Response:
        _since_3_3(request)
        msg = await svc.message(request.path_params["message_id"], caller(request))
        authorize(request, "message:get", {"project_id": msg.project_id})
        return JSON({"message": message_view(request, msg)})

    @route(r, "DELETE", "/messages/{message_id}")
    async def delete_message(request: Request) -> Response:
        _since_3_3(request)
        who = caller(request)
        msg = await svc.message(request.path_params["message_id"], who)
        authorize(request, "message:delete", {"project_id": msg.project_id})
        await svc.delete_message(msg.id, who)
        return Response(status_code=204)

    return r
