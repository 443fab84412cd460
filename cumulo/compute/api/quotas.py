"""/v2.1/limits, os-quota-sets, os-quota-class-sets and os-availability-zone."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.common import at_least
from cumulo.compute.service import DEFAULT_QUOTAS, ComputeService
from cumulo.core.http.app import JSON, Router, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest

# names dropped from quota documents at 2.36 (network) and 2.57 (injected files)
NETWORK_QUOTAS = {"floating_ips": -1, "fixed_ips": -1, "security_groups": -1, "security_group_rules": -1}
FILE_QUOTAS = {"injected_files", "injected_file_content_bytes", "injected_file_path_bytes"}


def shaped(request: Request, quotas: dict[str, Any], legacy: dict[str, int] | None = None) -> dict[str, Any]:
    """The quota document at the request's microversion; ``legacy`` holds the network quotas
    (before 2.36) a caller has set, which nothing enforces: the Network API has its own."""
    out = dict(quotas)
    if not at_least(request, 36):
        out.update(NETWORK_QUOTAS)
        out.update(legacy or {})
    if at_least(request, 57):
        for name in FILE_QUOTAS:
            out.pop(name, None)
    return out


def router(svc: ComputeService) -> Router:
    r = Router()

    @r.get("/v2.1/limits")
    async def limits(request: Request) -> Response:
        auth = authorize(request, "os_compute_api:limits")
        project = request.query_params.get("tenant_id") or auth.project_id
        if project != auth.project_id:
            authorize(request, "os_compute_api:limits:other_project", {"project_id": project})
        q = await svc.quotas(project)
        absolute: dict[str, Any] = {
            "maxTotalInstances": q["instances"], "maxTotalCores": q["cores"], "maxTotalRAMSize": q["ram"],
            "maxServerMeta": q["metadata_items"], "maxTotalKeypairs": q["key_pairs"],
            "maxServerGroups": q["server_groups"], "maxServerGroupMembers": q["server_group_members"],
            "totalServerGroupsUsed": 0}
        used = await svc.usage(project) if project else {"instances": 0, "cores": 0, "ram": 0}
        absolute.update(totalInstancesUsed=used["instances"], totalCoresUsed=used["cores"], totalRAMUsed=used["ram"])
        if not at_least(request, 57):
            absolute.update(maxPersonality=q["injected_files"], maxPersonalitySize=q["injected_file_content_bytes"],
                            maxImageMeta=q["metadata_items"])
        if not at_least(request, 36):
            absolute.update(maxTotalFloatingIps=-1, maxSecurityGroups=-1, maxSecurityGroupRules=-1,
                            totalFloatingIpsUsed=0, totalSecurityGroupsUsed=0)
        return JSON({"limits": {"rate": [], "absolute": absolute}})

    async def legacy(project: str | None) -> dict[str, int]:
        """The network quotas set through this API (kept as compute limits of their Nova names)."""
        if project is None:
            registered = await svc.identity.registered_limits("compute")
            return {name: registered[name] for name in NETWORK_QUOTAS if name in registered}
        out = {}
        for name in NETWORK_QUOTAS:
            value = await svc.identity.limit(project, "compute", name)
            if value is not None:
                out[name] = value
        return out

    async def save(request: Request, project: str | None, values: dict[str, int]) -> None:
        await svc.set_limits(project, {k: v for k, v in values.items() if k not in NETWORK_QUOTAS})
        network = {k: v for k, v in values.items() if k in NETWORK_QUOTAS}
        if network:
            await svc.identity.set_limits("compute", project, network)

    def check_values(request: Request, body: Any, key: str) -> dict[str, int]:
        data = body.get(key) if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise BadRequest(f"The request body needs a '{key}' object.")
        known = set(DEFAULT_QUOTAS)
        if not at_least(request, 36):  # Nova takes the network quotas until 2.36 (and ignores them)
            known |= set(NETWORK_QUOTAS)
        if at_least(request, 57):
            known -= FILE_QUOTAS
        values = {}
        for name, value in data.items():
            if name == "force" or name == "id":
                continue
            if name not in known:
                raise BadRequest(f"Bad key(s) {name} in quota_set.")
            if isinstance(value, str) and value.lstrip("-").isdigit():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool) or value < -1:
                raise BadRequest(f"Invalid value for quota {name}: an integer >= -1.")
            values[name] = value
        return values

    @r.get("/v2.1/os-quota-sets/{project_id}")
    async def quota_set(request: Request) -> Response:
        project = request.path_params["project_id"]
        authorize(request, "os_compute_api:os-quota-sets:show", {"project_id": project})
        return JSON({"quota_set": {"id": project, **shaped(request, await svc.quotas(project), await legacy(project))}})

    @r.get("/v2.1/os-quota-sets/{project_id}/defaults")
    async def quota_defaults(request: Request) -> Response:
        authorize(request, "os_compute_api:os-quota-sets:defaults")
        return JSON({"quota_set": {"id": request.path_params["project_id"],
                                   **shaped(request, await svc.defaults(), await legacy(None))}})

    @r.get("/v2.1/os-quota-sets/{project_id}/detail")
    async def quota_detail(request: Request) -> Response:
        project = request.path_params["project_id"]
        auth = authorize(request, "os_compute_api:os-quota-sets:detail", {"project_id": project})
        quotas = shaped(request, await svc.quotas(project), await legacy(project))
        in_use = {"key_pairs": await svc.key_pair_count(auth.user_id), **await svc.usage(project)}
        return JSON({"quota_set": {"id": project, **{k: {"limit": v, "in_use": in_use.get(k, 0), "reserved": 0}
                                                     for k, v in quotas.items()}}})

    @r.put("/v2.1/os-quota-sets/{project_id}")
    async def update_quota_set(request: Request) -> Response:
        project = request.path_params["project_id"]
        authorize(request, "os_compute_api:os-quota-sets:update", {"project_id": project})
        await save(request, project, check_values(request, await json_body(request), "quota_set"))
        return JSON({"quota_set": shaped(request, await svc.quotas(project), await legacy(project))})

    @r.delete("/v2.1/os-quota-sets/{project_id}")
    async def reset_quota_set(request: Request) -> Response:
        authorize(request, "os_compute_api:os-quota-sets:delete", {"project_id": request.path_params["project_id"]})
        await svc.reset_limits(request.path_params["project_id"])
        return Response(status_code=202)

    @r.get("/v2.1/os-quota-class-sets/{name}")
    async def quota_class(request: Request) -> Response:
        authorize(request, "os_compute_api:os-quota-class-sets:show")
        return JSON({"quota_class_set": {"id": request.path_params["name"],
                                         **shaped(request, await svc.defaults(), await legacy(None))}})

    @r.put("/v2.1/os-quota-class-sets/{name}")
    async def update_quota_class(request: Request) -> Response:
        authorize(request, "os_compute_api:os-quota-class-sets:update")
        if request.path_params["name"] != "default":
            raise BadRequest("Only the 'default' quota class exists.")
        await save(request, None, check_values(request, await json_body(request), "quota_class_set"))
        return JSON({"quota_class_set": shaped(request, await svc.defaults(), await legacy(None))})

    return r
