"""/v2.1/images: Nova's proxy to the image service (removed at microversion 2.36), which older
clients and tempest still use to follow snapshots: list, detail, show, delete and metadata."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.common import at_least
from cumulo.core.http.app import JSON, Router, auth_of
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import NotFound
from cumulo.image.service import Caller, ImageInfo, ImageService

STATUS = {"active": "ACTIVE", "queued": "SAVING", "saving": "SAVING", "uploading": "SAVING", "importing": "SAVING",
          "killed": "ERROR", "deactivated": "ERROR", "deleted": "DELETED", "pending_delete": "DELETED"}
PROGRESS = {"queued": 25, "uploading": 25, "saving": 50, "importing": 50, "active": 100}


def router(images: ImageService) -> Router:
    r = Router()

    def gone(request: Request) -> None:
        if at_least(request, 36):
            raise NotFound("The image proxy API was removed in microversion 2.36: use the Image API.")

    def view(request: Request, image: ImageInfo, detail: bool) -> dict[str, Any]:
        base = f"{request.url.scheme}://{request.url.netloc}/v2.1"
        out: dict[str, Any] = {"id": image.id, "name": image.name, "links": [
            {"rel": "self", "href": f"{base}/images/{image.id}"},
            {"rel": "bookmark", "href": f"{base}/images/{image.id}"},
            {"rel": "alternate", "type": "application/vnd.openstack.image", "href": f"/images/{image.id}"}]}
        if not detail:
            return out
        props = {k: str(v) for k, v in (image.properties or {}).items()}
        out.update({"status": STATUS.get(image.status, "UNKNOWN"), "progress": PROGRESS.get(image.status, 0),
                    "minDisk": image.min_disk or 0, "minRam": image.min_ram or 0, "metadata": props,
                    "created": image.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "updated": image.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "OS-EXT-IMG-SIZE:size": image.size or 0})
        if props.get("instance_uuid"):
            out["server"] = {"id": props["instance_uuid"], "links": [
                {"rel": "self", "href": f"{base}/servers/{props['instance_uuid']}"},
                {"rel": "bookmark", "href": f"{base}/servers/{props['instance_uuid']}"}]}
        return out

    async def listing(request: Request, detail: bool) -> Response:
        gone(request)
        authorize(request, "compute:images:index")
        q = request.query_params
        rows = await images.image_infos(Caller.of(auth_of(request)), {"name": q.get("name")})
        if "status" in q:
            rows = [i for i in rows if STATUS.get(i.status) == q["status"].upper()]
        if "server" in q:
            rows = [i for i in rows if (i.properties or {}).get("instance_uuid") == q["server"].rsplit("/", 1)[-1]]
        if "marker" in q:
            ids = [i.id for i in rows]
            rows = rows[ids.index(q["marker"]) + 1:] if q["marker"] in ids else []
        if q.get("limit", "").isdigit():
            rows = rows[:int(q["limit"])]
        return JSON({"images": [view(request, i, detail) for i in rows]})

    @r.get("/v2.1/images")
    async def list_images(request: Request) -> Response:
        return await listing(request, False)

    @r.get("/v2.1/images/detail")
    async def list_detail(request: Request) -> Response:
        return await listing(request, True)

    async def one(request: Request, rule: str) -> ImageInfo:
        gone(request)
        try:
            row = await images.image_info(request.path_params["image_id"], Caller.of(auth_of(request)))
        except NotFound:
            raise NotFound("Image not found.") from None
        authorize(request, rule, {"project_id": row.owner, "owner": row.owner, "visibility": row.visibility,
                                  "member_id": auth_of(request).project_id})
        return row

    @r.route("/v2.1/images/{image_id}", ["GET", "DELETE"])
    async def image(request: Request) -> Response:
        row = await one(request, "compute:images:delete" if request.method == "DELETE" else "compute:images:show")
        if request.method == "DELETE":
            await images.delete_image(row.id, Caller.of(auth_of(request)))
            return Response(status_code=204)
        return JSON({"image": view(request, row, True)})

    @r.get("/v2.1/images/{image_id}/metadata")
    async def metadata(request: Request) -> Response:
        row = await one(request, "compute:images:show")
        return JSON({"metadata": {k: str(v) for k, v in (row.properties or {}).items()}})

    @r.get("/v2.1/images/{image_id}/metadata/{key}")
    async def metadata_item(request: Request) -> Response:
        row = await one(request, "compute:images:show")
        key = request.path_params["key"]
        if key not in (row.properties or {}):
            raise NotFound(f"Image metadata item {key} not found.")
        return JSON({"meta": {key: str(row.properties[key])}})

    return r
