"""Network's default policy rules: Neutron's rule names and its current defaults (secure RBAC as
Neutron ships them with enforce_scope off: a project's reader reads, its member writes, the owner of
a network decides about subnets and ports on it, an admin anywhere does everything, the service
role for service-to-service calls).

Neutron's ``field:networks:shared=True`` checks read the resource; here they are written as
``'True':%(shared)s`` against the target the API hands over (``network_target`` and friends below).
One deliberate difference: ``get_quota`` keeps Neutron's reader default of 2023-2024 (a project's
reader and member read their own quotas) instead of the manager-only default of 2025, so members keep
what they have.  Override any rule in the file named by ``[policy] file``; ``cumulo policy show``
prints the effective rules of every service.
"""

from __future__ import annotations

from typing import Any

from cumulo.core.http.authz import Rule

ADMIN = "rule:admin_only"
ADMIN_OR_MEMBER = "(rule:admin_only) or (role:member and project_id:%(project_id)s)"
ADMIN_OR_READER = "(rule:admin_only) or (role:reader and project_id:%(project_id)s)"
ADMIN_OR_SERVICE = "(rule:admin_only) or (rule:service_api)"
ADMIN_OR_MANAGER = "(rule:admin_only) or (role:manager and project_id:%(project_id)s)"
PARENT_READER = "(rule:admin_only) or (role:reader and rule:ext_parent_owner)"  # a QoS rule: its policy's owner
PARENT_MANAGER = "(rule:admin_only) or (role:manager and rule:ext_parent_owner)"

MESSAGE = "({rule}) is disallowed by policy"
VERB = {"GET": "get", "HEAD": "get", "PUT": "update", "DELETE": "delete", "POST": "create"}
# collection in a tags URL -> the resource name in its rules (update_security_group:tags)
SINGULAR = {"networks": "network", "subnets": "subnet", "ports": "port", "routers": "router",
            "floatingips": "floatingip", "security-groups": "security_group", "subnetpools": "subnetpool"}


def network_target(net: Any) -> dict[str, Any]:
    return {"project_id": net.project_id, "tenant_id": net.project_id, "shared": bool(net.shared),
            "router:external": bool(net.external)}


def subnet_target(net: Any, project_id: str) -> dict[str, Any]:
    """A subnet (or port) of ``net`` owned by ``project_id``: the rules ask about both owners."""
    return {"project_id": project_id, "tenant_id": project_id, "network:project_id": net.project_id,
            "network:tenant_id": net.project_id, "shared": bool(net.shared), "router:external": bool(net.external)}


port_target = subnet_target


def rule_target(group_project_id: str) -> dict[str, Any]:
    """A security group rule: its group's owner decides."""
    return {"project_id": group_project_id, "security_group:project_id": group_project_id}


def tag_target(row: Any, net: Any | None) -> dict[str, Any]:
    """The tagged resource; subnets and ports carry their network's owner and flags."""
    if net is not None:
        return subnet_target(net, row.project_id)
    if hasattr(row, "external"):
        return network_target(row)
    return {"project_id": row.project_id, "shared": bool(getattr(row, "shared", False))}


