"""Instances: the list (one API call a page: Nova filters, sorts and pages), a row as a fragment
for live updates, and the row and bulk actions.

The list asks ``GET /servers/detail`` with ``limit`` and ``marker`` and the filters the user
chose; flavors come embedded in each server (2.47), so no other call is needed to show a page.
``/project/instances/{id}/row`` renders one row, which the page's script fetches when the event
stream says that server changed (or removes, when the server is gone).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.dashboard.app import Dashboard, view
from cumulo.dashboard.client import Api, ApiError
from cumulo.dashboard.session import Session

NAV = [("project", "Compute", "Instances", "/project/instances")]
PAGE_SIZES = (20, 50, 100, 1000)
FILTERS = ("name", "status", "image", "flavor", "ip")
STATUSES = ("ACTIVE", "BUILD", "ERROR", "SHUTOFF", "PAUSED", "SUSPENDED", "SHELVED_OFFLOADED", "RESIZE",
            "VERIFY_RESIZE", "REBOOT", "HARD_REBOOT", "RESCUE", "MIGRATING")

# action name -> (the request body of POST /servers/{id}/action, words for the flash message)
ACTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "start": ({"os-start": None}, "Starting"),
    "stop": ({"os-stop": None}, "Stopping"),
    "reboot": ({"reboot": {"type": "SOFT"}}, "Rebooting"),
    "hard_reboot": ({"reboot": {"type": "HARD"}}, "Hard rebooting"),
    "pause": ({"pause": None}, "Pausing"),
    "unpause": ({"unpause": None}, "Unpausing"),
    "suspend": ({"suspend": None}, "Suspending"),
    "resume": ({"resume": None}, "Resuming"),
    "shelve": ({"shelve": None}, "Shelving"),
    "unshelve": ({"unshelve": None}, "Unshelving"),
    "lock": ({"lock": None}, "Locking"),
    "unlock": ({"unlock": None}, "Unlocking"),
    "confirm_resize": ({"confirmResize": None}, "Confirming the resize of"),
    "revert_resize": ({"revertResize": None}, "Reverting the resize of"),
}


def page_params(request: Request) -> dict[str, Any]:
    q = request.query_params
    try:
        limit = int(q.get("limit", "20"))
    except ValueError:
        limit = 20
    params: dict[str, Any] = {"limit": limit if limit in PAGE_SIZES else 20, "marker": q.get("marker", "")[:64]}
    for key in FILTERS:
        params[key] = q.get(key, "")[:255]
    if params["status"] and params["status"] not in STATUSES:
        params["status"] = ""
    return params


async def server_page(api: Api, params: dict[str, Any], all_projects: bool = False) -> tuple[list[Any], str]:
    """One page of servers and the marker of the next one ("" on the last page)."""
    query = dict(params, limit=params["limit"] + 1, sort_key="created_at", sort_dir="desc")
    if all_projects:
        query["all_tenants"] = "1"
    servers = (await api.get("compute", "/servers/detail", **query))["servers"]
    more = len(servers) > params["limit"]
    servers = servers[:params["limit"]]
    return servers, servers[-1]["id"] if more and servers else ""


def routes(d: Dashboard) -> list[Route]:
    async def index(request: Request, session: Session, api: Api) -> Response:
        params = page_params(request)
        servers, next_marker = await server_page(api, params)
        return d.render(request, "instances.html", title="Instances", servers=servers, params=params,
                        next_marker=next_marker, statuses=STATUSES, page_sizes=PAGE_SIZES, actions=ACTIONS)

    async def row(request: Request, session: Session, api: Api) -> Response:
        try:
            server = (await api.get("compute", f"/servers/{request.path_params['server_id']}"))["server"]
        except ApiError as exc:
            if exc.status == 404:
                return Response(status_code=404)
            raise
        return d.render(request, "instance_row.html", server=server, actions=ACTIONS)

    async def action(request: Request, session: Session, api: Api) -> Response:
        form = await request.form()
        name = str(form.get("action", ""))
        ids = [request.path_params["server_id"]] if "server_id" in request.path_params else \
            [str(v)[:64] for v in form.getlist("server_id")][:1000]
        back = "/project/instances"
        if not ids:
            return d.redirect(back, ("error", "Choose at least one instance."))
        if name != "delete" and name not in ACTIONS:
            return d.redirect(back, ("error", f"There is no action {name[:40]!r}."))
        failed = []
        for server_id in ids:
            try:
                if name == "delete":
                    await api.delete("compute", f"/servers/{server_id}")
                else:
                    await api.post("compute", f"/servers/{server_id}/action", ACTIONS[name][0])
            except ApiError as exc:
                failed.append(f"{server_id[:8]}: {exc.message}")
        if failed:
            return d.redirect(back, ("error", "; ".join(failed)[:480]))
        words = "Deleting" if name == "delete" else ACTIONS[name][1]
        return d.redirect(back, ("info", f"{words} {len(ids)} instance{'s' if len(ids) != 1 else ''}."))

    return [Route("/project/instances", view(d, index), methods=["GET"]),
            Route("/project/instances/bulk", view(d, action), methods=["POST"]),
            Route("/project/instances/{server_id}/row", view(d, row), methods=["GET"]),
            Route("/project/instances/{server_id}/action", view(d, action), methods=["POST"])]
