"""Volume transfers, retype, and the storage services' freeze, thaw and migration checks: the
``VolumeService`` half of Cinder's os-volume-transfer and /volume-transfers (3.55), os-retype,
os-migrate_volume and os-services' freeze and thaw (it inherits ``TransfersMixin``).

* **A transfer** offers an ``available`` volume to whoever presents its auth key: one
  transaction writes the transfer and moves the volume to ``awaiting-transfer`` (a conditional
  UPDATE, so of two racing creates one wins); deleting the transfer puts it back to
  ``available``.  The key (16 hex digits, 64 random bits) is in the create's answer only: the row
  holds a random salt and the key's scrypt digest, compared in constant time.  An accept moves
  the volume (and its snapshots, unless ``no_snapshots``) to the accepting project in one
  transaction, within that project's quota (volumes, snapshots, gigabytes, per_volume_gigabytes),
  checked in the project's turn as a create is; the consumed transfer stays as history
  (``accepted``, ``destination_project_id``: 3.57).
* **Retype** on the file backend moves no data: every file pool offers the same capabilities, so
  a type whose capability specs the volume's pool meets is simply written (with the multiattach
  flag its specs give), and one it does not meet is refused in words, for any migration_policy:
  no other pool could meet it either.  The new type's own quotas (``volumes_<type>``, ...) count
  the volume and its snapshots from then on; a retype or an accept over them is a 413.
* **Freeze** marks a cinder-volume (its pool): the scheduler puts nothing new on it and its
  volumes and snapshots refuse management operations (delete, extend, snapshot create and
  delete, retype, migrate) with a 400 until it is thawed.
* **os-migrate_volume** is validated as Cinder does (an up, enabled destination pool other than
  the volume's own, no snapshots, not migrating); the data move itself (copying the qcow2 file
  between two storage nodes) is not done yet and is refused in words.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from cumulo.core.db import Database, utcnow
from cumulo.core.http.faults import BadRequest, NotFound, PayloadTooLarge
from cumulo.core.http.paging import ListQuery, apply
from cumulo.core.quota import turn
from cumulo.volume.info import Caller, PoolInfo, VolumeInfo, VolumeTypeInfo
from cumulo.volume.models import Pool, Snapshot, Volume, VolumeType
from cumulo.volume.transfer_models import VolumeTransfer

KEY_BYTES = 8  # 16 hex digits, as long as Cinder's default auth key
# scrypt's cost: about 16 MiB and a few tens of milliseconds per check, run off the event loop
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}
TRANSFER_SORT_KEYS = {"id", "created_at", "name", "volume_id"}
# what a volume's migration_status may be for a retype or a migration to start (Cinder's)
MIGRATION_IDLE = (None, "deleting", "error", "success", "none")
QUOTA_SERVICE = "block-storage"  # the service type identity's limits name (service.SERVICE_TYPE)
FROZEN = "Invalid input received: Modification operations are not allowed on frozen storage backends."


@dataclass(frozen=True)
class TransferInfo:
    """A transfer as the API shows it; ``auth_key`` only in the create's answer."""

    id: str
    volume_id: str
    name: str | None
    no_snapshots: bool
    source_project_id: str
    destination_project_id: str | None
    accepted: bool
    created_at: dt.datetime
    auth_key: str | None = None


def _transfer_info(row: VolumeTransfer, auth_key: str | None = None) -> TransferInfo:
    return TransferInfo(row.id, row.volume_id, row.name, bool(row.no_snapshots), row.source_project_id,
                        row.destination_project_id, bool(row.accepted), row.created_at, auth_key)


def _digest(auth_key: str, salt: bytes) -> str:
    return "scrypt$" + hashlib.scrypt(auth_key.encode(), salt=salt, **SCRYPT).hex()


def _pool_host(host: str) -> str:
    """The agent's host of a Cinder host string: ``node``, ``node@file`` or ``node@file#file``."""
    return host.split("#", 1)[0].split("@", 1)[0]


def multiattach_of(vtype: VolumeTypeInfo) -> bool:
    """Whether a type makes its volumes multiattach (its ``multiattach`` spec ``<is> True``)."""
    return str(vtype.extra_specs.get("multiattach", "")).lower().split() == ["<is>", "true"]


