"""/v3/OS-OAUTH1/consumers: registration of OAuth 1.0a consumers (the secret is shown once)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from cumulo.core.http.app import Router
from cumulo.identity import models as m
from cumulo.identity.api.appcreds import new_secret
from cumulo.identity.api.common import IdentityAPI
from cumulo.identity.api.crud import Resource, optional_string, register
from cumulo.identity.service.passwords import hash_async


def router(api: IdentityAPI) -> Router:
    r = Router()
    shown: dict[str, str] = {}

    async def with_secret(_request: Request, values: dict[str, Any]) -> dict[str, Any]:
        secret = new_secret()
        shown[values["id"]] = secret
        return {**values, "secret_hash": await hash_async(secret, api.svc.cfg.identity.password_hash_rounds)}

    def view_extra(row: m.Consumer, out: dict[str, Any]) -> dict[str, Any]:
        secret = shown.pop(row.id, None)  # only the create response carries it
        return {**out, "secret": secret} if secret else out

    register(r, api, Resource(
        model=m.Consumer, member="consumer", collection="consumers", path="/v3/OS-OAUTH1/consumers",
        fields={"description": optional_string("description")}, links_path="OS-OAUTH1/consumers",
        read_rule="identity:oauth_consumers", write_rule="identity:oauth_consumers",
        before_create=with_secret, view_extra=view_extra))
    return r
