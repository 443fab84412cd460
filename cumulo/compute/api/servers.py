"""/v2.1/servers: create, list and detail (filters, sorting, paging, changes-since), show, update,
delete, metadata and tags.  Actions are in server_actions, the other sub-resources in
server_extras."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
import re
import secrets
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import and_, exists, or_, select, update
from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.block_devices import parse as block_devices_of
from cumulo.compute.api.block_devices import volume_caller
from cumulo.compute.api.common import at_least
from cumulo.compute.models import Aggregate, Server, ServerGroup, ServerGroupMember, ServerTag, ServiceRecord
from cumulo.compute.schemas import MAX_SERVERS_PER_REQUEST
from cumulo.compute.servers import ServerManager
from cumulo.compute.servers.status import STATUS, TASK_STATUS, status_of
from cumulo.core.db import utcnow
from cumulo.core.http.app import JSON, Router, auth_of, json_body
from cumulo.core.http.authz import allowed, authorize, verb
from cumulo.core.http.faults import BadRequest, Conflict, Forbidden, NotFound
from cumulo.image.service import Caller

PROGRESSING = ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING")
SORT_KEYS = {"created_at": Server.created_at, "updated_at": Server.updated_at, "display_name": Server.name,
             "name": Server.name, "uuid": Server.id, "id": Server.id, "vm_state": Server.vm_state,
             "task_state": Server.task_state, "power_state": Server.power_state, "host": Server.host,
             "node": Server.node, "launched_at": Server.launched_at, "terminated_at": Server.terminated_at,
             "availability_zone": Server.availability_zone, "key_name": Server.key_name,
             "project_id": Server.project_id, "user_id": Server.user_id, "locked": Server.locked,
             "image_ref": Server.image_id, "instance_type_id": Server.flavor_id, "hostname": Server.hostname}
TAG = re.compile(r"^[^,/]{1,60}$")
HOSTNAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")
FQDN = re.compile(r"^[a-zA-Z0-9-._]{1,255}$")  # what 2.94 takes: a fully qualified name (Nova's fqdn type)


def hostname_ok(request: Request, value: Any) -> bool:
    return isinstance(value, str) and bool((FQDN if at_least(request, 94) else HOSTNAME).match(value))


def base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}/v2.1"


def links(request: Request, kind: str, ident: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": f"{base(request)}/{kind}/{ident}"},
            {"rel": "bookmark", "href": f"{base(request)}/{kind}/{ident}"}]


def when(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def default_hostname(name: str) -> str:
    host = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return host or "server"


def parse_time(name: str, value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"Invalid input for query parameter {name}: {value!r} is not an ISO 8601 time.") from None
    # naive UTC, as the database keeps times
    return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def whole_second_ceiling(value: dt.datetime) -> dt.datetime:
    """The first whole second at or after ``value``."""
    whole = value.replace(microsecond=0)
    return whole if whole == value else whole + dt.timedelta(seconds=1)


STRICT_WORDS = {"true": True, "t": True, "yes": True, "y": True, "on": True, "1": True,
                "false": False, "f": False, "no": False, "n": False, "off": False, "0": False}


def all_tenants(q: Any) -> bool:
    """Nova's all_tenants: present and empty means yes, else a strict boolean word."""
    if "all_tenants" not in q:
        return False
    raw = q["all_tenants"]
    if raw == "":
        return True
    if raw.strip().lower() not in STRICT_WORDS:
        raise BadRequest(f"Invalid input for query parameter all_tenants: {raw!r} is not a boolean.")
    return STRICT_WORDS[raw.strip().lower()]


def check_name(value: Any, field: str = "name") -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise BadRequest(f"Invalid input for field/attribute {field}: a string of 1 to 255 characters that is "
                         "not only whitespace.")
    if value != value.strip():
        raise BadRequest(f"Invalid input for field/attribute {field}: leading or trailing whitespace.")
    return value


def check_ip(value: Any, version: int, field: str) -> str | None:
    """The address in its canonical form (IPv6 compressed, as Nova stores it)."""
    if value in (None, ""):
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        address = ipaddress.ip_address(value)
        if address.version != version:
            raise ValueError
    except ValueError:
        raise BadRequest(f"Invalid input for field/attribute {field}: {value!r} is not an IPv{version} "
                         "address.") from None
    return str(address)


# what update and rebuild leave out of the server before 2.75 (GET shows them)
EXTENDED = ("OS-EXT-", "OS-SRV-USG:", "config_drive", "key_name", "security_groups",
            "os-extended-volumes:volumes_attached", "host_status")


