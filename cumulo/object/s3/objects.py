"""S3 object operations: Head/Get (Range, If-*), Put (Content-MD5, checksums), Copy (metadata
directive), Delete, DeleteObjects, and Put/Get/DeleteObjectTagging."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

from starlette.responses import Response, StreamingResponse

from cumulo.object.api.common import check_merged_meta, parse_http_date
from cumulo.object.api.objects import KEPT, parse_ranges
from cumulo.object.s3 import buckets, versioning
from cumulo.object.s3.common import (
    MAX_KEY_BYTES,
    MAX_KEYS,
    MAX_TAGS,
    S3Error,
    S3Request,
    element,
    http_date,
    iso8601,
    parse_xml,
    sub,
    xml_response,
)
from cumulo.object.service import ContainerInfo, ObjectInfo

TAGGING = "x-s3-tagging"  # an object's tags, urlencoded, in its metadata
S3_ETAG = "x-s3-etag"  # a completed multipart upload's "<md5 of the parts' md5s>-<parts>"
USER_META = "x-object-meta-"  # x-amz-meta-* is kept as Swift's x-object-meta-*, so both APIs see it


def s3_etag(info: ObjectInfo) -> str:
    return info.meta.get(S3_ETAG) or info.etag


def check_key(key: str) -> None:
    if len(key.encode()) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", "Your key is too long")


def user_meta(s3: S3Request) -> dict[str, str]:
    """x-amz-meta-* and the headers an object keeps, as the object's stored metadata."""
    meta: dict[str, str] = {}
    for name, value in s3.request.headers.items():
        if name.startswith("x-amz-meta-") and len(name) > len("x-amz-meta-"):
            meta[USER_META + name[len("x-amz-meta-"):]] = value
    try:
        check_merged_meta(meta)
    except Exception:  # noqa: BLE001  (Swift's limits: 90 items, 4 KiB overall)
        raise S3Error("MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size.",
                      400) from None
    for name in KEPT:
        value = s3.request.headers.get(name)
        if name == "content-encoding" and value:
            value = ",".join(v.strip() for v in value.split(",") if v.strip().lower() != "aws-chunked")
        if value:
            meta[name] = value
    tagging = s3.request.headers.get("x-amz-tagging")
    if tagging is not None:
        meta[TAGGING] = urlencode(check_tags(parse_qsl(tagging, keep_blank_values=True)))
    return meta


