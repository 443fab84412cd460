"""QoS policies (Neutron's ``qos``, ``qos-bw-limit-direction``, ``qos-default`` and
``qos-rule-type-details``): a policy holds rules — a bandwidth limit per direction, a DSCP mark,
a minimum bandwidth — and applies to the ports it is bound to, directly (``qos_policy_id`` on a
port) or through their network (``qos_policy_id`` on the network; a port's own policy wins).  A
project's default policy (``is_default``) goes to its new networks that name none.

What the dataplane does with it (``cumulo.network.dataplane.qos``): a bandwidth limit towards a
server (``ingress``) is a token bucket (tc tbf) on the port's tap, one from it (``egress``) is a
policer in the port's iptables rules, and a DSCP mark is set on what the server sends.  Minimum
bandwidth rules are stored and shown only: nothing reserves or guarantees bandwidth (Neutron
reports them to placement, which this cloud does not).

Only server ports (``compute:*``) get the network's policy, as in Neutron; rules apply when a
policy, rule, port or network changes and at every agent resync.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import delete, select, update
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.db import Database, IntegrityError, is_duplicate
from cumulo.core.http.app import JSON, Router
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, Conflict, Forbidden, NotFound
from cumulo.network.models import Network, Port
from cumulo.network.policies import VERB
from cumulo.network.qos_models import QosBinding, QosPolicy, QosRule
from cumulo.network.requests import body, who
from cumulo.network.views import shape, shape_one

INT_MAX = 2**31 - 1
DSCP_MARKS = (0, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 44, 46, 48, 56)
# URL collection -> (rule type, the fields a rule of it has)
RULE_KINDS = {"bandwidth_limit_rules": ("bandwidth_limit", ("max_kbps", "max_burst_kbps", "direction")),
              "dscp_marking_rules": ("dscp_marking", ("dscp_mark",)),
              "minimum_bandwidth_rules": ("minimum_bandwidth", ("min_kbps", "direction"))}
DIRECTIONS = {"bandwidth_limit": ("egress", "ingress"), "minimum_bandwidth": ("egress",)}
REQUIRED = {"bandwidth_limit": "max_kbps", "dscp_marking": "dscp_mark", "minimum_bandwidth": "min_kbps"}
POLICY_FIELDS = {"name", "description", "shared", "is_default", "project_id", "tenant_id"}
DRIVER = "cumulo"


def stamp(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def rule_view(rule: QosRule) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rule.id, "qos_policy_id": rule.policy_id, "type": rule.kind}
    if rule.kind == "bandwidth_limit":
        out.update(max_kbps=rule.max_kbps, max_burst_kbps=rule.max_burst_kbps or 0, direction=rule.direction)
    elif rule.kind == "dscp_marking":
        out["dscp_mark"] = rule.dscp_mark
    else:
        out.update(min_kbps=rule.min_kbps, direction=rule.direction)
    return out


def policy_view(p: QosPolicy, rules: list[QosRule]) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "description": p.description, "shared": p.shared,
            "is_default": p.is_default, "rules": [rule_view(r) for r in rules], "tags": p.tags or [],
            "revision_number": p.revision_number, "created_at": stamp(p.created_at),
            "updated_at": stamp(p.updated_at), "project_id": p.project_id, "tenant_id": p.project_id}


def policy_target(p: QosPolicy) -> dict[str, Any]:
    return {"project_id": p.project_id, "tenant_id": p.project_id, "shared": bool(p.shared)}


def rule_target(p: QosPolicy) -> dict[str, Any]:
    """A rule: its policy's owner decides (Neutron's ``ext_parent_owner``)."""
    return {"project_id": p.project_id, "tenant_id": p.project_id, "ext_parent:tenant_id": p.project_id}


def check_bool(value: Any, name: str) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise BadRequest(f"Invalid input for {name}. Reason: '{value}' is not a valid boolean value.")
    return value


def check_text(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) > 255:
        raise BadRequest(f"Invalid input for {name}. Reason: a string of at most 255 characters is required.")
    return value


def check_int(value: Any, name: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= INT_MAX:
        raise BadRequest(f"Invalid input for {name}. Reason: '{value}' is not an integer from 0 to {INT_MAX}.")
    return value


def unrecognized(item: dict[str, Any], known: set[str] | tuple[str, ...]) -> None:
    extra = sorted(set(item) - set(known))
    if extra:
        raise BadRequest(f"Unrecognized attribute(s) '{', '.join(extra)}'")


# -- what the rest of the Network API asks --------------------------------------------------------
async def visible_policy(db: Database, policy_id: Any, project: str, admin: bool) -> QosPolicy:
    """The policy, when the caller may see it (its own, a shared one, or any for an admin)."""
    row = None
    if isinstance(policy_id, str):
        async with db.session() as s:
            row = await s.get(QosPolicy, policy_id)
    if row is None or not (admin or row.shared or row.project_id == project):
        raise NotFound(f"QoS policy {policy_id} could not be found.", kind="QosPolicyNotFound")
    return row


async def wanted_policy(db: Database, item: dict[str, Any], project: str, admin: bool) -> str | None:
    """The ``qos_policy_id`` a network or port body asks for (None: none), checked."""
    value = item.get("qos_policy_id")
    if value is None:
        return None
    return (await visible_policy(db, value, project, admin)).id


async def default_policy(db: Database, project: str) -> str | None:
    async with db.session() as s:
        return (await s.execute(select(QosPolicy.id).where(QosPolicy.project_id == project,
                                                           QosPolicy.is_default.is_(True)))).scalar()


async def bind_policy(db: Database, object_type: str, object_id: str, policy_id: str | None) -> None:
    """``object_id`` (a network or a port) gets ``policy_id`` (None: no policy any more)."""
    async with db.session() as s:
        await s.execute(delete(QosBinding).where(QosBinding.object_id == object_id))
        if policy_id is not None:
            s.add(QosBinding(object_id=object_id, object_type=object_type, policy_id=policy_id))


async def unbind_policies(db: Database, object_ids: list[str]) -> None:
    if object_ids:
        async with db.session() as s:
            await s.execute(delete(QosBinding).where(QosBinding.object_id.in_(object_ids)))


async def with_policies(db: Database, views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Network or port views with their ``qos_policy_id`` (None when unbound)."""
    ids = [v["id"] for v in views]
    stmt = select(QosBinding.object_id, QosBinding.policy_id)
    async with db.session() as s:  # a long listing reads every binding (far fewer than ports) at once
        found = dict((await s.execute(stmt if len(ids) > 500 else stmt.where(QosBinding.object_id.in_(ids))))
                     .tuples().all())
    for v in views:
        v["qos_policy_id"] = found.get(v["id"])
    return views


