"""The operator port: ``/metrics`` (Prometheus text format), ``/healthcheck``, ``/livez`` and
``/readyz`` for the process, and ``/openapi.json``: every API's OpenAPI document, by service
(``/openapi/<service>.json`` for one).

It binds to 127.0.0.1 unless configured otherwise, so metrics are not exposed to API users.

* ``/healthcheck`` answers 200 with each service's state when the database answers, 503 if not;
  while the file ``[metrics] disable_by_file_path`` exists it answers 503 ``DISABLED BY FILE``
  (oslo.middleware's ``disable_by_file`` backend), so a load balancer drains this controller
  before maintenance: ``touch`` the file, wait, work, remove it.
* ``/livez`` answers 200 whenever the process answers at all (a liveness probe: restart it if not).
* ``/readyz`` answers 200 when the database, the bus (a round trip) and this controller's agents
  answer, else 503 with the failing part named: ``{"status": "failing", "checks": {"bus": "failing: ..."}}``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.core.http.app import JSON


def create_admin_app(check: Callable[[], Awaitable[dict[str, str]]],
                     openapi: Callable[[], dict[str, Any]] | None = None,
                     ready: Callable[[], Awaitable[dict[str, str]]] | None = None,
                     disable_by_file: str = "") -> Starlette:
    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    def verdict(status: dict[str, str]) -> Response:
        ok = all(v == "ok" for v in status.values())
        return JSON({"status": "ok" if ok else "failing", "checks": status}, status_code=200 if ok else 503)

    async def health(_: Request) -> Response:
        if disable_by_file and os.path.exists(disable_by_file):
            return Response("DISABLED BY FILE", status_code=503, media_type="text/plain")
        return verdict(await check())

    async def livez(_: Request) -> Response:
        return JSON({"status": "ok"})

    async def readyz(_: Request) -> Response:
        return verdict(await (ready or check)())

    async def documents(_: Request) -> Response:
        return JSON(openapi() if openapi else {})

    async def document(request: Request) -> Response:
        doc = (openapi() if openapi else {}).get(request.path_params["service"])
        if doc is None:
            return JSON({"error": {"code": 404, "title": "Not Found", "message": "No such API here."}},
                        status_code=404)
        return JSON(doc)

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthcheck", health), Route("/livez", livez),
                             Route("/readyz", readyz),
                             Route("/openapi.json", documents), Route("/openapi/{service}.json", document)])
