"""/v2.1/os-keypairs: SSH and X.509 key pairs of a user (generated when no key is given)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.compute.api.common import at_least
from cumulo.compute.models import KeyPair
from cumulo.compute.service import ComputeService
from cumulo.core.http.app import JSON, Router, auth_of, json_body
from cumulo.core.http.authz import authorize
from cumulo.core.http.faults import BadRequest, Forbidden

NAME = re.compile(r"^[\w.\- @]{1,255}$", re.UNICODE)


def view(request: Request, k: KeyPair, detail: bool, private: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint}
    if at_least(request, 2):
        out["type"] = k.type
    if detail:
        out.update(user_id=k.user_id, id=k.id, deleted=False, deleted_at=None, updated_at=None,
                   created_at=k.created_at.strftime("%Y-%m-%dT%H:%M:%S.%f"))
    if private is not None:
        out["private_key"] = private
    return out


def router(svc: ComputeService) -> Router:
    r = Router()

    def target_user(request: Request, rule: str) -> str:
        """The user whose key pairs are acted on (another's from 2.10, if ``rule`` allows it)."""
        auth = auth_of(request)
        user = request.query_params.get("user_id")
        user = user if user and at_least(request, 10) else auth.user_id
        authorize(request, rule, {"user_id": user, "project_id": auth.project_id})
        return user

    @r.get("/v2.1/os-keypairs")
    async def list_keypairs(request: Request) -> Response:
        rows = await svc.keypairs(target_user(request, "os_compute_api:os-keypairs:index"))
        q = request.query_params
        body: dict[str, Any] = {}
        if at_least(request, 35):
            if "marker" in q:
                names = [k.name for k in rows]
                if q["marker"] not in names:
                    raise BadRequest(f"marker [{q['marker']}] not found")
                rows = rows[names.index(q["marker"]) + 1:]
            if "limit" in q:
                if not q["limit"].isdigit():
                    raise BadRequest("limit must be a non-negative integer.")
                limit = int(q["limit"])
                if len(rows) > limit:
                    rows = rows[:limit]
                    if rows:  # limit=0 is an empty page: no marker to go on from
                        body["keypairs_links"] = [{"rel": "next", "href": f"{request.url.scheme}://{request.url.netloc}"
                                                   f"/v2.1/os-keypairs?limit={limit}&marker={rows[-1].name}"}]
        body["keypairs"] = [{"keypair": view(request, k, detail=False)} for k in rows]
        return JSON(body)

    @r.post("/v2.1/os-keypairs")
    async def create_keypair(request: Request) -> Response:
        body = await json_body(request)
        data = body.get("keypair") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise BadRequest("Invalid input: the request body needs a 'keypair' object.")
        name = data.get("name")
        if not isinstance(name, str) or not NAME.match(name) or name != name.strip():
            raise BadRequest("Keypair data is invalid: the name must be 1-255 letters, digits, spaces, '.', '-', "
                             "'_' or '@', without leading or trailing spaces.")
        key_type = data.get("type", "ssh")
        if key_type not in ("ssh", "x509") or ("type" in data and not at_least(request, 2)):
            raise BadRequest("Invalid key pair type: ssh or x509 (microversion 2.2 or later).")
        public_key = data.get("public_key")
        if public_key is not None and not isinstance(public_key, str):
            raise BadRequest("public_key must be a string.")
        if public_key is None and at_least(request, 92):
            raise BadRequest("Microversion 2.92 and later need a public_key: the server no longer generates keys.")
        user_id = data.get("user_id") or auth_of(request).user_id
        if user_id != auth_of(request).user_id and not at_least(request, 10):
            raise Forbidden("Key pairs for another user need microversion 2.10 or later.")
        authorize(request, "os_compute_api:os-keypairs:create",
                  {"user_id": user_id, "project_id": auth_of(request).project_id})
        new = await svc.create_keypair(user_id, auth_of(request).project_id, name, key_type, public_key)
        status = 201 if at_least(request, 2) else 200
        return JSON({"keypair": view(request, new.row, detail=False, private=new.private_key)
                     | {"user_id": new.row.user_id}}, status_code=status)  # Nova returns the owner at every version

    @r.get("/v2.1/os-keypairs/{name}")
    async def show_keypair(request: Request) -> Response:
        row = await svc.keypair(target_user(request, "os_compute_api:os-keypairs:show"), request.path_params["name"])
        return JSON({"keypair": view(request, row, detail=True)})

    @r.delete("/v2.1/os-keypairs/{name}")
    async def delete_keypair(request: Request) -> Response:
        await svc.delete_keypair(target_user(request, "os_compute_api:os-keypairs:delete"), request.path_params["name"])
        return Response(status_code=204 if at_least(request, 2) else 202)

    return r