async def port_rules(db: Database) -> tuple[dict[str, str], dict[str, list[QosRule]]]:
    """Every binding (object id -> policy id) and every policy's rules: what ``effective`` needs."""
    async with db.session() as s:
        bindings = dict((await s.execute(select(QosBinding.object_id, QosBinding.policy_id))).tuples().all())
        rules = list((await s.execute(select(QosRule))).scalars())
    by_policy: dict[str, list[QosRule]] = defaultdict(list)
    for r in rules:
        by_policy[r.policy_id].append(r)
    return bindings, by_policy


def effective(port: dict[str, Any], bindings: dict[str, str], rules: dict[str, list[QosRule]]) -> dict[str, Any]:
    """What the dataplane enforces on a port of the desired state: its own policy's rules, else
    its network's (server ports only); ``{}`` when nothing applies."""
    policy = bindings.get(port["id"])
    if policy is None and port.get("device_owner", "").startswith("compute:"):
        policy = bindings.get(port["network_id"])
    out: dict[str, Any] = {}
    for r in rules.get(policy or "", []):
        if r.kind == "bandwidth_limit" and r.max_kbps:
            out.setdefault("bandwidth_limit", {})[r.direction] = {"max_kbps": r.max_kbps,
                                                                  "max_burst_kbps": r.max_burst_kbps or 0}
        elif r.kind == "dscp_marking":
            out["dscp_mark"] = r.dscp_mark
    return out


