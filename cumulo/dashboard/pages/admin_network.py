"""Admin network pages: the networks and routers of every project, each with its project's name.

Neutron lists every project's resources to an admin, paged with limit and marker and filtered by
``project_id``; one call to identity names the projects.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.dashboard.app import Dashboard, view
from cumulo.dashboard.client import Api
from cumulo.dashboard.pages.admin import cut, gather, marker, page_size, project_names, query_of
from cumulo.dashboard.session import Session

NAV = [("admin", "Network", "Networks", "/admin/networks"),
       ("admin", "Network", "Routers", "/admin/routers")]


def routes(d: Dashboard) -> list[Route]:
    async def listing(request: Request, api: Api, collection: str) -> dict[str, Any]:
        limit = page_size(request)
        query = query_of(request, "project_id", "name")
        data, names = await gather(
            api.get("network", f"/v2.0/{collection}", limit=limit + 1, marker=marker(request), **query),
            project_names(api))
        rows, next_marker = cut(data[collection], limit)
        return {"rows": rows, "names": names, "query": query, "limit": limit, "marker": marker(request),
                "next_marker": next_marker}

    async def networks(request: Request, session: Session, api: Api) -> Response:
        return d.render(request, "admin_networks.html", title="Networks of every project",
                        **await listing(request, api, "networks"))

    async def routers(request: Request, session: Session, api: Api) -> Response:
        return d.render(request, "admin_routers.html", title="Routers of every project",
                        **await listing(request, api, "routers"))

    return [Route("/admin/networks", view(d, networks, panel="admin"), methods=["GET"]),
            Route("/admin/routers", view(d, routers, panel="admin"), methods=["GET"])]
