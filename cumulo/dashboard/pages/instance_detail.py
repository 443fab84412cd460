"""An instance's page (``/project/instances/{id}``) and the forms of its actions.

The page shows the server as ``GET /servers/{id}`` has it (flavor embedded, addresses, security
groups, the fault in words when it is in ERROR), then, asked side by side: its volume attachments,
its instance actions (with their request ids), the tail of its console log (``length`` lines),
the image it booted from, and its ports with their networks and floating IPs (Neutron:
``GET /v2.0/ports?device_id=``, then one ``GET /v2.0/floatingips`` and one ``GET /v2.0/networks``
for those ports).

Each action that needs a choice has a form page of its own (``/project/instances/{id}/<form>``):
resize, rebuild, snapshot, attach a volume, attach an interface, associate a floating IP.  Its GET
lists the choices (one API call a list), its POST makes the API call and goes back to the
instance's page; when the API refuses, the form comes back (400) with the API's words beside
the field.  Buttons without a choice (start, stop, lock, confirm a resize, migrate, delete, ...)
post to the list's action handler, which brings the user back here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from cumulo.dashboard.app import Dashboard
from cumulo.dashboard.client import Api, ApiError
from cumulo.dashboard.pages.instance_launch import bootable
from cumulo.dashboard.session import Session

CONSOLE_LINES = (20, 50, 200, 1000)
NEW_FLOATING_IP = "new:"  # a floating IP choice that allocates one from the external network named after it


async def quietly(coro: Awaitable[Any]) -> tuple[Any, str]:
    """A part of the page and "" — or None and the API's words when that part is refused."""
    try:
        return await coro, ""
    except ApiError as exc:
        return None, exc.message


async def server_of(api: Api, server_id: str) -> dict[str, Any]:
    return (await api.get("compute", f"/servers/{server_id}"))["server"]


async def ports_with_floating_ips(api: Api, server_id: str) -> list[dict[str, Any]]:
    """The server's ports, each with its network's name and the floating IPs that point at it."""
    ports = (await api.get("network", "/v2.0/ports", device_id=server_id))["ports"]
    if not ports:
        return []
    fips, networks = await asyncio.gather(
        api.get("network", "/v2.0/floatingips", port_id=[p["id"] for p in ports]),
        api.get("network", "/v2.0/networks", id=sorted({p["network_id"] for p in ports}), fields=["id", "name"]))
    names = {n["id"]: n.get("name") for n in networks["networks"]}
    for port in ports:
        port["floating_ips"] = [f for f in fips["floatingips"] if f.get("port_id") == port["id"]]
        port["network_name"] = names.get(port["network_id"]) or ""
    return ports


async def image_of(api: Api, server: dict[str, Any]) -> dict[str, Any] | None:
    """The image the server booted from, when it still exists and the user may see it."""
    image_id = (server.get("image") or {}).get("id")
    return await api.get("image", f"/v2/images/{image_id}") if image_id else None


def console_length(request: Request) -> int:
    try:
        n = int(request.query_params.get("length", "50"))
    except ValueError:
        n = 50
    return n if n in CONSOLE_LINES else 50


# -- the action forms ---------------------------------------------------------------------------
@dataclass
class ActionForm:
    """A form page: ``load`` lists its choices, ``submit`` makes the API call (and says what it did)."""

    title: str
    field: str  # the field beside which an API fault is shown
    load: Callable[[Api, Session, dict[str, Any]], Awaitable[dict[str, Any]]]
    submit: Callable[[Api, Session, dict[str, Any], FormData], Awaitable[str]]


def needs(form: FormData, name: str, words: str) -> str:
    value = str(form.get(name, "")).strip()
    if not value:
        raise ApiError(400, words)
    return value


async def no_choices(api: Api, session: Session, server: dict[str, Any]) -> dict[str, Any]:
    return {}


async def flavor_choices(api: Api, session: Session, server: dict[str, Any]) -> dict[str, Any]:
    flavors = (await api.get("compute", "/flavors/detail", sort_key="memory_mb", sort_dir="asc"))["flavors"]
    current = (server.get("flavor") or {}).get("original_name")
    return {"flavors": [f for f in flavors if f["name"] != current]}


