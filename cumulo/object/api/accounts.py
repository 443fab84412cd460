"""``/v1/AUTH_<project_id>``: GET lists the containers, HEAD its counts, POST its metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import Response

from cumulo.object.api import common as c
from cumulo.object.api import quotas

if TYPE_CHECKING:
    from cumulo.object.api import Call


async def handle(call: Call) -> Response:
    method = call.request.method
    if method in ("GET", "HEAD"):
        call.authorize("object_store:account:get")
        acct = await call.svc.account(call.account)
        headers = {"X-Account-Container-Count": str(acct.container_count),
                   "X-Account-Object-Count": str(acct.object_count),
                   "X-Account-Bytes-Used": str(acct.bytes_used), "X-Timestamp": acct.timestamp,
                   **c.meta_headers("account", acct.meta), **quotas.account_headers(acct.meta)}
        if acct.container_count:  # Swift's usage per storage policy; every container is in Policy-0
            prefix = "X-Account-Storage-Policy-Policy-0-"
            headers.update({prefix + "Container-Count": str(acct.container_count),
                            prefix + "Object-Count": str(acct.object_count),
                            prefix + "Bytes-Used": str(acct.bytes_used)})
        fmt = c.listing_format(call.request)
        q = c.listing_query(call.request)
        entries = [] if method == "HEAD" else await call.svc.containers(call.account, q)
        body, media = c.render_listing(fmt, "account", call.account, "container", entries,
                                       ("name", "count", "bytes", "last_modified"))
        if method == "HEAD":
            return Response(status_code=204, headers={**headers, "Content-Type": media})
        return c.listing_response(call.request, body, media, fmt, not entries, headers)
    if method == "POST":
        call.authorize("object_store:account:post")
        meta = c.metadata(call.request, "account")
        system = quotas.account_updates(call, meta)
        acct = await call.svc.account(call.account)
        merged = {k: v for k, v in {**acct.meta, **meta}.items() if v}
        c.check_merged_meta(merged)
        await call.svc.update_account(call.account, {**meta, **system})
        return Response(status_code=204)
    raise c.SwiftError(405, headers={"Allow": "GET, HEAD, POST"})
