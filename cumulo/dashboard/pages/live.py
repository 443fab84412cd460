"""``GET /events``: the signed-in user's event stream (``cumulo.dashboard.events``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cumulo.dashboard.app import Dashboard, view
from cumulo.dashboard.client import Api
from cumulo.dashboard.session import Session

NAV: list[tuple[str, str, str, str]] = []


def routes(d: Dashboard) -> list[Route]:
    async def events(request: Request, session: Session, api: Api) -> Response:
        if d.events is None:
            return Response("retry: 60000\n\n", media_type="text/event-stream")
        return StreamingResponse(d.events.stream(session.project_id, session.is_admin, session.expires_at),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return [Route("/events", view(d, events), methods=["GET"])]
