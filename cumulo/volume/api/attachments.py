"""/v3/attachments (3.27): reserve a volume for a server, connect it with the compute node's
connector, complete it (3.44), list, show and delete attachments.  Below 3.27 the resource does
not exist (404, as Cinder answers a method its version does not have)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, NotFound
from cumulo.core.http.paging import next_link, parse_bool
from cumulo.volume.api.common import at_least, caller, list_params, offset_param, route, stamp, version_of
from cumulo.volume.attachments import ATTACHMENT_SORT_KEYS
from cumulo.volume.service import AttachmentInfo, VolumeService


def summary_view(a: AttachmentInfo) -> dict[str, Any]:
    return {"id": a.id, "status": a.status, "instance": a.instance_uuid, "volume_id": a.volume_id}


def detail_view(a: AttachmentInfo) -> dict[str, Any]:
    """The summary and when, how and through what the volume is attached (Cinder writes "" for a
    time not yet reached; a deleted attachment is gone, so detached_at is always "")."""
    return {**summary_view(a), "attached_at": stamp(a.attached_at) or "", "detached_at": "",
            "attach_mode": a.attach_mode, "connection_info": a.connection_info}


def _since(request: Request, minor: int) -> None:
    if not at_least(request, minor):
        raise NotFound(f"API version {version_of(request)} is not supported on this method (it needs 3.{minor}).")


def router(svc: VolumeService) -> Router:
    r = Router()

    async def listing(request: Request, detail: bool) -> Response:
        _since(request, 27)
        authorize(request, "volume:attachment_get_all")
        params = request.query_params
        everyone = bool(params.get("all_tenants") and parse_bool("all_tenants", params["all_tenants"]))
        q = list_params(request, ATTACHMENT_SORT_KEYS)
        rows = await svc.attachments(caller(request), volume_id=params.get("volume_id"),
                                     instance_uuid=params.get("instance_id") or params.get("instance_uuid"),
                                     all_projects=everyone, status=params.get("status") or params.get("attach_status"),
                                     query=q, offset=offset_param(request))
        body: dict[str, Any] = {"attachments": [detail_view(a) if detail else summary_view(a) for a in rows]}
        more = next_link(str(request.url).split("?", 1)[0], params, q, rows, "attachments")
        if more:
            body["attachments_links"] = more
        return JSON(body)

    @route(r, "GET", "/attachments")
    async def list_attachments(request: Request) -> Response:
        return await listing(request, False)

    @route(r, "GET", "/attachments/detail")
    async def list_attachments_detail(request: Request) -> Response:
        return await listing(request, True)

    @route(r, "POST", "/attachments")
    async def create_attachment(request: Request) -> Response:
        """Reserve (no connector) or reserve and connect at once; 200 with the attachment."""
        _since(request, 27)
        body = (await json_body(request))["attachment"]
        if "mode" in body and not at_least(request, 54):
            raise BadRequest("Invalid input received: 'mode' needs microversion 3.54 or later.")
        who = caller(request)
        vol = await svc.volume(body["volume_uuid"], who)
        authorize(request, "volume:attachment_create", {"project_id": vol.project_id})
        att = await svc.attachment_create(who, vol.id, body.get("instance_uuid"), body.get("connector"),
                                          body.get("mode") or "rw")
        return JSON({"attachment": detail_view(att)})

    async def owned(request: Request, rule: str) -> AttachmentInfo:
        att = await svc.attachment(request.path_params["attachment_id"], caller(request))
        authorize(request, rule, {"project_id": att.project_id})
        return att

    @route(r, "GET", "/attachments/{attachment_id}")
    async def show_attachment(request: Request) -> Response:
        _since(request, 27)
        return JSON({"attachment": detail_view(await owned(request, "volume:attachment_get"))})

    @route(r, "PUT", "/attachments/{attachment_id}")
    async def update_attachment(request: Request) -> Response:
        """The compute node's connector in, the connection info out."""
        _since(request, 27)
        att = await owned(request, "volume:attachment_update")
        connector = (await json_body(request))["attachment"]["connector"]
        return JSON({"attachment": detail_view(await svc.attachment_update(caller(request), att.id, connector))})

    @route(r, "DELETE", "/attachments/{attachment_id}")
    async def delete_attachment(request: Request) -> Response:
        """200 with the volume's attachments that are left (Cinder's answer)."""
        _since(request, 27)
        att = await owned(request, "volume:attachment_delete")
        who = caller(request)
        await svc.attachment_delete(who, att.id)
        left = await svc.attachments(who, volume_id=att.volume_id, all_projects=who.admin)
        return JSON({"attachments": [summary_view(a) for a in left]})

    @route(r, "POST", "/attachments/{attachment_id}/action")
    async def attachment_action(request: Request) -> Response:
        """os-complete (3.44): the compute node has connected the volume; 204."""
        _since(request, 44)
        await json_body(request)  # the schema admits only {"os-complete": null or {}}
        att = await owned(request, "volume:attachment_complete")
        await svc.attachment_complete(caller(request), att.id)
        return Response(status_code=204)

    return r
