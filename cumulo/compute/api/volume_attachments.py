"""A server's volumes: /v2.1/servers/{server_id}/os-volume_attachments (attach, list, show,
update, detach), the way Nova shows them at each microversion: ``tag`` from 2.70 (accepted from
2.49), ``delete_on_termination`` from 2.79, ``attachment_id`` and ``bdm_uuid`` instead of ``id``
in lists and shows from 2.89."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.block_devices import volume_caller
from cumulo.compute.api.common import at_least, offset_page
from cumulo.compute.models import Server
from cumulo.compute.servers import ServerManager, VolumeAttachment
from cumulo.core.http.app import JSON, Router, auth_of, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, Conflict, NotFound

PATH = "/v2.1/servers/{server_id}/os-volume_attachments"


def view(request: Request, a: VolumeAttachment, listed: bool = True) -> dict[str, Any]:
    """One attachment; ``listed`` for a list's or a show's item (a create's answer keeps ``id``)."""
    out: dict[str, Any] = {"device": a.device, "serverId": a.server_id, "volumeId": a.volume_id}
    if not (listed and at_least(request, 89)):
        out["id"] = a.volume_id
    if at_least(request, 70):
        out["tag"] = a.tag
    if at_least(request, 79):
        out["delete_on_termination"] = a.delete_on_termination
    if listed and at_least(request, 89):
        out["attachment_id"], out["bdm_uuid"] = a.attachment_id, a.id
    return out


def shelved_needs_2_20(request: Request, server: Server, method: str) -> None:
    """A shelved server's volumes change from microversion 2.20 (409 before, as Nova answers)."""
    if server.vm_state in ("shelved", "shelved_offloaded") and not at_least(request, 20):
        raise Conflict(f"Cannot '{method}' instance {server.id} while it is in vm_state {server.vm_state}")


def router(manager: ServerManager) -> Router:
    r = Router()

    async def server_for(request: Request, rule: str) -> Server:
        auth = auth_of(request)
        server_id = request.path_params["server_id"]
        row = await manager.get(server_id) if len(server_id) <= 36 else None
        if row is None or row.deleted_at is not None or (row.project_id != auth.project_id and not auth.is_admin()):
            raise NotFound(f"Instance {server_id} could not be found.")
        authorize(request, rule, {"project_id": row.project_id, "user_id": row.user_id})
        return row

    @r.get(PATH)
    async def list_attachments(request: Request) -> Response:
        server = await server_for(request, "os_compute_api:os-volumes-attachments:index")
        rows = (await manager.volume_attachments([server.id]))[server.id]
        return JSON({"volumeAttachments": [view(request, a) for a in offset_page(request, rows)]})

    @r.post(PATH)
    async def attach(request: Request) -> Response:
        server = await server_for(request, "os_compute_api:os-volumes-attachments:create")
        body = (await json_body(request))["volumeAttachment"]
        shelved_needs_2_20(request, server, "attach_volume")
        if "tag" in body and not at_least(request, 49):
            raise BadRequest("Invalid input for field/attribute volumeAttachment: tag is accepted from "
                             "microversion 2.49.")
        if "delete_on_termination" in body and not at_least(request, 79):
            raise BadRequest("Invalid input for field/attribute volumeAttachment: delete_on_termination is "
                             "accepted from microversion 2.79.")
        if server.locked and not auth_of(request).is_admin():
            raise Conflict(f"Instance {server.id} is locked.")
        a = await manager.attach_volume(server, body["volumeId"], volume_caller(auth_of(request)),
                                        device=body.get("device"), tag=body.get("tag"),
                                        delete_on_termination=bool(body.get("delete_on_termination", False)))
        return JSON({"volumeAttachment": view(request, a, listed=False)})

    @r.get(PATH + "/{volume_id}")
    async def show(request: Request) -> Response:
        server = await server_for(request, "os_compute_api:os-volumes-attachments:show")
        a = await manager.volume_attachment(server.id, request.path_params["volume_id"])
        return JSON({"volumeAttachment": view(request, a)})

    @r.put(PATH + "/{volume_id}")
    async def update(request: Request) -> Response:
        """2.85: ``delete_on_termination`` and ``tag`` of the attachment may change; naming
        another volume is a swap, which Nova takes only while the old volume migrates (block
        storage asks for it; 409 otherwise), by its policy a service's."""
        volume_id = request.path_params["volume_id"]
        body = (await json_body(request))["volumeAttachment"]
        if body["volumeId"] != volume_id:
            server = await server_for(request, "os_compute_api:os-volumes-attachments:swap")
            who = volume_caller(auth_of(request))
            old = await manager._block_storage().volume(volume_id, who)  # 404 for an unknown volume
            if not old.migration_status:
                raise Conflict(f"volume {volume_id} is not migrating; this API should only be called by block "
                               "storage.")
            if server.locked and not auth_of(request).is_admin():
                raise Conflict(f"Instance {server.id} is locked.")
            await manager.swap_volume(server, volume_id, body["volumeId"], who)
            return Response(status_code=202)
        server = await server_for(request, "os_compute_api:os-volumes-attachments:update")
        if not at_least(request, 85):
            raise BadRequest("Updating a volume attachment needs microversion 2.85 or later.")
        for key in ("device", "serverId", "id"):
            if key in body and body[key] != {"device": None, "serverId": server.id, "id": volume_id}[key]:
                current = await manager.volume_attachment(server.id, volume_id)
                if key != "device" or body[key] != current.device:
                    raise BadRequest(f"Invalid input: {key} of a volume attachment cannot change.")
        await manager.update_volume_attachment(server.id, volume_id, tag=body.get("tag"),
                                               delete_on_termination=body.get("delete_on_termination"))
        return Response(status_code=202)

    @r.delete(PATH + "/{volume_id}")
    async def detach(request: Request) -> Response:
        server = await server_for(request, "os_compute_api:os-volumes-attachments:delete")
        shelved_needs_2_20(request, server, "detach_volume")
        if server.locked and not auth_of(request).is_admin():
            raise Conflict(f"Instance {server.id} is locked.")
        await manager.detach_volume(server, request.path_params["volume_id"], volume_caller(auth_of(request)))
        return Response(status_code=202)

    return r
