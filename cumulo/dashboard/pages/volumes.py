"""Volumes, their snapshots and their backups: Block Storage v3 as a project's member sees it.

Each list is one call (``/volumes/detail``, ``/snapshots/detail``, ``/backups/detail`` with
``limit`` and ``marker``, newest first); each row is also a fragment
(``/project/volumes/{id}/row`` ...) that the page's script fetches when the event stream says
that volume, snapshot or backup changed.  The create form asks for the volume types and zones
(and the images and snapshots a volume can start from) only when it is opened.  Attaching is on
the instance's page; a volume's row links to the instance it is attached to.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.dashboard.app import Dashboard, view
from cumulo.dashboard.client import Api, ApiError
from cumulo.dashboard.pages.forms import PAGE_SIZES, beside, fields, form_refusal, one_page, paging
from cumulo.dashboard.session import Session

NAV = [("project", "Volumes", "Volumes", "/project/volumes"),
       ("project", "Volumes", "Snapshots", "/project/volumes/snapshots"),
       ("project", "Volumes", "Backups", "/project/volumes/backups")]
CREATE_FIELDS = ("name", "description", "size", "volume_type", "availability_zone", "source", "image_id",
                 "snapshot_id")
# words in Cinder's messages that point at a field of the create form
FIELD_WORDS = {"size": ("gigabytes", "quota", "size", "gib"), "volume_type": ("volume type", "volume_type"),
               "availability_zone": ("availability zone",), "image_id": ("image",), "snapshot_id": ("snapshot",)}
KINDS = {"volume": "volumes", "snapshot": "snapshots", "backup": "backups"}


async def listing(api: Api, kind: str, request: Request) -> tuple[list[Any], str, dict[str, Any]]:
    """One page of volumes, snapshots or backups of the project, newest first, and the next marker."""
    params = paging(request)
    plural = KINDS[kind]
    data = await api.get("block-storage", f"/{plural}/detail", limit=params["limit"] + 1, marker=params["marker"],
                         sort="created_at:desc")
    items, next_marker = one_page(data[plural], params["limit"])
    return items, next_marker, params


async def quietly(coro: Any, default: Any) -> Any:
    try:
        return await coro
    except ApiError:
        return default


async def create_choices(api: Api) -> dict[str, Any]:
    """What the create form offers: volume types, zones, active images, available snapshots."""
    types, zones, images, snapshots = await asyncio.gather(
        quietly(api.get("block-storage", "/types"), {"volume_types": []}),
        quietly(api.get("block-storage", "/os-availability-zone"), {"availabilityZoneInfo": []}),
        quietly(api.get("image", "/v2/images", status="active", limit=100, sort="name:asc"), {"images": []}),
        quietly(api.get("block-storage", "/snapshots/detail", status="available", limit=100), {"snapshots": []}))
    return {"types": types.get("volume_types", []),
            "zones": [z["zoneName"] for z in zones.get("availabilityZoneInfo", []) if z.get("zoneState", {}).get(
                "available", True)],
            "images": images.get("images", []), "snapshots": snapshots.get("snapshots", [])}


def create_body(form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The POST /volumes body from the form, or the form's own complaints (before asking the API)."""
    errors: dict[str, str] = {}
    try:
        size: int | None = int(form["size"]) if form["size"] else None
    except ValueError:
        size, errors["size"] = None, "The size is a whole number of GiB."
    body: dict[str, Any] = {"name": form["name"] or None, "description": form["description"] or None}
    if size is not None:
        body["size"] = size
    if form["volume_type"]:
        body["volume_type"] = form["volume_type"]
    if form["availability_zone"]:
        body["availability_zone"] = form["availability_zone"]
    if form["source"] == "image":
        if not form["image_id"]:
            errors["image_id"] = "Choose the image the volume starts from."
        body["imageRef"] = form["image_id"]
    elif form["source"] == "snapshot":
        if not form["snapshot_id"]:
            errors["snapshot_id"] = "Choose the snapshot the volume starts from."
        body["snapshot_id"] = form["snapshot_id"]
    if size is None and form["source"] != "snapshot" and "size" not in errors:
        errors["size"] = "Give the volume's size in GiB."
    return body, errors


