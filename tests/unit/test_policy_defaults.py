"""The default rules of compute, network, image and placement: well formed, every rule the API code
asks for is registered (and every registered action rule is asked for), and the defaults decide as
OpenStack's do for the usual personas."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from cumulo.compute import policies as compute
from cumulo.compute.api import server_actions
from cumulo.compute.api.aggregates import ACTION_RULES
from cumulo.core.http.authz import Rule, ServicePolicy, defaults
from cumulo.core.policy import Enforcer, PolicyNotRegistered
from cumulo.image import policies as image
from cumulo.network import policies as network
from cumulo.object import policies as object_store
from cumulo.placement import policies as placement
from cumulo.placement.api import METHOD_RULES, ONE_RULES

ROOT = Path(__file__).resolve().parents[2] / "cumulo"


def api_modules(service: str) -> list[Path]:
    """The service's modules that ask for rules (every one but the rules' own)."""
    return [p for p in sorted((ROOT / service).glob("*.py")) if p.name != "policies.py"]


SERVICES: dict[str, tuple[list[Rule], list[Path]]] = {
    "compute": (compute.RULES, sorted((ROOT / "compute" / "api").glob("*.py"))),
    "network": (network.RULES, api_modules("network")),
    "image": (image.RULES, api_modules("image")),
    "placement": (placement.RULES, [ROOT / "placement" / "api.py"]),
    "object": (object_store.RULES, sorted((ROOT / "object" / "api").glob("*.py"))),
}
SERVICES["network"][1].extend(ROOT / "network" / f"{m}.py" for m in ("qos", "trunks"))  # QoS and trunks
SERVICES["network"][1].extend(ROOT / "network" / f"{m}.py" for m in ("rbac", "address_scopes", "inventory", "agents"))
REF = re.compile(r"rule:([\w:.\-]+)")
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def generated(service: str) -> set[str]:
    """The rule names the API code builds from parts (f-strings), spelled out."""
    if service == "compute":
        return ({f"os_compute_api:server-metadata:{a}" for a in
                 ("index", "create", "update_all", "show", "update", "delete")} |
                {f"os_compute_api:os-server-tags:{a}" for a in
                 ("index", "update_all", "delete_all", "show", "update", "delete")} |
                {f"os_compute_api:servers:{a}:get_all_tenants" for a in ("index", "detail")} |
                set(server_actions.RULES.values()) | set(ACTION_RULES.values()))
    if service == "network":
        names = {f"{verb}_{kind}" for verb in ("get", "update", "delete") for kind in
                 ("network", "subnet", "port", "router", "floatingip", "security_group", "subnetpool", "quota")}
        names |= {"get_security_group_rule", "delete_security_group_rule"}
        names |= {f"{verb}_{kind}:tags" for verb in ("get", "update", "delete") for kind in network.SINGULAR.values()}
        names |= {f"{verb}_network:{key}" for verb in ("create", "update")
                  for key in ("shared", "router:external", "provider:network_type")}
        names |= {f"create_subnetpool:{key}" for key in ("shared", "is_default")}
        names |= {f"{verb}_{kind}" for verb in ("get", "update", "delete") for kind in ("policy", "trunk")}
        names |= {f"{verb}_policy_{kind}_rule" for verb in ("get", "create", "update", "delete")
                  for kind in ("bandwidth_limit", "dscp_marking", "minimum_bandwidth")}
        return names - {"update_security_group_rule"}
    if service == "placement":
        return ({f"placement:resource_providers:{part}:{action}" for part in ("inventories", "traits")
                 for action in set(METHOD_RULES.values()) | set(ONE_RULES.values())
                 if not (part == "traits" and action in ("create", "show"))} |
                {f"placement:resource_providers:aggregates:{a}" for a in ("list", "update")} |
                {f"placement:allocations:{a}" for a in ("list", "update", "delete")} |
                {f"placement:{kind}:{a}" for kind in ("resource_classes", "traits") for a in ONE_RULES.values()})
    return set()


NAMED = {  # string literals in a service's API code that can only be rule names
    "compute": re.compile(r"^(os_compute_api|compute):[\w:.\-]+$"),
    "network": re.compile(r"^$"),
    "image": re.compile(r"^((get|add|modify|delete|remove|list)_metadef_\w+|(get|modify|delete)_members?)$"),
    "placement": re.compile(r"^placement:[\w:]+$"),
    "object": re.compile(r"^object_store:[\w:]+$"),
}
CALLED = re.compile(r'(?:authorize|allowed|policy_allows)\(\s*request,\s*"([^"{}]+)"')


def named_in_code(service: str) -> set[str]:
    """Rule names the code spells out: first arguments of authorize/allowed, and the literals that
    can only be rule names (those in the method -> rule maps)."""
    out: set[str] = set()
    for path in SERVICES[service][1]:
        text = path.read_text()
        out |= set(CALLED.findall(text))
        out |= {s for s in re.findall(r'"([^"{}\s%]+)"', text) if NAMED[service].match(s)}
    return out


def asked_for(service: str) -> set[str]:
    """Every rule name the service's API modules name in their code: string literals that are
    registered rule names, plus the generated ones."""
    names = {r.name for r in SERVICES[service][0]}
    literals: set[str] = set()
    for path in SERVICES[service][1]:
        literals |= set(re.findall(r'"([^"{}\s]+)"', path.read_text()))
    return (literals & names) | generated(service)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_rules_are_well_formed(service: str) -> None:
    rules = SERVICES[service][0]
    checks, descriptions = defaults(rules)  # raises on a name defined twice
    Enforcer(checks, None, descriptions)  # every check string compiles
    assert all(descriptions[name].strip() for name in checks), "every rule says what it guards"
    for name, check in checks.items():
        for ref in REF.findall(check):
            assert ref in checks, f"{service} rule {name} refers to {ref}, which {service} does not define"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_rule_the_code_asks_for_is_registered_and_every_action_rule_is_asked_for(service: str) -> None:
    names = {r.name for r in SERVICES[service][0]}
    wanted = generated(service) | named_in_code(service)
    assert len(named_in_code(service)) > 10
    assert not wanted - names, f"{service} asks for unregistered rules: {sorted(wanted - names)}"
    # an action rule documents its route (its description starts with the method); the others are the
    # building blocks operators and the action rules refer to
    actions = {r.name for r in SERVICES[service][0] if r.description.split(" ")[0] in METHODS}
    unused = actions - asked_for(service)
    assert not unused, f"{service} registers rules no route asks for: {sorted(unused)}"
    assert len(actions) > len(names) // 2


def test_an_unknown_rule_is_a_programming_error() -> None:
    policy = ServicePolicy.build("compute", compute.RULES, None, compute.MESSAGE)
    with pytest.raises(PolicyNotRegistered):
        policy.enforcer.enforce("os_compute_api:servers:no_such_action", {}, {"roles": ["admin"]})


IMPLIED = {"admin": ["admin", "manager", "member", "reader"], "manager": ["manager", "member", "reader"],
           "member": ["member", "reader"], "reader": ["reader"], "service": ["service"]}


def creds(role: str | None, project: str | None = "p1", user: str = "u1") -> dict[str, Any]:
    return {"roles": IMPLIED.get(role or "", []), "project_id": project, "user_id": user}


def decide(rules: list[Rule], rule: str, target: dict[str, Any], who: dict[str, Any]) -> bool:
    checks, _ = defaults(rules)
    return Enforcer(checks).enforce(rule, target, who)


P1 = {"project_id": "p1", "user_id": "u9"}


@pytest.mark.parametrize(("rule", "allowed"), [
    ("os_compute_api:servers:show", {"admin", "manager", "member", "reader"}),
    ("os_compute_api:servers:create", {"admin", "manager", "member"}),
    ("os_compute_api:servers:delete", {"admin", "manager", "member"}),
    ("os_compute_api:os-migrate-server:migrate", {"admin", "manager"}),
    ("os_compute_api:os-migrations:index", {"admin", "manager"}),
    ("os_compute_api:os-migrate-server:migrate:host", {"admin"}),
    ("os_compute_api:os-flavor-manage:create", {"admin"}),
    ("os_compute_api:os-hypervisors:list", {"admin"}),
])
def test_compute_defaults(rule: str, allowed: set[str]) -> None:
    for role in ("admin", "manager", "member", "reader", "service", None):
        assert decide(compute.RULES, rule, P1, creds(role)) == (role in allowed), (rule, role)
    # another project's member never passes a project rule; an admin of any project does
    assert decide(compute.RULES, rule, P1, creds("member", "p2")) is False
    assert decide(compute.RULES, rule, P1, creds("admin", "p2")) is True


def test_compute_key_pairs_belong_to_their_user() -> None:
    mine = {"user_id": "u1", "project_id": None}
    assert decide(compute.RULES, "os_compute_api:os-keypairs:create", mine, creds(None, None))
    assert not decide(compute.RULES, "os_compute_api:os-keypairs:show", {"user_id": "u2"}, creds("member"))
    assert decide(compute.RULES, "os_compute_api:os-keypairs:show", {"user_id": "u2"}, creds("admin"))


def test_network_defaults_follow_the_network_owner() -> None:
    class Net:
        def __init__(self, project: str, shared: bool = False, external: bool = False) -> None:
            self.project_id, self.shared, self.external = project, shared, external

    own, shared, external = Net("p1"), Net("p2", shared=True), Net("p2", external=True)
    member, reader, other = creds("member"), creds("reader"), creds("member", "p2")
    decide_ = lambda rule, target, who: decide(network.RULES, rule, target, who)  # noqa: E731
    assert decide_("create_network", {"project_id": "p1"}, member)
    assert not decide_("create_network", {"project_id": "p1"}, reader)
    assert not decide_("create_network:shared", {"project_id": "p1"}, member)
    assert decide_("get_network", network.network_target(shared), reader)  # shared: every project reads it
    assert decide_("get_network", network.network_target(external), reader)
    assert not decide_("get_network", network.network_target(own), other)
    assert not decide_("update_network", network.network_target(shared), creds("member", "p3"))
    # a subnet on a network is the network owner's to make
    assert decide_("create_subnet", network.subnet_target(own, "p1"), member)
    assert not decide_("create_subnet", network.subnet_target(shared, "p1"), member)
    # ports: on a shared network anyone may make one (Neutron's default); the owner of the network may
    # delete a port another project made on it
    assert decide_("create_port", network.port_target(shared, "p1"), reader)
    assert not decide_("create_port", network.port_target(own, "p1"), reader)
    assert decide_("delete_port", network.port_target(Net("p2"), "p1"), creds("member", "p2"))
    assert not decide_("create_port:binding:host_id", network.port_target(own, "p1"), member)
    assert decide_("create_port:binding:host_id", network.port_target(own, "p1"), creds("service"))
    # security group rules follow their group's owner
    assert decide_("create_security_group_rule", network.rule_target("p1"), member)
    assert not decide_("create_security_group_rule", network.rule_target("p2"), member)
    assert decide_("get_quota", {"project_id": "p1"}, reader)
    assert not decide_("update_quota", {"project_id": "p1"}, creds("manager"))


def test_image_defaults_follow_owner_visibility_and_membership() -> None:
    def target(owner: str, visibility: str, member: str | None = None) -> dict[str, Any]:
        return {"project_id": owner, "owner": owner, "visibility": visibility, "member_id": member}

    decide_ = lambda rule, t, who: decide(image.RULES, rule, t, who)  # noqa: E731
    reader, member = creds("reader"), creds("member")
    assert decide_("get_image", target("p1", "private"), reader)
    assert not decide_("get_image", target("p2", "private"), reader)
    assert decide_("get_image", target("p2", "public"), reader)
    assert decide_("get_image", target("p2", "shared", "p1"), reader)
    assert not decide_("download_image", target("p1", "private"), reader)  # downloading is a member's
    assert decide_("download_image", target("p1", "private"), member)
    assert decide_("add_image", {"project_id": "p1", "owner": "p1"}, member)
    assert not decide_("add_image", {"project_id": "p2", "owner": "p2"}, member)
    assert not decide_("add_image", {"project_id": "p1", "owner": "p1"}, reader)
    assert decide_("modify_member", target("p2", "shared", "p1"), member)  # the member answers its invitation
    assert not decide_("modify_member", target("p1", "shared", "p2"), member)
    assert not decide_("add_metadef_namespace", {"project_id": "p1"}, creds("manager"))
    assert decide_("get_metadef_namespace", {"project_id": "p2", "visibility": "public"}, reader)
    assert not decide_("tasks_api_access", {"project_id": "p1"}, member)


def test_placement_is_the_admins_and_the_services() -> None:
    for role, allowed in (("admin", True), ("service", True), ("manager", False), ("member", False)):
        assert decide(placement.RULES, "placement:resource_providers:create", {}, creds(role)) is allowed
    assert decide(placement.RULES, "placement:usages", {"project_id": "p1"}, creds("reader"))
    assert not decide(placement.RULES, "placement:usages", {"project_id": "p2"}, creds("reader"))


def test_object_store_defaults_are_keystoneauths_operator_roles() -> None:
    decide_ = lambda rule, who, project="p1": decide(object_store.RULES, rule, {"project_id": project}, who)  # noqa: E731
    for role, reads, writes in (("admin", True, True), ("member", True, True), ("reader", True, False),
                                (None, False, False)):
        assert decide_("object_store:object:get", creds(role)) is reads
        assert decide_("object_store:container:put", creds(role)) is writes
    # operator roles are the account's project's only: an admin elsewhere is refused (the ACLs decide)
    assert not decide_("object_store:object:get", creds("admin"), "p2")
    reseller = {"roles": ["ResellerAdmin"], "project_id": "p9", "user_id": "u9"}
    assert decide_("object_store:account:post", reseller, "p2")
    assert decide_("object_store:info", creds(None))


def test_a_policy_file_overrides_one_rule_and_leaves_the_others(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('"os_compute_api:servers:create": "role:admin"\n"get_network": "!"\n')
    policy = ServicePolicy.build("compute", compute.RULES, path, compute.MESSAGE)
    assert not policy.enforcer.enforce("os_compute_api:servers:create", P1, creds("member"))
    assert policy.enforcer.enforce("os_compute_api:servers:delete", P1, creds("member"))
    shown = policy.enforcer.rules_as_yaml(only_defaults=True)
    assert "overridden" in shown and "get_network" not in shown  # another service's rule is not compute's
