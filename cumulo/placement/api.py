"""The Placement API (1.0-1.39): resource providers, inventories, traits, aggregates, allocations,
usages, allocation candidates, resource classes.  Writes need the admin or service role."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from cumulo.core.http.app import JSON, Router, create_app, json_body, no_content
from cumulo.core.http.authz import ServicePolicy, authorize
from cumulo.core.http.faults import BadRequest, Conflict, NotFound
from cumulo.core.http.microversion import Microversions, Version
from cumulo.identity.service import IdentityService
from cumulo.placement import policies
from cumulo.placement.schemas import SCHEMAS
from cumulo.placement.service import PlacementService, Provider

MICROVERSIONS = Microversions("placement", Version(1, 0), Version(1, 39))
CONSUMER_TYPE = re.compile(r"^[A-Z0-9_]{1,255}$")
CUSTOM_CLASS = re.compile(r"^CUSTOM_[A-Z0-9_]+$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
INV_FIELDS = {"total", "reserved", "min_unit", "max_unit", "step_size", "allocation_ratio"}


def at_least(request: Request, minor: int) -> bool:
    return request.scope.get("cumulo.version", MICROVERSIONS.minimum) >= Version(1, minor)  # type: ignore[no-any-return]


# the last part of a rule name by method, for a collection and for one item of it
METHOD_RULES = {"GET": "list", "HEAD": "list", "POST": "create", "PUT": "update", "DELETE": "delete"}
ONE_RULES = {"GET": "show", "HEAD": "show", "PUT": "update", "DELETE": "delete"}


def provider_view(request: Request, p: Provider) -> dict[str, Any]:
    base = f"/resource_providers/{p.uuid}"
    links = [{"rel": "self", "href": base}, {"rel": "inventories", "href": f"{base}/inventories"},
             {"rel": "usages", "href": f"{base}/usages"}, {"rel": "aggregates", "href": f"{base}/aggregates"},
             {"rel": "traits", "href": f"{base}/traits"}, {"rel": "allocations", "href": f"{base}/allocations"}]
    out: dict[str, Any] = {"uuid": p.uuid, "name": p.name, "generation": p.generation, "links": links}
    if at_least(request, 14):
        out.update(parent_provider_uuid=p.parent_uuid, root_provider_uuid=p.root_uuid)
    return out


def provider_name(body: Any) -> str:
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        raise BadRequest("A resource provider needs a 'name' of 1 to 200 characters.")
    return name


def parse_resources(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in text.split(","):
        name, _, amount = part.partition(":")
        if not name or not amount.isdigit() or len(amount) > 10 or not 1 <= int(amount) <= 2**31 - 1:
            raise BadRequest(f"Badly formed resources parameter {text!r}: expected RC:N,RC:N with N >= 1.")
        out[name.strip()] = int(amount)
    return out


def parse_member_of(values: list[str]) -> list[list[str]]:
    groups = []
    for value in values:
        ids = value[3:].split(",") if value.startswith("in:") else [value]
        if not all(UUID.match(i) for i in ids):
            raise BadRequest(f"Invalid member_of {value!r}: aggregate UUIDs, optionally 'in:a,b'.")
        groups.append(ids)
    return groups


def parse_required(values: list[str]) -> list[str]:
    out = []
    for value in values:
        out.extend(t.strip() for t in value.split(",") if t.strip())
    return out


def check_inventory(rc: str, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or "total" not in data:
        raise BadRequest(f"Inventory for {rc} needs at least 'total'.")
    unknown = set(data) - INV_FIELDS - {"resource_provider_generation", "resource_class"}
    if unknown:
        raise BadRequest(f"Unknown inventory fields: {', '.join(sorted(unknown))}.")
    out = {}
    for key in INV_FIELDS & set(data):
        value = data[key]
        if key == "allocation_ratio":
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise BadRequest(f"allocation_ratio of {rc} must be a positive number.")
        elif not isinstance(value, int) or isinstance(value, bool) or value < (1 if key in (
                "total", "min_unit", "max_unit", "step_size") else 0) or value > 2**31 - 1:
            raise BadRequest(f"Invalid {key} {value!r} for {rc}.")
        out[key] = value
    return out


def generation_of(body: Any) -> int:
    gen = body.get("resource_provider_generation") if isinstance(body, dict) else None
    if not isinstance(gen, int) or isinstance(gen, bool):
        raise BadRequest("resource_provider_generation is required (an integer).")
    return gen


def router(svc: PlacementService) -> Router:
    r = Router()

    @r.get("/", auth=False)
    async def root(request: Request) -> Response:
        return JSON({"versions": [{"id": "v1.0", "max_version": str(MICROVERSIONS.maximum),
                                   "min_version": str(MICROVERSIONS.minimum), "status": "CURRENT",
                                   "links": [{"rel": "self", "href": ""}]}]})

    # -- providers --------------------------------------------------------------------------
    @r.post("/resource_providers")
    async def create_provider(request: Request) -> Response:
        authorize(request, "placement:resource_providers:create")
        body = await json_body(request)
        name = provider_name(body)
        uuid = body.get("uuid")
        if uuid is not None and (not isinstance(uuid, str) or not UUID.match(uuid)):
            raise BadRequest(f"Invalid uuid {uuid!r}.")
        parent = body.get("parent_provider_uuid")
        if parent is not None and (not at_least(request, 14) or not isinstance(parent, str) or not UUID.match(parent)):
            raise BadRequest("parent_provider_uuid needs microversion 1.14 and a UUID.")
        provider = await svc.create_provider(name, uuid, parent)
        if at_least(request, 20):
            return JSON(provider_view(request, provider))
        return Response(status_code=201, headers={"Location": f"/resource_providers/{provider.uuid}"})

    @r.get("/resource_providers")
    async def list_providers(request: Request) -> Response:
        authorize(request, "placement:resource_providers:list")
        q = request.query_params
        filters: dict[str, Any] = {k: q[k] for k in ("name", "uuid", "in_tree") if k in q}
        if "member_of" in q:
            filters["member_of"] = [i for group in parse_member_of(q.getlist("member_of")) for i in group]
        if "resources" in q:
            filters["resources"] = parse_resources(q["resources"])
        if "required" in q:
            filters["required"] = parse_required(q.getlist("required"))
        rows = await svc.providers(filters)
        return JSON({"resource_providers": [provider_view(request, p) for p in rows]})

    @r.get("/resource_providers/{uuid}")
    async def show_provider(request: Request) -> Response:
        authorize(request, "placement:resource_providers:show")
        return JSON(provider_view(request, await svc.provider(request.path_params["uuid"])))

    @r.put("/resource_providers/{uuid}")
    async def update_provider(request: Request) -> Response:
        authorize(request, "placement:resource_providers:update")
        body = await json_body(request)
        name = provider_name(body)
        current = await svc.provider(request.path_params["uuid"])
        parent = body.get("parent_provider_uuid", current.parent_uuid)
        provider = await svc.update_provider(current.uuid, name, parent)
        return JSON(provider_view(request, provider))

    @r.delete("/resource_providers/{uuid}")
    async def delete_provider(request: Request) -> Response:
        authorize(request, "placement:resource_providers:delete")
        await svc.delete_provider(request.path_params["uuid"])
        return no_content()

    # -- inventories ------------------------------------------------------------------------
    def inv_view(rows: list[Any]) -> dict[str, Any]:
        return {i.resource_class: svc._inv_dict(i) for i in rows}

    @r.route("/resource_providers/{uuid}/inventories", ["GET", "PUT", "POST", "DELETE"])
    async def inventories(request: Request) -> Response:
        authorize(request, f"placement:resource_providers:inventories:{METHOD_RULES[request.method]}")
        uuid = request.path_params["uuid"]
        if request.method == "GET":
            provider, rows = await svc.inventories(uuid)
            return JSON({"resource_provider_generation": provider.generation, "inventories": inv_view(rows)})
        if request.method == "DELETE":
            if not at_least(request, 5):
                raise NotFound("DELETE of all inventories needs microversion 1.5.")
            provider = await svc.provider(uuid)
            await svc.delete_inventory(uuid, provider.generation, None)
            return no_content()
        body = await json_body(request)
        generation = generation_of(body)
        if request.method == "POST":
            rc = body.get("resource_class")
            if not isinstance(rc, str):
                raise BadRequest("resource_class is required.")
            _, rows = await svc.inventories(uuid)
            if rc in {i.resource_class for i in rows}:
                raise Conflict(f"Inventory for {rc} already exists on resource provider {uuid}.")
            new = await svc.set_inventories(uuid, generation, {rc: check_inventory(rc, body)}, replace=False)
            provider, rows = await svc.inventories(uuid)
            inv = inv_view([i for i in rows if i.resource_class == rc])[rc]
            return JSON({**inv, "resource_provider_generation": new}, status_code=201)
        data = body.get("inventories")
        if not isinstance(data, dict):
            raise BadRequest("'inventories' must be an object of resource class -> inventory.")
        new = await svc.set_inventories(uuid, generation, {rc: check_inventory(rc, v) for rc, v in data.items()})
        _, rows = await svc.inventories(uuid)
        return JSON({"resource_provider_generation": new, "inventories": inv_view(rows)})

    @r.route("/resource_providers/{uuid}/inventories/{rc}", ["GET", "PUT", "DELETE"])
    async def inventory(request: Request) -> Response:
        authorize(request, f"placement:resource_providers:inventories:{ONE_RULES[request.method]}")
        uuid, rc = request.path_params["uuid"], request.path_params["rc"]
        if request.method == "GET":
            provider, rows = await svc.inventories(uuid)
            found = inv_view([i for i in rows if i.resource_class == rc])
            if rc not in found:
                raise NotFound(f"No inventory of class {rc} for {uuid}.")
            return JSON({**found[rc], "resource_provider_generation": provider.generation})
        if request.method == "DELETE":
            provider = await svc.provider(uuid)
            await svc.delete_inventory(uuid, provider.generation, rc)
            return no_content()
        body = await json_body(request)
        new = await svc.set_inventories(uuid, generation_of(body), {rc: check_inventory(rc, body)}, replace=False)
        _, rows = await svc.inventories(uuid)
        return JSON({**inv_view([i for i in rows if i.resource_class == rc])[rc], "resource_provider_generation": new})

    # -- traits and aggregates --------------------------------------------------------------
    @r.route("/resource_providers/{uuid}/traits", ["GET", "PUT", "DELETE"])
    async def provider_traits(request: Request) -> Response:
        authorize(request, f"placement:resource_providers:traits:{METHOD_RULES[request.method]}")
        uuid = request.path_params["uuid"]
        provider = await svc.provider(uuid)
        if request.method == "GET":
            return JSON({"traits": await svc.provider_traits(uuid),
                         "resource_provider_generation": provider.generation})
        if request.method == "DELETE":
            await svc.set_provider_traits(uuid, provider.generation, [])
            return no_content()
        body = await json_body(request)
        traits = body.get("traits") if isinstance(body, dict) else None
        if not isinstance(traits, list) or not all(isinstance(t, str) for t in traits):
            raise BadRequest("'traits' must be a list of trait names.")
        new = await svc.set_provider_traits(uuid, generation_of(body), traits)
        return JSON({"traits": sorted(set(traits)), "resource_provider_generation": new})

    @r.route("/resource_providers/{uuid}/aggregates", ["GET", "PUT"])
    async def provider_aggregates(request: Request) -> Response:
        authorize(request, f"placement:resource_providers:aggregates:{METHOD_RULES[request.method]}")
        uuid = request.path_params["uuid"]
        provider = await svc.provider(uuid)
        if request.method == "PUT":
            body = await json_body(request)
            if at_least(request, 19):
                aggs, generation = (body.get("aggregates") if isinstance(body, dict) else None), generation_of(body)
            else:
                aggs, generation = body, None
            if not isinstance(aggs, list) or not all(isinstance(a, str) and UUID.match(a) for a in aggs):
                raise BadRequest("aggregates must be a list of UUIDs.")
            new = await svc.set_aggregates(uuid, generation, aggs)
        else:
            new = provider.generation
        out: dict[str, Any] = {"aggregates": await svc.aggregates(uuid)}
        if at_least(request, 19):
            out["resource_provider_generation"] = new
        return JSON(out)

    # -- usages and allocations -------------------------------------------------------------
    @r.get("/resource_providers/{uuid}/usages")
    async def provider_usages(request: Request) -> Response:
        authorize(request, "placement:resource_providers:usages")
        provider, used = await svc.usages(request.path_params["uuid"])
        return JSON({"usages": used, "resource_provider_generation": provider.generation})

    @r.get("/resource_providers/{uuid}/allocations")
    async def provider_allocations(request: Request) -> Response:
        authorize(request, "placement:resource_providers:allocations:list")
        provider, allocations = await svc.provider_allocations(request.path_params["uuid"])
        return JSON({"allocations": {c: {"resources": res} for c, res in allocations.items()},
                     "resource_provider_generation": provider.generation})

    @r.get("/usages")
    async def project_usages(request: Request) -> Response:
        q = request.query_params
        authorize(request, "placement:usages", {"project_id": q.get("project_id")})
        project = q.get("project_id")
        if not project:
            raise BadRequest("project_id is required.")
        if not at_least(request, 38):
            if "consumer_type" in q:
                raise BadRequest("Invalid query string parameters: 'consumer_type' needs microversion 1.38.")
            return JSON({"usages": await svc.project_usages(project, q.get("user_id"))})
        # 1.38: the usages by consumer type, each with its consumer_count; consumer_type=all sums
        # every consumer under "all", unknown those with no type (which are "unknown" anyway)
        wanted = q.get("consumer_type")
        if wanted is not None and wanted not in ("all", "unknown") and not CONSUMER_TYPE.match(wanted):
            raise BadRequest(f"Invalid query string parameters: {wanted!r} is not a consumer type "
                             "(upper-case letters, digits and _, or all, or unknown).")
        return JSON({"usages": await svc.usages_by_consumer_type(project, q.get("user_id"), wanted)})

    def parse_allocation_request(request: Request, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise BadRequest("The allocation request must be an object.")
        allocations: dict[str, dict[str, int]] = {}
        raw = body.get("allocations")
        if isinstance(raw, list):  # the pre-1.12 list form
            for item in raw:
                rp = (item.get("resource_provider") or {}).get("uuid") if isinstance(item, dict) else None
                if not rp:
                    raise BadRequest("Each allocation needs resource_provider.uuid.")
                allocations[rp] = item.get("resources") or {}
        elif isinstance(raw, dict):
            for rp, item in raw.items():
                if not isinstance(item, dict) or not isinstance(item.get("resources"), dict):
                    raise BadRequest(f"Allocation for {rp} needs a 'resources' object.")
                allocations[rp] = item["resources"]
        else:
            raise BadRequest("'allocations' is required.")
        for rp, resources in allocations.items():
            for rc, amount in resources.items():
                if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
                    raise BadRequest(f"Invalid amount {amount!r} of {rc} for {rp}: an integer >= 1.")
        req: dict[str, Any] = {"allocations": allocations, "project_id": body.get("project_id"),
                               "user_id": body.get("user_id")}
        if at_least(request, 38):  # a consumer's type is required from 1.38 (and unknown to earlier versions)
            kind = body.get("consumer_type")
            if kind is None:
                raise BadRequest("'consumer_type' is a required property")
            if not isinstance(kind, str) or not CONSUMER_TYPE.match(kind):
                raise BadRequest(f"{kind!r} does not match '^[A-Z0-9_]+$'")
            req["consumer_type"] = kind
        elif "consumer_type" in body:
            raise BadRequest("Additional properties are not allowed ('consumer_type' was unexpected): consumer "
                             "types need microversion 1.38.")
        if allocations and (not isinstance(req["project_id"], str) or not isinstance(req["user_id"], str)):
            raise BadRequest("project_id and user_id are required with allocations.")
        if at_least(request, 28):
            if "consumer_generation" not in body:
                raise BadRequest("consumer_generation is required from microversion 1.28.")
            req["consumer_generation"] = body["consumer_generation"]
        return req

    @r.route("/allocations/{consumer}", ["GET", "PUT", "DELETE"])
    async def allocations(request: Request) -> Response:
        authorize(request, f"placement:allocations:{METHOD_RULES[request.method]}")
        consumer = request.path_params["consumer"]
        if not UUID.match(consumer):
            raise BadRequest(f"Malformed consumer_uuid {consumer!r}.")
        if request.method == "GET":
            row, allocs = await svc.allocations(consumer)
            out: dict[str, Any] = {"allocations": {}}
            for rp, resources in allocs.items():
                provider = await svc.provider(rp)
                out["allocations"][rp] = {"generation": provider.generation, "resources": resources}
            if row is not None and at_least(request, 12):
                out.update(project_id=row.project_id, user_id=row.user_id)
            if row is not None and at_least(request, 28):
                out["consumer_generation"] = row.generation
            if row is not None and at_least(request, 38):
                out["consumer_type"] = row.consumer_type or "unknown"
            return JSON(out)
        if request.method == "DELETE":
            row, allocs = await svc.allocations(consumer)
            if not allocs:
                raise NotFound(f"No allocations for consumer '{consumer}'.")
            await svc.set_allocations({consumer: {"allocations": {}, "project_id": None, "user_id": None}})
            return no_content()
        await svc.set_allocations({consumer: parse_allocation_request(request, await json_body(request))})
        return no_content()

    @r.post("/allocations")
    async def allocations_many(request: Request) -> Response:
        authorize(request, "placement:allocations:manage")
        body = await json_body(request)
        if not isinstance(body, dict) or not body:
            raise BadRequest("The body must map consumer uuids to allocation requests.")
        for consumer in body:
            if not UUID.match(consumer):
                raise BadRequest(f"Malformed consumer_uuid {consumer!r}.")
        await svc.set_allocations({c: parse_allocation_request(request, v) for c, v in body.items()})
        return no_content()

    @r.get("/allocation_candidates")
    async def allocation_candidates(request: Request) -> Response:
        authorize(request, "placement:allocation_candidates:list")
        q = request.query_params
        if "resources" not in q:
            raise BadRequest("The resources parameter is required.")
        limit = None
        if "limit" in q:
            if not q["limit"].isdigit() or int(q["limit"]) < 1:
                raise BadRequest("limit must be a positive integer.")
            limit = int(q["limit"])
        found = await svc.candidates(parse_resources(q["resources"]), parse_required(q.getlist("required")),
                                     parse_member_of(q.getlist("member_of")), limit)
        wanted = parse_resources(q["resources"])
        requests = [{"allocations": {c.provider.uuid: {"resources": wanted}}} for c in found]
        summaries: dict[str, Any] = {}
        for c in found:
            summary: dict[str, Any] = {"resources": {rc: {"capacity": cap, "used": c.used.get(rc, 0)}
                                                     for rc, cap in c.capacity.items()}}
            if at_least(request, 17):
                summary["traits"] = c.traits
            if at_least(request, 29):
                summary.update(parent_provider_uuid=c.provider.parent_uuid, root_provider_uuid=c.provider.root_uuid)
            summaries[c.provider.uuid] = summary
        return JSON({"allocation_requests": requests, "provider_summaries": summaries})

    # -- resource classes and traits --------------------------------------------------------
    @r.get("/resource_classes")
    async def list_classes(request: Request) -> Response:
        authorize(request, "placement:resource_classes:list")
        return JSON({"resource_classes": [{"name": n, "links": [{"rel": "self", "href": f"/resource_classes/{n}"}]}
                                          for n in await svc.resource_classes()]})

    @r.post("/resource_classes")
    async def create_class(request: Request) -> Response:
        authorize(request, "placement:resource_classes:create")
        if not at_least(request, 2):
            raise NotFound("The resource classes API needs microversion 1.2.")
        body = await json_body(request)
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(body, dict) or set(body) != {"name"} or not isinstance(name, str):
            raise BadRequest("The body must be {\"name\": \"CUSTOM_...\"}.")
        if len(name) > 255 or not CUSTOM_CLASS.match(name):
            raise BadRequest(f"Invalid resource class name {name!r}: 'CUSTOM_' followed by upper-case letters, "
                             "digits and _ (at most 255 characters).")
        if name in await svc.resource_classes() or not await svc.add_custom("class", name):
            raise Conflict(f"Conflicting resource class already exists: {name}", kind="placement.duplicate_name")
        return Response(status_code=201, headers={"Location": f"/resource_classes/{name}"})

    @r.route("/resource_classes/{name}", ["GET", "PUT", "DELETE"])
    async def resource_class(request: Request) -> Response:
        name = request.path_params["name"]
        authorize(request, f"placement:resource_classes:{ONE_RULES[request.method]}")
        if request.method == "GET":
            if name not in await svc.resource_classes():
                raise NotFound(f"No such resource class {name}.")
            return JSON({"name": name, "links": [{"rel": "self", "href": f"/resource_classes/{name}"}]})
        if request.method == "DELETE":
            await svc.delete_custom("class", name)
            return no_content()
        created = await svc.add_custom("class", name)
        return Response(status_code=201 if created else 204, headers={"Location": f"/resource_classes/{name}"})

    @r.get("/traits")
    async def list_traits(request: Request) -> Response:
        authorize(request, "placement:traits:list")
        names = await svc.traits()
        spec = request.query_params.get("name", "")
        if spec.startswith("in:"):
            wanted = set(spec[3:].split(","))
            names = [n for n in names if n in wanted]
        elif spec.startswith("startswith:"):
            names = [n for n in names if n.startswith(spec[11:])]
        elif spec:
            raise BadRequest("The name filter must be in:A,B or startswith:PREFIX.")
        return JSON({"traits": names})

    @r.route("/traits/{name}", ["GET", "PUT", "DELETE"])
    async def trait(request: Request) -> Response:
        name = request.path_params["name"]
        authorize(request, f"placement:traits:{ONE_RULES[request.method]}")
        if request.method == "GET":
            if name not in await svc.traits():
                raise NotFound(f"No such trait {name}.")
            return no_content()
        if request.method == "DELETE":
            await svc.delete_custom("trait", name)
            return no_content()
        created = await svc.add_custom("trait", name)
        return Response(status_code=201 if created else 204, headers={"Location": f"/traits/{name}"})

    return r


def build_app(svc: PlacementService, identity: IdentityService, max_body: int) -> ASGIApp:
    policy = ServicePolicy.build("placement", policies.RULES, identity.cfg.policy.file, policies.MESSAGE)
    return policy.bind(create_app("placement", router(svc), identity, max_body=max_body,
                                  microversions=MICROVERSIONS, schemas=SCHEMAS))
