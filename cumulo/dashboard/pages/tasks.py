"""The task log: the long operations the signed-in user started lately, with their state, request
id and error in words (``/project/tasks``), the header's count of those still running
(``/project/tasks/count``, JSON, kept current by static/tasks.js), and one sample of a server's
diagnostics for its graphs (``/project/metrics/servers/{id}``, JSON, drawn by static/graphs.js).

Where the log's rows come from, all through the APIs with the user's own token, in bounded calls:

* servers: ``GET /servers/detail?changes-since=<SINCE ago>`` (at most ``MAX_SERVERS``), then each
  one's ``os-instance-actions`` since then that this user started, and for the newest
  ``MAX_DETAILS`` of those the action itself, whose events' results say Success or Error (no event
  yet: still running).  The error in words is the server's fault message.
* images of the project being uploaded, imported or saved (one ``GET /v2/images``);
* volumes and backups in a transitional or error state (one call each), with Cinder's user
  messages (``GET /messages``) for the ones in error.

Nova's diagnostics are an administrator's by default policy: a member's graphs show the API's
403 in words.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cumulo.dashboard.app import SECURITY_HEADERS, Dashboard, view
from cumulo.dashboard.client import Api, ApiError
from cumulo.dashboard.session import Session

NAV = [("project", "Compute", "Tasks", "/project/tasks")]
SINCE = dt.timedelta(hours=24)
MAX_SERVERS = 20
MAX_DETAILS = 20
PARALLEL = 6  # calls in flight per page
DIAGNOSTICS_VERSION = {"OpenStack-API-Version": "compute 2.48", "X-OpenStack-Nova-API-Version": "2.48"}
# what a server's status says while an operation runs
SERVER_BUSY = {"BUILD", "REBUILD", "RESIZE", "REVERT_RESIZE", "MIGRATING", "REBOOT", "HARD_REBOOT", "PASSWORD"}
IMAGE_BUSY = {"queued", "saving", "uploading", "importing"}
VOLUME_BUSY = {"creating", "attaching", "detaching", "deleting", "extending", "downloading", "uploading",
               "backing-up", "restoring-backup", "retyping", "migrating", "reserved", "maintenance"}
BACKUP_BUSY = {"creating", "restoring", "deleting"}
# what Nova names its actions, in the words the log shows
ACTION_WORDS = {"create": "Boot", "delete": "Delete", "resize": "Resize", "confirmResize": "Confirm resize",
                "revertResize": "Revert resize", "rebuild": "Rebuild", "createImage": "Snapshot",
                "migrate": "Migrate", "live-migration": "Live migrate", "evacuate": "Evacuate",
                "shelve": "Shelve", "shelveOffload": "Shelve offload", "unshelve": "Unshelve",
                "reboot": "Reboot", "stop": "Stop", "start": "Start", "pause": "Pause", "unpause": "Unpause",
                "suspend": "Suspend", "resume": "Resume", "rescue": "Rescue", "unrescue": "Unrescue",
                "attach_volume": "Attach volume", "detach_volume": "Detach volume", "swap_volume": "Swap volume",
                "attach_interface": "Attach interface", "detach_interface": "Detach interface", "backup": "Backup"}


def errored(status: str) -> bool:
    return status.lower().startswith("error") or status.lower() == "killed"


async def bounded(calls: list[Any]) -> list[Any]:
    """Run the calls at most PARALLEL at a time; a call that fails gives None."""
    gate = asyncio.Semaphore(PARALLEL)

    async def one(coro: Any) -> Any:
        async with gate:
            try:
                return await coro
            except ApiError:
                return None

    return list(await asyncio.gather(*(one(c) for c in calls)))


async def quietly(coro: Any) -> Any:
    try:
        return await coro
    except ApiError:
        return None


def since_param(now: dt.datetime) -> str:
    return (now - SINCE).strftime("%Y-%m-%dT%H:%M:%SZ")


async def recent_servers(api: Api, now: dt.datetime) -> list[dict[str, Any]]:
    data = await quietly(api.get("compute", "/servers/detail", **{"changes-since": since_param(now)},
                                 limit=MAX_SERVERS))
    return list((data or {}).get("servers", []))[:MAX_SERVERS]


async def server_tasks(api: Api, session: Session, now: dt.datetime) -> list[dict[str, Any]]:
    servers = await recent_servers(api, now)
    lists = await bounded([api.get("compute", f"/servers/{s['id']}/os-instance-actions",
                                   **{"changes-since": since_param(now)}) for s in servers])
    found: list[tuple[dict[str, Any], dict[str, Any], bool]] = []  # (server, action, the server's newest)
    for server, listed in zip(servers, lists, strict=True):
        actions = [a for a in (listed or {}).get("instanceActions", []) if a.get("user_id") == session.user_id]
        found += [(server, a, i == 0) for i, a in enumerate(actions)]
    found.sort(key=lambda f: str(f[1].get("start_time") or ""), reverse=True)
    details = await bounded([api.get("compute", f"/servers/{s['id']}/os-instance-actions/{a['request_id']}")
                             for s, a, _ in found[:MAX_DETAILS]])
    tasks = []
    faulted: set[str] = set()  # the server's fault is the newest failure's words
    for n, (server, action, newest) in enumerate(found):
        detail = (details[n] or {}).get("instanceAction", {}) if n < len(details) else {}
        events = detail.get("events") or []
        results = {str(e.get("result") or "") for e in events}
        busy = newest and (server.get("status") in SERVER_BUSY or bool(server.get("OS-EXT-STS:task_state")))
        if "Error" in results or action.get("message") == "Error":
            state = "error"
        elif busy and (not events or n >= len(details)):
            state = "running"
        else:
            state = "done"
        error = ""
        if state == "error":
            fault = server.get("fault") or {}
            if server["id"] not in faulted:
                faulted.add(server["id"])
                error = str(fault.get("message") or "")
            error = error or "The operation failed; the server keeps no fault of it."
        tasks.append({"kind": "server", "id": server["id"], "name": server.get("name") or server["id"],
                      "link": f"/project/instances/{server['id']}",
                      "what": ACTION_WORDS.get(action.get("action", ""), action.get("action", "")),
                      "request_id": action.get("request_id", ""), "started": action.get("start_time"),
                      "state": state, "status": server.get("status", ""), "error": error})
    return tasks


async def image_tasks(api: Api, session: Session) -> list[dict[str, Any]]:
    data = await quietly(api.get("image", "/v2/images", owner=session.project_id, sort="updated_at:desc",
                                 limit=50))
    tasks = []
    for image in (data or {}).get("images", []):
        status = str(image.get("status") or "")
        if status in IMAGE_BUSY or status == "killed":
            tasks.append({"kind": "image", "id": image["id"], "name": image.get("name") or image["id"],
                          "link": f"/project/images/{image['id']}",
                          "what": {"queued": "Image upload", "saving": "Image save", "uploading": "Image upload",
                                   "importing": "Image import"}.get(status, "Image upload"),
                          "request_id": "", "started": image.get("created_at"),
                          "state": "error" if status == "killed" else "running", "status": status,
                          "error": "The image's data did not arrive whole: it was killed." if status == "killed"
                          else ""})
    return tasks


async def storage_tasks(api: Api, session: Session) -> list[dict[str, Any]]:
    volumes, backups, messages = await asyncio.gather(
        quietly(api.get("block-storage", "/volumes/detail", limit=50)),
        quietly(api.get("block-storage", "/backups/detail", limit=50)),
        quietly(api.get("block-storage", "/messages", limit=50)))
    said: dict[str, dict[str, Any]] = {}
    for m in (messages or {}).get("messages", []):  # newest first: the first per resource stays
        said.setdefault(str(m.get("resource_uuid")), m)
    tasks = []
    for kind, rows, busy, link in (("volume", (volumes or {}).get("volumes", []), VOLUME_BUSY, "/project/volumes"),
                                   ("backup", (backups or {}).get("backups", []), BACKUP_BUSY, "/project/backups")):
        for row in rows:
            status = str(row.get("status") or "")
            if status not in busy and not errored(status):
                continue
            if row.get("user_id") not in (None, session.user_id):
                continue
            message = said.get(row["id"], {})
            tasks.append({"kind": kind, "id": row["id"], "name": row.get("name") or row["id"],
                          "link": f"{link}/{row['id']}", "what": f"{kind.capitalize()} {status}",
                          "request_id": message.get("request_id", ""),
                          "started": row.get("updated_at") or row.get("created_at"),
                          "state": "error" if errored(status) else "running", "status": status,
                          "error": message.get("user_message", "") if errored(status) else ""})
    return tasks


async def task_log(api: Api, session: Session) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    parts = await asyncio.gather(server_tasks(api, session, now), image_tasks(api, session),
                                 storage_tasks(api, session))
    tasks = [t for part in parts for t in part]
    tasks.sort(key=lambda t: str(t.get("started") or ""), reverse=True)
    return tasks


async def running_count(api: Api, session: Session) -> int:
    """What is running now, in three calls: the user's busy servers, the project's busy images,
    and the user's busy volumes and backups."""
    now = dt.datetime.now(dt.UTC)
    servers, images, storage = await asyncio.gather(recent_servers(api, now), image_tasks(api, session),
                                                    storage_tasks(api, session))
    busy = [s for s in servers if s.get("user_id") == session.user_id
            and (s.get("status") in SERVER_BUSY or s.get("OS-EXT-STS:task_state"))]
    return len(busy) + sum(1 for t in images + storage if t["state"] == "running")


