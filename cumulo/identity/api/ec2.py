"""/v3/users/{user_id}/credentials/OS-EC2: EC2-style access/secret pairs for a user and project.

They are stored as credentials of type ``ec2`` whose id is the SHA-256 of the access key (as
Keystone stores them), so they also appear in /v3/credentials.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.http.app import JSON, Router, json_body, no_content
from cumulo.core.http.faults import NotFound, ValidationError
from cumulo.identity import models as m
from cumulo.identity.api.common import IdentityAPI, base, collection


def credential_id(access: str) -> str:
    return hashlib.sha256(access.encode()).hexdigest()


def ec2_view(request: Request, c: m.Credential) -> dict[str, Any]:
    blob = json.loads(c.blob)
    return {"user_id": c.user_id, "tenant_id": c.project_id, "access": blob.get("access"),
            "secret": blob.get("secret"), "trust_id": blob.get("trust_id"),
            "links": {"self": f"{base(request)}/users/{c.user_id}/credentials/OS-EC2/{blob.get('access')}"}}


def router(api: IdentityAPI) -> Router:
    r = Router()
    svc = api.svc
    prefix = "/v3/users/{user_id}/credentials/OS-EC2"

    def target(request: Request) -> dict[str, Any]:
        return {"user_id": request.path_params["user_id"], "credential": {"user_id": request.path_params["user_id"]}}

    async def find(request: Request) -> m.Credential:
        cred = await svc.find(m.Credential, credential_id(request.path_params["access"]))
        if cred is None or cred.type != "ec2" or cred.user_id != request.path_params["user_id"]:
            raise NotFound(f"Could not find credential: {request.path_params['access']}.")
        return cred

    @r.post(prefix)
    async def create(request: Request) -> Response:
        api.authorize(request, "identity:credential_write", target(request))
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("tenant_id"), str):
            raise ValidationError("Expecting to find tenant_id in the request body.")
        user_id = request.path_params["user_id"]
        await svc.get(m.User, user_id)
        await svc.get(m.Project, body["tenant_id"])
        access, secret = uuid.uuid4().hex, uuid.uuid4().hex
        row = m.Credential(id=credential_id(access), user_id=user_id, project_id=body["tenant_id"], type="ec2",
                           blob=json.dumps({"access": access, "secret": secret, "trust_id": None}), extra={})
        await svc.insert(row, "Conflict creating the EC2 credential.")
        return JSON({"credential": ec2_view(request, row)}, status_code=201)

    @r.get(prefix)
    async def list_ec2(request: Request) -> Response:
        api.authorize(request, "identity:credential_read", target(request))
        await svc.get(m.User, request.path_params["user_id"])
        rows = await svc.list(m.Credential, m.Credential.user_id == request.path_params["user_id"],
                              m.Credential.type == "ec2")
        return JSON(collection(request, "credentials", [ec2_view(request, c) for c in rows]))

    @r.get(prefix + "/{access}")
    async def get_ec2(request: Request) -> Response:
        api.authorize(request, "identity:credential_read", target(request))
        return JSON({"credential": ec2_view(request, await find(request))})

    @r.delete(prefix + "/{access}")
    async def delete_ec2(request: Request) -> Response:
        api.authorize(request, "identity:credential_write", target(request))
        cred = await find(request)
        await svc.remove(m.Credential, cred.id)
        return no_content()

    return r
