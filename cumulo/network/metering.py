"""L3 metering (Neutron's ``metering`` and ``metering_source_and_destination_fields``): labels of a
project and their rules, each matching a remote prefix (deprecated in Neutron) or a source and/or
a destination prefix, ingress or egress, counted or ``excluded``.  Labels and rules are made,
shown and deleted, never changed (Neutron has no update for either).  By Neutron's defaults an
admin or the project's manager makes and deletes them and the project's reader reads them; another
project's caller is told they do not exist.  A rule's owner is its label's project.  Two rules of a
label with the same direction and ``excluded`` may not have overlapping remote prefixes (409).

The network agent counts what a label's rules match on the gateways of the label's project's
routers (every router's, for a shared label): ``cumulo.network.dataplane.metering``.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from sqlalchemy import delete, select
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.db import Database
from cumulo.core.http.app import JSON, Router
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, Conflict, Forbidden, NotFound
from cumulo.network.metering_models import MeteringLabel, MeteringLabelRule
from cumulo.network.requests import body, who
from cumulo.network.views import shape, shape_one

LABEL_FIELDS = {"name", "description", "shared", "project_id", "tenant_id"}
RULE_FIELDS = {"metering_label_id", "direction", "excluded", "remote_ip_prefix", "source_ip_prefix",
               "destination_ip_prefix", "project_id", "tenant_id"}
PREFIXES = ("remote_ip_prefix", "source_ip_prefix", "destination_ip_prefix")
DIRECTIONS = ("ingress", "egress")


def label_view(m: MeteringLabel) -> dict[str, Any]:
    return {"id": m.id, "name": m.name, "description": m.description, "shared": m.shared,
            "tenant_id": m.project_id, "project_id": m.project_id}


def rule_view(r: MeteringLabelRule) -> dict[str, Any]:
    return {"id": r.id, "metering_label_id": r.label_id, "direction": r.direction, "excluded": r.excluded,
            "remote_ip_prefix": r.remote_ip_prefix, "source_ip_prefix": r.source_ip_prefix,
            "destination_ip_prefix": r.destination_ip_prefix}


def owner_target(project_id: str) -> dict[str, Any]:
    return {"project_id": project_id, "tenant_id": project_id}


def unknown(item: dict[str, Any], known: set[str]) -> None:
    extra = sorted(set(item) - known)
    if extra:
        raise BadRequest(f"Unrecognized attribute(s) '{', '.join(extra)}'")


def text(item: dict[str, Any], key: str) -> str:
    value = item.get(key, "")
    if not isinstance(value, str) or len(value) > 255:
        raise BadRequest(f"Invalid input for {key}. Reason: a string of at most 255 characters is required.")
    return value


def boolean(item: dict[str, Any], key: str) -> bool:
    value = item.get(key, False)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise BadRequest(f"Invalid input for {key}. Reason: '{value}' is not a valid boolean value.")
    return value


def prefix(item: dict[str, Any], key: str) -> str | None:
    """A CIDR (IPv4 or IPv6) without host bits, or None when absent or empty."""
    value = item.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 64 or "/" not in value:
        raise BadRequest(f"Invalid input for {key}. Reason: '{value}' isn't a recognized IP subnet cidr.")
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise BadRequest(f"Invalid input for {key}. Reason: '{value}' isn't a recognized IP subnet cidr.") from None
    if ipaddress.ip_interface(value).ip != net.network_address:
        raise BadRequest(f"Invalid input for {key}. Reason: '{value}' isn't a recognized IP subnet cidr, "
                         f"'{net}' is recommended.")
    return str(net)


def router(db: Database) -> Router:
    r = Router()

    async def visible_label(label_id: str, project: str, admin: bool) -> MeteringLabel:
        async with db.session() as s:
            row = await s.get(MeteringLabel, label_id)
        if row is None or not (admin or row.project_id == project):
            raise NotFound(f"Metering label '{label_id}' does not exist.", kind="MeteringLabelNotFound")
        return row

    async def visible_rule(rule_id: str, project: str, admin: bool) -> tuple[MeteringLabelRule, MeteringLabel]:
        async with db.session() as s:
            row = await s.get(MeteringLabelRule, rule_id)
            label = await s.get(MeteringLabel, row.label_id) if row is not None else None
        if row is None or label is None or not (admin or label.project_id == project):
            raise NotFound(f"Metering label rule '{rule_id}' does not exist.", kind="MeteringLabelRuleNotFound")
        return row, label

    @r.route("/v2.0/metering/metering-labels", ["GET", "POST"])
    async def labels(request: Request) -> Response:
        project, admin = who(request)
        if request.method in ("GET", "HEAD"):
            authorize(request, "get_metering_label", owner_target(project))
            stmt = select(MeteringLabel).order_by(MeteringLabel.created_at, MeteringLabel.id)
            if not admin:
                stmt = stmt.where(MeteringLabel.project_id == project)
            async with db.session() as s:
                rows = list((await s.execute(stmt)).scalars())
            return JSON(shape(request, [label_view(m) for m in rows], "metering_labels"))
        item = await body(request, "metering_label")
        unknown(item, LABEL_FIELDS)
        owner = str(item.get("project_id") or item.get("tenant_id") or project)
        authorize(request, "create_metering_label", owner_target(owner))
        if owner != project and not admin:
            raise Forbidden("Only an admin may create metering labels for another project.")
        row = MeteringLabel(id=str(uuid.uuid4()), name=text(item, "name"), description=text(item, "description"),
                            shared=boolean(item, "shared"), project_id=owner)
        async with db.session() as s:
            s.add(row)
        return JSON({"metering_label": label_view(row)}, status_code=201)

    @r.route("/v2.0/metering/metering-labels/{label_id}", ["GET", "DELETE"])
    async def label(request: Request) -> Response:
        project, admin = who(request)
        row = await visible_label(request.path_params["label_id"], project, admin)
        if request.method in ("GET", "HEAD"):
            authorize(request, "get_metering_label", owner_target(row.project_id))
            return JSON(shape_one(request, label_view(row), "metering_label"))
        authorize(request, "delete_metering_label", owner_target(row.project_id))
        async with db.session() as s:
            await s.execute(delete(MeteringLabelRule).where(MeteringLabelRule.label_id == row.id))
            await s.execute(delete(MeteringLabel).where(MeteringLabel.id == row.id))
        return Response(status_code=204)

    @r.route("/v2.0/metering/metering-label-rules", ["GET", "POST"])
    async def rules(request: Request) -> Response:
        project, admin = who(request)
        if request.method in ("GET", "HEAD"):
            authorize(request, "get_metering_label_rule", owner_target(project))
            stmt = select(MeteringLabelRule).order_by(MeteringLabelRule.created_at, MeteringLabelRule.id)
            if not admin:
                stmt = stmt.join(MeteringLabel, MeteringLabel.id == MeteringLabelRule.label_id).where(
                    MeteringLabel.project_id == project)
            async with db.session() as s:
                rows = list((await s.execute(stmt)).scalars())
            return JSON(shape(request, [rule_view(x) for x in rows], "metering_label_rules"))
        item = await body(request, "metering_label_rule")
        unknown(item, RULE_FIELDS)
        for key in ("metering_label_id", "direction"):
            if key not in item:
                raise BadRequest(f"Failed to parse request. Required attribute '{key}' not specified")
        if item["direction"] not in DIRECTIONS:
            raise BadRequest(f"Invalid input for direction. Reason: '{item['direction']}' is not in "
                             f"{list(DIRECTIONS)}.")
        excluded = boolean(item, "excluded")
        remote, source, destination = (prefix(item, key) for key in PREFIXES)
        if remote and (source or destination):
            raise BadRequest("Cannot use 'remote-ip-prefix' in conjunction with 'source-ip-prefix' or "
                             "'destination-ip-prefix'.")
        if not (remote or source or destination):
            raise BadRequest("You must define at least one of the following parameters 'remote_ip_prefix', or "
                             "'source_ip_prefix' or 'destination_ip_prefix'.")
        label_id = item["metering_label_id"]
        if not isinstance(label_id, str):
            raise BadRequest(f"Invalid input for metering_label_id. Reason: '{label_id}' is not a valid UUID.")
        parent = await visible_label(label_id, project, admin)
        authorize(request, "create_metering_label_rule", owner_target(parent.project_id))
        row = MeteringLabelRule(id=str(uuid.uuid4()), label_id=parent.id, direction=item["direction"],
                                excluded=excluded, remote_ip_prefix=remote, source_ip_prefix=source,
                                destination_ip_prefix=destination)
        async with db.session() as s:
            if remote:
                mine = ipaddress.ip_network(remote)
                for (theirs,) in (await s.execute(select(MeteringLabelRule.remote_ip_prefix).where(
                        MeteringLabelRule.label_id == parent.id, MeteringLabelRule.direction == row.direction,
                        MeteringLabelRule.excluded.is_(excluded), MeteringLabelRule.remote_ip_prefix.is_not(None)))):
                    other = ipaddress.ip_network(theirs)
                    if other.version == mine.version and other.overlaps(mine):  # type: ignore[arg-type]
                        raise Conflict(f"Metering label rule with remote_ip_prefix '{remote}' overlaps another.",
                                       kind="MeteringLabelRuleOverlaps")
            s.add(row)
        return JSON({"metering_label_rule": rule_view(row)}, status_code=201)

    @r.route("/v2.0/metering/metering-label-rules/{rule_id}", ["GET", "DELETE"])
    async def rule(request: Request) -> Response:
        project, admin = who(request)
        row, parent = await visible_rule(request.path_params["rule_id"], project, admin)
        if request.method in ("GET", "HEAD"):
            authorize(request, "get_metering_label_rule", owner_target(parent.project_id))
            return JSON(shape_one(request, rule_view(row), "metering_label_rule"))
        authorize(request, "delete_metering_label_rule", owner_target(parent.project_id))
        async with db.session() as s:
            await s.execute(delete(MeteringLabelRule).where(MeteringLabelRule.id == row.id))
        return Response(status_code=204)

    return r
