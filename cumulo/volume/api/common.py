"""What every Block Storage API module shares: the microversion range, both paths of a route (with
and without the project id, 3.67), who asks, Cinder's list parameters and the time format."""

from __future__ import annotations

import ast
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request

from cumulo.core.http.app import Handler, Router, auth_of
from cumulo.core.http.authz import allowed
from cumulo.core.http.faults import BadRequest
from cumulo.core.http.microversion import Microversions, Version
from cumulo.core.http.paging import ListQuery, list_query, parse_bool
from cumulo.volume.service import Caller

MICROVERSIONS = Microversions("volume", Version(3, 0), Version(3, 71))
PREFIXES = ("/v3/{project_id}", "/v3")


def version_of(request: Request) -> Version:
    return request.scope.get("cumulo.version", MICROVERSIONS.minimum)  # type: ignore[no-any-return]


def at_least(request: Request, minor: int) -> bool:
    return version_of(request) >= Version(3, minor)


def route(router: Router, method: str, path: str) -> Callable[[Handler], Handler]:
    """Register the handler on ``/v3/{project_id}<path>`` and on ``/v3<path>``.  The project in the
    path is not an authority: the token's project is (as in Cinder)."""
    def register(handler: Handler) -> Handler:
        methods = ["GET", "HEAD"] if method == "GET" else [method]
        for prefix in PREFIXES:
            router.route(prefix + path, methods)(handler)
        return handler
    return register


def caller(request: Request) -> Caller:
    auth = auth_of(request)
    return Caller(auth.project_id or "", auth.user_id, allowed(request, "admin_api"))


def stamp(when: dt.datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f") if when else None


def base_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def links(request: Request, collection: str, ident: str, project_id: str) -> list[dict[str, str]]:
    base = base_url(request)
    return [{"href": f"{base}/v3/{project_id}/{collection}/{ident}", "rel": "self"},
            {"href": f"{base}/{project_id}/{collection}/{ident}", "rel": "bookmark"}]


# the v1 names Cinder still sorts by
SORT_ALIASES = {"display_name": "name", "display_description": "description"}


def list_params(request: Request, sort_keys: set[str]) -> ListQuery:
    """Cinder's ``limit``, ``marker`` and ``sort=key[:dir],...`` (or the older ``sort_key`` and
    ``sort_dir``); newest first when nothing is asked."""
    params = request.query_params
    if "sort" in params and ("sort_key" in params or "sort_dir" in params):
        raise BadRequest("The 'sort' and 'sort_key'/'sort_dir' parameters cannot be used together.")
    if any(key in SORT_ALIASES for key in params.getlist("sort_key")):
        params = QueryParams([(k, SORT_ALIASES.get(v, v) if k == "sort_key" else v) for k, v in params.multi_items()])
    q = list_query(params, sort_keys, default_sort="created_at")
    if "sort" in params:
        q.sort = []
        for part in params["sort"].split(","):
            key, _, direction = part.strip().partition(":")
            key = SORT_ALIASES.get(key, key)
            direction = (direction or "desc").lower()
            if key not in sort_keys:
                raise BadRequest(f"Invalid sort key {key!r}: one of {', '.join(sorted(sort_keys))}.")
            if direction not in ("asc", "desc"):
                raise BadRequest(f"Invalid sort direction {direction!r}: asc or desc.")
            q.sort.append((key, direction))
    elif "sort_key" not in params:
        q.sort = [("created_at", (params.get("sort_dir") or "desc").lower())]
        if q.sort[0][1] not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort direction {q.sort[0][1]!r}: asc or desc.")
    return q


def offset_param(request: Request) -> int:
    raw = request.query_params.get("offset", "0")
    if not raw.isdigit():
        raise BadRequest(f"Invalid offset {raw!r}: expected a positive integer or zero.")
    return int(raw)


def bool_param(request: Request, name: str) -> bool | None:
    value = request.query_params.get(name)
    return None if value is None else parse_bool(name, value)


def metadata_param(request: Request, name: str = "metadata") -> dict[str, str]:
    """``metadata={"k": "v"}`` as JSON or as the Python literal the clients send."""
    raw = request.query_params.get(name)
    if not raw:
        return {}
    try:
        value: Any = json.loads(raw)
    except ValueError:
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raise BadRequest(f"Invalid {name} filter {raw!r}: expected a mapping such as {{\"k\": \"v\"}}.") from None
    if not isinstance(value, dict):
        raise BadRequest(f"Invalid {name} filter {raw!r}: expected a mapping.")
    return {str(k): str(v) for k, v in value.items()}