async def resize(api: Api, session: Session, server: dict[str, Any], form: FormData) -> str:
    flavor = needs(form, "flavor", "Choose the flavor to resize to.")
    await api.post("compute", f"/servers/{server['id']}/action", {"resize": {"flavorRef": flavor}})
    return f"Resizing {server['name']}: confirm or revert once it is VERIFY_RESIZE."


async def image_choices(api: Api, session: Session, server: dict[str, Any]) -> dict[str, Any]:
    images = (await api.get("image", "/v2/images", status="active", sort="name:asc", limit=1000))["images"]
    return {"images": [i for i in images if bootable(i)]}


async def rebuild(api: Api, session: Session, server: dict[str, Any], form: FormData) -> str:
    image = needs(form, "image", "Choose the image to rebuild from.")
    await api.post("compute", f"/servers/{server['id']}/action", {"rebuild": {"imageRef": image}})
    return f"Rebuilding {server['name']}."


async def snapshot(api: Api, session: Session, server: dict[str, Any], form: FormData) -> str:
    name = str(form.get("name", ""))
    r = await api.post("compute", f"/servers/{server['id']}/action", {"createImage": {"name": name}})
    image_id = (r.data or {}).get("image_id") or r.headers.get("location", "").rsplit("/", 1)[-1]
    return f"Making snapshot {name} of {server['name']} (image {image_id})."


async def volume_choices(api: Api, session: Session, server: dict[str, Any]) -> dict[str, Any]:
    volumes = (await api.get("block-storage", "/volumes/detail", status="available", limit=1000))["volumes"]
    return {"volumes": volumes}


async def attach_volume(api: Api, session: Session, server: dict[str, Any], form: FormData) -> str:
    volume = needs(form, "volume", "Choose the volume to attach.")
    await api.post("compute", f"/servers/{server['id']}/os-volume_attachments",
                   {"volumeAttachment": {"volumeId": volume}})
    return f"Attaching volume {volume[:8]} to {server['name']}."


async def network_choices(api: Api, session: Session, server: dict[str, Any]) -> dict[str, Any]:
    networks = (await api.get("network", "/v2.0/networks", fields=["id", "name", "shared", "project_id"]))[
        "networks"]
    return {"networks": [n for n in networks if n.get("project_id") == session.project_id or n.get("shared")]}


async def attach_interface(api: Api, session: Session, server: dict[str, Any], form: FormData) -> str:
    network = needs(form, "network", "Choose the network of the new interface.")
    r = await api.post("compute", f"/servers/{server['id']}/os-interface", {"interfaceAttachment": {"net_id": network}})
    port = ((r.data or {}).get("interfaceAttachment") or {}).get("port_id", "")
    return f"Attached interface {port[:8]} to {server['name']}."


async def floating_ip_choices(api: Api, session: Session, server: dict[str, Any]) -> dict[str, Any]:
    fips, ports, externals = await asyncio.gather(
        api.get("network", "/v2.0/floatingips", project_id=session.project_id),
        api.get("network", "/v2.0/ports", device_id=server["id"]),
        api.get("network", "/v2.0/networks", **{"router:external": "true"}))
    return {"free": [f for f in fips["floatingips"] if not f.get("port_id")], "ports": ports["ports"],
            "externals": externals["networks"], "new_prefix": NEW_FLOATING_IP}


async def associate_floating_ip(api: Api, session: Session, server: dict[str, Any], form: FormData) -> str:
    choice = needs(form, "address", "Choose a floating IP, or a network to allocate one from.")
    port = needs(form, "port", "This instance has no port to point a floating IP at: attach an interface first.")
    if choice.startswith(NEW_FLOATING_IP):
        r = await api.post("network", "/v2.0/floatingips", {"floatingip": {
            "floating_network_id": choice[len(NEW_FLOATING_IP):], "port_id": port}})
    else:
        r = await api.put("network", f"/v2.0/floatingips/{choice}", {"floatingip": {"port_id": port}})
    address = ((r.data or {}).get("floatingip") or {}).get("floating_ip_address", "")
    return f"Floating IP {address} now points at {server['name']}."


