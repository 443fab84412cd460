"""Request ids and body limits, for every API.

Each request gets ``req-<uuid>``, returned as ``x-openstack-request-id`` and carried by every
log line written while it is served.  An inbound ``X-OpenStack-Request-ID`` of the same shape is
kept as the *global* request id, so one user action can be followed across services.  Bodies
larger than ``[api] max_request_body_size`` are refused with 413 before they are read whole.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cumulo.core import context
from cumulo.core.http import faults
from cumulo.core.http.responses import JSON

LOG = logging.getLogger("cumulo.access")
GLOBAL_ID = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, service: str, max_body: int,
                 unlimited: Callable[[str], bool] | None = None) -> None:
        self.app, self.service, self.max_body = app, service, max_body
        self.unlimited = unlimited  # paths that stream data (image uploads) have no body limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req-{uuid.uuid4()}"
        inbound = None
        limit = 0 if self.unlimited and self.unlimited(scope["path"]) else self.max_body
        for name, value in scope["headers"]:
            if name == b"x-openstack-request-id":
                candidate = value.decode("latin-1")
                inbound = candidate if GLOBAL_ID.match(candidate) else None
            elif name == b"content-length" and limit:
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._too_large(scope, receive, send, request_id)
                    return
        ctx = context.RequestContext(request_id, inbound)
        token = context.current.set(ctx)
        header = request_id.encode()
        start = time.perf_counter()
        status = 0
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if limit and seen > limit:
                    raise faults.PayloadTooLarge(
                        f"The request body is larger than the limit of {self.max_body} bytes.")
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-openstack-request-id", header)]
                if self.service == "compute":  # Nova's own name for it, which clients still read
                    message["headers"].append((b"x-compute-request-id", header))
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        finally:
            if LOG.isEnabledFor(logging.INFO):
                LOG.info('%s "%s %s" %d %.1fms', self.service, scope["method"], scope["path"], status,
                         (time.perf_counter() - start) * 1000)
            context.current.reset(token)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        fault = faults.PayloadTooLarge(
            f"The request body is larger than the limit of {self.max_body} bytes.")
        body = faults.RENDERERS.get(self.service, faults.identity_body)(fault)
        await JSON(body, status_code=413, headers={"x-openstack-request-id": request_id})(
            scope, receive, send)
