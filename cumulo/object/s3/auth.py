"""Who signed an S3 request, and the payload as its signature says to read it.

AWS Signature Version 4 (the ``Authorization`` header, or a presigned URL's ``X-Amz-*`` query) and
Version 2 (``AWS <access>:<signature>``, or ``AWSAccessKeyId``/``Expires``/``Signature``) are
checked against the secret of the Keystone EC2 credential named by the access key; the caller then
acts as that credential's user in its project.  The payload (``Body``) is read as
``x-amz-content-sha256`` says: a hex SHA-256 (checked), ``UNSIGNED-PAYLOAD``, or aws-chunked
(``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`` with every chunk's signature checked,
``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` with a trailing checksum).  ``Content-MD5`` and the
``x-amz-checksum-crc32/-sha1/-sha256`` values (header or trailer) are checked too; crc32c and
crc64nvme are accepted unchecked (no implementation in the standard library).  A mismatch is found
at the end of the stream and raised before the object is kept."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote

from starlette.requests import Request

from cumulo.core.context import AuthContext
from cumulo.object.s3.common import S3Error

MAX_SKEW = 15 * 60  # seconds a signed request's date may be off
MAX_EXPIRES = 7 * 24 * 3600  # a presigned URL's longest life, as AWS allows
MAX_CHUNK_HEADER = 4096
MAX_TRAILER = 4096
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

# query parameters that are part of a SigV2 string to sign
V2_SUBRESOURCES = {"acl", "delete", "lifecycle", "location", "logging", "notification", "partNumber", "policy",
                   "requestPayment", "tagging", "torrent", "uploadId", "uploads", "versionId", "versioning",
                   "versions", "website", "cors", "response-content-type", "response-content-language",
                   "response-expires", "response-cache-control", "response-content-disposition",
                   "response-content-encoding"}


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _aws_quote(value: str) -> str:
    return quote(value, safe="-_.~")


def _raw_query_pairs(request: Request) -> list[tuple[str, str]]:
    raw = request.scope.get("query_string", b"").decode("latin-1")
    pairs = []
    for item in raw.split("&"):
        if not item:
            continue
        k, _, v = item.partition("=")
        pairs.append((unquote(k), unquote(v)))
    return pairs


def _raw_path(request: Request) -> str:
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1") if raw else quote(request.scope["path"])


class Signer:
    """What the chunks of an aws-chunked body are signed with (the seed is the request's signature)."""

    def __init__(self, key: bytes, amz_date: str, scope: str, seed: str) -> None:
        self.key, self.amz_date, self.scope, self.previous = key, amz_date, scope, seed

    def check_chunk(self, digest: str, signature: str) -> None:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", self.amz_date, self.scope, self.previous, EMPTY_SHA256, digest])
        expected = hmac.new(self.key, sts.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise S3Error("SignatureDoesNotMatch", "A chunk's signature does not match.")
        self.previous = signature

    def check_trailer(self, trailer: bytes, signature: str) -> None:
        sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", self.amz_date, self.scope, self.previous,
                         hashlib.sha256(trailer).hexdigest()])
        expected = hmac.new(self.key, sts.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise S3Error("SignatureDoesNotMatch", "The trailer's signature does not match.")


class Checksum:
    """A running x-amz-checksum-* value; ``None`` digest for algorithms not checked here."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self.crc = 0
        self.hash: Any = hashlib.new(algorithm) if algorithm in ("sha1", "sha256") else None

    def update(self, data: bytes) -> None:
        if self.algorithm == "crc32":
            self.crc = zlib.crc32(data, self.crc)
        elif self.hash is not None:
            self.hash.update(data)

    def value(self) -> str | None:
        if self.algorithm == "crc32":
            return base64.b64encode(self.crc.to_bytes(4, "big")).decode()
        if self.hash is not None:
            return base64.b64encode(self.hash.digest()).decode()
        return None


CHECKSUMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")


class Body:
    """The request's payload, decoded and checked as its headers and signature require."""

    def __init__(self, request: Request, content_sha256: str | None, signer: Signer | None) -> None:
        self.request = request
        self.content_sha256 = content_sha256 or "UNSIGNED-PAYLOAD"
        self.signer = signer
        h = request.headers
        self.chunked = self.content_sha256.startswith("STREAMING-")
        self.length: int | None = None
        try:
            if self.chunked:
                if h.get("x-amz-decoded-content-length") is not None:
                    self.length = int(h["x-amz-decoded-content-length"])
            elif h.get("content-length") is not None:
                self.length = int(h["content-length"])
        except ValueError:
            raise S3Error("InvalidArgument", "Invalid content length.") from None
        if self.length is not None and self.length < 0:
            raise S3Error("InvalidArgument", "Invalid content length.")
        if self.chunked and self.content_sha256 not in (
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
                "STREAMING-UNSIGNED-PAYLOAD-TRAILER"):
            raise S3Error("InvalidArgument", f"Unsupported x-amz-content-sha256: {self.content_sha256[:64]}")
        if self.content_sha256.startswith("STREAMING-AWS4") and signer is None:
            raise S3Error("InvalidArgument", "A signed aws-chunked payload needs a SigV4 Authorization header.")
        if not self.chunked and self.content_sha256 != "UNSIGNED-PAYLOAD" and not re.fullmatch(
                "[0-9a-f]{64}", self.content_sha256):
            raise S3Error("InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... "
                          "or a SHA-256 in hex.")
        self.md5: str | None = None
        if h.get("content-md5") is not None:
            try:
                raw = base64.b64decode(h["content-md5"], validate=True)
            except ValueError:
                raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.") from None
            if len(raw) != 16:
                raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.")
            self.md5 = raw.hex()
        self.checksum: Checksum | None = None
        self.expected_checksum: str | None = None
        self.trailer_name = (h.get("x-amz-trailer") or "").strip().lower()
        for alg in CHECKSUMS:
            if h.get(f"x-amz-checksum-{alg}"):
                self.checksum, self.expected_checksum = Checksum(alg), h[f"x-amz-checksum-{alg}"].strip()
        if self.trailer_name:
            if not self.trailer_name.startswith("x-amz-checksum-") or \
                    self.trailer_name[len("x-amz-checksum-"):] not in CHECKSUMS:
                raise S3Error("InvalidRequest", f"Unsupported trailer: {self.trailer_name[:64]}")
            self.checksum = Checksum(self.trailer_name[len("x-amz-checksum-"):])
        self.consumed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The decoded payload; the checks raise (BadDigest, SignatureDoesNotMatch, ...) after the
        last byte, so a store that is fed this never keeps a body that fails them."""
        if self.consumed:
            raise S3Error("InternalError", "The body was read twice.")
        self.consumed = True
        sha = hashlib.sha256() if not self.chunked and self.content_sha256 != "UNSIGNED-PAYLOAD" else None
        md5 = hashlib.md5() if self.md5 else None  # noqa: S324  (Content-MD5 is md5)
        total = 0
        source = self._chunked() if self.chunked else self._plain()
        async for data in source:
            total += len(data)
            if sha is not None:
                sha.update(data)
            if md5 is not None:
                md5.update(data)
            if self.checksum is not None:
                self.checksum.update(data)
            yield data
        if self.length is not None and total != self.length:
            raise S3Error("IncompleteBody", "You did not provide the number of bytes specified by the "
                          "Content-Length HTTP header.")
        if sha is not None and sha.hexdigest() != self.content_sha256:
            raise S3Error("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not "
                          "match what was computed.")
        if md5 is not None and md5.hexdigest() != self.md5:
            raise S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.")
        if self.checksum is not None:
            got = self.checksum.value()
            if self.expected_checksum is None:
                raise S3Error("InvalidRequest", "The trailing checksum is missing.")
            if got is not None and got != self.expected_checksum:
                raise S3Error("BadDigest", f"The {self.checksum.algorithm.upper()} you specified did not match the "
                              "calculated checksum.")

    async def read(self, limit: int) -> bytes:
        out = bytearray()
        async for data in self.chunks():
            out += data
            if len(out) > limit:
                raise S3Error("MalformedXML", "The request body is too large.")
        return bytes(out)

    async def _plain(self) -> AsyncIterator[bytes]:
        async for data in self.request.stream():
            if data:
                yield data

    async def _chunked(self) -> AsyncIterator[bytes]:
        stream = self.request.stream().__aiter__()
        buf = bytearray()
        done = False

        async def fill(n: int) -> None:
            nonlocal done
            while len(buf) < n and not done:
                try:
                    buf.extend(await stream.__anext__())
                except StopAsyncIteration:
                    done = True

        async def line(bound: int) -> bytes:
            while True:
                cut = buf.find(b"\r\n")
                if cut >= 0:
                    out = bytes(buf[:cut])
                    del buf[:cut + 2]
                    return out
                if len(buf) > bound or done:
                    raise S3Error("IncompleteBody", "The aws-chunked body is malformed.")
                await fill(len(buf) + 1)

        while True:
            header = (await line(MAX_CHUNK_HEADER)).decode("latin-1")
            size_text, _, ext = header.partition(";")
            try:
                size = int(size_text.strip(), 16)
            except ValueError:
                raise S3Error("IncompleteBody", "The aws-chunked body is malformed.") from None
            signature = ext.partition("chunk-signature=")[2].strip() if ext else ""
            if self.signer is not None and not signature:
                raise S3Error("SignatureDoesNotMatch", "A chunk carries no signature.")
            digest = hashlib.sha256() if self.signer is not None else None
            left = size
            while left:
                if not buf:
                    await fill(1)
                    if not buf:
                        raise S3Error("IncompleteBody", "The aws-chunked body ended early.")
                piece = bytes(buf[:left])
                del buf[:len(piece)]
                left -= len(piece)
                if digest is not None:
                    digest.update(piece)
                yield piece
            if self.signer is not None and digest is not None:
                self.signer.check_chunk(digest.hexdigest(), signature)
            if size == 0:
                break
            if await line(2) != b"":
                raise S3Error("IncompleteBody", "The aws-chunked body is malformed.")
        # the trailer: "name:value" lines, an optional x-amz-trailer-signature, an empty line
        trailer_lines: list[bytes] = []
        trailer_signature = ""
        total = 0
        while True:
            await fill(1)
            if not buf and done:
                break
            text = await line(MAX_TRAILER)
            total += len(text)
            if total > MAX_TRAILER:
                raise S3Error("IncompleteBody", "The trailer is too long.")
            if not text:
                if not trailer_lines and not self.trailer_name:
                    continue
                break
            name, _, value = text.decode("latin-1").partition(":")
            if name.strip().lower() == "x-amz-trailer-signature":
                trailer_signature = value.strip()
            else:
                trailer_lines.append(text)
                if self.checksum is not None and name.strip().lower() == self.trailer_name:
                    self.expected_checksum = value.strip()
        if self.signer is not None and self.content_sha256.endswith("-TRAILER"):
            self.signer.check_trailer(b"".join(t + b"\n" for t in trailer_lines), trailer_signature)


async def authenticate(request: Request, identity: Any) -> tuple[AuthContext | None, Body]:
    """The caller (None: anonymous) and the payload, or an S3Error (InvalidAccessKeyId,
    SignatureDoesNotMatch, AccessDenied for an expired URL, RequestTimeTooSkewed, ...)."""
    header = request.headers.get("authorization", "")
    query = dict(_raw_query_pairs(request))
    if header.startswith("AWS4-HMAC-SHA256 ") or query.get("X-Amz-Algorithm"):
        return await _v4(request, identity, header, query)
    if header.startswith("AWS ") or "AWSAccessKeyId" in query:
        return await _v2(request, identity, header, query)
    if header:
        raise S3Error("InvalidArgument", "Unsupported Authorization Type")
    return None, Body(request, request.headers.get("x-amz-content-sha256"), None)


async def _secret(identity: Any, access: str) -> tuple[str, AuthContext]:
    found = await identity.ec2_context(access) if access and len(access) <= 128 else None
    if found is None:
        raise S3Error("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
    return found  # type: ignore[no-any-return]


def _parse_amz_date(value: str) -> float:
    try:
        return dt.datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        raise S3Error("AccessDenied", "X-Amz-Date must be in the ISO8601 basic format.") from None


async def _v4(request: Request, identity: Any, header: str,
              query: dict[str, str]) -> tuple[AuthContext | None, Body]:
    presigned = not header.startswith("AWS4-HMAC-SHA256 ")
    now = time.time()
    if presigned:
        if query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            raise S3Error("AuthorizationQueryParametersError", "X-Amz-Algorithm must be AWS4-HMAC-SHA256.")
        try:
            credential, signed_headers = query["X-Amz-Credential"], query["X-Amz-SignedHeaders"]
            signature, amz_date, expires_text = (query["X-Amz-Signature"], query["X-Amz-Date"],
                                                 query["X-Amz-Expires"])
        except KeyError as missing:
            raise S3Error("AuthorizationQueryParametersError", f"Query-string authentication requires "
                          f"{missing.args[0]}.") from None
        try:
            expires = int(expires_text)
        except ValueError:
            raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires should be a number") from None
        if not 0 < expires <= MAX_EXPIRES:
            raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires must be less than a week (in "
                          "seconds) that is 604800")
        signed_at = _parse_amz_date(amz_date)
        if signed_at - MAX_SKEW > now:
            raise S3Error("AccessDenied", "Request is not valid yet")
        if signed_at + expires < now:
            raise S3Error("AccessDenied", "Request has expired")
        payload = query.get("X-Amz-Content-Sha256") or request.headers.get("x-amz-content-sha256") or \
            "UNSIGNED-PAYLOAD"
    else:
        fields: dict[str, str] = {}
        for part in header[len("AWS4-HMAC-SHA256 "):].split(","):
            k, _, v = part.strip().partition("=")
            fields[k.strip()] = v.strip()
        try:
            credential, signed_headers, signature = (fields["Credential"], fields["SignedHeaders"],
                                                     fields["Signature"])
        except KeyError:
            raise S3Error("AuthorizationHeaderMalformed", "The authorization header is malformed.") from None
        amz_date = request.headers.get("x-amz-date") or ""
        if not amz_date:
            from email.utils import parsedate_to_datetime
            try:
                when = parsedate_to_datetime(request.headers.get("date", ""))
            except (TypeError, ValueError):
                raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date "
                              "header") from None
            amz_date = when.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        signed_at = _parse_amz_date(amz_date)
        if abs(signed_at - now) > MAX_SKEW:
            raise S3Error("RequestTimeTooSkewed", "The difference between the request time and the current "
                          "time is too large.")
        payload = request.headers.get("x-amz-content-sha256") or ""
        if not payload:
            raise S3Error("InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or parts[3] != "s3":
        raise S3Error("AuthorizationHeaderMalformed", "The Credential is malformed: expected "
                      "<access>/<date>/<region>/s3/aws4_request.")
    access, day, region = parts[0], parts[1], parts[2]
    if day != amz_date[:8]:
        raise S3Error("AuthorizationHeaderMalformed", "The Credential's date does not match X-Amz-Date.")
    secret, ctx = await _secret(identity, access)
    names = [n for n in signed_headers.lower().split(";") if n]
    if "host" not in names or len(names) > 64:
        raise S3Error("AuthorizationHeaderMalformed", "SignedHeaders must include host.")
    canonical_headers = ""
    for name in names:
        values = request.headers.getlist(name)
        canonical_headers += f"{name}:{','.join(' '.join(v.split()) for v in values)}\n"
    pairs = [(k, v) for k, v in _raw_query_pairs(request) if not (presigned and k == "X-Amz-Signature")]
    canonical_query = "&".join(f"{_aws_quote(k)}={_aws_quote(v)}" for k, v in sorted(pairs))
    canonical_uri = quote(unquote(_raw_path(request)), safe="/~")
    canonical = "\n".join([request.method, canonical_uri, canonical_query, canonical_headers,
                           ";".join(names), payload])
    scope = f"{day}/{region}/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), day), region), "s3"), "aws4_request")
    expected = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise S3Error("SignatureDoesNotMatch", "The request signature we calculated does not match the "
                      "signature you provided. Check your key and signing method.")
    signer = Signer(key, amz_date, scope, signature) if payload.startswith("STREAMING-AWS4") else None
    return ctx, Body(request, payload, signer)


async def _v2(request: Request, identity: Any, header: str,
              query: dict[str, str]) -> tuple[AuthContext | None, Body]:
    h = request.headers
    now = time.time()
    if header:
        access, _, signature = header[len("AWS "):].strip().rpartition(":")
        date_line = "" if h.get("x-amz-date") else h.get("date", "")
        from email.utils import parsedate_to_datetime
        try:
            when = parsedate_to_datetime(h.get("x-amz-date") or h.get("date", "")).timestamp()
        except (TypeError, ValueError):
            raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header") from None
        if abs(when - now) > MAX_SKEW:
            raise S3Error("RequestTimeTooSkewed", "The difference between the request time and the current "
                          "time is too large.")
    else:
        access, signature, date_line = query.get("AWSAccessKeyId", ""), query.get("Signature", ""), \
            query.get("Expires", "")
        try:
            expires = int(date_line)
        except ValueError:
            raise S3Error("AccessDenied", "Expires must be a number of seconds since the epoch.") from None
        if expires < now:
            raise S3Error("AccessDenied", "Request has expired")
        if expires - now > MAX_EXPIRES:
            raise S3Error("AccessDenied", "Expires must be less than a week away.")
    secret, ctx = await _secret(identity, access)
    amz: dict[str, list[str]] = {}
    for name, value in h.items():
        if name.lower().startswith("x-amz-"):
            amz.setdefault(name.lower(), []).append(value.strip())
    amz_lines = "".join(f"{k}:{','.join(v)}\n" for k, v in sorted(amz.items()))
    subs = sorted((k, v) for k, v in _raw_query_pairs(request) if k in V2_SUBRESOURCES)
    path = _raw_path(request)
    paths = [path]
    if path.count("/") == 1 and len(path) > 1:  # a bucket: botocore signs "/bucket/", others "/bucket"
        paths.append(path + "/")
    query = "?" + "&".join(f"{k}={v}" if v else k for k, v in subs) if subs else ""
    head = "\n".join([request.method, h.get("content-md5", ""), h.get("content-type", ""), date_line]) + "\n" + \
        amz_lines
    if not any(hmac.compare_digest(base64.b64encode(hmac.new(secret.encode(), (head + p + query).encode(),
                                                             hashlib.sha1).digest()).decode(), signature)
               for p in paths):
        raise S3Error("SignatureDoesNotMatch", "The request signature we calculated does not match the "
                      "signature you provided. Check your key and signing method.")
    return ctx, Body(request, h.get("x-amz-content-sha256"), None)
