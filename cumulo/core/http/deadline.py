"""The time budget of a request: past ``[api] request_timeout`` seconds its work is cancelled and the
client gets a 503 in the service's own fault format.

The budget runs from the moment the request's headers are in until its response starts; once
the answer streams (an image download) it is no longer limited.  Requests that stream a body of
data (``Content-Type: application/octet-stream``: image uploads, as Glance takes them) are not
limited either: their length is the client's, and the image service holds them by lease.
Cancelling is safe because every service keeps its state transitions in the database (a
cancelled request leaves a rollback, or a lease the reconciler ends).

The middleware also names the process that served the request in ``x-cumulo-worker`` (``0`` is
the leader, ``1``.. the API workers, then ``:`` and the PID), so an operator can tell which
worker answered, and tests can see requests spread.  Expired budgets are counted in
``cumulo_http_request_timeouts_total`` on the operator port's ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import os

import orjson
from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cumulo.core.http import faults

LOG = logging.getLogger("cumulo.deadline")
TIMEOUTS = Counter("cumulo_http_request_timeouts_total", "Requests cancelled past their time budget", ["service"])


class Deadline:
    def __init__(self, app: ASGIApp, service: str, budget: float, worker: int = 0) -> None:
        self.app, self.service, self.budget = app, service, budget
        self.served_by = f"{worker}:{os.getpid()}".encode()
        self.render = faults.RENDERERS.get(service, faults.compute_body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        budget: asyncio.Timeout | None = None

        async def stamped(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if budget is not None:
                    budget.reschedule(None)  # the answer is on its way: no longer limited
                message["headers"] = [*message.get("headers", ()), (b"x-cumulo-worker", self.served_by)]
            await send(message)

        if self.budget <= 0 or self._streams(scope):
            await self.app(scope, receive, stamped)
            return
        try:
            async with asyncio.timeout(self.budget) as budget:
                await self.app(scope, receive, stamped)
        except TimeoutError:
            if budget is None or not budget.expired():
                raise
            TIMEOUTS.labels(self.service).inc()
            LOG.warning("%s %s %s cancelled: it took longer than its budget of %s s", self.service,
                        scope["method"], scope["path"], self.budget)
            if not started:
                await self._unavailable(send)

    @staticmethod
    def _streams(scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"content-type":
                return value.split(b";")[0].strip().lower() == b"application/octet-stream"
        return False

    async def _unavailable(self, send: Send) -> None:
        fault = faults.Fault(f"The request did not finish within its time budget of {self.budget:g} s; "
                             "it was cancelled. Try again later.", code=503, kind="ServiceUnavailable")
        body = orjson.dumps(self.render(fault))
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"retry-after", b"1"), (b"x-cumulo-worker", self.served_by)]})
        await send({"type": "http.response.body", "body": body})
