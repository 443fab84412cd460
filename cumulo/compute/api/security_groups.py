"""Nova's security-group proxy: os-security-groups, os-security-group-rules, a server's groups and
the addSecurityGroup/removeSecurityGroup actions, all asked of the network service
(cumulo.network.service); Nova's request parsing, views and fault wording stay here.

Groups and rules made here are the Network API's own (a rule made through Nova is listed by
``GET /v2.0/security-group-rules``), counted against the network quotas ``security_group`` and
``security_group_rule`` (Nova answers 403 when one is exhausted).  Nova shows only ingress rules,
in its own shape (``from_port``/``to_port``/``ip_protocol``/``ip_range``/``group``).  The group and
rule paths were deprecated at microversion 2.36 and answer 404 from there on; a server's groups and
the two actions stay.  ``os-security-group-default-rules`` (nova-network only) is 410 Gone.
Every change of a port's groups or of a group's rules is announced on the bus as
``network.changed``, so the dataplane applies it.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.common import at_least, offset_page
from cumulo.compute.models import Server
from cumulo.compute.servers import ServerManager
from cumulo.core.http.app import JSON, Router, auth_of, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, Conflict, Fault, Forbidden, NotFound
from cumulo.network.service import (
    NetworkService,
    OverQuota,
    PortInfo,
    SecurityGroupInfo,
    SecurityGroupRuleInfo,
)

NOVA_PROTOCOLS = ("tcp", "udp", "icmp")


def proxy_gone(request: Request) -> None:
    if at_least(request, 36):
        raise NotFound("The security group proxy APIs were removed in microversion 2.36: use the Network API.")


def check_id(value: Any, what: str = "Security group") -> str:
    """Nova refuses an id that is not a UUID before asking the Network API (400, not 404)."""
    try:
        uuid.UUID(str(value))
    except ValueError:
        raise BadRequest(f"{what} id should be uuid") from None
    if not isinstance(value, str):
        raise BadRequest(f"{what} id should be uuid")
    return value


def who(request: Request) -> tuple[str, bool]:
    auth = auth_of(request)
    return auth.project_id or "", auth.is_admin()


def network_of(manager: ServerManager) -> NetworkService:
    """The network service the proxy asks: the manager's; a cloud whose controllers run no
    Network API still answers the proxy from the network's store, as it always has."""
    return manager.network or NetworkService(manager.db, manager.bus)


# -- views ------------------------------------------------------------------------------------------
def rule_view(rule: SecurityGroupRuleInfo, known: dict[str, SecurityGroupInfo]) -> dict[str, Any] | None:
    """One ingress rule as Nova shows it; None when its remote group is gone (Nova skips those)."""
    low, high = rule.port_range_min, rule.port_range_max
    if rule.protocol and low is None and high is None:
        low, high = (1, 65535) if rule.protocol.lower() in ("tcp", "udp") else (-1, -1)
    out: dict[str, Any] = {"id": rule.id, "parent_group_id": rule.group_id, "ip_protocol": rule.protocol,
                           "from_port": low, "to_port": high, "group": {}, "ip_range": {}}
    if rule.remote_group_id:
        remote = known.get(rule.remote_group_id)
        if remote is None:
            return None
        out["group"] = {"name": remote.name, "tenant_id": remote.project_id}
    else:
        everywhere = "::/0" if rule.ethertype == "IPv6" else "0.0.0.0/0"
        out["ip_range"] = {"cidr": rule.remote_ip_prefix or everywhere}
    return out


async def views(network: NetworkService, rows: list[SecurityGroupInfo]) -> list[dict[str, Any]]:
    """Nova's shape of each group, its ingress rules resolved against the groups they name."""
    rules = await network.security_group_rules([g.id for g in rows])
    known = {g.id: g for g in rows}
    wanted = {r.remote_group_id for rs in rules.values() for r in rs if r.remote_group_id} - set(known)
    if wanted:
        known.update(await network.security_groups_by_id(wanted))
    out = []
    for g in rows:
        shown = [rule_view(r, known) for r in rules[g.id] if r.direction == "ingress"]
        out.append({"id": g.id, "name": g.name, "description": g.description or "", "tenant_id": g.project_id,
                    "rules": [r for r in shown if r is not None]})
    return out


def by_owner_and_name(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda g: (g["tenant_id"], g["name"]))


# -- request bodies ---------------------------------------------------------------------------------
async def body_of(request: Request, key: str) -> dict[str, Any]:
    data = await json_body(request)
    item = data.get(key) if isinstance(data, dict) else None
    if not isinstance(item, dict):
        raise BadRequest(f"Invalid input: the request body needs a '{key}' object.")
    return item