class TransfersMixin:
    """VolumeService's transfers, retype, freeze and migration checks (it inherits them)."""

    db: Database
    identity: Any  # identity's unified limits (the per-type quotas are read there)

    if TYPE_CHECKING:  # VolumeService's, which inherits this
        async def _row(self, s: Any, volume_id: str, who: Caller) -> Volume: ...
        async def volume(self, volume_id: str, who: Caller) -> VolumeInfo: ...
        async def volume_type(self, type_ref: str, who: Caller) -> VolumeTypeInfo: ...
        async def quota(self, project_id: str, name: str) -> int: ...
        async def usage(self, project_id: str) -> dict[str, int]: ...
        async def pools(self) -> list[PoolInfo]: ...
        @staticmethod
        def _unmet_capabilities(extra_specs: dict[str, str]) -> str: ...

    # -- freeze ------------------------------------------------------------------------------------
    async def _assert_not_frozen(self, host: str | None) -> None:
        """Refuse (400) a management operation on a volume or snapshot whose pool is frozen."""
        if host is None:
            return
        async with self.db.session() as s:
            frozen = (await s.execute(select(Pool.frozen).where(Pool.host == host))).scalar()
        if frozen:
            raise BadRequest(FROZEN)

    async def set_service_frozen(self, host: str, frozen: bool) -> None:
        """Freeze or thaw the cinder-volume on ``host`` (``node``, ``node@file`` or with its pool);
        an unknown host, or one already so, is a 400 as Cinder answers."""
        pool_host = _pool_host(host)
        backend = host.split("#", 1)[0].partition("@")[2]
        if backend not in ("", "file"):
            raise BadRequest(f"Invalid input received: Service {host} could not be found.")
        async with self.db.session() as s:
            moved = await s.execute(update(Pool).where(Pool.host == pool_host, Pool.frozen == (not frozen))
                                    .values(frozen=frozen))
            exists = moved.rowcount == 1 or (await s.execute(
                select(Pool.host).where(Pool.host == pool_host))).scalar() is not None
        if not exists:
            raise BadRequest(f"Invalid input received: Service {host} could not be found.")
        if moved.rowcount != 1:
            raise BadRequest(f"Invalid input received: the cinder-volume of {pool_host} is already "
                             f"{'frozen' if frozen else 'thawed'}.")

    # -- transfers ---------------------------------------------------------------------------------
    async def _transfer_row(self, s: Any, transfer_id: str, who: Caller | None) -> VolumeTransfer:
        """A pending transfer; ``who`` None: anyone's (an accept), else only one of a volume of
        the caller's project (or any, for an admin), else 404 as Cinder hides them."""
        row = await s.get(VolumeTransfer, transfer_id)
        if row is None or row.deleted:
            raise NotFound(f"Transfer {transfer_id} could not be found.")
        owner = (await s.execute(select(Volume.project_id).where(Volume.id == row.volume_id,
                                                                  Volume.deleted.is_(False)))).scalar()
        if owner is None or (who is not None and not who.admin and owner != who.project_id):
            raise NotFound(f"Transfer {transfer_id} could not be found.")
        return row

    async def transfer(self, transfer_id: str, who: Caller) -> TransferInfo:
        async with self.db.session() as s:
            return _transfer_info(await self._transfer_row(s, transfer_id, who))

    async def transfers(self, who: Caller, all_projects: bool = False, name: str | None = None,
                        query: ListQuery | None = None, offset: int = 0) -> list[TransferInfo]:
        """The pending transfers of the caller's project's volumes (an admin's ``all_projects``:
        everyone's), oldest first unless sorted otherwise, paged past ``query.marker``."""
        q = query or ListQuery(sort=[("created_at", "asc")])
        stmt = select(VolumeTransfer).join(Volume, Volume.id == VolumeTransfer.volume_id).where(
            VolumeTransfer.deleted.is_(False), Volume.deleted.is_(False))  # an admin may force-delete a volume
        if not (who.admin and all_projects):
            stmt = stmt.where(Volume.project_id == who.project_id)
        if name is not None:
            stmt = stmt.where(VolumeTransfer.name == name)
        async with self.db.session() as s:
            marker = None
            if q.marker:
                try:
                    marker = await self._transfer_row(s, q.marker, who)
                except NotFound:
                    raise NotFound(f"Marker {q.marker} could not be found.") from None
            rows = list((await s.execute(apply(stmt, VolumeTransfer, q, marker).offset(offset or None))).scalars())
        return [_transfer_info(r) for r in rows]

    async def create_transfer(self, who: Caller, volume_id: str, name: str | None = None,
                              no_snapshots: bool = False) -> TransferInfo:
        """Offer an available volume (and its snapshots, which must then all be available); the
        answer carries the auth key, which is never shown again."""
        async with self.db.session() as s:
            vol = await self._row(s, volume_id, who)
            snaps = list((await s.execute(select(Snapshot.id, Snapshot.status).where(
                Snapshot.volume_id == volume_id, Snapshot.deleted.is_(False)))).all())
        if vol.status != "available":
            raise BadRequest(f"Invalid volume: the volume must be available to be transferred (it is "
                             f"{vol.status}).")
        if vol.group_id:  # Cinder's accept refuses a grouped volume; refusing it here keeps it usable
            raise BadRequest(f"Invalid volume: volume {volume_id} belongs to group {vol.group_id}; remove it from "
                             "the group to transfer it.")
        if not no_snapshots:
            for snap_id, status in snaps:
                if status != "available":
                    raise BadRequest(f"Invalid snapshot: snapshot {snap_id} of the volume must be available to be "
                                     f"transferred with it (it is {status}).")
        auth_key, salt = secrets.token_hex(KEY_BYTES), secrets.token_bytes(16)
        now = utcnow()
        row = VolumeTransfer(id=str(uuid.uuid4()), volume_id=volume_id, name=name, salt=salt.hex(),
                             crypt_hash=await asyncio.to_thread(_digest, auth_key, salt), no_snapshots=no_snapshots,
                             source_project_id=vol.project_id, destination_project_id=None, accepted=False,
                             created_at=now, updated_at=now, deleted=False)
        async with self.db.session() as s:
            moved = await s.execute(update(Volume).where(
                Volume.id == volume_id, Volume.deleted.is_(False), Volume.status == "available").values(
                status="awaiting-transfer", updated_at=now))
            if moved.rowcount != 1:
                raise BadRequest(f"Invalid volume: volume {volume_id} is no longer available to be transferred.")
            s.add(row)
        return _transfer_info(row, auth_key)

    async def delete_transfer(self, transfer_id: str, who: Caller) -> None:
        """Withdraw the offer: the volume is available again (if it is still awaiting it)."""
        async with self.db.session() as s:
            row = await self._transfer_row(s, transfer_id, who)
            ended = await s.execute(update(VolumeTransfer).where(
                VolumeTransfer.id == row.id, VolumeTransfer.deleted.is_(False)).values(
                deleted=True, deleted_at=utcnow()))
            if ended.rowcount != 1:
                raise NotFound(f"Transfer {transfer_id} could not be found.")
            await s.execute(update(Volume).where(Volume.id == row.volume_id, Volume.status == "awaiting-transfer")
                            .values(status="available", updated_at=utcnow()))

    async def accept_transfer(self, transfer_id: str, who: Caller, auth_key: str) -> TransferInfo:
        """Take the volume into the caller's project with the key; its snapshots come too unless
        the transfer says ``no_snapshots``.  A wrong key is a 400, the quota a 413."""
        async with self.db.session() as s:
            row = await self._transfer_row(s, transfer_id, None)
        good = await asyncio.to_thread(_digest, str(auth_key), bytes.fromhex(row.salt))
        if not hmac.compare_digest(good, row.crypt_hash):
            raise BadRequest(f"Invalid auth key: the key given does not open transfer {transfer_id}.")
        async with self.db.session() as s:
            vol = await s.get(Volume, row.volume_id)
            snaps = [] if row.no_snapshots else list((await s.execute(
                select(Snapshot.id, Snapshot.size, Snapshot.status).where(
                    Snapshot.volume_id == row.volume_id, Snapshot.deleted.is_(False)))).all())
        if vol is None or vol.deleted or vol.status != "awaiting-transfer":
            raise BadRequest(f"Invalid volume: the volume of transfer {transfer_id} is not awaiting a transfer "
                             f"(it is {'deleted' if vol is None or vol.deleted else vol.status}).")
        busy = [snap_id for snap_id, _, status in snaps if status != "available"]
        if busy:
            raise BadRequest(f"Invalid snapshot: snapshot {busy[0]} of the volume is not available, so the volume "
                             "cannot be transferred with its snapshots.")
        async with turn(self.db, f"volume:{who.project_id}"):
            if who.project_id != vol.project_id:  # the same project gains nothing
                await self._check_transfer_quota(who.project_id, vol.size, [size for _, size, _ in snaps])
                await self._check_type_quota(who.project_id, vol.volume_type_id, 1, len(snaps),
                                             vol.size + sum(size for _, size, _ in snaps))
            async with self.db.session() as s:
                taken = await s.execute(update(VolumeTransfer).where(
                    VolumeTransfer.id == row.id, VolumeTransfer.deleted.is_(False)).values(
                    deleted=True, deleted_at=utcnow(), accepted=True, destination_project_id=who.project_id))
                if taken.rowcount != 1:
                    raise NotFound(f"Transfer {transfer_id} could not be found.")
                moved = await s.execute(update(Volume).where(
                    Volume.id == vol.id, Volume.deleted.is_(False), Volume.status == "awaiting-transfer").values(
                    project_id=who.project_id, user_id=who.user_id, status="available", updated_at=utcnow()))
                if moved.rowcount != 1:
                    raise BadRequest(f"Invalid volume: volume {vol.id} stopped awaiting its transfer.")
                if snaps:
                    ids = [snap_id for snap_id, _, _ in snaps]
                    carried = await s.execute(update(Snapshot).where(
                        Snapshot.id.in_(ids), Snapshot.deleted.is_(False), Snapshot.status == "available").values(
                        project_id=who.project_id, user_id=who.user_id, updated_at=utcnow()))
                    if carried.rowcount != len(ids):
                        raise BadRequest("Invalid snapshot: a snapshot of the volume changed while it was being "
                                         "transferred; nothing was moved.")
                row.accepted, row.destination_project_id = True, who.project_id
                return _transfer_info(row)

    async def _check_transfer_quota(self, project_id: str, size: int, snapshot_sizes: list[int]) -> None:
        """Refuse (413) a volume of ``size`` GiB and its snapshots over ``project_id``'s quota; the
        caller holds the project's turn."""
        per_volume = await self.quota(project_id, "per_volume_gigabytes")
        if 0 <= per_volume < size:
            raise PayloadTooLarge(f"Requested volume size {size}G is larger than maximum allowed limit {per_volume}G.")
        used = await self.usage(project_id)
        for kind, more in (("volumes", 1), ("snapshots", len(snapshot_sizes))):
            limit = await self.quota(project_id, kind)
            if more and 0 <= limit < used[kind] + more:
                raise PayloadTooLarge(f"Maximum number of {kind} allowed ({limit}) exceeded for quota '{kind}'.")
        wanted = size + sum(snapshot_sizes)
        gigabytes = await self.quota(project_id, "gigabytes")
        if 0 <= gigabytes < used["gigabytes"] + wanted:
            raise PayloadTooLarge(f"Requested volume or snapshot exceeds allowed gigabytes quota. Requested "
                                  f"{wanted}G, quota is {gigabytes}G and {used['gigabytes']}G has been consumed.")

    async def _check_type_quota(self, project_id: str, type_id: str | None, volumes: int, snapshots: int,
                                gigabytes: int) -> None:
        """Refuse (413) what would take ``project_id`` over a volume type's own quotas
        (``volumes_<type>``, ``snapshots_<type>``, ``gigabytes_<type>``: unlimited unless set); the
        caller holds the project's turn."""
        async with self.db.session() as s:
            type_name = (await s.execute(select(VolumeType.name).where(VolumeType.id == type_id))).scalar()
        if type_name is None:
            return
        used = await self.usage(project_id)
        for name, more in ((f"volumes_{type_name}", volumes), (f"snapshots_{type_name}", snapshots),
                           (f"gigabytes_{type_name}", gigabytes)):
            limit = await self.identity.limit(project_id, QUOTA_SERVICE, name) if more else None
            if limit is not None and 0 <= limit < used.get(name, 0) + more:
                raise PayloadTooLarge(f"Quota exceeded for {name}: the volume type {type_name} allows {limit} in "
                                      f"this project and {used.get(name, 0)} is used.")

    # -- retype ------------------------------------------------------------------------------------
    async def retype_volume(self, who: Caller, volume_id: str, new_type: str,
                            migration_policy: str | None = None) -> VolumeInfo:
        """Give the volume another type (by id or name) without moving its data, if its pool
        offers what the type asks; an in-use volume too, unless the multiattach flag would change."""
        async with self.db.session() as s:
            row = await self._row(s, volume_id, who)
        vtype = await self.volume_type(new_type, who)
        await self._assert_not_frozen(row.host)
        if vtype.id == row.volume_type_id:
            raise BadRequest(f"Invalid volume: volume {volume_id} already has type {vtype.name}; a retype needs "
                             "another type.")
        if row.status not in ("available", "in-use") or row.migration_status not in MIGRATION_IDLE or row.group_id:
            raise BadRequest(f"Invalid volume: a retype needs the volume available or in-use, not migrating and in "
                             f"no group (it is {row.status}, migration status {row.migration_status}"
                             f"{', group ' + row.group_id if row.group_id else ''}).")
        multiattach = multiattach_of(vtype)
        if multiattach != row.multiattach and row.status != "available":
            raise BadRequest(f"Invalid input received: a retype that changes multiattach (type {vtype.name}) needs "
                             f"the volume available (it is {row.status}).")
        unmet = self._unmet_capabilities(vtype.extra_specs)
        if unmet:
            raise BadRequest(f"Invalid volume: no storage pool offers {unmet}, which volume type {vtype.name} asks "
                             f"for (migration_policy {migration_policy or 'never'}); the volume keeps its type.")
        # the new type's own quotas count the volume and its snapshots from now on (in the
        # project's turn); one conditional UPDATE: the volume must still be as it was checked (a
        # retype that changes multiattach only while available), so a racing attach or retype is
        # never overridden
        statuses = ("available", "in-use") if multiattach == row.multiattach else ("available",)
        async with turn(self.db, f"volume:{row.project_id}"):
            async with self.db.session() as s:
                snaps = (await s.execute(select(func.count(), func.coalesce(func.sum(Snapshot.size), 0)).where(
                    Snapshot.volume_id == volume_id, Snapshot.deleted.is_(False)))).one()
            await self._check_type_quota(row.project_id, vtype.id, 1, int(snaps[0]), row.size + int(snaps[1]))
            async with self.db.session() as s:
                moved = await s.execute(update(Volume).where(
                    Volume.id == volume_id, Volume.deleted.is_(False), Volume.status.in_(statuses),
                    Volume.multiattach == row.multiattach, func.coalesce(Volume.volume_type_id, "") != vtype.id)
                    .values(volume_type_id=vtype.id, multiattach=multiattach, updated_at=utcnow()))
        if moved.rowcount != 1:
            raise BadRequest(f"Invalid volume: volume {volume_id} changed while it was being retyped; try again.")
        return await self.volume(volume_id, who)

    # -- migration ---------------------------------------------------------------------------------
    async def migrate_volume(self, volume_id: str, host: str | None, cluster: str | None = None,
                             force_host_copy: bool = False, lock_volume: bool = False) -> None:
        """An admin's os-migrate_volume: validated as Cinder validates it; the copy of the data to
        another storage node is not done yet, so a valid request is refused in words too."""
        admin = Caller("", "", True)
        async with self.db.session() as s:
            row = await self._row(s, volume_id, admin)
            snapshots = (await s.execute(select(func.count()).select_from(Snapshot).where(
                Snapshot.volume_id == volume_id, Snapshot.deleted.is_(False)))).scalar()
        if cluster:
            raise BadRequest(f"Invalid host: No available service named '{cluster}' (this cloud has no clusters).")
        if not host:
            raise BadRequest("Invalid input received: os-migrate_volume needs a host.")
        backend = host.split("#", 1)[0].partition("@")[2]
        target = next((p for p in await self.pools() if p.host == _pool_host(host) and p.up and not p.disabled
                       and backend in ("", "file")), None)
        if target is None:
            raise BadRequest(f"Invalid host: No available service named '{host}' (no cinder-volume that is up and "
                             "enabled has that host).")
        await self._assert_not_frozen(row.host)
        if (row.status not in ("available", "in-use") or row.migration_status not in MIGRATION_IDLE or snapshots
                or row.group_id or target.host == row.host):
            raise BadRequest(f"Invalid volume: volume {volume_id} must be available or in-use, not migrating, "
                             f"without snapshots, in no group, and the destination must be another host than its own "
                             f"({row.host}@file).")
        raise BadRequest(f"Invalid volume: migrating volume {volume_id} from {row.host} to {target.host} would copy "
                         "its file between two storage nodes, which this cloud does not do yet; back it up and "
                         "restore the backup instead.")
