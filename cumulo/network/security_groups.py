"""Security groups and their rules (the API; the dataplane enforces them with the agent).

Every project has a ``default`` group, made the first time the project needs one, with Neutron's
default rules: all egress (IPv4 and IPv6) and ingress from members of the same group.  It cannot
be deleted.  Rules are validated the way Neutron does (protocol, port ranges, ICMP type/code,
remote prefix or group, ethertype) and duplicates are refused.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from sqlalchemy import delete, select, update
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.db import Database, IntegrityError, is_duplicate
from cumulo.core.http.app import JSON, Router
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, Conflict, NotFound
from cumulo.network import quotas, tags
from cumulo.network.models import DefaultSecurityGroup, Port, SecurityGroup, SecurityGroupRule
from cumulo.network.policies import VERB, rule_target
from cumulo.network.requests import body, who
from cumulo.network.views import shape, shape_one

PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132, "gre": 47, "esp": 50,
             "ah": 51, "vrrp": 112, "any": None}


class SecurityGroups:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def default(self, project_id: str) -> str:
        """The project's default group, made on first use (exactly once, whatever the races)."""
        async with self.db.session() as s:
            row = await s.get(DefaultSecurityGroup, project_id)
        if row is not None:
            return row.group_id
        group = SecurityGroup(id=str(uuid.uuid4()), name="default", project_id=project_id, is_default=True,
                              description="Default security group")
        try:
            async with self.db.session() as s:
                s.add(DefaultSecurityGroup(project_id=project_id, group_id=group.id))
                s.add(group)
                await s.flush()
                for ethertype in ("IPv4", "IPv6"):
                    s.add(SecurityGroupRule(id=str(uuid.uuid4()), group_id=group.id, project_id=project_id,
                                            direction="egress", ethertype=ethertype))
                    s.add(SecurityGroupRule(id=str(uuid.uuid4()), group_id=group.id, project_id=project_id,
                                            direction="ingress", ethertype=ethertype, remote_group_id=group.id))
        except IntegrityError as exc:
            if not is_duplicate(exc):
                raise
            async with self.db.session() as s:  # made by a concurrent request: that one
                row = await s.get(DefaultSecurityGroup, project_id)
            assert row is not None
            return row.group_id
        return group.id

    async def get(self, group_id: str, project: str, admin: bool) -> SecurityGroup:
        async with self.db.session() as s:
            row = await s.get(SecurityGroup, group_id)
        if row is None or not (admin or row.project_id == project):
            raise NotFound(f"Security group {group_id} does not exist", kind="SecurityGroupNotFound")
        return row

    async def rules(self, group_ids: list[str]) -> dict[str, list[SecurityGroupRule]]:
        out: dict[str, list[SecurityGroupRule]] = {g: [] for g in group_ids}
        async with self.db.session() as s:
            for rule in (await s.execute(select(SecurityGroupRule).where(
                    SecurityGroupRule.group_id.in_(group_ids)).order_by(SecurityGroupRule.created_at))).scalars():
                out[rule.group_id].append(rule)
        return out


def stamp(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def rule_view(r: SecurityGroupRule) -> dict[str, Any]:
    return {"id": r.id, "security_group_id": r.group_id, "direction": r.direction, "ethertype": r.ethertype,
            "protocol": r.protocol, "port_range_min": r.port_range_min, "port_range_max": r.port_range_max,
            "remote_ip_prefix": r.remote_ip_prefix, "remote_group_id": r.remote_group_id,
            "remote_address_group_id": None, "normalized_cidr": r.remote_ip_prefix, "description": r.description,
            "tenant_id": r.project_id, "project_id": r.project_id, "revision_number": r.revision_number,
            "created_at": stamp(r.created_at), "updated_at": stamp(r.updated_at), "tags": r.tags or []}


def group_view(g: SecurityGroup, rules: list[SecurityGroupRule]) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "description": g.description, "stateful": g.stateful,
            "security_group_rules": [rule_view(r) for r in rules], "tenant_id": g.project_id,
            "project_id": g.project_id, "revision_number": g.revision_number, "created_at": stamp(g.created_at),
            "updated_at": stamp(g.updated_at), "tags": g.tags or [], "shared": False}


