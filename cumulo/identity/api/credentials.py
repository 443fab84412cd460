"""/v3/credentials: secrets kept for a user (EC2 key pairs, TOTP seeds, ...).

An ``ec2`` credential's blob is JSON with an ``access`` key; its id is the SHA-256 of that key
(as Keystone makes it), so /v3/users/{id}/credentials/OS-EC2 finds it by access key.  Blobs are
stored as given (Keystone encrypts them with a separate key repository; Cumulo does not yet).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from cumulo.core.http.app import Router, auth_of
from cumulo.core.http.faults import ValidationError
from cumulo.identity import models as m
from cumulo.identity.api.common import IdentityAPI
from cumulo.identity.api.crud import Resource, optional_string, register, required_string
from cumulo.identity.api.ec2 import credential_id


def ec2_access(blob: str) -> str:
    try:
        data = json.loads(blob)
    except ValueError:
        raise ValidationError("An ec2 credential's blob must be JSON with an 'access' key.") from None
    if not isinstance(data, dict) or not isinstance(data.get("access"), str) or not data["access"]:
        raise ValidationError("An ec2 credential's blob must be JSON with an 'access' key.")
    return str(data["access"])


def router(api: IdentityAPI) -> Router:
    r = Router()
    svc = api.svc

    async def before_create(_request: Request, values: dict[str, Any]) -> dict[str, Any]:
        await svc.get(m.User, values["user_id"])
        if values.get("project_id"):
            await svc.get(m.Project, values["project_id"])
        if values["type"] == "ec2":
            if not values.get("project_id"):
                raise ValidationError("An ec2 credential needs a project_id.")
            values["id"] = credential_id(ec2_access(values["blob"]))
        return values

    async def before_update(_request: Request, values: dict[str, Any]) -> dict[str, Any]:
        row = values["_row"]
        if values.get("type", row.type) == "ec2" and "blob" in values:
            ec2_access(values["blob"])
        return values

    def visible(request: Request, rows: list[m.Credential]) -> list[m.Credential]:
        if api.allowed(request, "identity:credential_read", {"user_id": None}):
            return rows
        me = auth_of(request).user_id
        return [c for c in rows if c.user_id == me]

    register(r, api, Resource(
        model=m.Credential, member="credential", collection="credentials", path="/v3/credentials",
        fields={"user_id": required_string("user_id", 64), "project_id": optional_string("project_id", 64),
                "type": required_string("type"), "blob": required_string("blob", 1 << 16)},
        read_rule="identity:credential_read", write_rule="identity:credential_write",
        filters=("user_id", "type"), before_create=before_create, before_update=before_update,
        visible=visible, target=lambda row: {"user_id": row.get("user_id") if isinstance(row, dict)
                                             else row.user_id}))
    return r
