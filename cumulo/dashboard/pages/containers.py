"""Object containers: the project's Swift account as its members see it: containers, a
container's objects in folders (``prefix`` and ``delimiter=/``), upload, download, delete, and
the public toggle (a read ACL of ``.r:*,.rlistings``) with the container's public URL.

Each page is one call: the account's listing, or the container's listing (whose answer carries
the container's read ACL too), both paged by ``limit`` and ``marker``.  Uploads and downloads
pass through the dashboard as streams with the user's token (``forms.upload``/``forms.download``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cumulo.dashboard.app import Dashboard, view
from cumulo.dashboard.client import Api, ApiError
from cumulo.dashboard.pages.forms import (
    PAGE_SIZES,
    account,
    download,
    fields,
    form_refusal,
    one_page,
    paging,
    upload,
)
from cumulo.dashboard.session import Session

NAV = [("project", "Object Store", "Containers", "/project/containers")]
PUBLIC_READ = ".r:*,.rlistings"


def c_path(container: str, name: str = "") -> str:
    """The Swift path of a container (and an object in it), each part quoted."""
    return "/" + quote(container, safe="") + ("/" + quote(name, safe="/") if name else "")


def is_public(acl: str) -> bool:
    return any(part.strip().startswith(".r:") and not part.strip().startswith(".r:-") for part in acl.split(","))


def parents(prefix: str) -> list[tuple[str, str]]:
    """The folders above ``prefix`` as (label, prefix) pairs, for the breadcrumb."""
    out, acc = [], ""
    for part in [p for p in prefix.split("/") if p]:
        acc += part + "/"
        out.append((part, acc))
    return out


def on_account(fn: Any) -> Any:
    async def wrapped(request: Request, session: Session, api: Api) -> Response:
        return await fn(request, session, account(api, session))
    return wrapped


def routes(d: Dashboard) -> list[Route]:
    async def containers(request: Request, session: Session, api: Api, errors: dict[str, str] | None = None,
                         form: dict[str, str] | None = None, status: int = 200) -> Response:
        params = paging(request)
        data = await api.get("object-store", "", format="json", limit=params["limit"] + 1, marker=params["marker"])
        items, next_marker = one_page(data or [], params["limit"], "name")
        return d.render(request, "containers_list.html", status, title="Containers", containers=items,
                        params=params, next_marker=next_marker, page_sizes=PAGE_SIZES, errors=errors or {},
                        form=form or {})

    async def index(request: Request, session: Session, api: Api) -> Response:
        return await containers(request, session, api)

    async def create(request: Request, session: Session, api: Api) -> Response:
        form = await fields(request, "name", "public")
        name = form["name"]
        if not name or "/" in name:
            return await containers(request, session, api, {"name": "A container's name is not empty and has no /."},
                                    form, 400)
        headers = {"X-Container-Read": PUBLIC_READ} if form["public"] == "on" else {}
        try:
            await api.put("object-store", c_path(name), headers=headers)
        except ApiError as exc:
            if not form_refusal(exc):
                raise
            return await containers(request, session, api, {"name": exc.message}, form, 400)
        return d.redirect(f"/project/containers/{quote(name, safe='')}", ("info", f"Created container {name}."))

    async def browse(request: Request, session: Session, api: Api) -> Response:
        container = request.path_params["container"]
        params = paging(request)
        prefix = request.query_params.get("prefix", "")[:1024]
        r = await api.call("GET", "object-store", c_path(container), params={
            "format": "json", "limit": params["limit"] + 1, "marker": params["marker"], "prefix": prefix,
            "delimiter": "/"})
        entries = [dict(e, name=e.get("name") or e.get("subdir", "")) for e in (r.data or [])]
        items, next_marker = one_page(entries, params["limit"], "name")
        acl = r.headers.get("x-container-read", "")
        base = await api.catalog.url("object-store", api.token)
        return d.render(request, "containers_browse.html", title=f"Container {container}", container=container,
                        entries=items, params=params, next_marker=next_marker, prefix=prefix, parents=parents(prefix),
                        public=is_public(acl), public_url=base + c_path(container),
                        count=r.headers.get("x-container-object-count", ""),
                        bytes=r.headers.get("x-container-bytes-used", ""))

    async def write(request: Request, session: Session, api: Api) -> Response:
        """public (on/off), delete the container, delete an object: the container page's forms."""
        container, what = request.path_params["container"], request.path_params["what"]
        form = await fields(request, "public", "name", "prefix", limit=1024)
        here = f"/project/containers/{quote(container, safe='')}"
        back = here + (f"?prefix={quote(form['prefix'])}" if form["prefix"] else "")
        try:
            if what == "public":
                acl = PUBLIC_READ if form["public"] == "on" else ""
                # Swift removes a metadata header sent empty
                await api.post("object-store", c_path(container), headers={"X-Container-Read": acl})
                return d.redirect(here, ("info", f"Container {container} is {'public' if acl else 'private'} now."))
            if what == "delete":
                await api.delete("object-store", c_path(container))
                return d.redirect("/project/containers", ("info", f"Deleted container {container}."))
            if what == "delete-object":
                await api.delete("object-store", c_path(container, form["name"]))
                return d.redirect(back, ("info", f"Deleted {form['name']}."))
        except ApiError as exc:
            if not form_refusal(exc):
                raise
            words = exc.message
            if what == "delete" and exc.status == 409:
                words = f"{exc.message} (a container is deleted once it holds no objects)"
            return d.redirect(back, ("error", words))
        return Response("No such form.", status_code=404)

    async def send_object(request: Request, session: Session, api: Api) -> Response:
        """The browser's file (the request's body) streamed into the container as object ``name``."""
        container = request.path_params["container"]
        name = request.query_params.get("name", "")
        if not name or len(name) > 1024:
            return JSONResponse({"error": "Give the object's name (at most 1024 characters)."}, status_code=400)
        headers: dict[str, Any] = {"Content-Type": request.headers.get("content-type") or "application/octet-stream"}
        try:
            r = await upload(api, "PUT", "object-store", c_path(container, name), request, headers=headers)
        except ApiError as exc:
            return JSONResponse({"error": exc.message, "request_id": exc.request_id},
                                status_code=400 if form_refusal(exc) else exc.status)
        prefix = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
        done = f"/project/containers/{quote(container, safe='')}" + (f"?prefix={quote(prefix)}" if prefix else "")
        return JSONResponse({"done": done, "etag": r.headers.get("etag", "")}, status_code=201)

    async def get_object(request: Request, session: Session, api: Api) -> Response:
        container, name = request.path_params["container"], request.path_params["name"]
        return await download(api, "object-store", c_path(container, name), name.rsplit("/", 1)[-1])

    return [
        Route("/project/containers", view(d, on_account(index)), methods=["GET"]),
        Route("/project/containers/create", view(d, on_account(create)), methods=["POST"]),
        Route("/project/containers/{container}", view(d, on_account(browse)), methods=["GET"]),
        Route("/project/containers/{container}/upload", view(d, on_account(send_object)), methods=["POST"]),
        Route("/project/containers/{container}/object/{name:path}", view(d, on_account(get_object)), methods=["GET"]),
        Route("/project/containers/{container}/{what:str}", view(d, on_account(write)), methods=["POST"]),
    ]
