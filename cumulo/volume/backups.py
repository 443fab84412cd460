"""Volume backups: the ``VolumeService`` half of Cinder's backups API (it inherits ``BackupsMixin``).

A backup is made by the volume's agent into the backup store (``drivers/backup.py``: chunked,
zero chunks skipped, zstd, sha256 per chunk, incremental against the parent's manifest):

* create: the volume (``available``, or ``in-use`` with ``force``) goes ``backing-up`` and the
  backup row is written ``creating`` with a lease, in one transaction within the project's quota
  turn (``backups``, ``backup_gigabytes``); the agent's report makes it ``available`` with its
  ``object_count`` (or ``error`` with a ``fail_reason``) and gives the volume back the status its
  attachments make it.  ``incremental`` takes the newest available backup of the volume as parent.
* restore: the backup goes ``restoring`` (with a lease), the target volume ``restoring-backup``:
  a new volume (within the volumes and gigabytes quota) or an existing available one at least as
  large; the agent writes the volume's qcow2 from the chunks, checking each one's hash.  Then both
  are ``available``; a failed restore leaves the volume ``error_restoring`` with the fault in
  words and the backup ``available``.
* delete: ``deleting`` (with a lease) until the agent has removed the backup's objects; a backup
  that an incremental depends on is refused.

The leases are the backups' own (a volume's status here carries none): when one runs out the
reconciler (``end_expired_backups``) fails a create and gives the volume back, fails a restore,
and sends a delete again.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update

from cumulo.core.bus import Bus
from cumulo.core.config import Config
from cumulo.core.db import Database, utcnow
from cumulo.core.http.faults import BadRequest, NotFound, PayloadTooLarge
from cumulo.core.http.paging import ListQuery, apply
from cumulo.core.quota import turn
from cumulo.volume.backup_models import Backup
from cumulo.volume.info import Caller
from cumulo.volume.models import Volume

LOG = logging.getLogger(__name__)

DEFAULT_CONTAINER = "volumebackups"  # Cinder's default (the Swift driver's backup_swift_container)
# the record's backup service: Cinder's name of its directory driver, which this store stands for (tempest and
# Cinder's clients expect a cinder.backup.drivers name)
BACKUP_SERVICE = "cinder.backup.drivers.posix.PosixBackupDriver"
BACKUP_SORT_KEYS = {"id", "name", "status", "size", "created_at", "updated_at", "volume_id", "project_id",
                    "data_timestamp", "container"}
DELETABLE = ("available", "error")
RESET_STATUSES = ("available", "error")
SECONDS_PER_GIB = 10.0  # a backup's or restore's lease grows with the volume: at least 100 MiB/s


@dataclass(frozen=True)
class BackupInfo:
    id: str
    volume_id: str
    project_id: str
    user_id: str
    name: str | None
    description: str | None
    container: str
    status: str
    size: int
    object_count: int
    parent_id: str | None
    has_dependent_backups: bool
    availability_zone: str | None
    host: str | None
    metadata: dict[str, str]
    fail_reason: str | None
    data_timestamp: dt.datetime
    created_at: dt.datetime
    updated_at: dt.datetime
    data_id: str  # where its objects are: <container>/<data_id>/ (its own id, or an imported record's original)
    snapshot_id: str | None = None

    @property
    def is_incremental(self) -> bool:
        return self.parent_id is not None


@dataclass
class BackupFilters:
    all_projects: bool = False
    project_id: str | None = None
    name: str | None = None
    status: str | None = None
    volume_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RestoreInfo:
    backup_id: str
    volume_id: str
    volume_name: str | None


def _info(row: Backup, dependents: int = 0) -> BackupInfo:
    return BackupInfo(row.id, row.volume_id, row.project_id, row.user_id, row.name, row.description, row.container,
                      row.status, row.size, row.object_count, row.parent_id, dependents > 0, row.availability_zone,
                      row.host, dict(row.meta or {}), row.fail_reason, row.data_timestamp, row.created_at,
                      row.updated_at, row.data_id or row.id, row.snapshot_id)


def data_project(row: Backup) -> str:
    """The project whose object storage holds the backup's data: the one it was made in, which an
    exported record carries to the project that imports it."""
    return str((row.volume_meta or {}).get("data_project") or row.project_id)


class BackupsMixin:
    """VolumeService's backup methods (they use its database, bus, quotas, pools and volumes)."""

    cfg: Config
    db: Database
    bus: Bus
    instance: str
    lease: dt.timedelta

    # -- reading -------------------------------------------------------------------------------
    async def _backup_row(self, s: Any, backup_id: str, who: Caller) -> Backup:
        row = await s.get(Backup, backup_id)
        if row is None or row.deleted or (not who.admin and row.project_id != who.project_id):
            raise NotFound(f"Backup {backup_id} could not be found.")
        return row  # type: ignore[no-any-return]

    async def _dependents(self, s: Any, ids: list[str]) -> dict[str, int]:
        if not ids:
            return {}
        rows = await s.execute(select(Backup.parent_id, func.count()).where(
            Backup.parent_id.in_(ids), Backup.deleted.is_(False)).group_by(Backup.parent_id))
        return {parent: int(n) for parent, n in rows.all()}

    async def backup(self, backup_id: str, who: Caller) -> BackupInfo:
        async with self.db.session() as s:
            row = await self._backup_row(s, backup_id, who)
            return _info(row, (await self._dependents(s, [row.id])).get(row.id, 0))

    async def backups(self, who: Caller, filters: BackupFilters | None = None, query: ListQuery | None = None,
                      offset: int = 0) -> list[BackupInfo]:
        """A page of the backups the caller sees (newest first unless ``query`` sorts)."""
        f = filters or BackupFilters()
        q = query or ListQuery(sort=[("created_at", "desc")])
        stmt = select(Backup).where(Backup.deleted.is_(False))
        if not (who.admin and f.all_projects):
            stmt = stmt.where(Backup.project_id == who.project_id)
        elif f.project_id:
            stmt = stmt.where(Backup.project_id == f.project_id)
        for column, value in ((Backup.name, f.name), (Backup.status, f.status), (Backup.volume_id, f.volume_id)):
            if value is not None:
                stmt = stmt.where(column == value)
        async with self.db.session() as s:
            marker = None
            if q.marker:
                marker = await s.get(Backup, q.marker)
                if marker is None or marker.deleted or (not who.admin and marker.project_id != who.project_id):
                    raise NotFound(f"Marker {q.marker} could not be found.")
            if f.metadata:
                rows = [r for r in (await s.execute(apply(stmt, Backup, ListQuery(sort=q.sort), marker))).scalars()
                        if all((r.meta or {}).get(k) == v for k, v in f.metadata.items())][offset:]
                rows = rows[:q.limit] if q.limit is not None else rows
            else:
                rows = list((await s.execute(apply(stmt, Backup, q, marker).offset(offset or None))).scalars())
            deps = await self._dependents(s, [r.id for r in rows])
        return [_info(r, deps.get(r.id, 0)) for r in rows]

    async def backup_usage(self, project_id: str) -> tuple[int, int]:
        """(backups, backup gigabytes) the project holds: what its quotas count."""
        async with self.db.session() as s:
            count, size = (await s.execute(select(func.count(), func.coalesce(func.sum(Backup.size), 0)).where(
                Backup.project_id == project_id, Backup.deleted.is_(False)))).one()
        return int(count), int(size)

    def _backup_lease(self, size_gb: int) -> dt.datetime:
        return utcnow() + self.lease + dt.timedelta(seconds=SECONDS_PER_GIB * size_gb)

    # -- create ------------------------------------------------------------------------------
    async def create_backup(self, who: Caller, volume_id: str, *, name: str | None = None,
                            description: str | None = None, container: str | None = None,
                            incremental: bool = False, force: bool = False,
                            metadata: dict[str, str] | None = None,
                            availability_zone: str | None = None, snapshot_id: str | None = None) -> BackupInfo:
        """Back up the volume, or its snapshot ``snapshot_id`` (read from the snapshot's own file,
        the volume left as it is)."""
        vol = await self.volume(volume_id, who)  # type: ignore[attr-defined]
        allowed = ("available", "in-use") if force else ("available",)
        if snapshot_id:
            snap = await self.snapshot(snapshot_id, who)  # type: ignore[attr-defined]
            if snap.volume_id != volume_id:
                raise BadRequest(f"Invalid input received: snapshot {snapshot_id} is not of volume {volume_id}.")
            if snap.status != "available":
                raise BadRequest(f"Invalid snapshot: Snapshot to be backed up must be available, but the current "
                                 f"status is \"{snap.status}\".")
        elif vol.status not in allowed:
            more = "" if force or vol.status != "in-use" else " (an in-use volume needs force)"
            raise BadRequest(f"Invalid volume: Volume to be backed up must be available or in-use, but the current "
                             f"status is \"{vol.status}\"{more}.")
        if availability_zone and availability_zone != vol.availability_zone:
            raise BadRequest(f"Invalid input received: availability zone {availability_zone!r} is not the volume's "
                             f"({vol.availability_zone}).")
        if vol.host is None:
            raise BadRequest(f"Invalid volume: volume {volume_id} has no host to be backed up from.")
        container = container or DEFAULT_CONTAINER
        now = utcnow()
        row = Backup(id=str(uuid.uuid4()), volume_id=volume_id, project_id=vol.project_id, user_id=who.user_id,
                     name=name, description=description, container=container, status="creating", size=vol.size,
                     object_count=0, stored_bytes=0, availability_zone=vol.availability_zone, host=vol.host,
                     meta=dict(metadata or {}), task={"volume_status": vol.status, "claimed": not snapshot_id},
                     snapshot_id=snapshot_id, volume_meta={"metadata": vol.metadata, "bootable": vol.bootable,
                                  "data_project": vol.project_id},
                     lease_owner=self.instance, lease_until=self._backup_lease(vol.size), data_timestamp=now,
                     created_at=now, updated_at=now)
        async with turn(self.db, f"volume:{vol.project_id}"):
            parent = await self._parent_of(volume_id) if incremental else None
            if incremental and parent is None:
                raise BadRequest("Invalid backup: No backups available to do an incremental backup.")
            row.parent_id = parent.id if parent else None
            await self._check_backup_quota(vol.project_id, vol.size)
            async with self.db.session() as s:
                if not snapshot_id:
                    moved = await s.execute(update(Volume).where(
                        Volume.id == volume_id, Volume.deleted.is_(False), Volume.status == vol.status).values(
                        status="backing-up", updated_at=now))
                    if moved.rowcount != 1:
                        raise BadRequest(f"Invalid volume: Volume {volume_id} is busy: try again.")
                s.add(row)
        try:
            await self._cast(vol.host, "backup_volume", "backup", {  # type: ignore[attr-defined]
                "backup_id": row.id, "volume_id": volume_id, "container": container, "project_id": vol.project_id,
                "parent_id": (parent.data_id or parent.id) if parent else None,
                "parent_container": parent.container if parent else None,
                "snapshot_id": snapshot_id, "force_share": vol.status != "available" and not snapshot_id},
                backup_id=row.id, volume_id=volume_id, claimed=not snapshot_id)
        except Exception as exc:  # the lease ends it if nobody answers
            LOG.warning("sending backup %s to %s failed: %s", row.id, vol.host, exc)
        return _info(row)

    async def _data_project_of(self, backup_id: str) -> str | None:
        async with self.db.session() as s:
            row = await s.get(Backup, backup_id)
        return None if row is None else data_project(row)

    async def _parent_of(self, volume_id: str) -> Backup | None:
        """The newest available backup of the volume: what an incremental one builds on."""
        async with self.db.session() as s:
            return (await s.execute(select(Backup).where(
                Backup.volume_id == volume_id, Backup.deleted.is_(False), Backup.status == "available")
                .order_by(Backup.data_timestamp.desc(), Backup.created_at.desc()).limit(1))).scalar()

    async def _check_backup_quota(self, project_id: str, size: int) -> None:
        """Refuse (413) one more backup of ``size`` GiB over the project's quotas; the caller holds
        the project's turn."""
        count, used = await self.backup_usage(project_id)
        limit = await self.quota(project_id, "backups")  # type: ignore[attr-defined]
        if 0 <= limit < count + 1:
            raise PayloadTooLarge(f"Maximum number of backups allowed ({limit}) exceeded.")
        gigabytes = await self.quota(project_id, "backup_gigabytes")  # type: ignore[attr-defined]
        if 0 <= gigabytes < used + size:
            raise PayloadTooLarge(f"Requested backup exceeds allowed Backup gigabytes quota. Requested {size}G, quota "
                                  f"is {gigabytes}G and {used}G has been consumed.")

    async def _release_volume(self, volume_id: str, status: str) -> None:
        """Give the volume back after a backup: the status its attachments make it."""
        async with self.db.session() as s:
            await self._lock(s, volume_id)  # type: ignore[attr-defined]
            moved = await s.execute(update(Volume).where(Volume.id == volume_id, Volume.status == status).values(
                status="available", updated_at=utcnow()))
            if moved.rowcount:
                await self._settle(s, volume_id)  # type: ignore[attr-defined]

    async def _done_backup(self, ctx: dict[str, Any], error: str | None, result: Any) -> None:
        backup_id = ctx["backup_id"]
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None, "task": None, "updated_at": utcnow()}
        if error:
            LOG.warning("backup %s failed: %s", backup_id, error)
            values.update(status="error", fail_reason=f"The backup could not be made on {ctx.get('host')}: {error}")
        else:
            values.update(status="available", fail_reason=None, object_count=int((result or {}).get("object_count", 0)),
                          stored_bytes=int((result or {}).get("stored_bytes", 0)))
        async with self.db.session() as s:
            done = await s.execute(update(Backup).where(Backup.id == backup_id, Backup.status == "creating")
                                   .values(**values))
        if ctx.get("claimed", True):
            await self._release_volume(ctx["volume_id"], "backing-up")
        if done.rowcount != 1 and not error:  # deleted (forced) meanwhile: its objects must go
            async with self.db.session() as s:
                row = await s.get(Backup, backup_id)
            if row is None or row.deleted or row.status in ("deleting", "error"):
                await self._cast(ctx["host"], "delete_backup", "backup_delete", {  # type: ignore[attr-defined]
                    "backup_id": backup_id, "container": row.container if row else DEFAULT_CONTAINER,
                    "project_id": data_project(row) if row else None},
                    backup_id=backup_id, cleanup=True)

    # -- update ------------------------------------------------------------------------------
    async def update_backup(self, backup_id: str, who: Caller, values: dict[str, Any]) -> BackupInfo:
        async with self.db.session() as s:
            row = await self._backup_row(s, backup_id, who)
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
        return await self.backup(backup_id, who)

    # -- restore -----------------------------------------------------------------------------
    async def restore_backup(self, backup_id: str, who: Caller, volume_id: str | None = None,
                             name: str | None = None) -> RestoreInfo:
        """Write the backup into ``volume_id`` (available, at least as large) or into a new volume
        (``name``, the backup's size, within the quota); the agent's report ends it."""
        b = await self.backup(backup_id, who)
        if b.status != "available":
            raise BadRequest(f"Invalid backup: Backup status must be available (it is {b.status}).")
        new: Volume | None = None
        if volume_id:
            vol = await self.volume(volume_id, who)  # type: ignore[attr-defined]
            if vol.status != "available":
                raise BadRequest(f"Invalid volume: Volume to be restored to must be available (it is {vol.status}).")
            if vol.size < b.size:
                raise BadRequest(f"Invalid volume: volume size {vol.size} is too small to restore backup of size "
                                 f"{b.size}.")
            host, size, volume_name = vol.host, vol.size, vol.name
            if host is None:
                raise BadRequest(f"Invalid volume: volume {volume_id} has no host to be restored on.")
        else:
            host = await self._pick_pool(b.size)  # type: ignore[attr-defined]
            if host is None:
                raise BadRequest(f"No valid backend was found: no volume pool that is up has room for {b.size} GiB.")
            vtype = await self.default_type()  # type: ignore[attr-defined]
            now = utcnow()
            size, volume_name = b.size, name or f"restore_backup_{backup_id}"
            new = Volume(id=str(uuid.uuid4()), name=volume_name, description=None, size=size,
                         status="restoring-backup", attach_status="detached", project_id=b.project_id,
                         user_id=who.user_id, availability_zone=self.cfg.volume.availability_zone,
                         volume_type_id=vtype.id, multiattach=False, meta={}, bootable=False, host=host,
                         created_at=now, updated_at=now)
            volume_id = new.id
        task = {"volume_id": volume_id, "new": new is not None}
        async with turn(self.db, f"volume:{b.project_id}"):
            if new is not None:
                await self._check_quota(b.project_id, "volumes", size)  # type: ignore[attr-defined]
            async with self.db.session() as s:
                moved = await s.execute(update(Backup).where(
                    Backup.id == backup_id, Backup.deleted.is_(False), Backup.status == "available").values(
                    status="restoring", task=task, lease_owner=self.instance, lease_until=self._backup_lease(size),
                    updated_at=utcnow()))
                if moved.rowcount != 1:
                    raise BadRequest(f"Invalid backup: Backup {backup_id} is busy: try again.")
                if new is not None:
                    s.add(new)
                else:
                    claimed = await s.execute(update(Volume).where(
                        Volume.id == volume_id, Volume.deleted.is_(False), Volume.status == "available").values(
                        status="restoring-backup", updated_at=utcnow()))
                    if claimed.rowcount != 1:
                        raise BadRequest(f"Invalid volume: Volume {volume_id} is busy: try again.")
        try:
            await self._cast(host, "restore_backup", "restore", {  # type: ignore[attr-defined]
                "backup_id": b.data_id, "container": b.container, "volume_id": volume_id, "size": size,
                "project_id": await self._data_project_of(backup_id) or b.project_id},
                backup_id=backup_id, volume_id=volume_id)
        except Exception as exc:
            LOG.warning("sending the restore of backup %s to %s failed: %s", backup_id, host, exc)
        return RestoreInfo(backup_id, volume_id, volume_name)

    async def _done_restore(self, ctx: dict[str, Any], error: str | None, result: Any) -> None:
        await self._end_restore(ctx["backup_id"], ctx["volume_id"],
                                f"The backup could not be restored on {ctx.get('host')}: {error}" if error else None)

    async def _end_restore(self, backup_id: str, volume_id: str, fault: str | None) -> None:
        if fault:
            LOG.warning("restore of backup %s into volume %s failed: %s", backup_id, volume_id, fault)
        async with self.db.session() as s:
            values: dict[str, Any] = {"status": "error_restoring", "fault": fault, "updated_at": utcnow()}
            backup, vol = await s.get(Backup, backup_id), await s.get(Volume, volume_id)
            if not fault and vol is not None:  # the source volume's metadata and bootable flag come along, as in Cinder
                carried = (backup.volume_meta if backup is not None else None) or {}
                values.update(status="available", meta={**(vol.meta or {}), **(carried.get("metadata") or {})},
                              bootable=bool(carried.get("bootable", vol.bootable)))
            await s.execute(update(Volume).where(Volume.id == volume_id, Volume.status == "restoring-backup")
                            .values(**values))
            # the backup is as good as before; why its last restore failed is its fail_reason
            await s.execute(update(Backup).where(Backup.id == backup_id, Backup.status == "restoring").values(
                status="available", fail_reason=fault, task=None, lease_owner=None, lease_until=None,
                updated_at=utcnow()))

    # -- delete ------------------------------------------------------------------------------
    async def delete_backup(self, backup_id: str, who: Caller, force: bool = False) -> None:
        """``deleting`` until the agent removed its objects; ``force`` (an admin's) from any status
        but ``deleting``.  A backup an incremental one depends on stays."""
        async with self.db.session() as s:
            row = await self._backup_row(s, backup_id, who)
            dependents = (await self._dependents(s, [backup_id])).get(backup_id, 0)
        if not force and row.status not in DELETABLE:
            raise BadRequest(f"Invalid backup: Backup status must be available or error (it is {row.status}).")
        if dependents:
            raise BadRequest("Invalid backup: Incremental backups exist for this backup.")
        async with self.db.session() as s:
            allowed = Backup.status != "deleting" if force else Backup.status.in_(DELETABLE)
            moved = await s.execute(update(Backup).where(Backup.id == backup_id, Backup.deleted.is_(False), allowed)
                                    .values(status="deleting", lease_owner=self.instance,
                                            lease_until=utcnow() + self.lease, updated_at=utcnow()))
        if moved.rowcount != 1:
            raise BadRequest(f"Invalid backup: Backup {backup_id} is busy.")
        if row.status == "restoring" and row.task:  # forced: the restore it was doing ends in error
            await self._end_restore(backup_id, row.task["volume_id"], "The backup was deleted during the restore.")
        await self._send_backup_delete(row)

    async def _send_backup_delete(self, row: Backup) -> None:
        """Have an agent remove the backup's objects, unless another backup (an imported record of
        it, or its original) still holds the same data."""
        data = row.data_id or row.id
        async with self.db.session() as s:
            shared = (await s.execute(select(func.count()).select_from(Backup).where(
                Backup.deleted.is_(False), Backup.id != row.id,
                (Backup.id == data) | (Backup.data_id == data)))).scalar()
        host = None if shared else row.host or await self._pick_pool(0)  # type: ignore[attr-defined]
        if host is None:
            await self._backup_deleted(row.id)
            return
        try:
            await self._cast(host, "delete_backup", "backup_delete", {  # type: ignore[attr-defined]
                "backup_id": data, "container": row.container, "project_id": data_project(row)}, backup_id=row.id)
        except Exception as exc:  # the reconciler sends it again when the lease ends
            LOG.warning("sending the delete of backup %s to %s failed: %s", row.id, host, exc)

    async def _backup_deleted(self, backup_id: str) -> None:
        async with self.db.session() as s:
            await s.execute(update(Backup).where(Backup.id == backup_id).values(
                status="deleted", deleted=True, deleted_at=utcnow(), task=None, lease_owner=None, lease_until=None))

    async def _done_backup_delete(self, ctx: dict[str, Any], error: str | None, result: Any) -> None:
        if ctx.get("cleanup"):
            return
        if error:
            async with self.db.session() as s:
                await s.execute(update(Backup).where(Backup.id == ctx["backup_id"], Backup.status == "deleting")
                                .values(status="error_deleting", fail_reason=error, lease_owner=None,
                                        lease_until=None))
            return
        await self._backup_deleted(ctx["backup_id"])

    # -- admin actions -----------------------------------------------------------------------
    async def reset_backup_status(self, backup_id: str, who: Caller, status: str) -> None:
        if status not in RESET_STATUSES:
            raise BadRequest(f"Invalid input received: backup status {status!r} must be available or error.")
        async with self.db.session() as s:
            row = await self._backup_row(s, backup_id, who)
            task, old = dict(row.task or {}), row.status
            row.status, row.task, row.lease_owner, row.lease_until, row.updated_at = status, None, None, None, utcnow()
        if old == "creating" and task.get("claimed"):  # the volume it was reading is given back
            await self._release_volume(row.volume_id, "backing-up")
        elif old == "restoring" and task.get("volume_id"):
            await self._end_restore(backup_id, task["volume_id"], "The restore was ended by an administrator.")

    async def export_backup_record(self, backup_id: str, who: Caller) -> dict[str, str]:
        """Cinder's backup record: the backup service's name and a base64 document that
        ``import_backup_record`` takes back (another cloud sharing the store, or this one after
        the row was deleted while the objects stayed)."""
        b = await self.backup(backup_id, who)
        if b.status != "available":
            raise BadRequest(f"Invalid backup: Backup status must be available (it is {b.status}).")
        async with self.db.session() as s:
            row = await self._backup_row(s, backup_id, who)
            record = {"id": row.id, "volume_id": row.volume_id, "name": row.name, "description": row.description,
                      "container": row.container, "size": row.size, "object_count": row.object_count,
                      "parent_id": row.parent_id, "availability_zone": row.availability_zone,
                      "data_id": row.data_id or row.id, "snapshot_id": row.snapshot_id, "volume_meta": row.volume_meta,
                      "data_timestamp": row.data_timestamp.isoformat(), "metadata": dict(row.meta or {})}
        url = base64.b64encode(json.dumps(record).encode()).decode()
        return {"backup_service": BACKUP_SERVICE, "backup_url": url}

    async def import_backup_record(self, who: Caller, backup_service: str, backup_url: str) -> BackupInfo:
        if backup_service != BACKUP_SERVICE:
            raise BadRequest(f"Invalid input received: backup service {backup_service!r} is not supported (this "
                             f"cloud's is {BACKUP_SERVICE}).")
        try:
            record = json.loads(base64.b64decode(backup_url, validate=True))
            backup_id, volume_id = str(uuid.UUID(record["id"])), str(record["volume_id"])
            container, size = str(record["container"]), int(record["size"])
            data_id = str(uuid.UUID(record.get("data_id") or record["id"]))
            stamp = dt.datetime.fromisoformat(record["data_timestamp"]).replace(tzinfo=None)
        except (ValueError, TypeError, KeyError, binascii.Error):
            raise BadRequest("Invalid input received: the backup record is not one this cloud exported.") from None
        if not container or "/" in container or container.startswith(".") or size < 1:
            raise BadRequest("Invalid input received: the backup record is not one this cloud exported.")
        host = await self._pick_pool(0)  # type: ignore[attr-defined]
        if host is None:
            raise BadRequest("No valid backend was found: no volume agent is up to check the backup.")
        now = utcnow()
        async with self.db.session() as s:
            old = await s.get(Backup, backup_id)
            if old is not None and not old.deleted:
                raise BadRequest("Invalid backup: Backup already exists in database.")
            if old is not None:
                await s.delete(old)
                await s.flush()
            s.add(Backup(id=backup_id, volume_id=volume_id, project_id=who.project_id, user_id=who.user_id,
                         name=record.get("name"), description=record.get("description"), container=container,
                         status="creating", size=size, object_count=int(record.get("object_count") or 0),
                         stored_bytes=0, parent_id=record.get("parent_id"),
                         data_id=None if data_id == backup_id else data_id, snapshot_id=record.get("snapshot_id"),
                         volume_meta=record.get("volume_meta") if isinstance(record.get("volume_meta"), dict) else None,
                         availability_zone=record.get("availability_zone"), host=host,
                         meta=dict(record.get("metadata") or {}), task={"import": True}, lease_owner=self.instance,
                         lease_until=now + self.lease, data_timestamp=stamp, created_at=now, updated_at=now))
        try:
            await self._cast(host, "import_backup", "backup_import", {  # type: ignore[attr-defined]
                "backup_id": data_id, "container": container,
                "project_id": await self._data_project_of(backup_id) or who.project_id}, backup_id=backup_id)
        except Exception as exc:
            LOG.warning("sending the import of backup %s to %s failed: %s", backup_id, host, exc)
        return await self.backup(backup_id, who)

    async def _done_backup_import(self, ctx: dict[str, Any], error: str | None, result: Any) -> None:
        values: dict[str, Any] = {"status": "error", "fail_reason": f"The backup could not be imported: {error}"} \
            if error else {"status": "available", "fail_reason": None}
        async with self.db.session() as s:
            await s.execute(update(Backup).where(Backup.id == ctx["backup_id"], Backup.status == "creating").values(
                task=None, lease_owner=None, lease_until=None, updated_at=utcnow(), **values))

    # -- the reconciler's half -------------------------------------------------------------------
    async def end_expired_backups(self) -> int:
        """End every backup transition whose lease ran out: a create goes to error (and its volume
        back), a restore leaves its volume in error_restoring, a delete is sent again."""
        now = utcnow()
        async with self.db.session() as s:
            rows = list((await s.execute(select(Backup).where(
                Backup.deleted.is_(False), Backup.lease_until.is_not(None), Backup.lease_until < now))).scalars())
        for row in rows:
            late = f"The volume agent {row.host or '(none)'} did not report in time."
            if row.status == "creating":
                async with self.db.session() as s:
                    await s.execute(update(Backup).where(Backup.id == row.id, Backup.status == "creating").values(
                        status="error", fail_reason=late, task=None, lease_owner=None, lease_until=None))
                if (row.task or {}).get("claimed"):
                    await self._release_volume(row.volume_id, "backing-up")
            elif row.status == "restoring":
                await self._end_restore(row.id, (row.task or {}).get("volume_id", ""), late)
            elif row.status == "deleting":
                async with self.db.session() as s:
                    await s.execute(update(Backup).where(Backup.id == row.id).values(
                        lease_owner=self.instance, lease_until=utcnow() + self.lease))
                await self._send_backup_delete(row)
            else:
                async with self.db.session() as s:
                    await s.execute(update(Backup).where(Backup.id == row.id).values(
                        lease_owner=None, lease_until=None))
        return len(rows)
