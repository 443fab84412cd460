"""The launch wizard (``/project/instances/launch``): one form that becomes one ``POST /servers``.

Its select lists each come from one API call, made side by side: compute's limits (what each
flavor would use of the quota left), flavors, images (an instance snapshot is an image with
``image_type=snapshot``), the project's available volumes (boot from volume through
``block_device_mapping_v2``), networks (the project's and the shared ones), security groups, key
pairs, server groups and availability zones.  When Nova refuses, the form comes back (400) with Nova's words beside
the field they are about, and what the user had typed.
"""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from cumulo.dashboard.app import Dashboard
from cumulo.dashboard.client import Api, ApiError
from cumulo.dashboard.session import Session

SOURCES = ("image", "snapshot", "volume")
USER_DATA_MAX = 65535  # Nova's limit, once decoded

# which field a fault of POST /servers is about, by the words Nova uses (first match wins)
FIELD_OF_FAULT: list[tuple[str, re.Pattern[str]]] = [
    ("count", re.compile(r"min_count|max_count|Quota exceeded for instances|server_group_members", re.I)),
    ("flavor", re.compile(r"flavor|Quota exceeded for (cores|ram)", re.I)),
    ("server_group", re.compile(r"server group|scheduler_hints", re.I)),
    ("key_name", re.compile(r"key_name|key ?pair", re.I)),
    ("availability_zone", re.compile(r"availability.?zone", re.I)),
    ("security_groups", re.compile(r"security.?group", re.I)),
    ("user_data", re.compile(r"user_data", re.I)),
    ("networks", re.compile(r"network|port|fixed ip|address", re.I)),
    ("source", re.compile(r"image|volume|block.?device|boot", re.I)),
    ("name", re.compile(r"\bname\b", re.I)),
]


def field_of(message: str) -> str:
    """The form field a fault's message is about ("" when none: it is shown above the form)."""
    for name, pattern in FIELD_OF_FAULT:
        if pattern.search(message):
            return name
    return ""


async def quietly(coro: Any, default: Any) -> Any:
    """A list whose service does not run (or whose rule forbids it) is empty, not a failed page."""
    try:
        return await coro
    except ApiError:
        return default


def room(limits: dict[str, Any]) -> dict[str, int | None]:
    """What the project has left of instances, vCPUs and RAM (None: no limit)."""
    out: dict[str, int | None] = {}
    for key, limit, used in (("instances", "maxTotalInstances", "totalInstancesUsed"),
                             ("vcpus", "maxTotalCores", "totalCoresUsed"),
                             ("ram", "maxTotalRAMSize", "totalRAMUsed")):
        cap = limits.get(limit)
        out[key] = None if cap in (None, -1) else max(0, int(cap) - int(limits.get(used) or 0))
    return out


