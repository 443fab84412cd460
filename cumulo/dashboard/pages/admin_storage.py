"""Admin storage pages: the images of every project (delete), the volumes of every project (reset
status, force delete, delete), and volume types (create, extra specs, delete).

Glance lists every image to an admin; Cinder lists every project's volumes with ``all_tenants=1``.
Both lists are paged by the services (limit and marker) and show each owner's project name (one
call to identity).  Volume types carry their extra specs in the list, so the types page is one call.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.dashboard.app import Dashboard, view
from cumulo.dashboard.client import Api
from cumulo.dashboard.pages.admin import (
    Field,
    act,
    cut,
    form_of,
    form_page,
    gather,
    key_values,
    marker,
    page_size,
    project_names,
    query_of,
    quietly,
    seg,
)
from cumulo.dashboard.session import Session

NAV = [("admin", "Storage", "Images", "/admin/images"),
       ("admin", "Storage", "Volumes", "/admin/volumes"),
       ("admin", "Storage", "Volume types", "/admin/volume-types")]

# what an admin does to any project's volume: name -> (body of POST /volumes/{id}/action, words)
VOLUME_ACTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "reset_to_available": ({"os-reset_status": {"status": "available"}}, "Set the volume's status to available."),
    "reset_to_error": ({"os-reset_status": {"status": "error"}}, "Set the volume's status to error."),
    "force_delete": ({"os-force_delete": None}, "Force-deleting the volume."),
}

TYPE_FIELDS = [Field("name", "Name", required=True), Field("description", "Description"),
               Field("is_public", "Public", "checkbox"),
               Field("metadata", "Extra specs", "textarea", help="key=value, one a line (volume_backend_name=...).")]


def routes(d: Dashboard) -> list[Route]:
    async def images(request: Request, session: Session, api: Api) -> Response:
        limit = page_size(request)
        query = query_of(request, "owner", "visibility", "status")
        data, names = await gather(
            api.get("image", "/v2/images", limit=limit + 1, marker=marker(request), sort="created_at:desc", **query),
            project_names(api))
        rows, next_marker = cut(data["images"], limit)
        return d.render(request, "admin_images.html", title="Images of every project", images=rows, names=names,
                        query=query, limit=limit, marker=marker(request), next_marker=next_marker)

    async def volumes(request: Request, session: Session, api: Api) -> Response:
        limit = page_size(request)
        query = query_of(request, "project_id", "status", "name")
        data, names = await gather(
            api.get("block-storage", "/volumes/detail", all_tenants="1", limit=limit + 1, marker=marker(request),
                    sort="created_at:desc", **query),
            project_names(api))
        rows, next_marker = cut(data["volumes"], limit)
        return d.render(request, "admin_volumes.html", title="Volumes of every project", volumes=rows, names=names,
                        query=query, limit=limit, marker=marker(request), next_marker=next_marker,
                        actions=VOLUME_ACTIONS)

    async def volume_row(request: Request, session: Session, api: Api) -> Response:
        """One row, for the page's script when the event stream says the volume changed (404: gone)."""
        data = await api.find("block-storage", f"/volumes/{request.path_params['volume_id']}")
        if data is None:
            return Response(status_code=404)
        volume = data["volume"]
        owner = volume.get("os-vol-tenant-attr:tenant_id") or ""
        project = await quietly(api.get("identity", f"/projects/{owner}")) if owner else None
        return d.render(request, "admin_volume_row.html", v=volume, actions=VOLUME_ACTIONS,
                        pname=(project or {}).get("project", {}).get("name", owner))

    async def volume_action(request: Request, session: Session, api: Api) -> Response:
        volume_id = request.path_params["volume_id"]
        name = (await form_of(request)).get("action", "")
        if name == "delete":
            return await act(d, "/admin/volumes", api.delete("block-storage", f"/volumes/{volume_id}"),
                             "Deleting the volume.")
        if name not in VOLUME_ACTIONS:
            return d.redirect("/admin/volumes", ("error", f"There is no volume action {name[:40]!r}."))
        body, words = VOLUME_ACTIONS[name]
        return await act(d, "/admin/volumes", api.post("block-storage", f"/volumes/{volume_id}/action", body), words)

    async def image_delete(request: Request, session: Session, api: Api) -> Response:
        image_id = request.path_params["image_id"]
        return await act(d, "/admin/images", api.delete("image", f"/v2/images/{image_id}"), "Deleted the image.")

    async def types(request: Request, session: Session, api: Api) -> Response:
        data = await api.get("block-storage", "/types", is_public="none")
        return d.render(request, "admin_volume_types.html", title="Volume types", types=data["volume_types"])

    async def type_create(request: Request, session: Session, api: Api) -> Response:
        async def submit(values: dict[str, Any]) -> Response:
            specs = key_values(values["metadata"])
            body: dict[str, Any] = {"name": values["name"], "os-volume-type-access:is_public": values["is_public"]}
            if values["description"]:
                body["description"] = values["description"]
            if specs:
                body["extra_specs"] = specs
            r = await api.post("block-storage", "/types", {"volume_type": body})
            name = r.data["volume_type"]["name"]
            return d.redirect("/admin/volume-types", ("info", f"Created the volume type {name}."))

        return await form_page(d, request, title="Create a volume type", fields=TYPE_FIELDS, submit=submit,
                               button="Create", back="/admin/volume-types", initial={"is_public": True})

    async def type_specs(request: Request, session: Session, api: Api) -> Response:
        type_id = request.path_params["type_id"]
        vtype = (await api.get("block-storage", f"/types/{type_id}"))["volume_type"]
        specs = vtype.get("extra_specs") or {}
        fields = [Field("metadata", "Extra specs", "textarea", help="key=value, one a line; a removed line "
                                                                    "removes its key.")]

        async def submit(values: dict[str, Any]) -> Response:
            wanted = key_values(values["metadata"])
            for key in specs:
                if key not in wanted:
                    await api.delete("block-storage", f"/types/{type_id}/extra_specs/{seg(key)}")
            change = {k: v for k, v in wanted.items() if specs.get(k) != v}
            if change:
                await api.post("block-storage", f"/types/{type_id}/extra_specs", {"extra_specs": change})
            return d.redirect("/admin/volume-types", ("info", f"Saved the extra specs of {vtype['name']}."))

        return await form_page(d, request, title=f"Volume type {vtype['name']}", fields=fields, submit=submit,
                               initial={"metadata": "\n".join(f"{k}={v}" for k, v in sorted(specs.items()))},
                               button="Save extra specs", back="/admin/volume-types", main="metadata")

    async def type_delete(request: Request, session: Session, api: Api) -> Response:
        type_id = request.path_params["type_id"]
        return await act(d, "/admin/volume-types", api.delete("block-storage", f"/types/{type_id}"),
                         "Deleted the volume type.")

    def admin(fn: Any) -> Any:
        return view(d, fn, panel="admin")

    return [Route("/admin/images", admin(images), methods=["GET"]),
            Route("/admin/images/{image_id}/delete", admin(image_delete), methods=["POST"]),
            Route("/admin/volumes", admin(volumes), methods=["GET"]),
            Route("/admin/volumes/{volume_id}/row", admin(volume_row), methods=["GET"]),
            Route("/admin/volumes/{volume_id}/action", admin(volume_action), methods=["POST"]),
            Route("/admin/volume-types", admin(types), methods=["GET"]),
            Route("/admin/volume-types/create", admin(type_create), methods=["GET", "POST"]),
            Route("/admin/volume-types/{type_id}", admin(type_specs), methods=["GET", "POST"]),
            Route("/admin/volume-types/{type_id}/delete", admin(type_delete), methods=["POST"])]