def sample(diagnostics: dict[str, Any]) -> dict[str, Any]:
    """One sample of Nova's diagnostics (2.48): cumulative counters and the memory in use."""
    def total(rows: Any, key: str) -> int:
        return sum(int(r.get(key) or 0) for r in rows or [] if isinstance(r, dict))

    memory = diagnostics.get("memory_details") or {}
    return {"at": time.time(), "state": diagnostics.get("state"), "uptime": diagnostics.get("uptime"),
            "cpus": int(diagnostics.get("num_cpus") or len(diagnostics.get("cpu_details") or []) or 1),
            "cpu_time_ns": total(diagnostics.get("cpu_details"), "time"),
            "memory_used_mib": int(memory.get("used") or 0), "memory_max_mib": int(memory.get("maximum") or 0),
            "disk_read_bytes": total(diagnostics.get("disk_details"), "read_bytes"),
            "disk_write_bytes": total(diagnostics.get("disk_details"), "write_bytes"),
            "rx_bytes": total(diagnostics.get("nic_details"), "rx_octets"),
            "tx_bytes": total(diagnostics.get("nic_details"), "tx_octets")}


def routes(d: Dashboard) -> list[Route]:
    async def tasks(request: Request, session: Session, api: Api) -> Response:
        return d.render(request, "tasks_list.html", title="Tasks", tasks=await task_log(api, session),
                        hours=int(SINCE.total_seconds() // 3600))

    async def rows(request: Request, session: Session, api: Api) -> Response:
        return d.render(request, "tasks_rows.html", tasks=await task_log(api, session))

    async def count(request: Request, session: Session, api: Api) -> Response:
        return JSONResponse({"running": await running_count(api, session)}, headers=SECURITY_HEADERS)

    async def metrics(request: Request, session: Session, api: Api) -> Response:
        server_id = request.path_params["server_id"]
        try:
            r = await api.call("GET", "compute", f"/servers/{server_id}/diagnostics", headers=DIAGNOSTICS_VERSION)
        except ApiError as exc:
            return JSONResponse({"error": exc.message, "request_id": exc.request_id}, status_code=exc.status,
                                headers=SECURITY_HEADERS)
        return JSONResponse(sample(r.data or {}), headers=SECURITY_HEADERS)

    return [Route("/project/tasks", view(d, tasks), methods=["GET"]),
            Route("/project/tasks/rows", view(d, rows), methods=["GET"]),
            Route("/project/tasks/count", view(d, count), methods=["GET"]),
            Route("/project/metrics/servers/{server_id}", view(d, metrics), methods=["GET"])]
