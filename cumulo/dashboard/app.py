"""The dashboard's web app: sessions, CSRF, the pages' common frame, errors in words.

``build_app`` makes the Starlette app that ``cumulo up`` serves on ``[dashboard] port``.  Every
page is a ``View``: it gets the signed-in user's session and an ``Api`` bound to their token,
and returns a rendered template or a redirect.  What every view shares is done here once:

* no session (or an expired one) -> the login page, then back to where the user was going;
* any method but GET (a POST, and a HEAD too) without the session's CSRF token, or from another
  origin -> 403, nothing done; a posted form over MAX_FORM bytes -> 413 (``Guard``);
* the panel's rule (``dashboard:project_panel``, ``dashboard:admin_panel``) -> a 403 page with no data;
* the API says 401 -> the session is over: the login page says so;
* any other API fault -> the page (or the form) shows the service's own message.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import jinja2
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cumulo.core.http import authz
from cumulo.core.policy import Enforcer
from cumulo.dashboard import policies
from cumulo.dashboard.client import Api, ApiError, Catalog, Unauthorized
from cumulo.dashboard.session import COOKIE, FLASH, Sealer, Session

LOG = logging.getLogger(__name__)
HERE = Path(__file__).parent
VENDOR = HERE / "node_modules"  # what scripts/setup.sh installs with npm (package.json)
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
MAX_FORM = 1024 * 1024  # a posted form (urlencoded or multipart): uploads are raw bodies, streamed
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class Forbidden(Exception):
    pass


@dataclass
class Dashboard:
    """What the views share: the sealer, the HTTP client, the catalog, templates and policy."""

    sealer: Sealer
    http: httpx.AsyncClient
    catalog: Catalog
    policy: Enforcer
    templates: jinja2.Environment
    events: Any = None  # the event stream (cumulo.dashboard.events.EventStream), when the bus is there
    nav: list[tuple[str, str, str, str]] = field(default_factory=list)  # (panel, section, label, path)
    options: dict[str, Any] = field(default_factory=dict)

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        session: Session | None = request.scope.get("dashboard.session")
        flash = self.sealer.read_flash(request.cookies.get(FLASH))
        page = self.templates.get_template(template).render(
            request=request, session=session, csrf=self.sealer.csrf(session) if session else "",
            nav=self.nav_for(session), flash=flash, path=request.url.path,
            events_since=request.scope.get("dashboard.since", time.time()), **context)
        response = HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)
        if flash:
            response.delete_cookie(FLASH, path="/")
        return response

    def nav_for(self, session: Session | None) -> list[tuple[str, str, str, str]]:
        if session is None:
            return []
        return [n for n in self.nav if n[0] != "admin" or self.allowed(session, "dashboard:admin_panel")]

    def allowed(self, session: Session, rule: str) -> bool:
        creds = {"roles": session.roles, "project_id": session.project_id, "user_id": session.user_id}
        return self.policy.enforce(rule, {"project_id": session.project_id}, creds)

    def redirect(self, url: str, flash: tuple[str, str] | None = None) -> RedirectResponse:
        response = RedirectResponse(url, status_code=303)
        if flash:
            response.set_cookie(FLASH, self.sealer.flash(*flash), httponly=True, samesite="lax", path="/")
        return response


# no framing by other sites, no sniffing, scripts and styles from this origin only (the console's
# websocket goes to the console proxy on its own port)
SECURITY_HEADERS = {
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self' ws: wss:; frame-src 'self' http: https:; frame-ancestors 'self'",
    "Cache-Control": "no-store",
}

ViewFn = Callable[[Request, Session, Api], Awaitable[Response]]


class Guard:
    """Around the whole app: every answer (a redirect, a fragment, a CSV, Starlette's own 404 and
    405, a static file) gets the framing and sniffing headers it lacks, and a posted form is at
    most MAX_FORM bytes (413 before the view reads it: an urlencoded form is held whole in memory).
    Raw bodies (an image's or an object's upload) are other content types and pass as streams."""

    def __init__(self, app: ASGIApp, max_form: int = MAX_FORM) -> None:
        self.app, self.max_form = app, max_form

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith(("/static/", "/vendor/"))

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name.lower() not in headers and (name != "Cache-Control" or not static):
                        headers[name] = value
            await send(message)

        request_headers = Headers(scope=scope)
        kind = request_headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in FORM_TYPES:
            await self.app(scope, receive, send_guarded)
            return
        length = request_headers.get("content-length", "")
        if length and (not length.isdigit() or int(length) > self.max_form):
            await PlainTextResponse(f"A form is at most {self.max_form} bytes.", status_code=413)(
                scope, receive, send_guarded)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_form:  # a chunked body that said no length
                raise HTTPException(413, f"A form is at most {self.max_form} bytes.")
            return message

        await self.app(scope, counted, send_guarded)


def view(d: Dashboard, fn: ViewFn, panel: str = "project") -> Callable[[Request], Awaitable[Response]]:
    """A page or form handler behind the session, CSRF and panel checks (see the module's docstring)."""
    rule = "dashboard:admin_panel" if panel == "admin" else "dashboard:project_panel"

    async def endpoint(request: Request) -> Response:
        request.scope["dashboard.since"] = time.time()  # before the page reads: its stream replays from here
        session = d.sealer.open(request.cookies.get(COOKIE))
        if session is None:
            if request.method in WRITE_METHODS or request.headers.get("x-requested-with") == "cumulo":
                return Response("Your session has ended: sign in again.", status_code=401,
                                headers={"X-Login": "/auth/login"})
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/auth/login?next={quote(target)}", status_code=303)
        request.scope["dashboard.session"] = session
        # every method but GET needs the token: a HEAD (which Starlette lets into any GET route, and
        # which a page of another origin can send with the cookie) must not reach a view's POST branch
        if request.method != "GET":
            offered = request.headers.get("x-csrf-token")
            if offered is None:
                form = await request.form()
                offered = str(form.get("csrf_token", ""))
            if not d.sealer.csrf_ok(session, offered) or not same_origin(request):
                return d.render(request, "error.html", 403, title="Refused",
                                message="The form was not sent from this dashboard's page (its CSRF token is "
                                        "missing or stale): reload the page and try again.")
        if not d.allowed(session, rule):
            return d.render(request, "error.html", 403, title="Not allowed",
                            message="This page is for administrators: your role in this project does not "
                                    "allow it.")
        api = Api(d.http, d.catalog, session.token, "req-" + secrets.token_hex(8))
        try:
            return await fn(request, session, api)
        except Unauthorized:
            if request.headers.get("x-requested-with") == "cumulo":  # the page's script: it goes to the login
                response: Response = Response("Your session has ended: sign in again.", status_code=401,
                                              headers={"X-Login": "/auth/login?expired=1"})
            else:
                response = RedirectResponse("/auth/login?expired=1&next=" + quote(request.url.path), status_code=303)
            response.delete_cookie(COOKIE, path="/")
            return response
        except ApiError as exc:
            title = {403: "Not allowed", 404: "Not found"}.get(exc.status, "The cloud refused")
            return d.render(request, "error.html", exc.status if exc.status < 500 else 502, title=title,
                            message=exc.message, request_id=exc.request_id)

    return endpoint


def same_origin(request: Request) -> bool:
    """A browser's Origin (or Referer) names this dashboard's host and port; none at all passes."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def build_app(identity_url: str, secret: str, region: str = "RegionOne", policy_file: str | None = None,
              bus: Any = None, options: dict[str, Any] | None = None) -> Starlette:
    """The dashboard app: ``identity_url`` is identity's public /v3 URL; the rest comes from its catalog."""
    from cumulo.dashboard import pages

    checks, descriptions = authz.defaults(policies.RULES)
    http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0),
                             limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pages.FILTERS)
    d = Dashboard(Sealer(secret), http, Catalog(http, identity_url, region),
                  Enforcer(checks, policy_file, descriptions), env, options=dict(options or {}))
    if bus is not None:
        from cumulo.dashboard.events import EventStream

        d.events = EventStream(bus)
    routes: list[BaseRoute] = [Route("/", lambda r: RedirectResponse("/project/", status_code=303))]
    for module in pages.MODULES:
        routes += module.routes(d)
        d.nav += getattr(module, "NAV", [])
    routes.append(Mount("/static", StaticFiles(directory=HERE / "static"), name="static"))
    if VENDOR.is_dir():
        routes.append(Mount("/vendor", StaticFiles(directory=VENDOR), name="vendor"))
    async def unexpected(request: Request, exc: Exception) -> Response:
        LOG.exception("dashboard page %s failed", request.url.path, exc_info=exc)
        return HTMLResponse("<!DOCTYPE html><title>Error</title><p>The dashboard failed to build this page; the "
                            "operator finds why in the cloud's log (logger cumulo.dashboard).</p>", status_code=500)

    async def subscribe() -> None:  # early, so a page's stream can be sent what changed after its render
        if d.events is not None:
            try:
                await d.events.start()
            except Exception as exc:  # noqa: BLE001  (the first stream subscribes again)
                LOG.warning("the dashboard's event subscription failed at start: %s", exc)

    app = Starlette(routes=routes, on_startup=[subscribe], on_shutdown=[http.aclose],
                    exception_handlers={Exception: unexpected}, middleware=[Middleware(Guard)])
    app.state.dashboard = d
    app.state.started = time.time()
    return app
