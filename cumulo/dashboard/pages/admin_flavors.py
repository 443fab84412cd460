"""Admin flavors: every flavor (public and private, paged), create, delete, extra specs, and the
access list of a private flavor.

The list is ``/flavors/detail?is_public=none`` (Nova lists the private ones to an admin only when
asked so); a flavor's page shows its extra specs (embedded at 2.61+) and, for a private flavor,
``os-flavor-access``.  Numbers go to Nova as typed, so a bad value comes back in Nova's words.
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
    form_of,
    form_page,
    gather,
    key_values,
    marker,
    number,
    page_size,
    project_names,
    quietly,
    seg,
)
from cumulo.dashboard.session import Session

NAV = [("admin", "Compute", "Flavors", "/admin/flavors")]

FIELDS = [Field("name", "Name", required=True),
          Field("id", "ID", help="Empty: Nova makes a UUID."),
          Field("vcpus", "vCPUs", "number", required=True),
          Field("ram", "RAM (MiB)", "number", required=True),
          Field("disk", "Root disk (GiB)", "number"),
          Field("ephemeral", "Ephemeral disk (GiB)", "number"),
          Field("swap", "Swap (MiB)", "number"),
          Field("description", "Description"),
          Field("is_public", "Public", "checkbox", help="A private flavor is for the projects on its access list.")]


def flavor_body(values: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"name": values["name"], "vcpus": number(values["vcpus"]), "ram": number(values["ram"]),
                            "disk": number(values["disk"] or 0),
                            "OS-FLV-EXT-DATA:ephemeral": number(values["ephemeral"] or 0),
                            "swap": number(values["swap"] or 0),
                            "os-flavor-access:is_public": values["is_public"]}
    if values["id"]:
        body["id"] = values["id"]
    if values["description"]:
        body["description"] = values["description"]
    return {"flavor": body}


def routes(d: Dashboard) -> list[Route]:
    async def flavors(request: Request, session: Session, api: Api) -> Response:
        limit = page_size(request)
        data = await api.get("compute", "/flavors/detail", is_public="none", limit=limit + 1, marker=marker(request))
        rows, next_marker = cut(data["flavors"], limit)
        return d.render(request, "admin_flavors.html", title="Flavors", flavors=rows, limit=limit,
                        marker=marker(request), next_marker=next_marker)

    async def create(request: Request, session: Session, api: Api) -> Response:
        async def submit(values: dict[str, Any]) -> Response:
            r = await api.post("compute", "/flavors", flavor_body(values))
            flavor = r.data["flavor"]
            return d.redirect(f"/admin/flavors/{flavor['id']}", ("info", f"Created the flavor {flavor['name']}."))

        return await form_page(d, request, title="Create a flavor", fields=FIELDS, submit=submit, button="Create",
                               back="/admin/flavors", initial={"is_public": True, "disk": "0", "ephemeral": "0",
                                                               "swap": "0"})

    async def flavor(request: Request, session: Session, api: Api) -> Response:
        flavor_id = request.path_params["flavor_id"]
        data, names = await gather(api.get("compute", f"/flavors/{flavor_id}"), project_names(api))
        flv = data["flavor"]
        access = []
        if not flv.get("os-flavor-access:is_public", True):
            acl = await quietly(api.get("compute", f"/flavors/{flavor_id}/os-flavor-access"))
            access = (acl or {}).get("flavor_access", [])
        specs = flv.get("extra_specs") or {}
        fields = [Field("metadata", "Extra specs", "textarea",
                        help="key=value, one a line (hw:cpu_policy=dedicated, ...); a removed line removes its key.")]
        initial = {"metadata": "\n".join(f"{k}={v}" for k, v in sorted(specs.items()))}

        async def submit(values: dict[str, Any]) -> Response:
            wanted = key_values(values["metadata"])
            for key in specs:
                if key not in wanted:
                    await api.delete("compute", f"/flavors/{flavor_id}/os-extra_specs/{seg(key)}")
            change = {k: v for k, v in wanted.items() if specs.get(k) != v}
            if change:
                await api.post("compute", f"/flavors/{flavor_id}/os-extra_specs", {"extra_specs": change})
            return d.redirect(f"/admin/flavors/{flavor_id}", ("info", f"Saved the extra specs of {flv['name']}."))

        listed = {a["tenant_id"] for a in access}
        return await form_page(d, request, title=f"Flavor {flv['name']}", fields=fields, submit=submit,
                               initial=initial, button="Save extra specs", back="/admin/flavors", main="metadata",
                               template="admin_flavor.html", flavor=flv, access=access, names=names,
                               candidates=sorted(((pid, n) for pid, n in names.items() if pid not in listed),
                                                 key=lambda x: x[1]))

    async def access(request: Request, session: Session, api: Api) -> Response:
        flavor_id, name = request.path_params["flavor_id"], request.path_params["action"]
        project = (await form_of(request)).get("project_id", "")[:64]
        back = f"/admin/flavors/{flavor_id}"
        key = "addTenantAccess" if name == "add" else "removeTenantAccess"
        words = "Gave the project access." if name == "add" else "Took the project's access away."
        return await act(d, back, api.post("compute", f"/flavors/{flavor_id}/action", {key: {"tenant": project}}),
                         words)

    async def delete(request: Request, session: Session, api: Api) -> Response:
        flavor_id = request.path_params["flavor_id"]
        return await act(d, "/admin/flavors", api.delete("compute", f"/flavors/{flavor_id}"), "Deleted the flavor.")

    def admin(fn: Any) -> Any:
        return view(d, fn, panel="admin")

    return [Route("/admin/flavors", admin(flavors), methods=["GET"]),
            Route("/admin/flavors/create", admin(create), methods=["GET", "POST"]),
            Route("/admin/flavors/{flavor_id}", admin(flavor), methods=["GET", "POST"]),
            Route("/admin/flavors/{flavor_id}/access/{action:str}", admin(access), methods=["POST"]),
            Route("/admin/flavors/{flavor_id}/delete", admin(delete), methods=["POST"])]

