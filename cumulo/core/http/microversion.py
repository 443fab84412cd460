"""Microversion negotiation (``OpenStack-API-Version: compute 2.79``).

A service advertises ``[min, max]``; a request without a header gets the minimum, ``latest``
gets the maximum, anything outside the range gets 406 with the range in the message.
The legacy per-service header (``X-OpenStack-Nova-API-Version``) is honoured too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering
from typing import Any

from cumulo.core.http.faults import BadRequest, NotAcceptable
from cumulo.core.http.responses import JSON

_VERSION = re.compile(r"^([1-9]\d*)\.(0|[1-9]\d*)$")


@total_ordering
@dataclass(frozen=True, slots=True)
class Version:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> Version:
        m = _VERSION.match(text.strip())
        if not m:
            raise BadRequest(f"Invalid microversion {text!r}: expected MAJOR.MINOR such as 2.1.")
        return cls(int(m.group(1)), int(m.group(2)))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return (self.major, self.minor) < (other.major, other.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True)
class Microversions:
    service: str  # the name used in OpenStack-API-Version, e.g. "compute"
    minimum: Version
    maximum: Version
    legacy_header: str = ""  # e.g. "x-openstack-nova-api-version"

    def negotiate(self, headers: dict[str, str] | object) -> Version:
        get = headers.get  # type: ignore[attr-defined]
        requested = None
        value = get("openstack-api-version")
        if value:
            for part in value.split(","):
                words = part.split()
                if len(words) == 2 and words[0].lower() == self.service:
                    requested = words[1]
        if requested is None and self.legacy_header:
            requested = get(self.legacy_header)
        if not requested:
            return self.minimum
        if requested.strip().lower() == "latest":
            return self.maximum
        version = Version.parse(requested)
        if not self.minimum <= version <= self.maximum:
            raise NotAcceptable(f"Version {version} is not supported by the API. Minimum is "
                                f"{self.minimum} and maximum is {self.maximum}.")
        return version

    def response_headers(self, version: Version) -> dict[str, str]:
        headers = {"OpenStack-API-Version": f"{self.service} {version}",
                   "Vary": "OpenStack-API-Version"}
        if self.legacy_header:
            headers[self.legacy_header] = str(version)
        return headers


class MicroversionMiddleware:
    """Negotiates the version of every request (``scope["cumulo.version"]``) and names it in the
    response headers; an unsupported version is answered 406 in the service's fault format."""

    def __init__(self, app: Any, versions: Microversions, render: Any) -> None:
        self.app, self.versions, self.render = app, versions, render

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            version = self.versions.negotiate(headers)
        except (NotAcceptable, BadRequest) as fault:
            await JSON(self.render(fault), status_code=fault.code)(scope, receive, send)
            return
        scope["cumulo.version"] = version
        extra = [(k.encode(), v.encode()) for k, v in self.versions.response_headers(version).items()]

        async def send_with_version(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_version)