def routes(d: Dashboard) -> list[Route]:
    async def fragment(request: Request, api: Api, kind: str, template: str) -> Response:
        """One row, or 404 when the resource is gone (the page's script removes the row)."""
        item_id = request.path_params["item_id"]
        data = await api.find("block-storage", f"/{KINDS[kind]}/{item_id}")
        if data is None:
            return Response(status_code=404)
        item = data[kind]
        return d.render(request, template, **{kind: item})

    # volumes
    async def volumes(request: Request, session: Session, api: Api) -> Response:
        items, next_marker, params = await listing(api, "volume", request)
        return d.render(request, "volumes_list.html", title="Volumes", volumes=items, next_marker=next_marker,
                        params=params, page_sizes=PAGE_SIZES)

    async def volume_row(request: Request, session: Session, api: Api) -> Response:
        return await fragment(request, api, "volume", "volumes_row.html")

    async def create_page(request: Request, session: Session, api: Api) -> Response:
        form = {k: request.query_params.get(k, "")[:64] for k in CREATE_FIELDS}
        form["source"] = form["source"] or ("snapshot" if form["snapshot_id"] else "image" if form["image_id"]
                                            else "empty")
        return d.render(request, "volumes_create.html", title="Create volume", form=form, errors={},
                        **await create_choices(api))

    async def create(request: Request, session: Session, api: Api) -> Response:
        form = await fields(request, *CREATE_FIELDS)
        body, errors = create_body(form)
        if not errors:
            try:
                r = await api.post("block-storage", "/volumes", {"volume": body})
                volume = r.data["volume"]
                words = f"Creating volume {volume.get('name') or volume['id']}."
                return d.redirect("/project/volumes", ("info", words))
            except ApiError as exc:
                if not form_refusal(exc):
                    raise
                errors = beside(exc.message, ("size", "volume_type", "availability_zone", "image_id", "snapshot_id",
                                              "name"), FIELD_WORDS)
        return d.render(request, "volumes_create.html", 400, title="Create volume", form=form, errors=errors,
                        **await create_choices(api))

    async def detail(request: Request, session: Session, api: Api, errors: dict[str, str] | None = None,
                     status: int = 200) -> Response:
        volume_id = request.path_params["item_id"]
        volume, snaps, backups = await asyncio.gather(
            api.get("block-storage", f"/volumes/{volume_id}"),
            api.get("block-storage", "/snapshots/detail", volume_id=volume_id, limit=50),
            api.get("block-storage", "/backups/detail", volume_id=volume_id, limit=50))
        return d.render(request, "volumes_detail.html", status, title=f"Volume {volume['volume']['name'] or volume_id}",
                        volume=volume["volume"], snapshots=snaps["snapshots"], backups=backups["backups"],
                        errors=errors or {})

    async def show(request: Request, session: Session, api: Api) -> Response:
        return await detail(request, session, api)

    async def volume_write(request: Request, session: Session, api: Api) -> Response:
        """edit, extend, snapshot, backup, delete: one form each on the volume's page."""
        volume_id, what = request.path_params["item_id"], request.path_params["what"]
        form = await fields(request, "name", "description", "new_size", "force", "incremental")
        here = f"/project/volumes/{volume_id}"
        try:
            if what == "edit":
                await api.put("block-storage", f"/volumes/{volume_id}", {"volume": {
                    "name": form["name"], "description": form["description"]}})
                return d.redirect(here, ("info", "Saved the volume's name and description."))
            if what == "extend":
                try:
                    new_size = int(form["new_size"])
                except ValueError:
                    return await detail(request, session, api, {"extend": "The new size is a whole number of GiB."},
                                        400)
                await api.post("block-storage", f"/volumes/{volume_id}/action", {"os-extend": {"new_size": new_size}})
                return d.redirect(here, ("info", f"Extending the volume to {new_size} GiB."))
            if what == "snapshot":
                r = await api.post("block-storage", "/snapshots", {"snapshot": {
                    "volume_id": volume_id, "name": form["name"] or None, "description": form["description"] or None,
                    "force": form["force"] == "on"}})
                snapshot = r.data["snapshot"]
                return d.redirect(here, ("info", f"Taking snapshot {snapshot.get('name') or snapshot['id']}."))
            if what == "backup":
                await api.post("block-storage", "/backups", {"backup": {
                    "volume_id": volume_id, "name": form["name"] or None, "description": form["description"] or None,
                    "incremental": form["incremental"] == "on", "force": form["force"] == "on"}})
                return d.redirect(here, ("info", "Backing the volume up."))
            if what == "delete":
                await api.delete("block-storage", f"/volumes/{volume_id}")
                return d.redirect("/project/volumes", ("info", "Deleting the volume."))
        except ApiError as exc:
            if not form_refusal(exc):
                raise
            return await detail(request, session, api, {what: exc.message}, 400)
        return Response("No such form.", status_code=404)

    # snapshots
    async def snapshots(request: Request, session: Session, api: Api) -> Response:
        items, next_marker, params = await listing(api, "snapshot", request)
        return d.render(request, "volumes_snapshots.html", title="Volume snapshots", snapshots=items,
                        next_marker=next_marker, params=params, page_sizes=PAGE_SIZES)

    async def snapshot_row(request: Request, session: Session, api: Api) -> Response:
        return await fragment(request, api, "snapshot", "volumes_snapshot_row.html")

    async def snapshot_delete(request: Request, session: Session, api: Api) -> Response:
        try:
            await api.delete("block-storage", f"/snapshots/{request.path_params['item_id']}")
        except ApiError as exc:
            if not form_refusal(exc):
                raise
            return d.redirect("/project/volumes/snapshots", ("error", exc.message))
        return d.redirect("/project/volumes/snapshots", ("info", "Deleting the snapshot."))

    # backups
    async def backups(request: Request, session: Session, api: Api) -> Response:
        items, next_marker, params = await listing(api, "backup", request)
        return d.render(request, "volumes_backups.html", title="Volume backups", backups=items,
                        next_marker=next_marker, params=params, page_sizes=PAGE_SIZES)

    async def backup_row(request: Request, session: Session, api: Api) -> Response:
        return await fragment(request, api, "backup", "volumes_backup_row.html")

    async def backup_write(request: Request, session: Session, api: Api) -> Response:
        backup_id, what = request.path_params["item_id"], request.path_params["what"]
        form = await fields(request, "volume_id", "name")
        back = "/project/volumes/backups"
        try:
            if what == "restore":
                body = {k: v for k, v in (("volume_id", form["volume_id"]), ("name", form["name"])) if v}
                r = await api.post("block-storage", f"/backups/{backup_id}/restore", {"restore": body})
                return d.redirect(back, ("info", f"Restoring into volume {r.data['restore']['volume_id']}."))
            if what == "delete":
                await api.delete("block-storage", f"/backups/{backup_id}")
                return d.redirect(back, ("info", "Deleting the backup."))
        except ApiError as exc:
            if not form_refusal(exc):
                raise
            return d.redirect(back, ("error", exc.message))
        return Response("No such form.", status_code=404)

    return [
        Route("/project/volumes", view(d, volumes), methods=["GET"]),
        Route("/project/volumes/create", view(d, create_page), methods=["GET"]),
        Route("/project/volumes/create", view(d, create), methods=["POST"]),
        Route("/project/volumes/snapshots", view(d, snapshots), methods=["GET"]),
        Route("/project/volumes/snapshots/{item_id}/row", view(d, snapshot_row), methods=["GET"]),
        Route("/project/volumes/snapshots/{item_id}/delete", view(d, snapshot_delete), methods=["POST"]),
        Route("/project/volumes/backups", view(d, backups), methods=["GET"]),
        Route("/project/volumes/backups/{item_id}/row", view(d, backup_row), methods=["GET"]),
        Route("/project/volumes/backups/{item_id}/{what:str}", view(d, backup_write), methods=["POST"]),
        Route("/project/volumes/{item_id}", view(d, show), methods=["GET"]),
        Route("/project/volumes/{item_id}/row", view(d, volume_row), methods=["GET"]),
        Route("/project/volumes/{item_id}/{what:str}", view(d, volume_write), methods=["POST"]),
    ]
