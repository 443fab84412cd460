"""Trunks (Neutron's ``trunk`` and ``trunk-details``): a parent port carries, besides its own
untagged traffic, that of subports, each told apart by a VLAN id (``segmentation_type`` vlan,
``segmentation_id`` 1-4094, unique within the trunk).  A port is the parent of one trunk at most
and a subport of one trunk at most; neither can be deleted while it is (409).  A subport's
``device_owner`` becomes ``trunk:subport`` and its ``device_id`` the trunk's id, as in Neutron.

A trunk's status is ``DOWN`` while its parent port is not ``ACTIVE`` (bound to a running
server); with an active parent it is ``ACTIVE`` when it has no subports and ``DEGRADED`` (Neutron's
"some subports could not be wired") when it has some, because none is wired: the trunk is API
state only.  The machines this cloud runs on have no 802.1Q
support in their kernel (``ip link add ... type vlan`` is refused, and so is a bridge with
``vlan_filtering``), so no VLAN subinterface is made on the parent's tap and a guest's tagged
frames reach no subport's network.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import delete, select, update
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.db import Database, IntegrityError, is_duplicate
from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, Conflict, Forbidden, NotFound
from cumulo.network.ipam import many
from cumulo.network.models import Port
from cumulo.network.policies import VERB
from cumulo.network.requests import body, who
from cumulo.network.trunk_models import SubPort, Trunk
from cumulo.network.views import shape, shape_one

SUBPORT_OWNER = "trunk:subport"
MAX_SUBPORTS = 4094  # one per VLAN id
TRUNK_FIELDS = {"name", "description", "port_id", "admin_state_up", "sub_ports", "project_id", "tenant_id"}


def stamp(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def subport_view(s: SubPort) -> dict[str, Any]:
    return {"port_id": s.port_id, "segmentation_type": s.segmentation_type, "segmentation_id": s.segmentation_id}


def status_of(parent_status: str | None, subports: list[SubPort]) -> str:
    if parent_status != "ACTIVE":
        return "DOWN"
    return "DEGRADED" if subports else "ACTIVE"  # no subport is wired (see the module's docstring)


def trunk_view(t: Trunk, subports: list[SubPort], parent_status: str | None) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "description": t.description, "port_id": t.port_id,
            "admin_state_up": t.admin_state_up, "status": status_of(parent_status, subports),
            "sub_ports": [subport_view(s) for s in subports], "tags": t.tags or [],
            "revision_number": t.revision_number, "created_at": stamp(t.created_at), "updated_at": stamp(t.updated_at),
            "project_id": t.project_id, "tenant_id": t.project_id}


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"Invalid input for {name}. Reason: '{value}' is not a valid boolean value.")
    return value


def check_text(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) > 255:
        raise BadRequest(f"Invalid input for {name}. Reason: a string of at most 255 characters is required.")
    return value


# -- what the ports of the Network API ask ----------------------------------------------------------
async def check_port_deletable(db: Database, port_id: str) -> None:
    """409 while the port is a trunk's parent or subport (Neutron refuses to delete either)."""
    async with db.session() as s:
        parent = (await s.execute(select(Trunk.id).where(Trunk.port_id == port_id))).scalar()
        sub = (await s.execute(select(SubPort.trunk_id).where(SubPort.port_id == port_id))).scalar()
    if parent:
        raise Conflict(f"Port {port_id} is currently a parent port for trunk {parent}.", kind="PortInUseAsTrunkParent")
    if sub:
        raise Conflict(f"Port {port_id} is currently a subport for trunk {sub}.", kind="PortInUseAsSubPort")