def check_tags(tags: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if len(tags) > MAX_TAGS:
        raise S3Error("InvalidTag", "Object tags cannot be greater than 10")
    if len({k for k, _ in tags}) != len(tags):
        raise S3Error("InvalidTag", "Cannot provide multiple Tags with the same key")
    for k, v in tags:
        if not k or len(k) > 128 or len(v) > 256:
            raise S3Error("InvalidTag", "The TagKey or TagValue you have provided is invalid")
    return tags


def headers_of(info: ObjectInfo) -> dict[str, str]:
    headers = {"ETag": f'"{s3_etag(info)}"', "Last-Modified": http_date(info.timestamp), "Accept-Ranges": "bytes",
               "Content-Type": info.content_type}
    for key, value in info.meta.items():
        if key.startswith(USER_META):
            headers["x-amz-meta-" + key[len(USER_META):]] = value
        elif key == versioning.VERSION_ID:
            headers["x-amz-version-id"] = value
        elif key == TAGGING:
            headers["x-amz-tagging-count"] = str(len(parse_qsl(value, keep_blank_values=True)))
        elif key in KEPT:
            headers[key] = value
    if "-" in s3_etag(info):
        headers["x-amz-mp-parts-count"] = s3_etag(info).rsplit("-", 1)[1]
    return headers


async def _project_room(s3: S3Request, container: ContainerInfo, replaced: int) -> int | None:
    """The bytes the bucket owner's unified limit leaves for an upload (the Swift API's
    project_quota feature), None when no limit applies."""
    from cumulo.object.middleware import project_quota

    if s3.call.identity is None:
        return None
    limit = await project_quota.bytes_limit(s3.call.identity, container.account[len("AUTH_"):])
    if limit is None:
        return None
    return limit - (await s3.svc.account(container.account)).bytes_used + replaced


async def store(s3: S3Request, container: ContainerInfo, name: str, chunks: AsyncIterator[bytes], ctype: str,
                meta: dict[str, str], length: int | None) -> ObjectInfo:
    """put_object with the store's refusals as S3 errors (the Swift quotas apply too)."""
    from cumulo.object.api import quotas
    from cumulo.object.storage import EtagMismatch, QuorumError, TooLarge

    limit = s3.call.max_file_size
    if length is not None and length > limit:
        raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
    existing = await s3.svc.object(container, name)
    left = await quotas.room(s3.call, container, length, existing.size if existing else None)
    if left is not None:
        limit = min(limit, left)
    project_left = await _project_room(s3, container, existing.size if existing else 0)
    if project_left is not None:
        if project_left < 0 or (length is not None and length > project_left):
            raise S3Error("QuotaExceeded", "The project's object storage quota (unified limits) has no room for "
                          "this upload.", status=403)
        limit = min(limit, project_left)
    try:
        return await s3.svc.put_object(container, name, chunks, content_type=ctype, meta=meta, expected_etag=None,
                                       content_length=length, max_size=limit)
    except TooLarge:
        raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size") from None
    except EtagMismatch:
        raise S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.") from None
    except QuorumError:
        raise S3Error("ServiceUnavailable", "Please reduce your request rate.") from None
    except ValueError as exc:
        if type(exc).__name__ == "ShortBody":
            raise S3Error("IncompleteBody", "You did not provide the number of bytes specified by the "
                          "Content-Length HTTP header.") from None
        raise S3Error("InvalidArgument", str(exc)[:200]) from None


async def put(s3: S3Request) -> Response:
    check_key(s3.key)
    if s3.request.headers.get("x-amz-copy-source"):
        return await copy(s3)
    if s3.body.length is None and "chunked" not in s3.request.headers.get("transfer-encoding", ""):
        raise S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.")
    info = await buckets.resolve(s3, "object_store:object:put")
    if s3.request.headers.get("if-none-match", "").strip() == "*" and await s3.svc.object(info, s3.key):
        raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
    meta = user_meta(s3)
    ctype = s3.request.headers.get("content-type") or "binary/octet-stream"
    if len(ctype) > 256:
        raise S3Error("InvalidArgument", "The Content-Type is too long.")
    vid = await versioning.before_write(s3, info, s3.key)
    if vid:
        meta[versioning.VERSION_ID] = vid
    new = await store(s3, info, s3.key, s3.body.chunks(), ctype, meta, s3.body.length)
    headers = {"ETag": f'"{new.etag}"'}
    if vid:
        headers["x-amz-version-id"] = vid
    if s3.body.checksum is not None and s3.body.checksum.value():
        headers[f"x-amz-checksum-{s3.body.checksum.algorithm}"] = s3.body.checksum.value() or ""
    return Response(status_code=200, headers=headers)


def _copy_source(s3: S3Request) -> tuple[str, str, str]:
    raw, _, params = s3.request.headers["x-amz-copy-source"].partition("?")
    version_id = dict(parse_qsl(params)).get("versionId", "")
    bucket, _, key = unquote(raw).lstrip("/").partition("/")
    if not bucket or not key:
        raise S3Error("InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/"
                      "sourcekey")
    check_key(key)
    return bucket, key, version_id


async def open_source(s3: S3Request) -> tuple[ObjectInfo, Any]:
    """The object x-amz-copy-source names, read with the caller's read rights over it."""
    from dataclasses import replace
    bucket, key, version_id = _copy_source(s3)
    src = replace(s3, bucket=bucket, key=key)
    container = await buckets.resolve(src, "object_store:object:get")
    if version_id:
        return await versioning.open_version(src, container, key, version_id)
    opened = await s3.svc.open_object(container, key)
    if opened is None:
        raise S3Error("NoSuchKey", "The specified key does not exist.")
    return opened  # type: ignore[no-any-return]


async def copy(s3: S3Request) -> Response:
    dest = await buckets.resolve(s3, "object_store:object:put")
    info, reader = await open_source(s3)
    try:
        directive = s3.request.headers.get("x-amz-metadata-directive", "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise S3Error("InvalidArgument", "Unknown metadata directive.")
        tagging = s3.request.headers.get("x-amz-tagging-directive", "COPY").upper()
        if directive == "REPLACE":
            meta = user_meta(s3)
            ctype = s3.request.headers.get("content-type") or info.content_type
        else:
            meta = {k: v for k, v in info.meta.items() if k != S3_ETAG}
            ctype = info.content_type
        if tagging == "REPLACE":
            meta.pop(TAGGING, None)
            if s3.request.headers.get("x-amz-tagging") is not None:
                meta[TAGGING] = urlencode(check_tags(parse_qsl(s3.request.headers["x-amz-tagging"],
                                                               keep_blank_values=True)))
        elif TAGGING in info.meta:
            meta[TAGGING] = info.meta[TAGGING]
        meta.pop(S3_ETAG, None)
        meta.pop(versioning.VERSION_ID, None)
        _copy_conditions(s3, info)
        vid = await versioning.before_write(s3, dest, s3.key)
        if vid:
            meta[versioning.VERSION_ID] = vid
        new = await store(s3, dest, s3.key, _range(reader, 0, info.size), ctype, meta, info.size)
    finally:
        reader.close()
    root = element("CopyObjectResult")
    sub(root, "LastModified", iso8601(new.timestamp))
    sub(root, "ETag", f'"{new.etag}"')
    return xml_response(root, headers={"x-amz-version-id": vid} if vid else None)


def _copy_conditions(s3: S3Request, info: ObjectInfo) -> None:
    h = s3.request.headers
    etag = s3_etag(info)
    if h.get("x-amz-copy-source-if-match") and h["x-amz-copy-source-if-match"].strip('"') != etag:
        raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
    if h.get("x-amz-copy-source-if-none-match") and h["x-amz-copy-source-if-none-match"].strip('"') == etag:
        raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold")


async def _range(reader: Any, start: int, end: int) -> AsyncIterator[bytes]:
    async for chunk in reader.iter_range(start, end):
        yield chunk


def _conditions(s3: S3Request, info: ObjectInfo) -> None:
    h = s3.request.headers
    etag = s3_etag(info)
    modified = math.ceil(float(info.timestamp))
    tags = [t.strip().strip('"') for t in h.get("if-match", "").split(",") if t.strip()]
    if tags and "*" not in tags and etag not in tags:
        raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
    none = [t.strip().strip('"') for t in h.get("if-none-match", "").split(",") if t.strip()]
    if none and ("*" in none or etag in none):
        raise S3Error("NotModified", "Not Modified", 304, headers_of(info))
    if h.get("if-unmodified-since") and not tags:
        when = parse_http_date(h["if-unmodified-since"])
        if when is not None and modified > when:
            raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
    if h.get("if-modified-since") and not none:
        when = parse_http_date(h["if-modified-since"])
        if when is not None and modified <= when:
            raise S3Error("NotModified", "Not Modified", 304, headers_of(info))


RESPONSE_OVERRIDES = {"response-content-type": "Content-Type", "response-content-language": "Content-Language",
                      "response-expires": "Expires", "response-cache-control": "Cache-Control",
                      "response-content-disposition": "Content-Disposition",
                      "response-content-encoding": "Content-Encoding"}


async def get(s3: S3Request) -> Response:
    check_key(s3.key)
    container = await buckets.resolve(s3, "object_store:object:get")
    if s3.query.get("versionId"):
        opened = await versioning.open_version(s3, container, s3.key, s3.query["versionId"])
    else:
        opened = await s3.svc.open_object(container, s3.key)
    if opened is None:
        raise S3Error("NoSuchKey", "The specified key does not exist.")
    info, reader = opened
    try:
        _conditions(s3, info)
        headers = headers_of(info)
        for param, header in RESPONSE_OVERRIDES.items():
            if param in s3.query:
                headers[header] = s3.query[param][:1024]
        size = info.size
        start, end, status = 0, size, 200
        spec = s3.request.headers.get("range")
        if spec:
            ranges = parse_ranges(spec, size)
            first = re.fullmatch(r"\s*bytes\s*=\s*(\d{1,19})-\d*\s*", spec)
            if ranges == [] or (first and int(first[1]) >= size):
                raise S3Error("InvalidRange", "The requested range is not satisfiable",
                              headers={"Content-Range": f"bytes */{size}"})
            if ranges is not None and len(ranges) == 1:
                (start, end), status = ranges[0], 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        if s3.request.method == "HEAD":
            reader.close()
            return Response(status_code=status, headers=headers)
    except BaseException:
        reader.close()
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in reader.iter_range(start, end):
                yield chunk
        finally:
            reader.close()
    return StreamingResponse(body(), status_code=status, headers=headers)


async def delete(s3: S3Request) -> Response:
    check_key(s3.key)
    container = await buckets.resolve(s3, "object_store:object:delete")
    if versioning.state(container) or s3.query.get("versionId"):
        headers = await versioning.delete(s3, container, s3.key, s3.query.get("versionId", ""))
        return Response(status_code=204, headers=headers)
    try:
        await s3.svc.delete_object(container, s3.key)
    except Exception as exc:  # S3 answers 204 for a key that is not there
        if getattr(exc, "status", 0) != 404:
            raise
    return Response(status_code=204)


async def delete_many(s3: S3Request) -> Response:
    container = await buckets.resolve(s3, "object_store:object:delete")
    root = parse_xml(await s3.body.read(2 * 1024 * 1024))
    if root.tag != "Delete":
        raise S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against "
                      "our published schema.")
    quiet = (root.findtext("Quiet") or "").strip().lower() == "true"
    keys = [el.findtext("Key") for el in root.findall("Object")]
    vids = [el.findtext("VersionId") or "" for el in root.findall("Object")]
    if not keys or len(keys) > MAX_KEYS or any(k is None for k in keys):
        raise S3Error("MalformedXML", "A Delete carries 1 to 1,000 Object elements, each with a Key.")
    result = element("DeleteResult")
    for key, vid in zip(keys, vids, strict=True):
        assert key is not None
        code = ""
        if len(key.encode()) > MAX_KEY_BYTES:
            code = "KeyTooLongError"
        else:
            try:
                if versioning.state(container) or vid:
                    await versioning.delete(s3, container, key, vid)
                else:
                    await s3.svc.delete_object(container, key)
            except S3Error as exc:
                code = exc.code
            except Exception as exc:  # noqa: BLE001  (one key's failure is reported, the others go on)
                if getattr(exc, "status", 0) != 404:
                    code = "InternalError"
        if code:
            err = element("Error")
            sub(err, "Key", key)
            sub(err, "Code", code)
            sub(err, "Message", code)
            result.append(err)
        elif not quiet:
            done = element("Deleted")
            sub(done, "Key", key)
            result.append(done)
    return xml_response(result)


async def _object(s3: S3Request, rule: str) -> tuple[ContainerInfo, ObjectInfo]:
    check_key(s3.key)
    container = await buckets.resolve(s3, rule)
    info = await s3.svc.object(container, s3.key)
    if info is None:
        raise S3Error("NoSuchKey", "The specified key does not exist.")
    return container, info


async def get_tagging(s3: S3Request) -> Response:
    _, info = await _object(s3, "object_store:object:get")
    root = element("Tagging")
    tagset = element("TagSet")
    for k, v in parse_qsl(info.meta.get(TAGGING, ""), keep_blank_values=True):
        tag = element("Tag")
        sub(tag, "Key", k)
        sub(tag, "Value", v)
        tagset.append(tag)
    root.append(tagset)
    return xml_response(root)


async def put_tagging(s3: S3Request) -> Response:
    container, info = await _object(s3, "object_store:object:post")
    root = parse_xml(await s3.body.read(64 * 1024))
    if root.tag != "Tagging" or root.find("TagSet") is None:
        raise S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against "
                      "our published schema.")
    tags = [(t.findtext("Key") or "", t.findtext("Value") or "") for t in root.iter("Tag")]
    meta = dict(info.meta)
    meta[TAGGING] = urlencode(check_tags(tags))
    await s3.svc.update_object(container, s3.key, None, meta)
    return Response(status_code=200)


async def delete_tagging(s3: S3Request) -> Response:
    container, info = await _object(s3, "object_store:object:post")
    meta = {k: v for k, v in info.meta.items() if k != TAGGING}
    await s3.svc.update_object(container, s3.key, None, meta)
    return Response(status_code=204)