def check_rule(item: dict[str, Any]) -> dict[str, Any]:
    direction = item.get("direction")
    if direction not in ("ingress", "egress"):
        raise BadRequest(f"Invalid input for direction. Reason: {direction!r} is not in ['ingress', 'egress'].")
    ethertype = item.get("ethertype", "IPv4")
    if ethertype not in ("IPv4", "IPv6"):
        raise BadRequest(f"Invalid input for ethertype. Reason: {ethertype!r} is not in ['IPv4', 'IPv6'].")
    protocol = item.get("protocol")
    if protocol is not None:
        protocol = str(protocol).lower()
        if protocol not in PROTOCOLS and not (protocol.isdigit() and 0 <= int(protocol) <= 255):
            raise BadRequest(f"Security group rule protocol {protocol} not supported. Only protocol values "
                             f"{sorted(PROTOCOLS)} and integer representations [0 to 255] are supported.",
                             kind="SecurityGroupRuleInvalidProtocol")
        if protocol == "any":
            protocol = None
    low, high = item.get("port_range_min"), item.get("port_range_max")
    for value in (low, high):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise BadRequest(f"Invalid input for port range: {value!r} is not an integer.")
    if protocol in ("tcp", "udp", "sctp", "6", "17", "132"):
        for value in (low, high):
            if value is not None and not 1 <= value <= 65535:
                raise BadRequest(f"Invalid value for port {value}", kind="SecurityGroupInvalidPortValue")
        if low is not None and high is not None and low > high:
            raise BadRequest("For TCP/UDP protocols, port_range_min must be <= port_range_max",
                             kind="SecurityGroupInvalidPortRange")
        if (low is None) != (high is None):
            raise BadRequest("For TCP/UDP protocols, port_range_min must be <= port_range_max (give both ends, "
                             "or neither).", kind="SecurityGroupInvalidPortRange")
    elif protocol in ("icmp", "icmpv6", "ipv6-icmp", "1", "58"):
        for name, value in (("type", low), ("code", high)):
            if value is not None and not 0 <= value <= 255:
                raise BadRequest(f"Invalid value for ICMP {name} (port_range_{'min' if name == 'type' else 'max'})"
                                 f" {value}. It must be 0 to 255.", kind="SecurityGroupInvalidIcmpValue")
        if high is not None and low is None:
            raise BadRequest(f"ICMP code (port-range-max) {high} is provided but ICMP type (port-range-min) is "
                             "missing.",
                             kind="SecurityGroupMissingIcmpType")
    elif low is not None or high is not None:
        raise BadRequest("Port ranges need protocol tcp, udp, sctp or icmp.", kind="SecurityGroupInvalidPortRange")
    prefix, remote_group = item.get("remote_ip_prefix"), item.get("remote_group_id")
    if prefix is not None and remote_group is not None:
        raise BadRequest("Only remote_ip_prefix or remote_group_id may be provided.",
                         kind="SecurityGroupRemoteGroupAndRemoteIpPrefix")
    if prefix is not None:
        try:
            net = ipaddress.ip_network(str(prefix), strict=False)
        except ValueError:
            raise BadRequest(f"Invalid input for remote_ip_prefix. Reason: '{prefix}' is not a valid IP prefix."
                             ) from None
        if f"IPv{net.version}" != ethertype:
            raise BadRequest(f"Conflicting value ethertype {ethertype} for CIDR {prefix}",
                             kind="SecurityGroupRuleParameterConflict")
        prefix = str(net)
    return {"direction": direction, "ethertype": ethertype, "protocol": protocol, "port_range_min": low,
            "port_range_max": high, "remote_ip_prefix": prefix, "remote_group_id": remote_group,
            "description": str(item.get("description") or "")}


