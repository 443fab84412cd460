"""Block storage on the control plane: volumes, volume types, snapshots and their quotas, and the
only interface other services call (plain data across: ``VolumeInfo``, ``SnapshotInfo``, ...).

Every transitional state has an owner and a lease, as compute's servers do: a create, delete or
snapshot starts with one conditional UPDATE (or the INSERT) that sets the transitional status and
stamps ``lease_owner``/``lease_until``; the volume agent's report over the bus ends it.  If no
report comes, ``cumulo.volume.reconcile`` ends it when the lease expires: a create goes to
``error`` with a fault in words, a delete is sent again (delete always wins).  Agents never open
the database: the work goes to ``volume.<host>`` with a ``ctx`` that comes back with the report
on ``volume.controller``.

Quotas are unified limits of ``block-storage`` in identity (the Ops Guide's defaults: volumes 10,
snapshots 10, gigabytes 1000, backups 10, backup_gigabytes 1000); creates of one project take
turns (``core.quota.turn``), so racing creates never overshoot.  Gigabytes count volumes and
snapshots, as Cinder counts them by default.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import uuid
from typing import Any

from sqlalchemy import func, select, update

from cumulo.core import context
from cumulo.core.bus import Bus
from cumulo.core.config import Config
from cumulo.core.db import Database, IntegrityError, is_duplicate, new_id, utcnow
from cumulo.core.http.faults import BadRequest, Conflict, NotFound, PayloadTooLarge
from cumulo.core.http.paging import ListQuery, apply
from cumulo.core.quota import turn
from cumulo.core.watch import watch
from cumulo.identity.service import IdentityService
from cumulo.image.service import Caller as ImageCaller
from cumulo.image.service import ImageService
from cumulo.volume.actions import ActionsMixin
from cumulo.volume.attachments import AttachmentsMixin
from cumulo.volume.backup_models import Backup
from cumulo.volume.backups import BackupsMixin
from cumulo.volume.encryption import EncryptionMixin
from cumulo.volume.groups import GroupsMixin
from cumulo.volume.info import (
    AttachmentInfo,
    Caller,
    MessageInfo,
    PoolInfo,
    ServiceInfo,
    SnapshotInfo,
    VolumeFilters,
    VolumeInfo,
    VolumeTypeInfo,
)
from cumulo.volume.models import Pool, Snapshot, Volume, VolumeType, VolumeTypeAccess
from cumulo.volume.qos import QosMixin
from cumulo.volume.transfers import TransfersMixin

__all__ = ["CONTROLLER", "DEFAULT_QUOTAS", "DEFAULT_TYPE", "SERVICE_TYPE", "AttachmentInfo", "Caller", "MessageInfo",
           "PoolInfo", "ServiceInfo", "SnapshotInfo", "VolumeFilters", "VolumeInfo", "VolumeService",
           "VolumeTypeInfo"]

LOG = logging.getLogger(__name__)

GiB = 1024**3
SERVICE_TYPE = "block-storage"
DEFAULT_TYPE = "__DEFAULT__"
CONTROLLER = "volume.controller"  # the bus target the agents report to
# the Ops Guide's (and Cinder's) default quotas; -1 is unlimited
DEFAULT_QUOTAS = {"volumes": 10, "snapshots": 10, "gigabytes": 1000, "backups": 10, "backup_gigabytes": 1000,
                  "per_volume_gigabytes": -1, "groups": 10}
# the quotas Cinder also keeps per volume type (volumes_<type>, snapshots_<type>, gigabytes_<type>):
# unlimited (-1) unless set; each type's own usage counts against them
PER_TYPE_QUOTAS = ("volumes", "snapshots", "gigabytes")
DELETABLE = ("available", "error", "error_restoring", "error_extending", "error_managing")
# what every file pool offers, as Cinder's scheduler sees a backend (get_pools' capabilities); a
# volume type's extra specs naming one of these must match it (Cinder's CapabilitiesFilter)
POOL_CAPABILITIES: dict[str, Any] = {
    "volume_backend_name": "file", "vendor_name": "Cumulo", "storage_protocol": "file", "driver_version": "1.0.0",
    "QoS_support": False, "multiattach": True, "thin_provisioning_support": True,
    "thick_provisioning_support": False}
VOLUME_SORT_KEYS = {"id", "name", "status", "size", "created_at", "updated_at", "availability_zone", "bootable",
                    "project_id"}
SNAPSHOT_SORT_KEYS = {"id", "name", "status", "size", "created_at", "updated_at", "volume_id", "project_id"}


def _volume_info(row: Volume, type_name: str | None, attachments: tuple[AttachmentInfo, ...] = ()) -> VolumeInfo:
    return VolumeInfo(row.id, row.name, row.description, row.size, row.status, row.attach_status, row.project_id,
                      row.user_id, row.availability_zone, type_name, row.volume_type_id, row.bootable,
                      row.multiattach, dict(row.meta or {}), row.snapshot_id, row.source_volid, row.image_id,
                      row.host, row.fault, row.created_at, row.updated_at, attachments,
                      dict(row.image_meta) if row.image_meta is not None else None, row.migration_status,
                      row.group_id)


def _type_info(row: VolumeType) -> VolumeTypeInfo:
    return VolumeTypeInfo(row.id, row.name, row.description, row.is_public, dict(row.extra_specs or {}),
                          row.qos_specs_id, bool(row.encryption))


def _snapshot_info(row: Snapshot) -> SnapshotInfo:
    return SnapshotInfo(row.id, row.volume_id, row.name, row.description, row.size, row.status, row.progress,
                        row.project_id, row.user_id, dict(row.meta or {}), row.created_at, row.updated_at,
                        row.group_snapshot_id)


class VolumeService(ActionsMixin, AttachmentsMixin, BackupsMixin, QosMixin, TransfersMixin, GroupsMixin,
                    EncryptionMixin):
    """Volumes, types, snapshots and quotas here; a volume's attachments in ``AttachmentsMixin``, its
    extend, upload, image metadata, the admin's actions and the user messages in ``ActionsMixin``."""

    def __init__(self, cfg: Config, db: Database, bus: Bus, identity: IdentityService,
                 images: ImageService | None = None, image_url: str = "") -> None:
        self.cfg, self.db, self.bus, self.identity = cfg, db, bus, identity
        self.images, self.image_url = images, image_url  # the Image API, when this controller runs it
        self.instance = new_id()  # this controller, as the owner of the leases it takes
        self.lease = dt.timedelta(seconds=cfg.volume.operation_timeout)
        # every committed write of a volume, snapshot or backup publishes resource.<kind>.* (cumulo.core.watch)
        for model, kind in ((Volume, "volume"), (Snapshot, "snapshot"), (Backup, "backup")):
            watch(db, bus, model, kind, lambda row: row["status"], gone=lambda row: row.get("status") == "deleted")

    async def start(self) -> None:
        """The leader's part: the default type, the default limits, and the agents' reports."""
        async with self.db.session() as s:
            if (await s.execute(select(VolumeType.id).where(VolumeType.name == DEFAULT_TYPE))).scalar() is None:
                s.add(VolumeType(id=str(uuid.uuid4()), name=DEFAULT_TYPE, description="Default Volume Type",
                                 is_public=True, extra_specs={}))
        await self.identity.register_default_limits(
            SERVICE_TYPE, {name: (value, f"Cinder quota {name}") for name, value in DEFAULT_QUOTAS.items()})
        await self.bus.serve(CONTROLLER, self.handle)

    # -- the agents' side of the bus ---------------------------------------------------------
    async def handle(self, method: str, args: dict[str, Any]) -> Any:
        if method == "report_pool":
            await self.report_pool(args["host"], args["pool"], args.get("started_at"), args.get("version"))
            if "volumes" in args:
                await self.sync_host(args["host"], set(args["volumes"]), set(args.get("snapshots") or ()))
            if args.get("exports"):  # the NBD exports no attachment holds are stopped
                await self.sync_exports(args["host"], set(args["exports"]))
            return None
        if method == "volume_update":
            await self.reported(args.get("ctx") or {}, args.get("error"), args.get("result"))
            return None
        raise ValueError(f"unknown volume controller method {method}")

    async def report_pool(self, host: str, pool: dict[str, Any], started_at: str | None = None,
                          version: str | None = None) -> None:
        started = _naive(started_at)
        async with self.db.session() as s:
            row = await s.get(Pool, host)
            if row is None:
                LOG.info("volume pool %s registered", host)
                row = Pool(host=host)
                s.add(row)
            row.capacity_gb, row.allocated_gb = int(pool["capacity_gb"]), int(pool["allocated_gb"])
            row.free_gb, row.started_at, row.reported_at = int(pool["free_gb"]), started, utcnow()
            row.version = str(version)[:32] if version else None  # an older agent sends none
            try:
                await s.flush()
            except IntegrityError as exc:  # another controller inserted it first: its row is as good
                if not is_duplicate(exc):
                    raise

    async def sync_host(self, host: str, volume_ids: set[str], snapshot_ids: set[str]) -> None:
        """Agree with what an agent holds (its files, as of its report): a create whose report was
        lost rolls forward to available, a delete whose report was lost to deleted, and a file no
        live volume or snapshot owns is removed."""
        async with self.db.session() as s:
            rows = (await s.execute(select(Volume.id, Volume.status, Volume.deleted, Volume.lease_until).where(
                (Volume.host == host) | Volume.id.in_(volume_ids)))).all()
            snaps = (await s.execute(select(Snapshot.id, Snapshot.status, Snapshot.deleted, Snapshot.lease_until)
                                     .where((Snapshot.host == host) | Snapshot.id.in_(snapshot_ids)))).all()
        # only a create that is running (it holds a lease) rolls forward: a "creating" an admin set
        # with os-reset_status is theirs to move (nova's os-update_snapshot_status, tempest's tests)
        leased = {ident for ident, _, _, lease in [*rows, *snaps] if lease is not None}
        known = {vid: (status, deleted) for vid, status, deleted, _ in rows}
        for vid, (status, deleted) in known.items():
            if not deleted and status == "creating" and vid in volume_ids and vid in leased:
                await self._done_create({"volume_id": vid, "host": host}, None, None)
            elif not deleted and status == "deleting" and vid not in volume_ids:
                await self._deleted(vid)
        for vid in volume_ids:
            if vid not in known or known[vid][1]:
                LOG.info("volume file %s on %s belongs to no volume: removing it", vid, host)
                await self._cast(host, "delete_volume", "delete", {"volume_id": vid}, volume_id=vid, cleanup=True)
        known_snaps = {sid: (status, deleted) for sid, status, deleted, _ in snaps}
        for sid, (status, deleted) in known_snaps.items():
            if not deleted and status == "creating" and sid in snapshot_ids and sid in leased:
                await self._done_snapshot({"snapshot_id": sid}, None, None)
            elif not deleted and status == "deleting" and sid not in snapshot_ids:
                await self._snapshot_deleted(sid)
        for sid in snapshot_ids:
            if sid not in known_snaps or known_snaps[sid][1]:
                LOG.info("snapshot file %s on %s belongs to no snapshot: removing it", sid, host)
                await self._cast(host, "delete_snapshot", "snapshot_delete", {"snapshot_id": sid},
                                 snapshot_id=sid, cleanup=True)

    async def pools(self) -> list[PoolInfo]:
        down = utcnow() - dt.timedelta(seconds=self.cfg.volume.service_down_time)
        async with self.db.session() as s:
            rows = (await s.execute(select(Pool).order_by(Pool.host))).scalars().all()
        return [PoolInfo(r.host, r.capacity_gb, r.allocated_gb, r.free_gb, r.reported_at >= down, r.disabled,
                         r.reported_at, bool(r.frozen), r.disabled_reason) for r in rows]

    async def services(self) -> list[ServiceInfo]:
        """os-services: the scheduler (this controller, answering now), and per pool a
        cinder-volume (Cinder's ``host@backend``) and a cinder-backup (the same agent makes the
        backups), up while it reports within ``service_down_time``."""
        zone = self.cfg.volume.availability_zone
        out = [ServiceInfo("cinder-scheduler", socket.gethostname(), zone, True, False, utcnow())]
        for p in await self.pools():
            out.append(ServiceInfo("cinder-volume", f"{p.host}@file", zone, p.up, p.disabled, p.reported_at,
                                   p.disabled_reason, p.frozen))
            out.append(ServiceInfo("cinder-backup", p.host, zone, p.up, False, p.reported_at))
        return out

    async def set_service_disabled(self, host: str, binary: str, disabled: bool,
                                   reason: str | None = None) -> ServiceInfo:
        """Enable or disable a cinder-volume (``host@file`` or the bare host): the scheduler puts
        no new volume on a disabled pool; what it holds stays served.  An enable forgets the
        reason; a disable keeps it unless it gives one (disable-log-reason), as Cinder does.  A
        service nobody runs (an unknown host or binary) is a 404."""
        pool_host = host.removesuffix("@file")
        if not any(x.binary == binary and x.host in (host, f"{pool_host}@file") for x in await self.services()):
            raise NotFound(f"Service {binary} on host {host} could not be found.")
        if binary != "cinder-volume":
            raise BadRequest(f"Invalid input received: only cinder-volume services are enabled or disabled here, "
                             f"not {binary!r}.")
        values: dict[str, Any] = {"disabled": disabled}
        if not disabled or reason is not None:
            values["disabled_reason"] = reason
        async with self.db.session() as s:
            moved = await s.execute(update(Pool).where(Pool.host == pool_host).values(**values))
        if moved.rowcount != 1:
            raise NotFound(f"Host {host} could not be found.")
        return next(x for x in await self.services() if x.binary == binary and x.host == f"{pool_host}@file")

    async def reported(self, ctx: dict[str, Any], error: str | None, result: Any) -> None:
        """An agent's report: ``ctx`` is what the operation sent; ``error`` if it failed."""
        op = ctx.get("op")
        handler = getattr(self, f"_done_{op}", None)
        if handler is None:
            LOG.warning("volume report for an unknown operation %s", op)
            return
        await handler(ctx, error, result)
        await self.group_member_reported(ctx)  # a group or group snapshot may wait for this member

    async def _cast(self, host: str, method: str, op: str, args: dict[str, Any], **ctx: Any) -> None:
        args["ctx"] = {"op": op, "host": host, "started": utcnow().isoformat(), "request_id": _request_id(), **ctx}
        await self.bus.cast(f"volume.{host}", method, args)

    # -- volume types --------------------------------------------------------------------------
    async def volume_types(self, who: Caller, is_public: bool | None = True) -> list[VolumeTypeInfo]:
        """The types the caller may use: public ones and the private ones shared with its project
        (an admin: all, or those of ``is_public`` when given)."""
        async with self.db.session() as s:
            rows = (await s.execute(select(VolumeType).order_by(VolumeType.name))).scalars().all()
            shared = set((await s.execute(select(VolumeTypeAccess.volume_type_id).where(
                VolumeTypeAccess.project_id == who.project_id))).scalars())
        if who.admin:
            return [_type_info(r) for r in rows if is_public is None or r.is_public == is_public]
        return [_type_info(r) for r in rows if r.is_public or r.id in shared]

    async def volume_type(self, type_ref: str, who: Caller) -> VolumeTypeInfo:
        """A type by id or name (404 when the caller may not see it)."""
        async with self.db.session() as s:
            row = await s.get(VolumeType, type_ref)
            if row is None:
                row = (await s.execute(select(VolumeType).where(VolumeType.name == type_ref))).scalar()
            visible = row is not None and (row.is_public or who.admin or (await s.execute(
                select(VolumeTypeAccess.id).where(VolumeTypeAccess.volume_type_id == row.id,
                                                  VolumeTypeAccess.project_id == who.project_id))).scalar()
                is not None)
        if row is None or not visible:
            raise NotFound(f"Volume type {type_ref} could not be found.")
        return _type_info(row)

    async def default_type(self) -> VolumeTypeInfo:
        async with self.db.session() as s:
            row = (await s.execute(select(VolumeType).where(VolumeType.name == DEFAULT_TYPE))).scalar()
        if row is None:
            raise NotFound(f"Volume type {DEFAULT_TYPE} could not be found.")
        return _type_info(row)

    async def create_volume_type(self, name: str, description: str | None = None, is_public: bool = True,
                                 extra_specs: dict[str, str] | None = None) -> VolumeTypeInfo:
        row = VolumeType(id=str(uuid.uuid4()), name=name, description=description, is_public=is_public,
                         extra_specs=dict(extra_specs or {}))
        try:
            async with self.db.session() as s:
                s.add(row)
        except IntegrityError as exc:
            if is_duplicate(exc):
                raise Conflict(f"Volume Type {name} already exists.") from None
            raise
        return _type_info(row)

    async def update_volume_type(self, type_id: str, values: dict[str, Any]) -> VolumeTypeInfo:
        try:
            async with self.db.session() as s:
                row = await s.get(VolumeType, type_id)
                if row is None:
                    raise NotFound(f"Volume type {type_id} could not be found.")
                if row.name == DEFAULT_TYPE and values.get("name") not in (None, DEFAULT_TYPE):
                    raise BadRequest(f"The default volume type {DEFAULT_TYPE} cannot be renamed.")
                for key, value in values.items():
                    setattr(row, key, value)
                await s.flush()
                return _type_info(row)
        except IntegrityError as exc:
            if is_duplicate(exc):
                raise Conflict(f"Volume Type {values.get('name')} already exists.") from None
            raise

    async def delete_volume_type(self, type_id: str) -> None:
        async with self.db.session() as s:
            row = await s.get(VolumeType, type_id)
            if row is None:
                raise NotFound(f"Volume type {type_id} could not be found.")
            if row.name == DEFAULT_TYPE:
                raise BadRequest(f"The default volume type {DEFAULT_TYPE} cannot be deleted.")
            used = (await s.execute(select(func.count()).select_from(Volume).where(
                Volume.volume_type_id == type_id, Volume.deleted.is_(False)))).scalar()
            if used:
                raise BadRequest(f"Target volume type {type_id} is still in use by {used} volumes.")
            await s.delete(row)
            for access in (await s.execute(select(VolumeTypeAccess).where(
                    VolumeTypeAccess.volume_type_id == type_id))).scalars():
                await s.delete(access)

    async def set_extra_specs(self, type_id: str, specs: dict[str, str]) -> dict[str, str]:
        async with self.db.session() as s:
            row = await s.get(VolumeType, type_id)
            if row is None:
                raise NotFound(f"Volume type {type_id} could not be found.")
            row.extra_specs = {**(row.extra_specs or {}), **specs}
            return dict(row.extra_specs)

    async def delete_extra_spec(self, type_id: str, key: str) -> None:
        async with self.db.session() as s:
            row = await s.get(VolumeType, type_id)
            if row is None:
                raise NotFound(f"Volume type {type_id} could not be found.")
            specs = dict(row.extra_specs or {})
            if key not in specs:
                raise NotFound(f"Volume Type {type_id} has no extra specs with key {key}.")
            del specs[key]
            row.extra_specs = specs

    # -- quotas --------------------------------------------------------------------------------
    async def quota(self, project_id: str, name: str) -> int:
        value = await self.identity.limit(project_id, SERVICE_TYPE, name)
        return DEFAULT_QUOTAS[name] if value is None else value

    async def quota_defaults(self) -> dict[str, int]:
        """Every quota's name -> its default: Cinder's, then one per volume type and kind (-1)."""
        async with self.db.session() as s:
            names = (await s.execute(select(VolumeType.name).order_by(VolumeType.name))).scalars().all()
        return {**DEFAULT_QUOTAS, **{f"{kind}_{name}": -1 for name in names for kind in PER_TYPE_QUOTAS}}

    async def quotas(self, project_id: str | None) -> dict[str, int]:
        """The project's limits (None: the defaults), -1 meaning unlimited; the per-type ones too."""
        defaults = await self.quota_defaults()
        registered = await self.identity.registered_limits(SERVICE_TYPE)
        if project_id is None:
            return {name: registered.get(name, value) for name, value in defaults.items()}
        out = {name: await self.quota(project_id, name) for name in DEFAULT_QUOTAS}
        for name in defaults.keys() - DEFAULT_QUOTAS.keys():
            value = await self.identity.limit(project_id, SERVICE_TYPE, name)
            out[name] = registered.get(name, -1) if value is None else value
        return out

    async def usage(self, project_id: str) -> dict[str, int]:
        async with self.db.session() as s:
            volumes, vol_gb = (await s.execute(select(func.count(), func.coalesce(func.sum(Volume.size), 0)).where(
                Volume.project_id == project_id, Volume.deleted.is_(False)))).one()
            snaps, snap_gb = (await s.execute(select(func.count(), func.coalesce(func.sum(Snapshot.size), 0)).where(
                Snapshot.project_id == project_id, Snapshot.deleted.is_(False)))).one()
            # an extend counts its new size from its start, so racing creates and extends never overshoot
            growing = (await s.execute(select(Volume.size, Volume.task).where(
                Volume.project_id == project_id, Volume.deleted.is_(False), Volume.status == "extending"))).all()
            # and per volume type: its volumes, its volumes' snapshots, the gigabytes of both
            by_type = (await s.execute(select(VolumeType.name, func.count(), func.coalesce(func.sum(Volume.size), 0))
                                       .join(VolumeType, VolumeType.id == Volume.volume_type_id).where(
                Volume.project_id == project_id, Volume.deleted.is_(False)).group_by(VolumeType.name))).all()
            snaps_by_type = (await s.execute(
                select(VolumeType.name, func.count(), func.coalesce(func.sum(Snapshot.size), 0))
                .join(Volume, Volume.id == Snapshot.volume_id).join(VolumeType, VolumeType.id == Volume.volume_type_id)
                .where(Snapshot.project_id == project_id, Snapshot.deleted.is_(False)).group_by(VolumeType.name))).all()
        pending = sum(max(0, int((task or {}).get("new_size", size)) - size) for size, task in growing)
        backups, backup_gb = await self.backup_usage(project_id)
        out = {"volumes": int(volumes), "snapshots": int(snaps), "gigabytes": int(vol_gb) + int(snap_gb) + pending,
               "backups": backups, "backup_gigabytes": backup_gb, "groups": await self.group_usage(project_id)}
        for name, count, gb in by_type:
            out[f"volumes_{name}"], out[f"gigabytes_{name}"] = int(count), int(gb)
        for name, count, gb in snaps_by_type:
            out[f"snapshots_{name}"] = int(count)
            out[f"gigabytes_{name}"] = out.get(f"gigabytes_{name}", 0) + int(gb)
        return out

    async def set_quotas(self, project_id: str | None, values: dict[str, int]) -> None:
        await self.identity.set_limits(SERVICE_TYPE, project_id, values)

    async def reset_quotas(self, project_id: str) -> None:
        await self.identity.delete_project_limits(SERVICE_TYPE, project_id)

    async def _check_quota(self, project_id: str, kind: str, size: int, type_name: str | None = None) -> None:
        """Refuse (413) one more ``kind`` ("volumes" or "snapshots") of ``size`` GiB over the quota,
        and over the volume type's own quotas when ``type_name`` is given; the caller holds the
        project's turn."""
        per_volume = await self.quota(project_id, "per_volume_gigabytes")
        if kind == "volumes" and 0 <= per_volume < size:
            raise PayloadTooLarge(f"Requested volume size {size}G is larger than maximum allowed limit {per_volume}G.")
        used = await self.usage(project_id)
        limit = await self.quota(project_id, kind)
        if 0 <= limit < used[kind] + 1:
            what = "volumes" if kind == "volumes" else "snapshots"
            raise PayloadTooLarge(f"Maximum number of {what} allowed ({limit}) exceeded for quota '{kind}'.")
        gigabytes = await self.quota(project_id, "gigabytes")
        if 0 <= gigabytes < used["gigabytes"] + size:
            raise PayloadTooLarge(f"Requested volume or snapshot exceeds allowed gigabytes quota. Requested "
                                  f"{size}G, quota is {gigabytes}G and {used['gigabytes']}G has been consumed.")
        if type_name is None:
            return
        for name, more in ((f"{kind}_{type_name}", 1), (f"gigabytes_{type_name}", size)):
            value = await self.identity.limit(project_id, SERVICE_TYPE, name)
            if value is not None and 0 <= value < used.get(name, 0) + more:
                raise PayloadTooLarge(f"Quota exceeded for {name}: the volume type {type_name} allows {value} in "
                                      f"this project and {used.get(name, 0)} is used.")

    # -- volumes ---------------------------------------------------------------------------------
    async def _row(self, s: Any, volume_id: str, who: Caller) -> Volume:
        row = await s.get(Volume, volume_id)
        if row is None or row.deleted or (not who.admin and row.project_id != who.project_id):
            raise NotFound(f"Volume {volume_id} could not be found.")
        return row

    async def _type_names(self, s: Any, type_ids: set[str | None]) -> dict[str, str]:
        ids = [t for t in type_ids if t]
        if not ids:
            return {}
        return dict((await s.execute(select(VolumeType.id, VolumeType.name).where(VolumeType.id.in_(ids)))).all())

    async def volume(self, volume_id: str, who: Caller) -> VolumeInfo:
        async with self.db.session() as s:
            row = await self._row(s, volume_id, who)
            names = await self._type_names(s, {row.volume_type_id})
            attached = await self._attachments_of(s, [row.id])
        return _volume_info(row, names.get(row.volume_type_id or ""), attached.get(row.id, ()))

    async def volumes(self, who: Caller, filters: VolumeFilters | None = None,
                      query: ListQuery | None = None, offset: int = 0) -> list[VolumeInfo]:
        """A page of the volumes the caller sees, filtered, sorted (newest first by default) and
        paged past ``query.marker`` (and ``offset`` more)."""
        f = filters or VolumeFilters()
        q = query or ListQuery(sort=[("created_at", "desc")])
        stmt = select(Volume).where(Volume.deleted.is_(False))
        if not (who.admin and f.all_projects):
            stmt = stmt.where(Volume.project_id == who.project_id)
        elif f.project_id:
            stmt = stmt.where(Volume.project_id == f.project_id)
        for column, value in ((Volume.name, f.name), (Volume.status, f.status),
                              (Volume.availability_zone, f.availability_zone), (Volume.bootable, f.bootable),
                              (Volume.group_id, f.group_id)):
            if value is not None:
                stmt = stmt.where(column == value)
        async with self.db.session() as s:
            marker = None
            if q.marker:
                marker = await s.get(Volume, q.marker)
                if marker is None or marker.deleted or (not who.admin and marker.project_id != who.project_id):
                    raise NotFound(f"Marker {q.marker} could not be found.")
            if f.metadata:  # few volumes per project: the JSON column is matched here, not in SQL
                rows = [r for r in (await s.execute(apply(stmt, Volume, ListQuery(sort=q.sort), marker))).scalars()
                        if all((r.meta or {}).get(k) == v for k, v in f.metadata.items())][offset:]
                rows = rows[:q.limit] if q.limit is not None else rows
            else:
                rows = list((await s.execute(apply(stmt, Volume, q, marker).offset(offset or None))).scalars())
            names = await self._type_names(s, {r.volume_type_id for r in rows})
            attached = await self._attachments_of(s, [r.id for r in rows])
        return [_volume_info(r, names.get(r.volume_type_id or ""), attached.get(r.id, ())) for r in rows]

    async def create_volume(self, who: Caller, size: int | None, *, name: str | None = None,
                            description: str | None = None, volume_type: str | None = None,
                            availability_zone: str | None = None, metadata: dict[str, str] | None = None,
                            snapshot_id: str | None = None, source_volid: str | None = None,
                            image_id: str | None = None, token: str = "", multiattach: bool = False,
                            group_id: str | None = None) -> VolumeInfo:
        """Write the volume in ``creating`` (within the project's quota, counted in its turn) and
        send its making to an agent; the agent's report makes it ``available``.  A volume from an
        image is downloaded by the agent with ``token`` (the caller's) and is bootable."""
        zone = availability_zone or self.cfg.volume.availability_zone
        if zone != self.cfg.volume.availability_zone:
            raise BadRequest(f"Availability zone '{zone}' is invalid.")
        source_host: str | None = None
        origin: VolumeInfo | None = None  # the volume copied (itself, or a snapshot's): its bootable flag carries over
        if snapshot_id:
            snap = await self.snapshot(snapshot_id, who)
            if snap.status != "available":
                raise BadRequest(f"Originating snapshot status must be one of 'available' values (it is "
                                 f"{snap.status}).")
            size = size or snap.size
            if size < snap.size:
                raise BadRequest(f"Volume size '{size}'GB cannot be smaller than the snapshot size {snap.size}GB. "
                                 "They must be >= original snapshot size.")
            origin = await self.volume(snap.volume_id, Caller(who.project_id, who.user_id, True))
            source_host = origin.host
        if source_volid:
            src = await self.volume(source_volid, who)
            if src.status not in ("available", "in-use"):
                raise BadRequest(f"Source volume status must be available or in-use (it is {src.status}).")
            size = size or src.size
            if size < src.size:
                raise BadRequest(f"Volume size '{size}'GB cannot be smaller than the source volume size "
                                 f"{src.size}GB. They must be >= original volume size.")
            source_host, origin = src.host, src
        image_meta: dict[str, str] | None = None
        if image_id:
            size, image_meta = await self._image_size(image_id, who, size)
        elif origin is not None and origin.image_meta:  # Cinder copies the image's metadata along
            image_meta = dict(origin.image_meta)
        if not size or size < 1:
            raise BadRequest(f"Invalid input received: Volume size '{size}' must be an integer and greater than 0.")
        if group_id and not volume_type:
            raise BadRequest("Invalid input received: volume_type must be provided when creating a volume in a group.")
        vtype = await (self.volume_type(volume_type, who) if volume_type else self.default_type())
        if vtype.encrypted:
            raise BadRequest(f"Volume type {vtype.name} is encrypted, and this cloud runs no key manager to hold "
                             "the volumes' keys: use an unencrypted type.")
        group_host = await self.group_host_for_volume(who, group_id, vtype.id) if group_id else None
        now = utcnow()
        row = Volume(id=str(uuid.uuid4()), name=name, description=description, size=size, status="creating",
                     attach_status="detached", project_id=who.project_id, user_id=who.user_id,
                     availability_zone=zone, volume_type_id=vtype.id, multiattach=multiattach,
                     meta=dict(metadata or {}), snapshot_id=snapshot_id, source_volid=source_volid,
                     image_id=image_id, image_meta=image_meta,
                     bootable=bool(image_id) or bool(origin and origin.bootable), lease_owner=self.instance,
                     lease_until=now + self.lease, created_at=now, updated_at=now, group_id=group_id or None)
        unmet = unmet_capabilities(vtype.extra_specs)
        row.host = None if unmet else source_host or group_host or await self._pick_pool(size)
        if row.host is None:  # Cinder's answer too: the volume exists, in error, saying why
            row.status, row.lease_owner, row.lease_until = "error", None, None
            row.fault = (f"No valid backend was found: volume type {vtype.name} asks for {unmet}, which no pool "
                         "offers." if unmet else
                         f"No valid backend was found: no volume pool that is up has room for {size} GiB.")
            LOG.warning("volume %s failed: %s", row.id, row.fault)
        async with turn(self.db, f"volume:{who.project_id}"):
            await self._check_quota(who.project_id, "volumes", size, vtype.name)
            async with self.db.session() as s:
                s.add(row)
                if row.host is None:
                    self._add_message(s, row.project_id, row.id, "create", row.fault or "")
        if row.host is not None:
            await self._send_create(row, row.host, token)
        return _volume_info(row, vtype.name)

    async def _image_size(self, image_id: str, who: Caller, size: int | None) -> tuple[int, dict[str, str]]:
        """The volume's size for an image: the asked one, at least the image's (its data and its
        min_disk), or that when none is asked; and the image's metadata as the volume will carry
        it (the agent adds the checksum and formats it reads)."""
        if self.images is None or not self.image_url:
            raise BadRequest("Creating a volume from an image needs the image service, which this cloud does not run.")
        image = await self.images.image_info(image_id, ImageCaller(who.project_id, who.admin, who.user_id))
        if image.status != "active":
            raise BadRequest(f"Image {image_id} is not active (it is {image.status}).")
        need = max(image.min_disk, -(-(image.size or 0) // GiB), 1)
        if size is not None and size < need:
            raise BadRequest(f"Image {image_id} needs a volume of at least {need} GiB; {size} GiB was asked.")
        meta = {k: str(v) for k, v in (image.properties or {}).items() if v is not None}
        meta.update({"image_id": image.id, "image_name": image.name or "", "min_disk": str(image.min_disk),
                     "min_ram": str(image.min_ram), "size": str(image.size or 0)})
        return size or need, meta

    @staticmethod
    def _unmet_capabilities(extra_specs: dict[str, str]) -> str:
        """``unmet_capabilities`` for the mixins (which cannot import this module)."""
        return unmet_capabilities(extra_specs)

    async def _pick_pool(self, size: int) -> str | None:
        """The up pool with most room for ``size`` GiB (a volume copied from another stays with it)."""
        fits = [p for p in await self.pools() if p.up and not p.disabled and not p.frozen and p.free_gb >= size]
        return max(fits, key=lambda p: p.free_gb).host if fits else None

    async def _send_create(self, row: Volume, host: str, token: str = "") -> None:
        source: dict[str, Any] | None = None
        if row.image_id:
            source = {"image_url": f"{self.image_url.rstrip('/')}/v2/images/{row.image_id}", "token": token}
        elif row.snapshot_id:
            source = {"snapshot_id": row.snapshot_id}
        elif row.source_volid:
            source = {"volume_id": row.source_volid}
        try:
            await self._cast(host, "create_volume", "create", {"volume_id": row.id, "size": row.size,
                                                               "source": source}, volume_id=row.id)
        except Exception as exc:  # the bus is down: the lease ends it if nobody answers
            LOG.warning("sending the create of volume %s to %s failed: %s", row.id, host, exc)

    async def _fail(self, volume_id: str, why: str, request_id: str | None = None) -> None:
        """The create failed: ``error``, its fault, and a user message saying why."""
        LOG.warning("volume %s failed: %s", volume_id, why)
        async with self.db.session() as s:
            moved = await s.execute(update(Volume).where(Volume.id == volume_id, Volume.status == "creating").values(
                status="error", fault=why, lease_owner=None, lease_until=None))
            project_id = (await s.execute(select(Volume.project_id).where(Volume.id == volume_id))).scalar()
            if moved.rowcount == 1 and project_id:
                self._add_message(s, project_id, volume_id, "create", why, request_id)

    async def _done_create(self, ctx: dict[str, Any], error: str | None, result: Any) -> None:
        if error:
            await self._fail(ctx["volume_id"], f"The volume could not be made on {ctx.get('host')}: {error}",
                             ctx.get("request_id"))
            return
        image = (result or {}).get("image") if isinstance(result, dict) else None
        async with self.db.session() as s:
            if isinstance(image, dict):  # what the agent read of the image: its checksum and formats
                row = await s.get(Volume, ctx["volume_id"])
                if row is not None and row.image_meta is not None:
                    row.image_meta = {**row.image_meta, **{k: str(image[k]) for k in (
                        "checksum", "disk_format", "container_format") if image.get(k) is not None}}
                    await s.flush()
            done = await s.execute(update(Volume).where(
                Volume.id == ctx["volume_id"], Volume.status == "creating", Volume.deleted.is_(False)).values(
                status="available", lease_owner=None, lease_until=None, fault=None))
        if done.rowcount != 1:  # deleted (or ended by the reconciler) meanwhile: the file must go
            async with self.db.session() as s:
                row = await s.get(Volume, ctx["volume_id"])
            if row is None or row.deleted or row.status == "error":
                await self._cast(ctx["host"], "delete_volume", "delete", {"volume_id": ctx["volume_id"]},
                                 volume_id=ctx["volume_id"], cleanup=True)

    async def update_volume(self, volume_id: str, who: Caller, values: dict[str, Any]) -> VolumeInfo:
        """Name, description and metadata (``values`` in the model's words: name, description, meta)."""
        async with self.db.session() as s:
            row = await self._row(s, volume_id, who)
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
        return await self.volume(volume_id, who)

    async def metadata(self, volume_id: str, who: Caller) -> dict[str, str]:
        return (await self.volume(volume_id, who)).metadata

    async def set_metadata(self, volume_id: str, who: Caller, metadata: dict[str, str],
                           replace: bool = False) -> dict[str, str]:
        """Merge ``metadata`` into the volume's (or replace it all)."""
        async with self.db.session() as s:
            row = await self._row(s, volume_id, who)
            row.meta = dict(metadata) if replace else {**(row.meta or {}), **metadata}
            row.updated_at = utcnow()
            return dict(row.meta)

    async def delete_metadata(self, volume_id: str, who: Caller, key: str) -> None:
        async with self.db.session() as s:
            row = await self._row(s, volume_id, who)
            meta = dict(row.meta or {})
            if key not in meta:
                raise NotFound(f"Volume {volume_id} has no metadata with key {key}.")
            del meta[key]
            row.meta = meta

    async def delete_volume(self, volume_id: str, who: Caller, cascade: bool = False) -> None:
        """Move the volume to ``deleting`` and have its agent remove the file; the report (or,
        with no host, this call) marks it deleted.  ``cascade`` deletes its snapshots first."""
        async with self.db.session() as s:
            row = await self._row(s, volume_id, who)
            snaps = list((await s.execute(select(Snapshot).where(
                Snapshot.volume_id == volume_id, Snapshot.deleted.is_(False)))).scalars())
        await self._assert_not_frozen(row.host)
        if row.attach_status != "detached" or row.status not in DELETABLE or row.group_id:
            raise BadRequest(f"Invalid volume: Volume status must be available or error or error_restoring or "
                             f"error_extending or error_managing and must not be migrating, attached, belong to "
                             f"a group, have snapshots or be disassociated from snapshots after volume transfer. "
                             f"(it is {row.status}).")
        if snaps and not cascade:
            raise BadRequest(f"Invalid volume: Volume {volume_id} still has {len(snaps)} dependent snapshots.")
        if any(snap.group_snapshot_id for snap in snaps):
            raise BadRequest(f"Invalid volume: Volume {volume_id} has snapshots of a group snapshot.")
        if any(snap.status not in ("available", "error") for snap in snaps):
            raise BadRequest(f"Invalid volume: a snapshot of volume {volume_id} is busy.")
        async with self.db.session() as s:
            moved = await s.execute(update(Volume).where(
                Volume.id == volume_id, Volume.deleted.is_(False), Volume.status.in_(DELETABLE)).values(
                status="deleting", lease_owner=self.instance, lease_until=utcnow() + self.lease))
        if moved.rowcount != 1:
            raise BadRequest(f"Invalid volume: Volume {volume_id} is busy.")
        for snap in snaps:
            await self._begin_snapshot_delete(snap.id, snap.host or row.host)
        await self._send_delete(volume_id, row.host)

    async def _send_delete(self, volume_id: str, host: str | None) -> None:
        if host is None:  # never made anywhere (no pool had room): nothing to remove
            await self._deleted(volume_id)
            return
        try:
            await self._cast(host, "delete_volume", "delete", {"volume_id": volume_id}, volume_id=volume_id)
        except Exception as exc:  # the reconciler sends it again when the lease ends
            LOG.warning("sending the delete of volume %s to %s failed: %s", volume_id, host, exc)

    async def _deleted(self, volume_id: str) -> None:
        async with self.db.session() as s:
            await s.execute(update(Volume).where(Volume.id == volume_id).values(
                status="deleted", deleted=True, deleted_at=utcnow(), lease_owner=None, lease_until=None))

    async def _done_delete(self, ctx: dict[str, Any], error: str | None, result: Any) -> None:
        if ctx.get("cleanup"):
            return
        if error:
            async with self.db.session() as s:
                await s.execute(update(Volume).where(Volume.id == ctx["volume_id"], Volume.status == "deleting")
                                .values(status="error_deleting", fault=error, lease_owner=None, lease_until=None))
            return
        await self._deleted(ctx["volume_id"])

    # -- snapshots -------------------------------------------------------------------------------
    async def _snapshot_row(self, s: Any, snapshot_id: str, who: Caller) -> Snapshot:
        row = await s.get(Snapshot, snapshot_id)
        if row is None or row.deleted or (not who.admin and row.project_id != who.project_id):
            raise NotFound(f"Snapshot {snapshot_id} could not be found.")
        return row

    async def snapshot(self, snapshot_id: str, who: Caller) -> SnapshotInfo:
        async with self.db.session() as s:
            return _snapshot_info(await self._snapshot_row(s, snapshot_id, who))

    async def snapshots(self, who: Caller, filters: VolumeFilters | None = None,
                        query: ListQuery | None = None, offset: int = 0) -> list[SnapshotInfo]:
        f = filters or VolumeFilters()
        q = query or ListQuery(sort=[("created_at", "desc")])
        stmt = select(Snapshot).where(Snapshot.deleted.is_(False))
        if not (who.admin and f.all_projects):
            stmt = stmt.where(Snapshot.project_id == who.project_id)
        elif f.project_id:
            stmt = stmt.where(Snapshot.project_id == f.project_id)
        for column, value in ((Snapshot.name, f.name), (Snapshot.status, f.status),
                              (Snapshot.volume_id, f.volume_id)):
            if value is not None:
                stmt = stmt.where(column == value)
        async with self.db.session() as s:
            marker = None
            if q.marker:
                marker = await s.get(Snapshot, q.marker)
                if marker is None or marker.deleted or (not who.admin and marker.project_id != who.project_id):
                    raise NotFound(f"Marker {q.marker} could not be found.")
            rows = list((await s.execute(apply(stmt, Snapshot, q, marker).offset(offset or None))).scalars())
        return [_snapshot_info(r) for r in rows]

    async def create_snapshot(self, who: Caller, volume_id: str, *, name: str | None = None,
                              description: str | None = None, metadata: dict[str, str] | None = None,
                              force: bool = False) -> SnapshotInfo:
        vol = await self.volume(volume_id, who)
        await self._assert_not_frozen(vol.host)
        allowed = ("available", "in-use") if force else ("available",)
        if vol.status not in allowed:
            raise BadRequest(f"Invalid volume: Volume {volume_id} status must be available"
                             f"{' or in-use' if force else ''}, but current status is: {vol.status}.")
        now = utcnow()
        row = Snapshot(id=str(uuid.uuid4()), volume_id=volume_id, name=name, description=description, size=vol.size,
                       status="creating", progress="0%", project_id=vol.project_id, user_id=who.user_id,
                       meta=dict(metadata or {}), host=vol.host, lease_owner=self.instance,
                       lease_until=now + self.lease, created_at=now, updated_at=now)
        async with turn(self.db, f"volume:{vol.project_id}"):
            await self._check_quota(vol.project_id, "snapshots", vol.size, vol.volume_type)
            async with self.db.session() as s:
                s.add(row)
        if vol.host is None:
            await self._fail_snapshot(row.id, "The volume has no pool.")
        else:
            try:
                # an attached volume (force) is read while its server may write to it: qemu-img's
                # force-share (-U) for now; QMP blockdev-snapshot-sync through compute is the real path
                await self._cast(vol.host, "create_snapshot", "snapshot", {
                    "snapshot_id": row.id, "volume_id": volume_id, "force_share": vol.status != "available"},
                    snapshot_id=row.id)
            except Exception as exc:
                LOG.warning("sending snapshot %s to %s failed: %s", row.id, vol.host, exc)
        return await self.snapshot(row.id, who)

    async def _fail_snapshot(self, snapshot_id: str, why: str) -> None:
        LOG.warning("snapshot %s failed: %s", snapshot_id, why)
        async with self.db.session() as s:
            await s.execute(update(Snapshot).where(Snapshot.id == snapshot_id, Snapshot.status == "creating")
                            .values(status="error", fault=why, lease_owner=None, lease_until=None))

    async def _done_snapshot(self, ctx: dict[str, Any], error: str | None, result: Any) -> None:
        if error:
            await self._fail_snapshot(ctx["snapshot_id"], error)
            return
        async with self.db.session() as s:
            await s.execute(update(Snapshot).where(Snapshot.id == ctx["snapshot_id"], Snapshot.status == "creating")
                            .values(status="available", progress="100%", lease_owner=None, lease_until=None))

    async def update_snapshot(self, snapshot_id: str, who: Caller, values: dict[str, Any]) -> SnapshotInfo:
        async with self.db.session() as s:
            row = await self._snapshot_row(s, snapshot_id, who)
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
        return await self.snapshot(snapshot_id, who)

    async def set_snapshot_metadata(self, snapshot_id: str, who: Caller, metadata: dict[str, str],
                                    replace: bool = False) -> dict[str, str]:
        async with self.db.session() as s:
            row = await self._snapshot_row(s, snapshot_id, who)
            row.meta = dict(metadata) if replace else {**(row.meta or {}), **metadata}
            row.updated_at = utcnow()
            return dict(row.meta)

    async def delete_snapshot_metadata(self, snapshot_id: str, who: Caller, key: str) -> None:
        async with self.db.session() as s:
            row = await self._snapshot_row(s, snapshot_id, who)
            meta = dict(row.meta or {})
            if key not in meta:
                raise NotFound(f"Snapshot {snapshot_id} has no metadata with key {key}.")
            del meta[key]
            row.meta = meta

    async def delete_snapshot(self, snapshot_id: str, who: Caller) -> None:
        async with self.db.session() as s:
            row = await self._snapshot_row(s, snapshot_id, who)
        await self._assert_not_frozen(row.host)
        if row.status not in ("available", "error", "error_deleting"):
            raise BadRequest(f"Invalid snapshot: Snapshot status must be available or error, but current status "
                             f"is: {row.status}.")
        if row.group_snapshot_id:  # it goes with its group snapshot
            raise BadRequest(f"Invalid snapshot: Snapshot {snapshot_id} must not be part of a group.")
        if not await self._begin_snapshot_delete(snapshot_id, row.host):
            raise BadRequest(f"Invalid snapshot: Snapshot {snapshot_id} is busy.")

    async def _begin_snapshot_delete(self, snapshot_id: str, host: str | None) -> bool:
        async with self.db.session() as s:
            moved = await s.execute(update(Snapshot).where(
                Snapshot.id == snapshot_id, Snapshot.deleted.is_(False),
                Snapshot.status.in_(("available", "error", "error_deleting", "deleting"))).values(
                status="deleting", lease_owner=self.instance, lease_until=utcnow() + self.lease))
        if moved.rowcount != 1:
            return False
        await self._send_snapshot_delete(snapshot_id, host)
        return True

    async def _send_snapshot_delete(self, snapshot_id: str, host: str | None) -> None:
        if host is None:
            await self._snapshot_deleted(snapshot_id)
            return
        try:
            await self._cast(host, "delete_snapshot", "snapshot_delete", {"snapshot_id": snapshot_id},
                             snapshot_id=snapshot_id)
        except Exception as exc:
            LOG.warning("sending the delete of snapshot %s to %s failed: %s", snapshot_id, host, exc)

    async def _snapshot_deleted(self, snapshot_id: str) -> None:
        async with self.db.session() as s:
            await s.execute(update(Snapshot).where(Snapshot.id == snapshot_id).values(
                status="deleted", deleted=True, deleted_at=utcnow(), lease_owner=None, lease_until=None))

    async def _done_snapshot_delete(self, ctx: dict[str, Any], error: str | None, result: Any) -> None:
        if ctx.get("cleanup"):
            return
        if error:
            async with self.db.session() as s:
                await s.execute(update(Snapshot).where(Snapshot.id == ctx["snapshot_id"],
                                                       Snapshot.status == "deleting").values(
                    status="error_deleting", fault=error, lease_owner=None, lease_until=None))
            return
        await self._snapshot_deleted(ctx["snapshot_id"])

    # -- the reconciler's half: what a lease left behind --------------------------------------------
    async def expired(self) -> tuple[list[tuple[str, str, str | None]], list[tuple[str, str, str | None]]]:
        """(id, status, host) of the volumes and of the snapshots whose transition's lease ran out."""
        now = utcnow()
        async with self.db.session() as s:
            volumes = (await s.execute(select(Volume.id, Volume.status, Volume.host).where(
                Volume.deleted.is_(False), Volume.lease_until.is_not(None), Volume.lease_until < now))).all()
            snaps = (await s.execute(select(Snapshot.id, Snapshot.status, Snapshot.host).where(
                Snapshot.deleted.is_(False), Snapshot.lease_until.is_not(None), Snapshot.lease_until < now))).all()
        return [tuple(v) for v in volumes], [tuple(x) for x in snaps]  # type: ignore[misc]

    async def end_expired(self) -> int:
        """End every transition whose lease ran out: a create or snapshot goes to error (its fault
        says why), a delete is sent again with a new lease.  Safe to run at any moment."""
        volumes, snaps = await self.expired()
        for volume_id, status, host in volumes:
            if status == "creating":
                await self._fail(volume_id, f"The volume agent {host or '(none)'} did not report the create "
                                 f"within {self.cfg.volume.operation_timeout:g} s.")
            elif status == "deleting":
                async with self.db.session() as s:
                    await s.execute(update(Volume).where(Volume.id == volume_id, Volume.status == "deleting")
                                    .values(lease_owner=self.instance, lease_until=utcnow() + self.lease))
                await self._send_delete(volume_id, host)
            elif await self.end_expired_action(volume_id, status, host):
                pass
            else:  # a transition this version does not know: drop the lease, keep the status
                async with self.db.session() as s:
                    await s.execute(update(Volume).where(Volume.id == volume_id).values(
                        lease_owner=None, lease_until=None))
        for snapshot_id, status, host in snaps:
            if status == "creating":
                await self._fail_snapshot(snapshot_id, f"The volume agent {host or '(none)'} did not report the "
                                          "snapshot in time.")
            elif status == "deleting":
                async with self.db.session() as s:
                    await s.execute(update(Snapshot).where(Snapshot.id == snapshot_id).values(
                        lease_owner=self.instance, lease_until=utcnow() + self.lease))
                await self._send_snapshot_delete(snapshot_id, host)
        await self.purge_messages()
        return len(volumes) + len(snaps)


def unmet_capabilities(extra_specs: dict[str, str]) -> str:
    """The first of a type's extra specs about a pool capability that the file pools do not meet,
    as ``key=value`` ("" when all are met).  Values as Cinder writes them: a plain value, ``<is>
    True``, ``<in> sub``, ``<or> a <or> b``; specs about other things are not the scheduler's."""
    for key, wanted in (extra_specs or {}).items():
        name = key.removeprefix("capabilities:")
        if name not in POOL_CAPABILITIES:
            continue
        have, words = POOL_CAPABILITIES[name], str(wanted).split()
        if words[:1] == ["<is>"]:
            ok = str(have).lower() == " ".join(words[1:]).lower()
        elif words[:1] == ["<in>"]:
            ok = " ".join(words[1:]).lower() in str(have).lower()
        elif words[:1] == ["<or>"]:
            ok = str(have).lower() in {w.lower() for w in words if w != "<or>"}
        else:
            ok = str(have).lower() == str(wanted).lower()
        if not ok:
            return f"{key}={wanted}"
    return ""


def _naive(stamp: str | None) -> dt.datetime | None:
    if not stamp:
        return None
    when = dt.datetime.fromisoformat(stamp)
    return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when


def _request_id() -> str:
    ctx = context.current.get()
    return ctx.request_id if ctx else f"req-{uuid.uuid4()}"
