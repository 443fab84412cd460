"""The Network API's request bodies, as JSON Schema (checked before any handler runs).

Neutron refuses attributes no loaded extension defines ("Unrecognized attribute(s)"), so each
resource lists the attributes this cloud understands (the extensions ``GET /v2.0/extensions``
names) and refuses the rest.  Names are printable and bounded, lists are bounded; the values'
finer rules (CIDRs, ranges, ownership) stay in the handlers, which give Neutron's own wording.
"""

from __future__ import annotations

from typing import Any

from cumulo.core.http.schema import Schema, array, name, nullable, obj, string

V = "/v2.0"
ANY: Schema = {}
NAME = {"anyOf": [name(255, 0), {"type": "null"}]}
DESCRIPTION = nullable(string(255, 0))
TAGS = array(string(255, 1), 50)
OWNER = {"tenant_id": string(255, 0), "project_id": string(255, 0)}


def resource(kind: str, fields: dict[str, Schema], bulk: bool = True) -> Schema:
    """``{kind: {...}}``, or in bulk ``{kinds: [{...}, ...]}`` (at most 1000 at once)."""
    one = obj({"name": NAME, "description": DESCRIPTION, **OWNER, **fields})
    choices: list[Schema] = [obj({kind: one}, required=(kind,))]
    if bulk:
        choices.append(obj({kind + "s": array(one, 1000, 1)}, required=(kind + "s",)))
    return {"type": "object", "anyOf": choices} if len(choices) > 1 else choices[0]


NETWORK = {
    "admin_state_up": ANY, "port_security_enabled": ANY, "mtu": ANY, "shared": ANY, "router:external": ANY,
    "provider:network_type": ANY, "provider:physical_network": ANY, "provider:segmentation_id": ANY,
    "segments": array({"type": "object"}, 16), "availability_zone_hints": array(string(255), 16),
    "is_default": ANY, "tags": TAGS,
    "qos_policy_id": ANY,
}
SUBNET = {
    "network_id": ANY, "ip_version": ANY, "cidr": ANY, "gateway_ip": ANY,
    "allocation_pools": array(ANY, 100), "dns_nameservers": array(ANY, 100), "host_routes": array(ANY, 100),
    "enable_dhcp": ANY, "ipv6_ra_mode": ANY, "ipv6_address_mode": ANY, "subnetpool_id": ANY,
    "use_default_subnetpool": ANY, "prefixlen": ANY, "segment_id": ANY, "service_types": array(ANY, 16),
    "dns_publish_fixed_ip": ANY, "tags": TAGS,
}
PORT = {
    "network_id": ANY, "admin_state_up": ANY, "mac_address": ANY, "fixed_ips": array(ANY, 100),
    "device_id": ANY, "device_owner": ANY, "security_groups": nullable(array(ANY, 100)),
    "allowed_address_pairs": nullable(array(ANY, 100)), "extra_dhcp_opts": nullable(array(ANY, 100)),
    "port_security_enabled": ANY, "binding:host_id": ANY, "binding:vnic_type": ANY, "binding:profile": ANY,
    "dns_name": ANY, "tags": TAGS,
    "qos_policy_id": ANY,
}
ROUTER = {
    "admin_state_up": ANY, "external_gateway_info": ANY, "routes": nullable(array(ANY, 100)), "distributed": ANY,
    "ha": ANY, "availability_zone_hints": array(string(255), 16), "tags": TAGS,
}
FLOATING_IP = {
    "floating_network_id": ANY, "floating_ip_address": ANY, "port_id": ANY, "fixed_ip_address": ANY,
    "subnet_id": ANY, "tags": TAGS,
}
SECURITY_GROUP = {"stateful": ANY, "tags": TAGS}
RULE = {
    "security_group_id": ANY, "direction": ANY, "ethertype": ANY, "protocol": ANY, "port_range_min": ANY,
    "port_range_max": ANY, "remote_ip_prefix": ANY, "remote_group_id": ANY, "remote_address_group_id": ANY,
}
SUBNET_POOL = {
    "prefixes": array(ANY, 100), "default_prefixlen": ANY, "min_prefixlen": ANY, "max_prefixlen": ANY,
    "shared": ANY, "is_default": ANY, "address_scope_id": ANY, "default_quota": ANY, "ip_version": ANY,
    "tags": TAGS,
}
ROUTES = obj({"router": obj({"routes": array(ANY, 100)}, required=("routes",))}, required=("router",))
INTERFACE = obj({"subnet_id": ANY, "port_id": ANY})


def _schemas() -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for path, kind, fields, bulk in (("networks", "network", NETWORK, True), ("subnets", "subnet", SUBNET, True),
                                     ("ports", "port", PORT, True), ("routers", "router", ROUTER, False),
                                     ("floatingips", "floatingip", FLOATING_IP, False),
                                     ("security-groups", "security_group", SECURITY_GROUP, False),
                                     ("security-group-rules", "security_group_rule", RULE, True),
                                     ("subnetpools", "subnetpool", SUBNET_POOL, False)):
        out[("POST", f"{V}/{path}")] = resource(kind, fields, bulk)
        if kind != "security_group_rule":  # rules cannot be updated
            ident = {"floatingip": "fip", "security_group": "group", "subnetpool": "pool"}.get(kind, kind)
            out[("PUT", f"{V}/{path}/{{{ident}_id}}")] = resource(kind, fields, bulk=False)
    for action in ("add_extraroutes", "remove_extraroutes"):
        out[("PUT", f"{V}/routers/{{router_id}}/{action}")] = ROUTES
    for action in ("add_router_interface", "remove_router_interface"):
        out[("PUT", f"{V}/routers/{{router_id}}/{action}")] = INTERFACE
    return out


SCHEMAS = _schemas()