def group_fields(item: dict[str, Any]) -> tuple[str, str]:
    """name and description: both required, strings of at most 255 characters (empty is allowed,
    and surrounding spaces are kept, as in Nova)."""
    values = []
    for key in ("name", "description"):
        if key not in item:
            raise BadRequest(f"Invalid input for field/attribute security_group. Value: {item}. '{key}' is a "
                             "required property")
        value = item[key]
        if not isinstance(value, str):
            raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value!r}. {value!r} is not of "
                             "type 'string'")
        if len(value) > 255:
            raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value[:40]}.... It is longer "
                             "than 255 characters.")
        values.append(value)
    return values[0], values[1]


def port_number(value: Any, protocol: str) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        if protocol == "icmp":
            raise BadRequest("Invalid input received: Type and Code must be integers for ICMP protocol type")
        raise BadRequest("Invalid input received: To and From ports must be integers")
    return value


def parse_cidr(value: Any) -> str:
    """The rule's source range as given (URL-quoted is accepted, as Nova does); everywhere when none."""
    if not value:
        return "0.0.0.0/0"
    text = urllib.parse.unquote(str(value)) if isinstance(value, str) else ""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise BadRequest(f"Invalid cidr {value}.") from None
    if "/" not in text:
        raise BadRequest(f"Invalid cidr {value}.")
    if net.prefixlen == 0 and text.split("/", 1)[0] not in ("0.0.0.0", "::"):
        raise BadRequest(f"Bad prefix for network in cidr {text}")
    return text


def nova_rule(network: NetworkService, item: dict[str, Any]) -> dict[str, Any]:
    """Nova's rule arguments (ip_protocol, from_port, to_port, cidr or group_id) as the Network API's
    rule: always ingress; -1 means any ICMP type or code; with a source group and no ports, TCP and
    UDP open every port."""
    protocol, low, high = item.get("ip_protocol"), item.get("from_port"), item.get("to_port")
    group_id = item.get("group_id")
    cidr = None if group_id is not None else parse_cidr(item.get("cidr"))
    if protocol is not None and not isinstance(protocol, str):
        raise BadRequest(f"Invalid IP protocol {protocol}.")
    name = (protocol or "").lower()
    if group_id is not None and low is None and high is None:
        if name == "icmp":
            low, high = -1, -1
        elif name in ("tcp", "udp"):
            low, high = 1, 65535
    if protocol and low is not None and high is not None:
        low, high = port_number(low, name), port_number(high, name)
        if name not in NOVA_PROTOCOLS:
            raise BadRequest(f"Invalid IP protocol {protocol}.")
        if name in ("tcp", "udp"):
            if low > high:
                raise BadRequest(f"Invalid port range {low}:{high}. Former value cannot be greater than the later")
            if low < 1 or high > 65535:
                raise BadRequest(f"Invalid port range {low}:{high}. Valid {name.upper()} ports should be between "
                                 "1-65535")
        elif not (-1 <= low <= 255 and -1 <= high <= 255):
            raise BadRequest(f"Invalid port range {low}:{high}. For ICMP, the type:code must be valid")
        wanted: dict[str, Any] = {"protocol": name, "port_range_min": None if low == -1 else low,
                                  "port_range_max": None if high == -1 else high}
    elif group_id is None:
        raise BadRequest("Not enough parameters to build a valid rule.")
    else:  # a source group alone (as Nova, the protocol is dropped without both ports): everything
        wanted = {"protocol": None, "port_range_min": None, "port_range_max": None}
    ethertype = "IPv6" if cidr and ipaddress.ip_network(cidr, strict=False).version == 6 else "IPv4"
    values = network.check_rule({"direction": "ingress", "ethertype": ethertype, "remote_ip_prefix": cidr,
                                 "remote_group_id": group_id, **wanted})
    values["remote_ip_prefix"] = cidr  # kept as written, as Neutron keeps it
    return values


def same_rule(rule: SecurityGroupRuleInfo, values: dict[str, Any]) -> bool:
    def prefix(value: Any) -> Any:
        return None if value in (None, "0.0.0.0/0", "::/0") else str(ipaddress.ip_network(value, strict=False))

    return (rule.direction, rule.ethertype, rule.protocol, rule.port_range_min, rule.port_range_max,
            rule.remote_group_id, prefix(rule.remote_ip_prefix)) == (
        values["direction"], values["ethertype"], values["protocol"], values["port_range_min"],
        values["port_range_max"], values["remote_group_id"], prefix(values["remote_ip_prefix"]))


def over_quota(exc: OverQuota) -> Forbidden:
    """Nova answers 403 when a network quota of groups or rules is exhausted."""
    kind = "security groups" if exc.resource == "security_group" else "security group rules"
    return Forbidden(f"Quota exceeded, too many {kind}.")


# -- a server's groups --------------------------------------------------------------------------------
async def server_ports(manager: ServerManager, server: Server) -> list[PortInfo]:
    return await network_of(manager).server_ports(server.id)


