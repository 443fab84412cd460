"""The ASGI app factory every Cumulo API is built with.

A service declares its endpoints on a ``Router``; ``create_app`` wraps each one so that it
authenticates the caller (``X-Auth-Token``, validated in-process by identity), sets the request
context that log lines and policy checks read, turns any ``Fault`` into the service's own error
format, and records metrics.  Handlers stay small: parse, call the service, shape the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cumulo.core import context
from cumulo.core.context import AuthContext
from cumulo.core.http import faults, metrics, schema
from cumulo.core.http.microversion import MicroversionMiddleware
from cumulo.core.http.requestid import RequestIdMiddleware
from cumulo.core.http.responses import JSON, no_content

# the services import the responses with the Router
__all__ = ["JSON", "Endpoint", "Handler", "Router", "TokenValidator", "access_allowed", "auth_of",
           "create_app", "json_body", "no_content"]

LOG = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
UNEXPECTED = ("An unexpected error prevented the server from fulfilling your request; the operator "
              "can find it in the log by its request id.")


class TokenValidator(Protocol):
    async def validate(self, token: str) -> AuthContext: ...


@dataclass
class Endpoint:
    path: str
    methods: list[str]
    handler: Handler
    auth: bool = True
    name: str = ""


@dataclass
class Router:
    """Collects a service's endpoints: ``@router.get("/v3/users/{user_id}")``."""

    prefix: str = ""
    endpoints: list[Endpoint] = field(default_factory=list)

    def route(self, path: str, methods: Sequence[str], auth: bool = True) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.endpoints.append(Endpoint(self.prefix + path, list(methods), handler, auth,
                                           handler.__name__))
            return handler
        return register

    def get(self, path: str, auth: bool = True) -> Callable[[Handler], Handler]:
        return self.route(path, ["GET", "HEAD"], auth)

    def post(self, path: str, auth: bool = True) -> Callable[[Handler], Handler]:
        return self.route(path, ["POST"], auth)

    def put(self, path: str, auth: bool = True) -> Callable[[Handler], Handler]:
        return self.route(path, ["PUT"], auth)

    def patch(self, path: str, auth: bool = True) -> Callable[[Handler], Handler]:
        return self.route(path, ["PATCH"], auth)

    def delete(self, path: str, auth: bool = True) -> Callable[[Handler], Handler]:
        return self.route(path, ["DELETE"], auth)

    def include(self, other: Router) -> None:
        self.endpoints.extend(other.endpoints)


def auth_of(request: Request) -> AuthContext:
    """The caller's validated identity (only on endpoints declared with auth=True)."""
    return request.state.auth  # type: ignore[no-any-return]


async def json_body(request: Request, required: bool = True) -> Any:
    """The request body as JSON, or a 4xx that says what is wrong with it: not JSON (415 for
    another Content-Type), too deep or holding NUL characters (400; see ``schema.check_shape``).
    A body the route's schema already checked is parsed once."""
    parsed = request.scope.get("cumulo.json", _UNPARSED)
    if parsed is not _UNPARSED:
        return parsed
    body = await request.body()
    if not body:
        if required:
            raise faults.ValidationError("The request body is empty: a JSON document is required.")
        return None
    schema.check_content_type(request.headers.get("content-type"))
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise faults.ValidationError(f"The request body is not valid JSON: {exc}") from None
    schema.check_shape(data)
    request.scope["cumulo.json"] = data
    return data


_UNPARSED = object()


def _wrap(service: str, ep: Endpoint, validator: TokenValidator | None,
          render: faults.Renderer, bodies: dict[str, schema.Validator] | None = None) -> Handler:
    async def endpoint(request: Request) -> Response:
        ctx = context.current.get()
        try:
            if ep.auth:
                token = request.headers.get("x-auth-token")
                if not token:
                    raise faults.Unauthorized()
                if validator is None:
                    raise faults.Unauthorized("This service has no token validator configured.")
                auth = await validator.validate(token)
                if auth.access_rules and service != "identity" and not access_allowed(
                        auth.access_rules, service, request.method, request.url.path):
                    raise faults.Unauthorized("The application credential's access rules do not permit "
                                              f"{request.method} {request.url.path} on {service}.")
                request.state.auth = auth
                if ctx is not None:
                    ctx.auth = auth
            if bodies and request.method in bodies:
                schema.validate(bodies[request.method], await json_body(request))
            response = await ep.handler(request)
        except faults.Fault as fault:
            if fault.code >= 500:
                LOG.error("%s %s failed: %s", request.method, request.url.path, fault.message)
            else:
                LOG.info("%s %s -> %d %s", request.method, request.url.path, fault.code, fault.message)
            response = JSON(render(fault), status_code=fault.code, headers=fault.headers)
            if fault.code == 401 and service == "identity":
                uri = str(request.base_url).rstrip("/")
                response.headers["WWW-Authenticate"] = f'Keystone uri="{uri}"'
        except Exception:
            LOG.exception("unexpected error in %s %s", request.method, request.url.path)
            response = JSON(render(faults.Fault(UNEXPECTED)), status_code=500)
        request.scope["cumulo.route"] = ep.path
        return response

    endpoint.__name__ = ep.name
    return endpoint


