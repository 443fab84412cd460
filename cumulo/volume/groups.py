"""Generic volume groups: the ``VolumeService`` half of Cinder's /group_types (3.11), /groups
(3.13-3.20) and /group_snapshots (3.14-3.19); ``VolumeService`` inherits ``GroupsMixin``.

* A **group type** is a name and its group specs; volume types stay what the volumes are made of.
* A **group** (``volume_group``) holds volumes of the volume types it names, all on one pool: its
  ``host``, picked when it is made (a file pool needs nothing else, so a plain create is
  ``available`` at once; no pool up: ``error``).  A volume joins at its create (``group_id``) or by
  ``update_group(add_volumes)``, and leaves by ``remove_volumes``; a member volume is not deleted
  on its own, only with its group (``delete-volumes``).  Quota ``groups`` in the project's turn.
* A **group snapshot** is one ``volume_snapshot`` per member, made by the members' agent as any
  snapshot is (the same ``create_snapshot`` cast and report) and each naming it; it is
  ``available`` when all of them are, ``error`` when one failed (once none is still creating).
  A member snapshot is deleted only with its group snapshot.
* **create-from-src** makes a group and one volume per member of the source: from each member
  snapshot of a group snapshot, or a copy of each volume of a source group, on the source's pool.
  The group is ``creating`` until all of them are available (``error`` if one is not).

Transitions (a group ``creating`` or ``deleting``, a group snapshot ``creating`` or ``deleting``)
follow their members, whose own leases end them; each holds a lease too.  The agents' reports on
members settle them at once (``group_member_reported``), and the reconciler's pass
(``end_expired_groups``) settles any it finds and ends one whose lease ran out.  Replication
(enable, disable, failover, list targets) is refused in words: the file pools do not replicate.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update

from cumulo.core.bus import Bus
from cumulo.core.config import Config
from cumulo.core.db import Database, IntegrityError, is_duplicate, utcnow
from cumulo.core.http.faults import BadRequest, Conflict, NotFound, PayloadTooLarge
from cumulo.core.http.paging import ListQuery, apply
from cumulo.core.quota import turn
from cumulo.volume.group_models import Group, GroupSnapshot, GroupType
from cumulo.volume.info import Caller
from cumulo.volume.models import Snapshot, Volume

LOG = logging.getLogger(__name__)

GROUP_TYPE_SORT_KEYS = {"id", "name", "description", "is_public", "created_at", "updated_at"}
GROUP_SORT_KEYS = {"id", "name", "status", "availability_zone", "group_type_id", "project_id", "created_at",
                   "updated_at"}
GROUP_SNAPSHOT_SORT_KEYS = {"id", "name", "status", "group_id", "group_type_id", "project_id", "created_at",
                            "updated_at"}
# Cinder's: what os-reset_status may set a group or a group snapshot to (GroupSnapshotStatus.ALL)
RESET_STATUSES = ("error", "available", "creating", "deleting", "deleted", "updating", "error_deleting")
ADDABLE = ("available", "in-use")  # a volume added to a group
REMOVABLE = ("available", "in-use", "error", "error_deleting")  # a volume removed from one
SNAPSHOTTABLE = ("available", "in-use")
# a member volume a group's delete-volumes may delete
MEMBER_DELETABLE = ("available", "error", "error_restoring", "error_extending", "error_managing", "error_deleting",
                    "deleting")


@dataclass(frozen=True)
class GroupTypeInfo:
    id: str
    name: str
    description: str | None
    is_public: bool
    group_specs: dict[str, Any]


@dataclass(frozen=True)
class GroupInfo:
    id: str
    name: str | None
    description: str | None
    status: str
    project_id: str
    user_id: str
    availability_zone: str
    group_type_id: str
    volume_type_ids: list[str]
    host: str | None
    group_snapshot_id: str | None
    source_group_id: str | None
    replication_status: str
    created_at: dt.datetime
    updated_at: dt.datetime
    volume_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GroupSnapshotInfo:
    id: str
    group_id: str
    group_type_id: str
    name: str | None
    description: str | None
    status: str
    project_id: str
    user_id: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass
class GroupFilters:
    all_projects: bool = False
    project_id: str | None = None
    name: str | None = None
    status: str | None = None
    group_id: str | None = None  # group snapshots: those of one group


def _type_info(row: GroupType) -> GroupTypeInfo:
    return GroupTypeInfo(row.id, row.name, row.description, row.is_public, dict(row.group_specs or {}))


def _group_info(row: Group, volume_ids: list[str] | None = None) -> GroupInfo:
    return GroupInfo(row.id, row.name, row.description, row.status, row.project_id, row.user_id,
                     row.availability_zone, row.group_type_id, list(row.volume_type_ids or []), row.host,
                     row.group_snapshot_id, row.source_group_id, row.replication_status, row.created_at,
                     row.updated_at, volume_ids or [])


def _snap_info(row: GroupSnapshot) -> GroupSnapshotInfo:
    return GroupSnapshotInfo(row.id, row.group_id, row.group_type_id, row.name, row.description, row.status,
                             row.project_id, row.user_id, row.created_at, row.updated_at)


def _ids(text: str | None) -> list[str]:
    """Cinder's comma-separated volume ids ("a,b,"), in order, without blanks or repeats."""
    out: list[str] = []
    for part in (text or "").split(","):
        part = part.strip()
        if part and part not in out:
            out.append(part)
    return out


