"""Container ACLs as Swift writes them (``X-Container-Read``, ``X-Container-Write``) and as
keystoneauth reads them.

An ACL is a comma-separated list of:

* ``.r:<referrer>`` (read only): anyone, without a token, whose Referer host matches: ``*``
  for everyone, ``.example.com`` for a domain and its hosts, ``-`` before it to refuse one;
* ``.rlistings`` (read only): those the referrers let in may list the container too;
* ``<project_id>:<user_id>``, ``<project>:*``, ``*:<user>``, ``*:*`` (ids or names): those users;
* a role name: every token holding that role.

``clean`` checks one and returns it in its canonical spelling (``.ref``/``.referrer`` become
``.r``), or raises ``ValueError`` (the API's 400).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlparse

MAX_ACL = 8192  # bytes, bounded like any other header


def clean(value: str, write: bool = False) -> str:
    if len(value.encode()) > MAX_ACL:
        raise ValueError(f"The ACL is longer than {MAX_ACL} bytes.")
    out = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        if item.startswith("."):
            if item == ".rlistings":
                if write:
                    raise ValueError("Referrers not allowed in write ACL: '.rlistings'")
                out.append(item)
                continue
            kind, sep, ref = item.partition(":")
            if kind not in (".r", ".ref", ".referer", ".referrer") or not sep:
                raise ValueError(f"Unknown designator {kind!r} in ACL: {item!r}")
            if write:
                raise ValueError(f"Referrers not allowed in write ACL: {item!r}")
            ref = ref.strip()
            if not ref or ref == "-":
                raise ValueError(f"No host/domain value after referrer designation in ACL: {item!r}")
            if ref.startswith("-"):
                ref = "-" + ref[1:].strip()
                if ref[1:].startswith("*") and len(ref) > 2:
                    raise ValueError(f"Bad referrer in ACL: {item!r}")
            if "/" in ref or " " in ref:
                raise ValueError(f"Bad referrer in ACL: {item!r}")
            out.append(f".r:{ref}")
        else:
            if any(c.isspace() for c in item) or item.count(":") > 1:
                raise ValueError(f"Bad ACL element: {item!r}")
            out.append(item)
    return ",".join(out)


@dataclass
class ParsedACL:
    referrers: list[str] = field(default_factory=list)
    listings: bool = False
    groups: list[str] = field(default_factory=list)


def parse(value: str) -> ParsedACL:
    acl = ParsedACL()
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        if item == ".rlistings":
            acl.listings = True
        elif item.startswith(".r:"):
            acl.referrers.append(item[3:])
        else:
            acl.groups.append(item)
    return acl


def referrer_allowed(referer: str | None, referrers: list[str]) -> bool:
    """Whether the Referer's host passes the ``.r:`` entries; the last matching entry decides."""
    host = (urlparse(referer).hostname or "") if referer else ""
    allowed = False
    for ref in referrers:
        negate = ref.startswith("-")
        pattern = ref[1:] if negate else ref
        if pattern == "*" or (host and (host == pattern or (pattern.startswith(".") and host.endswith(pattern)))):
            allowed = not negate
    return allowed


def user_allowed(groups: list[str], project_id: str, project_name: str, user_id: str, user_name: str,
                 roles: list[str]) -> bool:
    """keystoneauth's cross-project check: a ``project:user`` pair (ids or names, ``*`` for any),
    or a role the token holds."""
    lowered = {r.lower() for r in roles}
    pairs = {f"{project_id}:{user_id}", f"{project_name}:{user_name}", f"*:{user_id}", f"*:{user_name}",
             f"{project_id}:*", f"{project_name}:*", "*:*"}
    for item in groups:
        if ":" in item:
            if item in pairs:
                return True
        elif item.lower() in lowered:
            return True
    return False