def access_allowed(rules: Sequence[dict[str, Any]], service: str, method: str, path: str) -> bool:
    """Application-credential access rules, as keystonemiddleware applies them to other services:
    the service type and method must match, and the path pattern (``*`` one segment, ``**`` the
    rest) must match the request path.  Identity itself is not restricted by them."""
    parts = path.rstrip("/").split("/")
    for rule in rules:
        if rule.get("service") != service or rule.get("method") != method:
            continue
        pattern = str(rule.get("path", "")).rstrip("/").split("/")
        if _path_match(pattern, parts):
            return True
    return False


def _path_match(pattern: list[str], parts: list[str]) -> bool:
    for i, piece in enumerate(pattern):
        if piece == "**":
            return True
        if i >= len(parts) or (piece != "*" and piece != parts[i]):
            return False
    return len(pattern) == len(parts)


class FaultCatcher:
    """Outermost guard: an unexpected exception becomes a logged 500 in the service's format."""

    def __init__(self, app: ASGIApp, render: faults.Renderer) -> None:
        self.app, self.render = app, render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except faults.Fault as fault:  # raised while reading the body (size limit)
            if started:
                raise
            await JSON(self.render(fault), status_code=fault.code)(scope, receive, send)
        except Exception:
            LOG.exception("unexpected error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            fault = faults.Fault(UNEXPECTED)
            await JSON(self.render(fault), status_code=500)(scope, receive, send)


def create_app(service: str, router: Router, validator: TokenValidator | None,
               max_body: int = 114688, unlimited: Callable[[str], bool] | None = None,
               redirect_slashes: bool = True, microversions: Any = None,
               on_startup: Sequence[Callable[[], Any]] = (),
               on_shutdown: Sequence[Callable[[], Any]] = (),
               schemas: Mapping[tuple[str, str], schema.Schema] | None = None) -> ASGIApp:
    """The service's app; ``schemas`` maps (method, route template) to the JSON Schema its body
    must fit (see ``cumulo.core.http.schema``).  The app's OpenAPI document is ``app.openapi``."""
    render = faults.RENDERERS.get(service, faults.identity_body)
    schemas = dict(schemas or {})
    known = {(m, ep.path) for ep in router.endpoints for m in ep.methods}
    unknown = sorted(set(schemas) - known)
    if unknown:
        raise ValueError(f"{service}: schemas for routes that do not exist: {unknown}")
    compiled = {key: schema.compile_schema(value) for key, value in schemas.items()}
    routes = [Route(ep.path, _wrap(service, ep, validator, render,
                                   {m: compiled[(m, ep.path)] for m in ep.methods if (m, ep.path) in compiled}),
                    methods=ep.methods)
              for ep in router.endpoints]

    async def fault_handler(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        cls = {404: faults.NotFound, 405: faults.MethodNotAllowed}.get(status, faults.Fault)
        message = {404: f"The resource could not be found: {request.url.path}",
                   405: f"The method {request.method} is not allowed for {request.url.path}."}
        return JSON(render(cls(message.get(status, ""), code=status)), status_code=status)

    app = Starlette(routes=routes, exception_handlers={404: fault_handler, 405: fault_handler},
                    on_startup=list(on_startup), on_shutdown=list(on_shutdown))
    app.router.redirect_slashes = redirect_slashes
    wrapped: ASGIApp = FaultCatcher(app, render)
    if microversions is not None:
        wrapped = MicroversionMiddleware(wrapped, microversions, render)
    wrapped = RequestIdMiddleware(wrapped, service=service, max_body=max_body, unlimited=unlimited)
    wrapped = metrics.MetricsMiddleware(wrapped, service=service)
    wrapped.openapi = lambda url="": schema.openapi_document(  # type: ignore[attr-defined]
        service, [(ep.path, ep.methods) for ep in router.endpoints], schemas, url)
    return wrapped

