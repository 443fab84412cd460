"""S3 multipart uploads.  An upload lives in the bucket's hidden container ``<bucket>+segments``
(hidden from ListBuckets; ``+`` is not allowed in a bucket name): an empty marker object
``.upload/<key>/<upload id>`` holding the new object's content type and metadata, and each part as
``<upload id>/<part number, 5 digits>``.  CompleteMultipartUpload concatenates the listed parts
server side into one ordinary object (so both APIs read it whole, Range included), bounded by
``[object] max_file_size``; its ETag is AWS's ``"<md5 of the parts' binary md5s>-<count>"`` (kept in
the object's metadata; the Swift API and listings show the md5 of the whole).  The parts and the
marker are then removed."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import Response

from cumulo.object.s3 import buckets, objects, versioning
from cumulo.object.s3.common import (
    MAX_KEYS,
    MAX_PART_NUMBER,
    MAX_XML_BODY,
    MIN_PART_SIZE,
    S3Error,
    S3Request,
    element,
    iso8601,
    parse_xml,
    sub,
    xml_response,
)
from cumulo.object.service import ContainerInfo, Listing, ObjectInfo

MARKER = ".upload/"
CTYPE = "x-s3-content-type"


def _marker(key: str, upload_id: str) -> str:
    return f"{MARKER}{key}/{upload_id}"


def _part(upload_id: str, number: int) -> str:
    return f"{upload_id}/{number:05d}"


async def _segments(s3: S3Request, bucket: ContainerInfo, create: bool) -> ContainerInfo | None:
    name = bucket.name + buckets.SEGMENTS
    info = await s3.svc.container(bucket.account, name)
    if info is None and create:
        await s3.svc.put_container(bucket.account, name, {}, None, None)
        info = await s3.svc.container(bucket.account, name)
    return info


async def _upload(s3: S3Request, rule: str) -> tuple[ContainerInfo, ContainerInfo, ObjectInfo, str]:
    objects.check_key(s3.key)
    bucket = await buckets.resolve(s3, rule)
    upload_id = s3.query.get("uploadId", "")
    segments = await _segments(s3, bucket, False)
    marker = None
    if re.fullmatch("[0-9a-f]{32}", upload_id) and segments is not None:
        marker = await s3.svc.object(segments, _marker(s3.key, upload_id))
    if segments is None or marker is None:
        raise S3Error("NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the "
                      "upload may have been aborted or completed.")
    return bucket, segments, marker, upload_id


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover


async def create(s3: S3Request) -> Response:
    objects.check_key(s3.key)
    bucket = await buckets.resolve(s3, "object_store:object:put")
    meta = objects.user_meta(s3)
    meta[CTYPE] = s3.request.headers.get("content-type") or "binary/octet-stream"
    segments = await _segments(s3, bucket, True)
    assert segments is not None
    upload_id = uuid.uuid4().hex
    await s3.svc.put_object(segments, _marker(s3.key, upload_id), _empty(), content_type="application/x-s3-upload",
                            meta=meta, expected_etag=None, content_length=0)
    root = element("InitiateMultipartUploadResult")
    sub(root, "Bucket", bucket.name)
    sub(root, "Key", s3.key)
    sub(root, "UploadId", upload_id)
    return xml_response(root)


def _part_number(s3: S3Request) -> int:
    try:
        number = int(s3.query.get("partNumber", ""))
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_PART_NUMBER:
        raise S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive")
    return number


async def upload_part(s3: S3Request) -> Response:
    number = _part_number(s3)
    _, segments, _, upload_id = await _upload(s3, "object_store:object:put")
    if s3.request.headers.get("x-amz-copy-source"):
        return await _upload_part_copy(s3, segments, _part(upload_id, number))
    if s3.body.length is None and "chunked" not in s3.request.headers.get("transfer-encoding", ""):
        raise S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.")
    new = await objects.store(s3, segments, _part(upload_id, number), s3.body.chunks(), "application/octet-stream",
                              {}, s3.body.length)
    headers = {"ETag": f'"{new.etag}"'}
    if s3.body.checksum is not None and s3.body.checksum.value():
        headers[f"x-amz-checksum-{s3.body.checksum.algorithm}"] = s3.body.checksum.value() or ""
    return Response(status_code=200, headers=headers)


async def _upload_part_copy(s3: S3Request, segments: ContainerInfo, name: str) -> Response:
    info, reader = await objects.open_source(s3)
    try:
        start, end = 0, info.size
        spec = s3.request.headers.get("x-amz-copy-source-range")
        if spec:
            m = re.fullmatch(r"bytes=(\d{1,19})-(\d{1,19})", spec.strip())
            if not m or int(m[1]) > int(m[2]) or int(m[2]) >= info.size:
                raise S3Error("InvalidArgument", "The x-amz-copy-source-range value must be of the form "
                              "bytes=first-last where first and last are the zero-based offsets of the first and "
                              "last bytes to copy")
            start, end = int(m[1]), int(m[2]) + 1
        new = await objects.store(s3, segments, name, objects._range(reader, start, end), "application/octet-stream",
                                  {}, end - start)
    finally:
        reader.close()
    root = element("CopyPartResult")
    sub(root, "LastModified", iso8601(new.timestamp))
    sub(root, "ETag", f'"{new.etag}"')
    return xml_response(root)


async def _parts(s3: S3Request, segments: ContainerInfo, upload_id: str, marker: int = 0,
                 limit: int = MAX_PART_NUMBER) -> list[dict[str, Any]]:
    start = _part(upload_id, marker) if marker else ""
    return await s3.svc.objects(segments, Listing(prefix=upload_id + "/", marker=start, limit=limit))


async def list_parts(s3: S3Request) -> Response:
    bucket, segments, _, upload_id = await _upload(s3, "object_store:object:get")
    try:
        max_parts = min(int(s3.query.get("max-parts", "1000")), 1000)
        marker = int(s3.query.get("part-number-marker", "0"))
    except ValueError:
        raise S3Error("InvalidArgument", "max-parts and part-number-marker must be integers") from None
    if max_parts < 0 or not 0 <= marker <= MAX_PART_NUMBER:
        raise S3Error("InvalidArgument", "max-parts and part-number-marker must be within range")
    parts = await _parts(s3, segments, upload_id, marker, max_parts + 1)
    truncated = len(parts) > max_parts
    parts = parts[:max_parts]
    root = element("ListPartsResult")
    sub(root, "Bucket", bucket.name)
    sub(root, "Key", s3.key)
    sub(root, "UploadId", upload_id)
    sub(root, "PartNumberMarker", marker)
    sub(root, "MaxParts", max_parts)
    sub(root, "IsTruncated", "true" if truncated else "false")
    for p in parts:
        el = element("Part")
        number = int(p["name"].rsplit("/", 1)[1])
        sub(el, "PartNumber", number)
        sub(el, "LastModified", iso8601(p["last_modified"]))
        sub(el, "ETag", f'"{p["hash"]}"')
        sub(el, "Size", p["bytes"])
        root.append(el)
    if parts:
        sub(root, "NextPartNumberMarker", int(parts[-1]["name"].rsplit("/", 1)[1]))
    return xml_response(root)


async def list_uploads(s3: S3Request) -> Response:
    bucket = await buckets.resolve(s3, "object_store:container:get", listing=True)
    segments = await _segments(s3, bucket, False)
    prefix = s3.query.get("prefix", "")
    key_marker = s3.query.get("key-marker", "")
    try:
        max_uploads = min(int(s3.query.get("max-uploads", "1000")), MAX_KEYS)
    except ValueError:
        raise S3Error("InvalidArgument", "max-uploads must be an integer") from None
    entries = [] if segments is None or max_uploads <= 0 else await s3.svc.objects(segments, Listing(
        prefix=MARKER + prefix, marker=MARKER + key_marker + "/\U0010ffff" if key_marker else "",
        limit=max_uploads + 1))
    truncated = len(entries) > max_uploads
    root = element("ListMultipartUploadsResult")
    sub(root, "Bucket", bucket.name)
    sub(root, "KeyMarker", key_marker)
    sub(root, "UploadIdMarker", "")
    sub(root, "Prefix", prefix)
    sub(root, "MaxUploads", max(max_uploads, 0))
    sub(root, "IsTruncated", "true" if truncated else "false")
    for e in entries[:max_uploads]:
        key, _, upload_id = e["name"][len(MARKER):].rpartition("/")
        up = element("Upload")
        sub(up, "Key", key)
        sub(up, "UploadId", upload_id)
        sub(up, "StorageClass", "STANDARD")
        sub(up, "Initiated", iso8601(e["last_modified"]))
        root.append(up)
    if truncated and entries:
        key, _, upload_id = entries[max_uploads - 1]["name"][len(MARKER):].rpartition("/")
        sub(root, "NextKeyMarker", key)
        sub(root, "NextUploadIdMarker", upload_id)
    return xml_response(root)


async def _remove(s3: S3Request, segments: ContainerInfo, upload_id: str, key: str) -> None:
    for p in await _parts(s3, segments, upload_id):
        try:
            await s3.svc.delete_object(segments, p["name"])
        except Exception:  # noqa: BLE001  (removed meanwhile by another abort or complete)
            pass
    try:
        await s3.svc.delete_object(segments, _marker(key, upload_id))
    except Exception:  # noqa: BLE001
        pass


async def abort(s3: S3Request) -> Response:
    _, segments, _, upload_id = await _upload(s3, "object_store:object:delete")
    await _remove(s3, segments, upload_id, s3.key)
    return Response(status_code=204)


async def complete(s3: S3Request) -> Response:
    bucket, segments, marker, upload_id = await _upload(s3, "object_store:object:put")
    root = parse_xml(await s3.body.read(MAX_XML_BODY))
    if root.tag != "CompleteMultipartUpload":
        raise S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against "
                      "our published schema.")
    wanted: list[tuple[int, str]] = []
    for el in root.findall("Part"):
        try:
            number = int(el.findtext("PartNumber") or "")
        except ValueError:
            raise S3Error("MalformedXML", "A Part's PartNumber is not a number.") from None
        wanted.append((number, (el.findtext("ETag") or "").strip().strip('"')))
    if not wanted or len(wanted) > MAX_PART_NUMBER:
        raise S3Error("MalformedXML", "You must specify at least one part (and at most 10,000).")
    if any(b[0] <= a[0] for a, b in zip(wanted, wanted[1:], strict=False)):
        raise S3Error("InvalidPartOrder", "The list of parts was not in ascending order. The parts list must be "
                      "specified in order by part number.")
    stored = {int(p["name"].rsplit("/", 1)[1]): p for p in await _parts(s3, segments, upload_id)}
    total = 0
    md5s = b""
    for i, (number, etag) in enumerate(wanted):
        part = stored.get(number)
        if part is None or (etag and etag != part["hash"]):
            raise S3Error("InvalidPart", "One or more of the specified parts could not be found. The part may not "
                          "have been uploaded, or the specified entity tag may not match the part's entity tag.")
        if i < len(wanted) - 1 and part["bytes"] < MIN_PART_SIZE:
            raise S3Error("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size.")
        total += part["bytes"]
        md5s += bytes.fromhex(part["hash"])
    if total > s3.call.max_file_size:
        raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
    meta = {k: v for k, v in marker.meta.items() if k != CTYPE}
    etag = f"{hashlib.md5(md5s).hexdigest()}-{len(wanted)}"  # noqa: S324  (AWS's multipart ETag)
    meta[objects.S3_ETAG] = etag
    vid = await versioning.before_write(s3, bucket, s3.key)
    if vid:
        meta[versioning.VERSION_ID] = vid

    async def joined() -> AsyncIterator[bytes]:
        for number, _ in wanted:
            opened = await s3.svc.open_object(segments, _part(upload_id, number))
            if opened is None:
                raise S3Error("InvalidPart", f"Part {number} was removed while the upload was completed.")
            info, reader = opened
            try:
                async for chunk in reader.iter_range(0, info.size):
                    yield chunk
            finally:
                reader.close()

    await objects.store(s3, bucket, s3.key, joined(), marker.meta.get(CTYPE, "binary/octet-stream"), meta, total)
    await _remove(s3, segments, upload_id, s3.key)
    out = element("CompleteMultipartUploadResult")
    sub(out, "Location", f"/{bucket.name}/{s3.key}")
    sub(out, "Bucket", bucket.name)
    sub(out, "Key", s3.key)
    sub(out, "ETag", f'"{etag}"')
    return xml_response(out, headers={"x-amz-version-id": vid} if vid else None)