# -- the API -----------------------------------------------------------------------------------
def router(db: Database) -> Router:
    r = Router()

    async def rules_of(policy_ids: list[str]) -> dict[str, list[QosRule]]:
        out: dict[str, list[QosRule]] = {i: [] for i in policy_ids}
        async with db.session() as s:
            for rule in (await s.execute(select(QosRule).where(QosRule.policy_id.in_(policy_ids)).order_by(
                    QosRule.kind, QosRule.direction, QosRule.id))).scalars():
                out[rule.policy_id].append(rule)
        return out

    async def check_default(project: str, but: str | None) -> None:
        async with db.session() as s:
            other = (await s.execute(select(QosPolicy.id).where(
                QosPolicy.project_id == project, QosPolicy.is_default.is_(True),
                QosPolicy.id != (but or "")))).scalar()
        if other:
            raise Conflict(f"A default QoS policy exists for project {project}.", kind="QoSPolicyDefaultAlreadyExists")

    def policy_values(item: dict[str, Any]) -> dict[str, Any]:
        unrecognized(item, POLICY_FIELDS)
        values: dict[str, Any] = {}
        for key in ("name", "description"):
            if key in item:
                values[key] = check_text(item[key] if item[key] is not None else "", key)
        for key in ("shared", "is_default"):
            if key in item:
                values[key] = check_bool(item[key], key)
        return values

    @r.route("/v2.0/qos/policies", ["GET", "POST"])
    async def qos_policies(request: Request) -> Response:
        project, admin = who(request)
        if request.method == "POST":
            item = await body(request, "policy")
            owner = str(item.get("project_id") or item.get("tenant_id") or project)
            if owner != project and not admin:
                raise Forbidden("Only an admin may create QoS policies for another project.")
            authorize(request, "create_policy", {"project_id": owner, "tenant_id": owner})
            values = policy_values(item)
            if values.get("is_default"):
                await check_default(owner, None)
            row = QosPolicy(id=str(uuid.uuid4()), project_id=owner, **values)
            async with db.session() as s:
                s.add(row)
            return JSON({"policy": policy_view(row, [])}, status_code=201)
        authorize(request, "get_policy")
        stmt = select(QosPolicy).order_by(QosPolicy.created_at, QosPolicy.id)
        if not admin:
            stmt = stmt.where((QosPolicy.project_id == project) | QosPolicy.shared.is_(True))
        async with db.session() as s:
            rows = list((await s.execute(stmt)).scalars())
        rules = await rules_of([p.id for p in rows])
        return JSON(shape(request, [policy_view(p, rules[p.id]) for p in rows], "policies"))

    @r.route("/v2.0/qos/policies/{policy_id}", ["GET", "PUT", "DELETE"])
    async def qos_policy(request: Request) -> Response:
        project, admin = who(request)
        row = await visible_policy(db, request.path_params["policy_id"], project, admin)
        authorize(request, f"{VERB[request.method]}_policy", policy_target(row))
        if request.method == "DELETE":
            async with db.session() as s:
                used = (await s.execute(select(QosBinding).where(QosBinding.policy_id == row.id).where(
                    QosBinding.object_id.in_(select(Port.id)) | QosBinding.object_id.in_(select(Network.id)))
                    .limit(1))).scalar()
                if used is not None:
                    raise Conflict(f"QoS Policy {row.id} is used by {used.object_type} {used.object_id}.",
                                   kind="QosPolicyInUse")
                await s.execute(delete(QosBinding).where(QosBinding.policy_id == row.id))  # of deleted objects
                await s.execute(delete(QosRule).where(QosRule.policy_id == row.id))
                await s.execute(delete(QosPolicy).where(QosPolicy.id == row.id))
            return Response(status_code=204)
        if request.method == "PUT":
            item = await body(request, "policy")
            for fixed in ("project_id", "tenant_id"):
                if fixed in item:
                    raise BadRequest(f"Cannot update read-only attribute {fixed}")
            values = policy_values(item)
            if values.get("is_default"):
                await check_default(row.project_id, row.id)
            async with db.session() as s:
                row = await s.get(QosPolicy, row.id)
                for k, v in values.items():
                    setattr(row, k, v)
                row.revision_number += 1
        return JSON(shape_one(request, policy_view(row, (await rules_of([row.id]))[row.id]), "policy"))

    for collection, (kind, fields) in RULE_KINDS.items():
        add_rule_routes(r, db, collection, kind, fields)

    @r.get("/v2.0/qos/rule-types")
    async def qos_rule_types(request: Request) -> Response:
        authorize(request, "get_rule_type", {})
        return JSON(shape(request, [{"type": kind} for kind, _ in RULE_KINDS.values()], "rule_types"))

    @r.get("/v2.0/qos/rule-types/{rule_type}")
    async def qos_rule_type(request: Request) -> Response:
        authorize(request, "get_rule_type", {})
        wanted = request.path_params["rule_type"]
        for kind, fields in RULE_KINDS.values():
            if kind == wanted:
                params = [{"parameter_name": f, "parameter_type": "choices", "parameter_values": list(DIRECTIONS[kind])}
                          if f == "direction" else
                          {"parameter_name": f, "parameter_type": "choices", "parameter_values": list(DSCP_MARKS)}
                          if f == "dscp_mark" else
                          {"parameter_name": f, "parameter_type": "range",
                           "parameter_values": {"start": 0, "end": INT_MAX}} for f in fields]
                return JSON({"rule_type": {"type": kind, "drivers": [{"name": DRIVER,
                                                                      "supported_parameters": params}]}})
        raise NotFound(f"QoS rule type {wanted} could not be found.", kind="QosRuleTypeNotFound")

    return r


