"""The object service: accounts, containers and the object listing in the cloud's database, the
data in the ring's store.  ``ObjectService`` is the only interface other code calls; what crosses
it is plain data (``ContainerInfo``, ``ObjectInfo``, dicts).

Expiry (Swift's X-Delete-At): an object whose ``x-delete-at`` has come is gone for ``object``,
``open_object`` and ``update_object`` at once (Swift's object server answers 404 for it), and a
DELETE of it removes it but answers 404 too; it stays in the listing and the container's counts
until the expirer (``expire_due``) deletes it, as Swift's object-expirer does."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from sqlalchemy import func, select

from cumulo.core.config import Config
from cumulo.core.db import Database
from cumulo.object.models import ObjectAccount, ObjectContainer, ObjectEntry

# a listing walks at most this many index pages to fill one answer when a delimiter folds entries
MAX_DELIMITER_ROUNDS = 100
# the most objects one expirer pass reads from the index and deletes
EXPIRE_BATCH = 200


class ObjectError(Exception):
    """A request the service refuses; ``status`` is the HTTP status Swift answers."""

    status = 400

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class NotFound(ObjectError):
    status = 404


class Conflict(ObjectError):
    status = 409


# the system metadata cumulo.object.middleware.symlink keeps on a link (and its -account, -etag)
SYMLINK_TARGET = "x-object-sysmeta-symlink-target"


def now_timestamp() -> str:
    """Swift's normalized timestamp: seconds since the epoch, ten digits, five decimals."""
    return f"{time.time():016.5f}"


@dataclass
class AccountInfo:
    name: str
    exists: bool
    timestamp: str
    meta: dict[str, str]
    container_count: int = 0
    object_count: int = 0
    bytes_used: int = 0


@dataclass
class ContainerInfo:
    id: int
    account: str
    name: str
    timestamp: str
    meta: dict[str, str]
    read_acl: str
    write_acl: str
    object_count: int
    bytes_used: int


@dataclass
class ObjectInfo:
    name: str
    size: int
    etag: str
    content_type: str
    timestamp: str
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class Listing:
    """What a listing asks: the page bounds Swift's GET parameters give."""

    prefix: str = ""
    marker: str = ""
    end_marker: str = ""
    limit: int = 10000
    delimiter: str = ""
    reverse: bool = False


def _container_info(row: ObjectContainer) -> ContainerInfo:
    return ContainerInfo(row.id, row.account, row.name, row.timestamp, dict(row.meta or {}), row.read_acl or "",
                         row.write_acl or "", row.object_count, row.bytes_used)


def _object_info(row: ObjectEntry) -> ObjectInfo:
    return ObjectInfo(row.name, row.size, row.etag, row.content_type, row.timestamp, dict(row.meta or {}))


def delete_at_of(meta: dict[str, str]) -> int | None:
    """The object's X-Delete-At (Unix seconds) from its kept headers, None when it has none."""
    value = meta.get("x-delete-at")
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _expired(row: ObjectEntry, now: float | None = None) -> bool:
    return row.delete_at is not None and row.delete_at <= (time.time() if now is None else now)


def _apply_meta(meta: dict[str, str], updates: dict[str, str]) -> dict[str, str]:
    """Swift's metadata POST: a key set to an empty value is removed."""
    out = dict(meta)
    for key, value in updates.items():
        if value == "":
            out.pop(key, None)
        else:
            out[key] = value
    return out