class GroupsMixin:
    """VolumeService's group methods (they use its database, bus, quotas, pools, volumes, snapshots)."""

    cfg: Config
    db: Database
    bus: Bus
    instance: str
    lease: dt.timedelta

    # -- group types ----------------------------------------------------------------------------
    async def group_types(self, who: Caller, is_public: bool | None = True,
                          query: ListQuery | None = None) -> list[GroupTypeInfo]:
        """The public types (an admin: those of ``is_public``, all when None)."""
        q = query or ListQuery(sort=[("created_at", "desc")])
        stmt = select(GroupType)
        if not who.admin:
            stmt = stmt.where(GroupType.is_public.is_(True))
        elif is_public is not None:
            stmt = stmt.where(GroupType.is_public.is_(is_public))
        async with self.db.session() as s:
            marker = await s.get(GroupType, q.marker) if q.marker else None
            if q.marker and marker is None:
                raise NotFound(f"Marker {q.marker} could not be found.")  # Cinder's MarkerNotFound
            rows = (await s.execute(apply(stmt, GroupType, q, marker))).scalars().all()
        return [_type_info(r) for r in rows]

    async def _group_type_row(self, s: Any, ref: str, who: Caller) -> GroupType:
        row = await s.get(GroupType, ref)
        if row is None:
            row = (await s.execute(select(GroupType).where(GroupType.name == ref))).scalar()
        if row is None or not (row.is_public or who.admin):
            raise NotFound(f"Group type {ref} could not be found.")
        return row  # type: ignore[no-any-return]

    async def group_type(self, ref: str, who: Caller) -> GroupTypeInfo:
        """A group type by id or name (404 when the caller may not see it)."""
        async with self.db.session() as s:
            return _type_info(await self._group_type_row(s, ref, who))

    async def create_group_type(self, name: str, description: str | None = None, is_public: bool = True,
                                group_specs: dict[str, Any] | None = None) -> GroupTypeInfo:
        now = utcnow()
        row = GroupType(id=str(uuid.uuid4()), name=name, description=description, is_public=is_public,
                        group_specs=dict(group_specs or {}), created_at=now, updated_at=now)
        try:
            async with self.db.session() as s:
                s.add(row)
        except IntegrityError as exc:
            if is_duplicate(exc):
                raise Conflict(f"Group Type {name} already exists.") from None
            raise
        return _type_info(row)

    async def update_group_type(self, type_id: str, values: dict[str, Any]) -> GroupTypeInfo:
        try:
            async with self.db.session() as s:
                row = await s.get(GroupType, type_id)
                if row is None:
                    raise NotFound(f"Group type {type_id} could not be found.")
                for key, value in values.items():
                    setattr(row, key, value)
                row.updated_at = utcnow()
                await s.flush()
                return _type_info(row)
        except IntegrityError as exc:
            if is_duplicate(exc):
                raise Conflict(f"Group Type {values.get('name')} already exists.") from None
            raise

    async def delete_group_type(self, type_id: str) -> None:
        async with self.db.session() as s:
            row = await s.get(GroupType, type_id)
            if row is None:
                raise NotFound(f"Group type {type_id} could not be found.")
            used = (await s.execute(select(func.count()).select_from(Group).where(
                Group.group_type_id == type_id, Group.deleted.is_(False)))).scalar()
            if used:
                raise BadRequest("Target group type is still in use.")
            await s.delete(row)

    async def set_group_specs(self, type_id: str, specs: dict[str, Any]) -> dict[str, Any]:
        async with self.db.session() as s:
            row = await s.get(GroupType, type_id)
            if row is None:
                raise NotFound(f"Group type {type_id} could not be found.")
            row.group_specs = {**(row.group_specs or {}), **specs}
            row.updated_at = utcnow()
            return dict(row.group_specs)

    async def delete_group_spec(self, type_id: str, key: str) -> None:
        async with self.db.session() as s:
            row = await s.get(GroupType, type_id)
            if row is None:
                raise NotFound(f"Group type {type_id} could not be found.")
            specs = dict(row.group_specs or {})
            if key not in specs:
                raise NotFound(f"Group Type {type_id} has no specs with key {key}.")
            del specs[key]
            row.group_specs = specs

    # -- reading groups and group snapshots --------------------------------------------------------
    async def _group_row(self, s: Any, group_id: str, who: Caller) -> Group:
        row = await s.get(Group, group_id)
        if row is None or row.deleted or (not who.admin and row.project_id != who.project_id):
            raise NotFound(f"Group {group_id} could not be found.")
        return row  # type: ignore[no-any-return]

    async def _members(self, s: Any, group_ids: list[str]) -> dict[str, list[Volume]]:
        if not group_ids:
            return {}
        rows = (await s.execute(select(Volume).where(Volume.group_id.in_(group_ids), Volume.deleted.is_(False))
                                .order_by(Volume.created_at, Volume.id))).scalars()
        out: dict[str, list[Volume]] = {}
        for vol in rows:
            out.setdefault(vol.group_id, []).append(vol)
        return out

    async def group(self, group_id: str, who: Caller) -> GroupInfo:
        async with self.db.session() as s:
            row = await self._group_row(s, group_id, who)
            members = (await self._members(s, [row.id])).get(row.id, [])
        return _group_info(row, [v.id for v in members])

    async def groups(self, who: Caller, filters: GroupFilters | None = None, query: ListQuery | None = None,
                     offset: int = 0) -> list[GroupInfo]:
        f = filters or GroupFilters()
        q = query or ListQuery(sort=[("created_at", "desc")])
        stmt = select(Group).where(Group.deleted.is_(False))
        if not (who.admin and f.all_projects):
            stmt = stmt.where(Group.project_id == who.project_id)
        elif f.project_id:
            stmt = stmt.where(Group.project_id == f.project_id)
        for column, value in ((Group.name, f.name), (Group.status, f.status)):
            if value is not None:
                stmt = stmt.where(column == value)
        async with self.db.session() as s:
            marker = None
            if q.marker:
                marker = await s.get(Group, q.marker)
                if marker is None or marker.deleted or (not who.admin and marker.project_id != who.project_id):
                    raise NotFound(f"Marker {q.marker} could not be found.")  # Cinder's MarkerNotFound
            rows = list((await s.execute(apply(stmt, Group, q, marker).offset(offset or None))).scalars())
            members = await self._members(s, [r.id for r in rows])
        return [_group_info(r, [v.id for v in members.get(r.id, [])]) for r in rows]

    async def _group_snapshot_row(self, s: Any, group_snapshot_id: str, who: Caller) -> GroupSnapshot:
        row = await s.get(GroupSnapshot, group_snapshot_id)
        if row is None or row.deleted or (not who.admin and row.project_id != who.project_id):
            raise NotFound(f"GroupSnapshot {group_snapshot_id} could not be found.")
        return row  # type: ignore[no-any-return]

    async def group_snapshot(self, group_snapshot_id: str, who: Caller) -> GroupSnapshotInfo:
        async with self.db.session() as s:
            return _snap_info(await self._group_snapshot_row(s, group_snapshot_id, who))

    async def group_snapshots(self, who: Caller, filters: GroupFilters | None = None,
                              query: ListQuery | None = None, offset: int = 0) -> list[GroupSnapshotInfo]:
        f = filters or GroupFilters()
        q = query or ListQuery(sort=[("created_at", "desc")])
        stmt = select(GroupSnapshot).where(GroupSnapshot.deleted.is_(False))
        if not (who.admin and f.all_projects):
            stmt = stmt.where(GroupSnapshot.project_id == who.project_id)
        elif f.project_id:
            stmt = stmt.where(GroupSnapshot.project_id == f.project_id)
        for column, value in ((GroupSnapshot.name, f.name), (GroupSnapshot.status, f.status),
                              (GroupSnapshot.group_id, f.group_id)):
            if value is not None:
                stmt = stmt.where(column == value)
        async with self.db.session() as s:
            marker = None
            if q.marker:
                marker = await s.get(GroupSnapshot, q.marker)
                if marker is None or marker.deleted or (not who.admin and marker.project_id != who.project_id):
                    raise NotFound(f"Marker {q.marker} could not be found.")  # Cinder's MarkerNotFound
            rows = list((await s.execute(apply(stmt, GroupSnapshot, q, marker).offset(offset or None))).scalars())
        return [_snap_info(r) for r in rows]

    async def group_usage(self, project_id: str) -> int:
        """How many groups the project holds: what its ``groups`` quota counts."""
        async with self.db.session() as s:
            return int((await s.execute(select(func.count()).select_from(Group).where(
                Group.project_id == project_id, Group.deleted.is_(False)))).scalar() or 0)

    async def _check_group_quota(self, project_id: str, volumes: int = 0, gigabytes: int = 0) -> None:
        """Refuse (413) one more group, and ``volumes`` more volumes of ``gigabytes`` GiB, over the
        project's quotas; the caller holds the project's turn."""
        used = await self.usage(project_id)  # type: ignore[attr-defined]
        limit = await self.quota(project_id, "groups")  # type: ignore[attr-defined]
        if 0 <= limit < used["groups"] + 1:
            raise PayloadTooLarge(f"Maximum number of groups allowed ({limit}) exceeded.")
        if volumes:
            vol_limit = await self.quota(project_id, "volumes")  # type: ignore[attr-defined]
            if 0 <= vol_limit < used["volumes"] + volumes:
                raise PayloadTooLarge(f"Maximum number of volumes allowed ({vol_limit}) exceeded for quota "
                                      "'volumes'.")
            gb_limit = await self.quota(project_id, "gigabytes")  # type: ignore[attr-defined]
            if 0 <= gb_limit < used["gigabytes"] + gigabytes:
                raise PayloadTooLarge(f"Requested volume or snapshot exceeds allowed gigabytes quota. Requested "
                                      f"{gigabytes}G, quota is {gb_limit}G and {used['gigabytes']}G has been "
                                      "consumed.")

    # -- groups ---------------------------------------------------------------------------------
    async def create_group(self, who: Caller, group_type: str, volume_types: list[str], *, name: str | None = None,
                           description: str | None = None, availability_zone: str | None = None) -> GroupInfo:
        """A group of ``volume_types`` (ids or names) on the pool with most room: ``available`` at
        once (a file pool has nothing to make for it), or ``error`` when no pool is up."""
        zone = availability_zone or self.cfg.volume.availability_zone
        if zone != self.cfg.volume.availability_zone:
            raise BadRequest(f"Invalid input received: Availability zone '{zone}' is invalid.")
        gtype = await self.group_type(group_type, who)
        type_ids: list[str] = []
        for ref in volume_types:
            vtype = await self.volume_type(ref, who)  # type: ignore[attr-defined]
            if vtype.id not in type_ids:
                type_ids.append(vtype.id)
        host = await self._pick_pool(0)  # type: ignore[attr-defined]
        now = utcnow()
        row = Group(id=str(uuid.uuid4()), name=name, description=description, project_id=who.project_id,
                    user_id=who.user_id, availability_zone=zone, group_type_id=gtype.id, volume_type_ids=type_ids,
                    host=host, status="available" if host else "error", replication_status="disabled",
                    fault=None if host else "No valid host to create the group: no volume pool is up.",
                    created_at=now, updated_at=now)
        async with turn(self.db, f"volume:{who.project_id}"):
            await self._check_group_quota(who.project_id)
            async with self.db.session() as s:
                s.add(row)
        return _group_info(row)

    async def group_host_for_volume(self, who: Caller, group_id: str, volume_type_id: str) -> str | None:
        """The pool a new volume of ``group_id`` goes to (the group's), once the group may take it:
        ``available``, and naming the volume's type."""
        group = await self.group(group_id, who)
        if group.status != "available":
            raise BadRequest(f"Invalid group: Group {group_id} status must be available to take a volume, but "
                             f"current status is: {group.status}.")
        if volume_type_id not in group.volume_type_ids:
            raise BadRequest(f"Invalid volume_type provided: {volume_type_id} (requested type must be supported by "
                             "this group).")
        return group.host

    async def update_group(self, who: Caller, group_id: str, *, name: str | None = None,
                           description: str | None = None, add_volumes: str | None = None,
                           remove_volumes: str | None = None) -> GroupInfo:
        """A new name or description, and volumes in and out (Cinder's comma-separated ids): each
        added one of the caller's, in no group, of one of the group's types, available or in-use
        and on the group's pool; each removed one a member.  One transaction: all or nothing."""
        adding, removing = _ids(add_volumes), _ids(remove_volumes)
        both = [v for v in adding if v in removing]
        if both:
            raise BadRequest(f"Invalid volume: UUIDs {both} are in both add and remove volume list.")
        async with self.db.session() as s:
            group = await self._group_row(s, group_id, who)
            members = {v.id: v for v in (await self._members(s, [group.id])).get(group.id, [])}
            added: list[Volume] = []
            for vid in adding:
                if vid in members:
                    continue
                vol = await s.get(Volume, vid)
                if vol is None or vol.deleted or vol.project_id != group.project_id:
                    raise BadRequest(f"Invalid volume: Cannot add volume {vid} to group {group_id} because volume "
                                     "cannot be found.")
                why = ("it already belongs to a group" if vol.group_id else
                       f"volume type {vol.volume_type_id} is not supported by the group"
                       if vol.volume_type_id not in (group.volume_type_ids or []) else
                       f"volume is in an invalid state: {vol.status}. Valid states are: {', '.join(ADDABLE)}"
                       if vol.status not in ADDABLE else
                       "it is not on the group's pool" if vol.host != group.host else "")
                if why:
                    raise BadRequest(f"Invalid volume: Cannot add volume {vid} to group {group_id} because {why}.")
                added.append(vol)
            removed: list[Volume] = []
            for vid in removing:
                vol = members.get(vid)
                if vol is None:
                    raise BadRequest(f"Invalid volume: Cannot remove volume {vid} from group {group_id} because it "
                                     "is not in the group.")
                if vol.status not in REMOVABLE:
                    raise BadRequest(f"Invalid volume: Cannot remove volume {vid} from group {group_id} because "
                                     f"volume is in an invalid state: {vol.status}. Valid states are: "
                                     f"{', '.join(REMOVABLE)}.")
                removed.append(vol)
            renamed = name is not None and name != group.name
            redescribed = description is not None and description != group.description
            if not (renamed or redescribed or added or removed):
                raise BadRequest(f"Invalid group: Cannot update group {group_id} because no valid name, description, "
                                 "add_volumes, or remove_volumes were provided.")
            if (added or removed) and group.status != "available":
                raise BadRequest(f"Invalid group: Group status must be available (it is {group.status}).")
            now = utcnow()
            for vol in added:
                moved = await s.execute(update(Volume).where(
                    Volume.id == vol.id, Volume.group_id.is_(None), Volume.status.in_(ADDABLE)).values(
                    group_id=group.id, updated_at=now))
                if moved.rowcount != 1:
                    raise BadRequest(f"Invalid volume: Volume {vol.id} is busy: try again.")
            for vol in removed:
                await s.execute(update(Volume).where(Volume.id == vol.id, Volume.group_id == group.id).values(
                    group_id=None, updated_at=now))
            if renamed:
                group.name = name
            if redescribed:
                group.description = description
            group.updated_at = now
        return await self.group(group_id, who)

    async def delete_group(self, who: Caller, group_id: str, delete_volumes: bool = False) -> None:
        """An empty group goes at once; with ``delete_volumes`` its volumes go too (none attached or
        with snapshots), the group ``deleting`` until they are gone.  A group with group snapshots
        stays."""
        async with self.db.session() as s:
            group = await self._group_row(s, group_id, who)
            members = (await self._members(s, [group.id])).get(group.id, [])
            snaps = (await s.execute(select(func.count()).select_from(GroupSnapshot).where(
                GroupSnapshot.group_id == group.id, GroupSnapshot.deleted.is_(False)))).scalar()
            member_snaps = (await s.execute(select(func.count()).select_from(Snapshot).where(
                Snapshot.volume_id.in_([v.id for v in members]), Snapshot.deleted.is_(False)))).scalar() \
                if members else 0
        if not delete_volumes and group.status not in ("available", "error"):
            raise BadRequest(f"Invalid group: Group status must be available or error, but current status is: "
                             f"{group.status}.")
        if snaps:
            raise BadRequest("Invalid group: Group has existing snapshots.")
        if members and not delete_volumes:
            raise BadRequest(f"Invalid group: Group {group_id} still contains volumes. The delete-volumes flag is "
                             "required to delete it.")
        if any(v.attach_status != "detached" for v in members):
            raise BadRequest(f"Invalid group: Volume in group {group_id} is attached. Need to detach first.")
        if member_snaps:
            raise BadRequest("Invalid group: Volume in group still has dependent snapshots.")
        if group.status == "creating" or (not delete_volumes and group.status == "deleting"):
            raise BadRequest(f"Invalid group: Group {group_id} is busy (it is {group.status}).")
        now = utcnow()
        async with self.db.session() as s:
            if not members:
                await s.execute(update(Group).where(Group.id == group.id).values(
                    status="deleted", deleted=True, deleted_at=now, lease_owner=None, lease_until=None))
                return
            for vol in members:
                moved = await s.execute(update(Volume).where(
                    Volume.id == vol.id, Volume.deleted.is_(False), Volume.attach_status == "detached",
                    Volume.status.in_(MEMBER_DELETABLE)).values(
                    status="deleting", lease_owner=self.instance, lease_until=now + self.lease))
                if moved.rowcount != 1:
                    raise BadRequest(f"Invalid group: Volume {vol.id} of group {group_id} is busy (it is "
                                     f"{vol.status}).")
            await s.execute(update(Group).where(Group.id == group.id).values(
                status="deleting", lease_owner=self.instance, lease_until=now + self.lease, updated_at=now))
        for vol in members:
            await self._send_delete(vol.id, vol.host)  # type: ignore[attr-defined]
        await self._settle_group(group.id)

    async def reset_group_status(self, group_id: str, status: str) -> None:
        """An admin's: the status as given; any lease ends, so no report moves it on."""
        if status.lower() not in RESET_STATUSES:
            raise BadRequest(f"Invalid input received: Group status: {status} is invalid, valid statuses are: "
                             f"{', '.join(RESET_STATUSES)}.")
        async with self.db.session() as s:
            row = await self._group_row(s, group_id, Caller("", "", True))
            row.status, row.lease_owner, row.lease_until, row.updated_at = status.lower(), None, None, utcnow()

    async def refuse_group_replication(self, who: Caller, group_id: str, action: str) -> None:
        """enable, disable, failover, list targets: the file pools do not replicate."""
        group = await self.group(group_id, who)
        raise BadRequest(f"Invalid group type: Group {group.id} is not a replication group type: the file pools of "
                         f"this cloud do not replicate, so {action} cannot be done.")

    # -- create from a source ----------------------------------------------------------------------
    async def create_group_from_src(self, who: Caller, *, name: str | None = None, description: str | None = None,
                                    group_snapshot_id: str | None = None,
                                    source_group_id: str | None = None) -> GroupInfo:
        """A new group with one new volume per member of the source, on the source's pool, within
        the project's quotas (the group, the volumes, their gigabytes) in one turn."""
        async with self.db.session() as s:
            if group_snapshot_id:
                gs = await self._group_snapshot_row(s, group_snapshot_id, who)
                if gs.status != "available":
                    raise BadRequest(f"Invalid group: Group snapshot {gs.id} status must be available, but current "
                                     f"status is: {gs.status}.")
                source = await s.get(Group, gs.group_id)
                snaps = list((await s.execute(select(Snapshot).where(
                    Snapshot.group_snapshot_id == gs.id, Snapshot.deleted.is_(False))
                    .order_by(Snapshot.created_at, Snapshot.id))).scalars())
                if not snaps:
                    raise BadRequest("Invalid group: Group snapshot is empty. No group will be created.")
                vols = {v.id: v for v in (await s.execute(select(Volume).where(
                    Volume.id.in_([x.volume_id for x in snaps])))).scalars()}
                plan = [(snap.size, vols[snap.volume_id].volume_type_id if snap.volume_id in vols else None,
                         snap.host, snap.id, None, snap.name) for snap in snaps]
            else:
                source = await self._group_row(s, source_group_id or "", who)
                if source.status != "available":
                    raise BadRequest(f"Invalid group: Source group {source.id} status must be available, but "
                                     f"current status is: {source.status}.")
                members = (await self._members(s, [source.id])).get(source.id, [])
                if not members:
                    raise BadRequest("Invalid group: Source Group is empty. No group will be created.")
                busy = [v.id for v in members if v.status not in SNAPSHOTTABLE]
                if busy:
                    raise BadRequest(f"Invalid volume: Volumes {busy} of source group {source.id} must be available "
                                     "or in-use.")
                plan = [(v.size, v.volume_type_id, v.host, None, v.id, v.name) for v in members]
        if source is None:
            raise NotFound(f"The group of group snapshot {group_snapshot_id} could not be found.")
        now = utcnow()
        group = Group(id=str(uuid.uuid4()), name=name, description=description, project_id=who.project_id,
                      user_id=who.user_id, availability_zone=source.availability_zone,
                      group_type_id=source.group_type_id, volume_type_ids=list(source.volume_type_ids or []),
                      host=source.host, status="creating", replication_status="disabled",
                      group_snapshot_id=group_snapshot_id, source_group_id=None if group_snapshot_id else source.id,
                      lease_owner=self.instance, lease_until=now + self.lease, created_at=now, updated_at=now)
        volumes = [Volume(id=str(uuid.uuid4()), name=vname, description=None, size=size, status="creating",
                          attach_status="detached", project_id=who.project_id, user_id=who.user_id,
                          availability_zone=source.availability_zone, volume_type_id=type_id, multiattach=False,
                          meta={}, snapshot_id=snap_id, source_volid=vol_id, bootable=False, host=host,
                          group_id=group.id, lease_owner=self.instance, lease_until=now + self.lease,
                          created_at=now, updated_at=now)
                   for size, type_id, host, snap_id, vol_id, vname in plan]
        async with turn(self.db, f"volume:{who.project_id}"):
            await self._check_group_quota(who.project_id, len(volumes), sum(v.size for v in volumes))
            async with self.db.session() as s:
                s.add(group)
                s.add_all(volumes)
        for vol in volumes:
            if vol.host is None:
                await self._fail(vol.id, "The source of the volume is on no pool.")  # type: ignore[attr-defined]
            else:
                await self._send_create(vol, vol.host)  # type: ignore[attr-defined]
        await self._settle_group(group.id)
        return await self.group(group.id, who)

    # -- group snapshots ---------------------------------------------------------------------------
    async def create_group_snapshot(self, who: Caller, group_id: str, *, name: str | None = None,
                                    description: str | None = None) -> GroupSnapshotInfo:
        """One snapshot per member volume (available or in-use), written with the group snapshot in
        one transaction within the snapshots and gigabytes quotas, then made by their agent."""
        async with self.db.session() as s:
            group = await self._group_row(s, group_id, who)
            members = (await self._members(s, [group.id])).get(group.id, [])
        if group.status != "available":
            raise BadRequest(f"Invalid group: Group {group_id} status must be available, but current status is: "
                             f"{group.status}.")
        busy = [v.id for v in members if v.status not in SNAPSHOTTABLE]
        if busy:
            raise BadRequest(f"Invalid volume: Volumes {busy} of group {group_id} must be available or in-use to be "
                             "snapshotted.")
        now = utcnow()
        gs = GroupSnapshot(id=str(uuid.uuid4()), group_id=group.id, group_type_id=group.group_type_id, name=name,
                           description=description, status="creating" if members else "available",
                           project_id=group.project_id, user_id=who.user_id,
                           lease_owner=self.instance if members else None,
                           lease_until=now + self.lease if members else None, created_at=now, updated_at=now)
        snaps = [Snapshot(id=str(uuid.uuid4()), volume_id=v.id, name=name, description=description, size=v.size,
                          status="creating", progress="0%", project_id=v.project_id, user_id=who.user_id, meta={},
                          host=v.host, group_snapshot_id=gs.id, lease_owner=self.instance,
                          lease_until=now + self.lease, created_at=now, updated_at=now) for v in members]
        async with turn(self.db, f"volume:{group.project_id}"):
            used = await self.usage(group.project_id)  # type: ignore[attr-defined]
            limit = await self.quota(group.project_id, "snapshots")  # type: ignore[attr-defined]
            if 0 <= limit < used["snapshots"] + len(snaps):
                raise PayloadTooLarge(f"Maximum number of snapshots allowed ({limit}) exceeded for quota "
                                      "'snapshots'.")
            gigabytes = await self.quota(group.project_id, "gigabytes")  # type: ignore[attr-defined]
            size = sum(x.size for x in snaps)
            if 0 <= gigabytes < used["gigabytes"] + size:
                raise PayloadTooLarge(f"Requested volume or snapshot exceeds allowed gigabytes quota. Requested "
                                      f"{size}G, quota is {gigabytes}G and {used['gigabytes']}G has been consumed.")
            async with self.db.session() as s:
                s.add(gs)
                s.add_all(snaps)
        status = {v.id: v.status for v in members}
        for snap in snaps:
            if snap.host is None:
                await self._fail_snapshot(snap.id, "The volume has no pool.")  # type: ignore[attr-defined]
                continue
            try:
                await self._cast(snap.host, "create_snapshot", "snapshot", {  # type: ignore[attr-defined]
                    "snapshot_id": snap.id, "volume_id": snap.volume_id,
                    "force_share": status[snap.volume_id] != "available"}, snapshot_id=snap.id)
            except Exception as exc:  # the snapshot's lease ends it if nobody answers
                LOG.warning("sending snapshot %s of group snapshot %s failed: %s", snap.id, gs.id, exc)
        await self._settle_group_snapshot(gs.id)
        return await self.group_snapshot(gs.id, who)

    async def delete_group_snapshot(self, who: Caller, group_snapshot_id: str) -> None:
        """``deleting`` until every member snapshot is gone (each deleted as any snapshot is)."""
        async with self.db.session() as s:
            gs = await self._group_snapshot_row(s, group_snapshot_id, who)
            snaps = list((await s.execute(select(Snapshot).where(
                Snapshot.group_snapshot_id == gs.id, Snapshot.deleted.is_(False)))).scalars())
            moved = await s.execute(update(GroupSnapshot).where(
                GroupSnapshot.id == gs.id, GroupSnapshot.status.in_(("available", "error"))).values(
                status="deleting", lease_owner=self.instance, lease_until=utcnow() + self.lease,
                updated_at=utcnow()))
        if moved.rowcount != 1:
            raise BadRequest(f"Invalid group snapshot: GroupSnapshot status must be available or error, and no "
                             f"Group can be currently using it as source for its creation (it is {gs.status}).")
        for snap in snaps:
            if not await self._begin_snapshot_delete(snap.id, snap.host):  # type: ignore[attr-defined]
                LOG.warning("snapshot %s of group snapshot %s is %s: its delete waits for the lease", snap.id,
                            gs.id, snap.status)
        await self._settle_group_snapshot(gs.id)

    async def reset_group_snapshot_status(self, group_snapshot_id: str, status: str) -> None:
        if status.lower() not in RESET_STATUSES:
            raise BadRequest(f"Invalid input received: Group snapshot status: {status} is invalid, valid statuses "
                             f"are: {', '.join(RESET_STATUSES)}.")
        async with self.db.session() as s:
            row = await self._group_snapshot_row(s, group_snapshot_id, Caller("", "", True))
            row.status, row.lease_owner, row.lease_until, row.updated_at = status.lower(), None, None, utcnow()

    # -- following the members -------------------------------------------------------------------
    async def group_member_reported(self, ctx: dict[str, Any]) -> None:
        """An agent reported on a volume or a snapshot: settle the group or group snapshot it is a
        member of, if that one waits for it."""
        if ctx.get("cleanup"):
            return
        async with self.db.session() as s:
            if ctx.get("snapshot_id"):
                gs_id = (await s.execute(select(Snapshot.group_snapshot_id).where(
                    Snapshot.id == ctx["snapshot_id"]))).scalar()
                group_id = None
            else:
                gs_id = None
                group_id = (await s.execute(select(Volume.group_id).where(
                    Volume.id == ctx.get("volume_id", "")))).scalar() if ctx.get("volume_id") else None
        if gs_id:
            await self._settle_group_snapshot(gs_id)
        if group_id:
            await self._settle_group(group_id)

    async def _settle_group(self, group_id: str) -> None:
        """A creating group is available once its volumes are (error if one failed); a deleting one
        is deleted once they are gone (error_deleting if one could not be)."""
        async with self.db.session() as s:
            row = await s.get(Group, group_id)
            # only a running transition (it holds a lease) moves on: a status an admin set with
            # reset_status is theirs to move
            if row is None or row.deleted or row.status not in ("creating", "deleting") or row.lease_until is None:
                return
            statuses = list((await s.execute(select(Volume.status).where(
                Volume.group_id == group_id, Volume.deleted.is_(False)))).scalars())
            now = utcnow()
            values: dict[str, Any]
            if row.status == "creating":
                if "creating" in statuses:
                    return
                failed = "error" in statuses
                values = {"status": "error" if failed else "available", "fault": (
                    "A volume of the group could not be made." if failed else None)}
            else:
                if "deleting" in statuses:
                    return
                values = {"status": "error_deleting", "fault": "A volume of the group could not be deleted."} \
                    if statuses else {"status": "deleted", "deleted": True, "deleted_at": now}
            await s.execute(update(Group).where(Group.id == group_id, Group.status == row.status).values(
                lease_owner=None, lease_until=None, updated_at=now, **values))

    async def _settle_group_snapshot(self, group_snapshot_id: str) -> None:
        """A creating group snapshot is available once its snapshots are (error if one failed, once
        none is still creating); a deleting one deleted once they are gone."""
        async with self.db.session() as s:
            row = await s.get(GroupSnapshot, group_snapshot_id)
            if row is None or row.deleted or row.status not in ("creating", "deleting") or row.lease_until is None:
                return
            statuses = list((await s.execute(select(Snapshot.status).where(
                Snapshot.group_snapshot_id == group_snapshot_id, Snapshot.deleted.is_(False)))).scalars())
            now = utcnow()
            values: dict[str, Any]
            if row.status == "creating":
                if "creating" in statuses:
                    return
                failed = any(st != "available" for st in statuses)
                values = {"status": "error" if failed else "available", "fault": (
                    "A snapshot of the group snapshot could not be made." if failed else None)}
            else:
                if "deleting" in statuses:
                    return
                values = {"status": "error_deleting", "fault": "A snapshot of the group snapshot could not be "
                          "deleted."} if statuses else {"status": "deleted", "deleted": True, "deleted_at": now}
            await s.execute(update(GroupSnapshot).where(
                GroupSnapshot.id == group_snapshot_id, GroupSnapshot.status == row.status).values(
                lease_owner=None, lease_until=None, updated_at=now, **values))

    async def end_expired_groups(self) -> int:
        """The reconciler's pass: settle every group and group snapshot in a transition, and end
        one whose lease ran out (a create in error; a delete keeps going, its members' own leases
        sending their deletes again).  Safe to run at any moment."""
        async with self.db.session() as s:
            groups = list((await s.execute(select(Group.id).where(
                Group.deleted.is_(False), Group.status.in_(("creating", "deleting"))))).scalars())
            snaps = list((await s.execute(select(GroupSnapshot.id).where(
                GroupSnapshot.deleted.is_(False), GroupSnapshot.status.in_(("creating", "deleting"))))).scalars())
        for group_id in groups:
            await self._settle_group(group_id)
        for gs_id in snaps:
            await self._settle_group_snapshot(gs_id)
        now = utcnow()
        ended = 0
        async with self.db.session() as s:
            late = "The volume agent did not report on every member in time."
            for model in (Group, GroupSnapshot):
                ended += (await s.execute(update(model).where(
                    model.deleted.is_(False), model.status == "creating", model.lease_until.is_not(None),
                    model.lease_until < now).values(status="error", fault=late, lease_owner=None,
                                                    lease_until=None))).rowcount
                ended += (await s.execute(update(model).where(
                    model.deleted.is_(False), model.status == "deleting", model.lease_until.is_not(None),
                    model.lease_until < now).values(lease_owner=self.instance,
                                                    lease_until=now + self.lease))).rowcount
        return ended
