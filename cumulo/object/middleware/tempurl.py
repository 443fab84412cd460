"""TempURL: a link that lets whoever holds it GET, HEAD, PUT, POST or DELETE one object (or every
object under a prefix) until a time, without a token, as Swift's tempurl middleware does.

On by default; ``[object] disabled_features = ["tempurl"]`` turns it off (the query parameters
are then ignored and such a request needs a token like any other).

Keys.  An account's owners set ``X-Account-Meta-Temp-URL-Key`` and ``-Key-2`` on the account
(POST; owners only), or ``X-Container-Meta-Temp-URL-Key`` and ``-Key-2`` on a container (POST or
PUT; owners only: a user with only a container ACL cannot set them, and the keys are never shown to
anyone but the owners in HEAD or GET answers).  Two keys of each kind let a key be rotated
without breaking the links made with the other.  A link signed with an account key reaches the
account's objects; one signed with a container key reaches that container only (a tempurl PUT
with ``X-Copy-From`` another container is refused).

The link.  ``?temp_url_sig=<sig>&temp_url_expires=<t>`` on the object's URL, where ``t`` is unix
seconds or ISO 8601 UTC (``2030-01-02T03:04:05Z``) and the signature is the HMAC, under a key,
of ``"<METHOD>\\n<unix expires>\\n<path>"`` (path from ``/v1/`` on, unquoted).  With
``temp_url_prefix=<p>`` the path signed is ``prefix:/v1/<account>/<container>/<p>`` and the link
serves every object whose name starts with ``p``.  With ``temp_url_ip_range=<ip or CIDR>`` the
signed text starts with ``"ip=<range>\\n"`` and only clients in the range are served (the
client's own address: the object port does not trust X-Forwarded-For).  The signature is hex
(its length says the digest: sha1 40, sha256 64, sha512 128 characters) or
``<digest>:<base64 or url-safe base64>``.  Digests: sha1, sha256 and sha512, Swift's current
defaults (sha1 is deprecated there and listed so in ``/info``).  A HEAD is allowed by a link
signed for HEAD, GET, POST or PUT.

Answers.  An expired link, a bad or tampered signature, a method the link was not signed for, a
method other than GET HEAD PUT POST DELETE, a path that is not an object, an address out of range
or no key at all: ``401`` with ``401 Unauthorized: Temp URL invalid`` (no body for HEAD).  A
tempurl PUT, POST or DELETE carrying ``X-Object-Manifest`` or ``X-Symlink-Target`` is a 400 (a
link must not store a pointer to data it does not reach).  ``X-Timestamp`` and
``X-Open-Expired`` are dropped from the request; ``X-Object-Meta-*`` is dropped from the answer
except ``X-Object-Meta-Public-*``; other query parameters are dropped.  A successful GET or HEAD
answers ``Content-Disposition``: ``attachment; filename="<object's last name>"`` by default, the
object's own Content-Disposition if it has one, ``attachment`` with the ``filename=`` parameter's
name, or ``inline`` (with ``filename``, if given) for ``&inline``; and ``Expires`` (the link's
end).  These settings are fixed (Swift's defaults); ``/info`` lists them."""

from __future__ import annotations

import base64
import binascii
import calendar
import hmac
import ipaddress
import posixpath
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlencode

from starlette.responses import Response

from cumulo.object.api.common import SwiftError
from cumulo.object.middleware import with_headers

if TYPE_CHECKING:
    from cumulo.object.api import Call
    from cumulo.object.middleware import Handler

NAME = "tempurl"
ORDER = 30

METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")
DIGESTS = ("sha1", "sha256", "sha512")
DEPRECATED_DIGESTS = ("sha1",)
HEX_LENGTHS = {40: "sha1", 64: "sha256", 128: "sha512"}
INCOMING_REMOVE = ("x-timestamp", "x-open-expired")
DISALLOWED_INCOMING = ("x-object-manifest", "x-symlink-target")
OUTGOING_REMOVE_PREFIX = "x-object-meta-"
OUTGOING_ALLOW_PREFIX = "x-object-meta-public-"
KEY_NAMES = ("temp-url-key", "temp-url-key-2")
# headers that show the keys: for the account's owners only
KEY_HEADERS = ("x-account-meta-temp-url-key", "x-account-meta-temp-url-key-2",
               "x-container-meta-temp-url-key", "x-container-meta-temp-url-key-2")
MAX_PARAM = 1024  # longer signatures, ranges, prefixes or names are not a link's
INVALID = b"401 Unauthorized: Temp URL invalid\n"
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MAX_EXPIRES = 253402300799  # 9999-12-31T23:59:59Z: later is no date an Expires header can carry


def capabilities(cfg: Any) -> dict[str, Any]:
    return {"methods": list(METHODS), "incoming_remove_headers": list(INCOMING_REMOVE),
            "incoming_allow_headers": [], "outgoing_remove_headers": [OUTGOING_REMOVE_PREFIX + "*"],
            "outgoing_allow_headers": [OUTGOING_ALLOW_PREFIX + "*"], "allowed_digests": list(DIGESTS),
            "deprecated_digests": list(DEPRECATED_DIGESTS)}


def parse_signature(value: str) -> tuple[str, str]:
    """(digest, hex signature) of a link's ``temp_url_sig`` (also FormPost's ``signature``);
    ValueError when it is neither form."""
    if ":" in value:
        digest, encoded = value.split(":", 1)
        if "-" in encoded or "_" in encoded:
            if "+" in encoded or "/" in encoded:
                raise ValueError("mixed base64 alphabets")
            encoded = encoded.replace("-", "+").replace("_", "/")
        encoded = encoded.rstrip("=")
        encoded += "=" * (-len(encoded) % 4)
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError("bad base64") from None
        return digest.lower(), raw.hex()
    try:
        binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        raise ValueError("bad hex") from None
    digest = HEX_LENGTHS.get(len(value))
    if digest is None:
        raise ValueError("bad digest length")
    return digest, value.lower()


def sign(key: str, message: str, digest: str) -> str:
    return hmac.new(key.encode("utf-8"), message.encode("utf-8"), digest).hexdigest()


def keys_of(meta: dict[str, str]) -> list[str]:
    return [value for name, value in meta.items() if name.lower() in KEY_NAMES and value]


def _expires(value: str | None) -> int | None:
    """The link's end in unix seconds, 0 for one unreadable or past, None for none."""
    if value is None:
        return None
    try:
        t = int(value)
    except ValueError:
        try:
            t = calendar.timegm(time.strptime(value, ISO_FORMAT))
        except ValueError:
            return 0
    return 0 if t < time.time() or t > MAX_EXPIRES else t


def invalid(method: str) -> Response:
    return Response(b"" if method == "HEAD" else INVALID, status_code=401,
                    headers={"Content-Length": str(len(INVALID))}, media_type="text/html; charset=UTF-8")


def disposition(kind: str, filename: str) -> str:
    return f"{kind}; filename=\"{quote(filename, safe=' /')}\"; filename*=UTF-8''{quote(filename)}"


