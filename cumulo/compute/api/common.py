"""What every Compute API module shares: the microversion range and the test of a request's
microversion."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from cumulo.core.http.faults import BadRequest
from cumulo.core.http.microversion import Microversions, Version

MICROVERSIONS = Microversions("compute", Version(2, 1), Version(2, 100), "x-openstack-nova-api-version")


def version_of(request: Request) -> Version:
    return request.scope.get("cumulo.version", MICROVERSIONS.minimum)  # type: ignore[no-any-return]


def at_least(request: Request, minor: int) -> bool:
    return version_of(request) >= Version(2, minor)


MAX_LIMIT = 1000  # Nova's osapi_max_limit


def offset_page(request: Request, items: list[Any]) -> list[Any]:
    """The page ``limit`` and ``offset`` ask for, as Nova's proxies and sub-resources page."""
    q = request.query_params
    numbers = {}
    for key in ("limit", "offset"):
        raw = q.get(key)
        if raw is None:
            continue
        if not raw.isdigit():
            raise BadRequest(f"Invalid input for query parameters {key}. Value: {raw}. It must be a "
                             "non-negative integer.")
        numbers[key] = int(raw)
    start = numbers.get("offset", 0)
    return items[start:start + min(MAX_LIMIT, numbers.get("limit") or MAX_LIMIT)]