async def find_group(manager: ServerManager, name: str, project: str) -> SecurityGroupInfo:
    """A group by id or name in the server's project, as Nova finds it: unknown is 404, a name two
    groups share is 409."""
    found = await network_of(manager).security_groups_named(name, project)
    if not found:
        raise NotFound(f"Security group {name} is not found for project {project}")
    if len(found) > 1:
        raise Conflict(f"Multiple security_group matches found for name '{name}', use an ID to be more specific.")
    return found[0]


def action_name(arg: Any) -> str:
    if not isinstance(arg, dict):
        raise BadRequest("Missing parameter dict")
    if "name" not in arg:
        raise BadRequest("Security group not specified")
    extra = sorted(set(arg) - {"name"})
    if extra:
        raise BadRequest(f"Additional properties are not allowed ({', '.join(map(repr, extra))} were unexpected)")
    name = arg["name"]
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("Security group name cannot be empty")
    return name


async def remember(manager: ServerManager, server: Server, group: SecurityGroupInfo, added: bool) -> None:
    """Keep the group names the server's record shows (its ``security_groups``) in step."""
    async with manager.db.session() as s:
        row = await s.get(Server, server.id, with_for_update=True)
        if row is None:
            return
        names = [n for n in (row.request or {}).get("security_groups", ["default"]) if n not in (group.name, group.id)]
        row.request = {**(row.request or {}), "security_groups": [*names, group.name] if added else names}


async def add_to_server(manager: ServerManager, server: Server, arg: Any) -> None:
    name = action_name(arg)
    group = await find_group(manager, name, server.project_id)
    ports = await server_ports(manager, server)
    if not ports:
        raise NotFound(f"instance_id {server.id} could not be found as device id on any ports")
    addressed = await network_of(manager).addressed_ports([p.id for p in ports])
    for port in ports:
        if not port.port_security_enabled or port.id not in addressed:
            raise BadRequest("Network requires port_security_enabled and subnet associated in order to apply "
                             "security groups.")
    await network_of(manager).add_security_group(server.id, [p.id for p in ports], group.id)
    await remember(manager, server, group, added=True)


async def remove_from_server(manager: ServerManager, server: Server, arg: Any) -> None:
    name = action_name(arg)
    group = await find_group(manager, name, server.project_id)
    ports = await server_ports(manager, server)
    if not ports:
        raise NotFound(f"instance_id {server.id} could not be found as device id on any ports")
    if not await network_of(manager).remove_security_group(server.id, [p.id for p in ports], group.id):
        raise NotFound(f"Security group {name} not associated with the instance {server.id}")
    await remember(manager, server, group, added=False)