def as_updated(request: Request, server: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """An update's (or rebuild's) view: before 2.75 without the extended attributes, but ``keep``."""
    if at_least(request, 75):
        return server
    out = {k: v for k, v in server.items() if k in keep or not k.startswith(EXTENDED)}
    if isinstance(out.get("addresses"), dict):  # nor the addresses' OS-EXT-IPS keys (Nova's extend_address)
        out["addresses"] = {net: [{k: v for k, v in a.items() if not k.startswith("OS-EXT-IPS")} for a in items]
                            for net, items in out["addresses"].items()}
    return out


# the image properties Nova's ImageMetaProps knows (2.98 shows only those): its prefixed families
# and the legacy names it still maps
IMAGE_PROP_PREFIXES = ("hw_", "img_", "os_", "traits_required")
IMAGE_PROP_NAMES = {"architecture", "hypervisor_type", "vm_mode", "auto_disk_config", "ipxe_boot", "trait"}


def shown_image_properties(props: dict[str, Any]) -> dict[str, str]:
    return {k: str(v)[:255] for k, v in props.items() if v is not None and len(k) <= 255
            and (k.startswith(IMAGE_PROP_PREFIXES) or k in IMAGE_PROP_NAMES)}


def check_meta(items: Any, key_in_url: str | None = None) -> dict[str, str]:
    if not isinstance(items, dict):
        raise BadRequest("metadata must be an object of strings.")
    for key, value in items.items():
        if not isinstance(key, str) or not 0 < len(key) <= 255 or not isinstance(value, str) or len(value) > 255:
            raise BadRequest(f"Invalid metadata item {str(key)[:40]!r}: keys and values are strings of 1-255 "
                             "characters.")
    if key_in_url is not None and list(items) != [key_in_url]:
        raise BadRequest("The body must hold exactly the key named in the URL.")
    return items


def disk_config_of(server: Server) -> str:
    """OS-DCF:diskConfig as the server was last asked for it (create, update, rebuild, resize)."""
    return str((server.request or {}).get("disk_config") or "MANUAL")


def check_disk_config(value: Any) -> str:
    if value not in ("AUTO", "MANUAL"):
        raise BadRequest(f"Invalid input for field/attribute OS-DCF:diskConfig: {value!r} is not one of "
                         "['AUTO', 'MANUAL'].")
    return str(value)


def check_personality(request: Request, files: Any, limits: dict[str, int | None]) -> list[dict[str, str]]:
    """Personality files (up to 2.56): ``[{"path", "contents" (base64)}]``, held to the
    injected_files quotas as Nova does (403 past them, 400 for what is not base64)."""
    if files is None:
        return []
    if at_least(request, 57):
        raise BadRequest("Additional properties are not allowed ('personality' was unexpected): personality "
                         "files were removed in microversion 2.57 (use user_data).")
    if not isinstance(files, list) or not all(isinstance(f, dict) and set(f) <= {"path", "contents"}
                                              and isinstance(f.get("path"), str)
                                              and isinstance(f.get("contents", ""), str) for f in files):
        raise BadRequest("personality must be a list of {\"path\": ..., \"contents\": base64} objects.")
    count, path_bytes, content_bytes = (limits.get(k) for k in (
        "injected_files", "injected_file_path_bytes", "injected_file_content_bytes"))
    if count is not None and len(files) > count:
        raise Forbidden("Personality file limit exceeded")
    out = []
    for f in files:
        try:
            data = base64.b64decode(f.get("contents", ""), validate=True)
        except ValueError:
            raise BadRequest(f"Personality content for {f['path']} cannot be decoded") from None
        if path_bytes is not None and len(f["path"].encode()) > path_bytes:
            raise Forbidden(f"Personality file path exceeds maximum {path_bytes}")
        if content_bytes is not None and len(data) > content_bytes:
            raise Forbidden(f"Personality file content exceeds maximum {content_bytes}")
        out.append({"path": f["path"], "contents": base64.b64encode(data).decode()})
    return out


async def personality_limits(compute: Any, project_id: str | None) -> dict[str, int | None]:
    return {k: await compute.quota(project_id, k) for k in (
        "injected_files", "injected_file_path_bytes", "injected_file_content_bytes")}


def check_device_tags(request: Request, entries: list[Any], what: str) -> None:
    """Device tags on networks and block devices: microversion 2.32, and 2.42 on (2.33-2.41
    lost them in Nova, so there they are refused as Nova's schemas refuse them)."""
    for entry in entries:
        if not isinstance(entry, dict) or "tag" not in entry:
            continue
        if not (at_least(request, 32) and (at_least(request, 42) or not at_least(request, 33))):
            raise BadRequest(f"Invalid input for field/attribute {what}: 'tag' needs microversion 2.32 or 2.42+.")
        if not isinstance(entry["tag"], str) or not TAG.match(entry["tag"]):
            raise BadRequest(f"Invalid input for field/attribute tag: {entry['tag']!r} (1-60 characters without "
                             "'/' or ',').")


def check_tags(tags: Any) -> list[str]:
    if not isinstance(tags, list) or not all(isinstance(t, str) and TAG.match(t) for t in tags):
        raise BadRequest("tags must be a list of strings of 1-60 characters without '/' or ','.")
    if len(set(tags)) > 50:
        raise BadRequest("A server may have at most 50 tags.")
    return list(dict.fromkeys(tags))


def check_user_data(value: Any) -> str | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        raw = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise BadRequest("user_data must be base64 encoded.") from None
    if len(raw) > 65535:
        raise BadRequest("user_data is limited to 65535 bytes once decoded.")
    return value


def check_int(value: Any, field: str, minimum: int = 1, maximum: int = 2**31 - 1) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) <= 12:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise BadRequest(f"Invalid input for field/attribute {field}: an integer from {minimum} to {maximum} "
                         "is required.")
    return value


def port_order(rows: list[Server]) -> dict[str, list[str]]:
    """Each server's ports in the order its create asked for the networks."""
    return {s.id: list((s.request or {}).get("ports") or []) for s in rows}


