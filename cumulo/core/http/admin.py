"""The operator port: ``/metrics`` (Prometheus text format), ``/healthcheck`` for the process, and
``/openapi.json``: every API's OpenAPI document, by service (``/openapi/<service>.json`` for one).

It binds to 127.0.0.1 unless configured otherwise, so metrics are not exposed to API users.
``/healthcheck`` answers 200 with each service's state when the database answers, 503 if not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.core.http.app import JSON


def create_admin_app(check: Callable[[], Awaitable[dict[str, str]]],
                     openapi: Callable[[], dict[str, Any]] | None = None) -> Starlette:
    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def health(_: Request) -> Response:
        status = await check()
        ok = all(v == "ok" for v in status.values())
        return JSON({"status": "ok" if ok else "failing", "checks": status}, status_code=200 if ok else 503)

    async def documents(_: Request) -> Response:
        return JSON(openapi() if openapi else {})

    async def document(request: Request) -> Response:
        doc = (openapi() if openapi else {}).get(request.path_params["service"])
        if doc is None:
            return JSON({"error": {"code": 404, "title": "Not Found", "message": "No such API here."}},
                        status_code=404)
        return JSON(doc)

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthcheck", health),
                             Route("/openapi.json", documents), Route("/openapi/{service}.json", document)])
