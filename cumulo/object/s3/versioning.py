"""S3 object versions.  While a bucket's versioning is ``Enabled`` every write gives the object a
version id (``x-amz-version-id``) and the version it replaces is kept in the bucket's hidden
container ``<bucket>+versions`` as ``<key>/<version id>``; a DELETE without a version id keeps the
current version there too and adds a delete marker (an empty entry marked so).  Version ids are 20
characters that sort newest first (an inverted microsecond clock and 4 random hex digits).  GET,
HEAD and DELETE take ``versionId``; deleting the current version makes the newest kept version
current again (unless that is a delete marker).  ``Suspended`` stops new ids (writes replace the
current object) but keeps what was kept.  An object written before versioning was enabled is kept
under an id made from its timestamp (not AWS's ``null``).  ListObjectVersions (``?versions``)
answers with prefix, max-keys (at most 1,000), key-marker and version-id-marker (no delimiter)."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import Response

from cumulo.object.s3.common import MAX_KEYS, S3Error, S3Request, element, iso8601, sub, xml_response
from cumulo.object.service import ContainerInfo, Listing, ObjectInfo

VERSIONS = "+versions"
VERSIONING = "x-s3-versioning"
VERSION_ID = "x-s3-version-id"
DELETE_MARKER = "x-s3-delete-marker"
MODIFIED = "x-s3-modified"  # a kept version's own time (its copy here has the time it was kept)
_CLOCK = 10**16


def state(bucket: ContainerInfo) -> str:
    return bucket.meta.get(VERSIONING, "")


def new_version_id(timestamp: float | None = None) -> str:
    micros = int((timestamp if timestamp is not None else time.time()) * 1e6)
    return f"{_CLOCK - micros:016d}{secrets.token_hex(2)}"


def is_version_id(value: str) -> bool:
    return len(value) == 20 and value[:16].isdigit() and all(c in "0123456789abcdef" for c in value[16:])


async def _container(s3: S3Request, bucket: ContainerInfo, create: bool) -> ContainerInfo | None:
    name = bucket.name + VERSIONS
    info = await s3.svc.container(bucket.account, name)
    if info is None and create:
        await s3.svc.put_container(bucket.account, name, {}, None, None)
        info = await s3.svc.container(bucket.account, name)
    return info


async def _copy(s3: S3Request, src: ContainerInfo, src_name: str, dest: ContainerInfo, dest_name: str,
                meta: dict[str, str] | None = None) -> ObjectInfo | None:
    """A server-side copy with a new timestamp (a name a version left and comes back to has a
    tombstone newer than the version's own time); the kept version's time is in its metadata."""
    opened = await s3.svc.open_object(src, src_name)
    if opened is None:
        return None
    info, reader = opened

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in reader.iter_range(0, info.size):
            yield chunk
    try:
        return await s3.svc.put_object(dest, dest_name, chunks(), content_type=info.content_type,
                                       meta=dict(info.meta if meta is None else meta), expected_etag=None,
                                       content_length=info.size,
                                       max_size=max(info.size, 1))
    finally:
        reader.close()


async def before_write(s3: S3Request, bucket: ContainerInfo, key: str) -> str:
    """Keep the current version of ``key`` if the bucket versions it; the new write's version id
    (empty when versioning is not Enabled)."""
    mode = state(bucket)
    if not mode:
        return ""
    current = await s3.svc.object(bucket, key)
    if current is not None and (mode == "Enabled" or current.meta.get(VERSION_ID)):
        vid = current.meta.get(VERSION_ID) or new_version_id(float(current.timestamp))
        versions = await _container(s3, bucket, True)
        assert versions is not None
        await _copy(s3, bucket, key, versions, f"{key}/{vid}", {**current.meta, VERSION_ID: vid,
                                                               MODIFIED: current.timestamp})
    return new_version_id() if mode == "Enabled" else ""


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover


async def delete(s3: S3Request, bucket: ContainerInfo, key: str, version_id: str) -> dict[str, str]:
    """A DELETE in a bucket that versions (or with a version id); the response headers."""
    if version_id:
        return await _delete_version(s3, bucket, key, version_id)
    if state(bucket) != "Enabled":
        await before_write(s3, bucket, key)
        await _delete_current(s3, bucket, key)
        return {}
    await before_write(s3, bucket, key)
    await _delete_current(s3, bucket, key)
    versions = await _container(s3, bucket, True)
    assert versions is not None
    vid = new_version_id()
    await s3.svc.put_object(versions, f"{key}/{vid}", _empty(), content_type="application/x-s3-delete-marker",
                            meta={DELETE_MARKER: "true", VERSION_ID: vid}, expected_etag=None, content_length=0)
    return {"x-amz-delete-marker": "true", "x-amz-version-id": vid}


async def _delete_current(s3: S3Request, bucket: ContainerInfo, key: str) -> None:
    try:
        await s3.svc.delete_object(bucket, key)
    except Exception as exc:
        if getattr(exc, "status", 0) != 404:
            raise


async def _delete_version(s3: S3Request, bucket: ContainerInfo, key: str, version_id: str) -> dict[str, str]:
    if not is_version_id(version_id):
        raise S3Error("InvalidArgument", "Invalid version id specified")
    current = await s3.svc.object(bucket, key)
    versions = await _container(s3, bucket, False)
    headers = {"x-amz-version-id": version_id}
    if current is not None and current.meta.get(VERSION_ID) == version_id:
        await _delete_current(s3, bucket, key)
    elif versions is not None:
        kept = await s3.svc.object(versions, f"{key}/{version_id}")
        if kept is None:
            return headers
        if kept.meta.get(DELETE_MARKER):
            headers["x-amz-delete-marker"] = "true"
        await _delete_current(s3, versions, f"{key}/{version_id}")
    if versions is not None and await s3.svc.object(bucket, key) is None:
        newest = [e for e in await s3.svc.objects(versions, Listing(prefix=key + "/", limit=50))
                  if "name" in e and is_version_id(e["name"][len(key) + 1:])]
        if newest:
            entry = await s3.svc.object(versions, newest[0]["name"])
            if entry is not None and not entry.meta.get(DELETE_MARKER):
                await _copy(s3, versions, entry.name, bucket, key,
                            {k: v for k, v in entry.meta.items() if k != MODIFIED})
                await _delete_current(s3, versions, entry.name)
    return headers


async def open_version(s3: S3Request, bucket: ContainerInfo, key: str, version_id: str) -> tuple[ObjectInfo, Any]:
    """The object's version ``version_id`` (current or kept) and a reader of it."""
    if not is_version_id(version_id):
        raise S3Error("InvalidArgument", "Invalid version id specified")
    current = await s3.svc.object(bucket, key)
    if current is not None and current.meta.get(VERSION_ID) == version_id:
        opened = await s3.svc.open_object(bucket, key)
    else:
        versions = await _container(s3, bucket, False)
        opened = None if versions is None else await s3.svc.open_object(versions, f"{key}/{version_id}")
    if opened is None:
        raise S3Error("NoSuchVersion", "The specified version does not exist.", 404)
    if opened[0].meta.get(DELETE_MARKER):
        opened[1].close()
        raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.", 405,
                      headers={"x-amz-delete-marker": "true", "x-amz-version-id": version_id})
    return opened  # type: ignore[no-any-return]


