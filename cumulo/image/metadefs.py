"""/v2/metadefs: Glance's catalog of metadata definitions (namespaces holding objects, properties,
tags, and the resource types they apply to), for dashboards and tools that describe properties.

Everything inside a namespace is one ``MetadefItem`` row (kind + name + JSON body).  Admins write;
everyone reads public namespaces and their own project's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, select
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.db import Database, utcnow
from cumulo.core.http.app import JSON, Router, auth_of, json_body, no_content
from cumulo.core.http.authz import authorize, verb
from cumulo.core.http.faults import BadRequest, Conflict, Forbidden, NotFound
from cumulo.image.models import MetadefItem, MetadefNamespace

RESOURCE_TYPES = ("OS::Glance::Image", "OS::Cinder::Volume", "OS::Nova::Flavor", "OS::Nova::Aggregate",
                  "OS::Nova::Server", "OS::Glance::Snapshot", "OS::Trove::Instance")
MAX_TAGS = 1000  # tags in one create-tags request
KINDS = {"objects": "object", "properties": "property", "tags": "tag", "resource_types": "resource_type"}


def when(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def name_of(body: Any, key: str = "name") -> str:
    if not isinstance(body, dict) or not isinstance(body.get(key), str) or not body[key] or len(body[key]) > 255:
        raise BadRequest(f"The request body needs a '{key}' string of 1 to 255 characters.")
    return str(body[key])


def router(db: Database) -> Router:
    r = Router()
    base = "/v2/metadefs/namespaces"

    async def namespace(request: Request, rule: str) -> MetadefNamespace:
        """The namespace of the path (a 404 when the caller cannot see it), once ``rule`` allows the
        caller on it."""
        name = request.path_params["namespace"]
        async with db.session() as s:
            ns = await s.get(MetadefNamespace, name)
        auth = auth_of(request)
        if ns is None or not (ns.visibility == "public" or ns.owner == auth.project_id or auth.is_admin()):
            raise NotFound(f"Metadata definition namespace={name} was not found.")
        authorize(request, rule, {"project_id": ns.owner, "visibility": ns.visibility})
        return ns

    async def items(ns: str, kind: str) -> list[MetadefItem]:
        async with db.session() as s:
            return list((await s.execute(select(MetadefItem).where(
                MetadefItem.namespace == ns, MetadefItem.kind == kind).order_by(MetadefItem.name))).scalars())

    async def item(ns: str, kind: str, name: str) -> MetadefItem:
        async with db.session() as s:
            row = await s.get(MetadefItem, (ns, kind, name))
        if row is None:
            raise NotFound(f"Metadata definition {kind}={name} was not found in namespace={ns}.")
        return row

    async def remove_item(ns: str, kind: str, name: str) -> None:
        await item(ns, kind, name)  # 404 when absent
        async with db.session() as s:
            await s.execute(delete(MetadefItem).where(MetadefItem.namespace == ns, MetadefItem.kind == kind,
                                                      MetadefItem.name == name))

    async def put_item(ns: str, kind: str, name: str, body: dict[str, Any], replace: str | None = None) -> MetadefItem:
        async with db.session() as s:
            if replace is not None:
                old = await s.get(MetadefItem, (ns, kind, replace))
                if old is None:
                    raise NotFound(f"Metadata definition {kind}={replace} was not found in namespace={ns}.")
                created = old.created_at
                await s.delete(old)
                await s.flush()
            else:
                created = utcnow()
            if await s.get(MetadefItem, (ns, kind, name)) is not None:
                raise Conflict(f"A metadata definition {kind} with name={name} already exists in namespace={ns}.")
            row = MetadefItem(namespace=ns, kind=kind, name=name, body=body, created_at=created, updated_at=utcnow())
            s.add(row)
        return row

    def ns_view(ns: MetadefNamespace) -> dict[str, Any]:
        return {"namespace": ns.namespace, "display_name": ns.display_name, "description": ns.description,
                "visibility": ns.visibility, "protected": ns.protected, "owner": ns.owner,
                "created_at": when(ns.created_at), "updated_at": when(ns.updated_at),
                "schema": "/v2/schemas/metadefs/namespace", "self": f"{base}/{ns.namespace}"}

    def object_view(ns: str, row: MetadefItem) -> dict[str, Any]:
        return {**row.body, "name": row.name, "created_at": when(row.created_at), "updated_at": when(row.updated_at),
                "schema": "/v2/schemas/metadefs/object", "self": f"{base}/{ns}/objects/{row.name}"}

    def tag_view(row: MetadefItem) -> dict[str, Any]:
        return {"name": row.name, "created_at": when(row.created_at), "updated_at": when(row.updated_at)}

    def assoc_view(row: MetadefItem) -> dict[str, Any]:
        return {**row.body, "name": row.name, "created_at": when(row.created_at), "updated_at": when(row.updated_at)}

    def ns_values(body: Any) -> dict[str, Any]:
        name = name_of(body, "namespace")
        visibility = body.get("visibility", "private")
        if visibility not in ("public", "private"):
            raise BadRequest(f"Invalid visibility {visibility!r}: public or private.")
        if not isinstance(body.get("protected", False), bool):
            raise BadRequest("protected must be true or false.")
        return {"namespace": name, "display_name": body.get("display_name"), "description": body.get("description"),
                "visibility": visibility, "protected": body.get("protected", False)}

    # -- namespaces -------------------------------------------------------------------------
    @r.post(base)
    async def create_namespace(request: Request) -> Response:
        authorize(request, "add_metadef_namespace")
        body = await json_body(request)
        values = ns_values(body)
        async with db.session() as s:
            if await s.get(MetadefNamespace, values["namespace"]) is not None:
                raise Conflict(f"Metadata definition namespace={values['namespace']} already exists.")
            ns = MetadefNamespace(owner=body.get("owner") or auth_of(request).project_id, **values)
            s.add(ns)
            for assoc in body.get("resource_type_associations") or []:
                s.add(MetadefItem(namespace=ns.namespace, kind="resource_type", name=name_of(assoc),
                                  body={k: v for k, v in assoc.items() if k in ("prefix", "properties_target")}))
            for pname, prop in (body.get("properties") or {}).items():
                s.add(MetadefItem(namespace=ns.namespace, kind="property", name=pname, body=prop))
            for obj in body.get("objects") or []:
                s.add(MetadefItem(namespace=ns.namespace, kind="object", name=name_of(obj),
                                  body={k: v for k, v in obj.items() if k != "name"}))
            for tag in body.get("tags") or []:
                s.add(MetadefItem(namespace=ns.namespace, kind="tag", name=name_of(tag), body={}))
        return JSON(ns_view(ns), status_code=201)

    @r.get(base)
    async def list_namespaces(request: Request) -> Response:
        auth = authorize(request, "get_metadef_namespaces")
        async with db.session() as s:
            rows = list((await s.execute(select(MetadefNamespace).order_by(MetadefNamespace.namespace))).scalars())
        rows = [ns for ns in rows if ns.visibility == "public" or ns.owner == auth.project_id or auth.is_admin()]
        return JSON({"namespaces": [ns_view(ns) for ns in rows], "first": base,
                     "schema": "/v2/schemas/metadefs/namespaces"})

    @r.get(base + "/{namespace}")
    async def show_namespace(request: Request) -> Response:
        ns = await namespace(request, "get_metadef_namespace")
        view = ns_view(ns)
        assocs = await items(ns.namespace, "resource_type")
        if assocs:
            view["resource_type_associations"] = [assoc_view(a) for a in assocs]
        props = await items(ns.namespace, "property")
        if props:
            view["properties"] = {p.name: p.body for p in props}
        objects = await items(ns.namespace, "object")
        if objects:
            view["objects"] = [object_view(ns.namespace, o) for o in objects]
        tags = await items(ns.namespace, "tag")
        if tags:
            view["tags"] = [{"name": t.name} for t in tags]
        return JSON(view)

    @r.put(base + "/{namespace}")
    async def update_namespace(request: Request) -> Response:
        ns = await namespace(request, "modify_metadef_namespace")
        values = ns_values(await json_body(request))
        if values["namespace"] != ns.namespace:
            raise BadRequest("Renaming a namespace is not supported.")
        async with db.session() as s:
            row = await s.get(MetadefNamespace, ns.namespace)
            assert row is not None
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
        return JSON(ns_view(row))

    @r.delete(base + "/{namespace}")
    async def delete_namespace(request: Request) -> Response:
        ns = await namespace(request, "delete_metadef_namespace")
        if ns.protected:
            raise Forbidden(f"Metadata definition namespace {ns.namespace} is protected and cannot be deleted.")
        async with db.session() as s:
            await s.execute(delete(MetadefItem).where(MetadefItem.namespace == ns.namespace))
            await s.execute(delete(MetadefNamespace).where(MetadefNamespace.namespace == ns.namespace))
        return no_content()

    # -- objects and properties -------------------------------------------------------------
    @r.route(base + "/{namespace}/objects", ["GET", "POST"])
    async def objects(request: Request) -> Response:
        ns = await namespace(request, "add_metadef_object" if request.method == "POST" else "get_metadef_objects")
        if request.method == "POST":
            body = await json_body(request)
            row = await put_item(ns.namespace, "object", name_of(body), {k: v for k, v in body.items() if k != "name"})
            return JSON(object_view(ns.namespace, row), status_code=201)
        return JSON({"objects": [object_view(ns.namespace, o) for o in await items(ns.namespace, "object")],
                     "schema": "v2/schemas/metadefs/objects"})

    @r.route(base + "/{namespace}/objects/{name}", ["GET", "PUT", "DELETE"])
    async def one_object(request: Request) -> Response:
        ns = await namespace(request, {"GET": "get_metadef_object", "PUT": "modify_metadef_object",
                                      "DELETE": "delete_metadef_object"}[verb(request)])
        name = request.path_params["name"]
        if request.method == "GET":
            return JSON(object_view(ns.namespace, await item(ns.namespace, "object", name)))
        if request.method == "DELETE":
            await remove_item(ns.namespace, "object", name)
            return no_content()
        body = await json_body(request)
        row = await put_item(ns.namespace, "object", name_of(body), {k: v for k, v in body.items() if k != "name"},
                             replace=name)
        return JSON(object_view(ns.namespace, row))

    @r.route(base + "/{namespace}/properties", ["GET", "POST"])
    async def properties(request: Request) -> Response:
        ns = await namespace(request, "add_metadef_property" if request.method == "POST" else "get_metadef_properties")
        if request.method == "POST":
            body = await json_body(request)
            name = name_of(body)
            if not isinstance(body.get("type"), str) or not isinstance(body.get("title"), str):
                raise BadRequest("A property needs 'type' and 'title' strings.")
            row = await put_item(ns.namespace, "property", name, {k: v for k, v in body.items() if k != "name"})
            return JSON({**row.body, "name": row.name}, status_code=201)
        return JSON({"properties": {p.name: p.body for p in await items(ns.namespace, "property")}})

    @r.route(base + "/{namespace}/properties/{name}", ["GET", "PUT", "DELETE"])
    async def one_property(request: Request) -> Response:
        ns = await namespace(request, {"GET": "get_metadef_property", "PUT": "modify_metadef_property",
                                      "DELETE": "remove_metadef_property"}[verb(request)])
        name = request.path_params["name"]
        if request.method == "GET":
            row = await item(ns.namespace, "property", name)
            return JSON({**row.body, "name": row.name})
        if request.method == "DELETE":
            await remove_item(ns.namespace, "property", name)
            return no_content()
        body = await json_body(request)
        row = await put_item(ns.namespace, "property", name_of(body), {k: v for k, v in body.items() if k != "name"},
                             replace=name)
        return JSON({**row.body, "name": row.name})

    # -- tags -------------------------------------------------------------------------------
    @r.route(base + "/{namespace}/tags", ["GET", "POST", "DELETE"])
    async def tags(request: Request) -> Response:
        ns = await namespace(request, {"GET": "get_metadef_tags", "POST": "add_metadef_tags",
                                      "DELETE": "delete_metadef_tags"}[verb(request)])
        if request.method == "GET":
            return JSON({"tags": [tag_view(t) for t in await items(ns.namespace, "tag")]})
        if request.method == "DELETE":
            await drop_tags(ns.namespace)
            return no_content()
        body = await json_body(request)
        tag_list = body.get("tags") if isinstance(body, dict) else None
        if not isinstance(tag_list, list):
            raise BadRequest("The request body needs {\"tags\": [{\"name\": ...}, ...]}.")
        if len(tag_list) > MAX_TAGS:
            raise BadRequest(f"At most {MAX_TAGS} tags in one request.")
        names = [name_of(t) for t in tag_list]
        if len(set(names)) != len(names):
            raise Conflict("Duplicate tag names in the request.")
        # Glance replaces the namespace's tags, or adds to them with X-OpenStack-Append: true (a name
        # that is there already is then a 409, and nothing is added)
        append = request.headers.get("x-openstack-append", "").strip().lower() in ("1", "t", "true", "on", "y", "yes")
        if append:
            present = {t.name for t in await items(ns.namespace, "tag")} & set(names)
            if present:
                raise Conflict(f"A metadata tag with name={sorted(present)[0]} already exists in "
                               f"namespace={ns.namespace}.")
        else:
            await drop_tags(ns.namespace)
        rows = [await put_item(ns.namespace, "tag", n, {}) for n in names]
        return JSON({"tags": [tag_view(t) for t in rows]}, status_code=201)

    async def drop_tags(ns: str) -> None:
        async with db.session() as s:
            await s.execute(delete(MetadefItem).where(MetadefItem.namespace == ns, MetadefItem.kind == "tag"))

    @r.route(base + "/{namespace}/tags/{name}", ["GET", "POST", "PUT", "DELETE"])
    async def one_tag(request: Request) -> Response:
        ns = await namespace(request, {"GET": "get_metadef_tag", "POST": "add_metadef_tag", "PUT": "modify_metadef_tag",
                                      "DELETE": "delete_metadef_tag"}[verb(request)])
        name = request.path_params["name"]
        if request.method == "GET":
            return JSON(tag_view(await item(ns.namespace, "tag", name)))
        if request.method == "POST":
            return JSON(tag_view(await put_item(ns.namespace, "tag", name, {})), status_code=201)
        if request.method == "DELETE":
            await remove_item(ns.namespace, "tag", name)
            return no_content()
        body = await json_body(request)
        return JSON(tag_view(await put_item(ns.namespace, "tag", name_of(body), {}, replace=name)))

    # -- resource types ---------------------------------------------------------------------
    @r.get("/v2/metadefs/resource_types")
    async def resource_types(request: Request) -> Response:
        authorize(request, "list_metadef_resource_types")
        async with db.session() as s:
            used = set((await s.execute(select(MetadefItem.name).where(MetadefItem.kind == "resource_type"))).scalars())
        names = sorted(set(RESOURCE_TYPES) | used)
        return JSON({"resource_types": [{"name": n, "created_at": "2014-08-28T17:13:04Z",
                                         "updated_at": "2014-08-28T17:13:04Z"} for n in names]})

    @r.route(base + "/{namespace}/resource_types", ["GET", "POST"])
    async def associations(request: Request) -> Response:
        ns = await namespace(request, "get_metadef_resource_type" if request.method in ("GET", "HEAD")
                              else "add_metadef_resource_type_association")
        if request.method == "GET":
            return JSON({"resource_type_associations": [assoc_view(a) for a in
                                                        await items(ns.namespace, "resource_type")]})
        body = await json_body(request)
        row = await put_item(ns.namespace, "resource_type", name_of(body),
                             {k: v for k, v in body.items() if k in ("prefix", "properties_target")})
        return JSON(assoc_view(row), status_code=201)

    @r.delete(base + "/{namespace}/resource_types/{name}")
    async def dissociate(request: Request) -> Response:
        ns = await namespace(request, "remove_metadef_resource_type_association")
        name = request.path_params["name"]
        await remove_item(ns.namespace, "resource_type", name)
        return no_content()

    return r