def flavor_fit(flavor: dict[str, Any], left: dict[str, int | None]) -> dict[str, Any]:
    """How many servers of ``flavor`` the quota left allows (None: no limit) and what one uses of it."""
    fits: list[int] = []
    for key, each in (("instances", 1), ("vcpus", int(flavor.get("vcpus") or 0)), ("ram", int(flavor.get("ram") or 0))):
        if left[key] is not None and each > 0:
            fits.append(int(left[key] or 0) // each)
    return {"flavor": flavor, "fits": min(fits) if fits else None}


def bootable(image: dict[str, Any]) -> bool:
    """Not a kernel or ramdisk image (those are a bootable image's parts), as Horizon leaves them out."""
    return image.get("disk_format") not in ("aki", "ari") and image.get("container_format") not in ("aki", "ari")


async def choices(api: Api, session: Session) -> dict[str, Any]:
    """Every select list of the form: one call each, all at once."""
    has_volume = api.catalog.has("block-storage")
    (limits, flavors, images, volumes, networks, groups, keypairs, server_groups, zones) = await asyncio.gather(
        quietly(api.get("compute", "/limits"), {"limits": {"absolute": {}}}),
        api.get("compute", "/flavors/detail", sort_key="memory_mb", sort_dir="asc"),
        quietly(api.get("image", "/v2/images", status="active", sort="name:asc", limit=1000), {"images": []}),
        quietly(api.get("block-storage", "/volumes/detail", status="available", limit=1000), {"volumes": []})
        if has_volume else asyncio.sleep(0, {"volumes": []}),
        quietly(api.get("network", "/v2.0/networks", fields=["id", "name", "shared", "project_id", "status",
                                                              "router:external"]), {"networks": []}),
        quietly(api.get("network", "/v2.0/security-groups", fields=["id", "name", "project_id", "description"]),
                {"security_groups": []}),
        quietly(api.get("compute", "/os-keypairs"), {"keypairs": []}),
        quietly(api.get("compute", "/os-server-groups"), {"server_groups": []}),
        quietly(api.get("compute", "/os-availability-zone"), {"availabilityZoneInfo": []}))
    left = room(limits["limits"]["absolute"])
    own = session.project_id
    all_images = images.get("images", [])
    return {
        "limits": limits["limits"]["absolute"], "left": left,
        "flavors": [flavor_fit(f, left) for f in flavors.get("flavors", [])],
        "images": [i for i in all_images if i.get("image_type") != "snapshot" and bootable(i)],
        "snapshots": [i for i in all_images if i.get("image_type") == "snapshot"],
        "volumes": volumes.get("volumes", []),
        # an admin's list holds every project's: offer this project's and the shared ones only
        "networks": [n for n in networks.get("networks", []) if n.get("project_id") == own or n.get("shared")],
        "security_groups": [g for g in groups.get("security_groups", []) if g.get("project_id") == own],
        "keypairs": [k["keypair"] for k in keypairs.get("keypairs", [])],
        "server_groups": [g for g in server_groups.get("server_groups", [])
                          if g.get("project_id") in (own, None)],
        "zones": [z["zoneName"] for z in zones.get("availabilityZoneInfo", [])
                  if (z.get("zoneState") or {}).get("available", True)],
        "has_volume": has_volume,
    }


def server_body(form: FormData) -> tuple[dict[str, Any], dict[str, str]]:
    """The body of POST /servers from the form, and the mistakes found before asking Nova."""
    errors: dict[str, str] = {}
    server: dict[str, Any] = {"name": str(form.get("name", "")), "flavorRef": str(form.get("flavor", ""))}
    if not server["flavorRef"]:
        errors["flavor"] = "Choose a flavor."
    source = str(form.get("source", "image"))
    if source not in SOURCES:
        source = "image"
    chosen = str(form.get(f"{source}_id", ""))
    if not chosen:
        errors["source"] = f"Choose the {'instance snapshot' if source == 'snapshot' else source} to boot from."
    elif source == "volume":
        server["block_device_mapping_v2"] = [{
            "boot_index": 0, "uuid": chosen, "source_type": "volume", "destination_type": "volume",
            "delete_on_termination": form.get("delete_volume") == "on"}]
    elif source == "image" and str(form.get("volume_size", "")).strip():
        # the image copied onto a new volume the server boots from (Horizon's "Create New Volume")
        size = str(form.get("volume_size")).strip()
        server["block_device_mapping_v2"] = [{
            "boot_index": 0, "uuid": chosen, "source_type": "image", "destination_type": "volume",
            "volume_size": int(size) if size.isdigit() else size,
            "delete_on_termination": form.get("delete_new_volume") == "on"}]
    else:
        server["imageRef"] = chosen
    nets = [str(n) for n in form.getlist("networks") if n]
    server["networks"] = [{"uuid": n} for n in nets] if nets else "none"
    groups = [str(g) for g in form.getlist("security_groups") if g]
    if groups:
        server["security_groups"] = [{"name": g} for g in groups]
    if form.get("key_name"):
        server["key_name"] = str(form.get("key_name"))
    if form.get("availability_zone"):
        server["availability_zone"] = str(form.get("availability_zone"))
    user_data = str(form.get("user_data", ""))
    if user_data:
        raw = user_data.replace("\r\n", "\n").encode()
        if len(raw) > USER_DATA_MAX:
            errors["user_data"] = f"User data is limited to {USER_DATA_MAX} bytes (this is {len(raw)})."
        server["user_data"] = base64.b64encode(raw).decode()
    count = str(form.get("count", "1")).strip()[:6] or "1"  # int() of thousands of digits is slow
    number: int | str = int(count) if count.isdigit() else count  # Nova says what is wrong with the rest
    server["min_count"] = server["max_count"] = number
    body: dict[str, Any] = {"server": server}
    if form.get("server_group"):
        body["os:scheduler_hints"] = {"group": str(form.get("server_group"))}
    return body, errors


def form_values(form: FormData | None) -> dict[str, Any]:
    """What the user typed and chose, to fill the form again."""
    if form is None:
        return {"source": "image", "count": "1", "networks": [], "security_groups": ["default"]}
    values: dict[str, Any] = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    values["networks"] = [str(v) for v in form.getlist("networks")]
    values["security_groups"] = [str(v) for v in form.getlist("security_groups")]
    return values


def views(d: Dashboard) -> dict[str, Any]:
    async def show(request: Request, session: Session, api: Api, form: FormData | None = None,
                   errors: dict[str, str] | None = None, status: int = 200) -> Response:
        lists = await choices(api, session)
        values = form_values(form)
        if form is None and lists["security_groups"]:
            values["security_groups"] = [g["name"] for g in lists["security_groups"] if g["name"] == "default"]
        return d.render(request, "instance_launch.html", status, title="Launch instance", values=values,
                        errors=errors or {}, sources=SOURCES, **lists)

    async def page(request: Request, session: Session, api: Api) -> Response:
        return await show(request, session, api)

    async def launch(request: Request, session: Session, api: Api) -> Response:
        form = await request.form()
        body, errors = server_body(form)
        if errors:
            return await show(request, session, api, form, errors, 400)
        try:
            r = await api.post("compute", "/servers", body)
        except ApiError as exc:
            if exc.status == 401:
                raise
            field = field_of(exc.message)
            return await show(request, session, api, form, {field or "form": exc.message}, 400)
        count = body["server"]["max_count"]
        server_id = (r.data or {}).get("server", {}).get("id", "")
        words = f"Launching {body['server']['name']}" + (f" ({count} instances)" if count != 1 else "") + "."
        target = "/project/instances" if count != 1 or not server_id else f"/project/instances/{server_id}"
        return d.redirect(target, ("info", words))

    return {"page": page, "launch": launch}