def add_rule_routes(r: Router, db: Database, collection: str, kind: str, fields: tuple[str, ...]) -> None:
    """The routes of one rule type under a policy: list, create, show, update, delete."""
    one = collection[:-1]  # bandwidth_limit_rule
    rule_name = f"policy_{one}"  # get_policy_bandwidth_limit_rule

    def values_of(item: dict[str, Any], create: bool) -> dict[str, Any]:
        unrecognized(item, fields)
        values: dict[str, Any] = {}
        required = REQUIRED[kind]
        if create and required not in item:
            raise BadRequest(f"Failed to parse request. Required attribute '{required}' not specified")
        for key in ("max_kbps", "max_burst_kbps", "min_kbps"):
            if key in item:
                values[key] = check_int(item[key], key)
        if "dscp_mark" in item:
            mark = item["dscp_mark"]
            if isinstance(mark, str) and mark.isdigit():
                mark = int(mark)
            if isinstance(mark, bool) or mark not in DSCP_MARKS:
                raise BadRequest(f"Invalid input for dscp_mark. Reason: {item['dscp_mark']} is not in valid_values "
                                 f"{list(DSCP_MARKS)}.")
            values["dscp_mark"] = mark
        if "direction" in item:
            if item["direction"] not in DIRECTIONS[kind]:
                raise BadRequest(f"Invalid input for direction. Reason: {item['direction']} is not in valid_values "
                                 f"{list(DIRECTIONS[kind])}.")
            values["direction"] = item["direction"]
        elif create:
            values["direction"] = "egress" if kind in DIRECTIONS else ""
        if create and kind == "bandwidth_limit":
            values.setdefault("max_burst_kbps", 0)
        return values

    async def the_rule(policy: QosPolicy, rule_id: str) -> QosRule:
        async with db.session() as s:
            rule = await s.get(QosRule, rule_id)
        if rule is None or rule.policy_id != policy.id or rule.kind != kind:
            raise NotFound(f"QoS rule {rule_id} for policy {policy.id} could not be found.", kind="QosRuleNotFound")
        return rule

    async def touched(policy: QosPolicy) -> None:
        async with db.session() as s:
            await s.execute(update(QosPolicy).where(QosPolicy.id == policy.id).values(
                revision_number=QosPolicy.revision_number + 1))

    async def conflict(policy: QosPolicy, direction: str, but: str | None) -> None:
        async with db.session() as s:
            other = (await s.execute(select(QosRule.id).where(
                QosRule.policy_id == policy.id, QosRule.kind == kind, QosRule.direction == direction,
                QosRule.id != (but or "")))).scalar()
        if other:
            raise Conflict(f"Rule {kind} conflicts with rule {other} which already exists in QoS Policy {policy.id}.",
                           kind="QoSRulesConflict")

    async def rules(request: Request) -> Response:
        project, admin = who(request)
        policy = await visible_policy(db, request.path_params["policy_id"], project, admin)
        authorize(request, f"{VERB[request.method]}_{rule_name}", rule_target(policy))
        if request.method == "POST":
            values = values_of(await body(request, one), True)
            await conflict(policy, values["direction"], None)
            rule = QosRule(id=str(uuid.uuid4()), policy_id=policy.id, kind=kind, **values)
            try:
                async with db.session() as s:
                    s.add(rule)
            except IntegrityError as exc:  # a racing create of the same type and direction won
                if not is_duplicate(exc):
                    raise
                raise Conflict(f"Rule {kind} already exists in QoS Policy {policy.id}.",
                               kind="QoSRulesConflict") from None
            await touched(policy)
            return JSON({one: rule_view(rule)}, status_code=201)
        async with db.session() as s:
            rows = list((await s.execute(select(QosRule).where(QosRule.policy_id == policy.id, QosRule.kind == kind)
                                         .order_by(QosRule.direction, QosRule.id))).scalars())
        return JSON(shape(request, [rule_view(x) for x in rows], collection))

    async def rule(request: Request) -> Response:
        project, admin = who(request)
        policy = await visible_policy(db, request.path_params["policy_id"], project, admin)
        authorize(request, f"{VERB[request.method]}_{rule_name}", rule_target(policy))
        row = await the_rule(policy, request.path_params["rule_id"])
        if request.method == "DELETE":
            async with db.session() as s:
                await s.execute(delete(QosRule).where(QosRule.id == row.id))
            await touched(policy)
            return Response(status_code=204)
        if request.method == "PUT":
            values = values_of(await body(request, one), False)
            if "direction" in values and values["direction"] != row.direction:
                await conflict(policy, values["direction"], row.id)
            try:
                async with db.session() as s:
                    row = await s.get(QosRule, row.id)
                    for k, v in values.items():
                        setattr(row, k, v)
            except IntegrityError as exc:
                if not is_duplicate(exc):
                    raise
                raise Conflict(f"Rule {kind} already exists in QoS Policy {policy.id}.",
                               kind="QoSRulesConflict") from None
            await touched(policy)
        return JSON(shape_one(request, rule_view(row), one))

    rules.__name__ = f"qos_{collection}"
    rule.__name__ = f"qos_{one}"
    r.route(f"/v2.0/qos/policies/{{policy_id}}/{collection}", ["GET", "POST"])(rules)
    r.route(f"/v2.0/qos/policies/{{policy_id}}/{collection}/{{rule_id}}", ["GET", "PUT", "DELETE"])(rule)

