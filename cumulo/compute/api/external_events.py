"""/v2.1/os-server-external-events: what other services tell Compute about its servers (a port
changed or was plugged, a volume grew, the power changed), answered per event as Nova answers.

Nothing here waits on these events: server addresses are read from the Network API when shown,
so the events are acknowledged for the servers that exist on a host and refused for the rest.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.common import at_least
from cumulo.compute.servers import ServerManager
from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest

LOG = logging.getLogger(__name__)
# event name -> the microversion that brought it
EVENTS = {"network-changed": 1, "network-vif-plugged": 1, "network-vif-unplugged": 1, "network-vif-deleted": 1,
          "volume-extended": 51, "power-update": 76, "accelerator-request-bound": 82, "volume-reimaged": 93}
TAG_REQUIRED = {"volume-extended", "power-update", "accelerator-request-bound"}
STATUSES = ("failed", "completed", "in-progress")
MAX_EVENTS = 1000


def check(request: Request, body: Any) -> list[dict[str, Any]]:
    events = body.get("events") if isinstance(body, dict) and set(body) == {"events"} else None
    if not isinstance(events, list) or not 0 < len(events) <= MAX_EVENTS:
        raise BadRequest(f"The body must be {{\"events\": [...]}} with 1 to {MAX_EVENTS} events.")
    names = [n for n, minor in EVENTS.items() if at_least(request, minor)]
    for e in events:
        if not isinstance(e, dict) or set(e) - {"name", "server_uuid", "status", "tag"}:
            raise BadRequest("An event has name, server_uuid, and optionally status and tag.")
        if e.get("name") not in names:
            raise BadRequest(f"Invalid event name {e.get('name')!r}: one of {', '.join(names)}.")
        try:
            uuid.UUID(str(e.get("server_uuid")))
        except ValueError:
            raise BadRequest(f"Invalid server_uuid {e.get('server_uuid')!r}: a UUID.") from None
        if e.get("status", "completed") not in STATUSES:
            raise BadRequest(f"Invalid event status {e.get('status')!r}: one of {', '.join(STATUSES)}.")
        if "tag" in e and (not isinstance(e["tag"], str) or len(e["tag"]) > 255):
            raise BadRequest("An event's tag is a string of at most 255 characters.")
    return events


def router(manager: ServerManager) -> Router:
    r = Router()

    @r.post("/v2.1/os-server-external-events")
    async def create(request: Request) -> Response:
        authorize(request, "os_compute_api:os-server-external-events:create")
        events = check(request, await json_body(request))
        status = 200
        out = []
        for e in events:
            answer = dict(e)
            server = await manager.get(e["server_uuid"])
            if server is None or server.deleted_at is not None:
                answer.update(status="failed", code=404)
            elif e["name"] in TAG_REQUIRED and "tag" not in e:
                answer.update(status="failed", code=400)
            elif server.host:
                LOG.info("event %s:%s for server %s on %s", e["name"], e.get("tag"), server.id, server.host)
                answer.update(status="completed", code=200)
            else:  # no host to deliver it to
                answer.update(status="failed", code=422)
            if answer["code"] != 200:
                status = 207
            out.append(answer)
        return JSON({"events": out}, status_code=status)

    return r
