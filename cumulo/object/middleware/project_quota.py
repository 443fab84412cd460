"""The project's object-storage quota from Keystone's unified limits (Operations Guide, chapter 9).

Swift's own quotas (``account_quotas``, ``container_quotas``) are metadata on the account and its
containers.  This feature adds the cloud-wide kind the other services use: limits registered in
the identity service for the service type ``object-store``, a default for every project and an
override per project.  The object service registers its resources at its first start with the
default -1 (no limit) in the cloud's region (``[api] region``, RegionOne by default); an admin
changes a default and gives a project its own limit with the openstack CLI::

    openstack registered limit list --service object-store
    # every project: at most 1 GiB and 100 containers
    openstack registered limit set --default-limit 1073741824 <id of bytes>
    openstack registered limit set --default-limit 100 <id of containers>
    # one project gets more (or -1: no limit for it); Keystone matches a project's limit to its
    # registered limit by service, region and resource, so name the region
    openstack limit create --project P --service object-store --region RegionOne \\
        --resource-limit 2000000000 bytes
    openstack limit set --resource-limit 500 <limit id>

(Where nothing is registered, ``openstack registered limit create --service object-store
--region RegionOne --default-limit N bytes`` registers a default.)

The resources:

``bytes``
    the most bytes the project's account may hold (the sum of its containers' bytes, as account
    HEAD shows in ``X-Account-Bytes-Used``).  An object PUT, a PUT with ``X-Copy-From`` or a COPY
    that would take the account over it is refused with 413 "Upload exceeds quota." before
    anything is stored; the object it overwrites counts as freed.  A chunked upload without a
    length is bounded by the room left and refused (413, nothing kept) once it grows past it.
    A limit lowered below what the account holds refuses every upload, empty ones too, until
    deletes make room (nothing is taken away).
    Unified limits are integers up to 2**31 - 1, as in Keystone, so ``bytes`` cannot say more
    than 2 GiB: use ``gigabytes`` for larger quotas.
``gigabytes``
    the same in GiB (2**30 bytes); where both are set the smaller applies.
``containers``
    the most containers the account may hold: a PUT making a new container beyond it is refused
    with 403 "Reached container limit of N", the answer Swift's proxy gives for its
    ``max_containers_per_account`` (a PUT to an existing container is an update and passes).

A value of -1, or nothing registered, means no check.  Only admins may write limits
(identity's ``identity:limits_write`` policy); a project's members can read theirs
(``openstack limit list``).

Every caller is held to the limits, admins and TempURL/FormPost uploads too (the quota is the
project's, not the caller's).  The counts are the listing's, so uploads racing each other may
overshoot by what they carry together, as with Swift's quotas.  Each API process rereads a
project's limits at most every ``CACHE_SECONDS`` (2 s), so a changed limit applies within that.
Objects written through the S3 API, and the hidden containers S3 multipart uploads and versioning
make, count toward the usage but are not refused by this feature.

No ``/info`` section (it is not a Swift middleware).  ``[object] disabled_features =
project_quota`` turns it off."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING
from urllib.parse import unquote

from starlette.responses import Response

from cumulo.core.config import Config
from cumulo.object.api.common import SwiftError

if TYPE_CHECKING:
    from cumulo.identity.service import IdentityService
    from cumulo.object.api import Call
    from cumulo.object.middleware import Handler

NAME = "project_quota"
ORDER = 45

SERVICE_TYPE = "object-store"
EXCEEDED = "Upload exceeds quota."
GIB = 2**30
CACHE_SECONDS = 2.0
CACHE_SIZE = 10_000
# what the object service registers at its first start: no limit until an admin sets one
DEFAULTS = {
    "bytes": (-1, "Object storage: the most bytes a project's account may hold (-1: no limit)"),
    "gigabytes": (-1, "Object storage: the same in GiB, for quotas above 2 GiB (-1: no limit)"),
    "containers": (-1, "Object storage: the most containers a project's account may hold (-1: no limit)"),
}

_cache: dict[tuple[str, str], tuple[float, int | None]] = {}


def capabilities(cfg: Config) -> dict | None:
    del cfg
    return None


async def register_defaults(identity: IdentityService) -> None:
    """Register the resources (unlimited) where nothing is registered yet."""
    await identity.register_default_limits(SERVICE_TYPE, DEFAULTS)


async def _limit(identity: IdentityService, project_id: str, resource: str) -> int | None:
    key = (project_id, resource)
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    value = await identity.limit(project_id, SERVICE_TYPE, resource)
    if value is not None and value < 0:
        value = None
    if len(_cache) >= CACHE_SIZE:
        _cache.clear()
    _cache[key] = (now + CACHE_SECONDS, value)
    return value


async def bytes_limit(identity: IdentityService, project_id: str) -> int | None:
    """The project's byte quota (the smaller of ``bytes`` and ``gigabytes``), None for none."""
    found = []
    if (value := await _limit(identity, project_id, "bytes")) is not None:
        found.append(value)
    if (value := await _limit(identity, project_id, "gigabytes")) is not None:
        found.append(value * GIB)
    return min(found) if found else None


def _target(value: str) -> tuple[str, str] | None:
    container, _, obj = unquote(value).lstrip("/").partition("/")
    return (container, obj) if container and obj else None


async def handle(call: Call, app: Handler) -> Response:
    method = call.request.method
    identity = call.identity
    if identity is None or not call.project_id or not call.container:
        return await app(call)
    if not call.obj:
        if method == "PUT":
            await _check_containers(call, identity)
        return await app(call)
    if method not in ("PUT", "COPY"):
        return await app(call)
    limit = await bytes_limit(identity, call.project_id)
    if limit is None:
        return await app(call)
    headers = call.request.headers
    dest: tuple[str, str] | None = (call.container, call.obj)
    source: tuple[str, str] | None = None
    if method == "COPY":
        dest = _target(headers.get("destination", ""))
        source = (call.container, call.obj)
    elif headers.get("x-copy-from"):
        source = _target(headers["x-copy-from"])
    if dest is None:
        return await app(call)  # the handler answers the malformed request
    svc = call.svc
    container = await svc.container(call.account, dest[0])
    if container is None:
        return await app(call)  # 404 (or 401/403) from the handler
    existing = await svc.object(container, dest[1])
    account = await svc.account(call.account)
    # negative when the limit was lowered below what the account holds: then nothing more fits,
    # an empty object neither (as Swift's quotas: used + length must stay within the limit)
    left = limit - account.bytes_used + (existing.size if existing else 0)
    length: int | None = None
    if source is not None:
        src_container = await svc.container(call.account, source[0])
        src = await svc.object(src_container, source[1]) if src_container is not None else None
        length = src.size if src is not None else None
    elif headers.get("content-length", "").isdigit():
        length = int(headers["content-length"])
    if left < 0 or (length is not None and length > left):
        call.authorize("object_store:object:put", container)  # a stranger learns nothing of the quota
        raise SwiftError(413, EXCEEDED)
    room = left if call.room is None else min(left, call.room)
    return await app(dataclasses.replace(call, room=room))


async def _check_containers(call: Call, identity: IdentityService) -> None:
    limit = await _limit(identity, call.project_id, "containers")
    if limit is None or await call.svc.container(call.account, call.container) is not None:
        return
    account = await call.svc.account(call.account)
    if account.container_count + 1 > limit:
        call.authorize("object_store:container:put")
        raise SwiftError(403, f"Reached container limit of {limit}")
