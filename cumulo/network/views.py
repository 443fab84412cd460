"""How the Network API shows a collection or one resource: filters on any attribute (and on
tags), ``fields``, sorting and paging, shared by every resource module of the API."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from cumulo.core.http.faults import BadRequest, NotFound
from cumulo.network import tags


def shape(request: Request, items: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """Filters on any attribute (repeated values mean any of them), ``fields``, sorting, paging."""
    q = request.query_params
    reserved = {"fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse", *tags.FILTERS}
    items = tags.filtered(items, q)
    for key in {k for k in q if k not in reserved}:
        wanted = q.getlist(key)
        items = [i for i in items if key in i and any(match(i[key], w) for w in wanted)]
    keys = q.getlist("sort_key")
    if keys:
        dirs = q.getlist("sort_dir")
        for n, key in reversed(list(enumerate(keys))):
            if items and key not in items[0]:
                raise BadRequest(f"{key} is an invalid attribute for sort_key")
            desc = (dirs[n] if n < len(dirs) else "asc") == "desc"
            items.sort(key=lambda i: (i[key] is None, str(i[key])), reverse=desc)
    if "marker" in q:
        ids = [i.get("id") for i in items]  # a list of things without ids (rule types) has no marker
        if q["marker"] not in ids:
            raise NotFound(f"Marker {q['marker']} could not be found.")
        items = items[ids.index(q["marker"]) + 1:]
    body: dict[str, Any] = {}
    if "limit" in q:
        try:
            limit = int(q["limit"])
        except ValueError:
            raise BadRequest(f"Bad limit request: limit must be an integer, not {q['limit']!r}.") from None
        if limit > 0 and len(items) > limit:
            items = items[:limit]
            if "id" in items[-1]:
                body[f"{kind}_links"] = [{"rel": "next", "href": f"{request.url.remove_query_params('marker')}"
                                                                    f"&marker={items[-1]['id']}"}]
    fields = q.getlist("fields")
    if fields:
        items = [{k: v for k, v in i.items() if k in fields} for i in items]
    body[kind] = items
    return body


def match(value: Any, wanted: str) -> bool:
    if isinstance(value, bool):
        return str(value).lower() == wanted.lower()
    if isinstance(value, list):
        return wanted in [str(v) for v in value]
    return str(value) == wanted


def shape_one(request: Request, item: dict[str, Any], kind: str) -> dict[str, Any]:
    fields = request.query_params.getlist("fields")
    return {kind: {k: v for k, v in item.items() if k in fields} if fields else item}
