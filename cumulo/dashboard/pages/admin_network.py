"""Admin network pages: the networks and routers of every project, each with its project's name;
an admin makes a network for any project (shared, external, with provider attributes) and
deletes any project's network or router.

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
from cumulo.dashboard.pages.admin import (
    Field,
    act,
    cut,
    form_page,
    gather,
    marker,
    number,
    page_size,
    project_names,
    query_of,
)
from cumulo.dashboard.session import Session

NAV = [("admin", "Network", "Networks", "/admin/networks"),
       ("admin", "Network", "Routers", "/admin/routers")]
NETWORK_TYPES = [("", "the default (vxlan)"), ("vxlan", "vxlan"), ("flat", "flat"), ("local", "local")]


def network_body(values: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"name": values["name"], "project_id": values["project_id"],
                            "shared": values["shared"], "router:external": values["external"],
                            "admin_state_up": values["admin_state_up"]}
    if values["network_type"]:
        body["provider:network_type"] = values["network_type"]
        if values["physical_network"]:
            body["provider:physical_network"] = values["physical_network"]
        if values["segmentation_id"]:
            body["provider:segmentation_id"] = number(values["segmentation_id"])
    return {"network": body}


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

    async def network_create(request: Request, session: Session, api: Api) -> Response:
        names = await project_names(api)
        fields = [Field("name", "Name", required=True),
                  Field("project_id", "Project", "select", sorted(names.items(), key=lambda x: x[1].lower())),
                  Field("network_type", "Provider network type", "select", NETWORK_TYPES),
                  Field("physical_network", "Physical network", help="For a flat network: the host's bridge name."),
                  Field("segmentation_id", "Segmentation id", "number", help="The VXLAN VNI; empty: the next free."),
                  Field("shared", "Shared", "checkbox", help="Every project may attach ports to it."),
                  Field("external", "External", "checkbox", help="Routers' gateways and floating IPs come from it."),
                  Field("admin_state_up", "Admin state up", "checkbox")]

        async def submit(values: dict[str, Any]) -> Response:
            r = await api.post("network", "/v2.0/networks", network_body(values))
            return d.redirect("/admin/networks", ("info", f"Created the network {r.data['network']['name']}."))

        return await form_page(d, request, title="Create a network", fields=fields, submit=submit, button="Create",
                               back="/admin/networks", initial={"admin_state_up": True,
                                                                "project_id": session.project_id})

    def deleting(collection: str, words: str) -> Any:
        async def delete(request: Request, session: Session, api: Api) -> Response:
            item_id = request.path_params["item_id"]
            return await act(d, f"/admin/{collection}", api.delete("network", f"/v2.0/{collection}/{item_id}"),
                             words)
        return delete

    def admin(fn: Any) -> Any:
        return view(d, fn, panel="admin")

    return [Route("/admin/networks", admin(networks), methods=["GET"]),
            Route("/admin/networks/create", admin(network_create), methods=["GET", "POST"]),
            Route("/admin/routers", admin(routers), methods=["GET"]),
            Route("/admin/networks/{item_id}/delete", admin(deleting("networks", "Deleted the network.")),
                  methods=["POST"]),
            Route("/admin/routers/{item_id}/delete", admin(deleting("routers", "Deleted the router.")),
                  methods=["POST"])]
