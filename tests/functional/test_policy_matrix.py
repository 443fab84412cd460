"""The policy matrix: every route of compute, network, image, placement and block storage, asked by six personas,
answers as OpenStack's default policies say.

One cloud (SQLite, fake nodes, no dataplane) and two projects: P holds the resources the paths
need (made by P's member, or by the admin where only an admin can make them); Q is another
project.  The personas: the cloud ``admin`` (admin in the admin project), P's ``member``,
``reader`` and ``manager``, ``other`` (a member of Q) and ``norole`` (a user with no role
anywhere: Keystone gives it no project-scoped token, so it calls with its unscoped one).

Each row of ``ROWS`` names a route (method and the router's path template), a body, and who the
documented defaults allow.  Allowed means neither 401 nor 403 (nor a 5xx); denied means 403, or
404 for ``other`` and ``norole`` where the route hides another project's resource as OpenStack
does.  Every mismatch is collected and reported at once, and the table must name every route the
four routers serve, so a new route without a row fails here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from unittest import mock

import httpx
import pytest

from tests.functional.conftest import Cloud, start_cloud, stop_cloud, unique, wait_for

PERSONAS = ("admin", "member", "reader", "manager", "other", "norole")
ADMIN = frozenset({"admin"})
MANAGER = frozenset({"admin", "manager"})
MEMBER = frozenset({"admin", "manager", "member"})  # implied roles: manager implies member implies reader
READER = MEMBER | {"reader"}
OWN_MEMBER = MEMBER | {"other"}  # a member acting in its own project (creates, lists)
OWN_READER = READER | {"other"}
ANYONE = frozenset(PERSONAS)
SERVICE = {"compute", "network", "image", "placement"}
VERSIONS = {"compute": "compute 2.47", "placement": "placement 1.39"}


@dataclass
class Row:
    service: str
    method: str
    path: str  # the router's template
    expect: frozenset[str] | int  # who is allowed, or the one status every persona gets
    body: Any = None
    params: dict[str, str] = field(default_factory=dict)  # template var -> "@resource" or a literal
    fresh: str = ""  # a resource made anew for each persona the row expects to succeed, bound to {fresh}
    version: str = ""
    query: str = ""
    content_type: str = ""
    hides: bool = False  # the body names P's resource: another project's caller may get its 404


def rows() -> list[Row]:
    c, n, i, p = "compute", "network", "image", "placement"
    srv = {"server_id": "@server"}
    bogus = str(uuid.uuid4())
    r: list[Row] = []
    add = r.append
    # -- compute: flavors ----------------------------------------------------------------------
    add(Row(c, "GET", "/v2.1/flavors", ANYONE))
    add(Row(c, "GET", "/v2.1/flavors/detail", ANYONE))
    add(Row(c, "POST", "/v2.1/flavors", ADMIN, {"flavor": {"name": "{unique}", "ram": 64, "vcpus": 1, "disk": 1}}))
    add(Row(c, "GET", "/v2.1/flavors/{flavor_id}", ANYONE, params={"flavor_id": "10"}))
    add(Row(c, "PUT", "/v2.1/flavors/{flavor_id}", ADMIN, {"flavor": {"description": "d"}},
            {"flavor_id": "@flavor"}, version="compute 2.55"))
    add(Row(c, "DELETE", "/v2.1/flavors/{flavor_id}", ADMIN, params={"flavor_id": "no-such-flavor"}))
    add(Row(c, "GET", "/v2.1/flavors/{flavor_id}/os-extra_specs", OWN_READER, params={"flavor_id": "@flavor"}))
    add(Row(c, "POST", "/v2.1/flavors/{flavor_id}/os-extra_specs", ADMIN, {"extra_specs": {"k": "v"}},
            {"flavor_id": "@flavor"}))
    add(Row(c, "GET", "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", OWN_READER,
            params={"flavor_id": "@flavor", "key": "k"}))
    add(Row(c, "PUT", "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", ADMIN, {"k": "w"},
            {"flavor_id": "@flavor", "key": "k"}))
    add(Row(c, "DELETE", "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", ADMIN,
            params={"flavor_id": "@flavor", "key": "nokey"}))
    add(Row(c, "GET", "/v2.1/flavors/{flavor_id}/os-flavor-access", ADMIN, params={"flavor_id": "@private_flavor"}))
    add(Row(c, "POST", "/v2.1/flavors/{flavor_id}/action", ADMIN, {"addTenantAccess": {"tenant": "@Q"}},
            {"flavor_id": "@private_flavor"}))
    # -- key pairs (a user's own), limits and quotas ------------------------------------------------
    add(Row(c, "GET", "/v2.1/os-keypairs", ANYONE))
    add(Row(c, "POST", "/v2.1/os-keypairs", ANYONE, {"keypair": {"name": "{unique}"}}))
    add(Row(c, "GET", "/v2.1/os-keypairs/{name}", ANYONE, params={"name": "no-such-key"}))
    add(Row(c, "DELETE", "/v2.1/os-keypairs/{name}", ANYONE, params={"name": "no-such-key"}))
    add(Row(c, "GET", "/v2.1/limits", ANYONE))
    add(Row(c, "GET", "/v2.1/os-quota-sets/{project_id}", READER, params={"project_id": "@P"}))
    add(Row(c, "GET", "/v2.1/os-quota-sets/{project_id}/defaults", ANYONE, params={"project_id": "@P"}))
    add(Row(c, "GET", "/v2.1/os-quota-sets/{project_id}/detail", READER, params={"project_id": "@P"}))
    add(Row(c, "PUT", "/v2.1/os-quota-sets/{project_id}", ADMIN, {"quota_set": {"instances": 50}},
            {"project_id": "@P"}))
    add(Row(c, "DELETE", "/v2.1/os-quota-sets/{project_id}", ADMIN, params={"project_id": "@Q"}))
    add(Row(c, "GET", "/v2.1/os-quota-class-sets/{name}", ADMIN, params={"name": "default"}))
    add(Row(c, "PUT", "/v2.1/os-quota-class-sets/{name}", ADMIN, {"quota_class_set": {"key_pairs": 200}},
            {"name": "default"}))
    # -- server groups ---------------------------------------------------------------------------
    add(Row(c, "POST", "/v2.1/os-server-groups", OWN_MEMBER,
            {"server_group": {"name": "{unique}", "policies": ["anti-affinity"]}}))
    add(Row(c, "GET", "/v2.1/os-server-groups", OWN_READER))
    add(Row(c, "GET", "/v2.1/os-server-groups/{group_id}", READER, params={"group_id": "@server_group"}))
    add(Row(c, "DELETE", "/v2.1/os-server-groups/{group_id}", MEMBER, fresh="server_group"))
    # -- services, hypervisors, aggregates, zones (the cloud's: an admin's) ----------------------------
    add(Row(c, "GET", "/v2.1/os-services", ADMIN))
    add(Row(c, "PUT", "/v2.1/os-services/{service_id}", ADMIN, {"status": "enabled"}, {"service_id": bogus},
            version="compute 2.53"))
    add(Row(c, "DELETE", "/v2.1/os-services/{service_id}", ADMIN, params={"service_id": bogus},
            version="compute 2.53"))
    add(Row(c, "GET", "/v2.1/os-hypervisors", ADMIN))
    add(Row(c, "GET", "/v2.1/os-hypervisors/detail", ADMIN))
    add(Row(c, "GET", "/v2.1/os-hypervisors/statistics", ADMIN))
    add(Row(c, "GET", "/v2.1/os-hypervisors/{node_id}", ADMIN, params={"node_id": bogus}, version="compute 2.53"))
    add(Row(c, "GET", "/v2.1/os-aggregates", ADMIN))
    add(Row(c, "POST", "/v2.1/os-aggregates", ADMIN, {"aggregate": {"name": "{unique}"}}))
    add(Row(c, "GET", "/v2.1/os-aggregates/{agg_id}", ADMIN, params={"agg_id": "999999"}))
    add(Row(c, "PUT", "/v2.1/os-aggregates/{agg_id}", ADMIN, {"aggregate": {"name": "{unique}"}},
            {"agg_id": "999999"}))
    add(Row(c, "DELETE", "/v2.1/os-aggregates/{agg_id}", ADMIN, params={"agg_id": "999999"}))
    for action, arg in (("add_host", {"host": "fake-0"}), ("remove_host", {"host": "fake-0"}),
                        ("set_metadata", {"metadata": {"k": "v"}})):
        add(Row(c, "POST", "/v2.1/os-aggregates/{agg_id}/action", ADMIN, {action: arg}, {"agg_id": "999999"}))
    add(Row(c, "GET", "/v2.1/os-availability-zone", ANYONE))
    add(Row(c, "GET", "/v2.1/os-availability-zone/detail", ADMIN))
    # -- servers ---------------------------------------------------------------------------------
    add(Row(c, "GET", "/v2.1/servers", OWN_READER))
    add(Row(c, "GET", "/v2.1/servers/detail", OWN_READER))
    add(Row(c, "POST", "/v2.1/servers", OWN_MEMBER, {"server": {
        "name": "{unique}", "flavorRef": "10", "imageRef": "@image_public", "networks": "none"}}))
    add(Row(c, "GET", "/v2.1/servers/{server_id}", READER, params=srv))
    add(Row(c, "PUT", "/v2.1/servers/{server_id}", MEMBER, {"server": {"name": "renamed"}}, srv))
    add(Row(c, "DELETE", "/v2.1/servers/{server_id}", MEMBER, fresh="server"))
    add(Row(c, "GET", "/v2.1/servers/{server_id}/metadata", READER, params=srv))
    add(Row(c, "POST", "/v2.1/servers/{server_id}/metadata", MEMBER, {"metadata": {"a": "b"}}, srv))
    add(Row(c, "PUT", "/v2.1/servers/{server_id}/metadata", MEMBER, {"metadata": {"a": "c"}}, srv))
    add(Row(c, "GET", "/v2.1/servers/{server_id}/metadata/{key}", READER, params={**srv, "key": "a"}))
    add(Row(c, "PUT", "/v2.1/servers/{server_id}/metadata/{key}", MEMBER, {"meta": {"a": "d"}},
            {**srv, "key": "a"}))
    add(Row(c, "DELETE", "/v2.1/servers/{server_id}/metadata/{key}", MEMBER, params={**srv, "key": "nokey"}))
    add(Row(c, "GET", "/v2.1/servers/{server_id}/tags", READER, params=srv))
    add(Row(c, "PUT", "/v2.1/servers/{server_id}/tags", MEMBER, {"tags": ["a"]}, srv))
    add(Row(c, "DELETE", "/v2.1/servers/{server_id}/tags", MEMBER, params=srv))
    add(Row(c, "GET", "/v2.1/servers/{server_id}/tags/{tag}", READER, params={**srv, "tag": "t"}))
    add(Row(c, "PUT", "/v2.1/servers/{server_id}/tags/{tag}", MEMBER, params={**srv, "tag": "t"}))
    add(Row(c, "DELETE", "/v2.1/servers/{server_id}/tags/{tag}", MEMBER, params={**srv, "tag": "nope"}))
    # a server's volumes: a server and a volume of their own (the first allowed persona attaches it,
    # the others' second attach is a 400; the detach comes last)
    vsrv = {"server_id": "@volume_server"}
    vatt = {**vsrv, "volume_id": "@server_volume"}
    add(Row(c, "GET", "/v2.1/servers/{server_id}/os-volume_attachments", READER, params=vsrv))
    add(Row(c, "POST", "/v2.1/servers/{server_id}/os-volume_attachments", MEMBER,
            {"volumeAttachment": {"volumeId": "@server_volume"}}, vsrv))
    add(Row(c, "GET", "/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", READER, params=vatt))
    add(Row(c, "PUT", "/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", MEMBER,
            {"volumeAttachment": {"volumeId": "@server_volume", "delete_on_termination": False}}, vatt,
            version="compute 2.85"))
    # naming another volume is a swap (a service's; the admin's is then a 409: the volume is not migrating)
    add(Row(c, "PUT", "/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", ADMIN,
            {"volumeAttachment": {"volumeId": "@volume"}}, vatt, version="compute 2.85"))
    add(Row(c, "DELETE", "/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", MEMBER, params=vatt))
    add(Row(c, "GET", "/v2.1/servers/{server_id}/ips", READER, params=srv))
    add(Row(c, "GET", "/v2.1/servers/{server_id}/ips/{network_label}", READER, params={**srv, "network_label": "x"}))
    # a server's interfaces (the fake node takes a NIC on P's network) and its diagnostics
    add(Row(c, "GET", "/v2.1/servers/{server_id}/os-interface", READER, params=srv))
    add(Row(c, "GET", "/v2.1/servers/{server_id}/os-interface/{port_id}", READER, params={**srv, "port_id": bogus}))
    add(Row(c, "POST", "/v2.1/servers/{server_id}/os-interface", MEMBER, {"interfaceAttachment": {
        "net_id": "@network"}}, srv))
    add(Row(c, "DELETE", "/v2.1/servers/{server_id}/os-interface/{port_id}", MEMBER,
            params={**srv, "port_id": bogus}))
    add(Row(c, "GET", "/v2.1/servers/{server_id}/diagnostics", ADMIN, params=srv, version="compute 2.48"))
    # remote consoles (a fake node has none: a 400 once allowed), and the actions they replaced (up to 2.5)
    add(Row(c, "POST", "/v2.1/servers/{server_id}/remote-consoles", MEMBER,
            {"remote_console": {"protocol": "serial", "type": "serial"}}, srv, version="compute 2.6"))
    for action, kind in (("os-getSerialConsole", "serial"), ("os-getVNCConsole", "novnc")):
        add(Row(c, "POST", "/v2.1/servers/{server_id}/action", MEMBER, {action: {"type": kind}}, srv,
                version="compute 2.5"))
    # Nova's proxies of block storage (up to 2.35), on P's volume and snapshot
    v235 = "compute 2.35"
    for kind, key, item, body in (
            ("os-volumes", "volume_id", "@volume", {"volume": {"size": 1}}),
            ("os-snapshots", "snapshot_id", "@volume_snapshot", {"snapshot": {"volume_id": "@volume"}})):
        add(Row(c, "GET", f"/v2.1/{kind}", OWN_READER, version=v235))
        add(Row(c, "GET", f"/v2.1/{kind}/detail", OWN_READER, version=v235))
        add(Row(c, "POST", f"/v2.1/{kind}", OWN_MEMBER, body, version=v235, hides=kind == "os-snapshots"))
        add(Row(c, "GET", f"/v2.1/{kind}/{{{key}}}", READER, params={key: item}, version=v235))
        add(Row(c, "DELETE", f"/v2.1/{kind}/{{{key}}}", MEMBER, fresh=item[1:], version=v235))
        add(Row(c, "GET", f"/v2.1/{kind}/", OWN_READER, version=v235))  # no id: a 404 once allowed
        add(Row(c, "DELETE", f"/v2.1/{kind}/", OWN_MEMBER, version=v235))
    actions: list[tuple[str, Any, frozenset[str]]] = [
        ("os-getConsoleOutput", {"length": 5}, MEMBER), ("reboot", {"type": "SOFT"}, MEMBER),
        ("os-stop", None, MEMBER), ("os-start", None, MEMBER), ("pause", None, MEMBER),
        ("unpause", None, MEMBER), ("suspend", None, MEMBER), ("resume", None, MEMBER),
        ("lock", None, MEMBER), ("unlock", None, MEMBER),
        ("addSecurityGroup", {"name": "default"}, MEMBER), ("removeSecurityGroup", {"name": "nope"}, MEMBER),
        ("createImage", {"name": "{unique}"}, MEMBER),
        ("rebuild", {"imageRef": "@image_public"}, MEMBER), ("resize", {"flavorRef": "11"}, MEMBER),
        ("confirmResize", None, MEMBER), ("revertResize", None, MEMBER),
        ("migrate", None, MANAGER), ("os-migrateLive", {"host": None, "block_migration": False}, MANAGER),
        ("os-resetState", {"state": "active"}, ADMIN), ("evacuate", {}, ADMIN),
        ("shelve", None, MEMBER), ("shelveOffload", None, ADMIN), ("unshelve", None, MEMBER),
        ("forceDelete", None, MEMBER), ("restore", None, MEMBER),
        ("createBackup", {"name": "{unique}", "backup_type": "daily", "rotation": 1}, MEMBER),
        ("injectNetworkInfo", None, ADMIN), ("rescue", None, MEMBER), ("unrescue", None, MEMBER),
        ("addFixedIp", {"networkId": "@network"}, MEMBER), ("removeFixedIp", {"address": "10.0.0.250"}, MEMBER)]
    for action, arg, who in actions:
        add(Row(c, "POST", "/v2.1/servers/{server_id}/action", who, {action: arg},
                {"server_id": "@action_server"}))
    add(Row(c, "GET", "/v2.1/servers/{server_id}/os-instance-actions", READER, params=srv))
    add(Row(c, "GET", "/v2.1/servers/{server_id}/os-instance-actions/{request_id}", READER,
            params={**srv, "request_id": "req-" + bogus}))
    add(Row(c, "GET", "/v2.1/os-migrations", MANAGER))
    add(Row(c, "GET", "/v2.1/servers/{server_id}/migrations", MANAGER, params=srv))
    add(Row(c, "GET", "/v2.1/os-simple-tenant-usage", ADMIN))
    add(Row(c, "GET", "/v2.1/os-simple-tenant-usage/{project_id}", READER, params={"project_id": "@P"}))
    add(Row(c, "GET", "/v2.1/os-simple-tenant-usage/", 404))
    add(Row(c, "GET", "/v2.1/servers/{server_id}/os-server-password", READER, params=srv))
    add(Row(c, "DELETE", "/v2.1/servers/{server_id}/os-server-password", MEMBER, params=srv))
    # -- the network and image proxies -------------------------------------------------------------
    old = "compute 2.1"  # the proxies went away at 2.36
    add(Row(c, "GET", "/v2.1/os-security-groups", OWN_READER, version=old))
    add(Row(c, "POST", "/v2.1/os-security-groups", OWN_MEMBER,
            {"security_group": {"name": "{unique}", "description": "d"}}, version=old))
    add(Row(c, "GET", "/v2.1/os-security-groups/{group_id}", READER, params={"group_id": "@sg"}, version=old))
    add(Row(c, "PUT", "/v2.1/os-security-groups/{group_id}", MEMBER,
            {"security_group": {"name": "{unique}", "description": "d"}}, {"group_id": "@sg"}, version=old))
    add(Row(c, "DELETE", "/v2.1/os-security-groups/{group_id}", MEMBER, fresh="sg", version=old))
    add(Row(c, "PUT", "/v2.1/os-security-groups/", 404, {"security_group": {}}, version=old))
    add(Row(c, "DELETE", "/v2.1/os-security-groups/", 404, version=old))
    add(Row(c, "POST", "/v2.1/os-security-group-rules", MEMBER, {"security_group_rule": {
        "parent_group_id": "@sg", "ip_protocol": "tcp", "from_port": "{port}", "to_port": "{port}",
        "cidr": "10.0.0.0/8"}}, version=old, hides=True))
    add(Row(c, "DELETE", "/v2.1/os-security-group-rules/{rule_id}", MEMBER, fresh="sg_rule", version=old))
    add(Row(c, "DELETE", "/v2.1/os-security-group-rules/", 404, version=old))
    add(Row(c, "GET", "/v2.1/servers/{server_id}/os-security-groups", READER, params=srv))
    add(Row(c, "GET", "/v2.1/os-security-group-default-rules", 410))
    add(Row(c, "POST", "/v2.1/os-security-group-default-rules", 410, {}))
    add(Row(c, "GET", "/v2.1/os-security-group-default-rules/{rule_id}", 410, params={"rule_id": "1"}))
    add(Row(c, "DELETE", "/v2.1/os-security-group-default-rules/{rule_id}", 410, params={"rule_id": "1"}))
    add(Row(c, "GET", "/v2.1/os-networks", OWN_READER, version=old))
    add(Row(c, "GET", "/v2.1/os-networks/{network_id}", OWN_READER, params={"network_id": bogus}, version=old))
    add(Row(c, "GET", "/v2.1/images", OWN_READER, version=old))
    add(Row(c, "GET", "/v2.1/images/detail", OWN_READER, version=old))
    add(Row(c, "GET", "/v2.1/images/{image_id}", OWN_READER, params={"image_id": "@image_public"}, version=old))
    add(Row(c, "DELETE", "/v2.1/images/{image_id}", MEMBER, fresh="image", version=old))
    add(Row(c, "GET", "/v2.1/images/{image_id}/metadata", OWN_READER, params={"image_id": "@image_public"},
            version=old))
    add(Row(c, "GET", "/v2.1/images/{image_id}/metadata/{key}", OWN_READER,
            params={"image_id": "@image_public", "key": "nokey"}, version=old))
    # -- the legacy routes: image metadata writes, extensions, os-hosts, the network proxies, ... --
    meta = {"image_id": "@image"}
    add(Row(c, "POST", "/v2.1/images/{image_id}/metadata", MEMBER, {"metadata": {"k": "v"}}, meta, version=old))
    add(Row(c, "PUT", "/v2.1/images/{image_id}/metadata", MEMBER, {"metadata": {"k": "v"}}, meta, version=old))
    add(Row(c, "PUT", "/v2.1/images/{image_id}/metadata/{key}", MEMBER, {"meta": {"k": "v"}},
            {**meta, "key": "k"}, version=old))
    add(Row(c, "DELETE", "/v2.1/images/{image_id}/metadata/{key}", MEMBER, params={**meta, "key": "nokey"},
            version=old))
    add(Row(c, "DELETE", "/v2.1/images/", OWN_MEMBER, version=old))  # no id: a 404 once allowed
    add(Row(c, "GET", "/v2.1/extensions", ANYONE))
    add(Row(c, "GET", "/v2.1/extensions/{alias}", ANYONE, params={"alias": "os-hosts"}))
    add(Row(c, "GET", "/v2.1/os-hosts", ADMIN, version=old))
    add(Row(c, "GET", "/v2.1/os-hosts/{host_name}", ADMIN, params={"host_name": "fake-0"}, version=old))
    add(Row(c, "PUT", "/v2.1/os-hosts/{host_name}", ADMIN, {"status": "enable"}, {"host_name": "fake-0"},
            version=old))
    for verb_path in ("reboot", "shutdown", "startup"):
        add(Row(c, "GET", f"/v2.1/os-hosts/{{host_name}}/{verb_path}", ADMIN, params={"host_name": "no-such-host"},
                version=old))
    add(Row(c, "GET", "/v2.1/os-hypervisors/{node_id}/uptime", ADMIN, params={"node_id": bogus},
            version="compute 2.53"))
    add(Row(c, "GET", "/v2.1/os-hypervisors/{pattern}/search", ADMIN, params={"pattern": "fake"}, version=old))
    add(Row(c, "GET", "/v2.1/os-hypervisors/{pattern}/servers", ADMIN, params={"pattern": "fake"}, version=old))
    add(Row(c, "GET", "/v2.1/os-instance_usage_audit_log", ADMIN))
    add(Row(c, "GET", "/v2.1/os-instance_usage_audit_log/{before}", ADMIN,
            params={"before": "2020-01-01 00:00:00"}))
    add(Row(c, "POST", "/v2.1/os-server-external-events", frozenset(),  # a service user's only
            {"events": [{"name": "network-changed", "server_uuid": bogus}]}))
    add(Row(c, "GET", "/v2.1/os-tenant-networks", OWN_READER, version=old))
    add(Row(c, "GET", "/v2.1/os-tenant-networks/{network_id}", OWN_READER, params={"network_id": bogus},
            version=old))
    add(Row(c, "GET", "/v2.1/os-floating-ip-pools", ANYONE, version=old))
    add(Row(c, "GET", "/v2.1/os-floating-ips", OWN_READER, version=old))
    add(Row(c, "POST", "/v2.1/os-floating-ips", OWN_MEMBER, {"pool": "@external"}, version=old))
    add(Row(c, "GET", "/v2.1/os-floating-ips/{fip_id}", READER, params={"fip_id": "@fip"}, version=old))
    add(Row(c, "DELETE", "/v2.1/os-floating-ips/{fip_id}", MEMBER, fresh="fip", version=old))

    # -- network ---------------------------------------------------------------------------------
    add(Row(n, "GET", "/v2.0/extensions", ANYONE))
    add(Row(n, "GET", "/v2.0/extensions/{alias}", ANYONE, params={"alias": "router"}))
    add(Row(n, "GET", "/v2.0/", ANYONE))
    for plural, kind, body, fresh_kind, target in (
            ("networks", "network", {"network": {"name": "{unique}"}}, "network", "@network"),
            ("routers", "router", {"router": {"name": "{unique}"}}, "router", "@router"),
            ("security-groups", "security_group", {"security_group": {"name": "{unique}"}}, "sg", "@sg"),
            ("subnetpools", "subnetpool", {"subnetpool": {"name": "{unique}", "prefixes": ["10.{octet}.0/24"]}},
             "subnetpool", "@subnetpool"),
            ("floatingips", "floatingip", {"floatingip": {"floating_network_id": "@external"}}, "fip", "@fip")):
        var = {"networks": "network_id", "routers": "router_id", "security-groups": "group_id",
               "subnetpools": "pool_id", "floatingips": "fip_id"}[plural]
        add(Row(n, "GET", f"/v2.0/{plural}", OWN_READER))
        add(Row(n, "POST", f"/v2.0/{plural}", OWN_MEMBER, body))
        add(Row(n, "GET", f"/v2.0/{plural}/{{{var}}}", READER, params={var: target}))
        update = ({"floatingip": {"port_id": None}} if kind == "floatingip" else
                  {kind: {"name": "{unique}"}})
        add(Row(n, "PUT", f"/v2.0/{plural}/{{{var}}}", MEMBER, update, {var: target}))
        add(Row(n, "DELETE", f"/v2.0/{plural}/{{{var}}}", MEMBER, fresh=fresh_kind))
    add(Row(n, "GET", "/v2.0/subnets", OWN_READER))
    add(Row(n, "POST", "/v2.0/subnets", MEMBER, {"subnet": {"network_id": "@network", "ip_version": 4,
                                                             "cidr": "10.{octet}.0/24"}}, hides=True))
    add(Row(n, "GET", "/v2.0/subnets/{subnet_id}", READER, params={"subnet_id": "@subnet"}))
    add(Row(n, "PUT", "/v2.0/subnets/{subnet_id}", MEMBER, {"subnet": {"name": "{unique}"}},
            {"subnet_id": "@subnet"}))
    add(Row(n, "DELETE", "/v2.0/subnets/{subnet_id}", MEMBER, fresh="subnet"))
    add(Row(n, "GET", "/v2.0/ports", OWN_READER))
    add(Row(n, "POST", "/v2.0/ports", MEMBER, {"port": {"network_id": "@network"}}, hides=True))
    add(Row(n, "GET", "/v2.0/ports/{port_id}", READER, params={"port_id": "@port"}))
    add(Row(n, "PUT", "/v2.0/ports/{port_id}", MEMBER, {"port": {"name": "{unique}"}}, {"port_id": "@port"}))
    add(Row(n, "DELETE", "/v2.0/ports/{port_id}", MEMBER, fresh="port"))
    add(Row(n, "GET", "/v2.0/security-group-rules", OWN_READER))
    add(Row(n, "POST", "/v2.0/security-group-rules", MEMBER, {"security_group_rule": {
        "security_group_id": "@sg", "direction": "ingress", "protocol": "tcp", "port_range_min": "{port}",
        "port_range_max": "{port}"}}, hides=True))
    add(Row(n, "GET", "/v2.0/security-group-rules/{rule_id}", READER, params={"rule_id": "@sg_rule"}))
    add(Row(n, "DELETE", "/v2.0/security-group-rules/{rule_id}", MEMBER, fresh="sg_rule"))
    router = {"router_id": "@router"}
    add(Row(n, "PUT", "/v2.0/routers/{router_id}/add_extraroutes", MEMBER, {"router": {"routes": []}}, router))
    add(Row(n, "PUT", "/v2.0/routers/{router_id}/remove_extraroutes", MEMBER, {"router": {"routes": []}}, router))
    add(Row(n, "PUT", "/v2.0/routers/{router_id}/add_router_interface", MEMBER, {"subnet_id": "@subnet"}, router))
    add(Row(n, "PUT", "/v2.0/routers/{router_id}/remove_router_interface", MEMBER, {"subnet_id": "@subnet"},
            router))
    add(Row(n, "GET", "/v2.0/quotas", OWN_READER))
    add(Row(n, "GET", "/v2.0/quotas/{project_id}", READER, params={"project_id": "@P"}))
    add(Row(n, "PUT", "/v2.0/quotas/{project_id}", ADMIN, {"quota": {"network": 100}}, {"project_id": "@P"}))
    add(Row(n, "DELETE", "/v2.0/quotas/{project_id}", ADMIN, params={"project_id": "@Q"}))
    add(Row(n, "GET", "/v2.0/quotas/{project_id}/default", READER, params={"project_id": "@P"}))
    add(Row(n, "GET", "/v2.0/quotas/{project_id}/details", READER, params={"project_id": "@P"}))
    tagged = {"collection": "networks", "resource_id": "@network"}
    add(Row(n, "GET", "/v2.0/{collection}/{resource_id}/tags", READER, params=tagged))
    add(Row(n, "PUT", "/v2.0/{collection}/{resource_id}/tags", MEMBER, {"tags": ["a"]}, tagged))
    add(Row(n, "DELETE", "/v2.0/{collection}/{resource_id}/tags", MEMBER, params=tagged))
    add(Row(n, "GET", "/v2.0/{collection}/{resource_id}/tags/{tag}", READER, params={**tagged, "tag": "nope"}))
    add(Row(n, "PUT", "/v2.0/{collection}/{resource_id}/tags/{tag}", MEMBER, params={**tagged, "tag": "t"}))
    add(Row(n, "DELETE", "/v2.0/{collection}/{resource_id}/tags/{tag}", MEMBER, params={**tagged, "tag": "nope"}))
    # RBAC policies (on P's network, for a project that does not exist, so no persona gains access),
    # address scopes, IP availability, zones, service providers, and the agents (none run here)
    add(Row(n, "GET", "/v2.0/rbac-policies", OWN_READER))
    add(Row(n, "POST", "/v2.0/rbac-policies", MEMBER, {"rbac_policy": {
        "object_type": "network", "object_id": "@network", "action": "access_as_shared",
        "target_tenant": "{unique}"}}, hides=True))
    add(Row(n, "GET", "/v2.0/rbac-policies/{policy_id}", READER, params={"policy_id": "@rbac"}))
    add(Row(n, "PUT", "/v2.0/rbac-policies/{policy_id}", MEMBER, {"rbac_policy": {"target_tenant": "{unique}"}},
            {"policy_id": "@rbac"}))
    add(Row(n, "DELETE", "/v2.0/rbac-policies/{policy_id}", MEMBER, fresh="rbac"))
    add(Row(n, "GET", "/v2.0/address-scopes", OWN_READER))
    add(Row(n, "POST", "/v2.0/address-scopes", OWN_MEMBER, {"address_scope": {"name": "{unique}", "ip_version": 4}}))
    add(Row(n, "GET", "/v2.0/address-scopes/{scope_id}", READER, params={"scope_id": "@address_scope"}))
    add(Row(n, "PUT", "/v2.0/address-scopes/{scope_id}", MEMBER, {"address_scope": {"name": "{unique}"}},
            {"scope_id": "@address_scope"}))
    add(Row(n, "DELETE", "/v2.0/address-scopes/{scope_id}", MEMBER, fresh="address_scope"))
    # metering: an admin or P's manager makes and deletes labels and rules, P's reader reads them
    add(Row(n, "GET", "/v2.0/metering/metering-labels", OWN_READER))
    add(Row(n, "POST", "/v2.0/metering/metering-labels", MANAGER, {"metering_label": {"name": "{unique}"}}))
    add(Row(n, "GET", "/v2.0/metering/metering-labels/{label_id}", READER, params={"label_id": "@metering_label"}))
    add(Row(n, "DELETE", "/v2.0/metering/metering-labels/{label_id}", MANAGER, fresh="metering_label"))
    add(Row(n, "GET", "/v2.0/metering/metering-label-rules", OWN_READER))
    add(Row(n, "POST", "/v2.0/metering/metering-label-rules", MANAGER, {"metering_label_rule": {
        "metering_label_id": "@metering_label", "direction": "egress", "source_ip_prefix": "10.{octet}.0/24"}},
        hides=True))
    add(Row(n, "GET", "/v2.0/metering/metering-label-rules/{rule_id}", READER, params={"rule_id": "@metering_rule"}))
    add(Row(n, "DELETE", "/v2.0/metering/metering-label-rules/{rule_id}", MANAGER, fresh="metering_rule"))
    add(Row(n, "GET", "/v2.0/network-ip-availabilities", ADMIN))
    add(Row(n, "GET", "/v2.0/network-ip-availabilities/{network_id}", ADMIN, params={"network_id": "@network"}))
    add(Row(n, "GET", "/v2.0/availability_zones", OWN_READER))
    add(Row(n, "GET", "/v2.0/service-providers", OWN_READER))
    add(Row(n, "GET", "/v2.0/agents", ANYONE))  # others are shown an empty list, as Neutron shows it
    agent = {"agent_id": bogus}
    for method in ("GET", "PUT", "DELETE"):
        add(Row(n, method, "/v2.0/agents/{agent_id}", ADMIN, {"agent": {"description": "d"}} if method == "PUT"
                else None, agent))
    add(Row(n, "GET", "/v2.0/agents/{agent_id}/dhcp-networks", ADMIN, params=agent))
    add(Row(n, "POST", "/v2.0/agents/{agent_id}/dhcp-networks", ADMIN, {"network_id": "@network"}, agent))
    add(Row(n, "DELETE", "/v2.0/agents/{agent_id}/dhcp-networks/{network_id}", ADMIN,
            params={**agent, "network_id": "@network"}))
    add(Row(n, "GET", "/v2.0/networks/{network_id}/dhcp-agents", ADMIN, params={"network_id": "@network"}))
    add(Row(n, "GET", "/v2.0/agents/{agent_id}/l3-routers", ADMIN, params=agent))
    add(Row(n, "POST", "/v2.0/agents/{agent_id}/l3-routers", ADMIN, {"router_id": "@router"}, agent))
    add(Row(n, "DELETE", "/v2.0/agents/{agent_id}/l3-routers/{router_id}", ADMIN,
            params={**agent, "router_id": "@router"}))
    add(Row(n, "GET", "/v2.0/routers/{router_id}/l3-agents", ADMIN, params={"router_id": "@router"}))

    # -- image -------------------------------------------------------------------------------------
    img = {"image_id": "@image"}  # P's image, shared with Q (Q is a pending member)
    shared_reader = READER | {"other"}
    add(Row(i, "POST", "/v2/images", OWN_MEMBER, {"name": "{unique}"}))
    add(Row(i, "GET", "/v2/images", OWN_READER))
    add(Row(i, "GET", "/v2/images/{image_id}", shared_reader, params=img))
    add(Row(i, "PATCH", "/v2/images/{image_id}", MEMBER, [{"op": "replace", "path": "/name", "value": "x"}], img,
            content_type="application/openstack-images-v2.1-json-patch"))
    add(Row(i, "DELETE", "/v2/images/{image_id}", MEMBER, fresh="image"))
    for action in ("deactivate", "reactivate"):  # on an active image of P's
        add(Row(i, "POST", "/v2/images/{image_id}/actions/{action}", MEMBER,
                params={"image_id": "@active_image", "action": action}))
    add(Row(i, "PUT", "/v2/images/{image_id}/tags/{tag}", MEMBER, params={**img, "tag": "t"}))
    add(Row(i, "DELETE", "/v2/images/{image_id}/tags/{tag}", MEMBER, params={**img, "tag": "nope"}))
    add(Row(i, "PUT", "/v2/images/{image_id}/file", MEMBER, b"\0" * 512, img, content_type="application/octet-stream"))
    add(Row(i, "PUT", "/v2/images/{image_id}/stage", MEMBER, b"\0" * 512, img,
            content_type="application/octet-stream"))
    add(Row(i, "GET", "/v2/images/{image_id}/file", MEMBER | {"other"}, params=img))
    add(Row(i, "POST", "/v2/images/{image_id}/import", MEMBER, {"method": {"name": "glance-direct"}}, img))
    add(Row(i, "GET", "/v2/images/{image_id}/tasks", shared_reader, params=img))
    add(Row(i, "POST", "/v2/tasks", ADMIN, {"type": "import", "input": {"import_from": "http://example.com/x"}}))
    add(Row(i, "GET", "/v2/tasks/{task_id}", ADMIN, params={"task_id": bogus}))
    add(Row(i, "GET", "/v2/tasks", ADMIN))
    # a store that does not hold P's active image: an admin's 404, the rest denied
    add(Row(i, "DELETE", "/v2/stores/{store_id}/{image_id}", ADMIN,
            params={"image_id": "@active_image", "store_id": "second"}))
    add(Row(i, "GET", "/v2/info/stores/detail", ADMIN))
    add(Row(i, "GET", "/v2/cache", ADMIN))
    add(Row(i, "PUT", "/v2/cache/{image_id}", ADMIN, params=img))  # queued: an admin's 400
    add(Row(i, "DELETE", "/v2/cache/{image_id}", ADMIN, params=img))
    add(Row(i, "DELETE", "/v2/cache", ADMIN))
    add(Row(i, "POST", "/v2/images/{image_id}/members", MEMBER, {"member": "@Q"}, img))
    add(Row(i, "GET", "/v2/images/{image_id}/members", shared_reader, params=img))
    members = {**img, "member_id": "@Q"}
    add(Row(i, "GET", "/v2/images/{image_id}/members/{member_id}", shared_reader, params=members))
    add(Row(i, "PUT", "/v2/images/{image_id}/members/{member_id}", frozenset({"admin", "other"}),
            {"status": "pending"}, members))
    add(Row(i, "DELETE", "/v2/images/{image_id}/members/{member_id}", MEMBER, params={**img, "member_id": bogus}))
    add(Row(i, "GET", "/v2/schemas/{name:path}", ANYONE, params={"name": "image"}))
    add(Row(i, "GET", "/v2/info/import", ANYONE))
    add(Row(i, "GET", "/v2/info/stores", ANYONE))
    add(Row(i, "GET", "/v2/info/usage", OWN_READER))
    ns_base = "/v2/metadefs/namespaces"
    ns = {"namespace": "@namespace"}
    public_reader = READER | {"other"}  # the admin's public namespace: every project's reader sees it
    add(Row(i, "POST", ns_base, ADMIN, {"namespace": "{unique}"}))
    add(Row(i, "GET", ns_base, OWN_READER))
    add(Row(i, "GET", ns_base + "/{namespace}", public_reader, params=ns))
    add(Row(i, "PUT", ns_base + "/{namespace}", ADMIN, {"namespace": "@namespace", "visibility": "public"}, ns))
    add(Row(i, "DELETE", ns_base + "/{namespace}", ADMIN, fresh="namespace"))
    for sub, body in (("objects", {"name": "{unique}"}), ("properties", {"name": "{unique}", "type": "string",
                                                                        "title": "t"})):
        add(Row(i, "GET", f"{ns_base}/{{namespace}}/{sub}", public_reader, params=ns))
        add(Row(i, "POST", f"{ns_base}/{{namespace}}/{sub}", ADMIN, body, ns))
        one = {**ns, "name": "nothing"}
        add(Row(i, "GET", f"{ns_base}/{{namespace}}/{sub}/{{name}}", public_reader, params=one))
        add(Row(i, "PUT", f"{ns_base}/{{namespace}}/{sub}/{{name}}", ADMIN, body, one))
        add(Row(i, "DELETE", f"{ns_base}/{{namespace}}/{sub}/{{name}}", ADMIN, params=one))
    add(Row(i, "GET", ns_base + "/{namespace}/tags", public_reader, params=ns))
    add(Row(i, "POST", ns_base + "/{namespace}/tags", ADMIN, {"tags": [{"name": "{unique}"}]}, ns))
    add(Row(i, "DELETE", ns_base + "/{namespace}/tags", ADMIN, params=ns))
    tag = {**ns, "name": "t1"}
    add(Row(i, "GET", ns_base + "/{namespace}/tags/{name}", public_reader, params=tag))
    add(Row(i, "POST", ns_base + "/{namespace}/tags/{name}", ADMIN, params=tag))
    add(Row(i, "PUT", ns_base + "/{namespace}/tags/{name}", ADMIN, {"name": "t1"}, tag))
    add(Row(i, "DELETE", ns_base + "/{namespace}/tags/{name}", ADMIN, params=tag))
    add(Row(i, "GET", "/v2/metadefs/resource_types", OWN_READER))
    add(Row(i, "GET", ns_base + "/{namespace}/resource_types", public_reader, params=ns))
    add(Row(i, "POST", ns_base + "/{namespace}/resource_types", ADMIN, {"name": "OS::Glance::Image"}, ns))
    add(Row(i, "DELETE", ns_base + "/{namespace}/resource_types/{name}", ADMIN,
            params={**ns, "name": "OS::Nova::Flavor"}))

    # -- placement (the admin's and the services') ------------------------------------------------
    rp = {"uuid": bogus}
    add(Row(p, "POST", "/resource_providers", ADMIN, {"name": "{unique}"}))
    add(Row(p, "GET", "/resource_providers", ADMIN))
    add(Row(p, "GET", "/resource_providers/{uuid}", ADMIN, params=rp))
    add(Row(p, "PUT", "/resource_providers/{uuid}", ADMIN, {"name": "{unique}"}, rp))
    add(Row(p, "DELETE", "/resource_providers/{uuid}", ADMIN, params=rp))
    inv = {"resource_provider_generation": 0, "inventories": {"DISK_GB": {"total": 10}}}
    add(Row(p, "GET", "/resource_providers/{uuid}/inventories", ADMIN, params=rp))
    add(Row(p, "PUT", "/resource_providers/{uuid}/inventories", ADMIN, inv, rp))
    add(Row(p, "POST", "/resource_providers/{uuid}/inventories", ADMIN,
            {"resource_class": "DISK_GB", "total": 10}, rp))
    add(Row(p, "DELETE", "/resource_providers/{uuid}/inventories", ADMIN, params=rp))
    one_inv = {**rp, "rc": "DISK_GB"}
    add(Row(p, "GET", "/resource_providers/{uuid}/inventories/{rc}", ADMIN, params=one_inv))
    add(Row(p, "PUT", "/resource_providers/{uuid}/inventories/{rc}", ADMIN,
            {"resource_provider_generation": 0, "total": 10}, one_inv))
    add(Row(p, "DELETE", "/resource_providers/{uuid}/inventories/{rc}", ADMIN, params=one_inv))
    add(Row(p, "GET", "/resource_providers/{uuid}/traits", ADMIN, params=rp))
    add(Row(p, "PUT", "/resource_providers/{uuid}/traits", ADMIN,
            {"resource_provider_generation": 0, "traits": []}, rp))
    add(Row(p, "DELETE", "/resource_providers/{uuid}/traits", ADMIN, params=rp))
    add(Row(p, "GET", "/resource_providers/{uuid}/aggregates", ADMIN, params=rp))
    add(Row(p, "PUT", "/resource_providers/{uuid}/aggregates", ADMIN,
            {"resource_provider_generation": 0, "aggregates": []}, rp))
    add(Row(p, "GET", "/resource_providers/{uuid}/usages", ADMIN, params=rp))
    add(Row(p, "GET", "/resource_providers/{uuid}/allocations", ADMIN, params=rp))
    add(Row(p, "GET", "/usages", READER, query="project_id={P}"))
    consumer = {"consumer": bogus}
    add(Row(p, "GET", "/allocations/{consumer}", ADMIN, params=consumer))
    add(Row(p, "PUT", "/allocations/{consumer}", ADMIN, {"allocations": {}, "project_id": "@P", "user_id": "u",
                                                         "consumer_generation": None, "consumer_type": "INSTANCE"},
            consumer))
    add(Row(p, "DELETE", "/allocations/{consumer}", ADMIN, params=consumer))
    add(Row(p, "POST", "/allocations", ADMIN, {}))
    add(Row(p, "GET", "/allocation_candidates", ADMIN, query="resources=VCPU:1"))
    add(Row(p, "GET", "/resource_classes", ADMIN))
    add(Row(p, "POST", "/resource_classes", ADMIN, {"name": "CUSTOM_POLICY_MATRIX_POST"}))
    rc = {"name": "CUSTOM_POLICY_MATRIX"}
    add(Row(p, "GET", "/resource_classes/{name}", ADMIN, params=rc))
    add(Row(p, "PUT", "/resource_classes/{name}", ADMIN, params=rc))
    add(Row(p, "DELETE", "/resource_classes/{name}", ADMIN, params={"name": "CUSTOM_NOT_THERE"}))
    add(Row(p, "GET", "/traits", ADMIN))
    trait = {"name": "CUSTOM_POLICY_MATRIX"}
    add(Row(p, "GET", "/traits/{name}", ADMIN, params=trait))
    add(Row(p, "PUT", "/traits/{name}", ADMIN, params=trait))
    add(Row(p, "DELETE", "/traits/{name}", ADMIN, params={"name": "CUSTOM_NOT_THERE"}))
    volume_rows(add)
    volume_qos_rows(add)
    volume_transfer_rows(add)
    volume_group_rows(add)
    network_qos_trunk_rows(add)
    return r


def volume_rows(add: Callable[[Row], None]) -> None:
    """Block storage: each route twice, under /v3/{project_id} and under /v3 (3.67); the project in
    the path is P's for every persona (the token's project is what counts, as in Cinder)."""
    b = "block-storage"
    for prefix in ("/v3/{project_id}", "/v3"):
        pid = {"project_id": "@P"} if "{project_id}" in prefix else {}
        vol = {**pid, "volume_id": "@volume"}
        add(Row(b, "GET", f"{prefix}/volumes", OWN_READER, params=pid))
        add(Row(b, "GET", f"{prefix}/volumes/detail", OWN_READER, params=pid))
        add(Row(b, "POST", f"{prefix}/volumes", OWN_MEMBER, {"volume": {"size": 1, "name": "{unique}"}}, pid))
        add(Row(b, "GET", f"{prefix}/volumes/{{volume_id}}", READER, params=vol))
        add(Row(b, "PUT", f"{prefix}/volumes/{{volume_id}}", MEMBER, {"volume": {"name": "{unique}"}}, vol))
        add(Row(b, "DELETE", f"{prefix}/volumes/{{volume_id}}", MEMBER, params=pid, fresh="volume"))
        for action, arg in (("os-set_bootable", {"bootable": False}), ("os-update_readonly_flag", {"readonly": False})):
            add(Row(b, "POST", f"{prefix}/volumes/{{volume_id}}/action", MEMBER, {action: arg}, vol))
        add(Row(b, "POST", f"{prefix}/volumes/{{volume_id}}/metadata", MEMBER, {"metadata": {"k": "v"}}, vol))
        add(Row(b, "GET", f"{prefix}/volumes/{{volume_id}}/metadata", READER, params=vol))
        add(Row(b, "PUT", f"{prefix}/volumes/{{volume_id}}/metadata", MEMBER, {"metadata": {"k": "v"}}, vol))
        add(Row(b, "GET", f"{prefix}/volumes/{{volume_id}}/metadata/{{key}}", READER, params={**vol, "key": "k"}))
        add(Row(b, "PUT", f"{prefix}/volumes/{{volume_id}}/metadata/{{key}}", MEMBER, {"meta": {"k": "w"}},
                {**vol, "key": "k"}))
        add(Row(b, "DELETE", f"{prefix}/volumes/{{volume_id}}/metadata/{{key}}", MEMBER,
                params={**vol, "key": "nokey"}))
        vtype = {**pid, "type_id": "@volume_type"}
        add(Row(b, "GET", f"{prefix}/types", ANYONE, params=pid))
        add(Row(b, "POST", f"{prefix}/types", ADMIN, {"volume_type": {"name": "{unique}"}}, pid))
        add(Row(b, "GET", f"{prefix}/types/{{type_id}}", ANYONE, params=vtype))
        add(Row(b, "PUT", f"{prefix}/types/{{type_id}}", ADMIN, {"volume_type": {"description": "d"}}, vtype))
        add(Row(b, "DELETE", f"{prefix}/types/{{type_id}}", ADMIN, params={**pid, "type_id": str(uuid.uuid4())}))
        add(Row(b, "GET", f"{prefix}/types/{{type_id}}/extra_specs", ANYONE, params=vtype))
        add(Row(b, "POST", f"{prefix}/types/{{type_id}}/extra_specs", ADMIN, {"extra_specs": {"k": "v"}}, vtype))
        add(Row(b, "GET", f"{prefix}/types/{{type_id}}/extra_specs/{{key}}", ANYONE, params={**vtype, "key": "k"}))
        add(Row(b, "PUT", f"{prefix}/types/{{type_id}}/extra_specs/{{key}}", ADMIN, {"k": "w"},
                {**vtype, "key": "k"}))
        add(Row(b, "DELETE", f"{prefix}/types/{{type_id}}/extra_specs/{{key}}", ADMIN,
                params={**vtype, "key": "nokey"}))
        snap = {**pid, "snapshot_id": "@volume_snapshot"}
        add(Row(b, "GET", f"{prefix}/snapshots", OWN_READER, params=pid))
        add(Row(b, "GET", f"{prefix}/snapshots/detail", OWN_READER, params=pid))
        add(Row(b, "POST", f"{prefix}/snapshots", OWN_MEMBER, {"snapshot": {"volume_id": "@volume"}}, pid,
                hides=True))
        add(Row(b, "GET", f"{prefix}/snapshots/{{snapshot_id}}", READER, params=snap))
        add(Row(b, "PUT", f"{prefix}/snapshots/{{snapshot_id}}", MEMBER, {"snapshot": {"name": "{unique}"}}, snap))
        add(Row(b, "DELETE", f"{prefix}/snapshots/{{snapshot_id}}", MEMBER, params=pid, fresh="volume_snapshot"))
        add(Row(b, "POST", f"{prefix}/snapshots/{{snapshot_id}}/metadata", MEMBER, {"metadata": {"k": "v"}}, snap))
        add(Row(b, "GET", f"{prefix}/snapshots/{{snapshot_id}}/metadata", READER, params=snap))
        add(Row(b, "PUT", f"{prefix}/snapshots/{{snapshot_id}}/metadata", MEMBER, {"metadata": {"k": "v"}}, snap))
        add(Row(b, "GET", f"{prefix}/snapshots/{{snapshot_id}}/metadata/{{key}}", READER,
                params={**snap, "key": "k"}))
        add(Row(b, "PUT", f"{prefix}/snapshots/{{snapshot_id}}/metadata/{{key}}", MEMBER, {"meta": {"k": "w"}},
                {**snap, "key": "k"}))
        add(Row(b, "DELETE", f"{prefix}/snapshots/{{snapshot_id}}/metadata/{{key}}", MEMBER,
                params={**snap, "key": "nokey"}))
        quota = {**pid, "target": "@P"}
        add(Row(b, "GET", f"{prefix}/os-quota-sets/{{target}}", READER, params=quota))
        add(Row(b, "GET", f"{prefix}/os-quota-sets/{{target}}/defaults", READER, params=quota))
        add(Row(b, "PUT", f"{prefix}/os-quota-sets/{{target}}", ADMIN,
                {"quota_set": {"volumes": 100, "snapshots": 100}}, quota))
        add(Row(b, "DELETE", f"{prefix}/os-quota-sets/{{target}}", ADMIN, params={**pid, "target": "@Q"}))
        qclass = {**pid, "class_name": "default"}
        add(Row(b, "GET", f"{prefix}/os-quota-class-sets/{{class_name}}", ADMIN, params=qclass))
        add(Row(b, "PUT", f"{prefix}/os-quota-class-sets/{{class_name}}", ADMIN,
                {"quota_class_set": {"groups": 10}}, qclass))
        add(Row(b, "GET", f"{prefix}/os-hosts", ADMIN, params=pid))
        add(Row(b, "GET", f"{prefix}/os-hosts/{{host_name}}", ADMIN, params={**pid, "host_name": "nonesuch@file"}))
        add(Row(b, "GET", f"{prefix}/volumes/summary", OWN_READER, params=pid, version="volume 3.12"))
        # the legacy attach actions, on a multiattach volume of their own (a 400 for its state is
        # still an allowed answer: the rule is checked first)
        legacy = {**pid, "volume_id": "@legacy_volume"}
        connector = {"connector": {"host": "matrix-node"}}
        for action, arg, who in (
                ("os-reserve", None, MEMBER), ("os-unreserve", None, MEMBER),
                ("os-attach", {"instance_uuid": str(uuid.uuid4()), "mountpoint": "/dev/vdb"}, MEMBER),
                ("os-begin_detaching", None, MEMBER), ("os-roll_detaching", None, MEMBER),
                ("os-initialize_connection", connector, MEMBER), ("os-terminate_connection", connector, MEMBER),
                ("os-detach", {}, MEMBER), ("os-force_detach", {}, ADMIN)):
            add(Row(b, "POST", f"{prefix}/volumes/{{volume_id}}/action", who, {action: arg}, legacy))
        # attachments (3.27, os-complete 3.44)
        att, v344 = {**pid, "attachment_id": "@attachment"}, "volume 3.44"
        add(Row(b, "GET", f"{prefix}/attachments", OWN_READER, params=pid, version=v344))
        add(Row(b, "GET", f"{prefix}/attachments/detail", OWN_READER, params=pid, version=v344))
        add(Row(b, "POST", f"{prefix}/attachments", MEMBER, {"attachment": {
            "volume_uuid": "@attach_volume", "instance_uuid": str(uuid.uuid4())}}, pid, version=v344, hides=True))
        add(Row(b, "GET", f"{prefix}/attachments/{{attachment_id}}", READER, params=att, version=v344))
        add(Row(b, "PUT", f"{prefix}/attachments/{{attachment_id}}", MEMBER,
                {"attachment": {"connector": {"host": "matrix-node"}}}, att, version=v344))
        add(Row(b, "POST", f"{prefix}/attachments/{{attachment_id}}/action", MEMBER, {"os-complete": None}, att,
                version=v344))
        add(Row(b, "DELETE", f"{prefix}/attachments/{{attachment_id}}", MEMBER, params=pid, fresh="attachment",
                version=v344))
        # extend, upload, image metadata and the admin's actions, on a volume of their own (a 400 for
        # its state is still an allowed answer: the rule is checked first)
        acted = {**pid, "volume_id": "@action_volume"}
        for action, arg, who in (
                ("os-extend", {"new_size": 2}, MEMBER),
                ("os-volume_upload_image", {"image_name": "{unique}", "disk_format": "qcow2"}, MEMBER),
                ("os-set_image_metadata", {"metadata": {"k": "v"}}, MEMBER),
                ("os-unset_image_metadata", {"key": "k"}, MEMBER), ("os-show_image_metadata", None, READER),
                ("os-reset_status", {"status": "available"}, ADMIN)):
            add(Row(b, "POST", f"{prefix}/volumes/{{volume_id}}/action", who, {action: arg}, acted))
        add(Row(b, "POST", f"{prefix}/volumes/{{volume_id}}/action", ADMIN, {"os-force_delete": {}}, pid,
                fresh="volume"))
        add(Row(b, "POST", f"{prefix}/snapshots/{{snapshot_id}}/action", ADMIN,
                {"os-reset_status": {"status": "available"}}, snap))
        add(Row(b, "POST", f"{prefix}/snapshots/{{snapshot_id}}/action", ADMIN, {"os-force_delete": {}}, pid,
                fresh="volume_snapshot"))
        add(Row(b, "POST", f"{prefix}/snapshots/{{snapshot_id}}/action", MEMBER,
                {"os-update_snapshot_status": {"status": "available"}}, snap))
        # the cloud's services and pools (an admin's), the user messages (3.3)
        add(Row(b, "GET", f"{prefix}/os-services", ADMIN, params=pid))
        add(Row(b, "PUT", f"{prefix}/os-services/{{action}}", ADMIN, {"host": "no-such-host@file",
                                                                  "binary": "cinder-volume"},
                {**pid, "action": "enable"}))
        add(Row(b, "GET", f"{prefix}/scheduler-stats/get_pools", ADMIN, params=pid))
        add(Row(b, "GET", f"{prefix}/capabilities/{{host_name}}", ADMIN, params={**pid, "host_name": "nonesuch@file"}))
        enc = {**pid, "type_id": "nonesuch", "encryption_id": "nonesuch"}  # an admin's 404, the rest's 403
        add(Row(b, "GET", f"{prefix}/types/{{type_id}}/encryption", ADMIN, params=enc))
        add(Row(b, "GET", f"{prefix}/types/{{type_id}}/encryption/{{key}}", ADMIN, params={**enc, "key": "cipher"}))
        add(Row(b, "POST", f"{prefix}/types/{{type_id}}/encryption", ADMIN, {"encryption": {"provider": "p"}}, enc))
        add(Row(b, "PUT", f"{prefix}/types/{{type_id}}/encryption/{{encryption_id}}", ADMIN,
                {"encryption": {"cipher": "x"}}, enc))
        add(Row(b, "DELETE", f"{prefix}/types/{{type_id}}/encryption/{{encryption_id}}", ADMIN, params=enc))
        v33 = "volume 3.3"
        add(Row(b, "GET", f"{prefix}/messages", OWN_READER, params=pid, version=v33))
        add(Row(b, "GET", f"{prefix}/messages/{{message_id}}", READER, params={**pid, "message_id": "@message"},
                version=v33))
        add(Row(b, "DELETE", f"{prefix}/messages/{{message_id}}", MEMBER, params=pid, fresh="message", version=v33))
        # backups: made from a volume of their own; a 400 for a busy backup or volume is still allowed
        bk = {**pid, "backup_id": "@volume_backup"}
        add(Row(b, "GET", f"{prefix}/backups", OWN_READER, params=pid))
        add(Row(b, "GET", f"{prefix}/backups/detail", OWN_READER, params=pid))
        add(Row(b, "POST", f"{prefix}/backups", OWN_MEMBER, {"backup": {"volume_id": "@backup_volume"}}, pid,
                hides=True))
        add(Row(b, "GET", f"{prefix}/backups/{{backup_id}}", READER, params=bk))
        add(Row(b, "PUT", f"{prefix}/backups/{{backup_id}}", MEMBER, {"backup": {"name": "{unique}"}}, bk,
                version="volume 3.9"))
        add(Row(b, "DELETE", f"{prefix}/backups/{{backup_id}}", MEMBER, params=pid, fresh="volume_backup"))
        add(Row(b, "POST", f"{prefix}/backups/{{backup_id}}/restore", MEMBER, {"restore": {}}, bk))
        add(Row(b, "POST", f"{prefix}/backups/{{backup_id}}/action", ADMIN, {"os-reset_status": {
            "status": "available"}}, bk))
        add(Row(b, "POST", f"{prefix}/backups/{{backup_id}}/action", ADMIN, {"os-force_delete": {}}, pid,
                fresh="volume_backup"))
        add(Row(b, "GET", f"{prefix}/backups/{{backup_id}}/export_record", ADMIN, params=bk))
        add(Row(b, "POST", f"{prefix}/backups/import_record", ADMIN, {"backup-record": {
            "backup_service": "none", "backup_url": "none"}}, pid))
        add(Row(b, "GET", f"{prefix}/limits", OWN_READER, params=pid))
        add(Row(b, "GET", f"{prefix}/os-availability-zone", ANYONE, params=pid))
        add(Row(b, "GET", f"{prefix}/extensions", ANYONE, params=pid))


def served_routes() -> set[tuple[str, str, str]]:
    """(service, method, template) of every authenticated route the four routers serve, read from
    each service's build_app with the app factory stubbed out."""
    from cumulo.compute import api as compute_api
    from cumulo.core.config import Config
    from cumulo.image import api as image_api
    from cumulo.network import api as network_api
    from cumulo.placement import api as placement_api
    from cumulo.volume import api as volume_api

    captured: dict[str, Any] = {}

    def capture(service: str, router: Any, *args: Any, **kw: Any) -> Any:
        captured[service] = router
        return lambda scope, receive, send: None

    svc = mock.MagicMock(cfg=Config())
    identity = SimpleNamespace(cfg=Config())
    modules = (compute_api, network_api, image_api, placement_api, volume_api)
    with mock.patch.multiple(compute_api, create_app=capture), mock.patch.multiple(network_api, create_app=capture), \
            mock.patch.multiple(image_api, create_app=capture), \
            mock.patch.multiple(placement_api, create_app=capture), mock.patch.multiple(volume_api, create_app=capture):
        compute_api.build_app(svc, identity, 1, mock.MagicMock(), mock.MagicMock())
        for module in modules[1:]:
            module.build_app(svc, identity, 1)
    return {(service, method, ep.path) for service, router in captured.items() for ep in router.endpoints
            if ep.auth for method in ep.methods if method != "HEAD"}