async def handle(call: Call, app: Handler) -> Response:
    method = call.request.method
    if method == "OPTIONS":
        return await app(call)
    query = parse_qs(call.request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)

    def first(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    sig, raw_expires = first("temp_url_sig"), first("temp_url_expires")
    expires = _expires(raw_expires)
    if sig is None and expires is None:
        return await _hide_keys(call, app)
    prefix, ip_range = first("temp_url_prefix"), first("temp_url_ip_range")
    filename, inline = first("filename"), "inline" in query
    if not sig or not expires or any(v is not None and len(v) > MAX_PARAM for v in (sig, prefix, ip_range, filename)):
        return invalid(method)
    try:
        digest, sig = parse_signature(sig)
    except ValueError:
        return invalid(method)
    if digest not in DIGESTS or method not in METHODS or not call.container or not call.obj.strip("/"):
        return invalid(method)
    if ip_range:
        client = call.request.client
        try:
            if client is None or ipaddress.ip_address(client.host) not in ipaddress.ip_network(ip_range):
                return invalid(method)
        except ValueError:
            return invalid(method)
    account_info = await call.svc.account(call.account)
    container_info = await call.svc.container(call.account, call.container)
    scoped = [(k, "account") for k in keys_of(account_info.meta)]
    if container_info is not None:
        scoped += [(k, "container") for k in keys_of(container_info.meta)]
    if not scoped:
        return invalid(method)
    if prefix is None:
        signed_path = f"/v1/{call.account}/{call.container}/{call.obj}"
    else:
        if not call.obj.startswith(prefix):
            return invalid(method)
        signed_path = f"prefix:/v1/{call.account}/{call.container}/{prefix}"
    head = f"ip={ip_range}\n" if ip_range else ""
    methods = ("HEAD", "GET", "POST", "PUT") if method == "HEAD" else (method,)
    scope = None
    for signed_method in methods:
        for key, key_scope in scoped:
            expected = sign(key, f"{head}{signed_method}\n{expires}\n{signed_path}", digest)
            if hmac.compare_digest(expected, sig) and scope is None:
                scope = key_scope
    if scope is None:
        return invalid(method)
    headers = call.request.headers
    if method not in ("GET", "HEAD"):
        for name in DISALLOWED_INCOMING:
            if name in headers:
                raise SwiftError(400, f"The header {name.title()!r} is not allowed in this tempurl")
    copy_from = headers.get("x-copy-from")
    if scope == "container" and copy_from is not None:
        from urllib.parse import unquote

        if unquote(copy_from).lstrip("/").split("/", 1)[0] != call.container:
            raise SwiftError(401)  # a container key reaches its own container only
    kept = {"temp_url_sig": first("temp_url_sig") or "", "temp_url_expires": raw_expires or ""}
    if prefix is not None:
        kept["temp_url_prefix"] = prefix
    if filename:
        kept["filename"] = filename
    if inline:
        kept["inline"] = ""
    granted = with_headers(call, {name: None for name in INCOMING_REMOVE})
    granted.request.scope["query_string"] = urlencode(kept).encode("latin-1")
    granted.granted = NAME
    granted.grant = (call.account, call.container if scope == "container" else "")
    response = await app(granted)
    for name in [n for n in response.headers if n.startswith(OUTGOING_REMOVE_PREFIX)
                 and not n.startswith(OUTGOING_ALLOW_PREFIX)]:
        del response.headers[name]
    if method in ("GET", "HEAD") and 200 <= response.status_code < 300:
        existing = response.headers.get("content-disposition")
        if inline:
            value = disposition("inline", filename) if filename else "inline"
        elif filename:
            value = disposition("attachment", filename)
        elif existing:
            value = existing
        else:
            value = disposition("attachment", posixpath.basename(call.obj.rstrip("/")))
        response.headers["Content-Disposition"] = value.replace("\n", "%0A")
        response.headers["Expires"] = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(expires))
    return response


async def _hide_keys(call: Call, app: Handler) -> Response:
    """A request without a link: the Temp-URL keys are the owners' to set and to see, as in Swift
    (account POST is the owners' already; container POST and PUT are too, checked again here)."""
    method = call.request.method
    wants_key = any(h in call.request.headers or f"x-remove-{h[2:]}" in call.request.headers
                    for h in KEY_HEADERS)
    if wants_key and method in ("PUT", "POST") and call.container and not call.obj and not call.is_owner():
        call = with_headers(call, {**{h: None for h in KEY_HEADERS},
                                   **{f"x-remove-{h[2:]}": None for h in KEY_HEADERS}})
    response = await app(call)
    if method in ("GET", "HEAD") and not call.obj and not call.is_owner():
        for name in KEY_HEADERS:
            if name in response.headers:
                del response.headers[name]
    return response
