"""/v3/os-quota-sets/{project}, /v3/limits, /v3/os-availability-zone and /v3/extensions."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest
from cumulo.core.http.paging import parse_bool
from cumulo.volume.api.common import caller, route
from cumulo.volume.service import VolumeService

# the extensions this API's answers carry (Cinder's names)
EXTENSIONS = [
    ("os-vol-host-attr", "VolumeHostAttribute", "Expose host as an attribute of a volume."),
    ("os-vol-tenant-attr", "VolumeTenantAttribute", "Expose the internal project_id as an attribute of a volume."),
    ("os-vol-mig-status-attr", "VolumeMigStatusAttribute", "Expose migration_status as an attribute of a volume."),
    ("os-extended-snapshot-attributes", "ExtendedSnapshotAttributes", "Extended SnapshotAttributes support."),
    ("os-volume-type-access", "VolumeTypeAccess", "Volume type access support."),
    ("qos-specs", "Qos_specs_manage", "QoS specs support."),
    ("os-types-extra-specs", "TypesExtraSpecs", "Type extra specs support."),
    ("os-types-manage", "TypesManage", "Types manage support."),
    ("os-quota-sets", "Quotas", "Quota management support."),
    ("os-availability-zone", "AvailabilityZones", "Describe Availability Zones."),
    ("os-hosts", "Hosts", "Admin-only host administration."),
    ("os-quota-class-sets", "QuotaClasses", "Quota classes management support."),
    ("os-services", "Services", "Services support."),
    ("scheduler-stats", "Scheduler_stats", "Scheduler stats support."),
    ("backups", "Backups", "Backups support."),
    ("os-volume-actions", "VolumeActions", "Enable volume actions."),
    ("os-admin-actions", "AdminActions", "Enable admin actions."),
]


def quota_set(project_id: str, quotas: dict[str, int], usage: dict[str, int] | None = None) -> dict[str, Any]:
    """Cinder's quota set: the limits, the per-type ones included; with ``usage``, each as
    ``{limit, in_use, reserved, allocated}``."""
    values: dict[str, Any] = dict(quotas)
    if usage is not None:
        values = {name: {"limit": limit, "in_use": usage.get(name, 0), "reserved": 0, "allocated": 0}
                  for name, limit in values.items()}
    return {"id": project_id, **values}


async def quota_values(svc: VolumeService, body: dict[str, Any], what: str) -> dict[str, int]:
    """The quotas a PUT sets: Cinder's names and the per-type ones of existing types; others are a 400."""
    known = await svc.quota_defaults()
    bad = sorted(set(body) - set(known))
    if bad:
        raise BadRequest(f"Bad key(s) in {what}: {', '.join(bad)}")
    return {name: int(value) for name, value in body.items()}


def router(svc: VolumeService) -> Router:
    r = Router()

    @route(r, "GET", "/os-quota-sets/{target}")
    async def show_quotas(request: Request) -> Response:
        target = request.path_params["target"]
        authorize(request, "volume_extension:quotas:show", {"project_id": target})
        usage = None
        if parse_bool("usage", request.query_params.get("usage", "false")):
            usage = await svc.usage(target)
        return JSON({"quota_set": quota_set(target, await svc.quotas(target), usage)})

    @route(r, "GET", "/os-quota-sets/{target}/defaults")
    async def default_quotas(request: Request) -> Response:
        target = request.path_params["target"]
        authorize(request, "volume_extension:quotas:show", {"project_id": target})
        return JSON({"quota_set": quota_set(target, await svc.quotas(None))})

    @route(r, "PUT", "/os-quota-sets/{target}")
    async def update_quotas(request: Request) -> Response:
        target = request.path_params["target"]
        authorize(request, "volume_extension:quotas:update", {"project_id": target})
        body = (await json_body(request))["quota_set"]
        body.pop("tenant_id", None)
        values = await quota_values(svc, body, "quota set")
        if values:
            await svc.set_quotas(target, values)
        return JSON({"quota_set": {k: v for k, v in quota_set(target, await svc.quotas(target)).items()
                                   if k != "id"}})

    # -- quota classes: only ``default``, the registered defaults every project starts from -------
    @route(r, "GET", "/os-quota-class-sets/{class_name}")
    async def show_quota_class(request: Request) -> Response:
        authorize(request, "volume_extension:quota_classes")
        name = request.path_params["class_name"]
        return JSON({"quota_class_set": {**quota_set(name, await svc.quotas(None)), "id": name}})

    @route(r, "PUT", "/os-quota-class-sets/{class_name}")
    async def update_quota_class(request: Request) -> Response:
        authorize(request, "volume_extension:quota_classes")
        if request.path_params["class_name"] != "default":
            raise BadRequest("Only the default quota class can be changed here: its values are every project's "
                             "defaults.")
        body = (await json_body(request))["quota_class_set"]
        values = await quota_values(svc, body, "quota class set")
        if values:
            await svc.set_quotas(None, values)
        return JSON({"quota_class_set": {k: v for k, v in quota_set("default", await svc.quotas(None)).items()
                                         if k != "id"}})

    @route(r, "DELETE", "/os-quota-sets/{target}")
    async def delete_quotas(request: Request) -> Response:
        target = request.path_params["target"]
        authorize(request, "volume_extension:quotas:delete", {"project_id": target})
        await svc.reset_quotas(target)
        return Response(status_code=200)

    @route(r, "GET", "/limits")
    async def limits(request: Request) -> Response:
        who = caller(request)
        authorize(request, "limits_extension:used_limits")
        q, used = await svc.quotas(who.project_id), await svc.usage(who.project_id)
        return JSON({"limits": {"rate": [], "absolute": {
            "maxTotalVolumes": q["volumes"], "maxTotalSnapshots": q["snapshots"],
            "maxTotalVolumeGigabytes": q["gigabytes"], "maxTotalBackups": q["backups"],
            "maxTotalBackupGigabytes": q["backup_gigabytes"], "totalVolumesUsed": used["volumes"],
            "totalSnapshotsUsed": used["snapshots"], "totalGigabytesUsed": used["gigabytes"],
            "totalBackupsUsed": used["backups"], "totalBackupGigabytesUsed": used["backup_gigabytes"]}}})

    @route(r, "GET", "/os-availability-zone")
    async def availability_zones(request: Request) -> Response:
        authorize(request, "volume_extension:availability_zone_list")
        return JSON({"availabilityZoneInfo": [{"zoneName": svc.cfg.volume.availability_zone,
                                               "zoneState": {"available": True}}]})

    @route(r, "GET", "/extensions")
    async def extensions(request: Request) -> Response:
        authorize(request, "volume_extension:list")
        return JSON({"extensions": [
            {"alias": alias, "name": name, "description": description, "links": [],
             "namespace": f"https://docs.openstack.org/volume/ext/{alias}/api/v1",
             "updated": "2023-01-01T00:00:00+00:00"}
            for alias, name, description in EXTENSIONS]})

    return r
