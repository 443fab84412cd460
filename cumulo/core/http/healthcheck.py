"""``GET /healthcheck`` on every API port, as oslo.middleware's healthcheck answers it, for load balancers.

haproxy (``option httpchk GET /healthcheck``), keepalived or a Kubernetes probe asks each
controller's API ports whether to send it requests.  The answer needs no token and says little:

* 200 ``OK`` (text/plain) while this process serves and its database answers;
* 503 ``DRAINING`` once the process was asked to stop (SIGTERM), so the balancer takes it out
  while its last requests finish;
* 503 ``DISABLED BY FILE`` while the file ``[metrics] disable_by_file_path`` names exists
  (oslo.middleware's ``disable_by_file`` backend: ``touch`` it to drain a controller before
  maintenance, remove it after);
* 503 ``DATABASE UNREACHABLE`` when a ``SELECT 1`` fails or takes longer than two seconds.

``HEAD`` answers the same without a body.  One :class:`HealthState` serves every port of a
process: the database probe runs at most once a second however many ports and balancers ask, and
concurrent checks share the probe in flight.  The operator port's ``/healthcheck`` (JSON, each
service's state) is the detailed one; this is the one a balancer polls every few hundred ms.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

LOG = logging.getLogger("cumulo.healthcheck")
PATH = "/healthcheck"


class HealthState:
    """What a process's ``/healthcheck`` answers: drained, disabled by file, or the database's state."""

    def __init__(self, probe: Callable[[], Awaitable[object]], disable_by_file: str = "",
                 ttl: float = 1.0, timeout: float = 2.0) -> None:
        self.probe, self.disable_by_file, self.ttl, self.timeout = probe, disable_by_file, ttl, timeout
        self.draining = False
        self._checked = -1e9
        self._ok = True
        self._pending: asyncio.Future[bool] | None = None

    async def _database_ok(self) -> bool:
        if time.monotonic() - self._checked < self.ttl:
            return self._ok
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._run_probe())
        pending = self._pending
        # shielded: one caller going away (its client hung up) does not cancel the others' probe
        return await asyncio.shield(pending)

    async def _run_probe(self) -> bool:
        try:
            # not wait_for around a session (a cancelled one may linger): a probe that does not
            # answer in time is left to finish in the background and counts as a failure
            task = asyncio.ensure_future(self.probe())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            done, _ = await asyncio.wait([task], timeout=self.timeout)
            ok = bool(done) and task.exception() is None
            if not ok and self._ok:
                LOG.warning("/healthcheck: the database does not answer (%s)",
                            task.exception() if done else f"no answer within {self.timeout} s")
            self._ok, self._checked = ok, time.monotonic()
            return ok
        finally:
            self._pending = None

    async def verdict(self) -> tuple[int, bytes]:
        if self.draining:
            return 503, b"DRAINING"
        if self.disable_by_file and os.path.exists(self.disable_by_file):
            return 503, b"DISABLED BY FILE"
        if not await self._database_ok():
            return 503, b"DATABASE UNREACHABLE"
        return 200, b"OK"


class Healthcheck:
    """ASGI middleware answering ``GET``/``HEAD /healthcheck`` from ``state``; every other request
    goes to ``app``."""

    def __init__(self, app: ASGIApp, state: HealthState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        status, body = await self.state.verdict()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"text/plain; charset=UTF-8"), (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