# -- the API ------------------------------------------------------------------------------------------
def router(manager: ServerManager) -> Router:
    r = Router()

    async def visible(request: Request, group_id: str, rule: str) -> SecurityGroupInfo:
        project, admin = who(request)
        try:
            group = await network_of(manager).security_group(check_id(group_id), project, admin)
        except NotFound:
            raise NotFound(f"Security group {group_id} not found.") from None
        authorize(request, rule, {"project_id": group.project_id})
        return group

    @r.route("/v2.1/os-security-groups", ["GET", "HEAD", "POST"])
    async def list_or_create(request: Request) -> Response:
        proxy_gone(request)
        authorize(request, "os_compute_api:os-security-groups:create" if request.method == "POST"
                  else "os_compute_api:os-security-groups:get")
        project, admin = who(request)
        network = network_of(manager)
        await network.default_security_group(project)  # every project has one, as soon as it looks
        if request.method == "POST":
            name, description = group_fields(await body_of(request, "security_group"))
            if name == "default":
                raise BadRequest("Security group name 'default' is reserved: the project already has its "
                                 "default group.")
            try:  # all egress allowed, as the Network API makes a group
                group = await network.create_security_group(name, description, project)
            except OverQuota as exc:
                raise over_quota(exc) from None
            return JSON({"security_group": (await views(network, [group]))[0]})
        rows = await network.security_groups(None if admin and "all_tenants" in request.query_params else project)
        return JSON({"security_groups": offset_page(request, by_owner_and_name(await views(network, rows)))})

    @r.route("/v2.1/os-security-groups/{group_id}", ["GET", "HEAD", "PUT", "DELETE"])
    async def one(request: Request) -> Response:
        proxy_gone(request)
        _, admin = who(request)
        network = network_of(manager)
        group = await visible(request, request.path_params["group_id"],
                              {"DELETE": "os_compute_api:os-security-groups:delete",
                               "PUT": "os_compute_api:os-security-groups:update"}.get(
                                  request.method, "os_compute_api:os-security-groups:show"))
        if request.method == "DELETE":
            if group.is_default and not admin:
                raise BadRequest("Removing default security group not allowed.")
            if await network.security_group_in_use(group.id):
                raise BadRequest(f"Security Group {group.id} in use.")
            await network.delete_security_group(group.id)
            return Response(status_code=202)
        if request.method == "PUT":
            name, description = group_fields(await body_of(request, "security_group"))
            if group.is_default and name != "default":
                raise BadRequest("Updating default security group not allowed: its name stays 'default'.")
            if not group.is_default and name == "default":
                raise BadRequest("Security group name 'default' is reserved for the project's default group.")
            renamed = await network.rename_security_group(group.id, name, description)
            if renamed is None:
                raise NotFound(f"Security group {group.id} not found.")
            group = renamed
        return JSON({"security_group": (await views(network, [group]))[0]})

    @r.route("/v2.1/os-security-groups/", ["PUT", "DELETE"])
    async def no_group(request: Request) -> Response:
        proxy_gone(request)
        raise NotFound("Security group  not found: no id was given.")

    @r.post("/v2.1/os-security-group-rules")
    async def create_rule(request: Request) -> Response:
        proxy_gone(request)
        authorize(request, "os_compute_api:os-security-groups:rule:create")
        item = await body_of(request, "security_group_rule")
        if "parent_group_id" not in item:
            raise BadRequest("Invalid input for field/attribute security_group_rule. 'parent_group_id' is a "
                             "required property")
        parent_id = item["parent_group_id"]
        if not isinstance(parent_id, str):
            raise BadRequest(f"Invalid input for field/attribute parent_group_id. Value: {parent_id}. It is not "
                             "a string.")
        check_id(parent_id)
        if item.get("group_id") is not None:
            check_id(item["group_id"])
        parent = await visible(request, parent_id, "os_compute_api:os-security-groups:rule:create")
        source = (await visible(request, item["group_id"], "os_compute_api:os-security-groups:show")
                  if item.get("group_id") is not None else None)
        network = network_of(manager)
        values = nova_rule(network, item)
        if any(same_rule(x, values) for x in (await network.security_group_rules([parent.id]))[parent.id]):
            raise BadRequest(f"This rule already exists in group {parent.id}")
        try:
            rule = await network.create_security_group_rule(parent.id, parent.project_id, values)
        except OverQuota as exc:
            raise over_quota(exc) from None
        known = {parent.id: parent, **({source.id: source} if source is not None else {})}
        return JSON({"security_group_rule": rule_view(rule, known)})

    @r.route("/v2.1/os-security-group-rules/{rule_id}", ["DELETE"])
    async def delete_rule(request: Request) -> Response:
        proxy_gone(request)
        project, admin = who(request)
        rule_id = check_id(request.path_params["rule_id"], "Security group rule")
        network = network_of(manager)
        row = await network.security_group_rule(rule_id)
        if row is None or not (admin or row.project_id == project):
            raise NotFound(f"Security group rule {rule_id} not found.")
        authorize(request, "os_compute_api:os-security-groups:rule:delete", {"project_id": row.project_id})
        await network.delete_security_group_rule(row)
        return Response(status_code=202)

    @r.route("/v2.1/os-security-group-rules/", ["DELETE"])
    async def no_rule(request: Request) -> Response:
        proxy_gone(request)
        raise NotFound("Security group rule  not found: no id was given.")

    @r.get("/v2.1/servers/{server_id}/os-security-groups")
    async def of_server(request: Request) -> Response:
        project, admin = who(request)
        server_id = request.path_params["server_id"]
        server = await manager.get(server_id) if len(server_id) <= 36 else None
        if server is None or server.deleted_at is not None or (server.project_id != project and not admin):
            raise NotFound(f"Instance {server_id} could not be found.")
        authorize(request, "os_compute_api:os-security-groups:list",
                  {"project_id": server.project_id, "user_id": server.user_id})
        network = network_of(manager)
        await network.default_security_group(project)
        ids = list(dict.fromkeys(g for p in await server_ports(manager, server) for g in p.security_groups or []))
        found = await network.security_groups_by_id(ids)
        rows = [found[g] for g in ids if g in found]
        return JSON({"security_groups": by_owner_and_name(await views(network, rows))})

    @r.route("/v2.1/os-security-group-default-rules", ["GET", "HEAD", "POST"])
    async def default_rules(request: Request) -> Response:
        raise Fault("This API only worked with nova-network, removed in the 21.0.0 (Ussuri) release.", code=410)

    @r.route("/v2.1/os-security-group-default-rules/{rule_id}", ["GET", "HEAD", "DELETE"])
    async def default_rule(request: Request) -> Response:
        raise Fault("This API only worked with nova-network, removed in the 21.0.0 (Ussuri) release.", code=410)

    return r
