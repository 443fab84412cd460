"""Instances: the list (one API call a page: Nova filters, sorts and pages), a row as a fragment
for live updates, and the row and bulk actions; the routes of the launch wizard
(``instance_launch``), an instance's page and its action forms (``instance_detail``) and its
consoles in the browser (``instance_consoles``).

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
from cumulo.dashboard.pages import instance_consoles, instance_detail, instance_launch
from cumulo.dashboard.session import Session

NAV = [("project", "Compute", "Instances", "/project/instances")]
MAX_BULK = 100
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
# offered to admins only (the API's rule is admin-only too): a cold migration to another node
ADMIN_ACTIONS: dict[str, tuple[dict[str, Any], str]] = {"migrate": ({"migrate": None}, "Migrating")}


def back_to(value: Any) -> str:
    """Where an action's form goes back to: an instances page of this dashboard, or the list."""
    target = str(value or "")
    return target if target.startswith("/project/instances") and "//" not in target and len(target) < 200 \
        else "/project/instances"


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
                        next_marker=next_marker, statuses=STATUSES, page_sizes=PAGE_SIZES, actions=ACTIONS,
                        admin_actions=ADMIN_ACTIONS)

    async def row(request: Request, session: Session, api: Api) -> Response:
        data = await api.find("compute", f"/servers/{request.path_params['server_id']}")
        if data is None:
            return Response(status_code=404)
        server = data["server"]
        return d.render(request, "instance_row.html", server=server, actions=ACTIONS, admin_actions=ADMIN_ACTIONS)

    async def status(request: Request, session: Session, api: Api) -> Response:
        """The status, fault and buttons of an instance's page, as a fragment (404: it is gone)."""
        data = await api.find("compute", f"/servers/{request.path_params['server_id']}")
        if data is None:
            return Response(status_code=404)
        server = data["server"]
        return d.render(request, "instance_status.html", server=server)

    async def action(request: Request, session: Session, api: Api) -> Response:
        form = await request.form()
        name = str(form.get("action", ""))
        ids = [request.path_params["server_id"]] if "server_id" in request.path_params else \
            [str(v)[:64] for v in form.getlist("server_id")]
        back = back_to(form.get("next"))
        known = {**ACTIONS, **ADMIN_ACTIONS}
        if not ids:
            return d.redirect(back, ("error", "Choose at least one instance."))
        if len(ids) > MAX_BULK:  # each is one API call, made in turn
            return d.redirect(back, ("error", f"Choose at most {MAX_BULK} instances at once ({len(ids)} chosen)."))
        if name != "delete" and name not in known:
            return d.redirect(back, ("error", f"There is no action {name[:40]!r}."))
        failed = []
        for server_id in ids:
            try:
                if name == "delete":
                    await api.delete("compute", f"/servers/{server_id}")
                else:
                    await api.post("compute", f"/servers/{server_id}/action", known[name][0])
            except ApiError as exc:
                failed.append(f"{server_id[:8]}: {exc.message}")
        if failed:
            return d.redirect(back, ("error", "; ".join(failed)[:480]))
        if name == "delete" and back != "/project/instances" and len(ids) == 1:
            back = "/project/instances"  # the instance's own page is going away
        words = "Deleting" if name == "delete" else known[name][1]
        return d.redirect(back, ("info", f"{words} {len(ids)} instance{'s' if len(ids) != 1 else ''}."))

    launch = instance_launch.views(d)
    detail = instance_detail.views(d)
    consoles = instance_consoles.views(d)
    one = "/project/instances/{server_id}"
    return [Route("/project/instances", view(d, index), methods=["GET"]),
            Route("/project/instances/launch", view(d, launch["page"]), methods=["GET"]),
            Route("/project/instances/launch", view(d, launch["launch"]), methods=["POST"]),
            Route("/project/instances/bulk", view(d, action), methods=["POST"]),
            Route(one, view(d, detail["detail"]), methods=["GET"]),
            Route(f"{one}/row", view(d, row), methods=["GET"]),
            Route(f"{one}/status", view(d, status), methods=["GET"]),
            Route(f"{one}/action", view(d, action), methods=["POST"]),
            Route(f"{one}/console", view(d, consoles["console"]), methods=["GET"]),
            Route(f"{one}/vnc", view(d, consoles["vnc"]), methods=["GET"]),
            *[Route(f"{one}/{name}", view(d, detail["form"](name)), methods=["GET", "POST"])
              for name in instance_detail.FORMS],
            Route(f"{one}/{{what:str}}/{{item_id}}/detach", view(d, detail["undo"]), methods=["POST"])]
