"""S3 bucket operations: ListBuckets, Create/Delete/HeadBucket, GetBucketLocation, ListObjects (V1
and V2), Get/PutBucketVersioning, and the lookup of the account a bucket lives in."""

from __future__ import annotations

import base64
import binascii
import re

from sqlalchemy import select
from starlette.responses import Response

from cumulo.object.models import ObjectContainer
from cumulo.object.s3.common import (
    MAX_KEYS,
    S3Error,
    S3Request,
    element,
    encode_key,
    iso8601,
    parse_xml,
    sub,
    xml_response,
)
from cumulo.object.service import ContainerInfo, Listing

SEGMENTS = "+segments"  # the hidden container of a bucket's multipart parts: "<bucket>+segments"
VERSIONING = "x-s3-versioning"
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
MAX_DELETE_SWEEP = 10000  # parts of unfinished uploads a DeleteBucket removes


async def other_accounts(s3: S3Request, name: str) -> list[str]:
    """Accounts other than the caller's holding a container of this name (S3's bucket names are
    global; here each account has its own, so a name may be another project's)."""
    async with s3.svc.db.reader() as s:
        rows = await s.execute(select(ObjectContainer.account).where(
            ObjectContainer.name == name, ObjectContainer.account != s3.account).limit(2))
        return list(rows.scalars())


async def resolve(s3: S3Request, rule: str, listing: bool = False) -> ContainerInfo:
    """The bucket the request names, after the policy (or the container's ACL) allows ``rule``: the
    caller's own container, else another account's of that name (through its ACL only)."""
    from dataclasses import replace
    info = await s3.svc.container(s3.account, s3.bucket) if s3.call.account else None
    if info is None:
        others = await other_accounts(s3, s3.bucket)
        if not others:
            raise S3Error("NoSuchBucket", "The specified bucket does not exist")
        s3.call = replace(s3.call, account=others[0], project_id=others[0][len("AUTH_"):])
        info = await s3.svc.container(s3.account, s3.bucket)
        if info is None:
            raise S3Error("NoSuchBucket", "The specified bucket does not exist")
    s3.authorize(rule, info, listing)
    return info


async def list_buckets(s3: S3Request) -> Response:
    if s3.call.auth is None or not s3.call.account:
        raise S3Error("AccessDenied", "Access Denied")
    s3.authorize("object_store:account:get")
    root = element("ListAllMyBucketsResult")
    owner = element("Owner")
    sub(owner, "ID", s3.call.project_id)
    sub(owner, "DisplayName", s3.call.auth.project_name or s3.call.project_id)
    root.append(owner)
    buckets = element("Buckets")
    marker = ""
    for _ in range(10):  # an account's containers, 10,000 a page, at most 100,000
        page = await s3.svc.containers(s3.account, Listing(marker=marker, limit=10000))
        for entry in page:
            if entry["name"].endswith((SEGMENTS, "+versions")):
                continue
            b = element("Bucket")
            sub(b, "Name", entry["name"])
            sub(b, "CreationDate", iso8601(entry["last_modified"]))
            buckets.append(b)
        if len(page) < 10000:
            break
        marker = page[-1]["name"]
    root.append(buckets)
    return xml_response(root)


async def create(s3: S3Request) -> Response:
    s3.authorize("object_store:container:put")
    if s3.call.auth is None:
        raise S3Error("AccessDenied", "Access Denied")
    if not BUCKET_NAME.fullmatch(s3.bucket) or ".." in s3.bucket:
        raise S3Error("InvalidBucketName", "The specified bucket is not valid.")
    body = await s3.body.read(64 * 1024)
    if body.strip():
        parse_xml(body)  # CreateBucketConfiguration: its LocationConstraint is not used (one region)
    if await s3.svc.container(s3.account, s3.bucket) is not None:
        raise S3Error("BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded "
                      "and you already own it.")
    if await other_accounts(s3, s3.bucket):
        raise S3Error("BucketAlreadyExists", "The requested bucket name is not available.")
    await s3.svc.put_container(s3.account, s3.bucket, {}, None, None)
    return Response(status_code=200, headers={"Location": f"/{s3.bucket}"})


async def delete(s3: S3Request) -> Response:
    info = await resolve(s3, "object_store:container:delete")
    versions = await s3.svc.container(s3.account, s3.bucket + "+versions")
    if info.object_count > 0 or (versions is not None and versions.object_count > 0):
        raise S3Error("BucketNotEmpty", "The bucket you tried to delete is not empty")
    if versions is not None:
        await s3.svc.delete_container(s3.account, versions.name)
    segments = await s3.svc.container(s3.account, s3.bucket + SEGMENTS)
    if segments is not None:  # unfinished uploads go with their bucket
        for entry in await s3.svc.objects(segments, Listing(limit=MAX_DELETE_SWEEP)):
            if "name" in entry:
                try:
                    await s3.svc.delete_object(segments, entry["name"])
                except Exception:  # noqa: BLE001  (a part removed meanwhile)
                    pass
        try:
            await s3.svc.delete_container(s3.account, segments.name)
        except Exception:  # noqa: BLE001  (more than the sweep's bound left: the container stays hidden)
            pass
    await s3.svc.delete_container(s3.account, s3.bucket)
    return Response(status_code=204)


