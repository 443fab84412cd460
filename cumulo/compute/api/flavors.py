"""/v2.1/flavors: flavors, their extra specs and access lists (os-flavor-access)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.common import at_least
from cumulo.compute.models import Flavor
from cumulo.compute.service import ComputeService
from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import authorize, verb
from cumulo.core.http.faults import BadRequest, NotFound

NAME = re.compile(r"^[\w.\- ]{1,255}$", re.UNICODE)
SPEC_KEY = re.compile(r"^[\w.\-:]{1,255}$")


# The extra specs Nova 2.86+ checks in the ``hw`` namespace (the one Cumulo's guests honour): each
# known key with the values it takes (None: any text); a key of the namespace not listed is refused.
POSITIVE = re.compile(r"^[1-9][0-9]{0,8}$")
HW_SPECS: dict[str, set[str] | re.Pattern[str] | None] = {
    "hw:cpu_policy": {"dedicated", "shared", "mixed"},
    "hw:cpu_thread_policy": {"prefer", "isolate", "require"},
    "hw:emulator_threads_policy": {"share", "isolate"},
    "hw:cpu_sockets": POSITIVE, "hw:cpu_cores": POSITIVE, "hw:cpu_threads": POSITIVE,
    "hw:cpu_max_sockets": POSITIVE, "hw:cpu_max_cores": POSITIVE, "hw:cpu_max_threads": POSITIVE,
    "hw:numa_nodes": POSITIVE,
    "hw:mem_page_size": re.compile(r"^(small|large|any|[0-9]+([kKmMgG][bB]?)?)$"),
    "hw:watchdog_action": {"none", "pause", "poweroff", "reset", "disabled"},
    "hw:serial_port_count": re.compile(r"^[0-9]{1,3}$"),
    "hw:pci_numa_affinity_policy": {"required", "preferred", "legacy", "socket"},
    "hw:boot_menu": None, "hw:cpu_realtime": None, "hw:cpu_realtime_mask": None, "hw:cpu_dedicated_mask": None,
    "hw:hide_hypervisor_id": None, "hw:locked_memory": None, "hw:mem_encryption": None,
    "hw:mem_encryption_model": None, "hw:pmem": None, "hw:pmu": None, "hw:vif_multiqueue_enabled": None,
    "hw:virtio_packed_ring": None, "hw:tpm_model": {"tpm-tis", "tpm-crb"}, "hw:tpm_version": {"1.2", "2.0"},
    "hw:tpm_secret_security": None, "hw:ephemeral_encryption": None, "hw:ephemeral_encryption_format": None,
    "hw:sound_model": None, "hw:usb_model": None, "hw:redirected_usb_ports": None, "hw:viommu_model": None,
}
HW_NUMA = re.compile(r"^hw:numa_(cpus|mem)\.[0-9]+$")


def check_extra_spec(key: str, value: str) -> None:
    """Nova's extra-spec validation (2.86): a known key takes only its values; an unknown key of
    a known namespace is a mistake; other namespaces are the operator's own."""
    if key in HW_SPECS:
        allowed = HW_SPECS[key]
        if isinstance(allowed, set) and value not in allowed:
            raise BadRequest(f"Validation failed; {value!r} is not one of {sorted(allowed)} for extra spec {key}.")
        if isinstance(allowed, re.Pattern) and not allowed.match(value):
            raise BadRequest(f"Validation failed; {value!r} is not a valid value for extra spec {key}.")
        return
    if key.split(":", 1)[0] == "hw" and ":" in key and not HW_NUMA.match(key):
        raise BadRequest(f"Validation failed; extra spec '{key}' does not appear to be a valid extra spec.")


def base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}/v2.1"


def view(request: Request, f: Flavor, detail: bool = True) -> dict[str, Any]:
    links = [{"rel": "self", "href": f"{base(request)}/flavors/{f.id}"},
             {"rel": "bookmark", "href": f"{base(request)}/flavors/{f.id}"}]
    out: dict[str, Any] = {"id": f.id, "name": f.name, "links": links}
    if at_least(request, 55):
        out["description"] = f.description
    if not detail:
        return out
    out.update({"ram": f.ram, "vcpus": f.vcpus, "disk": f.disk, "OS-FLV-EXT-DATA:ephemeral": f.ephemeral,
                "OS-FLV-DISABLED:disabled": f.disabled, "os-flavor-access:is_public": f.is_public,
                "rxtx_factor": f.rxtx_factor, "swap": f.swap if (f.swap or at_least(request, 75)) else ""})
    if at_least(request, 61):
        out["extra_specs"] = f.extra_specs or {}
    return out


