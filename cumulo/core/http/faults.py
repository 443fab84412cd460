"""OpenStack-style faults: one exception type, rendered in each service's own format.

Raise ``BadRequest("...")`` (or any ``Fault``) anywhere below an API handler; the app factory
turns it into the JSON shape the service's clients expect:

* identity:  ``{"error": {"code": 404, "title": "Not Found", "message": "..."}}``
* compute, block-storage: ``{"itemNotFound": {"code": 404, "message": "..."}}``
* network:   ``{"NeutronError": {"type": "...", "message": "...", "detail": ""}}``
* image:     ``{"code": 404, "title": "Not Found", "message": "..."}`` (as Glance's webob faults)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cumulo.core import context

TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 409: "Conflict", 410: "Gone",
    413: "Request Entity Too Large", 415: "Unsupported Media Type", 429: "Too Many Requests",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
}
# nova's fault keys, by status code
COMPUTE_KEYS = {
    400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
    405: "badMethod", 406: "notAcceptable", 409: "conflictingRequest", 413: "overLimit",
    415: "badMediaType", 429: "overLimit", 501: "notImplemented", 503: "serviceUnavailable",
}


class Fault(Exception):
    """An error the client caused (4xx) or a clean server-side refusal (5xx)."""

    code = 500
    kind = "InternalError"  # the NeutronError type / a short machine name

    def __init__(self, message: str = "", *, code: int | None = None, kind: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if kind is not None:
            self.kind = kind
        self.message = message or TITLES.get(self.code, "Error")
        self.headers = headers or {}

    @property
    def title(self) -> str:
        return TITLES.get(self.code, "Error")


class BadRequest(Fault):
    code, kind = 400, "BadRequest"


class ValidationError(BadRequest):
    kind = "ValidationError"


class Unauthorized(Fault):
    code, kind = 401, "Unauthorized"

    def __init__(self, message: str = "The request you have made requires authentication.",
                 **kw: Any) -> None:
        super().__init__(message, **kw)


class Forbidden(Fault):
    code, kind = 403, "Forbidden"

    def __init__(self, message: str = "You are not authorized to perform the requested action.",
                 **kw: Any) -> None:
        super().__init__(message, **kw)


class NotFound(Fault):
    code, kind = 404, "NotFound"


class MethodNotAllowed(Fault):
    code, kind = 405, "MethodNotAllowed"


class NotAcceptable(Fault):
    code, kind = 406, "NotAcceptable"


class Conflict(Fault):
    code, kind = 409, "Conflict"


class PayloadTooLarge(Fault):
    code, kind = 413, "RequestEntityTooLarge"


class UnsupportedMediaType(Fault):
    code, kind = 415, "UnsupportedMediaType"


class NotImplementedFault(Fault):
    code, kind = 501, "NotImplemented"


Renderer = Callable[[Fault], dict[str, Any]]


def identity_body(f: Fault) -> dict[str, Any]:
    return {"error": {"code": f.code, "title": f.title, "message": f.message}}


def compute_body(f: Fault) -> dict[str, Any]:
    return {COMPUTE_KEYS.get(f.code, "computeFault"): {"code": f.code, "message": f.message}}


def network_body(f: Fault) -> dict[str, Any]:
    return {"NeutronError": {"type": f.kind, "message": f.message, "detail": ""}}


def placement_body(f: Fault) -> dict[str, Any]:
    ctx = context.current.get()
    error: dict[str, Any] = {"status": f.code, "title": f.title, "detail": f.message,
                             "request_id": ctx.request_id if ctx else None}
    if f.kind.startswith("placement."):
        error["code"] = f.kind
    return {"errors": [error]}


def image_body(f: Fault) -> dict[str, Any]:
    return {"code": f.code, "title": f.title, "message": f.message}


RENDERERS: dict[str, Renderer] = {
    "identity": identity_body, "compute": compute_body, "block-storage": compute_body,
    "placement": placement_body, "network": network_body, "image": image_body,
}