# -- the cloud and its personas -------------------------------------------------------------------
class Persona:
    def __init__(self, name: str, token: str, project_id: str | None, user_id: str) -> None:
        self.name, self.token, self.project_id, self.user_id = name, token, project_id, user_id


class World:
    """The cloud, the personas' tokens and the resources the paths need."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.base = {"compute": cloud.compute_url.rsplit("/v2.1", 1)[0], "network": cloud.network_url[:-5],
                     "image": cloud.image_url, "placement": cloud.placement_url,
                     "block-storage": cloud.volume_url[:-len("/v3")]}
        self.http = httpx.Client(timeout=60)
        self.admin_token, body = cloud.token()
        self.refs: dict[str, str] = {}
        self.counter = 0
        self.policy_file: Any = None
        self.personas: dict[str, Persona] = {
            "admin": Persona("admin", self.admin_token, body["project"]["id"], body["user"]["id"])}

    # identity set-up
    def v3(self, method: str, path: str, body: Any = None) -> Any:
        r = self.http.request(method, f"{self.cloud.url}{path}", json=body, headers={"X-Auth-Token": self.admin_token})
        assert r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json() if r.content else None

    def make_personas(self) -> None:
        roles = {x["name"]: x["id"] for x in self.v3("GET", "/roles")["roles"]}
        projects = {}
        for key in ("P", "Q"):
            projects[key] = self.v3("POST", "/projects", {"project": {"name": unique(f"matrix-{key}"),
                                                                      "domain_id": "default"}})["project"]
            self.refs[key] = projects[key]["id"]
        for name, project, role in (("member", "P", "member"), ("reader", "P", "reader"),
                                    ("manager", "P", "manager"), ("other", "Q", "member"), ("norole", None, None)):
            user_name, password = unique(f"matrix-{name}"), uuid.uuid4().hex
            user = self.v3("POST", "/users", {"user": {"name": user_name, "password": password,
                                                       "domain_id": "default"}})["user"]
            if project is not None:
                self.v3("PUT", f"/projects/{projects[project]['id']}/users/{user['id']}/roles/{roles[role]}")
            token, _ = self.cloud.token(user_name, password, projects[project]["name"] if project else None)
            self.personas[name] = Persona(name, token, projects[project]["id"] if project else None, user["id"])

    # plain calls
    def call(self, persona: str, service: str, method: str, path: str, body: Any = None, version: str = "",
             content_type: str = "") -> httpx.Response:
        headers = {"X-Auth-Token": self.personas[persona].token}
        version = version or VERSIONS.get(service, "")
        if version:
            headers["OpenStack-API-Version"] = version
        if isinstance(body, bytes):
            headers["Content-Type"] = content_type or "application/octet-stream"
            return self.http.request(method, self.base[service] + path, content=body, headers=headers)
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
            import json

            return self.http.request(method, self.base[service] + path, content=json.dumps(body), headers=headers)
        return self.http.request(method, self.base[service] + path, headers=headers)

    def ok(self, persona: str, service: str, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        r = self.call(persona, service, method, path, body, **kw)
        assert r.status_code < 300, (persona, method, path, r.status_code, r.text)
        return r.json() if r.content else None

    # the resources
    def make(self, kind: str) -> str:
        """A new resource of ``kind`` in P (by P's member, or the admin where only an admin makes it)."""
        self.counter += 1
        octet = f"{1 + self.counter // 250}.{self.counter % 250}"
        m = "member"
        if kind.startswith("group"):
            return self.make_group_resource(kind)
        if kind.startswith("transfer"):
            return self.make_transfer_resource(kind)
        if kind.startswith(("qos_", "trunk")):
            return make_qos_trunk_resource(self, kind)
        if kind == "server":
            body = {"server": {"name": unique("matrix"), "flavorRef": "10", "imageRef": self.refs["image_public"],
                               "networks": "none"}}
            sid = self.ok(m, "compute", "POST", "/v2.1/servers", body)["server"]["id"]
            wait_for(lambda: self.ok(m, "compute", "GET", f"/v2.1/servers/{sid}")["server"]["status"] == "ACTIVE",
                     30, f"server {sid} ACTIVE")
            return str(sid)
        if kind in ("volume", "action_volume", "backup_volume"):
            vid = self.ok(m, "block-storage", "POST", "/v3/volumes", {"volume": {"size": 1, "name": unique("m")}})[
                "volume"]["id"]
            wait_for(lambda: self.ok(m, "block-storage", "GET", f"/v3/volumes/{vid}")["volume"]["status"] ==
                     "available", 30, f"volume {vid} available")
            return str(vid)
        if kind in ("attach_volume", "legacy_volume", "server_volume"):
            vid = self.ok(m, "block-storage", "POST", "/v3/volumes", {"volume": {
                "size": 1, "name": unique("m"), "multiattach": True}})["volume"]["id"]
            wait_for(lambda: self.ok(m, "block-storage", "GET", f"/v3/volumes/{vid}")["volume"]["status"] ==
                     "available", 30, f"volume {vid} available")
            return str(vid)
        if kind == "volume_backup":  # from its own volume, once that is free again (a row may be backing it up)
            source = self.refs["backup_volume"]
            wait_for(lambda: self.ok(m, "block-storage", "GET", f"/v3/volumes/{source}")["volume"]["status"] ==
                     "available", 30, f"volume {source} available")
            bid = self.ok(m, "block-storage", "POST", "/v3/backups", {"backup": {"volume_id": source}})["backup"]["id"]
            wait_for(lambda: self.ok(m, "block-storage", "GET", f"/v3/backups/{bid}")["backup"]["status"] ==
                     "available", 30, f"backup {bid} available")
            return str(bid)
        if kind == "attachment":
            return str(self.ok(m, "block-storage", "POST", "/v3/attachments", {"attachment": {
                "volume_uuid": self.refs["attach_volume"], "instance_uuid": str(uuid.uuid4())}},
                version="volume 3.44")["attachment"]["id"])
        if kind == "volume_snapshot":
            sid = self.ok(m, "block-storage", "POST", "/v3/snapshots", {"snapshot": {
                "volume_id": self.refs["volume"]}})["snapshot"]["id"]
            wait_for(lambda: self.ok(m, "block-storage", "GET", f"/v3/snapshots/{sid}")["snapshot"]["status"] ==
                     "available", 30, f"snapshot {sid} available")
            return str(sid)
        if kind == "message":  # a volume no pool has room for fails, and a message says why
            vid = self.ok(m, "block-storage", "POST", "/v3/volumes", {"volume": {"size": 900000, "name": unique("m")}})[
                "volume"]["id"]
            found = [x["id"] for x in self.ok(m, "block-storage", "GET", "/v3/messages", version="volume 3.3")[
                "messages"] if x["resource_uuid"] == vid]
            assert found, f"no user message for volume {vid}"
            return str(found[0])
        if kind == "volume_type":
            return str(self.ok("admin", "block-storage", "POST", "/v3/types", {"volume_type": {
                "name": unique("m"), "extra_specs": {"k": "v"}}})["volume_type"]["id"])
        if kind == "server_group":
            return str(self.ok(m, "compute", "POST", "/v2.1/os-server-groups", {"server_group": {
                "name": unique("matrix"), "policies": ["affinity"]}})["server_group"]["id"])
        if kind == "network":
            return str(self.ok(m, "network", "POST", "/v2.0/networks", {"network": {"name": unique("m")}})
                       ["network"]["id"])
        if kind == "subnet":
            return str(self.ok(m, "network", "POST", "/v2.0/subnets", {"subnet": {
                "network_id": self.refs["network"], "ip_version": 4, "cidr": f"10.{octet}.0/24"}})["subnet"]["id"])
        if kind == "port":
            return str(self.ok(m, "network", "POST", "/v2.0/ports", {"port": {"network_id": self.refs["network"]}})
                       ["port"]["id"])
        if kind == "router":
            return str(self.ok(m, "network", "POST", "/v2.0/routers", {"router": {"name": unique("m")}})
                       ["router"]["id"])
        if kind == "sg":
            return str(self.ok(m, "network", "POST", "/v2.0/security-groups", {"security_group": {
                "name": unique("m")}})["security_group"]["id"])
        if kind == "sg_rule":
            return str(self.ok(m, "network", "POST", "/v2.0/security-group-rules", {"security_group_rule": {
                "security_group_id": self.refs["sg"], "direction": "ingress", "protocol": "udp",
                "port_range_min": 1000 + self.counter, "port_range_max": 1000 + self.counter}})
                ["security_group_rule"]["id"])
        if kind == "subnetpool":
            return str(self.ok(m, "network", "POST", "/v2.0/subnetpools", {"subnetpool": {
                "name": unique("m"), "prefixes": [f"172.{16 + self.counter // 250 % 16}.{self.counter % 250}.0/24"]}})
                ["subnetpool"]["id"])
        if kind == "fip":
            return str(self.ok(m, "network", "POST", "/v2.0/floatingips", {"floatingip": {
                "floating_network_id": self.refs["external"]}})["floatingip"]["id"])
        if kind == "rbac":
            return str(self.ok(m, "network", "POST", "/v2.0/rbac-policies", {"rbac_policy": {
                "object_type": "network", "object_id": self.refs["network"], "action": "access_as_shared",
                "target_tenant": unique("nobody")}})["rbac_policy"]["id"])
        if kind == "address_scope":
            return str(self.ok(m, "network", "POST", "/v2.0/address-scopes", {"address_scope": {
                "name": unique("m"), "ip_version": 4}})["address_scope"]["id"])
        if kind == "metering_label":
            return str(self.ok("manager", "network", "POST", "/v2.0/metering/metering-labels", {"metering_label": {
                "name": unique("m")}})["metering_label"]["id"])
        if kind == "metering_rule":
            return str(self.ok("manager", "network", "POST", "/v2.0/metering/metering-label-rules", {
                "metering_label_rule": {"metering_label_id": self.refs["metering_label"], "direction": "ingress",
                                        "remote_ip_prefix": f"10.{octet}.0/24"}})["metering_label_rule"]["id"])
        if kind == "image":
            return str(self.ok(m, "image", "POST", "/v2/images", {"name": unique("m"), "visibility": "shared",
                                                                  "disk_format": "raw",
                                                                  "container_format": "bare"})["id"])
        if kind == "namespace":
            return str(self.ok("admin", "image", "POST", "/v2/metadefs/namespaces", {
                "namespace": unique("matrix"), "visibility": "public"})["namespace"])
        raise AssertionError(f"no maker for {kind}")

    def make_transfer_resource(self, kind: str) -> str:
        """A volume of P (``transfer_volume``), or a transfer of a new volume of P (``transfer``)."""
        b, m = "block-storage", "member"
        vid = self.ok(m, b, "POST", "/v3/volumes", {"volume": {"size": 1, "name": unique("m")}})["volume"]["id"]
        wait_for(lambda: self.ok(m, b, "GET", f"/v3/volumes/{vid}")["volume"]["status"] == "available", 30,
                 f"volume {vid} available")
        if kind == "transfer_volume":
            return str(vid)
        if kind == "transfer":
            return str(self.ok(m, b, "POST", "/v3/os-volume-transfer", {"transfer": {"volume_id": vid}})[
                "transfer"]["id"])
        raise AssertionError(f"no maker for {kind}")

    def make_group_resource(self, kind: str) -> str:
        """A group type (the admin's, public), a group of P, or a group snapshot of that group."""
        b, v = "block-storage", "volume 3.20"
        if kind == "group_type":
            return str(self.ok("admin", b, "POST", "/v3/group_types", {"group_type": {"name": unique("m")}},
                               version=v)["group_type"]["id"])
        if kind == "group":
            return str(self.ok("member", b, "POST", "/v3/groups", {"group": {
                "group_type": self.refs["group_type"], "volume_types": [self.refs["volume_type"]],
                "name": unique("m")}}, version=v)["group"]["id"])
        if kind == "group_snapshot":  # of an empty group: available at once
            return str(self.ok("member", b, "POST", "/v3/group_snapshots", {"group_snapshot": {
                "group_id": self.refs["group"]}}, version=v)["group_snapshot"]["id"])
        raise AssertionError(f"no maker for {kind}")

    def setup(self) -> None:
        self.make_personas()
        P = self.refs["P"]
        self.ok("admin", "compute", "PUT", f"/v2.1/os-quota-sets/{P}", {"quota_set": {
            "instances": 100, "cores": 200, "ram": 1 << 20}})
        images = self.ok("admin", "image", "GET", "/v2/images?name=cumulo-tiny")["images"]
        self.refs["image_public"] = images[0]["id"]
        self.refs["flavor"] = str(self.ok("admin", "compute", "POST", "/v2.1/flavors", {"flavor": {
            "name": unique("matrix"), "ram": 64, "vcpus": 1, "disk": 1}})["flavor"]["id"])
        self.ok("admin", "compute", "POST", f"/v2.1/flavors/{self.refs['flavor']}/os-extra_specs",
                {"extra_specs": {"k": "v"}})
        self.refs["private_flavor"] = str(self.ok("admin", "compute", "POST", "/v2.1/flavors", {"flavor": {
            "name": unique("matrix"), "ram": 64, "vcpus": 1, "disk": 1,
            "os-flavor-access:is_public": False}})["flavor"]["id"])
        ext = self.ok("admin", "network", "POST", "/v2.0/networks", {"network": {
            "name": unique("ext"), "router:external": True}})["network"]["id"]
        self.ok("admin", "network", "POST", "/v2.0/subnets", {"subnet": {"network_id": ext, "ip_version": 4,
                                                                         "cidr": "203.0.113.0/24"}})
        self.refs["external"] = ext
        for kind in ("server", "server_group", "network", "router", "sg", "subnetpool", "image", "namespace"):
            self.refs[kind] = self.make(kind)
        self.refs["action_server"] = self.make("server")
        for kind in ("subnet", "port", "sg_rule", "fip"):
            self.refs[kind] = self.make(kind)
        for kind in ("rbac", "address_scope", "metering_label", "metering_rule"):
            self.refs[kind] = self.make(kind)
        for kind in ("qos_policy", "trunk", "trunk_port"):
            self.refs[kind] = self.make(kind)
        self.ok("member", "image", "POST", f"/v2/images/{self.refs['image']}/members", {"member": self.refs["Q"]})
        self.ok("admin", "block-storage", "PUT", f"/v3/os-quota-sets/{P}", {"quota_set": {
            "volumes": 100, "snapshots": 100, "gigabytes": -1, "backups": 100, "backup_gigabytes": -1,
            "groups": 100}})
        for kind in ("volume", "volume_type", "volume_snapshot", "attach_volume", "legacy_volume", "attachment",
                     "server_volume", "action_volume", "message", "backup_volume", "volume_backup",
                     "group_type", "group", "group_snapshot", "transfer_volume", "transfer"):
            self.refs[kind] = self.make(kind)
        self.refs["volume_server"] = self.make("server")
        self.refs["active_image"] = self.make("image")
        self.ok("member", "image", "PUT", f"/v2/images/{self.refs['active_image']}/file", b"\0" * 512)

    # one row, one persona
    def fill(self, value: Any, persona: str) -> Any:
        if isinstance(value, str):
            if value.startswith("@"):
                return self.refs[value[1:]]
            self.counter += 1
            octet = f"{1 + self.counter // 250}.{self.counter % 250}"
            return (value.replace("{unique}", unique(f"pm-{persona}")).replace("{octet}", octet)
                    .replace("{port}", str(2000 + self.counter)).replace("{P}", self.refs["P"]))
        if isinstance(value, dict):
            out = {k: self.fill(v, persona) for k, v in value.items()}
            for key in ("from_port", "to_port", "port_range_min", "port_range_max"):
                if isinstance(out.get(key), str):
                    out[key] = int(out[key])
            return out
        if isinstance(value, list):
            return [self.fill(v, persona) for v in value]
        return value

    def path_of(self, row: Row, persona: str, fresh: str | None) -> str:
        def value(match: re.Match[str]) -> str:
            var = match.group(1).split(":")[0]
            if fresh is not None and var not in row.params:
                return fresh
            spec = row.params[var]
            return self.refs[spec[1:]] if spec.startswith("@") else spec
        path = re.sub(r"\{([^}]+)\}", value, row.path)
        return path + ("?" + self.fill(row.query, persona) if row.query else "")


def judge(row: Row, persona: str, status: int) -> str | None:
    """None when the answer is the documented one, else what is wrong."""
    if status >= 500:
        return f"{status} (a server error)"
    if isinstance(row.expect, int):
        return None if status == row.expect else f"{status}, expected {row.expect} for everyone"
    if persona in row.expect:
        return None if status not in (401, 403) else f"{status}, expected allowed"
    hidden = persona in ("other", "norole") and ("{" in row.path or row.hides)
    if status == 403 or (status == 404 and hidden):
        return None
    return f"{status}, expected denied (403{' or 404' if hidden else ''})"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("policy-matrix")
    policy_file = tmp / "policy.yaml"
    policy_file.write_text("{}\n")  # no overrides: the defaults rule (test_policy_file_overrides_... edits it)
    (tmp / "state").mkdir()
    cloud = start_cloud(tmp / "state", "sqlite", {"CUMULO_SERVICES": "identity,image,compute,placement,network,volume",
                                                  "CUMULO_POLICY__FILE": str(policy_file),
                                                  "CUMULO_IMAGE__STORES": "file,second"})
    try:
        w = World(cloud)
        w.policy_file = policy_file
        w.setup()
        yield w
    finally:
        stop_cloud(cloud)


def test_the_matrix_covers_every_route() -> None:
    table = {(r.service, r.method, r.path) for r in rows()}
    missing = sorted(served_routes() - table)
    unknown = sorted(table - served_routes())
    assert not missing, f"routes without a row in the policy matrix: {missing}"
    assert not unknown, f"rows for routes nobody serves: {unknown}"


def test_every_route_answers_each_persona_as_the_default_policy_says(world: World) -> None:
    mismatches: list[str] = []
    for row in rows():
        for persona in PERSONAS:
            fresh = None
            if row.fresh:
                # a resource to lose: made anew where the row expects success, the shared one otherwise
                expected = isinstance(row.expect, frozenset) and persona in row.expect
                fresh = world.make(row.fresh) if expected else world.refs[row.fresh]
            path = world.path_of(row, persona, fresh)
            body = world.fill(row.body, persona) if not isinstance(row.body, bytes) else row.body
            r = world.call(persona, row.service, row.method, path, body, row.version, row.content_type)
            wrong = judge(row, persona, r.status_code)
            if wrong:
                mismatches.append(f"{row.service} {row.method} {row.path} as {persona}: {wrong} "
                                  f"[{r.text[:160]}]")
            if row.method == "GET" and persona in ("admin", "reader", "norole"):  # HEAD asks what GET asks
                r = world.call(persona, row.service, "HEAD", path, None, row.version)
                wrong = judge(row, persona, r.status_code)
                if wrong:
                    mismatches.append(f"{row.service} HEAD {row.path} as {persona}: {wrong}")
    assert not mismatches, f"{len(mismatches)} answers differ from the default policy:\n" + "\n".join(mismatches)


def test_a_denied_answer_is_in_the_service_fault_format(world: World) -> None:
    """A reader's write is refused with the service's own 403 body naming the rule."""
    P = world.refs["P"]
    checks: list[tuple[str, str, str, Any, Callable[[Any], bool]]] = [
        ("compute", "POST", "/v2.1/os-server-groups", {"server_group": {"name": "x", "policies": ["affinity"]}},
         lambda b: "os_compute_api:os-server-groups:create" in b["forbidden"]["message"]),
        ("network", "POST", "/v2.0/networks", {"network": {"name": "x"}},
         lambda b: b["NeutronError"]["type"] == "Forbidden" and "create_network" in b["NeutronError"]["message"]),
        ("image", "POST", "/v2/images", {"name": "x"}, lambda b: "add_image" in b["message"]),
        ("block-storage", "POST", "/v3/volumes", {"volume": {"size": 1}},
         lambda b: "volume:create" in b["forbidden"]["message"]),
        ("placement", "GET", f"/usages?project_id={world.refs['Q']}", None,
         lambda b: "placement:usages" in b["errors"][0]["detail"]),
    ]
    assert P
    for service, method, path, body, shaped in checks:
        r = world.call("reader" if service != "placement" else "member", service, method, path, body)
        assert r.status_code == 403 and shaped(r.json()), (service, r.status_code, r.text)


def test_policy_file_overrides_one_rule_per_service(world: World) -> None:
    """An operator's file changes exactly the rules it names, in every service, without a restart."""
    P = world.refs["P"]
    probes = [  # (service, path, rule, who asks, allowed by default)
        ("compute", "/v2.1/os-server-groups", "os_compute_api:os-server-groups:index", "member", True),
        ("network", "/v2.0/networks", "get_network", "member", True),
        ("image", "/v2/images", "get_images", "member", True),
        ("placement", "/resource_classes", "placement:resource_classes:list", "reader", False),
    ]

    def answers() -> list[int]:
        return [world.call(who, service, "GET", path).status_code for service, path, _, who, _ in probes]

    def flipped(statuses: list[int]) -> bool:
        return all((status == 403) == default for status, (*_, default) in zip(statuses, probes, strict=True))

    assert [status != 403 for status in answers()] == [default for *_, default in probes]
    world.policy_file.write_text("".join(
        f'"{rule}": "{"role:admin" if default else "role:reader"}"\n' for _, _, rule, _, default in probes))
    try:
        wait_for(lambda: flipped(answers()), 10, "the services to read the changed policy file")
        # the rules the file does not name keep their defaults
        assert world.call("member", "compute", "GET", f"/v2.1/servers/{world.refs['server']}").status_code == 200
        assert world.call("reader", "network", "POST", "/v2.0/networks",
                          {"network": {"name": "x"}}).status_code == 403
        assert world.call("member", "compute", "GET", f"/v2.1/os-quota-sets/{P}").status_code == 200
    finally:
        world.policy_file.write_text("{}\n")
    wait_for(lambda: [status != 403 for status in answers()] == [default for *_, default in probes],
             10, "the services to go back to the defaults")


def volume_qos_rows(add: Callable[[Row], None]) -> None:
    """Block storage's QoS specs and volume type access: all an admin's.  The ids are unknown ones
    (an admin's 404 is an allowed answer), so no row changes what another row finds."""
    b = "block-storage"
    for prefix in ("/v3/{project_id}", "/v3"):
        pid = {"project_id": "@P"} if "{project_id}" in prefix else {}
        qos = {**pid, "qos_id": str(uuid.uuid4())}
        add(Row(b, "GET", f"{prefix}/qos-specs", ADMIN, params=pid))
        add(Row(b, "POST", f"{prefix}/qos-specs", ADMIN, {"qos_specs": {"name": "{unique}", "write_iops_sec": "10"}},
                pid))
        add(Row(b, "GET", f"{prefix}/qos-specs/{{qos_id}}", ADMIN, params=qos))
        add(Row(b, "PUT", f"{prefix}/qos-specs/{{qos_id}}", ADMIN, {"qos_specs": {"k": "v"}}, qos))
        add(Row(b, "DELETE", f"{prefix}/qos-specs/{{qos_id}}", ADMIN, params=qos))
        add(Row(b, "PUT", f"{prefix}/qos-specs/{{qos_id}}/delete_keys", ADMIN, {"keys": ["k"]}, qos))
        add(Row(b, "GET", f"{prefix}/qos-specs/{{qos_id}}/associations", ADMIN, params=qos))
        for action in ("associate", "disassociate"):
            add(Row(b, "GET", f"{prefix}/qos-specs/{{qos_id}}/{action}", ADMIN, params=qos,
                    query="vol_type_id=" + str(uuid.uuid4())))
        add(Row(b, "GET", f"{prefix}/qos-specs/{{qos_id}}/disassociate_all", ADMIN, params=qos))
        vtype = {**pid, "type_id": "@volume_type"}  # public: an admin's 400 or 404 is still allowed
        add(Row(b, "GET", f"{prefix}/types/{{type_id}}/os-volume-type-access", ADMIN, params=vtype))
        for action in ("addProjectAccess", "removeProjectAccess"):
            add(Row(b, "POST", f"{prefix}/types/{{type_id}}/action", ADMIN, {action: {"project": "@Q"}}, vtype))


def volume_transfer_rows(add: Callable[[Row], None]) -> None:
    """Block storage's volume transfers, retype, migration, and the services' disable-log-reason,
    freeze and thaw (a 400 for a volume's state or a wrong key is still an allowed answer: the
    rule is checked first)."""
    b = "block-storage"
    for prefix in ("/v3/{project_id}", "/v3"):
        pid = {"project_id": "@P"} if "{project_id}" in prefix else {}
        xfer = {**pid, "transfer_id": "@transfer"}
        for coll in ("/os-volume-transfer", "/volume-transfers"):
            add(Row(b, "GET", f"{prefix}{coll}", OWN_READER, params=pid))
            add(Row(b, "GET", f"{prefix}{coll}/detail", OWN_READER, params=pid))
            add(Row(b, "POST", f"{prefix}{coll}", MEMBER, {"transfer": {"volume_id": "@transfer_volume"}}, pid,
                    hides=True))
            add(Row(b, "GET", f"{prefix}{coll}/{{transfer_id}}", READER, params=xfer))
            add(Row(b, "POST", f"{prefix}{coll}/{{transfer_id}}/accept", OWN_MEMBER,
                    {"accept": {"auth_key": "not-the-key"}}, xfer))
            add(Row(b, "DELETE", f"{prefix}{coll}/{{transfer_id}}", MEMBER, params=pid, fresh="transfer"))
        acted = {**pid, "volume_id": "@action_volume"}
        add(Row(b, "POST", f"{prefix}/volumes/{{volume_id}}/action", MEMBER,
                {"os-retype": {"new_type": "@volume_type"}}, acted))
        add(Row(b, "POST", f"{prefix}/volumes/{{volume_id}}/action", ADMIN,
                {"os-migrate_volume": {"host": "nonesuch@file#file"}}, acted))
        for action, body in (("disable-log-reason", {"host": "no-such-host@file", "binary": "cinder-volume",
                                                     "disabled_reason": "matrix"}),
                             ("freeze", {"host": "no-such-host@file"}), ("thaw", {"host": "no-such-host@file"})):
            add(Row(b, "PUT", f"{prefix}/os-services/{{action}}", ADMIN, body, {**pid, "action": action}))


def volume_group_rows(add: Callable[[Row], None]) -> None:
    """Block storage's group types, groups and group snapshots (3.11-3.38; a 400 for a group's
    state is still an allowed answer: the rule is checked first)."""
    b, v, v38 = "block-storage", "volume 3.20", "volume 3.38"
    for prefix in ("/v3/{project_id}", "/v3"):
        pid = {"project_id": "@P"} if "{project_id}" in prefix else {}
        gt = {**pid, "group_type_id": "@group_type"}
        add(Row(b, "GET", f"{prefix}/group_types", ANYONE, params=pid, version=v))
        add(Row(b, "POST", f"{prefix}/group_types", ADMIN, {"group_type": {"name": "{unique}"}}, pid, version=v))
        add(Row(b, "GET", f"{prefix}/group_types/{{group_type_id}}", ANYONE, params=gt, version=v))
        add(Row(b, "PUT", f"{prefix}/group_types/{{group_type_id}}", ADMIN, {"group_type": {"description": "d"}}, gt,
                version=v))
        add(Row(b, "DELETE", f"{prefix}/group_types/{{group_type_id}}", ADMIN,
                params={**pid, "group_type_id": str(uuid.uuid4())}, version=v))
        add(Row(b, "GET", f"{prefix}/group_types/{{group_type_id}}/group_specs", ADMIN, params=gt, version=v))
        add(Row(b, "POST", f"{prefix}/group_types/{{group_type_id}}/group_specs", ADMIN, {"group_specs": {"k": "v"}},
                gt, version=v))
        add(Row(b, "GET", f"{prefix}/group_types/{{group_type_id}}/group_specs/{{key}}", ADMIN,
                params={**gt, "key": "k"}, version=v))
        add(Row(b, "PUT", f"{prefix}/group_types/{{group_type_id}}/group_specs/{{key}}", ADMIN, {"k": "w"},
                {**gt, "key": "k"}, version=v))
        add(Row(b, "DELETE", f"{prefix}/group_types/{{group_type_id}}/group_specs/{{key}}", ADMIN,
                params={**gt, "key": "nokey"}, version=v))
        grp = {**pid, "group_id": "@group"}
        add(Row(b, "GET", f"{prefix}/groups", OWN_READER, params=pid, version=v))
        add(Row(b, "GET", f"{prefix}/groups/detail", OWN_READER, params=pid, version=v))
        add(Row(b, "POST", f"{prefix}/groups", OWN_MEMBER, {"group": {
            "group_type": "@group_type", "volume_types": ["@volume_type"], "name": "{unique}"}}, pid, version=v))
        add(Row(b, "POST", f"{prefix}/groups/action", OWN_MEMBER, {"create-from-src": {"source_group_id": "@group"}},
                pid, version=v, hides=True))
        add(Row(b, "GET", f"{prefix}/groups/{{group_id}}", READER, params=grp, version=v))
        add(Row(b, "PUT", f"{prefix}/groups/{{group_id}}", MEMBER, {"group": {"name": "{unique}"}}, grp, version=v))
        add(Row(b, "POST", f"{prefix}/groups/{{group_id}}/action", MEMBER, {"delete": {}}, pid, fresh="group",
                version=v))
        add(Row(b, "POST", f"{prefix}/groups/{{group_id}}/action", ADMIN, {"reset_status": {"status": "available"}},
                grp, version=v))
        for action in ("enable_replication", "disable_replication", "failover_replication",
                       "list_replication_targets"):
            add(Row(b, "POST", f"{prefix}/groups/{{group_id}}/action", MEMBER, {action: {}}, grp, version=v38))
        gs = {**pid, "group_snapshot_id": "@group_snapshot"}
        add(Row(b, "GET", f"{prefix}/group_snapshots", OWN_READER, params=pid, version=v))
        add(Row(b, "GET", f"{prefix}/group_snapshots/detail", OWN_READER, params=pid, version=v))
        add(Row(b, "POST", f"{prefix}/group_snapshots", OWN_MEMBER, {"group_snapshot": {"group_id": "@group"}}, pid,
                version=v, hides=True))
        add(Row(b, "GET", f"{prefix}/group_snapshots/{{group_snapshot_id}}", READER, params=gs, version=v))
        add(Row(b, "DELETE", f"{prefix}/group_snapshots/{{group_snapshot_id}}", MEMBER, params=pid,
                fresh="group_snapshot", version=v))
        add(Row(b, "POST", f"{prefix}/group_snapshots/{{group_snapshot_id}}/action", ADMIN,
                {"reset_status": {"status": "available"}}, gs, version=v))


def network_qos_trunk_rows(add: Callable[[Row], None]) -> None:
    """The Network API's QoS policies and rules (a project's manager writes them, as Neutron's
    defaults say) and trunks (its member does).  Rules are asked for by unknown ids: an allowed
    caller's 404 is an allowed answer, so no row changes what another finds."""
    n = "network"
    pol = {"policy_id": "@qos_policy"}
    add(Row(n, "GET", "/v2.0/qos/policies", OWN_READER))
    add(Row(n, "POST", "/v2.0/qos/policies", MANAGER, {"policy": {"name": "{unique}"}}))
    add(Row(n, "GET", "/v2.0/qos/policies/{policy_id}", READER, params=pol))
    add(Row(n, "PUT", "/v2.0/qos/policies/{policy_id}", MANAGER, {"policy": {"description": "{unique}"}}, pol))
    add(Row(n, "DELETE", "/v2.0/qos/policies/{policy_id}", MANAGER, fresh="qos_policy"))
    for kind, body in (("bandwidth_limit", {"max_kbps": 1000, "direction": "ingress"}),
                       ("dscp_marking", {"dscp_mark": 26}), ("minimum_bandwidth", {"min_kbps": 10})):
        rules, rule = f"/v2.0/qos/policies/{{policy_id}}/{kind}_rules", {**pol, "rule_id": str(uuid.uuid4())}
        add(Row(n, "GET", rules, READER, params=pol))
        add(Row(n, "POST", rules, MANAGER, {f"{kind}_rule": body}, pol))  # the second maker's 409 is allowed
        add(Row(n, "GET", rules + "/{rule_id}", READER, params=rule))
        add(Row(n, "PUT", rules + "/{rule_id}", MANAGER, {f"{kind}_rule": {}}, rule))
        add(Row(n, "DELETE", rules + "/{rule_id}", MANAGER, params=rule))
    add(Row(n, "GET", "/v2.0/qos/rule-types", OWN_READER))
    add(Row(n, "GET", "/v2.0/qos/rule-types/{rule_type}", OWN_READER, params={"rule_type": "dscp_marking"}))
    trunk = {"trunk_id": "@trunk"}
    add(Row(n, "GET", "/v2.0/trunks", OWN_READER))
    add(Row(n, "POST", "/v2.0/trunks", MEMBER, {"trunk": {"port_id": "@trunk_port"}}, hides=True))
    add(Row(n, "GET", "/v2.0/trunks/{trunk_id}", READER, params=trunk))
    add(Row(n, "PUT", "/v2.0/trunks/{trunk_id}", MEMBER, {"trunk": {"name": "{unique}"}}, trunk))
    add(Row(n, "DELETE", "/v2.0/trunks/{trunk_id}", MEMBER, fresh="trunk"))
    for action in ("add_subports", "remove_subports"):
        add(Row(n, "PUT", f"/v2.0/trunks/{{trunk_id}}/{action}", MEMBER, {"sub_ports": []}, trunk))
    add(Row(n, "GET", "/v2.0/trunks/{trunk_id}/get_subports", READER, params=trunk))


def make_qos_trunk_resource(world: World, kind: str) -> str:
    """A QoS policy of P (by P's manager), a port of P for a trunk, or a trunk of P on a port of its own."""
    if kind == "qos_policy":
        return str(world.ok("manager", "network", "POST", "/v2.0/qos/policies", {"policy": {
            "name": unique("m")}})["policy"]["id"])
    port = str(world.ok("member", "network", "POST", "/v2.0/ports", {"port": {"network_id": world.refs["network"]}})[
        "port"]["id"])
    if kind == "trunk_port":
        return port
    if kind == "trunk":
        return str(world.ok("member", "network", "POST", "/v2.0/trunks", {"trunk": {"port_id": port}})["trunk"]["id"])
    raise AssertionError(f"no maker for {kind}")
