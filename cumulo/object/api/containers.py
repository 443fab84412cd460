"""``/v1/AUTH_<project_id>/<container>``: PUT makes it (201, or 202 when it was there), GET lists
its objects, HEAD its counts, POST its metadata and ACLs, DELETE removes it when empty (409
otherwise)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import Response

from cumulo.object import acl
from cumulo.object.api import common as c
from cumulo.object.api import quotas
from cumulo.object.service import ContainerInfo

if TYPE_CHECKING:
    from cumulo.object.api import Call


def acls(call: Call) -> tuple[str | None, str | None]:
    out: list[str | None] = []
    for header, write in (("x-container-read", False), ("x-container-write", True)):
        raw = call.request.headers.get(header)
        if call.request.headers.get(f"x-remove-{header}") is not None:
            raw = ""
        if raw is None:
            out.append(None)
            continue
        try:
            out.append(acl.clean(raw, write=write))
        except ValueError as exc:
            raise c.SwiftError(400, str(exc)) from None
    return out[0], out[1]


def headers_of(call: Call, info: ContainerInfo) -> dict[str, str]:
    headers = {"X-Container-Object-Count": str(info.object_count),
               "X-Container-Bytes-Used": str(info.bytes_used), "X-Timestamp": info.timestamp,
               "X-Storage-Policy": "Policy-0", "Last-Modified": c.http_date(info.timestamp),
               **c.meta_headers("container", info.meta)}
    if call.is_owner():  # ACLs are shown to the account's owners only, as in Swift
        if info.read_acl:
            headers["X-Container-Read"] = info.read_acl
        if info.write_acl:
            headers["X-Container-Write"] = info.write_acl
    return headers


async def handle(call: Call) -> Response:
    method = call.request.method
    c.check_container_name(call.container)
    if method == "PUT":
        call.authorize("object_store:container:put")
        meta = c.metadata(call.request, "container")
        quotas.check_container_meta(meta, quotas.enabled(call, "container_quotas"))
        read, write = acls(call)
        existing = await call.svc.container(call.account, call.container)
        c.check_merged_meta({k: v for k, v in {**(existing.meta if existing else {}), **meta}.items() if v})
        created = await call.svc.put_container(call.account, call.container, meta, read, write)
        return Response(status_code=201 if created else 202)
    info = await call.svc.container(call.account, call.container)
    if method in ("GET", "HEAD"):
        if info is None:
            call.authorize("object_store:container:get")
            raise c.SwiftError(404)
        call.authorize("object_store:container:get", info, listing=True)
        headers = headers_of(call, info)
        fmt = c.listing_format(call.request)
        q = c.listing_query(call.request)
        entries = [] if method == "HEAD" else await call.svc.objects(info, q)
        body, media = c.render_listing(fmt, "container", call.container, "object", entries,
                                       ("name", "hash", "bytes", "content_type", "last_modified"))
        if method == "HEAD":
            return Response(status_code=204, headers={**headers, "Content-Type": media})
        return c.listing_response(call.request, body, media, fmt, not entries, headers)
    if method == "POST":
        call.authorize("object_store:container:post")
        if info is None:
            raise c.SwiftError(404)
        meta = c.metadata(call.request, "container")
        quotas.check_container_meta(meta, quotas.enabled(call, "container_quotas"))
        read, write = acls(call)
        c.check_merged_meta({k: v for k, v in {**info.meta, **meta}.items() if v})
        await call.svc.update_container(call.account, call.container, meta, read, write)
        return Response(status_code=204)
    if method == "DELETE":
        call.authorize("object_store:container:delete")
        if info is None:
            raise c.SwiftError(404)
        await call.svc.delete_container(call.account, call.container)
        return Response(status_code=204)
    raise c.SwiftError(405, headers={"Allow": "DELETE, GET, HEAD, POST, PUT"})
