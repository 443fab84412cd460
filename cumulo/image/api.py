"""The Image v2 API (Glance's twin): versions, images, data, import, tags, members, schemas, info.

Handlers parse and check the request, call ``ImageService``, and shape Glance's answers
(``self``/``file``/``schema`` links, properties at the top level, ``next`` paging links).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp

from cumulo.core import context
from cumulo.core.http.app import JSON, Router, auth_of, create_app, json_body, no_content
from cumulo.core.http.authz import ServicePolicy, authorize, verb
from cumulo.core.http.faults import (
    BadRequest,
    Conflict,
    Fault,
    Forbidden,
    NotFound,
    UnsupportedMediaType,
    ValidationError,
)
from cumulo.core.http.paging import parse_bool
from cumulo.identity.service import IdentityService
from cumulo.image import cache, metadefs, policies
from cumulo.image.models import Image, ImageMember, ImageTask
from cumulo.image.schemas import REQUEST_SCHEMAS, SCHEMAS
from cumulo.image.service import (
    CONTAINER_FORMATS,
    DISK_FORMATS,
    IMPORT_METHODS,
    SORT_KEYS,
    VISIBILITIES,
    Caller,
    ImageService,
    ImportRequest,
)

READ_ONLY = {"id", "status", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value", "created_at",
             "updated_at", "self", "file", "schema", "direct_url", "locations", "stores"}
CORE = {"name", "visibility", "protected", "os_hidden", "disk_format", "container_format", "min_disk", "min_ram",
        "tags", "owner"}
PATCH_TYPES = ("application/openstack-images-v2.1-json-patch", "application/openstack-images-v2.0-json-patch")
MAX_IDS = 10_000  # values of one id=in: filter
TASK_SORT_KEYS = {"id", "type", "status", "owner", "created_at", "updated_at"}
TASK_STATUSES = ("pending", "processing", "success", "failure")
VERSIONS = [("v2.16", "CURRENT")] + [(f"v2.{n}", "SUPPORTED") for n in range(15, -1, -1)]


def when(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def image_view(i: Image) -> dict[str, Any]:
    return {**(i.properties or {}), "id": i.id, "name": i.name, "status": i.status, "visibility": i.visibility,
            "protected": i.protected, "os_hidden": i.os_hidden, "checksum": i.checksum,
            "os_hash_algo": i.os_hash_algo, "os_hash_value": i.os_hash_value, "owner": i.owner, "size": i.size,
            "virtual_size": i.virtual_size, "min_ram": i.min_ram, "min_disk": i.min_disk,
            "disk_format": i.disk_format, "container_format": i.container_format, "created_at": when(i.created_at),
            "updated_at": when(i.updated_at), "tags": i.tags or [], "self": f"/v2/images/{i.id}",
            "file": f"/v2/images/{i.id}/file", "schema": "/v2/schemas/image",
            **({"stores": i.stores} if i.stores and i.status in ("active", "deactivated") else {})}


def member_view(m: ImageMember) -> dict[str, Any]:
    return {"image_id": m.image_id, "member_id": m.member_id, "status": m.status,
            "created_at": when(m.created_at), "updated_at": when(m.updated_at), "schema": "/v2/schemas/member"}


def task_view(t: ImageTask) -> dict[str, Any]:
    return {"id": t.id, "type": t.type, "status": t.status, "owner": t.owner, "input": t.input,
            "message": t.message, "image_id": t.image_id, "request_id": t.request_id, "user_id": t.user_id,
            "created_at": when(t.created_at), "updated_at": when(t.updated_at), "result": t.result,
            "expires_at": None, "self": f"/v2/tasks/{t.id}", "schema": "/v2/schemas/task"}


def task_stub(t: ImageTask) -> dict[str, Any]:
    """A task as GET /v2/tasks lists it (Glance's stub: no input, result or message)."""
    return {"id": t.id, "type": t.type, "status": t.status, "owner": t.owner, "created_at": when(t.created_at),
            "updated_at": when(t.updated_at), "self": f"/v2/tasks/{t.id}", "schema": "/v2/schemas/task"}


def import_request(body: Any, headers: Any) -> ImportRequest:
    """POST /v2/images/{id}/import's body (and X-Image-Meta-Store), checked as Glance checks it."""
    method = body.get("method") if isinstance(body, dict) else None
    if not isinstance(method, dict) or not isinstance(method.get("name"), str):
        raise BadRequest("The import request needs {\"method\": {\"name\": ...}}.")
    name = method["name"]
    if name not in IMPORT_METHODS:
        raise BadRequest(f"Import method {name!r} is not known: one of {', '.join(IMPORT_METHODS)}.")
    uri = method.get("uri")
    if name == "web-download" and (not isinstance(uri, str) or not uri):
        raise BadRequest("The web-download method needs {\"method\": {\"name\": \"web-download\", \"uri\": URL}}.")
    stores, all_stores = body.get("stores"), body.get("all_stores", False)
    header = headers.get("x-image-meta-store")
    if not isinstance(all_stores, bool):
        raise BadRequest("all_stores must be true or false.")
    must = body.get("all_stores_must_succeed", True)
    if not isinstance(must, bool):
        raise BadRequest("all_stores_must_succeed must be true or false.")
    if all_stores and (stores is not None or header):
        raise BadRequest("All_stores parameter can't be used with x-image-meta-store header or stores parameter")
    if stores is not None:
        if header:
            raise BadRequest("Stores parameter and x-image-meta-store header can't be both specified")
        if not isinstance(stores, list) or not stores or len(stores) > 64 or not all(
                isinstance(x, str) and 0 < len(x) <= 255 for x in stores):
            raise BadRequest("stores must be a non-empty list of store ids (GET /v2/info/stores).")
    elif header:
        stores = [header.strip()]
    return ImportRequest(name, uri if name == "web-download" else None, stores, all_stores, must)


# -- checks of image attributes ----------------------------------------------------------
def check_attribute(key: str, value: Any) -> Any:
    if key in READ_ONLY:
        raise Forbidden(f"Attribute '{key}' is read-only.")
    if key == "name":
        if value is not None and (not isinstance(value, str) or len(value) > 255):
            raise BadRequest("Invalid value for 'name': a string of at most 255 characters or null.")
    elif key == "visibility":
        if value not in VISIBILITIES:
            raise BadRequest(f"Invalid visibility value: {value}")
    elif key in ("protected", "os_hidden"):
        if not isinstance(value, bool):
            raise BadRequest(f"Invalid value for '{key}': true or false.")
    elif key == "disk_format":
        if value is not None and value not in DISK_FORMATS:
            raise BadRequest(f"Invalid disk format '{value}' for image: one of {', '.join(DISK_FORMATS)}.")
    elif key == "container_format":
        if value is not None and value not in CONTAINER_FORMATS:
            raise BadRequest(f"Invalid container format '{value}' for image: one of {', '.join(CONTAINER_FORMATS)}.")
    elif key in ("min_disk", "min_ram"):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31:
            raise BadRequest(f"Invalid value for '{key}': a non-negative integer.")
    elif key == "tags":
        if not isinstance(value, list) or not all(isinstance(t, str) and 0 < len(t) <= 255 for t in value):
            raise BadRequest("Invalid value for 'tags': a list of strings of 1 to 255 characters.")
        if len(value) > 128:
            raise BadRequest("An image may have at most 128 tags.")
        return list(dict.fromkeys(value))
    elif key == "owner":
        if value is not None and (not isinstance(value, str) or len(value) > 255):
            raise BadRequest("Invalid value for 'owner'.")
    else:  # an additional property: Glance keeps them as strings
        if key.startswith("os_glance"):
            raise Forbidden(f"Attribute '{key}' is reserved.")
        if not isinstance(value, str):
            raise BadRequest(f"Invalid value for property '{key}': additional properties must be strings.")
        if len(key) > 255 or len(value) > 65535:
            raise BadRequest(f"Property '{key}' is too long.")
    return value


def split(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    core = {k: check_attribute(k, v) for k, v in values.items() if k in CORE}
    props = {k: check_attribute(k, v) for k, v in values.items() if k not in CORE}
    return core, props


def apply_patch(image: Image, ops: Any) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
    """Glance's JSON patch: add/replace/remove on /name, /tags, /<property>."""
    if not isinstance(ops, list):
        raise BadRequest("A JSON patch must be a list of operations.")
    changes: dict[str, Any] = {}
    props: dict[str, Any] = {}
    removed: set[str] = set()
    current = dict(image.properties or {})
    for op in ops:
        if isinstance(op, dict) and "op" not in op:  # Glance's compact form: {"replace": "/name", ...}
            verbs = [v for v in ("add", "replace", "remove") if v in op]
            if len(verbs) == 1:
                op = {**op, "op": verbs[0], "path": op[verbs[0]]}
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove") or "path" not in op:
            raise BadRequest(f"Invalid JSON patch operation {op!r}: needs 'op' (add, replace or remove) and 'path'.")
        path = op["path"]
        if not isinstance(path, str) or not path.startswith("/") or path.count("/") != 1 or len(path) < 2:
            raise BadRequest(f"Invalid JSON pointer {path!r}: use /attribute.")
        key = path[1:].replace("~1", "/").replace("~0", "~")
        if op["op"] == "remove":
            if key.startswith("os_glance"):
                raise Forbidden(f"Attribute '{key}' is reserved.")
            if key in CORE or key in READ_ONLY:
                raise Forbidden(f"Attribute '{key}' cannot be removed.")
            if key not in current and key not in props:
                raise Conflict(f"Property {key} does not exist.")
            current.pop(key, None)
            props.pop(key, None)
            removed.add(key)
            continue
        if "value" not in op:
            raise BadRequest(f"The '{op['op']}' operation on {path} needs a 'value'.")
        value = check_attribute(key, op["value"])
        if key in CORE:
            changes[key] = value
        else:
            if op["op"] == "replace" and key not in current and key not in props:
                raise Conflict(f"Property {key} does not exist.")
            props[key] = value
            current[key] = value
            removed.discard(key)
    return changes, props, removed


def list_filters(q: Any) -> dict[str, Any]:
    f: dict[str, Any] = {"properties": {}}
    known = {"limit", "marker", "sort_key", "sort_dir", "sort", "member_status", "visibility", "tag", "size_min",
             "size_max", "os_hidden", "protected", "name", "status", "disk_format", "container_format", "owner",
             "size", "id", "created_at", "updated_at"}
    for key in ("name", "status", "disk_format", "container_format", "owner"):
        if key in q:
            f[key] = q[key]
    if "visibility" in q:
        if q["visibility"] not in (*VISIBILITIES, "all"):
            raise BadRequest(f"Invalid visibility value: {q['visibility']}")
        f["visibility"] = q["visibility"]
    if "member_status" in q:
        if q["member_status"] not in ("pending", "accepted", "rejected", "all"):
            raise BadRequest(f"Invalid member_status value: {q['member_status']}")
        f["member_status"] = q["member_status"]
    for key in ("size_min", "size_max", "size"):
        if key in q:
            try:
                f[key] = int(q[key])
            except ValueError:
                raise BadRequest(f"Invalid {key} value {q[key]!r}: an integer.") from None
    if "size" in f:
        f["size_min"] = f["size_max"] = f.pop("size")
    for key in ("os_hidden", "protected"):
        if key in q:
            f[key] = parse_bool(key, q[key])
    f["tags"] = q.getlist("tag")
    if "id" in q:  # id=X or id=in:X,Y,... (Glance's "in" operator)
        value = q["id"]
        ids = [i.strip() for i in value[3:].split(",")] if value.startswith("in:") else [value]
        if len(ids) > MAX_IDS:
            raise BadRequest(f"Too many ids in the id filter: at most {MAX_IDS}.")
        f["ids"] = ids
    for key, value in q.items():
        if key not in known:
            f["properties"][key] = value
    return f


def sort_and_limit(q: Any) -> tuple[list[tuple[str, str]], int]:
    """The sort keys and directions, and the page size, of a listing (400 for bad ones)."""
    keys: list[tuple[str, str]] = []
    if "sort" in q:
        for part in q["sort"].split(","):
            key, _, direction = part.strip().partition(":")
            keys.append((key, direction or "desc"))
    else:
        names, dirs = q.getlist("sort_key") or ["created_at"], q.getlist("sort_dir") or ["desc"]
        keys = [(k, dirs[i] if i < len(dirs) else dirs[-1]) for i, k in enumerate(names)]
    for key, direction in keys:
        if key not in SORT_KEYS:
            raise BadRequest(f"Invalid sort key: {key}. It should be one of {', '.join(sorted(SORT_KEYS))}.")
        if direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort direction: {direction}")
    try:
        limit = min(int(q.get("limit", 25)), 1000)
    except ValueError:
        raise BadRequest(f"Invalid limit {q['limit']!r}: an integer.") from None
    if limit < 0:
        raise BadRequest("limit must be zero or positive.")
    return keys, limit


def parse_range(header: str, size: int) -> tuple[int, int]:
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        raise BadRequest(f"Invalid Range header {header!r}")
    if m.group(1):
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else size - 1
    else:
        start, end = max(0, size - int(m.group(2))), size - 1
    if start >= size or start > end:
        raise Fault(f"Requested range {header} is not satisfiable for {size} bytes.", code=416,
                    headers={"Content-Range": f"bytes */{size}"})
    return start, min(end, size - 1)


def router(svc: ImageService) -> Router:
    r = Router()

    def who(request: Request) -> Caller:
        return Caller.of(auth_of(request))

    def image_target(image: Image, caller: Caller) -> dict[str, Any]:
        """What Glance's rules read of an image; ``member_id`` is the caller's project when the image
        reaches it as another project's (shared with it, public or community)."""
        return {"project_id": image.owner, "owner": image.owner, "visibility": image.visibility,
                "member_id": caller.project_id if image.owner != caller.project_id else None}

    async def image_for(request: Request, rule: str) -> tuple[Image, Caller]:
        """The image (a 404 when the caller cannot see it), once ``rule`` allows the caller on it."""
        caller = who(request)
        image = await svc.get(request.path_params["image_id"], caller)
        authorize(request, rule, image_target(image, caller))
        return image, caller

    # -- versions ---------------------------------------------------------------------------
    def versions(request: Request) -> list[dict[str, Any]]:
        base = f"{request.url.scheme}://{request.url.netloc}/v2/"
        return [{"id": vid, "status": status, "links": [{"rel": "self", "href": base}]} for vid, status in VERSIONS]

    @r.get("/", auth=False)
    async def root(request: Request) -> Response:
        return JSON({"versions": versions(request)}, status_code=300)

    @r.get("/versions", auth=False)
    async def list_versions(request: Request) -> Response:
        return JSON({"versions": versions(request)})

    # -- images -----------------------------------------------------------------------------
    @r.post("/v2/images")
    async def create(request: Request) -> Response:
        caller = who(request)
        body = await json_body(request)
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object of image attributes.")
        owner = body.get("owner") or caller.project_id
        authorize(request, "add_image", {"project_id": owner, "owner": owner,
                                         "visibility": body.get("visibility", "shared")})
        values = dict(body)
        image_id = values.pop("id", None)
        if image_id is not None:
            if not isinstance(image_id, str) or not re.fullmatch(
                    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}", image_id):
                raise BadRequest(f"Invalid image id {image_id!r}: a UUID.")
        for key in ("locations", "location"):
            if key in values:
                raise Forbidden(f"Attribute '{key}' is reserved.")
        core, props = split(values)
        if image_id:
            core["id"] = image_id
        core["properties"] = props
        image = await svc.create(caller, core)
        return JSON(image_view(image), status_code=201, headers={
            "Location": f"/v2/images/{image.id}", "OpenStack-image-import-methods": ",".join(svc.import_methods),
            "OpenStack-image-store-ids": ",".join(svc.stores)})

    @r.get("/v2/images")
    async def list_images(request: Request) -> Response:
        authorize(request, "get_images")
        q = request.query_params
        keys, limit = sort_and_limit(q)
        images = await svc.list(who(request), list_filters(q), keys, q.get("marker"), limit + 1)
        page, next_link = images[:limit], None
        if len(images) > limit and page:
            params = [(k, v) for k, v in q.multi_items() if k != "marker"]
            next_link = f"/v2/images?{urlencode([*params, ('marker', page[-1].id)])}"
        body: dict[str, Any] = {"images": [image_view(i) for i in page], "first": "/v2/images",
                                "schema": "/v2/schemas/images"}
        if next_link:
            body["next"] = next_link
        return JSON(body)

    @r.get("/v2/images/{image_id}")
    async def show(request: Request) -> Response:
        image, _ = await image_for(request, "get_image")
        return JSON(image_view(image))

    @r.patch("/v2/images/{image_id}")
    async def update(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        if ctype not in PATCH_TYPES:
            raise UnsupportedMediaType(f"Content type {ctype or 'none'} is not supported: use {PATCH_TYPES[0]}.")
        image, caller = await image_for(request, "modify_image")
        changes, props, removed = apply_patch(image, await json_body(request))
        image = await svc.update(image, caller, changes, props, removed)
        return JSON(image_view(image))

    @r.delete("/v2/images/{image_id}")
    async def delete(request: Request) -> Response:
        image, caller = await image_for(request, "delete_image")
        await svc.delete(image, caller)
        return no_content()

    @r.post("/v2/images/{image_id}/actions/{action}")
    async def action(request: Request) -> Response:
        action = request.path_params["action"]
        if action not in ("deactivate", "reactivate"):
            raise NotFound(f"Unknown image action {action}.")
        image, caller = await image_for(request, action)
        await svc.set_status(image, caller, action)
        return no_content()

    @r.route("/v2/images/{image_id}/tags/{tag}", ["PUT", "DELETE"])
    async def tag(request: Request) -> Response:
        image, caller = await image_for(request, "modify_image")
        tag = request.path_params["tag"]
        if request.method == "PUT":
            await svc.set_tags(image, caller, add=tag)
        else:
            await svc.set_tags(image, caller, remove=tag)
        return no_content()

    # -- data -------------------------------------------------------------------------------
    async def body_chunks(request: Request) -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            yield chunk

    async def receive_data(request: Request, staging: bool) -> Response:
        caller = who(request)
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        if ctype != "application/octet-stream":
            raise UnsupportedMediaType(f"Content type {ctype or 'none'} is not supported for image data: "
                                       "use application/octet-stream.")
        image = await svc.get(request.path_params["image_id"], caller)
        authorize(request, "modify_image" if staging else "upload_image", image_target(image, caller))
        if not staging and (not image.disk_format or not image.container_format):
            raise BadRequest("Set disk_format and container_format before uploading data.")
        store = request.headers.get("x-image-meta-store", "").strip() or None
        if store is not None and not staging and store not in svc.stores:
            raise BadRequest(f"Store '{store}' does not exist: this cloud's stores are {', '.join(svc.stores)}.")
        try:
            await svc.upload(image, caller, body_chunks(request), staging=staging, store=None if staging else store)
        except ClientDisconnect:
            raise BadRequest("The client disconnected before all image data arrived; the image is queued "
                             "again.") from None
        return no_content()

    @r.put("/v2/images/{image_id}/file")
    async def upload(request: Request) -> Response:
        return await receive_data(request, staging=False)

    @r.put("/v2/images/{image_id}/stage")
    async def stage(request: Request) -> Response:
        return await receive_data(request, staging=True)

    @r.get("/v2/images/{image_id}/file")
    async def download(request: Request) -> Response:
        image, caller = await image_for(request, "download_image")
        svc.check_readable(image, caller)
        store = await svc.cache.serving(image) or svc.data_store(image)  # the cache's copy first
        size = store.size(image.id) if store is not None else None
        if image.status not in ("active", "deactivated") or store is None or size is None:
            return Response(status_code=204)
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        if image.checksum:
            headers["Content-MD5"] = image.checksum
        rng = request.headers.get("range")
        if rng:
            start, end = parse_range(rng, size)
            headers.update({"Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)})
            return StreamingResponse(store.open(image.id, start, end), status_code=206, headers=headers)
        headers["Content-Length"] = str(size)
        return StreamingResponse(store.open(image.id), headers=headers)

    @r.post("/v2/images/{image_id}/import")
    async def import_image(request: Request) -> Response:
        caller = who(request)
        image = await svc.get(request.path_params["image_id"], caller)
        wanted = import_request(await json_body(request), request.headers)
        # copy-image has its own rule (an admin's by default), every other method changes the image
        authorize(request, "copy_image" if wanted.method == "copy-image" else "modify_image",
                  image_target(image, caller))
        ctx = context.current.get()
        await svc.import_image(image, caller, wanted, ctx.request_id if ctx else None)
        return Response(status_code=202)

    @r.get("/v2/images/{image_id}/tasks")
    async def tasks(request: Request) -> Response:
        image, _ = await image_for(request, "get_image")
        return JSON({"tasks": [task_view(t) for t in await svc.tasks(image)]})

    @r.get("/v2/tasks")
    async def list_tasks(request: Request) -> Response:
        authorize(request, "tasks_api_access")
        authorize(request, "get_tasks")
        q = request.query_params
        unknown = set(q) - {"limit", "marker", "sort_key", "sort_dir", "status", "type"}
        if unknown:
            raise BadRequest(f"Unknown filter {sorted(unknown)[0]!r}: tasks are filtered by status and type.")
        if q.get("status") and q["status"] not in TASK_STATUSES:
            raise BadRequest(f"Invalid status value: {q['status']}")
        if q.get("type") and q["type"] not in ("import", "api_image_import", "location_import"):
            raise BadRequest(f"Invalid type value: {q['type']}")
        sort_key, sort_dir = q.get("sort_key", "created_at"), q.get("sort_dir", "desc")
        if sort_key not in TASK_SORT_KEYS:
            raise BadRequest(f"Invalid sort key: {sort_key}. It should be one of {', '.join(sorted(TASK_SORT_KEYS))}.")
        if sort_dir not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort direction: {sort_dir}")
        marker = q.get("marker")
        if marker is not None and not re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", marker):
            raise BadRequest("Invalid marker format")
        try:
            limit = int(q.get("limit", 25))
        except ValueError:
            raise BadRequest("limit param must be an integer") from None
        if limit < 0:
            raise BadRequest("limit param must be positive")
        limit = min(limit, 1000)
        rows = await svc.list_tasks(who(request), {"status": q.get("status", ""), "type": q.get("type", "")},
                                    sort_key, sort_dir, marker, limit)
        params = [(k, v) for k, v in q.multi_items() if k != "marker"]
        body: dict[str, Any] = {"tasks": [task_stub(t) for t in rows],
                                "first": "/v2/tasks" + (f"?{urlencode(params)}" if params else ""),
                                "schema": "/v2/schemas/tasks"}
        if rows and len(rows) == limit:
            body["next"] = f"/v2/tasks?{urlencode([*params, ('marker', rows[-1].id)])}"
        return JSON(body)

    @r.post("/v2/tasks")
    async def create_task(request: Request) -> Response:
        """The legacy tasks API (deprecated in Glance): refused up front, pointing at the image
        import API, whose web-download does what its import-from-URL did."""
        authorize(request, "tasks_api_access")
        authorize(request, "add_task")
        body = await json_body(request)
        task_input = body.get("input") if isinstance(body, dict) else None
        if not isinstance(body, dict) or body.get("type") != "import" or not isinstance(task_input, dict):
            raise BadRequest("A task needs {\"type\": \"import\", \"input\": {...}}.")
        source = task_input.get("import_from")
        raise BadRequest(f"Import from {source!r} through the tasks API is not offered here: create an image and "
                         "import it (POST /v2/images/ID/import) with the web-download method, from a URL the "
                         "operator allows (GET /v2/info/import lists the methods).")

    @r.get("/v2/tasks/{task_id}")
    async def show_task(request: Request) -> Response:
        authorize(request, "tasks_api_access")
        authorize(request, "get_task")
        return JSON(task_view(await svc.task(request.path_params["task_id"], who(request))))

    # -- members ----------------------------------------------------------------------------
    @r.post("/v2/images/{image_id}/members")
    async def add_member(request: Request) -> Response:
        image, caller = await image_for(request, "add_member")
        body = await json_body(request)
        member = body.get("member") if isinstance(body, dict) else None
        if not isinstance(member, str) or not member or len(member) > 255:
            raise BadRequest("The request needs {\"member\": PROJECT_ID}.")
        return JSON(member_view(await svc.add_member(image, caller, member)))

    @r.get("/v2/images/{image_id}/members")
    async def list_members(request: Request) -> Response:
        image, caller = await image_for(request, "get_members")
        rows = await svc.members(image, caller)
        return JSON({"members": [member_view(m) for m in rows], "schema": "/v2/schemas/members"})

    @r.route("/v2/images/{image_id}/members/{member_id}", ["GET", "PUT", "DELETE"])
    async def member(request: Request) -> Response:
        caller = who(request)
        image = await svc.get(request.path_params["image_id"], caller)
        member_id = request.path_params["member_id"]
        target = image_target(image, caller)
        if request.method == "PUT":  # a member answers for itself
            target["member_id"] = member_id
        authorize(request, {"GET": "get_member", "PUT": "modify_member", "DELETE": "delete_member"}[verb(request)],
                  target)
        if request.method == "GET":
            return JSON(member_view(await svc.member(image, caller, member_id)))
        if request.method == "PUT":
            body = await json_body(request)
            status = body.get("status") if isinstance(body, dict) else None
            if not isinstance(status, str):
                raise BadRequest("The request needs {\"status\": \"accepted\" | \"rejected\" | \"pending\"}.")
            return JSON(member_view(await svc.set_member_status(image, caller, member_id, status)))
        await svc.remove_member(image, caller, member_id)
        return no_content()

    # -- schemas and info -------------------------------------------------------------------
    @r.get("/v2/schemas/{name:path}")
    async def schema(request: Request) -> Response:
        authorize(request, "image:get_schema")
        name = request.path_params["name"]
        if name not in SCHEMAS:
            raise NotFound(f"No schema named {name}.")
        return Response(orjson.dumps(SCHEMAS[name]), media_type="application/json")

    @r.get("/v2/info/import")
    async def info_import(request: Request) -> Response:
        authorize(request, "image:get_info")
        return JSON({"import-methods": {"description": "Import methods available.", "type": "array",
                                        "value": svc.import_methods}})

    def stores_view() -> list[dict[str, Any]]:
        return [{"id": name, "description": store.description,
                 **({"default": "true"} if store is svc.store else {})} for name, store in svc.stores.items()]

    @r.get("/v2/info/stores")
    async def info_stores(request: Request) -> Response:
        authorize(request, "image:get_info")
        return JSON({"stores": stores_view()})

    @r.get("/v2/info/stores/detail")
    async def info_stores_detail(request: Request) -> Response:
        authorize(request, "stores_info_detail")
        return JSON({"stores": [{**view, "type": "file", "weight": 0, "properties": {
            "data_dir": str(svc.stores[view["id"]].root), "chunk_size": 4 << 20, "thin_provisioning": False}}
            for view in stores_view()]})

    @r.delete("/v2/stores/{store_id}/{image_id}")
    async def delete_from_store(request: Request) -> Response:
        store_id = request.path_params["store_id"]
        if store_id not in svc.stores:
            raise Conflict(f"The selected store {store_id} is not available on this node.")
        caller = who(request)
        try:
            image = await svc.get(request.path_params["image_id"], caller)
        except NotFound:
            raise NotFound(f"Failed to find image {request.path_params['image_id']}") from None
        authorize(request, "get_image_location", image_target(image, caller))
        authorize(request, "delete_image_location", image_target(image, caller))
        await svc.delete_from_store(image, store_id)
        return no_content()

    @r.get("/v2/info/usage")
    async def info_usage(request: Request) -> Response:
        authorize(request, "image:get_usage")
        caller = who(request)
        usage = {}
        for name in ("image_size_total", "image_stage_total", "image_count_total", "image_count_uploading"):
            usage[name] = {"limit": await svc.limit(caller.project_id, name)}
        return JSON({"usage": usage})

    return r


def build_app(svc: ImageService, identity: IdentityService, max_body: int) -> ASGIApp:
    def unlimited(path: str) -> bool:  # image data is streamed, not held: no body limit there
        return path.endswith(("/file", "/stage"))

    routes = router(svc)
    routes.include(metadefs.router(svc.db))
    routes.include(cache.router(svc))
    policy = ServicePolicy.build("image", policies.RULES, identity.cfg.policy.file, policies.MESSAGE)
    # Glance answers 404 for /v2/images/ (an empty id), so no slash redirects here
    return policy.bind(create_app("image", routes, identity, max_body=max_body, unlimited=unlimited,
                                  redirect_slashes=False, schemas=REQUEST_SCHEMAS))


__all__ = ["build_app", "ValidationError"]
