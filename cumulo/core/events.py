"""Resource events: "this resource changed", published on the bus for whoever shows state live.

A service publishes one after it commits a state change of a server, volume, image, port, ...::

    await events.changed(bus, "server", server_id, project_id, "update", status="ACTIVE")

The topic is ``resource.<kind>.<action>`` (action: create, update, delete) and the event holds
only what a member of the project may see anyway: the kind, id, project, action, status and the
request id that caused it.  Readers (the dashboard's event stream) fetch the resource itself
through the API with their own token.  Publishing never fails the caller: a lost event only
makes a page wait for the next one.
"""

from __future__ import annotations

import logging
from typing import Any

from cumulo.core.bus.interface import request_id

LOG = logging.getLogger(__name__)
TOPIC = "resource.{kind}.{action}"
ACTIONS = ("create", "update", "delete")


async def changed(bus: Any, kind: str, resource_id: str, project_id: str | None, action: str = "update",
                  status: str = "", **extra: Any) -> None:
    if bus is None:
        return
    event = {"kind": kind, "id": resource_id, "project_id": project_id or "", "action": action, "status": status,
             "request_id": request_id() or ""}
    event.update({k: v for k, v in extra.items() if isinstance(v, (str, int, float, bool)) or v is None})
    try:
        await bus.publish(TOPIC.format(kind=kind, action=action), event)
    except Exception as exc:  # noqa: BLE001  (the state change has committed; the event is a courtesy)
        LOG.warning("the %s event of %s %s was not published: %s", action, kind, resource_id, exc)