async def with_trunk_details(db: Database, views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Port views with ``trunk_details`` ({trunk_id, sub_ports with their MACs}) on trunk parents."""
    ids = [v["id"] for v in views]
    if not ids:
        return views
    stmt = select(Trunk.port_id, Trunk.id)
    async with db.session() as s:  # a long listing reads every trunk (far fewer than ports) at once
        trunks = dict((await s.execute(stmt if len(ids) > 500 else stmt.where(Trunk.port_id.in_(ids)))).tuples().all())
        wanted = set(ids)
        trunks = {port: trunk for port, trunk in trunks.items() if port in wanted}
        if not trunks:
            return views
        subs = list((await s.execute(select(SubPort).where(SubPort.trunk_id.in_(many(list(trunks.values()))))
                                     .order_by(SubPort.segmentation_id))).scalars())
        macs = dict((await s.execute(select(Port.id, Port.mac_address).where(
            Port.id.in_(many([x.port_id for x in subs]))))).tuples().all()) if subs else {}
    of: dict[str, list[SubPort]] = defaultdict(list)
    for x in subs:
        of[x.trunk_id].append(x)
    for v in views:
        trunk_id = trunks.get(v["id"])
        if trunk_id is not None:
            v["trunk_details"] = {"trunk_id": trunk_id, "sub_ports": [
                {**subport_view(x), "mac_address": macs.get(x.port_id)} for x in of[trunk_id]]}
    return views


# -- the API -----------------------------------------------------------------------------------
def router(db: Database) -> Router:
    r = Router()

    async def visible_port(port_id: Any, project: str, admin: bool) -> Port:
        row = None
        if isinstance(port_id, str):
            async with db.session() as s:
                row = await s.get(Port, port_id)
        if row is None or not (admin or row.project_id == project):
            raise NotFound(f"Port {port_id} could not be found.", kind="PortNotFound")
        return row

    async def get_trunk(trunk_id: str, project: str, admin: bool) -> Trunk:
        async with db.session() as s:
            row = await s.get(Trunk, trunk_id)
        if row is None or not (admin or row.project_id == project):
            raise NotFound(f"Trunk {trunk_id} could not be found.", kind="TrunkNotFound")
        return row

    async def views(rows: list[Trunk]) -> list[dict[str, Any]]:
        """The trunks' views: their subports and their parents' status in two queries."""
        async with db.session() as s:
            subs = list((await s.execute(select(SubPort).where(SubPort.trunk_id.in_(many([t.id for t in rows])))
                                         .order_by(SubPort.segmentation_id))).scalars())
            status = dict((await s.execute(select(Port.id, Port.status).where(
                Port.id.in_(many([t.port_id for t in rows]))))).tuples().all())
        of: dict[str, list[SubPort]] = defaultdict(list)
        for x in subs:
            of[x.trunk_id].append(x)
        return [trunk_view(t, of[t.id], status.get(t.port_id)) for t in rows]

    async def view(t: Trunk) -> dict[str, Any]:
        return (await views([t]))[0]

    async def checked_subports(trunk_id: str, parent_id: str, items: Any, project: str, admin: bool) -> list[SubPort]:
        """New subports of the trunk from a request's ``sub_ports``, each checked as Neutron does."""
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise BadRequest("Invalid input for sub_ports. Reason: a list of {port_id, segmentation_type, "
                             "segmentation_id} is required.")
        if len(items) > MAX_SUBPORTS:
            raise BadRequest(f"Invalid input for sub_ports. Reason: at most {MAX_SUBPORTS} subports at once.")
        out: list[SubPort] = []
        seen_ports: set[str] = set()
        seen_ids: set[int] = set()
        # what the checks need, read once for the whole request (up to MAX_SUBPORTS of them)
        wanted = [i.get("port_id") for i in items if isinstance(i.get("port_id"), str)]
        async with db.session() as s:
            taken = set((await s.execute(select(SubPort.segmentation_id).where(
                SubPort.trunk_id == trunk_id))).scalars())
            ports = {p.id: p for p in (await s.execute(select(Port).where(Port.id.in_(many(wanted))))).scalars()}
            in_trunks = set((await s.execute(select(SubPort.port_id).where(SubPort.port_id.in_(many(wanted)))))
                            .scalars()) | set((await s.execute(select(Trunk.port_id).where(
                                Trunk.port_id.in_(many(wanted))))).scalars())
        for item in items:
            extra = sorted(set(item) - {"port_id", "segmentation_type", "segmentation_id"})
            if extra:
                raise BadRequest(f"Unrecognized attribute(s) '{', '.join(extra)}'")
            port_id = item.get("port_id")
            port = ports.get(port_id) if isinstance(port_id, str) else None
            if port is None or not (admin or port.project_id == project):
                raise NotFound(f"Port {port_id} could not be found.", kind="PortNotFound")
            kind, seg = item.get("segmentation_type"), item.get("segmentation_id")
            if kind is None or seg is None:
                raise BadRequest(f"Invalid input for operation: Invalid subport details '{item}': missing "
                                 "segmentation_type or segmentation_id.")
            if kind != "vlan":
                raise BadRequest(f"Invalid input for operation: Segmentation type '{kind}' is not supported (vlan).")
            if isinstance(seg, str) and seg.isdigit():
                seg = int(seg)
            if not isinstance(seg, int) or isinstance(seg, bool) or not 1 <= seg <= 4094:
                raise BadRequest(f"Invalid input for operation: Segmentation ID '{item.get('segmentation_id')}' for "
                                 "'vlan' is not in range [1, 4094].")
            if port.id == parent_id:
                raise Conflict(f"Port {port.id} is currently in use and is not eligible for use as a parent port.",
                               kind="ParentPortInUse")
            if port.id in seen_ports:
                raise BadRequest(f"Invalid input for sub_ports. Reason: port {port.id} is named twice.")
            if seg in seen_ids or seg in taken:
                raise Conflict(f"segmentation_type vlan and segmentation_id {seg} already in use on trunk "
                               f"{trunk_id}.", kind="DuplicateSubPort")
            if port.id in in_trunks:
                raise Conflict(f"Port {port.id} is in use by another trunk.", kind="TrunkPortInUse")
            seen_ports.add(port.id)
            seen_ids.add(seg)
            out.append(SubPort(port_id=port.id, trunk_id=trunk_id, segmentation_type=kind, segmentation_id=seg))
        return out

    async def attach(trunk_id: str, subports: list[SubPort]) -> None:
        """The subports, all or none (a racing request that took one of their ports or ids: 409)."""
        if not subports:
            return
        try:
            async with db.session() as s:
                s.add_all(subports)
                await s.flush()
                await s.execute(update(Port).where(Port.id.in_([x.port_id for x in subports])).values(
                    device_owner=SUBPORT_OWNER, device_id=trunk_id))
        except IntegrityError as exc:
            if not is_duplicate(exc):
                raise
            raise Conflict(f"A port or segmentation id of the request is in use on a trunk meanwhile (trunk "
                           f"{trunk_id}).", kind="TrunkPortInUse") from None

    async def detach(port_ids: list[str]) -> None:
        async with db.session() as s:
            await s.execute(delete(SubPort).where(SubPort.port_id.in_(port_ids)))
            await s.execute(update(Port).where(Port.id.in_(port_ids), Port.device_owner == SUBPORT_OWNER).values(
                device_owner="", device_id=""))

    @r.route("/v2.0/trunks", ["GET", "POST"])
    async def trunks(request: Request) -> Response:
        project, admin = who(request)
        if request.method == "POST":
            item = await body(request, "trunk")
            extra = sorted(set(item) - TRUNK_FIELDS)
            if extra:
                raise BadRequest(f"Unrecognized attribute(s) '{', '.join(extra)}'")
            owner = str(item.get("project_id") or item.get("tenant_id") or project)
            if owner != project and not admin:
                raise Forbidden("Only an admin may create trunks for another project.")
            authorize(request, "create_trunk", {"project_id": owner, "tenant_id": owner})
            if "port_id" not in item:
                raise BadRequest("Failed to parse request. Required attribute 'port_id' not specified")
            parent = await visible_port(item["port_id"], project, admin)
            async with db.session() as s:
                if (await s.execute(select(SubPort.trunk_id).where(SubPort.port_id == parent.id))).scalar():
                    raise Conflict(f"Port {parent.id} is currently in use and is not eligible for use as a parent "
                                   "port.", kind="ParentPortInUse")
                if (await s.execute(select(Trunk.id).where(Trunk.port_id == parent.id))).scalar():
                    raise Conflict(f"Port {parent.id} is in use by another trunk.", kind="TrunkPortInUse")
            row = Trunk(id=str(uuid.uuid4()), project_id=owner, port_id=parent.id,
                        name=check_text(item.get("name") or "", "name"),
                        description=check_text(item.get("description") or "", "description"),
                        admin_state_up=check_bool(item.get("admin_state_up", True), "admin_state_up"))
            subports = await checked_subports(row.id, parent.id, item.get("sub_ports") or [], project, admin)
            try:
                async with db.session() as s:
                    s.add(row)
            except IntegrityError as exc:
                if not is_duplicate(exc):
                    raise
                raise Conflict(f"Port {parent.id} is in use by another trunk.", kind="TrunkPortInUse") from None
            try:
                await attach(row.id, subports)
            except BaseException:  # no trunk without the subports asked for
                async with db.session() as s:
                    await s.execute(delete(Trunk).where(Trunk.id == row.id))
                raise
            return JSON({"trunk": await view(row)}, status_code=201)
        authorize(request, "get_trunk")
        stmt = select(Trunk).order_by(Trunk.created_at, Trunk.id)
        if not admin:
            stmt = stmt.where(Trunk.project_id == project)
        async with db.session() as s:
            rows = list((await s.execute(stmt)).scalars())
        return JSON(shape(request, await views(rows), "trunks"))

    @r.route("/v2.0/trunks/{trunk_id}", ["GET", "PUT", "DELETE"])
    async def trunk(request: Request) -> Response:
        project, admin = who(request)
        row = await get_trunk(request.path_params["trunk_id"], project, admin)
        authorize(request, f"{VERB[request.method]}_trunk", {"project_id": row.project_id,
                                                            "tenant_id": row.project_id})
        if request.method == "DELETE":
            async with db.session() as s:
                subs = list((await s.execute(select(SubPort.port_id).where(SubPort.trunk_id == row.id))).scalars())
            await detach(subs)
            async with db.session() as s:
                await s.execute(delete(Trunk).where(Trunk.id == row.id))
            return Response(status_code=204)
        if request.method == "PUT":
            item = await body(request, "trunk")
            for fixed in ("port_id", "sub_ports", "project_id", "tenant_id"):
                if fixed in item:
                    raise BadRequest(f"Cannot update read-only attribute {fixed}")
            extra = sorted(set(item) - TRUNK_FIELDS)
            if extra:
                raise BadRequest(f"Unrecognized attribute(s) '{', '.join(extra)}'")
            async with db.session() as s:
                row = await s.get(Trunk, row.id)
                for key in ("name", "description"):
                    if key in item:
                        setattr(row, key, check_text(item[key] or "", key))
                if "admin_state_up" in item:
                    row.admin_state_up = check_bool(item["admin_state_up"], "admin_state_up")
                row.revision_number += 1
        return JSON(shape_one(request, await view(row), "trunk"))

    def managed(row: Trunk) -> None:
        if not row.admin_state_up:
            raise Conflict(f"Trunk {row.id} is currently disabled.", kind="TrunkDisabled")

    async def bumped(row: Trunk) -> Trunk:
        async with db.session() as s:
            await s.execute(update(Trunk).where(Trunk.id == row.id).values(revision_number=Trunk.revision_number + 1))
            fresh = await s.get(Trunk, row.id)
        return fresh or row

    @r.put("/v2.0/trunks/{trunk_id}/add_subports")
    async def add_subports(request: Request) -> Response:
        project, admin = who(request)
        row = await get_trunk(request.path_params["trunk_id"], project, admin)
        authorize(request, "add_subports", {"project_id": row.project_id, "tenant_id": row.project_id})
        data = await _sub_ports(request)
        managed(row)
        await attach(row.id, await checked_subports(row.id, row.port_id, data, project, admin))
        return JSON(await view(await bumped(row)))

    @r.put("/v2.0/trunks/{trunk_id}/remove_subports")
    async def remove_subports(request: Request) -> Response:
        project, admin = who(request)
        row = await get_trunk(request.path_params["trunk_id"], project, admin)
        authorize(request, "remove_subports", {"project_id": row.project_id, "tenant_id": row.project_id})
        data = await _sub_ports(request)
        managed(row)
        async with db.session() as s:
            mine = set((await s.execute(select(SubPort.port_id).where(SubPort.trunk_id == row.id))).scalars())
        ids = []
        for item in data:
            port_id = item.get("port_id") if isinstance(item, dict) else None
            if not isinstance(port_id, str) or port_id not in mine:
                raise NotFound(f"SubPort {port_id} on trunk {row.id} could not be found.", kind="SubPortNotFound")
            ids.append(str(port_id))
        await detach(ids)
        return JSON(await view(await bumped(row)))

    @r.get("/v2.0/trunks/{trunk_id}/get_subports")
    async def get_subports(request: Request) -> Response:
        project, admin = who(request)
        row = await get_trunk(request.path_params["trunk_id"], project, admin)
        authorize(request, "get_subports", {"project_id": row.project_id, "tenant_id": row.project_id})
        return JSON({"sub_ports": (await view(row))["sub_ports"]})

    return r


async def _sub_ports(request: Request) -> list[Any]:
    data = await json_body(request)
    items = data.get("sub_ports") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise BadRequest("Resource body required: a 'sub_ports' list.")
    if len(items) > MAX_SUBPORTS:
        raise BadRequest(f"Invalid input for sub_ports. Reason: at most {MAX_SUBPORTS} subports at once.")
    return items
