"""Images: Glance v2 as a project sees it: the list, an image's page, create and upload with a
progress bar, edit, share with other projects (image members), delete.

The list is one call (``GET /v2/images`` with ``limit`` and ``marker``, newest first).  Creating
is two steps, as with Glance itself: the form's fields make the image record (``POST
/v2/images``), then the browser sends the file to ``/project/images/{id}/upload``, which hands
the request's body to ``PUT /v2/images/{id}/file`` as it arrives (never held whole), while
``static/images.js`` draws the upload's progress from the browser's own upload events.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cumulo.dashboard.app import Dashboard, view
from cumulo.dashboard.client import Api, ApiError
from cumulo.dashboard.pages.forms import PAGE_SIZES, beside, fields, form_refusal, one_page, paging, upload
from cumulo.dashboard.session import Session

NAV = [("project", "Images", "Images", "/project/images")]
DISK_FORMATS = ("qcow2", "raw", "vmdk", "vdi", "vhd", "vhdx", "iso", "ploop", "aki", "ari", "ami")
CONTAINER_FORMATS = ("bare", "ovf", "ova", "aki", "ari", "ami", "docker", "compressed")
VISIBILITIES = ("private", "shared", "community", "public")
CREATE_FIELDS = ("name", "disk_format", "container_format", "visibility", "min_disk", "min_ram")
EDIT_FIELDS = ("name", "visibility", "min_disk", "min_ram", "protected")
PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}


def wants_json(request: Request) -> bool:
    return request.headers.get("x-requested-with") == "cumulo"


def image_body(form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """POST /v2/images's body from the form, or the form's own complaints."""
    errors: dict[str, str] = {}
    body: dict[str, Any] = {"name": form["name"] or None}
    for key in ("disk_format", "container_format", "visibility"):  # Glance names what it refuses
        if form.get(key):
            body[key] = form[key]
    for key in ("min_disk", "min_ram"):
        if form.get(key):
            try:
                body[key] = int(form[key])
            except ValueError:
                errors[key] = "A whole number."
    return body, errors


def routes(d: Dashboard) -> list[Route]:
    async def index(request: Request, session: Session, api: Api) -> Response:
        params = paging(request)
        visibility = request.query_params.get("visibility", "")
        params["visibility"] = visibility if visibility in VISIBILITIES else ""
        data = await api.get("image", "/v2/images", limit=params["limit"] + 1, marker=params["marker"],
                             visibility=params["visibility"], sort_key="created_at", sort_dir="desc")
        images, next_marker = one_page(data["images"], params["limit"])
        return d.render(request, "images_list.html", title="Images", images=images, next_marker=next_marker,
                        params=params, page_sizes=PAGE_SIZES, visibilities=VISIBILITIES)

    async def row(request: Request, session: Session, api: Api) -> Response:
        image = await api.find("image", f"/v2/images/{request.path_params['image_id']}")
        if image is None:
            return Response(status_code=404)
        return d.render(request, "images_row.html", image=image)

    def create_form(request: Request, form: dict[str, str], errors: dict[str, str], status: int = 200) -> Response:
        if wants_json(request) and status >= 400:
            return JSONResponse({"errors": errors}, status_code=status)
        return d.render(request, "images_create.html", status, title="Create image", form=form, errors=errors,
                        disk_formats=DISK_FORMATS, container_formats=CONTAINER_FORMATS, visibilities=VISIBILITIES)

    async def create_page(request: Request, session: Session, api: Api) -> Response:
        return create_form(request, {"disk_format": "qcow2", "container_format": "bare", "visibility": "private"}, {})

    async def create(request: Request, session: Session, api: Api) -> Response:
        form = await fields(request, *CREATE_FIELDS)
        body, errors = image_body(form)
        if errors:
            return create_form(request, form, errors, 400)
        try:
            image = (await api.post("image", "/v2/images", body)).data
        except ApiError as exc:
            if not form_refusal(exc):
                if wants_json(request):
                    return JSONResponse({"errors": {"form": exc.message}}, status_code=exc.status)
                raise
            return create_form(request, form, beside(exc.message, CREATE_FIELDS), 400)
        here = f"/project/images/{image['id']}"
        if wants_json(request):  # the page's script sends the file next
            return JSONResponse({"id": image["id"], "upload": f"{here}/upload", "done": here}, status_code=201)
        return d.redirect(here, ("info", f"Created image {image.get('name') or image['id']}: upload its data."))

    async def send_file(request: Request, session: Session, api: Api) -> Response:
        """The browser's file, streamed on to Glance; answers JSON for the page's script."""
        image_id = request.path_params["image_id"]
        try:
            await upload(api, "PUT", "image", f"/v2/images/{image_id}/file", request,
                         headers={"Content-Type": "application/octet-stream"})
        except ApiError as exc:
            return JSONResponse({"error": exc.message, "request_id": exc.request_id},
                                status_code=400 if form_refusal(exc) else exc.status)
        return JSONResponse({"done": f"/project/images/{image_id}"}, status_code=200)

    async def detail(request: Request, session: Session, api: Api, errors: dict[str, str] | None = None,
                     status: int = 200) -> Response:
        image_id = request.path_params["image_id"]
        image = await api.get("image", f"/v2/images/{image_id}")
        members: list[Any] = []
        if image.get("visibility") == "shared" and image.get("owner") == session.project_id:
            members = (await api.get("image", f"/v2/images/{image_id}/members")).get("members", [])
        own = image.get("owner") == session.project_id
        return d.render(request, "images_detail.html", status, title=f"Image {image.get('name') or image_id}",
                        image=image, members=members, errors=errors or {}, own=own, visibilities=VISIBILITIES)

    async def show(request: Request, session: Session, api: Api) -> Response:
        return await detail(request, session, api)

    async def write(request: Request, session: Session, api: Api) -> Response:
        """edit, share (add a member), unshare (remove one), delete: the forms of an image's page."""
        image_id, what = request.path_params["image_id"], request.path_params["what"]
        form = await fields(request, *EDIT_FIELDS, "member")
        here = f"/project/images/{image_id}"
        try:
            if what == "edit":
                ops: list[dict[str, Any]] = []
                for key in ("name", "visibility"):
                    if form[key]:
                        ops.append({"op": "replace", "path": f"/{key}", "value": form[key]})
                for key in ("min_disk", "min_ram"):
                    if form[key]:
                        try:
                            ops.append({"op": "replace", "path": f"/{key}", "value": int(form[key])})
                        except ValueError:
                            return await detail(request, session, api, {"edit": f"{key}: a whole number."}, 400)
                ops.append({"op": "replace", "path": "/protected", "value": form["protected"] == "on"})
                await api.call("PATCH", "image", f"/v2/images/{image_id}", json=ops, headers=PATCH)
                return d.redirect(here, ("info", "Saved the image."))
            if what == "share":
                if not form["member"]:
                    return await detail(request, session, api, {"share": "Give the project's id."}, 400)
                await api.post("image", f"/v2/images/{image_id}/members", {"member": form["member"]})
                return d.redirect(here, ("info", f"Shared with project {form['member']}."))
            if what == "unshare":
                await api.delete("image", f"/v2/images/{image_id}/members/{form['member']}")
                return d.redirect(here, ("info", f"No longer shared with project {form['member']}."))
            if what == "delete":
                await api.delete("image", f"/v2/images/{image_id}")
                return d.redirect("/project/images", ("info", "Deleted the image."))
        except ApiError as exc:
            if not form_refusal(exc):
                raise
            return await detail(request, session, api, {what: exc.message}, 400)
        return Response("No such form.", status_code=404)

    return [
        Route("/project/images", view(d, index), methods=["GET"]),
        Route("/project/images/create", view(d, create_page), methods=["GET"]),
        Route("/project/images/create", view(d, create), methods=["POST"]),
        Route("/project/images/{image_id}", view(d, show), methods=["GET"]),
        Route("/project/images/{image_id}/row", view(d, row), methods=["GET"]),
        Route("/project/images/{image_id}/upload", view(d, send_file), methods=["POST"]),
        Route("/project/images/{image_id}/{what:str}", view(d, write), methods=["POST"]),
    ]

