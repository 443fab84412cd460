"""Signing in and out, and switching project: identity's token API, nothing else.

Login takes a user name, password and domain (and a project, or the first the user has a role
in); the scoped token goes into the sealed session cookie.  Logout revokes the token.  Switching
project rescopes the current token (Keystone's ``token`` method) and revokes the old one.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cumulo.dashboard.app import Dashboard, same_origin, view
from cumulo.dashboard.client import Api, ApiError, fault_message
from cumulo.dashboard.session import COOKIE, Session

NAV: list[tuple[str, str, str, str]] = []
MAX_FIELD = 255
MAX_COOKIE = 4000  # what Sealer.open takes (4096) less the cookie's name and attributes


def safe_next(value: str | None) -> str:
    """Only a path of this site (no scheme, no host, no //): never an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/project/"
    parts = urlsplit(value)
    return "/project/" if parts.scheme or parts.netloc else value


async def token_request(d: Dashboard, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    url = d.catalog.identity_url + "/auth/tokens"
    try:
        r = await d.http.post(url, json={"auth": body})
    except httpx.HTTPError:
        raise ApiError(503, "Identity did not answer: is the cloud running?") from None
    if r.status_code == 401:
        message = fault_message(401, r.content)
        if "requires authentication" in message or not message:
            message = "The user name or the password is wrong (or the account is disabled)."
        raise ApiError(401, message)
    if r.status_code >= 400:
        raise ApiError(r.status_code, fault_message(r.status_code, r.content))
    return r.headers["X-Subject-Token"], r.json()["token"]


def session_of(token: str, body: dict[str, Any]) -> Session:
    expires = dt.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")).timestamp()
    project = body.get("project") or {}
    return Session(token=token, user_id=body["user"]["id"], user_name=body["user"].get("name", ""),
                   domain_id=body["user"].get("domain", {}).get("id", ""), project_id=project.get("id", ""),
                   project_name=project.get("name", ""), roles=sorted(r["name"] for r in body.get("roles", [])),
                   expires_at=expires)


def signed_in(d: Dashboard, request: Request, session: Session, to: str) -> Response:
    """The new session's cookie (Secure when the dashboard is reached over HTTPS) and the way on."""
    sealed = d.sealer.seal(session)
    if len(sealed) > MAX_COOKIE:  # a browser drops a larger cookie: the user would loop on the login page
        raise ApiError(400, "This sign-in's session is too large for a cookie (too many roles?): ask an "
                            "administrator.")
    response = RedirectResponse(to, status_code=303)
    response.set_cookie(COOKIE, sealed, httponly=True, samesite="lax", path="/",
                        secure=request.url.scheme == "https", max_age=max(1, int(session.expires_at - time.time())))
    return response


async def revoke(d: Dashboard, token: str) -> None:
    try:
        await d.http.delete(d.catalog.identity_url + "/auth/tokens",
                            headers={"X-Auth-Token": token, "X-Subject-Token": token})
    except httpx.HTTPError:
        pass


def routes(d: Dashboard) -> list[Route]:
    async def login_page(request: Request) -> Response:
        expired = request.query_params.get("expired")
        return d.render(request, "login.html", next=safe_next(request.query_params.get("next")),
                        error="Your session has ended: sign in again." if expired else "",
                        form={"domain": "Default"})

    async def login(request: Request) -> Response:
        form = await request.form()
        fields = {k: str(form.get(k, "")).strip()[:MAX_FIELD + 1] for k in ("username", "password", "domain",
                                                                             "project")}
        fields["domain"] = fields["domain"] or "Default"
        to = safe_next(str(form.get("next", "")))
        if not same_origin(request):
            return d.render(request, "login.html", 403, error="The form was not sent from this dashboard.",
                            next=to, form=fields)
        if not fields["username"] or not fields["password"]:
            return d.render(request, "login.html", 400, error="Give a user name and a password.", next=to,
                            form=fields)
        if any(len(v) > MAX_FIELD for v in fields.values()):
            return d.render(request, "login.html", 400, error=f"A field is longer than {MAX_FIELD} characters.",
                            next=to, form=fields)
        domain = {"name": fields["domain"]}
        identity = {"methods": ["password"], "password": {"user": {"name": fields["username"], "domain": domain,
                                                                   "password": fields["password"]}}}
        try:
            if fields["project"]:
                token, body = await token_request(d, {"identity": identity, "scope": {
                    "project": {"name": fields["project"], "domain": domain}}})
            else:
                unscoped, _ = await token_request(d, {"identity": identity})
                try:
                    r = await d.http.get(d.catalog.identity_url + "/auth/projects",
                                         headers={"X-Auth-Token": unscoped})
                    projects = sorted(r.json().get("projects", []), key=lambda p: p["name"]) if r.is_success else []
                    if not projects:
                        raise ApiError(403, "This user has no role in any project: ask an administrator for one.")
                    token, body = await token_request(d, {"identity": {"methods": ["token"], "token": {
                        "id": unscoped}}, "scope": {"project": {"id": projects[0]["id"]}}})
                finally:
                    await revoke(d, unscoped)
            response = signed_in(d, request, session_of(token, body), to)
        except ApiError as exc:
            return d.render(request, "login.html", 401 if exc.status == 401 else 400, error=exc.message, next=to,
                            form={**fields, "password": ""})
        previous = d.sealer.open(request.cookies.get(COOKIE))
        if previous is not None and previous.token != token:  # signing in again ends the session before
            await revoke(d, previous.token)
        return response

    async def logout(request: Request, session: Session, api: Api) -> Response:
        await revoke(d, session.token)
        response = RedirectResponse("/auth/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def projects(request: Request, session: Session, api: Api) -> Response:
        data = await api.get("identity", "/auth/projects")
        listed = sorted(data.get("projects", []), key=lambda p: (p.get("domain_id", ""), p["name"]))
        return d.render(request, "projects.html", title="Projects", projects=listed)

    async def switch(request: Request, session: Session, api: Api) -> Response:
        form = await request.form()
        project_id = str(form.get("project_id", ""))[:64]
        try:
            token, body = await token_request(d, {"identity": {"methods": ["token"], "token": {"id": session.token}},
                                                  "scope": {"project": {"id": project_id}}})
            response = signed_in(d, request, session_of(token, body), "/project/")
        except ApiError as exc:
            return d.redirect("/auth/projects", ("error", exc.message))
        await revoke(d, session.token)
        return response

    return [
        Route("/auth/login", login_page, methods=["GET"]),
        Route("/auth/login", login, methods=["POST"]),
        Route("/auth/logout", view(d, logout), methods=["POST"]),
        Route("/auth/projects", view(d, projects), methods=["GET"]),
        Route("/auth/switch", view(d, switch), methods=["POST"]),
    ]
