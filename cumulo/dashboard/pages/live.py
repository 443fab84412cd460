"""``GET /events``: the signed-in user's event stream (``cumulo.dashboard.events``).

The stream makes no API call of its own, so before it opens (and every ``REVALIDATE`` seconds
while it runs) identity is asked about the session's token: a revoked token (a sign-out, an
administrator's revocation, a copied cookie of a session that ended) gets 401, not a stream.
Whether the stream carries every project's events is decided from the roles identity gives for
the token now (the ``dashboard:admin_panel`` rule), not from the roles the cookie remembers.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cumulo.dashboard import events as stream_module
from cumulo.dashboard.app import Dashboard, view
from cumulo.dashboard.client import Api
from cumulo.dashboard.session import COOKIE, Session

NAV: list[tuple[str, str, str, str]] = []


async def token_now(d: Dashboard, token: str) -> dict[str, Any] | None:
    """Identity's body for ``token`` (its roles as they are now), None when it is no longer valid.
    An identity that does not answer is not a revocation: the session's cookie is trusted then."""
    try:
        r = await d.http.get(d.catalog.identity_url + "/auth/tokens",
                             headers={"X-Auth-Token": token, "X-Subject-Token": token})
    except httpx.HTTPError:
        return {}
    if r.status_code in (401, 403, 404):
        return None
    if r.status_code != 200:
        return {}
    body: dict[str, Any] = r.json().get("token") or {}
    return body


def since_of(value: str | None) -> float:
    """The page's ``since`` (when its request began, seconds since the epoch), a second early for
    another process's clock; 0 (nothing to replay) when absent or not a time."""
    try:
        since = float(value or 0)
    except ValueError:
        return 0.0
    return since - 1.0 if math.isfinite(since) and since > 0 else 0.0


def routes(d: Dashboard) -> list[Route]:
    async def events(request: Request, session: Session, api: Api) -> Response:
        if d.events is None:
            return Response("retry: 60000\n\n", media_type="text/event-stream")
        body = await token_now(d, session.token)
        if body is None:
            response = Response("Your session has ended: sign in again.", status_code=401,
                                headers={"X-Login": "/auth/login"})
            response.delete_cookie(COOKIE, path="/")
            return response
        roles = sorted(r["name"] for r in body["roles"]) if "roles" in body else session.roles
        everything = d.allowed(Session(**{**session.__dict__, "roles": roles}), "dashboard:admin_panel")

        async def still_valid() -> bool:
            return await token_now(d, session.token) is not None

        return StreamingResponse(d.events.stream(session.project_id, everything, session.expires_at, still_valid,
                                                 stream_module.REVALIDATE, session.user_id,
                                                 since_of(request.query_params.get("since"))),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return [Route("/events", view(d, events), methods=["GET"])]