async def list_versions(s3: S3Request, bucket: ContainerInfo) -> Response:
    from cumulo.object.s3.objects import s3_etag
    q = s3.query
    prefix, key_marker, vid_marker = q.get("prefix", ""), q.get("key-marker", ""), q.get("version-id-marker", "")
    try:
        max_keys = min(int(q.get("max-keys", "1000")), MAX_KEYS)
    except ValueError:
        raise S3Error("InvalidArgument", "max-keys must be an integer") from None
    if max_keys < 0 or len(prefix) > 1024 or len(key_marker) > 1024:
        raise S3Error("InvalidArgument", "Invalid max-keys, prefix or key-marker.")
    rows: list[tuple[str, str, dict[str, Any], bool]] = []  # (key, version id, entry, is latest)
    if max_keys:
        current = await s3.svc.objects(bucket, Listing(prefix=prefix, marker=key_marker if not vid_marker else
                                                       key_marker, limit=max_keys + 1))
        for e in current:
            info = await s3.svc.object(bucket, e["name"])
            rows.append((e["name"], (info.meta.get(VERSION_ID, "") if info else ""), {**e, "_info": info}, True))
        versions = await _container(s3, bucket, False)
        if versions is not None:
            start = f"{key_marker}/{vid_marker}" if vid_marker else (key_marker + "/\U0010ffff" if key_marker else "")
            for e in await s3.svc.objects(versions, Listing(prefix=prefix, marker=start, limit=max_keys + 1)):
                key, _, vid = e.get("name", "").rpartition("/")
                if key and is_version_id(vid):
                    rows.append((key, vid, {**e, "_info": await s3.svc.object(versions, e["name"])}, False))
    rows = [r for r in rows if r[0] > key_marker or (vid_marker and r[0] == key_marker and r[1] > vid_marker)]
    rows.sort(key=lambda r: (r[0], not r[3], r[1]))
    latest_seen: set[str] = {r[0] for r in rows if r[3]}
    truncated = len(rows) > max_keys
    rows = rows[:max_keys]
    root = element("ListVersionsResult")
    sub(root, "Name", bucket.name)
    sub(root, "Prefix", prefix)
    sub(root, "KeyMarker", key_marker)
    sub(root, "VersionIdMarker", vid_marker)
    sub(root, "MaxKeys", max_keys)
    sub(root, "IsTruncated", "true" if truncated else "false")
    first_kept: set[str] = set()
    for key, vid, entry, latest in rows:
        info = entry["_info"]
        is_latest = latest or (key not in latest_seen and key not in first_kept)
        if not latest:
            first_kept.add(key)
        marker = info is not None and info.meta.get(DELETE_MARKER)
        el = element("DeleteMarker" if marker else "Version")
        sub(el, "Key", key)
        sub(el, "VersionId", vid or "null")
        sub(el, "IsLatest", "true" if is_latest else "false")
        sub(el, "LastModified", iso8601((info.meta.get(MODIFIED) if info else None) or entry["last_modified"]))
        if not marker:
            sub(el, "ETag", f'"{s3_etag(info) if info else entry["hash"]}"')
            sub(el, "Size", entry["bytes"])
            sub(el, "StorageClass", "STANDARD")
        root.append(el)
    if truncated and rows:
        sub(root, "NextKeyMarker", rows[-1][0])
        sub(root, "NextVersionIdMarker", rows[-1][1] or "null")
    return xml_response(root)