RULES: list[Rule] = [
    Rule("context_is_admin", "role:admin", "Who counts as an admin (any project)"),
    Rule("admin_only", "rule:context_is_admin", "Admins only"),
    Rule("service_api", "role:service", "A service user (service-to-service calls)"),
    Rule("context_is_advsvc", "role:advsvc", "An advanced-services user"),
    Rule("owner", "project_id:%(project_id)s", "The project that owns the target"),
    Rule("network_owner", "project_id:%(network:project_id)s", "The project that owns the target's network"),
    Rule("sg_owner", "project_id:%(security_group:project_id)s", "The project that owns the rule's security group"),
    Rule("shared", "'True':%(shared)s", "The target network is shared"),
    Rule("external", "'True':%(router:external)s", "The target network is external"),
    Rule("external_network", "'True':%(router:external)s", "The target subnet's network is external"),
    Rule("shared_security_group", "'True':%(shared)s", "The target security group is shared"),
    Rule("shared_subnetpools", "'True':%(shared)s", "The target subnet pool is shared"),
    Rule("shared_address_scopes", "'True':%(shared)s", "The target address scope is shared"),
    Rule("restrict_wildcard", "(not '*':%(target_tenant)s) or rule:admin_only",
         "The target of an RBAC policy is not every project ('*'), or the caller is an admin"),

    Rule("get_extension", "", "GET /v2.0/extensions[/{alias}] (Neutron checks no rule: any authenticated user)"),
    Rule("get_api_resources", "", "GET /v2.0/ (Neutron checks no rule: any authenticated user)"),
    Rule("get_quota", ADMIN_OR_READER, "GET /v2.0/quotas[/{project_id}[/default|/details]]"),
    Rule("create_network", ADMIN_OR_MEMBER, "POST /v2.0/networks"),
    Rule("get_network",
         "(rule:admin_only) or (role:reader and project_id:%(project_id)s) or rule:service_api or "
         "rule:shared or rule:external or rule:context_is_advsvc",
         "GET /v2.0/networks/{id} (and listing)"),
    Rule("update_network", ADMIN_OR_MEMBER, "PUT /v2.0/networks/{id}"),
    Rule("delete_network", ADMIN_OR_MEMBER, "DELETE /v2.0/networks/{id}"),
    Rule("create_subnet", "(rule:admin_only) or (role:member and rule:network_owner)", "POST /v2.0/subnets"),
    Rule("get_subnet",
         "role:reader and project_id:%(project_id)s or rule:shared or rule:external_network or "
         "(rule:admin_only) or (role:reader and rule:network_owner) or rule:service_api",
         "GET /v2.0/subnets/{id} (and listing)"),
    Rule("update_subnet",
         "role:member and project_id:%(project_id)s or (rule:admin_only) or (role:member and rule:network_owner)",
         "PUT /v2.0/subnets/{id}"),
    Rule("delete_subnet",
         "role:member and project_id:%(project_id)s or (rule:admin_only) or (role:member and rule:network_owner)",
         "DELETE /v2.0/subnets/{id}"),
    Rule("create_port",
         "(rule:admin_only) or (rule:service_api) or role:member and rule:network_owner or rule:shared",
         "POST /v2.0/ports"),
    Rule("get_port",
         "(rule:admin_only) or (rule:service_api) or role:reader and rule:network_owner or "
         "role:reader and project_id:%(project_id)s",
         "GET /v2.0/ports/{id} (and listing)"),
    Rule("update_port",
         "(rule:admin_only) or (rule:service_api) or role:member and project_id:%(project_id)s",
         "PUT /v2.0/ports/{id}"),
    Rule("delete_port",
         "(rule:admin_only) or (rule:service_api) or role:member and rule:network_owner or "
         "role:member and project_id:%(project_id)s",
         "DELETE /v2.0/ports/{id}"),
    Rule("create_router", ADMIN_OR_MEMBER, "POST /v2.0/routers"),
    Rule("get_router", ADMIN_OR_READER, "GET /v2.0/routers/{id} (and listing)"),
    Rule("update_router", ADMIN_OR_MEMBER, "PUT /v2.0/routers/{id}"),
    Rule("delete_router", ADMIN_OR_MEMBER, "DELETE /v2.0/routers/{id}"),
    *[Rule(f"{verb}_router:{attribute}", ADMIN, f"{method} /v2.0/routers{path}: {what} {attribute}")
      for attribute in ("distributed", "ha")
      for verb, method, path, what in (("create", "POST", "", "setting"), ("get", "GET", "[/{id}]", "seeing"),
                                       ("update", "PUT", "/{id}", "setting"))],
    Rule("create_floatingip", ADMIN_OR_MEMBER, "POST /v2.0/floatingips"),
    Rule("get_floatingip", ADMIN_OR_READER, "GET /v2.0/floatingips/{id} (and listing)"),
    Rule("update_floatingip", ADMIN_OR_MEMBER, "PUT /v2.0/floatingips/{id}"),
    Rule("delete_floatingip", ADMIN_OR_MEMBER, "DELETE /v2.0/floatingips/{id}"),
    Rule("create_security_group", ADMIN_OR_MEMBER, "POST /v2.0/security-groups"),
    Rule("get_security_group",
         "(rule:admin_only) or (role:reader and project_id:%(project_id)s) or rule:shared_security_group",
         "GET /v2.0/security-groups/{id} (and listing)"),
    Rule("update_security_group", ADMIN_OR_MEMBER, "PUT /v2.0/security-groups/{id}"),
    Rule("delete_security_group", ADMIN_OR_MEMBER, "DELETE /v2.0/security-groups/{id}"),
    Rule("create_security_group_rule",
         "(rule:admin_only) or (role:member and rule:sg_owner)",
         "POST /v2.0/security-group-rules"),
    Rule("get_security_group_rule",
         "(rule:admin_only) or (role:reader and rule:sg_owner)",
         "GET /v2.0/security-group-rules/{id} (and listing)"),
    Rule("delete_security_group_rule",
         "(rule:admin_only) or (role:member and rule:sg_owner)",
         "DELETE /v2.0/security-group-rules/{id}"),
    Rule("create_subnetpool", ADMIN_OR_MEMBER, "POST /v2.0/subnetpools"),
    Rule("get_subnetpool",
         "(rule:admin_only) or (role:reader and project_id:%(project_id)s) or rule:shared_subnetpools",
         "GET /v2.0/subnetpools/{id} (and listing)"),
    Rule("update_subnetpool", ADMIN_OR_MEMBER, "PUT /v2.0/subnetpools/{id}"),
    Rule("delete_subnetpool", ADMIN_OR_MEMBER, "DELETE /v2.0/subnetpools/{id}"),
    Rule("shared_qos_policy", "'True':%(shared)s", "The target QoS policy is shared"),
    Rule("ext_parent_owner", "project_id:%(ext_parent:tenant_id)s", "The project that owns the target's parent"),
    Rule("get_policy", "(rule:admin_only) or (role:reader and project_id:%(project_id)s) or rule:shared_qos_policy",
         "GET /v2.0/qos/policies[/{id}]"),
    Rule("create_policy", ADMIN_OR_MANAGER, "POST /v2.0/qos/policies"),
    Rule("update_policy", ADMIN_OR_MANAGER, "PUT /v2.0/qos/policies/{id}"),
    Rule("delete_policy", ADMIN_OR_MANAGER, "DELETE /v2.0/qos/policies/{id}"),
    Rule("get_rule_type", "role:reader", "GET /v2.0/qos/rule-types[/{rule_type}] (no project owns a rule type)"),
    *[Rule(f"{verb}_policy_{kind}_rule", PARENT_READER if verb == "get" else PARENT_MANAGER,
           f"{method} /v2.0/qos/policies/{{policy_id}}/{kind}_rules{'' if verb == 'create' else '[/{rule_id}]'}")
      for kind in ("bandwidth_limit", "dscp_marking", "minimum_bandwidth")
      for verb, method in (("get", "GET"), ("create", "POST"), ("update", "PUT"), ("delete", "DELETE"))],
    Rule("create_trunk", ADMIN_OR_MEMBER, "POST /v2.0/trunks"),
    Rule("get_trunk", ADMIN_OR_READER, "GET /v2.0/trunks[/{id}]"),
    Rule("update_trunk", ADMIN_OR_MEMBER, "PUT /v2.0/trunks/{id}"),
    Rule("delete_trunk", ADMIN_OR_MEMBER, "DELETE /v2.0/trunks/{id}"),
    Rule("get_subports", ADMIN_OR_READER, "GET /v2.0/trunks/{id}/get_subports"),
    Rule("add_subports", ADMIN_OR_MEMBER, "PUT /v2.0/trunks/{id}/add_subports"),
    Rule("remove_subports", ADMIN_OR_MEMBER, "PUT /v2.0/trunks/{id}/remove_subports"),
    Rule("create_network:shared", ADMIN, "POST /v2.0/networks: setting shared"),
    Rule("create_network:router:external", ADMIN, "POST /v2.0/networks: setting router:external"),
    Rule("create_network:provider:network_type", ADMIN, "POST /v2.0/networks: setting provider:network_type"),
    Rule("update_network:shared", ADMIN, "PUT /v2.0/networks/{id}: setting shared"),
    Rule("update_network:router:external", ADMIN, "PUT /v2.0/networks/{id}: setting router:external"),
    Rule("update_network:provider:network_type", ADMIN, "PUT /v2.0/networks/{id}: setting provider:network_type"),
    Rule("create_port:binding:host_id", ADMIN_OR_SERVICE, "POST /v2.0/ports: setting binding:host_id"),
    Rule("update_port:binding:host_id", ADMIN_OR_SERVICE, "PUT /v2.0/ports/{id}: setting binding:host_id"),
    Rule("add_router_interface", ADMIN_OR_MEMBER, "PUT /v2.0/routers/{id}/add_router_interface"),
    Rule("remove_router_interface", ADMIN_OR_MEMBER, "PUT /v2.0/routers/{id}/remove_router_interface"),
    Rule("add_extraroutes", ADMIN_OR_MEMBER, "PUT /v2.0/routers/{id}/add_extraroutes"),
    Rule("remove_extraroutes", ADMIN_OR_MEMBER, "PUT /v2.0/routers/{id}/remove_extraroutes"),
    Rule("create_subnetpool:shared", ADMIN, "POST /v2.0/subnetpools: setting shared"),
    Rule("create_subnetpool:is_default", ADMIN, "POST /v2.0/subnetpools: setting is_default"),
    Rule("update_subnetpool:is_default", ADMIN, "PUT /v2.0/subnetpools/{id}: setting is_default"),
    Rule("create_rbac_policy", ADMIN_OR_MEMBER, "POST /v2.0/rbac-policies"),
    Rule("create_rbac_policy:target_tenant", "(rule:admin_only) or (not '*':%(target_tenant)s)",
         "POST /v2.0/rbac-policies: a target_tenant of '*' (every project) is the admin's"),
    Rule("get_rbac_policy", ADMIN_OR_READER, "GET /v2.0/rbac-policies[/{id}]"),
    Rule("update_rbac_policy", ADMIN_OR_MEMBER, "PUT /v2.0/rbac-policies/{id}"),
    Rule("update_rbac_policy:target_tenant", "(rule:admin_only) or (not '*':%(target_tenant)s)",
         "PUT /v2.0/rbac-policies/{id}: a target_tenant of '*' (every project) is the admin's"),
    Rule("delete_rbac_policy", ADMIN_OR_MEMBER, "DELETE /v2.0/rbac-policies/{id}"),
    Rule("create_address_scope", ADMIN_OR_MEMBER, "POST /v2.0/address-scopes"),
    Rule("create_address_scope:shared", ADMIN, "POST /v2.0/address-scopes: setting shared"),
    Rule("get_address_scope",
         "(rule:admin_only) or (role:reader and project_id:%(project_id)s) or rule:shared_address_scopes",
         "GET /v2.0/address-scopes[/{id}]"),
    Rule("update_address_scope", ADMIN_OR_MEMBER, "PUT /v2.0/address-scopes/{id}"),
    Rule("update_address_scope:shared", ADMIN, "PUT /v2.0/address-scopes/{id}: setting shared"),
    Rule("delete_address_scope", ADMIN_OR_MEMBER, "DELETE /v2.0/address-scopes/{id}"),
    Rule("create_metering_label", ADMIN_OR_MANAGER, "POST /v2.0/metering/metering-labels"),
    Rule("get_metering_label", ADMIN_OR_READER, "GET /v2.0/metering/metering-labels[/{id}]"),
    Rule("delete_metering_label", ADMIN_OR_MANAGER, "DELETE /v2.0/metering/metering-labels/{id}"),
    Rule("create_metering_label_rule", ADMIN_OR_MANAGER,
         "POST /v2.0/metering/metering-label-rules (the owner is the label's project)"),
    Rule("get_metering_label_rule", ADMIN_OR_READER, "GET /v2.0/metering/metering-label-rules[/{id}]"),
    Rule("delete_metering_label_rule", ADMIN_OR_MANAGER, "DELETE /v2.0/metering/metering-label-rules/{id}"),
    Rule("get_network_ip_availability", ADMIN_OR_SERVICE, "GET /v2.0/network-ip-availabilities[/{network_id}]"),
    Rule("get_availability_zone", "role:reader", "GET /v2.0/availability_zones"),
    Rule("get_service_provider", "role:reader", "GET /v2.0/service-providers"),
    Rule("get_agent", ADMIN, "GET /v2.0/agents[/{id}] (others are shown an empty list)"),
    Rule("update_agent", ADMIN, "PUT /v2.0/agents/{id}"),
    Rule("delete_agent", ADMIN, "DELETE /v2.0/agents/{id}"),
    Rule("create_dhcp-network", ADMIN, "POST /v2.0/agents/{id}/dhcp-networks"),
    Rule("get_dhcp-networks", ADMIN, "GET /v2.0/agents/{id}/dhcp-networks"),
    Rule("delete_dhcp-network", ADMIN, "DELETE /v2.0/agents/{id}/dhcp-networks/{network_id}"),
    Rule("get_dhcp-agents", ADMIN, "GET /v2.0/networks/{id}/dhcp-agents"),
    Rule("create_l3-router", ADMIN, "POST /v2.0/agents/{id}/l3-routers"),
    Rule("get_l3-routers", ADMIN, "GET /v2.0/agents/{id}/l3-routers"),
    Rule("delete_l3-router", ADMIN, "DELETE /v2.0/agents/{id}/l3-routers/{router_id}"),
    Rule("get_l3-agents", ADMIN, "GET /v2.0/routers/{id}/l3-agents"),
    Rule("update_quota", ADMIN, "PUT /v2.0/quotas/{project_id}"),
    Rule("delete_quota", ADMIN, "DELETE /v2.0/quotas/{project_id}"),
    Rule("get_network:tags",
         "(rule:admin_only) or (role:reader and project_id:%(project_id)s) or rule:shared or "
         "rule:external or rule:context_is_advsvc",
         "GET /v2.0/networks/{id}/tags[/{tag}]"),
    Rule("update_network:tags", ADMIN_OR_MEMBER, "PUT /v2.0/networks/{id}/tags[/{tag}]"),
    Rule("delete_network:tags", ADMIN_OR_MEMBER, "DELETE /v2.0/networks/{id}/tags[/{tag}]"),
    Rule("get_subnet:tags",
         "role:reader and project_id:%(project_id)s or rule:shared or rule:external_network or "
         "(rule:admin_only) or (role:reader and rule:network_owner)",
         "GET /v2.0/subnets/{id}/tags[/{tag}]"),
    Rule("update_subnet:tags",
         "role:member and project_id:%(project_id)s or (rule:admin_only) or (role:member and rule:network_owner)",
         "PUT /v2.0/subnets/{id}/tags[/{tag}]"),
    Rule("delete_subnet:tags",
         "role:member and project_id:%(project_id)s or (rule:admin_only) or (role:member and rule:network_owner)",
         "DELETE /v2.0/subnets/{id}/tags[/{tag}]"),
    Rule("get_port:tags",
         "rule:context_is_advsvc or (rule:admin_only) or (role:reader and rule:network_owner) or "
         "role:reader and project_id:%(project_id)s",
         "GET /v2.0/ports/{id}/tags[/{tag}]"),
    Rule("update_port:tags",
         "(rule:admin_only) or (role:member and project_id:%(project_id)s) or rule:context_is_advsvc",
         "PUT /v2.0/ports/{id}/tags[/{tag}]"),
    Rule("delete_port:tags",
         "rule:context_is_advsvc or role:member and project_id:%(project_id)s or "
         "(rule:admin_only) or (role:member and rule:network_owner)",
         "DELETE /v2.0/ports/{id}/tags[/{tag}]"),
    Rule("get_router:tags", ADMIN_OR_READER, "GET /v2.0/routers/{id}/tags[/{tag}]"),
    Rule("update_router:tags", ADMIN_OR_MEMBER, "PUT /v2.0/routers/{id}/tags[/{tag}]"),
    Rule("delete_router:tags", ADMIN_OR_MEMBER, "DELETE /v2.0/routers/{id}/tags[/{tag}]"),
    Rule("get_floatingip:tags", ADMIN_OR_READER, "GET /v2.0/floatingips/{id}/tags[/{tag}]"),
    Rule("update_floatingip:tags", ADMIN_OR_MEMBER, "PUT /v2.0/floatingips/{id}/tags[/{tag}]"),
    Rule("delete_floatingip:tags", ADMIN_OR_MEMBER, "DELETE /v2.0/floatingips/{id}/tags[/{tag}]"),
    Rule("get_security_group:tags",
         "(rule:admin_only) or (role:reader and project_id:%(project_id)s) or rule:shared_security_group",
         "GET /v2.0/security-groups/{id}/tags[/{tag}]"),
    Rule("update_security_group:tags", ADMIN_OR_MEMBER, "PUT /v2.0/security-groups/{id}/tags[/{tag}]"),
    Rule("delete_security_group:tags", ADMIN_OR_MEMBER, "DELETE /v2.0/security-groups/{id}/tags[/{tag}]"),
    Rule("get_subnetpool:tags",
         "(rule:admin_only) or (role:reader and project_id:%(project_id)s) or rule:shared_subnetpools",
         "GET /v2.0/subnetpools/{id}/tags[/{tag}]"),
    Rule("update_subnetpool:tags", ADMIN_OR_MEMBER, "PUT /v2.0/subnetpools/{id}/tags[/{tag}]"),
    Rule("delete_subnetpool:tags", ADMIN_OR_MEMBER, "DELETE /v2.0/subnetpools/{id}/tags[/{tag}]"),
]
