"""Tags on networks, subnets, ports, routers, floating IPs, security groups and subnet pools
(Neutron's ``standard-attr-tag``): ``/v2.0/{resources}/{id}/tags[/{tag}]`` and the list filters
``tags``, ``tags-any``, ``not-tags``, ``not-tags-any`` (comma-separated tags).

A tag is a string of 1 to 255 characters; a resource holds each tag once.  Changing tags is a
change of the resource: its revision number goes up.  Anyone who sees a resource reads its tags;
its project (or an admin) changes them.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.db import Database
from cumulo.core.http.app import JSON, Router, auth_of, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, Forbidden, NotFound
from cumulo.network import access, models
from cumulo.network.policies import SINGULAR, VERB, tag_target

MAX_TAG_LEN = 255
FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")
# collection in the URL -> (table, the name its faults use)
RESOURCES: dict[str, tuple[Any, str]] = {
    "networks": (models.Network, "Network"), "subnets": (models.Subnet, "Subnet"), "ports": (models.Port, "Port"),
    "routers": (models.Router, "Router"), "floatingips": (models.FloatingIP, "FloatingIP"),
    "security-groups": (models.SecurityGroup, "SecurityGroup"), "subnetpools": (models.SubnetPool, "SubnetPool")}


def check_tag(tag: Any) -> str:
    if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_LEN:
        raise BadRequest(f"Invalid input for tags. Reason: '{tag}' is not a string of 1 to {MAX_TAG_LEN} "
                         "characters.", kind="InvalidInput")
    return tag


def check_tags(tags: Any) -> list[str]:
    """A list of tags as a request gives it, each once, in the order given."""
    if not isinstance(tags, list):
        raise BadRequest(f"Invalid input for tags. Reason: '{tags}' is not a list.", kind="InvalidInput")
    return list(dict.fromkeys(check_tag(t) for t in tags))


def filtered(items: list[dict[str, Any]], query: QueryParams) -> list[dict[str, Any]]:
    """Apply the four tag filters; each value is a comma-separated list (repeating the key adds to it)."""
    for key in FILTERS:
        if key not in query:
            continue
        wanted = {t for value in query.getlist(key) for t in value.split(",") if t}
        if not wanted:
            continue

        def keep(item: dict[str, Any], key: str = key, wanted: set[str] = wanted) -> bool:
            have = set(item.get("tags") or [])
            return {"tags": wanted <= have, "tags-any": bool(wanted & have),
                    "not-tags": not wanted <= have, "not-tags-any": not wanted & have}[key]

        items = [i for i in items if keep(i)]
    return items


async def visible(db: Database, row: Any, project: str, admin: bool) -> bool:
    if admin or row.project_id == project:
        return True
    if isinstance(row, models.Network):
        return row.shared or bool((await access.grants(db, [row.id], project))[row.id])
    if isinstance(row, models.SubnetPool):
        return row.shared
    if isinstance(row, models.Subnet):
        async with db.session() as s:
            net = await s.get(models.Network, row.network_id)
        return net is not None and (net.shared or net.external)
    return False


def router(db: Database) -> Router:
    r = Router()

    async def resource(request: Request, change: bool) -> Any:
        """The tagged resource (a 404 when the caller cannot see it), once ``<verb>_<resource>:tags``
        allows the caller on it."""
        collection, resource_id = request.path_params["collection"], request.path_params["resource_id"]
        if collection not in RESOURCES:
            raise NotFound(f"The resource could not be found: {collection} has no tags.")
        model, name = RESOURCES[collection]
        auth = auth_of(request)
        project, admin = auth.project_id or "", auth.is_admin()
        async with db.session() as s:
            row = await s.get(model, resource_id)
        if row is None or not await visible(db, row, project, admin):
            raise NotFound(f"{name} {resource_id} could not be found.", kind=f"{name}NotFound")
        if change and not admin and row.project_id != project:
            raise Forbidden(f"(rule:update_{collection.replace('-', '_')}_tags) is disallowed by policy: "
                            f"{name} {resource_id} belongs to another project.")
        net = None
        if isinstance(row, (models.Subnet, models.Port)):
            async with db.session() as s:
                net = await s.get(models.Network, row.network_id)
        authorize(request, f"{VERB[request.method]}_{SINGULAR[collection]}:tags", tag_target(row, net))
        return row

    async def store(row: Any, tags: list[str]) -> list[str]:
        async with db.session() as s:
            fresh = await s.get(type(row), row.id)
            if fresh is None:
                raise NotFound(f"{type(row).__name__} {row.id} could not be found.")
            if list(fresh.tags or []) != tags:
                fresh.tags = tags
                fresh.revision_number += 1
        return tags

    @r.route("/v2.0/{collection}/{resource_id}/tags", ["GET", "PUT", "DELETE"])
    async def all_tags(request: Request) -> Response:
        row = await resource(request, request.method != "GET")
        if request.method == "GET":
            return JSON({"tags": list(row.tags or [])})
        if request.method == "DELETE":
            await store(row, [])
            return Response(status_code=204)
        data = await json_body(request)
        if not isinstance(data, dict) or "tags" not in data:
            raise BadRequest("Resource body required: a 'tags' list.")
        return JSON({"tags": await store(row, check_tags(data["tags"]))})

    @r.route("/v2.0/{collection}/{resource_id}/tags/{tag}", ["GET", "PUT", "DELETE"])
    async def one_tag(request: Request) -> Response:
        row = await resource(request, request.method != "GET")
        tag = check_tag(request.path_params["tag"])
        have = list(row.tags or [])
        if request.method == "PUT":
            if tag not in have:
                await store(row, [*have, tag])
            return Response(status_code=201)
        if tag not in have:
            raise NotFound(f"Tag {tag} could not be found for {type(row).__name__} {row.id}.", kind="TagNotFound")
        if request.method == "DELETE":
            await store(row, [t for t in have if t != tag])
        return Response(status_code=204)

    return r