def integer(data: dict[str, Any], key: str, minimum: int, default: int | None = None) -> int:
    value = data.get(key, default)
    if value is None:
        raise BadRequest(f"Invalid input for field/attribute {key}: it is required.")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= 2**31 - 1:
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value!r}: an integer >= {minimum}.")
    return value


MAX_LIMIT = 1000  # Nova's [api] max_limit
# Nova's boolean parameter type (the strings it takes for true and false)
TRUE_WORDS = {"true", "1", "on", "yes"}
FALSE_WORDS = {"false", "0", "off", "no"}
# the strict words oslo's bool_from_string knows, for the list's is_public filter
STRICT_TRUE = TRUE_WORDS | {"t", "y"}
STRICT_FALSE = FALSE_WORDS | {"f", "n"}
FLAVOR_ID = re.compile(r"^(?! )[a-zA-Z0-9. _-]{1,255}(?<! )$")


def public_filter(raw: str) -> bool | None:
    """An admin's ``is_public`` filter as Nova reads it: ``none`` (any case) lists public and
    private flavors, a strict boolean word one kind, anything else is refused."""
    word = raw.strip().lower()
    if word == "none":
        return None
    if word in STRICT_TRUE:
        return True
    if word in STRICT_FALSE:
        return False
    raise BadRequest(f"Invalid is_public filter [{raw}]")


