"""The routes of ``cumulo/volume/transfers.py``: ``/os-volume-transfer`` and ``/volume-transfers``
(3.55; ``no_snapshots`` there only), each with its list, ``/detail``, show, ``{id}/accept`` and
delete, and the volume actions os-retype and os-migrate_volume (``LONG_ACTIONS`` of
``api/volumes.py`` dispatches to them).

Fields by microversion, on both paths, as Cinder's view builds them and tempest's schemas check:
``no_snapshots`` from 3.55, ``source_project_id``, ``destination_project_id`` and ``accepted``
from 3.57; ``auth_key`` only in the create's answer.  Lists are oldest first, ``limit`` (at most
1000), ``offset``, ``marker`` and ``sort`` as Cinder's (3.59) on either path."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest
from cumulo.core.http.paging import next_link, parse_bool
from cumulo.volume.api.common import at_least, caller, links, list_params, offset_param, route, stamp
from cumulo.volume.service import Caller, VolumeInfo, VolumeService
from cumulo.volume.transfers import TRANSFER_SORT_KEYS, TransferInfo

COLLECTIONS = ("/os-volume-transfer", "/volume-transfers")


def transfer_view(request: Request, t: TransferInfo, detail: bool = True) -> dict[str, Any]:
    """A transfer: the summary (id, name, volume_id, links), or its detail by microversion."""
    out: dict[str, Any] = {"id": t.id, "name": t.name, "volume_id": t.volume_id,
                           "links": links(request, "os-volume-transfer", t.id, t.source_project_id)}
    if not detail:
        return out
    out["created_at"] = stamp(t.created_at)
    if t.auth_key is not None:
        out["auth_key"] = t.auth_key
    if at_least(request, 55):
        out["no_snapshots"] = t.no_snapshots
    if at_least(request, 57):
        out.update({"source_project_id": t.source_project_id, "destination_project_id": t.destination_project_id,
                    "accepted": t.accepted})
    return out


def router(svc: VolumeService) -> Router:
    r = Router()
    for collection in COLLECTIONS:
        _routes(r, svc, collection)
    return r


def _routes(r: Router, svc: VolumeService, collection: str) -> None:
    """The same five routes under one of the two paths (``/volume-transfers`` takes no_snapshots)."""

    async def listing(request: Request, detail: bool) -> Response:
        authorize(request, "volume:get_all_transfers")
        params = request.query_params
        everyone = bool(params.get("all_tenants") and parse_bool("all_tenants", params["all_tenants"]))
        q = list_params(request, TRANSFER_SORT_KEYS)
        if "sort" not in params and "sort_key" not in params:
            q.sort = [("created_at", "asc"), ("id", "asc")]  # Cinder's order for transfers
        rows = await svc.transfers(caller(request), everyone, params.get("name"), q, offset_param(request))
        body: dict[str, Any] = {"transfers": [transfer_view(request, t, detail) for t in rows]}
        more = next_link(str(request.url).split("?", 1)[0], params, q, rows, "transfers")
        if more:
            body["transfers_links"] = more
        return JSON(body)

    @route(r, "GET", collection)
    async def list_transfers(request: Request) -> Response:
        return await listing(request, False)

    @route(r, "GET", f"{collection}/detail")
    async def list_transfers_detail(request: Request) -> Response:
        return await listing(request, True)

    @route(r, "POST", collection)
    async def create_transfer(request: Request) -> Response:
        """202 with the auth key, the one time it is shown."""
        body = (await json_body(request))["transfer"]
        if "no_snapshots" in body and (collection != "/volume-transfers" or not at_least(request, 55)):
            raise BadRequest("Invalid input received: no_snapshots is taken by /volume-transfers from microversion "
                             "3.55 only.")
        who = caller(request)
        vol = await svc.volume(body["volume_id"], who)
        authorize(request, "volume:create_transfer", {"project_id": vol.project_id})
        name = body.get("name")
        made = await svc.create_transfer(who, vol.id, name.strip() if isinstance(name, str) else None,
                                         parse_bool("no_snapshots", str(body.get("no_snapshots", False))))
        return JSON({"transfer": transfer_view(request, made)}, status_code=202)

    @route(r, "GET", f"{collection}/{{transfer_id}}")
    async def show_transfer(request: Request) -> Response:
        t = await svc.transfer(request.path_params["transfer_id"], caller(request))
        authorize(request, "volume:get_transfer", {"project_id": t.source_project_id})
        return JSON({"transfer": transfer_view(request, t)})

    @route(r, "POST", f"{collection}/{{transfer_id}}/accept")
    async def accept_transfer(request: Request) -> Response:
        """The caller's project takes the volume: 202 with the transfer's summary."""
        authorize(request, "volume:accept_transfer")
        key = (await json_body(request))["accept"]["auth_key"]
        done = await svc.accept_transfer(request.path_params["transfer_id"], caller(request), str(key))
        return JSON({"transfer": transfer_view(request, done, detail=False)}, status_code=202)

    @route(r, "DELETE", f"{collection}/{{transfer_id}}")
    async def delete_transfer(request: Request) -> Response:
        who = caller(request)
        t = await svc.transfer(request.path_params["transfer_id"], who)
        authorize(request, "volume:delete_transfer", {"project_id": t.source_project_id})
        await svc.delete_transfer(t.id, who)
        return Response(status_code=202)


# -- the volume actions of this piece (dispatched by api/volumes.py) ---------------------------------
async def retype(request: Request, svc: VolumeService, who: Caller, vol: VolumeInfo, args: dict[str, Any]) -> Response:
    authorize(request, "volume:retype", {"project_id": vol.project_id})
    await svc.retype_volume(who, vol.id, args["new_type"], args.get("migration_policy"))
    return Response(status_code=202)


async def migrate(request: Request, svc: VolumeService, who: Caller, vol: VolumeInfo, args: dict[str, Any]) -> Response:
    """An admin's; ``cluster`` from 3.16 (there are no clusters here)."""
    authorize(request, "volume_extension:volume_admin_actions:migrate_volume", {"project_id": vol.project_id})
    if args.get("cluster") and not at_least(request, 16):
        raise BadRequest("Invalid input received: cluster needs microversion 3.16 or later.")
    await svc.migrate_volume(vol.id, args.get("host"), args.get("cluster"),
                             parse_bool("force_host_copy", str(args.get("force_host_copy", False))),
                             parse_bool("lock_volume", str(args.get("lock_volume", False))))
    return Response(status_code=202)


ACTIONS = {"os-retype": retype, "os-migrate_volume": migrate}
