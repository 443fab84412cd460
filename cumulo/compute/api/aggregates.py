"""/v2.1/os-aggregates: host aggregates, their metadata and hosts; an aggregate with metadata
``availability_zone`` is an availability zone (os-availability-zone lists them).  Membership is
mirrored into placement as provider aggregates, which scheduling filters on."""

from __future__ import annotations

import datetime as dt
import socket
import uuid
from typing import Any

from sqlalchemy import delete, select
from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.common import at_least
from cumulo.compute.models import Aggregate, AggregateHost, ComputeNode, ServiceRecord
from cumulo.compute.service import ComputeService
from cumulo.core.db import IntegrityError, is_duplicate, utcnow
from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, Conflict, NotFound
from cumulo.placement.service import PlacementService

DEFAULT_ZONE = "nova"
INTERNAL_ZONE = "internal"  # where Nova lists the services that are not compute hosts


def when(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None

ACTION_RULES = {"add_host": "os_compute_api:os-aggregates:add_host",
                "remove_host": "os_compute_api:os-aggregates:remove_host",
                "set_metadata": "os_compute_api:os-aggregates:set_metadata"}


def router(svc: ComputeService) -> Router:
    r = Router()
    placement = PlacementService(svc.db)

    async def hosts_of(agg_id: int) -> list[str]:
        async with svc.db.session() as s:
            return sorted((await s.execute(select(AggregateHost.host).where(
                AggregateHost.aggregate_id == agg_id))).scalars())

    async def view(request: Request, a: Aggregate, full: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"id": a.id, "name": a.name, "availability_zone": (a.meta or {}).get("availability_zone"),
                               "created_at": when(a.created_at), "updated_at": when(a.updated_at),
                               "deleted": False, "deleted_at": None}
        if full:
            out.update(hosts=await hosts_of(a.id), metadata=a.meta or {})
        if at_least(request, 41):
            out["uuid"] = a.uuid
        return out

    async def get(agg_id: str) -> Aggregate:
        # as Nova: an id that is not an integer is a bad request, any integer (negative or past
        # the column's range) names an aggregate that does not exist
        digits = agg_id[1:] if agg_id[:1] in ("-", "+") else agg_id
        if not digits.isdigit():
            raise BadRequest(f"Invalid aggregate id {agg_id!r}: an integer.")
        if len(digits) > 10 or not 0 < int(agg_id) <= 2**31 - 1:
            raise NotFound(f"Aggregate {agg_id} could not be found.")
        async with svc.db.session() as s:
            row = await s.get(Aggregate, int(agg_id))
        if row is None:
            raise NotFound(f"Aggregate {agg_id} could not be found.")
        return row

    async def zone_conflict(host: str, zone: str | None, except_id: int | None = None) -> None:
        """A host may be in several aggregates, but in only one availability zone."""
        if zone is None:
            return
        async with svc.db.session() as s:
            rows = (await s.execute(select(Aggregate).join(AggregateHost, AggregateHost.aggregate_id == Aggregate.id)
                                    .where(AggregateHost.host == host))).scalars()
            for other in rows:
                other_zone = (other.meta or {}).get("availability_zone")
                if other.id != except_id and other_zone and other_zone != zone:
                    raise Conflict(f"Cannot add host {host} to aggregate availability zone {zone}: it is already "
                                   f"in availability zone {other_zone}.")

    async def sync_placement(host: str) -> None:
        async with svc.db.session() as s:
            nodes = list((await s.execute(select(ComputeNode).where(ComputeNode.host == host))).scalars())
            uuids = list((await s.execute(select(Aggregate.uuid).join(
                AggregateHost, AggregateHost.aggregate_id == Aggregate.id).where(
                AggregateHost.host == host))).scalars())
        for node in nodes:
            try:
                await placement.set_aggregates(node.id, None, uuids)
            except NotFound:
                pass

    def check_name(value: Any, field: str) -> None:
        if not isinstance(value, str) or not 0 < len(value.strip()) <= 255:
            raise BadRequest(f"Invalid {field}: a string of 1 to 255 characters.")

    @r.get("/v2.1/os-aggregates")
    async def list_aggregates(request: Request) -> Response:
        authorize(request, "os_compute_api:os-aggregates:index")
        async with svc.db.session() as s:
            rows = list((await s.execute(select(Aggregate).order_by(Aggregate.id))).scalars())
        return JSON({"aggregates": [await view(request, a) for a in rows]})

    @r.post("/v2.1/os-aggregates")
    async def create(request: Request) -> Response:
        authorize(request, "os_compute_api:os-aggregates:create")
        body = await json_body(request)
        data = body.get("aggregate") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise BadRequest("The request needs {\"aggregate\": {\"name\": ...}}.")
        check_name(data.get("name"), "name")
        zone = data.get("availability_zone")
        if zone is not None:
            check_name(zone, "availability_zone")
        row = Aggregate(uuid=str(uuid.uuid4()), name=data["name"].strip(),
                        meta={"availability_zone": zone} if zone else {})
        try:
            async with svc.db.session() as s:
                s.add(row)
        except IntegrityError as exc:
            if is_duplicate(exc):
                raise Conflict(f"Aggregate {data['name']} already exists.") from None
            raise
        return JSON({"aggregate": await view(request, row, full=False)})

    @r.get("/v2.1/os-aggregates/{agg_id}")
    async def show(request: Request) -> Response:
        authorize(request, "os_compute_api:os-aggregates:show")
        return JSON({"aggregate": await view(request, await get(request.path_params["agg_id"]))})

    @r.put("/v2.1/os-aggregates/{agg_id}")
    async def update(request: Request) -> Response:
        authorize(request, "os_compute_api:os-aggregates:update")
        row = await get(request.path_params["agg_id"])
        body = await json_body(request)
        data = body.get("aggregate") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not data or set(data) - {"name", "availability_zone"}:
            raise BadRequest("Only name and availability_zone can be updated.")
        meta = dict(row.meta or {})
        if "availability_zone" in data:
            if data["availability_zone"] is not None:
                check_name(data["availability_zone"], "availability_zone")
                for host in await hosts_of(row.id):
                    await zone_conflict(host, data["availability_zone"], row.id)
                meta["availability_zone"] = data["availability_zone"]
            else:
                meta.pop("availability_zone", None)
        async with svc.db.session() as s:
            fresh = await s.get(Aggregate, row.id)
            assert fresh is not None
            if "name" in data:
                check_name(data["name"], "name")
                fresh.name = data["name"].strip()
            fresh.meta, fresh.updated_at = meta, utcnow()
        return JSON({"aggregate": await view(request, fresh)})

    @r.delete("/v2.1/os-aggregates/{agg_id}")
    async def remove(request: Request) -> Response:
        authorize(request, "os_compute_api:os-aggregates:delete")
        row = await get(request.path_params["agg_id"])
        if await hosts_of(row.id):
            raise BadRequest(f"Aggregate {row.id} still has hosts: remove them first.")
        async with svc.db.session() as s:
            await s.execute(delete(Aggregate).where(Aggregate.id == row.id))
        return Response(status_code=200)

    @r.post("/v2.1/os-aggregates/{agg_id}/action")
    async def action(request: Request) -> Response:
        body = await json_body(request)
        if not isinstance(body, dict) or len(body) != 1:
            raise BadRequest("Give exactly one action: add_host, remove_host or set_metadata.")
        name, data = next(iter(body.items()))
        authorize(request, ACTION_RULES.get(name, "os_compute_api:os-aggregates:update"))
        row = await get(request.path_params["agg_id"])
        if name in ("add_host", "remove_host"):
            host = data.get("host") if isinstance(data, dict) else None
            check_name(host, "host")
            async with svc.db.session() as s:
                known = (await s.execute(select(ServiceRecord.id).where(ServiceRecord.host == host))).first()
                member = await s.get(AggregateHost, (row.id, host))
            if known is None:
                raise NotFound(f"Compute host {host} could not be found.")
            if name == "add_host":
                if member is not None:
                    raise Conflict(f"Aggregate {row.id} already has host {host}.")
                await zone_conflict(host, (row.meta or {}).get("availability_zone"), row.id)
                async with svc.db.session() as s:
                    s.add(AggregateHost(aggregate_id=row.id, host=host))
            else:
                if member is None:
                    raise NotFound(f"Cannot remove host {host} from aggregate {row.id}: it is not a member.")
                async with svc.db.session() as s:
                    await s.execute(delete(AggregateHost).where(AggregateHost.aggregate_id == row.id,
                                                                AggregateHost.host == host))
            await sync_placement(host)
        elif name == "set_metadata":
            meta_in = data.get("metadata") if isinstance(data, dict) else None
            if not isinstance(meta_in, dict):
                raise BadRequest("set_metadata needs {\"metadata\": {...}}.")
            meta = dict(row.meta or {})
            for key, value in meta_in.items():
                if not isinstance(key, str) or not 0 < len(key) <= 255:
                    raise BadRequest(f"Invalid metadata key {key!r}.")
                if value is None:
                    meta.pop(key, None)
                elif not isinstance(value, str) or len(value) > 255:
                    raise BadRequest(f"Invalid metadata value for {key}: a string of at most 255 characters.")
                else:
                    if key == "availability_zone":
                        for host in await hosts_of(row.id):
                            await zone_conflict(host, value, row.id)
                    meta[key] = value
            async with svc.db.session() as s:
                fresh = await s.get(Aggregate, row.id)
                assert fresh is not None
                fresh.meta, fresh.updated_at = meta, utcnow()
        else:
            raise BadRequest(f"Unknown aggregate action {name}.")
        return JSON({"aggregate": await view(request, await get(str(row.id)))})

    @r.get("/v2.1/os-availability-zone/detail")
    async def zones_detail(request: Request) -> Response:
        authorize(request, "os_compute_api:os-availability-zone:detail")
        return JSON({"availabilityZoneInfo": await zone_info(svc, detail=True)})

    @r.get("/v2.1/os-availability-zone")
    async def zones(request: Request) -> Response:
        authorize(request, "os_compute_api:os-availability-zone:list")
        return JSON({"availabilityZoneInfo": await zone_info(svc, detail=False)})

    return r


async def zone_info(svc: ComputeService, detail: bool) -> list[dict[str, Any]]:
    """Zones from aggregates; hosts in no zone are in the default zone ``nova``.  The detail, as
    Nova's: the enabled services of each zone with whether they are up, the ``internal`` zone of
    the controller's own services (conductor, scheduler), and zones whose services are all
    disabled listed as not available."""
    down_after = dt.timedelta(seconds=svc.cfg.compute.service_down_time)
    async with svc.db.session() as s:
        services = list((await s.execute(select(ServiceRecord))).scalars())
        pairs = (await s.execute(select(AggregateHost.host, Aggregate.meta).join(
            Aggregate, Aggregate.id == AggregateHost.aggregate_id))).all()
        zone_names = {(a.meta or {}).get("availability_zone") for a in (await s.execute(select(Aggregate))).scalars()}
    zone_of = {host: meta["availability_zone"] for host, meta in pairs if (meta or {}).get("availability_zone")}
    by_zone: dict[str, list[ServiceRecord]] = {}
    for srv in services:
        by_zone.setdefault(zone_of.get(srv.host, DEFAULT_ZONE), []).append(srv)
    if not detail:
        names = sorted({*(z for z in zone_names if z), *by_zone} or {DEFAULT_ZONE})
        return [{"zoneName": zone, "zoneState": {"available": True}, "hosts": None} for zone in names]
    now = utcnow()

    def up(srv: ServiceRecord) -> bool:
        return not srv.forced_down and srv.last_seen_at is not None and now - srv.last_seen_at <= down_after

    controller = svc.cfg.compute.host or socket.gethostname()
    out: list[dict[str, Any]] = [{"zoneName": INTERNAL_ZONE, "zoneState": {"available": True}, "hosts": {
        controller: {binary: {"available": True, "active": True, "updated_at": when(now)}
                     for binary in ("nova-conductor", "nova-scheduler")}}}]
    unavailable = []
    for zone in sorted(by_zone):
        enabled = [srv for srv in by_zone[zone] if not srv.disabled]
        if not enabled:
            unavailable.append({"zoneName": zone, "zoneState": {"available": False}, "hosts": None})
            continue
        hosts: dict[str, Any] = {}
        for srv in enabled:
            hosts.setdefault(srv.host, {})[srv.binary] = {"available": up(srv), "active": True,
                                                          "updated_at": when(srv.last_seen_at)}
        out.append({"zoneName": zone, "zoneState": {"available": True}, "hosts": hosts})
    return out + unavailable
