"""Admin compute pages: hypervisors and compute services (disable with a reason, enable, force
down, evacuate a down host), host aggregates and availability zones, and every project's instances
(migrate, live-migrate, confirm, hard reboot, delete).

Each page is one or two calls: ``os-hypervisors/detail`` (paged) with ``os-services``; the
aggregates with ``os-availability-zone/detail``; ``/servers/detail?all_tenants=1`` (paged,
filtered by project and host by Nova) with identity's project names.  Evacuating a host lists
its servers (``host=`` filter) and posts Nova's ``evacuate`` action for each.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.dashboard.app import Dashboard, view
from cumulo.dashboard.client import Api, ApiError
from cumulo.dashboard.pages.admin import (
    Field,
    FormError,
    act,
    cut,
    form_of,
    form_page,
    gather,
    key_values,
    marker,
    page_size,
    project_names,
    query_of,
    quietly,
)
from cumulo.dashboard.session import Session

NAV = [("admin", "Compute", "Hypervisors", "/admin/hypervisors"),
       ("admin", "Compute", "Host aggregates", "/admin/aggregates"),
       ("admin", "Compute", "Instances", "/admin/instances")]


# the actions an admin applies to any project's instance: name -> (body of POST /servers/{id}/action, words)
ACTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "live_migrate": ({"os-migrateLive": {"block_migration": "auto", "host": None}}, "Live-migrating"),
    "migrate": ({"migrate": None}, "Migrating"),
    "confirm_resize": ({"confirmResize": None}, "Confirming the migration of"),
    "revert_resize": ({"revertResize": None}, "Reverting the migration of"),
    "hard_reboot": ({"reboot": {"type": "HARD"}}, "Hard rebooting"),
}


def percent(used: Any, total: Any) -> int:
    """Used of total, rounded to tens (the bars' CSS classes w0..w100)."""
    try:
        share = float(used) / float(total) if float(total) > 0 else 0.0
    except (TypeError, ValueError):
        return 0
    return min(100, int(round(share * 10)) * 10)


async def servers_on(api: Api, host: str) -> list[dict[str, Any]]:
    return (await api.get("compute", "/servers/detail", all_tenants="1", host=host, limit=1000))["servers"]


def routes(d: Dashboard) -> list[Route]:
    # -- hypervisors and compute services -------------------------------------------------------
    async def hypervisors(request: Request, session: Session, api: Api) -> Response:
        limit = page_size(request)
        data, services = await gather(
            api.get("compute", "/os-hypervisors/detail", limit=limit + 1, marker=marker(request)),
            api.get("compute", "/os-services", binary="nova-compute"))
        rows, next_marker = cut(data["hypervisors"], limit)
        for h in rows:
            h["bars"] = {k: percent(h.get(f"{k}_used"), h.get(k)) for k in ("vcpus", "memory_mb", "local_gb")}
        return d.render(request, "admin_hypervisors.html", title="Hypervisors", hypervisors=rows,
                        services=services["services"], limit=limit, marker=marker(request), next_marker=next_marker)

    async def service_action(request: Request, session: Session, api: Api) -> Response:
        service_id, name = request.path_params["service_id"], request.path_params["action"]
        form = await form_of(request)
        host = form.get("host", "")[:255]
        bodies: dict[str, tuple[dict[str, Any], str]] = {
            "disable": ({"status": "disabled", "disabled_reason": form.get("reason", "")[:255] or None},
                        f"Disabled the compute service of {host}."),
            "enable": ({"status": "enabled"}, f"Enabled the compute service of {host}."),
            "force-down": ({"forced_down": True}, f"Forced the compute service of {host} down."),
            "force-up": ({"forced_down": False}, f"The compute service of {host} is no longer forced down."),
        }
        if name not in bodies:
            return d.redirect("/admin/hypervisors", ("error", f"There is no service action {name[:40]!r}."))
        body, words = bodies[name]
        return await act(d, "/admin/hypervisors", api.put("compute", f"/os-services/{service_id}", body), words)

    async def evacuate(request: Request, session: Session, api: Api) -> Response:
        host = request.path_params["host"]
        servers, services = await gather(servers_on(api, host), api.get("compute", "/os-services",
                                                                        binary="nova-compute"))
        others = [s["host"] for s in services["services"] if s["host"] != host]
        fields = [Field("target", "Target host", "select", [("", "the scheduler chooses")] +
                        [(h, h) for h in others])]

        async def submit(values: dict[str, Any]) -> Response:
            if not servers:
                raise FormError("target", f"No server runs on {host}: there is nothing to evacuate.")
            body = {"evacuate": {"host": values["target"]} if values["target"] else {}}
            failed = []
            for server in servers:
                try:
                    await api.post("compute", f"/servers/{server['id']}/action", body)
                except ApiError as exc:
                    if exc.status >= 500:
                        raise
                    failed.append(f"{server['name']}: {exc.message}")
            if failed and len(failed) == len(servers):
                raise FormError("target", "; ".join(failed)[:480])
            words = f"Evacuating {len(servers) - len(failed)} server(s) from {host}."
            if failed:
                return d.redirect("/admin/hypervisors", ("error", words + " Refused: " + "; ".join(failed)[:400]))
            return d.redirect("/admin/hypervisors", ("info", words))

        return await form_page(d, request, title=f"Evacuate {host}", fields=fields, submit=submit,
                               button="Evacuate", back="/admin/hypervisors", main="target",
                               intro="Nova rebuilds each server of a host that is down on another host "
                                     "(the compute service must be down or forced down).",
                               template="admin_evacuate.html", servers=servers, host=host)

    # -- host aggregates and availability zones -------------------------------------------------
    async def aggregates(request: Request, session: Session, api: Api) -> Response:
        aggs, zones = await gather(api.get("compute", "/os-aggregates"),
                                   quietly(api.get("compute", "/os-availability-zone/detail")))
        return d.render(request, "admin_aggregates.html", title="Host aggregates", aggregates=aggs["aggregates"],
                        zones=(zones or {}).get("availabilityZoneInfo", []))

    agg_fields = [Field("name", "Name", required=True),
                  Field("availability_zone", "Availability zone", help="Empty: the aggregate is no zone.")]

    async def aggregate_create(request: Request, session: Session, api: Api) -> Response:
        async def submit(values: dict[str, Any]) -> Response:
            r = await api.post("compute", "/os-aggregates", {"aggregate": {
                "name": values["name"], "availability_zone": values["availability_zone"] or None}})
            agg = r.data["aggregate"]
            return d.redirect(f"/admin/aggregates/{agg['id']}", ("info", f"Created the aggregate {agg['name']}."))

        return await form_page(d, request, title="Create a host aggregate", fields=agg_fields, submit=submit,
                               button="Create", back="/admin/aggregates")

    async def aggregate(request: Request, session: Session, api: Api) -> Response:
        agg_id = request.path_params["agg_id"]
        agg, services = await gather(api.get("compute", f"/os-aggregates/{agg_id}"),
                                     api.get("compute", "/os-services", binary="nova-compute"))
        agg = agg["aggregate"]
        meta = agg.get("metadata") or {}
        fields = [Field("metadata", "Metadata", "textarea",
                        help="key=value, one a line; a removed line removes its key; availability_zone names the "
                             "aggregate's zone.")]
        initial = {"metadata": "\n".join(f"{k}={v}" for k, v in sorted(meta.items()))}

        async def submit(values: dict[str, Any]) -> Response:
            wanted = key_values(values["metadata"])
            change: dict[str, Any] = {k: None for k in meta if k not in wanted}
            change.update({k: v for k, v in wanted.items() if meta.get(k) != v})
            if change:
                await api.post("compute", f"/os-aggregates/{agg_id}/action", {"set_metadata": {"metadata": change}})
            return d.redirect(f"/admin/aggregates/{agg_id}", ("info", f"Saved the metadata of {agg['name']}."))

        hosts = [s["host"] for s in services["services"] if s["host"] not in (agg.get("hosts") or [])]
        return await form_page(d, request, title=f"Host aggregate {agg['name']}", fields=fields, submit=submit,
                               initial=initial, button="Save metadata", back="/admin/aggregates", main="metadata",
                               template="admin_aggregate.html", aggregate=agg, free_hosts=hosts)

    async def aggregate_hosts(request: Request, session: Session, api: Api) -> Response:
        agg_id = request.path_params["agg_id"]
        form = await form_of(request)
        host, name = form.get("host", "")[:255], request.path_params["action"]
        back = f"/admin/aggregates/{agg_id}"
        if name not in ("add", "remove") or not host:
            return d.redirect(back, ("error", "Choose a host."))
        key = "add_host" if name == "add" else "remove_host"
        words = f"Added {host}." if name == "add" else f"Removed {host}."
        return await act(d, back, api.post("compute", f"/os-aggregates/{agg_id}/action", {key: {"host": host}}), words)

    async def aggregate_delete(request: Request, session: Session, api: Api) -> Response:
        agg_id = request.path_params["agg_id"]
        return await act(d, "/admin/aggregates", api.delete("compute", f"/os-aggregates/{agg_id}"),
                         "Deleted the aggregate.")

    # -- every project's instances --------------------------------------------------------------
    async def instances(request: Request, session: Session, api: Api) -> Response:
        limit = page_size(request)
        query = query_of(request, "project_id", "host", "name", "status")
        data, names = await gather(
            api.get("compute", "/servers/detail", all_tenants="1", limit=limit + 1, marker=marker(request),
                    sort_key="created_at", sort_dir="desc", **query),
            project_names(api))
        servers, next_marker = cut(data["servers"], limit)
        return d.render(request, "admin_instances.html", title="All instances", servers=servers, names=names,
                        query=query, limit=limit, marker=marker(request), next_marker=next_marker,
                        actions=ACTIONS)

    async def instance_row(request: Request, session: Session, api: Api) -> Response:
        """One row, for the page's script when the event stream says the server changed (404: gone)."""
        data = await api.find("compute", f"/servers/{request.path_params['server_id']}")
        if data is None:
            return Response(status_code=404)
        server = data["server"]
        project = await quietly(api.get("identity", f"/projects/{server['tenant_id']}"))
        return d.render(request, "admin_instance_row.html", s=server, actions=ACTIONS,
                        pname=(project or {}).get("project", {}).get("name", server["tenant_id"]))

    async def instance_action(request: Request, session: Session, api: Api) -> Response:
        server_id = request.path_params["server_id"]
        name = (await form_of(request)).get("action", "")
        back = "/admin/instances"
        if name == "delete":
            return await act(d, back, api.delete("compute", f"/servers/{server_id}"), "Deleting the instance.")
        if name not in ACTIONS:
            return d.redirect(back, ("error", f"There is no action {name[:40]!r}."))
        body, words = ACTIONS[name]
        return await act(d, back, api.post("compute", f"/servers/{server_id}/action", body), f"{words} the instance.")

    def admin(fn: Any) -> Any:
        return view(d, fn, panel="admin")

    return [Route("/admin/hypervisors", admin(hypervisors), methods=["GET"]),
            Route("/admin/services/{service_id}/{action}", admin(service_action), methods=["POST"]),
            Route("/admin/hosts/{host}/evacuate", admin(evacuate), methods=["GET", "POST"]),
            Route("/admin/aggregates", admin(aggregates), methods=["GET"]),
            Route("/admin/aggregates/create", admin(aggregate_create), methods=["GET", "POST"]),
            Route("/admin/aggregates/{agg_id}", admin(aggregate), methods=["GET", "POST"]),
            Route("/admin/aggregates/{agg_id}/hosts/{action}", admin(aggregate_hosts), methods=["POST"]),
            Route("/admin/aggregates/{agg_id}/delete", admin(aggregate_delete), methods=["POST"]),
            Route("/admin/instances", admin(instances), methods=["GET"]),
            Route("/admin/instances/{server_id}/row", admin(instance_row), methods=["GET"]),
            Route("/admin/instances/{server_id}/action", admin(instance_action), methods=["POST"])]
