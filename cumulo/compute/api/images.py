"""/v2.1/images: Nova's proxy to the image service (removed at microversion 2.36), which older
clients and tempest still use to follow snapshots: list, detail, show, delete; and the image's
metadata (its properties: read, add, replace, set and delete one; removed at 2.39)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.common import at_least
from cumulo.compute.api.servers import parse_time
from cumulo.compute.service import ComputeService
from cumulo.core.http.app import JSON, Router, auth_of, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, Forbidden, NotFound
from cumulo.image.service import Caller, ImageInfo, ImageService

STATUS = {"active": "ACTIVE", "queued": "SAVING", "saving": "SAVING", "uploading": "SAVING", "importing": "SAVING",
          "killed": "ERROR", "deactivated": "ERROR", "deleted": "DELETED", "pending_delete": "DELETED"}
PROGRESS = {"queued": 25, "uploading": 25, "saving": 50, "importing": 50, "active": 100}


def router(images: ImageService, compute: ComputeService | None = None) -> Router:
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
        # Nova's filters: server and type are the instance_uuid and image_type properties, property-X
        # any property; minRam/minDisk lower bounds; changes-since the last update
        wanted = {k.removeprefix("property-"): v for k, v in q.items() if k.startswith("property-")}
        if "server" in q:
            wanted["instance_uuid"] = q["server"].rsplit("/", 1)[-1]
        if "type" in q:
            wanted["image_type"] = q["type"]
        rows = [i for i in rows if all(str((i.properties or {}).get(k)) == v for k, v in wanted.items())]
        for key, attr in (("minRam", "min_ram"), ("minDisk", "min_disk")):
            if key in q:
                if not q[key].isdigit():
                    raise BadRequest(f"Invalid {key} filter [{q[key]}]")
                rows = [i for i in rows if (getattr(i, attr) or 0) >= int(q[key])]
        if "changes-since" in q:
            since = parse_time("changes-since", q["changes-since"])
            rows = [i for i in rows if i.updated_at >= since]
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

    @r.delete("/v2.1/images/")
    async def delete_no_image(request: Request) -> Response:
        gone(request)
        authorize(request, "compute:images:delete", {"project_id": auth_of(request).project_id})
        raise NotFound("Image not found.")  # as Nova: a blank id names no image

    @r.route("/v2.1/images/{image_id}", ["GET", "DELETE"])
    async def image(request: Request) -> Response:
        row = await one(request, "compute:images:delete" if request.method == "DELETE" else "compute:images:show")
        if request.method == "DELETE":
            await images.delete_image(row.id, Caller.of(auth_of(request)))
            return Response(status_code=204)
        return JSON({"image": view(request, row, True)})

    # -- metadata (until 2.38): the image's own properties ------------------------------------
    def meta_gone(request: Request) -> None:
        if at_least(request, 39):
            raise NotFound("The image-metadata proxy API was removed in microversion 2.39: use the Image API.")

    async def owned(request: Request, rule: str) -> ImageInfo:
        meta_gone(request)
        try:
            row = await images.image_info(request.path_params["image_id"], Caller.of(auth_of(request)))
        except NotFound:
            raise NotFound("Image not found.") from None
        authorize(request, rule, {"project_id": row.owner, "owner": row.owner, "visibility": row.visibility,
                                  "member_id": auth_of(request).project_id})
        return row

    def items(body: Any, key: str) -> dict[str, str]:
        data = body.get(key) if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise BadRequest(f"Malformed request body: it needs a '{key}' object.")
        for name, value in data.items():
            if not 0 < len(name) <= 255 or not isinstance(value, str) or len(value) > 255:
                raise BadRequest(f"Invalid metadata item {name[:40]!r}: keys and values are strings of 1-255 "
                                 "characters.")
        return data

    async def save(request: Request, row: ImageInfo, props: dict[str, str], removed: set[str] | None = None,
                   replace: bool = False) -> dict[str, str]:
        kept = set() if replace else set(row.properties or {}) - (removed or set())
        limit = await compute.quota(auth_of(request).project_id, "metadata_items") if compute else None
        if limit is not None and len(kept | set(props)) > limit:
            raise Forbidden(f"Quota exceeded for metadata_items: the limit is {limit}.")
        saved = await images.set_image_properties(row.id, Caller.of(auth_of(request)), props, removed, replace)
        return {k: str(v) for k, v in (saved.properties or {}).items()}

    @r.route("/v2.1/images/{image_id}/metadata", ["GET", "POST", "PUT"])
    async def metadata(request: Request) -> Response:
        if request.method in ("GET", "HEAD"):
            row = await owned(request, "compute:images:show")
            return JSON({"metadata": {k: str(v) for k, v in (row.properties or {}).items()}})
        row = await owned(request, "compute:images:update")
        props = items(await json_body(request), "metadata")
        return JSON({"metadata": await save(request, row, props, replace=request.method == "PUT")})

    @r.route("/v2.1/images/{image_id}/metadata/{key}", ["GET", "PUT", "DELETE"])
    async def metadata_item(request: Request) -> Response:
        key = request.path_params["key"]
        if request.method in ("GET", "HEAD"):
            row = await owned(request, "compute:images:show")
            if key not in (row.properties or {}):
                raise NotFound(f"Image metadata item {key} not found.")
            return JSON({"meta": {key: str(row.properties[key])}})
        row = await owned(request, "compute:images:update")
        if request.method == "DELETE":
            if key not in (row.properties or {}):
                raise NotFound(f"Image metadata item {key} not found.")
            await save(request, row, {}, {key})
            return Response(status_code=204)
        meta = items(await json_body(request), "meta")
        if key not in meta:
            raise BadRequest("Request body and URI mismatch")
        if len(meta) > 1:
            raise BadRequest("Request body contains too many items")
        await save(request, row, meta)
        return JSON({"meta": meta})

    return r