def boolean(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in TRUE_WORDS | FALSE_WORDS:
        return value.lower() in TRUE_WORDS
    raise BadRequest(f"Invalid input for field/attribute {field}. Value: {value!r}. It is not a boolean.")


def flavor_id(value: Any) -> str:
    """The id asked for: Nova takes a string or a number (kept as its text), 1-255 letters,
    digits, '.', '-', '_' and inner spaces."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadRequest(f"Invalid input for field/attribute id. Value: {value!r}. It must be a string or a number.")
    text = str(value)
    if not FLAVOR_ID.match(text):
        raise BadRequest(f"Invalid input for field/attribute id. Value: {text!r}. 1-255 letters, digits, '.', '-', "
                         "'_' or inner spaces.")
    return text


def router(svc: ComputeService) -> Router:
    r = Router()

    async def listing(request: Request, detail: bool) -> Response:
        auth = authorize(request, "compute:flavors:index")
        q = request.query_params
        # Nova: an admin sees the public flavors unless it asks (is_public=false|none); everyone
        # else sees the public ones and the private ones shared with the project
        is_public: bool | None = True if auth.is_admin() else None
        if "is_public" in q and auth.is_admin():
            is_public = public_filter(q["is_public"])
        rows = await svc.flavors(auth.project_id, auth.is_admin(), is_public)
        for key, attr in (("minRam", "ram"), ("minDisk", "disk")):
            if key in q:
                try:
                    minimum = int(q[key])
                except ValueError:
                    raise BadRequest(f"Invalid {key} value {q[key]!r}.") from None
                rows = [f for f in rows if getattr(f, attr) >= minimum]
        sort_key, sort_dir = q.get("sort_key", "flavorid"), q.get("sort_dir", "asc")
        field = {"flavorid": "id", "memory_mb": "ram"}.get(sort_key, sort_key)
        if field not in ("id", "name", "ram", "vcpus", "disk", "swap", "ephemeral", "rxtx_factor"):
            raise BadRequest(f"Invalid sort_key {sort_key}.")
        rows.sort(key=lambda f: getattr(f, field), reverse=sort_dir == "desc")
        if "marker" in q:
            ids = [f.id for f in rows]
            if q["marker"] not in ids:
                raise BadRequest(f"marker [{q['marker']}] not found")
            rows = rows[ids.index(q["marker"]) + 1:]
        body: dict[str, Any] = {}
        if "limit" in q:
            limit = int(q["limit"]) if q["limit"].isdigit() and len(q["limit"]) <= 12 else -1
            if limit < 0:
                raise BadRequest("limit must be a non-negative integer.")
            limit = min(limit or MAX_LIMIT, MAX_LIMIT)  # as Nova: 0 (or too many) means the most a page holds
            if len(rows) > limit:
                rows = rows[:limit]
                body["flavors_links"] = [{"rel": "next", "href": f"{base(request)}/flavors?limit={limit}"
                                                                  f"&marker={rows[-1].id}"}]
        body["flavors"] = [view(request, f, detail) for f in rows]
        return JSON(body)

    @r.get("/v2.1/flavors")
    async def list_flavors(request: Request) -> Response:
        return await listing(request, detail=False)

    @r.get("/v2.1/flavors/detail")
    async def list_flavors_detail(request: Request) -> Response:
        return await listing(request, detail=True)

    @r.post("/v2.1/flavors")
    async def create_flavor(request: Request) -> Response:
        authorize(request, "os_compute_api:os-flavor-manage:create")
        body = await json_body(request)
        data = body.get("flavor") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise BadRequest("Invalid input: the request body needs a 'flavor' object.")
        name = data.get("name")
        if not isinstance(name, str) or not name.strip() or not NAME.match(name):
            raise BadRequest("Invalid input for field/attribute name: 1-255 letters, digits, spaces, '.', '-', '_'.")
        values: dict[str, Any] = {"name": name.strip(), "vcpus": integer(data, "vcpus", 1),
                                  "ram": integer(data, "ram", 1), "disk": integer(data, "disk", 0),
                                  "ephemeral": integer(data, "OS-FLV-EXT-DATA:ephemeral", 0, 0),
                                  "swap": integer(data, "swap", 0, 0) if data.get("swap") != "" else 0,
                                  "is_public": boolean(data.get("os-flavor-access:is_public", True),
                                                       "os-flavor-access:is_public")}
        rxtx = data.get("rxtx_factor", 1.0)
        if not isinstance(rxtx, (int, float)) or isinstance(rxtx, bool) or rxtx <= 0:
            raise BadRequest("rxtx_factor must be a positive number.")
        values["rxtx_factor"] = float(rxtx)
        # Nova makes the id of a flavor created without one a UUID (in its dashed form)
        values["id"] = flavor_id(data["id"]) if data.get("id") is not None else str(uuid.uuid4())
        if "description" in data:
            if not at_least(request, 55):
                raise BadRequest("Additional properties are not allowed ('description' was unexpected).")
            if data["description"] is not None and (not isinstance(data["description"], str)
                                                    or len(data["description"]) > 65535):
                raise BadRequest("description must be a string of at most 65535 characters or null.")
            values["description"] = data["description"]
        flavor = await svc.create_flavor(values)
        return JSON({"flavor": view(request, flavor)})

    @r.get("/v2.1/flavors/{flavor_id}")
    async def show_flavor(request: Request) -> Response:
        auth = authorize(request, "compute:flavors:show")
        flavor = await svc.flavor(request.path_params["flavor_id"], auth.project_id, auth.is_admin())
        return JSON({"flavor": view(request, flavor)})

    @r.put("/v2.1/flavors/{flavor_id}")
    async def update_flavor(request: Request) -> Response:
        if not at_least(request, 55):
            raise NotFound("Updating a flavor needs microversion 2.55 or later.")
        authorize(request, "os_compute_api:os-flavor-manage:update")
        body = await json_body(request)
        data = body.get("flavor") if isinstance(body, dict) else None
        if not isinstance(data, dict) or set(data) != {"description"}:
            raise BadRequest("Only the description of a flavor can be updated: {\"flavor\": {\"description\": ...}}.")
        if data["description"] is not None and not isinstance(data["description"], str):
            raise BadRequest("description must be a string or null.")
        flavor = await svc.update_flavor(request.path_params["flavor_id"], {"description": data["description"]})
        return JSON({"flavor": view(request, flavor)})

    @r.delete("/v2.1/flavors/{flavor_id}")
    async def delete_flavor(request: Request) -> Response:
        authorize(request, "os_compute_api:os-flavor-manage:delete")
        await svc.delete_flavor(request.path_params["flavor_id"])
        return Response(status_code=202)

    # -- extra specs ------------------------------------------------------------------------
    @r.route("/v2.1/flavors/{flavor_id}/os-extra_specs", ["GET", "POST"])
    async def extra_specs(request: Request) -> Response:
        auth = authorize(request, "os_compute_api:os-flavor-extra-specs:index" if request.method in ("GET", "HEAD")
                         else "os_compute_api:os-flavor-extra-specs:create")
        flavor = await svc.flavor(request.path_params["flavor_id"], auth.project_id, auth.is_admin())
        if request.method == "GET":
            return JSON({"extra_specs": flavor.extra_specs or {}})
        body = await json_body(request)
        specs = body.get("extra_specs") if isinstance(body, dict) else None
        if not isinstance(specs, dict) or not specs:
            raise BadRequest("The request body needs a non-empty 'extra_specs' object.")
        for key, value in specs.items():
            if not SPEC_KEY.match(key):
                raise BadRequest(f"Invalid extra spec key {key!r}.")
            if not isinstance(value, (str, int, float, bool)) or len(str(value)) > 255:
                raise BadRequest(f"Invalid value for extra spec {key}: a string of at most 255 characters.")
            if at_least(request, 86):
                check_extra_spec(key, str(value))
        merged = {**(flavor.extra_specs or {}), **{k: str(v) for k, v in specs.items()}}
        await svc.update_flavor(flavor.id, {"extra_specs": merged})
        return JSON({"extra_specs": {k: str(v) for k, v in specs.items()}})

    @r.route("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", ["GET", "PUT", "DELETE"])
    async def extra_spec(request: Request) -> Response:
        auth = authorize(request, {"GET": "os_compute_api:os-flavor-extra-specs:show",
                                   "PUT": "os_compute_api:os-flavor-extra-specs:update",
                                   "DELETE": "os_compute_api:os-flavor-extra-specs:delete"}[verb(request)])
        flavor = await svc.flavor(request.path_params["flavor_id"], auth.project_id, auth.is_admin())
        key = request.path_params["key"]
        specs = dict(flavor.extra_specs or {})
        if request.method == "GET":
            if key not in specs:
                raise NotFound(f"Flavor {flavor.id} has no extra specs with key {key}.")
            return JSON({key: specs[key]})
        if request.method == "DELETE":
            if key not in specs:
                raise NotFound(f"Flavor {flavor.id} has no extra specs with key {key}.")
            specs.pop(key)
            await svc.update_flavor(flavor.id, {"extra_specs": specs})
            return Response(status_code=200)  # Nova answers 200 here
        body = await json_body(request)
        if not isinstance(body, dict) or list(body) != [key]:
            raise BadRequest("The request body must hold exactly the key named in the URL.")
        if at_least(request, 86):
            check_extra_spec(key, str(body[key]))
        specs[key] = str(body[key])
        await svc.update_flavor(flavor.id, {"extra_specs": specs})
        return JSON({key: specs[key]})

    # -- access lists -----------------------------------------------------------------------
    @r.get("/v2.1/flavors/{flavor_id}/os-flavor-access")
    async def list_access(request: Request) -> Response:
        authorize(request, "os_compute_api:os-flavor-access")
        flavor = await svc.flavor(request.path_params["flavor_id"], None, True)
        if flavor.is_public:
            raise NotFound("Access list not available for public flavors.")
        return JSON({"flavor_access": [{"flavor_id": flavor.id, "tenant_id": p}
                                       for p in await svc.flavor_access(flavor.id)]})

    @r.post("/v2.1/flavors/{flavor_id}/action")
    async def access_action(request: Request) -> Response:
        flavor = await svc.flavor(request.path_params["flavor_id"], None, True)
        body = await json_body(request)
        action = next((k for k in ("addTenantAccess", "removeTenantAccess") if isinstance(body, dict) and k in body),
                      None)
        authorize(request, "os_compute_api:os-flavor-access:remove_tenant_access" if action == "removeTenantAccess"
                  else "os_compute_api:os-flavor-access:add_tenant_access")
        tenant = body[action].get("tenant") if action and isinstance(body[action], dict) else None
        if action is None or not isinstance(tenant, str) or not tenant:
            raise BadRequest("Expected {\"addTenantAccess\": {\"tenant\": ID}} or removeTenantAccess.")
        await svc.set_flavor_access(flavor, tenant, add=action == "addTenantAccess")
        return JSON({"flavor_access": [{"flavor_id": flavor.id, "tenant_id": p}
                                       for p in await svc.flavor_access(flavor.id)]})

    return r
