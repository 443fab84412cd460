"""Container and account quotas, as Swift's container_quotas and account_quotas middlewares.

Container quotas are metadata the container's owners set:

* ``X-Container-Meta-Quota-Bytes``: the most bytes the container's objects may hold;
* ``X-Container-Meta-Quota-Count``: the most objects it may hold.

The account quota is set only by a reseller admin (``ResellerAdmin``), not by the account's own
users (a 403 for them), so a cloud can sell space:

* ``X-Account-Meta-Quota-Bytes``: the most bytes all of the account's containers may hold.

A quota must be a non-negative integer (400 otherwise; an empty value removes it). An object PUT
or COPY that would go over a quota is refused with 413 "Upload exceeds quota." before anything is
stored; a chunked upload without a length is bounded by the room left and refused when it grows
past it.  Quotas are checked against the counts the listing keeps, so uploads racing each other
may overshoot by what they carry together, as in Swift.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cumulo.object.api.common import SwiftError
from cumulo.object.service import ContainerInfo

if TYPE_CHECKING:
    from cumulo.object.api import Call

EXCEEDED = "Upload exceeds quota."


def _integer(value: str, what: str) -> None:
    if value != "" and (not value.isdigit() or len(value) > 19):
        raise SwiftError(400, f"Invalid {what} quota.")


def check_container_meta(meta: dict[str, str]) -> None:
    """The quota keys of a container PUT or POST must be integers."""
    _integer(meta.get("quota-bytes", ""), "bytes")
    _integer(meta.get("quota-count", ""), "count")


def check_account_meta(call: Call, meta: dict[str, str]) -> None:
    """Only a reseller admin sets or removes the account's quota."""
    if "quota-bytes" not in meta:
        return
    if call.auth is None or not call.policy.enforce("swift_reseller", {"project_id": call.project_id}, call.auth):
        raise SwiftError(403)
    _integer(meta["quota-bytes"], "bytes")


async def room(call: Call, container: ContainerInfo, length: int | None, replacing: int | None) -> int | None:
    """The most bytes an upload into ``container`` may carry (None: no quota applies), or 413 when
    ``length`` bytes (or one more object) would go over a quota.  ``replacing``: the size of the
    object the upload overwrites (None: a new object)."""
    limits: list[int] = []
    freed = replacing or 0
    cq = container.meta.get("quota-bytes")
    if cq and cq.isdigit():
        limits.append(int(cq) - container.bytes_used + freed)
    count = container.meta.get("quota-count")
    if count and count.isdigit() and replacing is None and container.object_count + 1 > int(count):
        raise SwiftError(413, EXCEEDED)
    account = await call.svc.account(call.account)
    aq = account.meta.get("quota-bytes")
    if aq and aq.isdigit():
        limits.append(int(aq) - account.bytes_used + freed)
    if not limits:
        return None
    left = max(0, min(limits))
    if length is not None and length > left:
        raise SwiftError(413, EXCEEDED)
    return left