def refuse_default_name(name: Any) -> None:
    """``default`` (in any case) names only the group every project gets: 409 as Neutron."""
    if isinstance(name, str) and name.lower() == "default":
        raise Conflict("Default security group already exists.", kind="SecurityGroupDefaultAlreadyExists")


def router(groups: SecurityGroups) -> Router:
    r = Router()
    db = groups.db

    async def bump(s: Any, group_id: str) -> None:
        """A group's rules are part of it: changing them is a revision of the group."""
        await s.execute(update(SecurityGroup).where(SecurityGroup.id == group_id).values(
            revision_number=SecurityGroup.revision_number + 1))

    @r.route("/v2.0/security-groups", ["GET", "POST"])
    async def list_or_create(request: Request) -> Response:
        project, admin = who(request)
        authorize(request, "get_security_group" if request.method in ("GET", "HEAD") else "create_security_group")
        await groups.default(project)
        if request.method == "POST":
            item = await body(request, "security_group")
            name = item.get("name", "")
            if not isinstance(name, str) or len(name) > 255:
                raise BadRequest("Invalid input for name: a string of at most 255 characters.")
            refuse_default_name(name)
            owner = item.get("project_id") or item.get("tenant_id") or project
            if owner != project and not admin:
                raise BadRequest("Only an admin may create security groups for another project.")
            authorize(request, "create_security_group", {"project_id": owner})
            if not isinstance(item.get("stateful", True), bool):
                raise BadRequest(f"Invalid input for stateful. Reason: '{item['stateful']}' is not a valid boolean "
                                 "value.")
            group_tags = tags.check_tags(item["tags"]) if "tags" in item else []
            async with quotas.turn(db, "security_group", owner):
                await quotas.check(db, "security_group", owner)
                group = SecurityGroup(id=str(uuid.uuid4()), name=name, project_id=owner, tags=group_tags,
                                      description=str(item.get("description") or ""),
                                      stateful=item.get("stateful", True))
                async with db.session() as s:
                    s.add(group)
                    for ethertype in ("IPv4", "IPv6"):
                        s.add(SecurityGroupRule(id=str(uuid.uuid4()), group_id=group.id, project_id=owner,
                                                direction="egress", ethertype=ethertype))
            rules = await groups.rules([group.id])
            return JSON({"security_group": group_view(group, rules[group.id])}, status_code=201)
        stmt = select(SecurityGroup).order_by(SecurityGroup.created_at)
        if not admin:
            stmt = stmt.where(SecurityGroup.project_id == project)
        async with db.session() as s:
            rows = list((await s.execute(stmt)).scalars())
        rules = await groups.rules([g.id for g in rows])
        return JSON(shape(request, [group_view(g, rules[g.id]) for g in rows], "security_groups"))

    @r.route("/v2.0/security-groups/{group_id}", ["GET", "PUT", "DELETE"])
    async def one(request: Request) -> Response:
        project, admin = who(request)
        group = await groups.get(request.path_params["group_id"], project, admin)
        authorize(request, f"{VERB[request.method]}_security_group", {"project_id": group.project_id})
        if request.method == "DELETE":
            if group.is_default and not admin:
                raise Conflict("Insufficient rights for removing default security group.",
                               kind="SecurityGroupCannotRemoveDefault")
            async with db.session() as s:
                in_use = (await s.execute(select(Port.id, Port.security_groups).where(
                    Port.project_id == group.project_id))).all()
                if any(group.id in (groups_ or []) for _, groups_ in in_use):
                    raise Conflict(f"Security Group {group.id} in use.", kind="SecurityGroupInUse")
                # with the group go its rules and the other groups' rules that name it as their remote
                await s.execute(delete(SecurityGroupRule).where((SecurityGroupRule.group_id == group.id) | (
                    SecurityGroupRule.remote_group_id == group.id)))
                await s.execute(delete(SecurityGroup).where(SecurityGroup.id == group.id))
                await s.execute(delete(DefaultSecurityGroup).where(DefaultSecurityGroup.group_id == group.id))
            return Response(status_code=204)
        if request.method == "PUT":
            item = await body(request, "security_group")
            if "name" in item:
                # as Neutron: no other group may take the name, and the default group keeps its own
                refuse_default_name(item["name"])
                if group.is_default:
                    raise Conflict("Updating default security group not allowed.",
                                   kind="SecurityGroupCannotUpdateDefault")
            async with db.session() as s:
                row = await s.get(SecurityGroup, group.id)
                assert row is not None
                for key in ("name", "description"):
                    if key in item:
                        if not isinstance(item[key], str) or len(item[key]) > 255:
                            raise BadRequest(f"Invalid input for {key}: a string of at most 255 characters.")
                        setattr(row, key, item[key])
                row.revision_number += 1
                group = row
        rules = await groups.rules([group.id])
        return JSON(shape_one(request, group_view(group, rules[group.id]), "security_group"))

    @r.route("/v2.0/security-group-rules", ["GET", "POST"])
    async def rules_list_or_create(request: Request) -> Response:
        project, admin = who(request)
        if request.method == "POST":
            item = await body(request, "security_group_rule")
            group = await groups.get(str(item.get("security_group_id", "")), project, admin)
            authorize(request, "create_security_group_rule", rule_target(group.project_id))
            values = check_rule(item)
            if values["remote_group_id"]:
                await groups.get(values["remote_group_id"], project, admin)
            existing = (await groups.rules([group.id]))[group.id]
            keys = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix",
                    "remote_group_id")
            def same(key: str, a: Any, b: Any) -> bool:
                if key == "remote_ip_prefix":  # "everywhere" written either way
                    a, b = (None if x in ("0.0.0.0/0", "::/0") else x for x in (a, b))
                return bool(a == b)

            for rule in existing:
                if all(same(k, getattr(rule, k), values[k]) for k in keys):
                    raise Conflict(f"Security group rule already exists. Rule id is {rule.id}.",
                                   kind="SecurityGroupRuleExists")
            async with quotas.turn(db, "security_group_rule", group.project_id):
                await quotas.check(db, "security_group_rule", group.project_id)
                rule = SecurityGroupRule(id=str(uuid.uuid4()), group_id=group.id, project_id=group.project_id,
                                         **values)
                async with db.session() as s:
                    s.add(rule)
                    await bump(s, group.id)
            return JSON({"security_group_rule": rule_view(rule)}, status_code=201)
        authorize(request, "get_security_group_rule", rule_target(project))
        await groups.default(project)
        stmt = select(SecurityGroupRule).order_by(SecurityGroupRule.created_at)
        if not admin:
            stmt = stmt.where(SecurityGroupRule.project_id == project)
        async with db.session() as s:
            rows = list((await s.execute(stmt)).scalars())
        return JSON(shape(request, [rule_view(x) for x in rows], "security_group_rules"))

    @r.route("/v2.0/security-group-rules/{rule_id}", ["GET", "DELETE"])
    async def rule(request: Request) -> Response:
        project, admin = who(request)
        async with db.session() as s:
            row = await s.get(SecurityGroupRule, request.path_params["rule_id"])
        if row is None or not (admin or row.project_id == project):
            raise NotFound(f"Security group rule {request.path_params['rule_id']} does not exist",
                           kind="SecurityGroupRuleNotFound")
        authorize(request, f"{VERB[request.method]}_security_group_rule", rule_target(row.project_id))
        if request.method == "DELETE":
            async with db.session() as s:
                await s.execute(delete(SecurityGroupRule).where(SecurityGroupRule.id == row.id))
                await bump(s, row.group_id)
            return Response(status_code=204)
        return JSON(shape_one(request, rule_view(row), "security_group_rule"))

    return r