class ObjectService:
    def __init__(self, cfg: Config, db: Database, store: Any) -> None:
        self.cfg, self.db, self.store = cfg, db, store

    # ---- accounts ----

    async def account(self, account: str) -> AccountInfo:
        """An account as HEAD shows it; one never written to exists with nothing in it (Swift's
        account_autocreate, as keystoneauth deployments run it)."""
        async with self.db.reader() as s:
            row = await s.get(ObjectAccount, account)
            count, objects, used = (await s.execute(
                select(func.count(), func.coalesce(func.sum(ObjectContainer.object_count), 0),
                       func.coalesce(func.sum(ObjectContainer.bytes_used), 0))
                .where(ObjectContainer.account == account))).one()
        if row is None:
            return AccountInfo(account, False, now_timestamp(), {})
        return AccountInfo(account, True, row.timestamp, dict(row.meta or {}), int(count), int(objects), int(used))

    async def update_account(self, account: str, meta: dict[str, str]) -> None:
        async with self.db.session() as s:
            row = await self._account_row(s, account)
            row.meta = _apply_meta(row.meta or {}, meta)

    async def _account_row(self, s: Any, account: str) -> ObjectAccount:
        row = await s.get(ObjectAccount, account)
        if row is None:
            row = ObjectAccount(name=account, meta={}, timestamp=now_timestamp())
            s.add(row)
            await s.flush()
        return row

    async def containers(self, account: str, q: Listing) -> list[dict[str, Any]]:
        """The account's containers in name order (``{"name", "count", "bytes", "last_modified"}``,
        or ``{"subdir"}`` where a delimiter folds names)."""
        async def page(s: Any, marker: str, limit: int) -> list[ObjectContainer]:
            stmt = select(ObjectContainer).where(ObjectContainer.account == account)
            stmt = _bounds(stmt, ObjectContainer.name, q, marker).limit(limit)
            return list((await s.execute(stmt)).scalars())

        def entry(row: ObjectContainer) -> dict[str, Any]:
            return {"name": row.name, "count": row.object_count, "bytes": row.bytes_used,
                    "last_modified": row.timestamp}
        return await self._listing(q, page, entry)

    # ---- containers ----

    async def container(self, account: str, name: str) -> ContainerInfo | None:
        async with self.db.reader() as s:
            row = (await s.execute(select(ObjectContainer).where(
                ObjectContainer.account == account, ObjectContainer.name == name))).scalar_one_or_none()
        return None if row is None else _container_info(row)

    async def container_and_object(self, account: str, container: str, name: str
                                   ) -> tuple[ContainerInfo | None, ObjectInfo | None]:
        """A GET's or HEAD's rows in one read: the container's (None when there is none) and the
        object's (None when there is none or its X-Delete-At has come)."""
        async with self.db.reader() as s:
            crow = (await s.execute(select(ObjectContainer).where(
                ObjectContainer.account == account, ObjectContainer.name == container))).scalar_one_or_none()
            row = None if crow is None else await s.get(ObjectEntry, (crow.id, name))
        if crow is None:
            return None, None
        return _container_info(crow), None if row is None or _expired(row) else _object_info(row)

    async def put_container(self, account: str, name: str, meta: dict[str, str], read_acl: str | None,
                            write_acl: str | None) -> bool:
        """Create the container, or update the metadata and ACLs of the one there; True if created."""
        async with self.db.session() as s:
            await self._account_row(s, account)
            row = (await s.execute(select(ObjectContainer).where(
                ObjectContainer.account == account, ObjectContainer.name == name))).scalar_one_or_none()
            created = row is None
            if row is None:
                row = ObjectContainer(account=account, name=name, meta={}, read_acl="", write_acl="",
                                      object_count=0, bytes_used=0, timestamp=now_timestamp())
                s.add(row)
            row.meta = _apply_meta(row.meta or {}, meta)
            if read_acl is not None:
                row.read_acl = read_acl
            if write_acl is not None:
                row.write_acl = write_acl
        return created

    async def update_container(self, account: str, name: str, meta: dict[str, str], read_acl: str | None,
                               write_acl: str | None) -> None:
        async with self.db.session() as s:
            row = await self._container_row(s, account, name)
            row.meta = _apply_meta(row.meta or {}, meta)
            if read_acl is not None:
                row.read_acl = read_acl
            if write_acl is not None:
                row.write_acl = write_acl

    async def delete_container(self, account: str, name: str) -> None:
        async with self.db.session() as s:
            row = await self._container_row(s, account, name)
            if row.object_count > 0:
                raise Conflict("There was a conflict when trying to complete your request.")
            await s.delete(row)

    async def _container_row(self, s: Any, account: str, name: str) -> ObjectContainer:
        row = (await s.execute(select(ObjectContainer).where(
            ObjectContainer.account == account, ObjectContainer.name == name))).scalar_one_or_none()
        if row is None:
            raise NotFound("The resource could not be found.")
        return row  # type: ignore[no-any-return]

    async def objects(self, container: ContainerInfo, q: Listing) -> list[dict[str, Any]]:
        """The container's objects in name order (``{"name", "bytes", "hash", "content_type",
        "last_modified"}``, or ``{"subdir"}``): one range scan of the (container_id, name) key."""
        async def page(s: Any, marker: str, limit: int) -> list[ObjectEntry]:
            stmt = select(ObjectEntry).where(ObjectEntry.container_id == container.id)
            stmt = _bounds(stmt, ObjectEntry.name, q, marker).limit(limit)
            return list((await s.execute(stmt)).scalars())

        def entry(row: ObjectEntry) -> dict[str, Any]:
            out = {"name": row.name, "bytes": row.size, "hash": row.etag, "content_type": row.content_type,
                   "last_modified": row.timestamp}
            meta = row.meta or {}
            if SYMLINK_TARGET in meta:  # a symlink: JSON listings show where it points, as Swift's do
                account = meta.get(SYMLINK_TARGET + "-account") or container.account
                out["symlink_path"] = f"/v1/{account}/{unquote(meta[SYMLINK_TARGET])}"
                if SYMLINK_TARGET + "-etag" in meta:
                    out["symlink_etag"] = meta[SYMLINK_TARGET + "-etag"]
            return out
        return await self._listing(q, page, entry)

    async def _listing(self, q: Listing, page: Any, entry: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        marker = q.marker
        async with self.db.reader() as s:
            for _ in range(MAX_DELIMITER_ROUNDS):
                rows = await page(s, marker, q.limit - len(out))
                if not rows:
                    break
                for row in rows:
                    name = row.name
                    if q.delimiter:
                        cut = name.find(q.delimiter, len(q.prefix))
                        if cut >= 0:
                            subdir = name[:cut + len(q.delimiter)]
                            if not out or out[-1].get("subdir") != subdir:
                                out.append({"subdir": subdir})
                            # go on past every name under the folded subdir
                            marker = subdir if q.reverse else subdir + "\U0010ffff"
                            break
                    out.append(entry(row))
                    marker = name
                else:
                    if not q.delimiter:
                        break
                if len(out) >= q.limit or not q.delimiter:
                    break
        return out[:q.limit]

    # ---- objects ----

    async def object(self, container: ContainerInfo, name: str, *, expired: bool = False) -> ObjectInfo | None:
        """The object's row; None when there is none, or (unless ``expired``) its X-Delete-At has come."""
        async with self.db.reader() as s:
            row = await s.get(ObjectEntry, (container.id, name))
        if row is None or (_expired(row) and not expired):
            return None
        return _object_info(row)

    async def put_object(self, container: ContainerInfo, name: str, chunks: AsyncIterator[bytes], *,
                         content_type: str, meta: dict[str, str], expected_etag: str | None,
                         content_length: int | None, timestamp: str | None = None,
                         max_size: int | None = None) -> ObjectInfo:
        """Store the data at a quorum of replicas, then write the listing row (and the container's
        counts) in one transaction.  The store's errors (TooLarge, EtagMismatch, QuorumError,
        ShortBody) pass through to the API."""
        ts = timestamp or now_timestamp()
        stored = await self.store.put(container.account, container.name, name, chunks, timestamp=ts,
                                      metadata={"Content-Type": content_type, **meta},
                                      max_size=self.cfg.object.max_file_size if max_size is None else max_size,
                                      expected_etag=expected_etag,
                                      content_length=content_length)
        info = ObjectInfo(name, stored.size, stored.etag, content_type, str(stored.timestamp), meta)
        await self._write_row(container, info)
        return info

    async def _write_row(self, container: ContainerInfo, info: ObjectInfo) -> None:
        async with self.db.session() as s:
            crow = await s.get(ObjectContainer, container.id)
            if crow is None:
                raise NotFound("The container was deleted while the object was written.")
            row = await s.get(ObjectEntry, (container.id, info.name))
            if row is not None and row.timestamp > info.timestamp:
                return  # a newer write landed first: it wins, as in Swift
            if row is None:
                crow.object_count += 1
                crow.bytes_used += info.size
                s.add(ObjectEntry(container_id=container.id, name=info.name, size=info.size, etag=info.etag,
                                  content_type=info.content_type, timestamp=info.timestamp, meta=info.meta,
                                  delete_at=delete_at_of(info.meta)))
            else:
                crow.bytes_used += info.size - row.size
                row.size, row.etag, row.content_type = info.size, info.etag, info.content_type
                row.timestamp, row.meta = info.timestamp, info.meta
                row.delete_at = delete_at_of(info.meta)

    async def open_object(self, container: ContainerInfo, name: str) -> tuple[ObjectInfo, Any] | None:
        """The listing row and a reader of the stored copy, or None when either is missing."""
        info = await self.object(container, name)
        if info is None:
            return None
        reader = await self.store.get(container.account, container.name, name)
        if reader is None:
            return None
        return info, reader

    async def reader(self, container: ContainerInfo, info: ObjectInfo) -> Any:
        """A reader of the stored copy of the object ``info`` names, or None when it is missing."""
        return await self.store.get(container.account, container.name, info.name)

    async def update_object(self, container: ContainerInfo, name: str, content_type: str | None,
                            meta: dict[str, str]) -> ObjectInfo:
        """Swift's object POST: the user metadata is replaced whole (and Content-Type, if given)."""
        async with self.db.session() as s:
            row = await s.get(ObjectEntry, (container.id, name))
            if row is None or _expired(row):
                raise NotFound("The resource could not be found.")
            row.meta = dict(meta)
            row.delete_at = delete_at_of(row.meta)
            if content_type:
                row.content_type = content_type
            return _object_info(row)

    async def delete_object(self, container: ContainerInfo, name: str, *, if_delete_at: int | None = None) -> None:
        """Delete the row (and the container's counts) then tombstone the data.  An expired object
        is deleted and NotFound raised after, as Swift answers.  With ``if_delete_at`` (the
        expirer's, Swift's X-If-Delete-At) only a row still due at that time is deleted, so an
        object written again since the expirer read the index stays; NotFound otherwise."""
        ts = now_timestamp()
        async with self.db.session() as s:
            row = await s.get(ObjectEntry, (container.id, name))
            if row is None or (if_delete_at is not None and row.delete_at != if_delete_at):
                raise NotFound("The resource could not be found.")
            was_expired = if_delete_at is None and _expired(row)
            crow = await s.get(ObjectContainer, container.id)
            if crow is not None:
                crow.object_count -= 1
                crow.bytes_used -= row.size
            await s.delete(row)
        await self.store.delete(container.account, container.name, name, timestamp=ts)
        if was_expired:
            raise NotFound("The resource could not be found.")

    async def expire_due(self, limit: int = EXPIRE_BATCH, now: float | None = None) -> int:
        """The expirer's pass: delete (with ``delete_object``) at most ``limit`` objects whose
        X-Delete-At has come, the longest due first; how many were deleted.  Each delete is whole
        on its own, so a pass cut short leaves the rest for the next one."""
        limit = max(1, min(limit, EXPIRE_BATCH))
        cutoff = int(time.time() if now is None else now)
        async with self.db.reader() as s:
            rows = (await s.execute(
                select(ObjectEntry.name, ObjectEntry.delete_at, ObjectContainer)
                .join(ObjectContainer, ObjectContainer.id == ObjectEntry.container_id)
                .where(ObjectEntry.delete_at.is_not(None), ObjectEntry.delete_at <= cutoff)
                .order_by(ObjectEntry.delete_at).limit(limit))).all()
            due = [(name, delete_at, _container_info(crow)) for name, delete_at, crow in rows]
        done = 0
        for name, delete_at, container in due:
            try:
                await self.delete_object(container, name, if_delete_at=delete_at)
            except NotFound:
                continue  # written again or deleted since the index was read
            done += 1
        return done

    def usage(self) -> dict[str, Any]:
        return dict(self.store.usage())


def _bounds(stmt: Any, column: Any, q: Listing, marker: str) -> Any:
    """marker/end_marker/prefix as bounds of an index range scan, in the listing's direction."""
    if q.prefix:
        stmt = stmt.where(column >= q.prefix, column < q.prefix + "\U0010ffff")
    if q.reverse:
        if marker:
            stmt = stmt.where(column < marker)
        if q.end_marker:
            stmt = stmt.where(column > q.end_marker)
        return stmt.order_by(column.desc())
    if marker:
        stmt = stmt.where(column > marker)
    if q.end_marker:
        stmt = stmt.where(column < q.end_marker)
    return stmt.order_by(column)
