"""Container and account quotas, as Swift's container_quotas and account_quotas middlewares.

Container quotas are metadata the container's owners set:

* ``X-Container-Meta-Quota-Bytes``: the most bytes the container's objects may hold;
* ``X-Container-Meta-Quota-Count``: the most objects it may hold.

Account quotas are set only by a reseller admin (``ResellerAdmin``), not by the account's own
users (a 403 for them), so a cloud can sell space; the account's users see them on HEAD:

* ``X-Account-Quota-Bytes`` (or the older ``X-Account-Meta-Quota-Bytes``): the most bytes all of
  the account's containers may hold;
* ``X-Account-Quota-Count``: the most objects they may hold;
* ``X-Account-Quota-Bytes-Policy-Policy-0``, ``X-Account-Quota-Count-Policy-Policy-0``: the same
  for the one storage policy (every container is in it);
* ``X-Remove-Account-Quota-*`` (any value) removes one.

A quota must be a non-negative integer (400 otherwise; an empty value removes it). An object PUT
or COPY that would go over a quota is refused with 413 "Upload exceeds quota." before anything is
stored; a chunked upload without a length is bounded by the room left and refused when it grows
past it.  A reseller admin's own uploads are not held to the account's quotas (Swift's rule).
Quotas are checked against the counts the listing keeps, so uploads racing each other may
overshoot by what they carry together, as in Swift.

GET /info lists ``container_quotas`` and ``account_quotas``; ``[object] disabled_features``
naming one turns it off (its headers are then plain metadata, or refused for the account's
quota headers, and nothing is enforced).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cumulo.object.api.common import SYSMETA, SwiftError
from cumulo.object.service import ContainerInfo

if TYPE_CHECKING:
    from cumulo.object.api import Call

EXCEEDED = "Upload exceeds quota."


def _integer(value: str, what: str) -> None:
    if value != "" and (not value.isdigit() or len(value) > 19):
        raise SwiftError(400, f"Invalid {what} quota.")


def enabled(call: Call, name: str) -> bool:
    return name not in {n.strip() for n in call.svc.cfg.object.disabled_features}


def check_container_meta(meta: dict[str, str], on: bool = True) -> None:
    """The quota keys of a container PUT or POST must be integers."""
    if not on:
        return
    _integer(meta.get("quota-bytes", ""), "bytes")
    _integer(meta.get("quota-count", ""), "count")


# the account's quota headers (after X-Account-) and the system metadata key each is kept in
ACCOUNT_QUOTAS = {"quota-bytes": SYSMETA + "quota-bytes", "quota-count": SYSMETA + "quota-count",
                  "quota-bytes-policy-policy-0": SYSMETA + "quota-bytes-policy-0",
                  "quota-count-policy-policy-0": SYSMETA + "quota-count-policy-0"}


def is_reseller(call: Call) -> bool:
    return call.auth is not None and call.policy.enforce("swift_reseller", {"project_id": call.project_id},
                                                         call.auth)


def account_updates(call: Call, meta: dict[str, str]) -> dict[str, str]:
    """The system metadata an account POST sets: its quotas, which only a reseller admin may
    change (403 for anyone else, 400 for a value that is not an integer)."""
    h = call.request.headers
    if not enabled(call, "account_quotas"):
        if any(h.get(f"x-account-{key}") is not None or h.get(f"x-remove-account-{key}") is not None
               for key in ACCOUNT_QUOTAS):
            raise SwiftError(403)
        return {}
    wanted: dict[str, str] = {}
    for key, sys_key in ACCOUNT_QUOTAS.items():
        value = h.get(f"x-account-{key}")
        if key == "quota-bytes" and not value and "quota-bytes" in meta:  # the older spelling
            value = meta["quota-bytes"]
        if h.get(f"x-remove-account-{key}") is not None:
            value = ""
        if value is not None:
            wanted[sys_key] = value.strip()
    if not wanted:
        return {}
    if not is_reseller(call):
        raise SwiftError(403)
    for sys_key, value in wanted.items():
        _integer(value, "count" if "count" in sys_key else "bytes")
    return wanted


def account_headers(meta: dict[str, str]) -> dict[str, str]:
    """The quotas an account HEAD or GET shows (to its users too)."""
    return {f"X-Account-{key.title()}": meta[sys_key]
            for key, sys_key in ACCOUNT_QUOTAS.items() if meta.get(sys_key)}


async def room(call: Call, container: ContainerInfo, length: int | None, replacing: int | None) -> int | None:
    """The most bytes an upload into ``container`` may carry (None: no quota applies), or 413 when
    ``length`` bytes (or one more object) would go over a quota.  ``replacing``: the size of the
    object the upload overwrites (None: a new object)."""
    limits: list[int] = []
    freed = replacing or 0
    if enabled(call, "container_quotas"):
        cq = container.meta.get("quota-bytes")
        if cq and cq.isdigit():
            limits.append(int(cq) - container.bytes_used + freed)
        count = container.meta.get("quota-count")
        if count and count.isdigit() and replacing is None and container.object_count + 1 > int(count):
            raise SwiftError(413, EXCEEDED)
    if enabled(call, "account_quotas") and not is_reseller(call):
        account = await call.svc.account(call.account)
        for key in ("quota-bytes", "quota-bytes-policy-0"):
            aq = account.meta.get(SYSMETA + key)
            if aq is None and key == "quota-bytes":
                aq = account.meta.get("quota-bytes")
            if aq and aq.isdigit():
                limits.append(int(aq) - account.bytes_used + freed)
        for key in ("quota-count", "quota-count-policy-0"):
            aq = account.meta.get(SYSMETA + key)
            if aq and aq.isdigit() and replacing is None and account.object_count + 1 > int(aq):
                raise SwiftError(413, EXCEEDED)
    if not limits:
        return None
    left = max(0, min(limits))
    if length is not None and length > left:
        raise SwiftError(413, EXCEEDED)
    return left
