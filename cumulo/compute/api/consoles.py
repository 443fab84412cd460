"""Remote consoles: ``POST /v2.1/servers/{id}/remote-consoles`` (2.6+) and the server actions it
replaced (``os-getSerialConsole``, ``os-getVNCConsole``, up to 2.5), with Nova's bodies and
errors.  Cumulo's guests offer the ``serial`` console and VNC for ``novnc`` clients; the URL
opens the console once through Cumulo's proxies (``cumulo.compute.consoles``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.common import at_least
from cumulo.compute.consoles.service import RemoteConsoles
from cumulo.compute.servers import ServerManager
from cumulo.core.http.app import JSON, Router, auth_of, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, NotFound

RULE = "os_compute_api:os-remote-consoles"
# protocol -> the console type Cumulo offers for it
OFFERED = {"serial": "serial", "vnc": "novnc"}
# what Nova's schema takes (the rest is refused lower down, as Nova does)
PROTOCOLS = ("vnc", "spice", "serial", "rdp")
TYPES = ("novnc", "xvpvnc", "spice-html5", "serial", "rdp-html5")
# the legacy actions (up to 2.5): the console type each takes
LEGACY = {"os-getSerialConsole": ("serial",), "os-getVNCConsole": ("novnc", "xvpvnc")}

Action = Callable[[Request, Any, Any], Awaitable[Response]]


def _choices(request: Request) -> tuple[tuple[str, ...], tuple[str, ...]]:
    protocols, types = PROTOCOLS, TYPES
    if at_least(request, 8):
        protocols, types = (*protocols, "mks"), (*types, "webmks")
    if at_least(request, 99):
        types = (*types, "spice-direct")
    return protocols, types


def parse(request: Request, body: Any) -> tuple[str, str]:
    """The protocol and type of a remote-consoles body, checked as Nova's schema checks them."""
    if not isinstance(body, dict) or set(body) != {"remote_console"} or not isinstance(body["remote_console"], dict):
        raise BadRequest("Invalid input for field/attribute remote_console: the body is "
                         '{"remote_console": {"protocol": ..., "type": ...}}.')
    arg = body["remote_console"]
    extra = set(arg) - {"protocol", "type"}
    if extra:
        raise BadRequest(f"Invalid input for field/attribute remote_console. Additional properties are not allowed "
                         f"({', '.join(sorted(map(repr, extra)))} were unexpected)")
    protocols, types = _choices(request)
    for field, allowed in (("protocol", protocols), ("type", types)):
        value = arg.get(field)
        if value is None:
            raise BadRequest(f"Invalid input for field/attribute remote_console. '{field}' is a required property")
        if value not in allowed:
            raise BadRequest(f"Invalid input for field/attribute {field}. Value: {value}. {value!r} is not one of "
                             f"{list(allowed)}")
    return arg["protocol"], arg["type"]


def check_offered(protocol: str, console_type: str) -> None:
    """Nova's answers for consoles a QEMU guest here does not have: 400 either way."""
    if protocol not in OFFERED:  # spice, rdp (gone with Hyper-V), mks (VMware)
        raise BadRequest(f"Unavailable console type {protocol if protocol == 'rdp' else console_type}.")
    if OFFERED[protocol] != console_type:
        raise BadRequest(f"Invalid console type {console_type}")


def router(manager: ServerManager, consoles: RemoteConsoles) -> Router:
    r = Router()

    @r.post("/v2.1/servers/{server_id}/remote-consoles")
    async def create(request: Request) -> Response:
        if not at_least(request, 6):
            raise NotFound("The resource could not be found.")
        auth = auth_of(request)
        server_id = request.path_params["server_id"]
        server = await manager.get(server_id) if len(server_id) <= 36 else None
        if server is None or server.deleted_at is not None or (
                server.project_id != auth.project_id and not auth.is_admin()):
            raise NotFound(f"Instance {server_id} could not be found.")
        authorize(request, RULE, {"project_id": server.project_id, "user_id": server.user_id})
        protocol, console_type = parse(request, await json_body(request))
        check_offered(protocol, console_type)
        url = await consoles.url(server, console_type)
        return JSON({"remote_console": {"protocol": protocol, "type": console_type, "url": url}})

    return r


def legacy_actions(consoles: RemoteConsoles) -> dict[str, Action]:
    """The server actions ``os-getSerialConsole`` and ``os-getVNCConsole`` (2.1-2.5), for the
    action dispatcher (which has found the server and checked ``RULE``)."""

    def handler(name: str) -> Action:
        async def get_console(request: Request, server: Any, arg: Any) -> Response:
            if at_least(request, 6):
                raise NotFound(f"The action {name} is not in microversion 2.6 and later: use "
                               "POST /servers/{server_id}/remote-consoles.")
            kind = arg.get("type") if isinstance(arg, dict) else None
            if not isinstance(arg, dict) or set(arg) - {"type"} or kind not in LEGACY[name]:
                raise BadRequest(f"Invalid input for field/attribute {name}: it needs "
                                 f"{{\"type\": one of {list(LEGACY[name])}}}.")
            if kind == "xvpvnc":  # XenServer's, gone from Nova
                raise BadRequest(f"Invalid console type {kind}")
            return JSON({"console": {"type": kind, "url": await consoles.url(server, kind)}})

        return get_console

    return {name: handler(name) for name in LEGACY}
