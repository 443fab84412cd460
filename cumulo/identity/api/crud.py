"""One builder for the identity resources that are plain records: create, list, show, update,
delete, with Keystone's wrapping (``{"policy": {...}}``), links and unknown attributes kept."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.db import new_id
from cumulo.core.http.app import JSON, Router, json_body, no_content
from cumulo.identity.api import validate as v
from cumulo.identity.api.common import IdentityAPI, collection, self_link

Hook = Callable[[Request, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass
class Resource:
    model: Any
    member: str  # "policy"
    collection: str  # "policies"
    path: str  # "/v3/policies"
    fields: dict[str, Callable[[dict[str, Any]], Any]]  # column -> checker(data) (v.string ...)
    read_rule: str
    write_rule: str
    links_path: str = ""  # "policies" -> links.self = /v3/policies/{id}
    filters: tuple[str, ...] = ()
    # Optional hooks: prepare values before insert/update (raise faults to refuse), shape output,
    # narrow a listing to what the caller may see.
    before_create: Hook | None = None
    before_update: Hook | None = None
    view_extra: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None
    visible: Callable[[Request, list[Any]], list[Any]] | None = None
    target: Callable[[Any], dict[str, Any]] = field(default=lambda row: {})


def view(request: Request, res: Resource, row: Any) -> dict[str, Any]:
    out = {**(getattr(row, "extra", None) or {}), "id": row.id}
    for column in res.fields:
        out[column] = getattr(row, column)
    out["links"] = self_link(request, f"{res.links_path or res.collection}/{row.id}")
    return res.view_extra(row, out) if res.view_extra else out


def register(r: Router, api: IdentityAPI, res: Resource) -> None:
    svc = api.svc
    known = set(res.fields) | {"id", "links"}

    @r.post(res.path)
    async def create(request: Request) -> Response:
        data = v.entity(await json_body(request), res.member)
        api.authorize(request, res.write_rule, {res.member: data, **res.target(data)})
        values = v.pick(data, **{name: check(data) for name, check in res.fields.items()})
        values.setdefault("id", new_id())
        if res.before_create:
            values = await res.before_create(request, values)
        if hasattr(res.model, "extra"):
            values["extra"] = v.extras(data, known)
        row = await svc.insert(res.model(**values), f"Conflict occurred attempting to store {res.member}.")
        return JSON({res.member: view(request, res, row)}, status_code=201)

    @r.get(res.path)
    async def list_(request: Request) -> Response:
        api.authorize(request, res.read_rule)
        q = request.query_params
        where = [getattr(res.model, f) == q[f] for f in res.filters if f in q]
        rows = list(await svc.list(res.model, *where))
        if res.visible:
            rows = res.visible(request, rows)
        return JSON(collection(request, res.collection, [view(request, res, x) for x in rows]))

    @r.get(res.path + "/{id}")
    async def show(request: Request) -> Response:
        row = await svc.get(res.model, request.path_params["id"])
        api.authorize(request, res.read_rule, {res.member: {"id": row.id}, **res.target(row)})
        return JSON({res.member: view(request, res, row)})

    @r.patch(res.path + "/{id}")
    async def update(request: Request) -> Response:
        row = await svc.get(res.model, request.path_params["id"])
        api.authorize(request, res.write_rule, {res.member: {"id": row.id}, **res.target(row)})
        data = v.entity(await json_body(request), res.member)
        if "id" in data and data["id"] != row.id:
            raise v.ValidationError(f"The id of a {res.member} cannot be changed.")
        checks = {name: check(data) for name, check in res.fields.items() if name in data}
        values = v.pick(data, **checks)
        if res.before_update:
            values = await res.before_update(request, {**values, "_row": row})
            values.pop("_row", None)
        extra = v.extras(data, known)
        if extra and hasattr(res.model, "extra"):
            values["extra"] = {**(row.extra or {}), **extra}
        row = await svc.save(res.model, row.id, values)
        return JSON({res.member: view(request, res, row)})

    @r.delete(res.path + "/{id}")
    async def delete(request: Request) -> Response:
        row = await svc.get(res.model, request.path_params["id"])
        api.authorize(request, res.write_rule, {res.member: {"id": row.id}, **res.target(row)})
        await svc.remove(res.model, row.id)
        return no_content()


def required_string(name: str, max_len: int = 255) -> Callable[[dict[str, Any]], Any]:
    return lambda data: v.string(data, name, required=True, max_len=max_len, min_len=1)


def optional_string(name: str, max_len: int = 65535) -> Callable[[dict[str, Any]], Any]:
    return lambda data: v.string(data, name, nullable=True, max_len=max_len)