FORMS: dict[str, ActionForm] = {
    "resize": ActionForm("Resize", "flavor", flavor_choices, resize),
    "rebuild": ActionForm("Rebuild", "image", image_choices, rebuild),
    "snapshot": ActionForm("Create snapshot", "name", no_choices, snapshot),
    "attach-volume": ActionForm("Attach a volume", "volume", volume_choices, attach_volume),
    "attach-interface": ActionForm("Attach an interface", "network", network_choices, attach_interface),
    "floating-ip": ActionForm("Associate a floating IP", "address", floating_ip_choices, associate_floating_ip),
}


def views(d: Dashboard) -> dict[str, Any]:
    async def detail(request: Request, session: Session, api: Api) -> Response:
        server_id = request.path_params["server_id"]
        server = await server_of(api, server_id)
        length = console_length(request)
        log_request = {"os-getConsoleOutput": {"length": length}}
        (attachments, attachments_error), (actions, actions_error), (log, log_error), (ports, ports_error), \
            (image, _) = await asyncio.gather(
                quietly(api.get("compute", f"/servers/{server_id}/os-volume_attachments")),
                quietly(api.get("compute", f"/servers/{server_id}/os-instance-actions")),
                quietly(api.post("compute", f"/servers/{server_id}/action", log_request)),
                quietly(ports_with_floating_ips(api, server_id)),
                quietly(image_of(api, server)))
        return d.render(
            request, "instance_detail.html", title=f"Instance {server['name']}", server=server,
            attachments=(attachments or {}).get("volumeAttachments", []), attachments_error=attachments_error,
            actions_log=(actions or {}).get("instanceActions", []), actions_error=actions_error,
            console=((log.data if log else None) or {}).get("output", ""), console_error=log_error,
            length=length, lengths=CONSOLE_LINES, ports=ports or [], ports_error=ports_error, image=image)

    async def show_form(request: Request, session: Session, api: Api, server: dict[str, Any], name: str,
                        form: FormData | None = None, error: tuple[str, str] | None = None,
                        status: int = 400) -> Response:
        spec = FORMS[name]
        choices, refused = await quietly(spec.load(api, session, server))
        errors = {error[0]: error[1]} if error else {}
        if refused and not errors:
            errors["form"] = refused
        values = {k: str(v) for k, v in form.items()} if form else {}
        return d.render(request, "instance_form.html", status if error else 200,
                        title=f"{spec.title}: {server['name']}", kind=name, spec=spec, server=server,
                        values=values, errors=errors, **(choices or {}))

    def form_view(name: str) -> Callable[[Request, Session, Api], Awaitable[Response]]:
        async def handle(request: Request, session: Session, api: Api) -> Response:
            server = await server_of(api, request.path_params["server_id"])
            if request.method != "POST":  # GET, and the HEAD Starlette lets in with it, only show the form
                return await show_form(request, session, api, server, name)
            form = await request.form()
            try:
                words = await FORMS[name].submit(api, session, server, form)
            except ApiError as exc:
                if exc.status == 401:
                    raise
                # a refusal of the user's role (403) keeps its status; bad input, conflicts, quota: 400
                return await show_form(request, session, api, server, name, form, (FORMS[name].field, exc.message),
                                       403 if exc.status == 403 else 400)
            return d.redirect(f"/project/instances/{server['id']}", ("info", words))

        return handle

    async def undo(request: Request, session: Session, api: Api) -> Response:
        """Detach a volume or an interface, disassociate a floating IP: a button on the page."""
        server_id, what, item = (request.path_params[k] for k in ("server_id", "what", "item_id"))
        back = f"/project/instances/{server_id}"
        try:
            if what == "volumes":
                await api.delete("compute", f"/servers/{server_id}/os-volume_attachments/{item}")
                words = f"Detaching volume {item[:8]}."
            elif what == "interfaces":
                await api.delete("compute", f"/servers/{server_id}/os-interface/{item}")
                words = f"Detaching interface {item[:8]}."
            elif what == "floating-ips":
                r = await api.put("network", f"/v2.0/floatingips/{item}", {"floatingip": {"port_id": None}})
                words = f"Floating IP {((r.data or {}).get('floatingip') or {}).get('floating_ip_address', '')} " \
                        "disassociated (it stays allocated to the project)."
            else:
                return Response(status_code=404)
        except ApiError as exc:
            if exc.status == 401:
                raise
            return d.redirect(back, ("error", exc.message))
        return d.redirect(back, ("info", words))

    return {"detail": detail, "form": form_view, "undo": undo}
