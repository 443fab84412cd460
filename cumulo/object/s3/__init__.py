"""The S3 API over object storage's data, on ``[object] s3_port`` (default 8081; 0 turns it off).

Operator's manual
-----------------
**Endpoint.** Path-style only: ``http://<host>:<s3_port>/<bucket>/<key>`` (virtual-host style,
``<bucket>.<host>``, is not served).  The region is ``us-east-1`` (any region in a signature is
accepted).  Clients: ``aws --endpoint-url http://<host>:8081 s3 ls``; boto3
``boto3.client("s3", endpoint_url=..., aws_access_key_id=..., aws_secret_access_key=...)``; rclone
``type = s3, provider = Other, endpoint = http://<host>:8081``.

**Keys.** An access/secret pair is a Keystone EC2 credential for a user in a project:
``openstack ec2 credentials create`` (``--project``/``--user`` to choose; ``openstack ec2
credentials list`` shows them, ``delete`` revokes at once).  A request signed with it acts as that
user in that project with the roles the user has there now, exactly as a token scoped there would.

**Data.** A bucket is a Swift container of the account ``AUTH_<project_id>`` of the key's project;
a key is an object; both APIs read and write the same rows and stored data (an object PUT over S3
is read over Swift and back).  ``x-amz-meta-*`` is kept as ``X-Object-Meta-*``.  Bucket names are
per account here; a bucket name the caller's project lacks is looked up in the other accounts and
is then reachable only as that container's Swift ACLs allow (else ``AccessDenied``), so creating a
name another project holds is ``BucketAlreadyExists``.  Anonymous requests get what Swift's ACLs
give anonymous callers (``.r:*`` reads), nothing else.

**Authorization** is Swift's (``cumulo.object.policies``, the same rules and ACLs): the project's
reader reads, member and admin write, ``ResellerAdmin`` everywhere, other projects only by ACL.

**Signatures.** SigV4 in the ``Authorization`` header or presigned (``X-Amz-Expires`` at most 7
days), with ``x-amz-content-sha256`` a hex digest (checked), ``UNSIGNED-PAYLOAD``, or aws-chunked
(``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]``, each chunk's signature checked, and
``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` as current boto3 sends it); ``Content-MD5`` and
``x-amz-checksum-crc32``/``-sha1``/``-sha256`` (header or trailer) are checked, a mismatch is
``BadDigest`` and nothing is kept; ``crc32c`` and ``crc64nvme`` are accepted unchecked.  SigV2
(``AWS <access>:<signature>`` and presigned ``AWSAccessKeyId``/``Expires``/``Signature``).  A signed
request's date may be 15 minutes off.

**Operations.** ListBuckets; Create/Delete/HeadBucket (``BucketNotEmpty``), GetBucketLocation,
ListObjects V1 and V2 (prefix, delimiter -> CommonPrefixes, max-keys up to 1,000, marker,
continuation-token, start-after, encoding-type=url); Head/GetObject (a single Range; If-Match,
If-None-Match, If-Modified-Since, If-Unmodified-Since; response-* overrides), PutObject,
CopyObject (``x-amz-copy-source``, ``x-amz-metadata-directive`` COPY/REPLACE, tagging directive),
DeleteObject, DeleteObjects (up to 1,000 keys, Quiet); multipart uploads (Create, UploadPart with
part numbers 1-10,000, UploadPartCopy with a source range, ListParts, ListMultipartUploads,
Complete, Abort; see ``cumulo.object.s3.multipart`` for how parts are kept and joined); bucket
versioning (Get/PutBucketVersioning Enabled/Suspended; version ids, kept versions, delete markers,
``versionId`` on GET/HEAD/DELETE, ListObjectVersions: see ``cumulo.object.s3.versioning``); object tagging
(Put/Get/DeleteObjectTagging, ``x-amz-tagging`` on PUT, at most 10 tags).

**Not served** (``NotImplemented``): ACL, policy, lifecycle, CORS, website, replication, encryption,
object lock, select, POST form uploads, bucket tagging.

**Limits.** An object (and a completed multipart upload) up to ``[object] max_file_size``; every part
but the last at least 5 MiB; keys up to 1,024 bytes; metadata as Swift's (90 items, 4 KiB); request
XML up to 1 MiB, parsed without any DOCTYPE or entity; Swift's container quotas apply.

Errors are S3's XML ``<Error>`` with ``Code``, ``Message``, ``Resource`` and ``RequestId`` (also in
``x-amz-request-id``)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cumulo.core.http.authz import ServicePolicy
from cumulo.core.http.metrics import MetricsMiddleware
from cumulo.identity.service import IdentityService
from cumulo.object import policies
from cumulo.object.api import Call
from cumulo.object.api.common import SwiftError
from cumulo.object.s3 import auth, buckets, multipart, objects, versioning
from cumulo.object.s3.common import S3Error, S3Request, request_id
from cumulo.object.service import ObjectError, ObjectService

LOG = logging.getLogger(__name__)

__all__ = ["build_app"]

UNSUPPORTED = ("acl", "policy", "lifecycle", "cors", "website", "replication", "encryption", "object-lock",
               "select", "logging", "notification", "requestPayment", "accelerate", "analytics",
               "inventory", "metrics", "ownershipControls", "publicAccessBlock", "restore", "torrent",
               "legal-hold", "retention", "intelligent-tiering", "attributes")
MAX_QUERY = 64  # query parameters a request may carry
MAX_DRAIN = 1024 * 1024  # body bytes read after an error before the connection is closed instead


# the query names that choose an operation, in the order route() tests them
SUBRESOURCES = ("versioning", "versions", "location", "uploads", "delete", "tagging", "uploadId", "versionId")


async def route(s3: S3Request) -> Response:
    method, q = s3.request.method, s3.query
    for name in UNSUPPORTED:
        if name in q:
            raise S3Error("NotImplemented", f"The ?{name} subresource is not implemented here.", 501)
    if not s3.bucket:
        if method == "GET":
            return await buckets.list_buckets(s3)
        raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.")
    if not s3.key:
        if "versioning" in q:
            if method == "GET":
                return await buckets.get_versioning(s3)
            if method == "PUT":
                return await buckets.put_versioning(s3)
        elif "versions" in q and method == "GET":
            return await versioning.list_versions(s3, await buckets.resolve(s3, "object_store:container:get",
                                                                            listing=True))
        elif "location" in q and method == "GET":
            return await buckets.location(s3)
        elif "uploads" in q and method == "GET":
            return await multipart.list_uploads(s3)
        elif "delete" in q and method == "POST":
            return await objects.delete_many(s3)
        elif "tagging" in q:
            raise S3Error("NotImplemented", "Bucket tagging is not implemented here.", 501)
        elif method == "GET":
            return await buckets.list_objects(s3)
        elif method == "HEAD":
            return await buckets.head(s3)
        elif method == "PUT":
            return await buckets.create(s3)
        elif method == "DELETE":
            return await buckets.delete(s3)
        raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.")
    if "tagging" in q:
        if method == "GET":
            return await objects.get_tagging(s3)
        if method == "PUT":
            return await objects.put_tagging(s3)
        if method == "DELETE":
            return await objects.delete_tagging(s3)
    elif "uploads" in q and method == "POST":
        return await multipart.create(s3)
    elif "uploadId" in q:
        if method == "PUT":
            return await multipart.upload_part(s3)
        if method == "GET":
            return await multipart.list_parts(s3)
        if method == "POST":
            return await multipart.complete(s3)
        if method == "DELETE":
            return await multipart.abort(s3)
    elif method in ("GET", "HEAD"):
        return await objects.get(s3)
    elif method == "PUT":
        return await objects.put(s3)
    elif method == "DELETE":
        return await objects.delete(s3)
    raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.")


def _swift_to_s3(err: SwiftError, s3: S3Request | None) -> S3Error:
    if err.status in (401, 403):
        return S3Error("AccessDenied", "Access Denied")
    if err.status == 404:
        return S3Error("NoSuchKey" if s3 is not None and s3.key else "NoSuchBucket", "Not found")
    if err.status == 413:
        return S3Error("EntityTooLarge", err.message or "Your proposed upload exceeds the maximum allowed size")
    if err.status == 409:
        return S3Error("BucketNotEmpty", "The bucket you tried to delete is not empty")
    if err.status >= 500:
        return S3Error("ServiceUnavailable", "Please try again.", 503)
    return S3Error("InvalidRequest", err.message or "Invalid request", 400)


async def _drain(request: Request, response: Response) -> None:
    """Read what is left of a refused request's body (a client that sent Expect: 100-continue, or
    is still sending, would otherwise leave it in the connection); past a bound, close instead."""
    if getattr(request, "_stream_consumed", False):
        response.headers["connection"] = "close"  # read part way: the rest is not worth reading
        return
    drained = 0
    try:
        async for chunk in request.stream():
            drained += len(chunk)
            if drained > MAX_DRAIN:
                response.headers["connection"] = "close"
                return
    except Exception:  # noqa: BLE001  (the client went away)
        response.headers["connection"] = "close"


def build_app(svc: ObjectService, identity: IdentityService) -> ASGIApp:
    policy = ServicePolicy.build("object-store", policies.RULES, identity.cfg.policy.file, policies.MESSAGE)

    async def handle(request: Request, rid: str, holder: list[Any]) -> Response:
        path = request.scope["path"]
        if path == "/healthcheck":
            return Response(b"OK", media_type="text/plain")
        bucket, _, key = path.lstrip("/").partition("/")
        if len(bucket.encode()) > 255 or "\x00" in path:
            raise S3Error("InvalidBucketName", "The specified bucket is not valid.")
        raw = request.scope.get("query_string", b"").decode("latin-1")
        pairs = parse_qsl(raw, keep_blank_values=True)
        if len(pairs) > MAX_QUERY or len(raw) > 16384:
            raise S3Error("InvalidArgument", "Too many query parameters.")
        for name, value in request.headers.items():
            if len(name) + len(value) > 8192:
                raise S3Error("InvalidArgument", "A header is too long.")
        request.scope["cumulo.route"] = route_label(bucket, key, pairs)
        ctx, body = await auth.authenticate(request, identity)
        account = f"AUTH_{ctx.project_id}" if ctx is not None and ctx.project_id else ""
        call = Call(request, svc, policy, account, (ctx.project_id or "") if ctx else "", bucket, key, ctx,
                    svc.cfg.object.max_file_size, identity=identity)
        s3 = S3Request(request, svc, call, bucket, key, dict(pairs), body, rid)
        holder.append(s3)
        return await route(s3)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        rid = request_id()
        holder: list[S3Request] = []
        try:
            try:
                response = await handle(request, rid, holder)
            except SwiftError as err:
                raise _swift_to_s3(err, holder[0] if holder else None) from None
            except ObjectError as err:
                if err.status == 404:
                    raise S3Error("NoSuchKey" if holder and holder[0].key else "NoSuchBucket",
                                  "The specified resource does not exist.") from None
                if err.status == 409:
                    raise S3Error("BucketNotEmpty", "The bucket you tried to delete is not empty") from None
                raise S3Error("InvalidRequest", err.message or "Invalid request") from None
        except S3Error as err:
            response = err.response(request.method, request.scope["path"], rid)
        except Exception:
            LOG.exception("unexpected error in S3 %s %s", request.method, request.scope["path"])
            response = S3Error("InternalError", "We encountered an internal error. Please try again.").response(
                request.method, request.scope["path"], rid)
        if response.status_code >= 300:
            await _drain(request, response)
        response.headers["x-amz-request-id"] = rid
        response.headers["x-amz-id-2"] = rid
        await response(scope, receive, send)

    return MetricsMiddleware(policy.bind(app), service="s3")


def route_label(bucket: str, key: str, pairs: list[tuple[str, str]]) -> str:
    """The request's shape for the metrics (never its names): ``/``, ``/{bucket}`` or
    ``/{bucket}/{key}``, and the subresource that picks the operation."""
    label = "/{bucket}/{key}" if key else "/{bucket}" if bucket else "/"
    names = {name for name, _ in pairs}
    sub = next((name for name in SUBRESOURCES if name in names), None)
    return f"{label}?{sub}" if sub else label
