"""Admin system pages: the default quotas (compute's and block storage's quota class ``default``,
editable; Neutron's defaults, which come from its configuration, shown) and the system
information: the catalog (identity's services and endpoints), the compute and block storage
services, and the network agents.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.dashboard.app import Dashboard, view
from cumulo.dashboard.client import Api, ApiError
from cumulo.dashboard.pages.admin import Field, FormError, field_for, form_page, gather, number, quietly
from cumulo.dashboard.session import Session

NAV = [("admin", "System", "Defaults", "/admin/defaults"),
       ("admin", "System", "System information", "/admin/info")]

# the quota classes an admin edits here: service -> its words
CLASSES = {"compute": "Compute", "block-storage": "Block storage"}


def routes(d: Dashboard) -> list[Route]:
    async def defaults(request: Request, session: Session, api: Api) -> Response:
        compute, volume, network = await gather(
            quietly(api.get("compute", "/os-quota-class-sets/default")),
            quietly(api.get("block-storage", "/os-quota-class-sets/default")),
            quietly(api.get("network", f"/v2.0/quotas/{session.project_id}/default")))
        sets = {"compute": (compute or {}).get("quota_class_set"),
                "block-storage": (volume or {}).get("quota_class_set")}
        sets = {k: {q: v for q, v in s.items() if q != "id" and "___" not in q} for k, s in sets.items() if s}
        fields = [Field(f"{service}.{k}", f"{CLASSES[service]}: {k.replace('_', ' ')}", "number")
                  for service, s in sets.items() for k in s]
        initial = {f"{service}.{k}": v for service, s in sets.items() for k, v in s.items()}

        async def submit(values: dict[str, Any]) -> Response:
            for service, current in sets.items():
                change = {k: number(values[f"{service}.{k}"]) for k in current
                          if str(values.get(f"{service}.{k}")) != str(current[k])}
                if not change:
                    continue
                try:
                    await api.put(service, "/os-quota-class-sets/default", {"quota_class_set": change})
                except ApiError as exc:
                    if exc.status >= 500:
                        raise
                    names = [f"{service}.{k}" for k in change]
                    raise FormError(field_for(exc.message, names, names[0]), exc.message) from None
            return d.redirect("/admin/defaults", ("info", "Saved the default quotas."))

        return await form_page(d, request, title="Default quotas", fields=fields, submit=submit, initial=initial,
                               back="/admin/", main=fields[0].name if fields else "", template="admin_defaults.html",
                               intro="The quotas of every project that has none of its own (-1: no limit).",
                               network=(network or {}).get("quota") or {})

    async def info(request: Request, session: Session, api: Api) -> Response:
        services, endpoints, compute, volume, agents = await gather(
            api.get("identity", "/services"), api.get("identity", "/endpoints"),
            quietly(api.get("compute", "/os-services")), quietly(api.get("block-storage", "/os-services")),
            quietly(api.get("network", "/v2.0/agents")))
        by_service: dict[str, list[dict[str, Any]]] = {}
        for ep in endpoints["endpoints"]:
            by_service.setdefault(ep["service_id"], []).append(ep)
        catalog = [{**s, "endpoints": sorted(by_service.get(s["id"], []), key=lambda e: e["interface"])}
                   for s in sorted(services["services"], key=lambda s: s.get("type", ""))]
        return d.render(request, "admin_info.html", title="System information", catalog=catalog,
                        compute=(compute or {}).get("services"), volume=(volume or {}).get("services"),
                        agents=(agents or {}).get("agents"))

    return [Route("/admin/defaults", view(d, defaults, panel="admin"), methods=["GET", "POST"]),
            Route("/admin/info", view(d, info, panel="admin"), methods=["GET"])]
