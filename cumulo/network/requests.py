"""What every Network API module reads from a request the same way: who asks (project, admin)
and the resource object of a body (``{"port": {...}}``), with Neutron's fault when it is missing."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from cumulo.core.http.app import auth_of, json_body
from cumulo.core.http.faults import BadRequest


def who(request: Request) -> tuple[str, bool]:
    auth = auth_of(request)
    return auth.project_id or "", auth.is_admin()


def body_of(data: Any, kind: str) -> dict[str, Any]:
    item = data.get(kind) if isinstance(data, dict) else None
    if not isinstance(item, dict):
        raise BadRequest(f"Resource body required: a '{kind}' object.")
    return item


async def body(request: Request, kind: str) -> dict[str, Any]:
    return body_of(await json_body(request), kind)
