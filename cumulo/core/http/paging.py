"""List helpers shared by every API: filters, sorting, limit/marker paging and ``links``.

Handlers turn query parameters into a ``ListQuery`` with ``list_query(request, ...)``, and the
service applies it to a SQLAlchemy select with ``apply``.  Bad values give a 400 naming the
parameter, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Select, and_, or_

from cumulo.core.http.faults import BadRequest


@dataclass
class ListQuery:
    limit: int | None = None
    marker: str | None = None
    sort: list[tuple[str, str]] = field(default_factory=list)
    filters: dict[str, str] = field(default_factory=dict)


def parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on", ""):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise BadRequest(f"Invalid value {value!r} for {name}: expected true or false.")


def list_query(params: Any, sort_keys: set[str], default_sort: str = "id", max_limit: int = 1000,
               filters: set[str] | None = None) -> ListQuery:
    q = ListQuery()
    if "limit" in params:
        try:
            q.limit = int(params["limit"])
        except ValueError:
            raise BadRequest(f"Invalid limit {params['limit']!r}: expected an integer.") from None
        if q.limit < 0:
            raise BadRequest("limit must be a positive integer or zero.")
        q.limit = min(q.limit, max_limit)
    q.marker = params.get("marker") or None
    keys = params.getlist("sort_key") if hasattr(params, "getlist") else []
    dirs = params.getlist("sort_dir") if hasattr(params, "getlist") else []
    for i, key in enumerate(keys):
        if key not in sort_keys:
            raise BadRequest(f"Invalid sort_key {key!r}: one of {', '.join(sorted(sort_keys))}.")
        direction = (dirs[i] if i < len(dirs) else (dirs[-1] if dirs else "asc")).lower()
        if direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort_dir {direction!r}: asc or desc.")
        q.sort.append((key, direction))
    if not q.sort:
        q.sort.append((default_sort, (dirs[0].lower() if dirs else "asc")))
    if filters:
        q.filters = {k: v for k, v in params.items() if k in filters}
    return q


def apply(stmt: Select[Any], model: Any, q: ListQuery, marker_row: Any = None) -> Select[Any]:
    """Order by the sort keys (plus id, for a stable order) and seek past the marker row."""
    columns = [(getattr(model, key), direction) for key, direction in q.sort]
    if not any(key == "id" for key, _ in q.sort):
        columns.append((model.id, q.sort[-1][1] if q.sort else "asc"))
    for column, direction in columns:
        stmt = stmt.order_by(column.desc() if direction == "desc" else column.asc())
    if marker_row is not None:
        # (a, b, id) > (ma, mb, mid) expanded for mixed directions
        clauses = []
        for i, (column, direction) in enumerate(columns):
            value = getattr(marker_row, column.key)
            prefix = [c == getattr(marker_row, c.key) for c, _ in columns[:i]]
            step = column < value if direction == "desc" else column > value
            clauses.append(and_(*prefix, step))
        stmt = stmt.where(or_(*clauses))
    if q.limit is not None:
        stmt = stmt.limit(q.limit)
    return stmt


def next_link(url: str, params: Any, q: ListQuery, rows: list[Any], rel_key: str) -> list[dict[str, str]]:
    """``[{"rel": "next", "href": ...}]`` when the page is full, else ``[]``."""
    if q.limit is None or len(rows) < q.limit or not rows or q.limit == 0:
        return []
    query = [(k, v) for k, v in params.multi_items() if k != "marker"]
    query.append(("marker", rows[-1].id))
    return [{"rel": "next", "href": f"{url}?{urlencode(query)}"}]
