"""What every Compute API module shares: the microversion range and the test of a request's
microversion."""

from __future__ import annotations

from starlette.requests import Request

from cumulo.core.http.microversion import Microversions, Version

MICROVERSIONS = Microversions("compute", Version(2, 1), Version(2, 96), "x-openstack-nova-api-version")


def version_of(request: Request) -> Version:
    return request.scope.get("cumulo.version", MICROVERSIONS.minimum)  # type: ignore[no-any-return]


def at_least(request: Request, minor: int) -> bool:
    return version_of(request) >= Version(2, minor)
