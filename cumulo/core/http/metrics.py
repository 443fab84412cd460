"""Prometheus metrics: request counts and latencies per service, method, route and status.

``/metrics`` is served on the operator port (``[metrics] port``, 127.0.0.1 by default) together
with ``/healthcheck``; see ``cumulo.core.http.admin``.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("cumulo_http_requests_total", "HTTP requests served",
                   ["service", "method", "route", "status"])
LATENCY = Histogram("cumulo_http_request_seconds", "HTTP request latency", ["service", "method", "route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = scope.get("cumulo.route", "unmatched")
            REQUESTS.labels(self.service, scope["method"], route, str(status)).inc()
            LATENCY.labels(self.service, scope["method"], route).observe(time.perf_counter() - start)