def image_view(request: Request, s: Server) -> dict[str, Any] | str:
    if not s.image_id:
        return ""
    out: dict[str, Any] = {"id": s.image_id, "links": links(request, "images", s.image_id)}
    if at_least(request, 98):  # the properties the server was (re)built with
        out["properties"] = shown_image_properties((s.request or {}).get("image_properties") or {})
    return out


class Views:
    """Renders servers the way Nova does at the request's microversion."""

    def __init__(self, manager: ServerManager) -> None:
        self.manager = manager

    async def host_status(self) -> dict[str, str]:
        down_after = dt.timedelta(seconds=self.manager.cfg.service_down_time)
        async with self.manager.db.reader() as s:
            rows = list((await s.execute(select(ServiceRecord).where(
                ServiceRecord.binary == "nova-compute"))).scalars())
        now = utcnow()
        out = {}
        for r in rows:
            if r.forced_down or not r.last_seen_at or now - r.last_seen_at > down_after:
                out[r.host] = "DOWN"
            else:
                out[r.host] = "MAINTENANCE" if r.disabled else "UP"
        return out

    async def show(self, request: Request, server: Server) -> dict[str, Any]:
        """One server as GET /servers/{id} shows it (update and rebuild trim it with as_updated)."""
        manager = self.manager
        tags = (await manager.tags([server.id]))[server.id]
        hosts = await self.host_status() if at_least(request, 16) and auth_of(request).is_admin() else {}
        groups = None
        if at_least(request, 71):
            async with manager.db.session() as s:
                groups = list((await s.execute(select(ServerGroupMember.group_id).where(
                    ServerGroupMember.server_id == server.id))).scalars())
        addresses = (await manager.addresses([server.id], port_order([server]))).get(server.id)
        volumes = (await manager.volume_attachments([server.id]))[server.id]
        return self.one(request, server, tags, hosts, groups, addresses, volumes)

    async def render(self, request: Request, rows: list[Server], detail: bool) -> list[dict[str, Any]]:
        if not detail:
            return [{"id": s.id, "name": s.name, "links": links(request, "servers", s.id)} for s in rows]
        tags = await self.manager.tags([s.id for s in rows]) if at_least(request, 26) else {}
        hosts = await self.host_status() if at_least(request, 16) and auth_of(request).is_admin() else {}
        addresses = await self.manager.addresses([s.id for s in rows], port_order(rows))
        volumes = await self.manager.volume_attachments([s.id for s in rows])
        return [self.one(request, s, tags.get(s.id, []), hosts, addresses=addresses.get(s.id),
                         volumes=volumes.get(s.id)) for s in rows]

    def one(self, request: Request, s: Server, tags: list[str], host_status: dict[str, str],
            groups: list[str] | None = None, addresses: dict[str, Any] | None = None,
            volumes: list[Any] | None = None) -> dict[str, Any]:
        admin = auth_of(request).is_admin()
        f = s.flavor
        if at_least(request, 47):
            flavor: dict[str, Any] = {"vcpus": f["vcpus"], "ram": f["ram"], "disk": f["disk"],
                                      "ephemeral": f["ephemeral"], "swap": f["swap"], "original_name": f["name"]}
            if admin or True:  # extra specs are shown to whoever may see flavor extra specs: everyone here
                flavor["extra_specs"] = f.get("extra_specs") or {}
        else:
            flavor = {"id": f["id"], "links": links(request, "flavors", f["id"])}
        out: dict[str, Any] = {
            "id": s.id, "name": s.name, "links": links(request, "servers", s.id),
            "status": status_of(s), "tenant_id": s.project_id, "user_id": s.user_id,
            "metadata": s.meta or {}, "hostId": "", "flavor": flavor,
            "image": image_view(request, s),
            "created": when(s.created_at), "updated": when(s.updated_at), "addresses": addresses or {},
            "accessIPv4": s.access_ipv4 or "", "accessIPv6": s.access_ipv6 or "", "key_name": s.key_name,
            "config_drive": "True" if s.config_drive else "", "OS-DCF:diskConfig": disk_config_of(s),
            "OS-EXT-STS:vm_state": s.vm_state, "OS-EXT-STS:task_state": s.task_state,
            "OS-EXT-STS:power_state": s.power_state, "OS-EXT-AZ:availability_zone": s.availability_zone or "",
            "OS-SRV-USG:launched_at": s.launched_at.strftime("%Y-%m-%dT%H:%M:%S.%f") if s.launched_at else None,
            "OS-SRV-USG:terminated_at": s.terminated_at.strftime("%Y-%m-%dT%H:%M:%S.%f") if s.terminated_at
            else None,
            "security_groups": [{"name": n} for n in (s.request or {}).get("security_groups", ["default"])],
            "os-extended-volumes:volumes_attached": [
                {"id": v.volume_id, "delete_on_termination": v.delete_on_termination} if at_least(request, 3)
                else {"id": v.volume_id} for v in volumes or ()]}
        if not out["security_groups"]:  # Nova leaves the key out when a server has none
            del out["security_groups"]
        if out["status"] in PROGRESSING:  # Nova shows progress only while something can progress
            out["progress"] = 100 if out["status"] in ("ACTIVE", "VERIFY_RESIZE") else 0
        if s.host:
            out["hostId"] = hashlib.sha224((s.project_id + s.host).encode()).hexdigest()
        if admin:
            out.update({"OS-EXT-SRV-ATTR:host": s.host, "OS-EXT-SRV-ATTR:hypervisor_hostname": s.host,
                        "OS-EXT-SRV-ATTR:instance_name": f"instance-{s.id[:8]}"})
            if at_least(request, 3):
                req = s.request or {}
                props = req.get("image_properties") or {}
                out.update({"OS-EXT-SRV-ATTR:reservation_id": req.get("reservation_id"),
                            "OS-EXT-SRV-ATTR:launch_index": req.get("launch_index", 0),
                            "OS-EXT-SRV-ATTR:hostname": s.hostname or default_hostname(s.name),
                            "OS-EXT-SRV-ATTR:kernel_id": props.get("kernel_id", ""),
                            "OS-EXT-SRV-ATTR:ramdisk_id": props.get("ramdisk_id", ""),
                            "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                            "OS-EXT-SRV-ATTR:user_data": s.user_data})
            if at_least(request, 16):
                out["host_status"] = host_status.get(s.host or "", "") if s.host else ""
        if at_least(request, 9):
            out["locked"] = s.locked
        if at_least(request, 73):
            out["locked_reason"] = s.locked_reason
        if at_least(request, 19):
            out["description"] = s.description
        if at_least(request, 26):
            out["tags"] = tags
        if at_least(request, 63):
            out["trusted_image_certificates"] = None
        if at_least(request, 71) and groups is not None:
            out["server_groups"] = groups
        if at_least(request, 90):
            out["OS-EXT-SRV-ATTR:hostname"] = s.hostname or default_hostname(s.name)
        if at_least(request, 96):
            out["pinned_availability_zone"] = (s.request or {}).get("requested_zone")
        if at_least(request, 100):  # as the create asked for them
            out["scheduler_hints"] = (s.request or {}).get("hints") or {}
        if s.fault and s.vm_state in ("error", "deleted"):
            out["fault"] = {"code": s.fault["code"], "created": s.fault.get("created"),
                            "message": s.fault["details"] if admin else s.fault["message"]}
            if admin:
                out["fault"]["details"] = s.fault["details"]
        return out


def router(manager: ServerManager, images: Any) -> Router:
    r = Router()
    compute = manager.compute
    views = Views(manager)

    async def visible(request: Request, server_id: str, rule: str) -> Server:
        """The server, once ``rule`` allows the caller on it (another project's is a 404)."""
        auth = auth_of(request)
        row = await manager.get(server_id) if len(server_id) <= 36 else None
        if row is None or row.deleted_at is not None or (row.project_id != auth.project_id and not auth.is_admin()):
            raise NotFound(f"Instance {server_id} could not be found.")
        authorize(request, rule, {"project_id": row.project_id, "user_id": row.user_id})
        return row

    # -- list -----------------------------------------------------------------------------------
    async def listing(request: Request, detail: bool) -> Response:
        rule = "os_compute_api:servers:detail" if detail else "os_compute_api:servers:index"
        auth = authorize(request, rule)
        admin = allowed(request, rule + ":get_all_tenants")
        q = request.query_params
        conds: list[Any] = []
        everyone = all_tenants(q)
        if everyone:  # as Nova: asking for every project is refused to whom the policy does not allow it
            authorize(request, rule + ":get_all_tenants")
            project = q.get("project_id") or q.get("tenant_id")
            if project:
                conds.append(Server.project_id == project)
        else:  # and without all_tenants a project filter is ignored (Nova's lp:#1185290)
            conds.append(Server.project_id == (auth.project_id or ""))
        since = parse_time("changes-since", q["changes-since"]) if "changes-since" in q else None
        before = parse_time("changes-before", q["changes-before"]) if "changes-before" in q else None
        if since and before and since > before:
            raise BadRequest("changes-since must not be later than changes-before.")
        deleted = admin and q.get("deleted", "").lower() in ("true", "1", "yes")
        if since or before:  # Nova lists deleted servers too when asked what changed
            # both bounds are inclusive at the precision ``updated`` is shown in (whole seconds):
            # a server shown as updated at the bound itself is in the list
            if since:
                conds.append(Server.updated_at >= whole_second_ceiling(since))
            if before:
                conds.append(Server.updated_at < before.replace(microsecond=0) + dt.timedelta(seconds=1))
        elif deleted:
            conds.append(Server.deleted_at.is_not(None))
        else:
            conds.append(Server.deleted_at.is_(None))
        if "status" in q:
            wanted = q["status"].upper()
            states = [k for k, v in STATUS.items() if v == wanted]
            task_states = [k for k, v in TASK_STATUS.items() if v == wanted]
            if task_states:
                conds.append(Server.task_state.in_(task_states))
            elif wanted == "DELETED" and admin:
                conds.append(Server.deleted_at.is_not(None))
            else:
                conds.append(Server.vm_state.in_(states or ["-"]))
        for key, column in (("image", Server.image_id), ("flavor", Server.flavor_id), ("key_name", Server.key_name),
                            ("availability_zone", Server.availability_zone), ("uuid", Server.id)):
            if key in q:
                value = q[key].rsplit("/", 1)[-1] if key in ("image", "flavor") else q[key]
                conds.append(column == value)
        if admin:
            for key, column in (("host", Server.host), ("node", Server.node), ("user_id", Server.user_id),
                                ("vm_state", Server.vm_state), ("task_state", Server.task_state)):
                if key in q:
                    conds.append(column == q[key])
        elif "user_id" in q and at_least(request, 83):
            conds.append(Server.user_id == q["user_id"])
        if "locked" in q and at_least(request, 73):
            conds.append(Server.locked.is_(q["locked"].lower() in ("true", "1", "yes")))
        if at_least(request, 26):
            for key in ("tags", "tags-any", "not-tags", "not-tags-any"):
                if key not in q:
                    continue
                names = [t for t in q[key].split(",") if t]
                has = [exists().where(ServerTag.server_id == Server.id, ServerTag.tag == t) for t in names]
                if not has:
                    continue
                conds.append({"tags": and_(*has), "tags-any": or_(*has),
                              "not-tags": ~and_(*has), "not-tags-any": ~or_(*has)}[key])
        for key, version in (("ip", 4), ("ip6", 6)):
            if key in q:
                conds.append(Server.id.in_(await manager.servers_with_ip(q[key], version)))
        limit = None
        if "limit" in q:
            limit = check_int(q["limit"], "limit", 0)
        limit = min(limit if limit is not None else 1000, 1000)
        keys = q.getlist("sort_key") or ["created_at"]
        dirs = q.getlist("sort_dir")
        order: list[tuple[Any, bool]] = []
        for i, key in enumerate(keys):
            if key not in SORT_KEYS:
                raise BadRequest(f"Invalid sort_key {key!r}: one of {', '.join(sorted(SORT_KEYS))}.")
            direction = dirs[i] if i < len(dirs) else (dirs[-1] if dirs else "desc")
            if direction not in ("asc", "desc"):
                raise BadRequest(f"Invalid sort_dir {direction!r}: asc or desc.")
            order.append((SORT_KEYS[key], direction == "desc"))
        if all(col is not Server.id for col, _ in order):
            order.append((Server.id, order[-1][1]))
        stmt = select(Server).where(*conds).order_by(*[c.desc() if d else c.asc() for c, d in order])
        name = q.get("name")
        marker_id = q.get("marker")
        if name is None and marker_id:
            async with manager.db.reader() as s:
                marker = await s.get(Server, marker_id)
            if marker is None:
                raise BadRequest(f"marker [{marker_id}] not found")
            after = []
            for i, (col, desc) in enumerate(order):
                value = getattr(marker, col.key)
                if value is None:
                    continue
                same = [c == getattr(marker, c.key) for c, _ in order[:i]]
                after.append(and_(*same, col < value if desc else col > value))
            stmt = stmt.where(or_(*after))
        if name is None:
            stmt = stmt.limit(limit)
        async with manager.db.reader() as s:
            rows = list((await s.execute(stmt)).scalars())
        if name is not None:  # Nova matches the name as a regular expression
            try:
                pattern = re.compile(name)
                rows = [x for x in rows if pattern.search(x.name)]
            except re.error:
                rows = [x for x in rows if name in x.name]
            if marker_id:
                ids = [x.id for x in rows]
                if marker_id not in ids:
                    raise BadRequest(f"marker [{marker_id}] not found")
                rows = rows[ids.index(marker_id) + 1:]
            rows = rows[:limit]
        body: dict[str, Any] = {"servers": await views.render(request, rows, detail)}
        if rows and len(rows) == limit and limit:
            params = [(k, v) for k, v in q.multi_items() if k != "marker"] + [("marker", rows[-1].id)]
            path = "servers/detail" if detail else "servers"
            body["servers_links"] = [{"rel": "next", "href": f"{base(request)}/{path}?{urlencode(params)}"}]
        return JSON(body)

    @r.get("/v2.1/servers")
    async def list_servers(request: Request) -> Response:
        return await listing(request, False)

    @r.get("/v2.1/servers/detail")
    async def list_servers_detail(request: Request) -> Response:
        return await listing(request, True)

    async def show_body(request: Request, server: Server) -> dict[str, Any]:
        return await views.show(request, server)

    @r.get("/v2.1/servers/{server_id}")
    async def show(request: Request) -> Response:
        server = await visible(request, request.path_params["server_id"], "os_compute_api:servers:show")
        return JSON({"server": await show_body(request, server)})

    @r.get("/v2.1/servers/{server_id}/ips")
    async def list_ips(request: Request) -> Response:
        server = await visible(request, request.path_params["server_id"], "os_compute_api:ips:index")
        return JSON({"addresses": (await manager.addresses([server.id], port_order([server]))).get(server.id) or {}})

    @r.get("/v2.1/servers/{server_id}/ips/{network_label}")
    async def show_ips(request: Request) -> Response:
        server = await visible(request, request.path_params["server_id"], "os_compute_api:ips:show")
        label = request.path_params["network_label"]
        addresses = (await manager.addresses([server.id], port_order([server]))).get(server.id) or {}
        if label not in addresses:
            raise NotFound(f"Instance {server.id} has no addresses on network {label}.")
        return JSON({label: addresses[label]})

    @r.put("/v2.1/servers/{server_id}")
    async def update_server(request: Request) -> Response:
        server = await visible(request, request.path_params["server_id"], "os_compute_api:servers:update")
        body = await json_body(request)
        data = body.get("server") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise BadRequest("The request body needs a 'server' object.")
        allowed = {"name", "accessIPv4", "accessIPv6", "OS-DCF:diskConfig"}
        if at_least(request, 19):
            allowed.add("description")
        if at_least(request, 90):
            allowed.add("hostname")
        extra = set(data) - allowed
        if extra:
            raise BadRequest(f"Additional properties are not allowed ({', '.join(sorted(extra))} unexpected).")
        values: dict[str, Any] = {}
        if "name" in data:
            values["name"] = check_name(data["name"])
        if "accessIPv4" in data:
            values["access_ipv4"] = check_ip(data["accessIPv4"], 4, "accessIPv4")
        if "accessIPv6" in data:
            values["access_ipv6"] = check_ip(data["accessIPv6"], 6, "accessIPv6")
        if "description" in data:
            if data["description"] is not None and (not isinstance(data["description"], str)
                                                    or len(data["description"]) > 255):
                raise BadRequest("description must be a string of at most 255 characters, or null.")
            values["description"] = data["description"]
        if "hostname" in data:
            if not hostname_ok(request, data["hostname"]):
                raise BadRequest("hostname must be a valid host name (RFC 1123 label; from 2.94 a fully qualified "
                                 "name).")
            values["hostname"] = data["hostname"]
        if "OS-DCF:diskConfig" in data:
            values["request"] = {**(server.request or {}), "disk_config": check_disk_config(data["OS-DCF:diskConfig"])}
        if values:
            async with manager.db.session() as s:
                await s.execute(update(Server).where(Server.id == server.id).values(**values))
        server = await visible(request, server.id, "os_compute_api:servers:show")
        return JSON({"server": as_updated(request, await show_body(request, server))})

    @r.delete("/v2.1/servers/{server_id}")
    async def delete(request: Request) -> Response:
        server = await visible(request, request.path_params["server_id"], "os_compute_api:servers:delete")
        if server.locked and not auth_of(request).is_admin():
            raise Conflict(f"Instance {server.id} is locked")
        await manager.delete(server)
        return Response(status_code=204)

    # -- metadata -------------------------------------------------------------------------------
    async def save_meta(server: Server, meta: dict[str, str]) -> None:
        limit = await compute.quota(server.project_id, "metadata_items")
        if limit is not None and len(meta) > limit:
            raise Forbidden(f"Quota exceeded for metadata_items: the limit is {limit}.")
        async with manager.db.session() as s:
            await s.execute(update(Server).where(Server.id == server.id).values(meta=meta))

    @r.route("/v2.1/servers/{server_id}/metadata", ["GET", "POST", "PUT"])
    async def metadata(request: Request) -> Response:
        action = {"GET": "index", "POST": "create", "PUT": "update_all"}[verb(request)]
        server = await visible(request, request.path_params["server_id"], f"os_compute_api:server-metadata:{action}")
        if request.method == "GET":
            return JSON({"metadata": server.meta or {}})
        body = await json_body(request)
        items = check_meta(body.get("metadata") if isinstance(body, dict) else None)
        meta = items if request.method == "PUT" else {**(server.meta or {}), **items}
        await save_meta(server, meta)
        return JSON({"metadata": meta})

    @r.route("/v2.1/servers/{server_id}/metadata/{key}", ["GET", "PUT", "DELETE"])
    async def metadata_item(request: Request) -> Response:
        action = {"GET": "show", "PUT": "update", "DELETE": "delete"}[verb(request)]
        server = await visible(request, request.path_params["server_id"], f"os_compute_api:server-metadata:{action}")
        key = request.path_params["key"]
        meta = dict(server.meta or {})
        if request.method == "PUT":
            body = await json_body(request)
            meta.update(check_meta(body.get("meta") if isinstance(body, dict) else None, key))
            await save_meta(server, meta)
            return JSON({"meta": {key: meta[key]}})
        if key not in meta:
            raise NotFound(f"Metadata item was not found: {key}")
        if request.method == "GET":
            return JSON({"meta": {key: meta[key]}})
        meta.pop(key)
        await save_meta(server, meta)
        return Response(status_code=204)

    # -- tags (2.26) ----------------------------------------------------------------------------
    async def tagged(request: Request, action: str) -> Server:
        if not at_least(request, 26):
            raise NotFound("Server tags need microversion 2.26 or later.")
        return await visible(request, request.path_params["server_id"], f"os_compute_api:os-server-tags:{action}")

    @r.route("/v2.1/servers/{server_id}/tags", ["GET", "PUT", "DELETE"])
    async def tags(request: Request) -> Response:
        server = await tagged(request, {"GET": "index", "PUT": "update_all", "DELETE": "delete_all"}[verb(request)])
        if request.method == "GET":
            return JSON({"tags": (await manager.tags([server.id]))[server.id]})
        if request.method == "DELETE":
            await manager.set_tags(server.id, [])
            return Response(status_code=204)
        body = await json_body(request)
        wanted = check_tags(body.get("tags") if isinstance(body, dict) else None)
        return JSON({"tags": await manager.set_tags(server.id, wanted)})

    @r.route("/v2.1/servers/{server_id}/tags/{tag}", ["GET", "PUT", "DELETE"])
    async def tag(request: Request) -> Response:
        server = await tagged(request, {"GET": "show", "PUT": "update", "DELETE": "delete"}[verb(request)])
        name = request.path_params["tag"]
        have = (await manager.tags([server.id]))[server.id]
        if request.method == "GET":
            if name not in have:
                raise NotFound(f"Tag {name} was not found for server {server.id}.")
            return Response(status_code=204)
        if request.method == "DELETE":
            if not await manager.delete_tag(server.id, name):
                raise NotFound(f"Tag {name} was not found for server {server.id}.")
            return Response(status_code=204)
        check_tags([name])
        if name in have:
            return Response(status_code=204)
        await manager.set_tags(server.id, [name], replace=False)
        url = f"{base(request)}/servers/{server.id}/tags/{quote(name, safe='')}"  # a header is ASCII
        return Response(status_code=201, headers={"Location": url})

    # -- create -----------------------------------------------------------------------------------
    async def known_zones() -> set[str]:
        async with manager.db.session() as s:
            metas = (await s.execute(select(Aggregate.meta))).scalars().all()
        return {compute.cfg.compute.default_availability_zone} | {
            m["availability_zone"] for m in metas if m and m.get("availability_zone")}

    async def group_names(ids: list[str], asked: list[str]) -> list[str]:
        """The groups a create named (by name or id) by their names, each once, as Nova shows
        them; if two of them share a name, they stay as they were asked (a name would not tell
        them apart when the ports are made)."""
        assert manager.network is not None
        found = await manager.network.security_groups_by_id(ids)
        names = [found[i].name for i in ids if i in found]
        if len(set(names)) < len(ids):
            return list(dict.fromkeys(asked))
        return names

    @r.post("/v2.1/servers")
    async def create(request: Request) -> Response:
        auth = authorize(request, "os_compute_api:servers:create")
        body = await json_body(request)
        data = body.get("server") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise BadRequest("The request body needs a 'server' object.")
        name = check_name(data.get("name"))
        flavor_ref = data.get("flavorRef")
        if not isinstance(flavor_ref, (str, int)) or isinstance(flavor_ref, bool) or not str(flavor_ref):
            raise BadRequest("Invalid input for field/attribute flavorRef.")
        try:
            flavor = await compute.flavor(str(flavor_ref).rsplit("/", 1)[-1], auth.project_id, auth.is_admin())
        except NotFound:
            raise BadRequest(f"Flavor {flavor_ref} could not be found.") from None
        if flavor.disabled:
            raise BadRequest(f"Flavor {flavor.id} is disabled.")
        low = check_int(data.get("min_count", 1), "min_count", maximum=MAX_SERVERS_PER_REQUEST)
        high = check_int(data.get("max_count", low), "max_count", maximum=MAX_SERVERS_PER_REQUEST)
        if low > high:
            raise BadRequest("min_count must be <= max_count.")
        if isinstance(data.get("block_device_mapping_v2"), list):
            check_device_tags(request, data["block_device_mapping_v2"], "block_device_mapping_v2")
        image_ref, block_devices = await block_devices_of(data, manager, volume_caller(auth), images,
                                                          Caller.of(auth), high)
        boot_volume = any(v["boot_index"] == 0 for v in block_devices)
        image_id = None
        image_properties: dict[str, Any] = {}
        if not image_ref and not boot_volume:
            raise BadRequest("Missing imageRef attribute: boot from an image, or from a volume (a block device "
                             "mapping with boot_index 0).")
        if image_ref is not None and not isinstance(image_ref, str):
            raise BadRequest("Invalid input for field/attribute imageRef.")
        image_id = image_ref.rsplit("/", 1)[-1] if image_ref else None
        if images is not None and image_id:
            try:
                image = await images.image_info(image_id, Caller.of(auth))
            except NotFound:
                raise BadRequest(f"Image {image_id} could not be found.") from None
            if image.status != "active":
                raise BadRequest(f"Image {image_id} is not active.")
            if image.min_ram and flavor.ram < image.min_ram:
                raise BadRequest(f"Flavor's memory is too small for requested image (min_ram {image.min_ram}).")
            if image.min_disk and flavor.disk and flavor.disk < image.min_disk and not boot_volume:
                raise BadRequest(f"Flavor's disk is too small for requested image (min_disk {image.min_disk}).")
            image_properties = dict(image.properties or {})
        networks = data.get("networks")
        if at_least(request, 37) and networks is None:
            raise BadRequest("networks is required from microversion 2.37: use \"auto\", \"none\" or a list.")
        if isinstance(networks, str) and networks not in ("auto", "none"):
            raise BadRequest(f"Invalid networks value {networks!r}: \"auto\", \"none\" or a list.")
        requested: list[dict[str, Any]] | str = networks if isinstance(networks, str) else "auto"
        if isinstance(networks, list):
            check_device_tags(request, networks, "networks")
            requested = await manager.requested_networks(networks, auth.project_id or "", auth.is_admin())
        elif networks is not None and not isinstance(networks, str):
            raise BadRequest(f"Invalid networks value {networks!r}.")
        elif manager.network is not None and requested == "auto":
            # before 2.37 no networks means every network the project has, none at all is fine
            requested = await manager.auto_network(auth.project_id or "", required=networks is not None)
        key_name = data.get("key_name")
        if key_name is not None:
            try:
                await compute.keypair(auth.user_id, key_name)
            except NotFound:
                raise BadRequest(f"Invalid key_name provided: {key_name}.") from None
        metadata = check_meta(data.get("metadata") or {})
        limit = await compute.quota(auth.project_id, "metadata_items")
        if limit is not None and len(metadata) > limit:
            raise Forbidden(f"Quota exceeded for metadata_items: the limit is {limit}.")
        request_spec: dict[str, Any] = {"image_properties": image_properties, "networks": requested}
        if data.get("OS-DCF:diskConfig") is not None:
            request_spec["disk_config"] = check_disk_config(data["OS-DCF:diskConfig"])
        files = check_personality(request, data.get("personality"),
                                  await personality_limits(compute, auth.project_id))
        if files:
            request_spec["personality"] = files
        if block_devices:
            request_spec.update(block_devices=block_devices, boot_volume=boot_volume)
        zone = data.get("availability_zone")
        if zone is not None:
            if not isinstance(zone, str) or not zone:
                raise BadRequest("Invalid availability_zone.")
            zone, _, forced = zone.partition(":")
            forced = forced.strip(":")
            if forced:
                if not allowed(request, "os_compute_api:servers:create:forced_host"):
                    raise Forbidden("Only an admin may name a host in availability_zone (zone:host).")
                request_spec["requested_host"] = forced
            if zone and zone not in await known_zones():
                raise BadRequest(f"The requested availability zone is not available: {zone}.")
            request_spec["requested_zone"] = zone or None
            zone = zone or None
        host = data.get("host")
        if host is not None and at_least(request, 74):
            if not allowed(request, "compute:servers:create:requested_destination"):
                raise Forbidden("Only an admin may request a host.")
            request_spec["requested_host"] = host
        hints = body.get("os:scheduler_hints") or body.get("OS-SCH-HNT:scheduler_hints") or {}
        if not isinstance(hints, dict):
            raise BadRequest("os:scheduler_hints must be an object.")
        if hints:
            request_spec["hints"] = hints
        group = hints.get("group")
        if group is not None:
            async with manager.db.session() as s:
                row = await s.get(ServerGroup, group) if isinstance(group, str) else None
                members = (await s.execute(select(ServerGroupMember.server_id).join(
                    Server, Server.id == ServerGroupMember.server_id).where(
                    ServerGroupMember.group_id == group, Server.deleted_at.is_(None)))).scalars().all()
            if row is None or (row.project_id != auth.project_id and not auth.is_admin()):
                raise BadRequest(f"Invalid server group {group}: it does not exist.")
            cap = await compute.quota(auth.project_id, "server_group_members")
            if cap is not None and len(members) + high > cap:
                raise Forbidden(f"Quota exceeded for server_group_members: the group has {len(members)} of {cap}.")
            request_spec["group"] = group
        security_groups = data.get("security_groups")
        if security_groups is not None:
            if not isinstance(security_groups, list) or not all(isinstance(g, dict) and isinstance(
                    g.get("name"), str) for g in security_groups):
                raise BadRequest("security_groups must be a list of {\"name\": ...} objects.")
            request_spec["security_groups"] = [g["name"] for g in security_groups] or ["default"]
            if manager.network is not None:  # unknown groups are the caller's mistake: 400 now, not ERROR later
                ids = await manager.security_group_ids(request_spec["security_groups"], auth.project_id or "")
                request_spec["security_groups"] = await group_names(ids, request_spec["security_groups"])
        extra: dict[str, Any] = {"user_data": check_user_data(data.get("user_data")),
                                 "access_ipv4": check_ip(data.get("accessIPv4"), 4, "accessIPv4"),
                                 "access_ipv6": check_ip(data.get("accessIPv6"), 6, "accessIPv6")}
        drive = data.get("config_drive")
        if drive is not None:
            if isinstance(drive, str):
                drive = drive.lower() in ("true", "1", "yes")
            if not isinstance(drive, bool):
                raise BadRequest("config_drive must be a boolean.")
            extra["config_drive"] = drive
        description = data.get("description")
        if description is not None:
            if not at_least(request, 19) or not isinstance(description, str) or len(description) > 255:
                raise BadRequest("description (microversion 2.19) must be a string of at most 255 characters.")
            extra["description"] = description
        hostname = data.get("hostname")
        if hostname is not None:
            if not at_least(request, 90) or not hostname_ok(request, hostname):
                raise BadRequest("hostname (microversion 2.90) must be a valid host name (RFC 1123 label; from "
                                 "2.94 a fully qualified name).")
            extra["hostname"] = hostname
        else:
            extra["hostname"] = default_hostname(name)
        server_tags: list[str] = []
        if data.get("tags") is not None:
            if not at_least(request, 52):
                raise BadRequest("tags on create need microversion 2.52 or later.")
            server_tags = check_tags(data["tags"])
        password = data.get("adminPass")
        if password is not None and not isinstance(password, str):
            raise BadRequest("adminPass must be a string.")
        rows = await manager.create(project_id=auth.project_id or "", user_id=auth.user_id, name=name,
                                    flavor=flavor, image_id=image_id, count=high, min_count=low, zone=zone,
                                    key_name=key_name, metadata=metadata, extra=extra, request=request_spec,
                                    tags=server_tags)
        if data.get("return_reservation_id") in (True, "true", "True"):
            return JSON({"reservation_id": rows[0].request["reservation_id"]}, status_code=202)
        first = rows[0]
        out = {"id": first.id, "links": links(request, "servers", first.id),
               "OS-DCF:diskConfig": request_spec.get("disk_config", "MANUAL"),
               "security_groups": [{"name": n} for n in request_spec.get("security_groups", ["default"])],
               "adminPass": password or secrets.token_urlsafe(12)}
        return JSON({"server": out}, status_code=202,
                    headers={"Location": f"{base(request)}/servers/{first.id}"})

    return r
