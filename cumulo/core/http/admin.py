"""The operator port: ``/metrics`` (Prometheus text format) and ``/healthcheck`` for the process.

It binds to 127.0.0.1 unless configured otherwise, so metrics are not exposed to API users.
``/healthcheck`` answers 200 with each service's state when the database answers, 503 if not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.core.http.app import JSON


def create_admin_app(check: Callable[[], Awaitable[dict[str, str]]]) -> Starlette:
    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def health(_: Request) -> Response:
        status = await check()
        ok = all(v == "ok" for v in status.values())
        return JSON({"status": "ok" if ok else "failing", "checks": status}, status_code=200 if ok else 503)

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthcheck", health)])
