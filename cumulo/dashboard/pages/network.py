"""The network pages: networks and subnets, routers, security groups and rules, floating IPs and
the network topology, all from Neutron's API (service ``network``, paths ``/v2.0/...``).

Each list page asks Neutron once for its rows (plus, where a form needs them, one call for its
choices, made in parallel); a detail page asks for the resource and its parts in parallel.  A
form that Neutron refuses is shown again with Neutron's words beside the field they are about,
with status 400 (403 when a rule forbids it).  Rows of networks, routers, floating IPs and
ports are live fragments (``data-kind``), swapped in place when the event stream names them.
The topology (``network_topology``) is an SVG drawn on the server from five list calls.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cumulo.dashboard.app import Dashboard, view
from cumulo.dashboard.client import Api, ApiError
from cumulo.dashboard.pages import network_topology
from cumulo.dashboard.session import Session

NAV = [("project", "Network", "Network topology", "/project/network/topology"),
       ("project", "Network", "Networks", "/project/networks"),
       ("project", "Network", "Routers", "/project/routers"),
       ("project", "Network", "Security groups", "/project/security-groups"),
       ("project", "Network", "Floating IPs", "/project/floating-ips")]
PAGE_SIZES = (20, 50, 100, 1000)
EXTERNAL = {"router:external": "true"}

# the form field a Neutron message is about, by the words it uses (first match wins; none: the form's top)
NETWORK_FIELDS = (("gateway_ip", ("gateway",)), ("dns_nameservers", ("dns", "nameserver")),
                  ("ipv6_address_mode", ("ipv6_address_mode", "ipv6_ra_mode", "address mode")),
                  ("cidr", ("cidr", "subnet", "prefix", "ip_version", "ip version")),
                  ("name", ("name",)))
RULE_FIELDS = (("port_range", ("port",)), ("remote_ip_prefix", ("remote_ip_prefix", "cidr", "prefix")),
               ("remote_group_id", ("remote_group", "remote group", "security group")),
               ("ethertype", ("ethertype",)), ("protocol", ("protocol",)), ("direction", ("direction",)))
PROTOCOLS = ("", "tcp", "udp", "icmp", "ipv6-icmp", "sctp")
IPV6_MODES = ("", "slaac", "dhcpv6-stateful", "dhcpv6-stateless")


def field_of(message: str, fields: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    """The form field Neutron's ``message`` is about ("_": the whole form)."""
    words = message.lower()
    for name, keys in fields:
        if any(k in words for k in keys):
            return name
    return "_"