async def head(s3: S3Request) -> Response:
    await resolve(s3, "object_store:container:get")
    return Response(status_code=200, headers={"x-amz-bucket-region": "us-east-1"})


async def location(s3: S3Request) -> Response:
    await resolve(s3, "object_store:container:get")
    return xml_response(element("LocationConstraint"))


async def get_versioning(s3: S3Request) -> Response:
    info = await resolve(s3, "object_store:container:get")
    root = element("VersioningConfiguration")
    status = info.meta.get(VERSIONING)
    if status:
        sub(root, "Status", status)
    return xml_response(root)


async def put_versioning(s3: S3Request) -> Response:
    info = await resolve(s3, "object_store:container:post")
    root = parse_xml(await s3.body.read(64 * 1024))
    status = root.findtext("Status")
    if root.tag != "VersioningConfiguration" or status not in ("Enabled", "Suspended"):
        raise S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against "
                      "our published schema.")
    await s3.svc.update_container(info.account, info.name, {VERSIONING: status}, None, None)
    return Response(status_code=200)


def _int_param(s3: S3Request, name: str, default: int) -> int:
    text = s3.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise S3Error("InvalidArgument", f"Provided {name} not an integer or within integer range") from None
    if value < 0:
        raise S3Error("InvalidArgument", f"Argument {name} must be an integer between 0 and 2147483647")
    return value


async def list_objects(s3: S3Request) -> Response:
    info = await resolve(s3, "object_store:container:get", listing=True)
    q = s3.query
    v2 = q.get("list-type") == "2"
    if q.get("list-type") not in (None, "2"):
        raise S3Error("InvalidArgument", "Invalid List Type specified")
    encoding = q.get("encoding-type", "")
    if encoding not in ("", "url"):
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    max_keys = min(_int_param(s3, "max-keys", MAX_KEYS), MAX_KEYS)
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    if len(prefix.encode()) > 1024 or len(delimiter.encode()) > 64:
        raise S3Error("InvalidArgument", "The prefix or delimiter is too long.")
    if v2:
        token = q.get("continuation-token")
        if token is not None:
            try:
                marker = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise S3Error("InvalidArgument", "The continuation token provided is incorrect") from None
        else:
            marker = q.get("start-after", "")
    else:
        marker = q.get("marker", "")
    if len(marker.encode()) > 1100:
        raise S3Error("InvalidArgument", "The marker is too long.")
    start = marker
    if delimiter and marker.endswith(delimiter) and marker.startswith(prefix):
        start = marker + "\U0010ffff"  # a common prefix given back: go on past everything under it
    entries = [] if max_keys == 0 else await s3.svc.objects(info, Listing(
        prefix=prefix, marker=start, limit=max_keys + 1, delimiter=delimiter))
    truncated = len(entries) > max_keys
    entries = entries[:max_keys]
    root = element("ListBucketResult")
    sub(root, "Name", info.name)
    sub(root, "Prefix", encode_key(prefix, encoding))
    if v2:
        if "continuation-token" in q:
            sub(root, "ContinuationToken", q["continuation-token"])
        if "start-after" in q:
            sub(root, "StartAfter", encode_key(q["start-after"], encoding))
    else:
        sub(root, "Marker", encode_key(marker, encoding))
    sub(root, "MaxKeys", max_keys)
    if delimiter:
        sub(root, "Delimiter", encode_key(delimiter, encoding))
    if encoding:
        sub(root, "EncodingType", encoding)
    sub(root, "IsTruncated", "true" if truncated else "false")
    last = ""
    keys = 0
    for entry in entries:
        if "subdir" in entry:
            cp = element("CommonPrefixes")
            sub(cp, "Prefix", encode_key(entry["subdir"], encoding))
            root.append(cp)
            last = entry["subdir"]
            continue
        keys += 1
        last = entry["name"]
        c = element("Contents")
        sub(c, "Key", encode_key(entry["name"], encoding))
        sub(c, "LastModified", iso8601(entry["last_modified"]))
        sub(c, "ETag", f'"{entry["hash"]}"')
        sub(c, "Size", entry["bytes"])
        sub(c, "StorageClass", "STANDARD")
        if not v2 or q.get("fetch-owner") == "true":
            owner = element("Owner")
            sub(owner, "ID", s3.call.project_id)
            sub(owner, "DisplayName", s3.call.project_id)
            c.append(owner)
        root.append(c)
    if v2:
        sub(root, "KeyCount", keys + sum(1 for e in entries if "subdir" in e))
        if truncated:
            sub(root, "NextContinuationToken", base64.urlsafe_b64encode(last.encode()).decode())
    elif truncated:
        sub(root, "NextMarker", encode_key(last, encoding))
    return xml_response(root)
