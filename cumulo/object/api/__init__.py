"""The Swift v1 API on ``[object] port``: ``/v1/AUTH_<project_id>[/<container>[/<object>]]`` and
``/info``.  Swift's answers throughout: errors are a status with a short HTML or plain-text body
(not JSON), every response carries ``X-Trans-Id`` (``tx<21 hex>-<hex time>``), the same value as
``X-Openstack-Request-Id``, and ``X-Timestamp``.  Tokens are Keystone's (``X-Auth-Token``) and
authorize as keystoneauth does (``cumulo.object.policies``, ``cumulo.object.acl``)."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cumulo.core.context import AuthContext
from cumulo.core.http.authz import ServicePolicy
from cumulo.core.http.metrics import MetricsMiddleware
from cumulo.identity.service import IdentityService
from cumulo.object import acl, policies
from cumulo.object.api import accounts, containers, info, objects
from cumulo.object.api.common import MAX_HEADER_SIZE, SwiftError
from cumulo.object.middleware import Pipeline
from cumulo.object.service import ContainerInfo, ObjectError, ObjectService, now_timestamp

LOG = logging.getLogger(__name__)

__all__ = ["build_app"]


@dataclass
class Call:
    """One request to an account, container or object, and who makes it."""

    request: Request
    svc: ObjectService
    policy: ServicePolicy
    account: str
    project_id: str
    container: str
    obj: str
    auth: AuthContext | None
    max_file_size: int
    # set by a feature that authorized the request by other means than a token (tempurl, formpost):
    # the policy and ACL checks let it through
    granted: str = ""
    # what a grant reaches: (account, container), container "" for the whole account (an account
    # key's link); a symlink or large object it leads to elsewhere is checked as any request is
    grant: tuple[str, str] = ("", "")
    # the identity service (unified limits), and the most bytes a pipeline feature lets an upload
    # carry (project_quota; None: no such bound) -- the object handlers' store honours it
    identity: IdentityService | None = None
    room: int | None = None

    def is_owner(self) -> bool:
        return self.auth is not None and self.policy.enforce(
            "object_store:account:post", {"project_id": self.project_id}, self.auth)

    def authorize(self, rule: str, container: ContainerInfo | None = None, listing: bool = False) -> None:
        """The rule for the account's project, else the container's ACL (read or write, by the
        rule), else 401 without a token and 403 with one.  A call a feature granted passes within
        the grant's account or container."""
        if self.granted:
            account, name = (container.account, container.name) if container is not None else \
                (self.account, self.container)
            if account == self.grant[0] and self.grant[1] in ("", name):
                return
        target = {"project_id": self.project_id}
        if self.auth is not None and self.policy.enforce(rule, target, self.auth):
            return
        kind, write = rule.split(":")[1], rule.endswith((":put", ":post", ":delete"))
        if container is not None and kind in ("container", "object"):
            if kind == "container" and write:
                pass  # containers are made, changed and deleted by their owners only
            else:
                parsed = acl.parse(container.write_acl if write else container.read_acl)
                if self.auth is not None and acl.user_allowed(
                        parsed.groups, self.auth.project_id or "", self.auth.project_name or "",
                        self.auth.user_id, self.auth.user_name, self.auth.roles):
                    return
                if not write and (parsed.listings or not listing) and acl.referrer_allowed(
                        self.request.headers.get("referer"), parsed.referrers):
                    return
        raise SwiftError(401 if self.auth is None else 403)


def trans_id() -> str:
    return f"tx{uuid.uuid4().hex[:21]}-{int(time.time()):010x}"


async def dispatch(call: Call) -> Response:
    """The end of the pipeline: the object, container or account handler."""
    if call.obj:
        return await objects.handle(call)
    if call.container:
        return await containers.handle(call)
    return await accounts.handle(call)


def build_app(svc: ObjectService, identity: IdentityService, max_body: int) -> ASGIApp:
    policy = ServicePolicy.build("object-store", policies.RULES, identity.cfg.policy.file, policies.MESSAGE)
    pipeline = Pipeline(svc.cfg, dispatch)

    async def handle(request: Request) -> Response:
        path = request.scope["path"]  # decoded once: request.url.path would cut a name at an encoded "?"
        if path in ("/info", "/info/"):
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                raise SwiftError(405)
            if not policy.enforcer.enforce("object_store:info", {}, {}):
                raise SwiftError(403)
            return info.answer(request, svc, pipeline.capabilities())
        if path == "/crossdomain.xml":
            return info.crossdomain(request, svc)
        if path == "/healthcheck":
            return Response(b"OK", media_type="text/plain")
        parts = path.split("/", 4)
        if len(parts) < 3 or parts[1] != "v1" or not parts[2]:
            raise SwiftError(404)
        account = parts[2]
        container = parts[3] if len(parts) > 3 else ""
        obj = parts[4] if len(parts) > 4 else ""
        if len(account.encode()) > 256:
            raise SwiftError(400, "Account name length longer than 256")
        if not account.startswith("AUTH_") or len(account) == len("AUTH_"):
            raise SwiftError(403)
        for name, value in request.headers.items():
            if len(name) + len(value) > MAX_HEADER_SIZE:
                raise SwiftError(400, f"Header value too long: {name[:MAX_HEADER_SIZE]}")
        auth = None
        token = request.headers.get("x-auth-token") or request.headers.get("x-storage-token")
        if token:
            try:
                auth = await identity.validate(token)
            except Exception as exc:  # noqa: BLE001  (an invalid token is a 401, whatever the reason)
                if getattr(exc, "code", 0) == 401 or type(exc).__name__ == "TokenInvalid":
                    raise SwiftError(401) from None
                raise
        call = Call(request, svc, policy, account, account[len("AUTH_"):], container, obj, auth,
                    svc.cfg.object.max_file_size, identity=identity)
        return await pipeline(call)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        txid = trans_id()
        try:
            response = await handle(request)
        except SwiftError as err:
            response = err.response(request.method)
        except ObjectError as err:
            response = SwiftError(err.status, "" if err.status in (404, 409) else err.message).response(request.method)
        except Exception:
            LOG.exception("unexpected error in %s %s", request.method, request.url.path)
            response = SwiftError(500, "An unexpected error occurred.").response(request.method)
        response.headers["X-Trans-Id"] = txid
        response.headers["X-Openstack-Request-Id"] = txid
        if "x-timestamp" not in response.headers:
            response.headers["X-Timestamp"] = now_timestamp()
        if "content-type" not in response.headers:  # Swift types every answer, a 204 too
            response.headers["Content-Type"] = "text/html; charset=UTF-8"
        await response(scope, receive, send)

    del max_body  # object bodies are bounded by [object] max_file_size, not the JSON body limit
    wrapped: Any = MetricsMiddleware(policy.bind(app), service="object-store")
    return wrapped  # type: ignore[no-any-return]