def refused(exc: ApiError, fields: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> tuple[dict[str, str], int]:
    """A refused form's errors (Neutron's message by its field; a rule's refusal is the whole form's)
    and the status to answer with."""
    if exc.status >= 500:
        raise exc
    if exc.status == 403:
        return {"_": exc.message}, 403
    return {field_of(exc.message, fields): exc.message}, 400


def beside(name: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """A form of one field: every message is about it."""
    return ((name, ("",)),)


def text(form: Any, key: str, limit: int = 255) -> str:
    return str(form.get(key, "")).strip()[:limit]


def number(value: str) -> Any:
    """A port number as Neutron takes it; anything else is passed as written so Neutron names the fault."""
    value = value.strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def ids(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in items}


def owns(session: Session, item: dict[str, Any]) -> bool:
    """Whether the page offers the resource's write buttons (the API decides anyway)."""
    return session.can_write and (session.is_admin or item.get("project_id") == session.project_id)


async def quietly(coro: Any, default: Any) -> Any:
    """A call for names or choices whose failure (a service not running) leaves them out."""
    try:
        return await coro
    except ApiError as exc:
        if exc.status == 401:
            raise
        return default


def subnet_body(form: Any, network_id: str) -> dict[str, Any]:
    """A POST /v2.0/subnets body from the form's subnet fields."""
    version = 6 if text(form, "ip_version") == "6" else 4
    body: dict[str, Any] = {"network_id": network_id, "ip_version": version, "cidr": text(form, "cidr", 64),
                            "name": text(form, "subnet_name"), "enable_dhcp": form.get("enable_dhcp") == "on"}
    if form.get("no_gateway") == "on":
        body["gateway_ip"] = None
    elif text(form, "gateway_ip", 64):
        body["gateway_ip"] = text(form, "gateway_ip", 64)
    dns = [x for x in text(form, "dns_nameservers", 1000).replace(",", " ").split() if x]
    if dns:
        body["dns_nameservers"] = dns
    mode = text(form, "ipv6_address_mode", 32)
    if version == 6 and mode:
        body["ipv6_address_mode"] = mode
        body["ipv6_ra_mode"] = mode
    return body


async def list_page(api: Api, request: Request, path: str, kind: str,
                    **params: Any) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """One page of a Neutron list (``limit`` and ``marker``) and the marker of the next ("" on the last)."""
    q = request.query_params
    try:
        limit = int(q.get("limit", "20"))
    except ValueError:
        limit = 20
    paging = {"limit": min(max(limit, 1), PAGE_SIZES[-1]), "marker": q.get("marker", "")[:64]}
    data = await api.get("network", path, **paging, **params)
    more = any(link.get("rel") == "next" for link in data.get(f"{kind}_links", []))
    items = data[kind]
    return items, paging, items[-1]["id"] if more and items else ""


PORTS_SHOWN = 200  # a network's page lists its first ports; the API has them all


def routes(d: Dashboard) -> list[Route]:
    # -- networks and subnets ------------------------------------------------------------------------
    async def networks(request: Request, session: Session, api: Api) -> Response:
        items, paging, next_marker = await list_page(api, request, "/v2.0/networks", "networks")
        return d.render(request, "network_networks.html", title="Networks", networks=items, paging=paging,
                        next_marker=next_marker, page_sizes=PAGE_SIZES)

    async def network_row(request: Request, session: Session, api: Api) -> Response:
        data = await api.find("network", f"/v2.0/networks/{request.path_params['network_id']}")
        if data is None:
            return Response(status_code=404)
        net = data["network"]
        return d.render(request, "network_network_row.html", net=net)

    async def network_form(request: Request, session: Session, api: Api) -> Response:
        return d.render(request, "network_network_create.html", title="Create network", form={
            "enable_dhcp": "on", "ip_version": "4", "admin_state_up": "on"}, errors={})

    async def network_create(request: Request, session: Session, api: Api) -> Response:
        form = await request.form()
        values = {k: str(v) for k, v in form.items() if k != "csrf_token"}
        body: dict[str, Any] = {"name": text(form, "name"), "admin_state_up": form.get("admin_state_up") == "on"}
        if session.is_admin:
            body["shared"] = form.get("shared") == "on"
            if form.get("external") == "on":
                body["router:external"] = True
        try:
            net = (await api.post("network", "/v2.0/networks", {"network": body})).data["network"]
        except ApiError as exc:
            errors, status = refused(exc, NETWORK_FIELDS)
            return d.render(request, "network_network_create.html", status, title="Create network", form=values,
                            errors=errors)
        if text(form, "cidr", 64):
            try:
                await api.post("network", "/v2.0/subnets", {"subnet": subnet_body(form, net["id"])})
            except ApiError as exc:
                errors, status = refused(exc, NETWORK_FIELDS)
                # all or nothing: the network goes again, so the corrected form makes it anew
                await quietly(api.delete("network", f"/v2.0/networks/{net['id']}"), None)
                return d.render(request, "network_network_create.html", status, title="Create network",
                                form=values, errors=errors)
        return d.redirect(f"/project/networks/{net['id']}", ("info", f"Network {net['name'] or net['id']} created."))

    async def network_page(request: Request, session: Session, api: Api, errors: dict[str, str] | None = None,
                           form: dict[str, str] | None = None, status: int = 200) -> Response:
        network_id = request.path_params["network_id"]
        net_data, subnets, ports = await asyncio.gather(
            api.get("network", f"/v2.0/networks/{network_id}"),
            api.get("network", "/v2.0/subnets", network_id=network_id),
            api.get("network", "/v2.0/ports", network_id=network_id, limit=PORTS_SHOWN + 1))
        net = net_data["network"]
        return d.render(request, "network_network_detail.html", status, title=f"Network {net['name'] or net['id']}",
                        net=net, subnets=subnets["subnets"], ports=ports["ports"][:PORTS_SHOWN],
                        more_ports=len(ports["ports"]) > PORTS_SHOWN, can_edit=owns(session, net),
                        form=form or {"enable_dhcp": "on", "ip_version": "4"}, errors=errors or {},
                        subnet_names={s["id"]: s["name"] or s["cidr"] for s in subnets["subnets"]})

    async def network_detail(request: Request, session: Session, api: Api) -> Response:
        return await network_page(request, session, api)

    async def subnet_add(request: Request, session: Session, api: Api) -> Response:
        form = await request.form()
        network_id = request.path_params["network_id"]
        try:
            made = (await api.post("network", "/v2.0/subnets", {"subnet": subnet_body(form, network_id)})).data
        except ApiError as exc:
            errors, status = refused(exc, NETWORK_FIELDS)
            values = {k: str(v) for k, v in form.items() if k != "csrf_token"}
            return await network_page(request, session, api, errors, values, status)
        return d.redirect(f"/project/networks/{network_id}", ("info", f"Subnet {made['subnet']['cidr']} added."))

    async def subnet_delete(request: Request, session: Session, api: Api) -> Response:
        p = request.path_params
        return await act(api.delete("network", f"/v2.0/subnets/{p['subnet_id']}"),
                         f"/project/networks/{p['network_id']}", "Subnet deleted.")

    async def network_delete(request: Request, session: Session, api: Api) -> Response:
        network_id = request.path_params["network_id"]
        try:
            await api.delete("network", f"/v2.0/networks/{network_id}")
        except ApiError as exc:
            if exc.status in (403, 401) or exc.status >= 500:
                raise
            return d.redirect(f"/project/networks/{network_id}", ("error", exc.message))
        return d.redirect("/project/networks", ("info", "Network deleted."))

    async def port_row(request: Request, session: Session, api: Api) -> Response:
        p = request.path_params
        data = await api.find("network", f"/v2.0/ports/{p['port_id']}")
        if data is None:
            return Response(status_code=404)
        port = data["port"]
        if port["network_id"] != p["network_id"]:
            return Response(status_code=404)
        return d.render(request, "network_port_row.html", port=port, net={"id": p["network_id"]}, subnet_names={})

    async def act(call: Any, back: str, words: str) -> Response:
        """A button's call: done -> back with ``words``; refused -> back with Neutron's words (a rule's
        403 shows as the error page, in Neutron's words)."""
        try:
            await call
        except ApiError as exc:
            if exc.status in (401, 403) or exc.status >= 500:
                raise
            return d.redirect(back, ("error", exc.message))
        return d.redirect(back, ("info", words))

    # -- routers -----------------------------------------------------------------------------------
    async def routers(request: Request, session: Session, api: Api) -> Response:
        (items, paging, next_marker), externals = await asyncio.gather(
            list_page(api, request, "/v2.0/routers", "routers"),
            quietly(api.get("network", "/v2.0/networks", fields=["id", "name"], **EXTERNAL), {"networks": []}))
        return d.render(request, "network_routers.html", title="Routers", routers=items, paging=paging,
                        next_marker=next_marker, net_names={n["id"]: n["name"] for n in externals["networks"]})

    async def router_row(request: Request, session: Session, api: Api) -> Response:
        data = await api.find("network", f"/v2.0/routers/{request.path_params['router_id']}")
        if data is None:
            return Response(status_code=404)
        router = data["router"]
        gateway = (router.get("external_gateway_info") or {}).get("network_id")
        names = {}
        if gateway:
            net = await quietly(api.get("network", f"/v2.0/networks/{gateway}"), None)
            names = {gateway: net["network"]["name"]} if net else {}
        return d.render(request, "network_router_row.html", router=router, net_names=names)

    async def router_form(request: Request, session: Session, api: Api, form: dict[str, str] | None = None,
                          errors: dict[str, str] | None = None, status: int = 200) -> Response:
        externals = await api.get("network", "/v2.0/networks", fields=["id", "name"], **EXTERNAL)
        return d.render(request, "network_router_create.html", status, title="Create router",
                        externals=externals["networks"], form=form or {}, errors=errors or {})

    async def router_form_page(request: Request, session: Session, api: Api) -> Response:
        return await router_form(request, session, api)

    async def router_create(request: Request, session: Session, api: Api) -> Response:
        form = await request.form()
        body: dict[str, Any] = {"name": text(form, "name"), "admin_state_up": True}
        if text(form, "network_id", 64):
            body["external_gateway_info"] = {"network_id": text(form, "network_id", 64)}
        try:
            router = (await api.post("network", "/v2.0/routers", {"router": body})).data["router"]
        except ApiError as exc:
            errors, status = refused(exc, (("network_id", ("network", "gateway", "external")), ("name", ("name",))))
            values = {k: str(v) for k, v in form.items() if k != "csrf_token"}
            return await router_form(request, session, api, values, errors, status)
        return d.redirect(f"/project/routers/{router['id']}",
                          ("info", f"Router {router['name'] or router['id']} created."))

    async def router_page(request: Request, session: Session, api: Api, errors: dict[str, str] | None = None,
                          status: int = 200) -> Response:
        router_id = request.path_params["router_id"]
        data, interfaces, subnets, nets = await asyncio.gather(
            api.get("network", f"/v2.0/routers/{router_id}"),
            api.get("network", "/v2.0/ports", device_id=router_id, device_owner="network:router_interface"),
            api.get("network", "/v2.0/subnets", fields=["id", "name", "cidr", "network_id"]),
            api.get("network", "/v2.0/networks", fields=["id", "name", "router:external", "shared", "project_id"]))
        router = data["router"]
        attached = {ip["subnet_id"] for p in interfaces["ports"] for ip in p["fixed_ips"]}
        externals = [n for n in nets["networks"] if n.get("router:external")]
        # an interface goes on a subnet of the router's project or of a shared network (an admin sees all)
        usable = {n["id"] for n in nets["networks"] if not n.get("router:external")
                  and (n.get("shared") or n.get("project_id") == router["project_id"])}
        choices = [s for s in subnets["subnets"] if s["id"] not in attached and s["network_id"] in usable]
        return d.render(request, "network_router_detail.html", status, title=f"Router {router['name'] or router['id']}",
                        router=router, interfaces=interfaces["ports"], subnets=ids(subnets["subnets"]),
                        choices=choices, externals=externals, net_names={n["id"]: n["name"] for n in nets["networks"]},
                        can_edit=owns(session, router), errors=errors or {})

    async def router_detail(request: Request, session: Session, api: Api) -> Response:
        return await router_page(request, session, api)

    async def router_gateway(request: Request, session: Session, api: Api) -> Response:
        form = await request.form()
        router_id = request.path_params["router_id"]
        network_id = text(form, "network_id", 64)
        info = {"network_id": network_id} if network_id and form.get("clear") != "1" else {}
        try:
            await api.put("network", f"/v2.0/routers/{router_id}", {"router": {"external_gateway_info": info}})
        except ApiError as exc:
            errors, status = refused(exc, beside("gateway"))
            return await router_page(request, session, api, errors, status)
        return d.redirect(f"/project/routers/{router_id}",
                          ("info", "Gateway set." if info else "Gateway cleared."))

    async def router_interface(request: Request, session: Session, api: Api) -> Response:
        form = await request.form()
        router_id = request.path_params["router_id"]
        try:
            await api.put("network", f"/v2.0/routers/{router_id}/add_router_interface",
                          {"subnet_id": text(form, "subnet_id", 64)})
        except ApiError as exc:
            errors, status = refused(exc, beside("subnet_id"))
            return await router_page(request, session, api, errors, status)
        return d.redirect(f"/project/routers/{router_id}", ("info", "Interface added."))

    async def router_interface_remove(request: Request, session: Session, api: Api) -> Response:
        form = await request.form()
        router_id = request.path_params["router_id"]
        return await act(api.put("network", f"/v2.0/routers/{router_id}/remove_router_interface",
                                 {"port_id": text(form, "port_id", 64)}), f"/project/routers/{router_id}",
                         "Interface removed.")

    async def router_delete(request: Request, session: Session, api: Api) -> Response:
        router_id = request.path_params["router_id"]
        try:
            await api.delete("network", f"/v2.0/routers/{router_id}")
        except ApiError as exc:
            if exc.status in (401, 403) or exc.status >= 500:
                raise
            return d.redirect(f"/project/routers/{router_id}", ("error", exc.message))
        return d.redirect("/project/routers", ("info", "Router deleted."))

    # -- security groups and rules -----------------------------------------------------------------
    async def groups_page(request: Request, session: Session, api: Api, form: dict[str, str] | None = None,
                          errors: dict[str, str] | None = None, status: int = 200) -> Response:
        data = await api.get("network", "/v2.0/security-groups")
        return d.render(request, "network_security_groups.html", status, title="Security groups",
                        groups=data["security_groups"], form=form or {}, errors=errors or {})

    async def groups(request: Request, session: Session, api: Api) -> Response:
        return await groups_page(request, session, api)

    async def group_create(request: Request, session: Session, api: Api) -> Response:
        form = await request.form()
        body = {"name": text(form, "name"), "description": text(form, "description")}
        try:
            made = (await api.post("network", "/v2.0/security-groups", {"security_group": body})).data
        except ApiError as exc:
            errors, status = refused(exc, (("name", ("name", "default")),))
            return await groups_page(request, session, api, body, errors, status)
        group = made["security_group"]
        return d.redirect(f"/project/security-groups/{group['id']}",
                          ("info", f"Security group {group['name']} created."))

    async def group_delete(request: Request, session: Session, api: Api) -> Response:
        return await act(api.delete("network", f"/v2.0/security-groups/{request.path_params['group_id']}"),
                         "/project/security-groups", "Security group deleted.")

    async def group_page(request: Request, session: Session, api: Api, form: dict[str, str] | None = None,
                         errors: dict[str, str] | None = None, status: int = 200) -> Response:
        group = (await api.get("network", f"/v2.0/security-groups/{request.path_params['group_id']}"))[
            "security_group"]
        others = await api.get("network", "/v2.0/security-groups", fields=["id", "name"],
                               project_id=group["project_id"])
        return d.render(request, "network_security_group.html", status, title=f"Security group {group['name']}",
                        group=group, rules=group.get("security_group_rules", []),
                        groups=others["security_groups"], names={g["id"]: g["name"] for g in others["security_groups"]},
                        protocols=PROTOCOLS, can_edit=owns(session, group),
                        form=form or {"direction": "ingress", "ethertype": "IPv4"}, errors=errors or {})

    async def group_detail(request: Request, session: Session, api: Api) -> Response:
        return await group_page(request, session, api)

    async def rule_add(request: Request, session: Session, api: Api) -> Response:
        form = await request.form()
        group_id = request.path_params["group_id"]
        body: dict[str, Any] = {"security_group_id": group_id, "direction": text(form, "direction", 16),
                                "ethertype": text(form, "ethertype", 8)}
        if text(form, "protocol", 32):
            body["protocol"] = text(form, "protocol", 32)
        for key in ("port_range_min", "port_range_max"):
            if number(text(form, key, 16)) is not None:
                body[key] = number(text(form, key, 16))
        if text(form, "remote_ip_prefix", 64):
            body["remote_ip_prefix"] = text(form, "remote_ip_prefix", 64)
        if text(form, "remote_group_id", 64):
            body["remote_group_id"] = text(form, "remote_group_id", 64)
        if text(form, "description"):
            body["description"] = text(form, "description")
        try:
            await api.post("network", "/v2.0/security-group-rules", {"security_group_rule": body})
        except ApiError as exc:
            errors, status = refused(exc, RULE_FIELDS)
            values = {k: str(v) for k, v in form.items() if k != "csrf_token"}
            return await group_page(request, session, api, values, errors, status)
        return d.redirect(f"/project/security-groups/{group_id}", ("info", "Rule added."))

    async def rule_delete(request: Request, session: Session, api: Api) -> Response:
        p = request.path_params
        return await act(api.delete("network", f"/v2.0/security-group-rules/{p['rule_id']}"),
                         f"/project/security-groups/{p['group_id']}", "Rule deleted.")

    # -- floating IPs --------------------------------------------------------------------------------
    async def fips_page(request: Request, session: Session, api: Api, errors: dict[str, str] | None = None,
                        status: int = 200) -> Response:
        data, externals = await asyncio.gather(
            api.get("network", "/v2.0/floatingips"),
            quietly(api.get("network", "/v2.0/networks", fields=["id", "name"], **EXTERNAL), {"networks": []}))
        return d.render(request, "network_floating_ips.html", status, title="Floating IPs",
                        fips=data["floatingips"], externals=externals["networks"],
                        net_names={n["id"]: n["name"] for n in externals["networks"]}, errors=errors or {})

    async def fips(request: Request, session: Session, api: Api) -> Response:
        return await fips_page(request, session, api)

    async def fip_row(request: Request, session: Session, api: Api) -> Response:
        data = await api.find("network", f"/v2.0/floatingips/{request.path_params['fip_id']}")
        if data is None:
            return Response(status_code=404)
        fip = data["floatingip"]
        net = await quietly(api.get("network", f"/v2.0/networks/{fip['floating_network_id']}"), None)
        names = {fip["floating_network_id"]: net["network"]["name"]} if net else {}
        return d.render(request, "network_floating_ip_row.html", fip=fip, net_names=names)

    async def fip_allocate(request: Request, session: Session, api: Api) -> Response:
        form = await request.form()
        body = {"floating_network_id": text(form, "floating_network_id", 64)}
        try:
            made = (await api.post("network", "/v2.0/floatingips", {"floatingip": body})).data["floatingip"]
        except ApiError as exc:
            errors, status = refused(exc, beside("floating_network_id"))
            return await fips_page(request, session, api, errors, status)
        return d.redirect("/project/floating-ips", ("info", f"Floating IP {made['floating_ip_address']} allocated."))

    async def associate_page(request: Request, session: Session, api: Api, errors: dict[str, str] | None = None,
                             status: int = 200) -> Response:
        fip = (await api.get("network", f"/v2.0/floatingips/{request.path_params['fip_id']}"))["floatingip"]
        ports, servers = await asyncio.gather(
            api.get("network", "/v2.0/ports", project_id=fip["project_id"],
                    fields=["id", "device_id", "device_owner", "fixed_ips", "network_id"]),
            quietly(api.get("compute", "/servers", limit=1000), {"servers": []}))
        names = {s["id"]: s["name"] for s in servers["servers"]}
        # the project's server ports (device owner compute:<zone>), one choice per IPv4 address
        choices = [{"value": f"{p['id']}|{ip['ip_address']}",
                    "label": f"{names.get(p['device_id'], p['device_id'][:8])}: {ip['ip_address']}"}
                   for p in ports["ports"] if p["device_owner"].startswith("compute:")
                   for ip in p["fixed_ips"] if ":" not in ip["ip_address"]]
        return d.render(request, "network_floating_ip_associate.html", status,
                        title=f"Associate {fip['floating_ip_address']}", fip=fip,
                        choices=sorted(choices, key=lambda c: c["label"]), errors=errors or {})

    async def fip_associate_form(request: Request, session: Session, api: Api) -> Response:
        return await associate_page(request, session, api)

    async def fip_associate(request: Request, session: Session, api: Api) -> Response:
        form = await request.form()
        fip_id = request.path_params["fip_id"]
        port_id, _, fixed = text(form, "port", 200).partition("|")
        body: dict[str, Any] = {"port_id": port_id}
        if fixed:
            body["fixed_ip_address"] = fixed
        try:
            await api.put("network", f"/v2.0/floatingips/{fip_id}", {"floatingip": body})
        except ApiError as exc:
            errors, status = refused(exc, beside("port"))
            return await associate_page(request, session, api, errors, status)
        return d.redirect("/project/floating-ips", ("info", "Floating IP associated."))

    async def fip_disassociate(request: Request, session: Session, api: Api) -> Response:
        fip_id = request.path_params["fip_id"]
        return await act(api.put("network", f"/v2.0/floatingips/{fip_id}", {"floatingip": {"port_id": None}}),
                         "/project/floating-ips", "Floating IP disassociated.")

    async def fip_release(request: Request, session: Session, api: Api) -> Response:
        return await act(api.delete("network", f"/v2.0/floatingips/{request.path_params['fip_id']}"),
                         "/project/floating-ips", "Floating IP released.")

    # -- topology ------------------------------------------------------------------------------------
    async def topology(request: Request, session: Session, api: Api) -> Response:
        project = session.project_id
        nets, subnets, routers_, ports, servers = await asyncio.gather(
            api.get("network", "/v2.0/networks", fields=["id", "name", "router:external", "shared", "project_id"]),
            api.get("network", "/v2.0/subnets", fields=["id", "network_id", "cidr"]),
            api.get("network", "/v2.0/routers", project_id=project),
            api.get("network", "/v2.0/ports", project_id=project,
                    fields=["id", "name", "network_id", "device_id", "device_owner", "fixed_ips"]),
            quietly(api.get("compute", "/servers", limit=1000), {"servers": []}))
        picture = network_topology.draw(project, nets["networks"], subnets["subnets"], routers_["routers"],
                                        ports["ports"], servers["servers"])
        return d.render(request, "network_topology.html", title="Network topology", picture=picture)

    v = lambda fn: view(d, fn)  # noqa: E731
    return [
        Route("/project/networks", v(networks), methods=["GET"]),
        Route("/project/networks/create", v(network_form), methods=["GET"]),
        Route("/project/networks/create", v(network_create), methods=["POST"]),
        Route("/project/networks/{network_id}", v(network_detail), methods=["GET"]),
        Route("/project/networks/{network_id}/row", v(network_row), methods=["GET"]),
        Route("/project/networks/{network_id}/delete", v(network_delete), methods=["POST"]),
        Route("/project/networks/{network_id}/subnets", v(subnet_add), methods=["POST"]),
        Route("/project/networks/{network_id}/subnets/{subnet_id}/delete", v(subnet_delete), methods=["POST"]),
        Route("/project/networks/{network_id}/ports/{port_id}/row", v(port_row), methods=["GET"]),
        Route("/project/routers", v(routers), methods=["GET"]),
        Route("/project/routers/create", v(router_form_page), methods=["GET"]),
        Route("/project/routers/create", v(router_create), methods=["POST"]),
        Route("/project/routers/{router_id}", v(router_detail), methods=["GET"]),
        Route("/project/routers/{router_id}/row", v(router_row), methods=["GET"]),
        Route("/project/routers/{router_id}/delete", v(router_delete), methods=["POST"]),
        Route("/project/routers/{router_id}/gateway", v(router_gateway), methods=["POST"]),
        Route("/project/routers/{router_id}/interfaces", v(router_interface), methods=["POST"]),
        Route("/project/routers/{router_id}/interfaces/remove", v(router_interface_remove), methods=["POST"]),
        Route("/project/security-groups", v(groups), methods=["GET"]),
        Route("/project/security-groups/create", v(group_create), methods=["POST"]),
        Route("/project/security-groups/{group_id}", v(group_detail), methods=["GET"]),
        Route("/project/security-groups/{group_id}/delete", v(group_delete), methods=["POST"]),
        Route("/project/security-groups/{group_id}/rules", v(rule_add), methods=["POST"]),
        Route("/project/security-groups/{group_id}/rules/{rule_id}/delete", v(rule_delete), methods=["POST"]),
        Route("/project/floating-ips", v(fips), methods=["GET"]),
        Route("/project/floating-ips/allocate", v(fip_allocate), methods=["POST"]),
        Route("/project/floating-ips/{fip_id}/row", v(fip_row), methods=["GET"]),
        Route("/project/floating-ips/{fip_id}/associate", v(fip_associate_form), methods=["GET"]),
        Route("/project/floating-ips/{fip_id}/associate", v(fip_associate), methods=["POST"]),
        Route("/project/floating-ips/{fip_id}/disassociate", v(fip_disassociate), methods=["POST"]),
        Route("/project/floating-ips/{fip_id}/release", v(fip_release), methods=["POST"]),
        Route("/project/network/topology", v(topology), methods=["GET"]),
    ]
