"""A volume's long actions and the admin's levers: extend, upload to an image, the image metadata a
volume carries, os-reset_status and os-force_delete, and the user messages (3.3) that say why an
asynchronous request failed.  ``VolumeService`` inherits ``ActionsMixin``.

Each long action is a transition like a create: one conditional UPDATE moves the volume from where
it is (``available``; ``in-use`` where allowed) to ``extending`` or ``uploading`` with a lease, and
keeps what the reconciler needs in ``task``; the agent's report (``volume_update`` with the
``ctx``) ends it, and so does the reconciler when the lease runs out.  An in-use volume is grown
by the QEMU that holds it open: compute's conductor gets ``volume_extended`` and reports back on
``volume.controller`` the way an agent does.  After an upload or an extend the volume's status is
derived from its attachments again (``in-use`` if one is attached), so a detach meanwhile is not
lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update

from cumulo.core import context
from cumulo.core.bus import Bus
from cumulo.core.config import Config
from cumulo.core.db import Database, utcnow
from cumulo.core.http.faults import BadRequest, NotFound, PayloadTooLarge
from cumulo.core.quota import turn
from cumulo.image.service import Caller as ImageCaller
from cumulo.image.service import ImageService
from cumulo.volume.info import Caller, MessageInfo, VolumeInfo
from cumulo.volume.models import Attachment, Message, Snapshot, Volume

LOG = logging.getLogger(__name__)

CONDUCTOR = "conductor"  # compute's controller: it grows an attached volume inside its guest's QEMU
DISK_FORMATS = ("raw", "qcow2")
CONTAINER_FORMATS = ("bare",)
MESSAGE_TTL = dt.timedelta(days=30)  # Cinder's message_ttl
# the image's own fields Cinder copies into volume_image_metadata (its properties join them)
IMAGE_FIELDS = ("image_id", "image_name", "checksum", "container_format", "disk_format", "min_disk", "min_ram",
                "size")
# the statuses os-reset_status may set (Cinder's)
VOLUME_STATUSES = ("available", "error", "creating", "deleting", "in-use", "attaching", "detaching",
                   "error_deleting", "maintenance", "reserved", "error_extending", "extending", "downloading",
                   "uploading", "retyping", "backing-up", "restoring-backup", "error_restoring", "error_managing",
                   "awaiting-transfer")
ATTACH_STATUSES = ("attached", "detached")
MIGRATION_STATUSES = ("migrating", "error", "success", "completing", "none", "starting")
SNAPSHOT_STATUSES = ("available", "error", "creating", "deleting", "error_deleting", "restoring", "backing-up",
                     "unmanaging")
# a user message's event: (event id, what was being done)
EVENTS = {"create": ("VOLUME_VOLUME_001_002", "create volume"),
          "extend": ("VOLUME_VOLUME_009_001", "extend volume"),
          "upload": ("VOLUME_VOLUME_010_001", "upload volume to image")}


def rest_status(attach_status: str) -> str:
    """The status a volume rests in once a transition ends: what its attachments make it."""
    return {"attached": "in-use", "attaching": "attaching", "reserved": "reserved"}.get(attach_status, "available")


def message_info(row: Message) -> MessageInfo:
    return MessageInfo(row.id, row.project_id, row.request_id, row.resource_type, row.resource_uuid, row.event_id,
                       row.message_level, row.user_message, row.created_at, row.expires_at)


def _request_id(ctx: dict[str, Any] | None = None) -> str:
    if ctx and ctx.get("request_id"):
        return str(ctx["request_id"])
    current = context.current.get()
    return current.request_id if current else f"req-{uuid.uuid4()}"


class ActionsMixin:
    """VolumeService's actions (it inherits them; they use its database, bus and quotas)."""

    cfg: Config
    db: Database
    bus: Bus
    images: ImageService | None
    image_url: str
    instance: str
    lease: dt.timedelta

    if TYPE_CHECKING:  # VolumeService's, which inherits this
        async def _row(self, s: Any, volume_id: str, who: Caller) -> Volume: ...
        async def volume(self, volume_id: str, who: Caller) -> VolumeInfo: ...
        async def quota(self, project_id: str, name: str) -> int: ...
        async def usage(self, project_id: str) -> dict[str, int]: ...
        async def _cast(self, host: str, method: str, op: str, args: dict[str, Any], **ctx: Any) -> None: ...
        async def _send_delete(self, volume_id: str, host: str | None) -> None: ...
        async def _send_snapshot_delete(self, snapshot_id: str, host: str | None) -> None: ...
        async def _assert_not_frozen(self, host: str | None) -> None: ...

    # -- extend ----------------------------------------------------------------------------------
    async def extend_volume(self, who: Caller, volume_id: str, new_size: int, attached: bool = False) -> None:
        """Grow the volume to ``new_size`` GiB within the project's quota (counted in its turn).
        ``attached`` (3.42) allows an in-use volume: its server's QEMU grows it, through compute."""
        async with self.db.session() as s:
            row = await self._row(s, volume_id, who)
        await self._assert_not_frozen(row.host)
        allowed = ("available", "in-use") if attached else ("available",)
        if row.status not in allowed:
            raise BadRequest(f"Invalid volume: Volume {volume_id} status must be {' or '.join(allowed)} to extend "
                             f"(in-use from microversion 3.42), but current status is: {row.status}.")
        if new_size <= row.size:
            raise BadRequest(f"Invalid input received: New size for extend must be greater than current size. "
                             f"(current: {row.size}, extended: {new_size}).")
        if row.status == "in-use" and await self._attached_over_nbd(volume_id):
            raise BadRequest(f"Invalid volume: volume {volume_id} is attached over an NBD export, whose client keeps "
                             "the size it connected with, so it cannot grow while attached: detach it, extend it and "
                             "attach it again.")
        async with turn(self.db, f"volume:{row.project_id}"):
            per_volume = await self.quota(row.project_id, "per_volume_gigabytes")
            if 0 <= per_volume < new_size:
                raise PayloadTooLarge(f"Requested volume size {new_size}G is larger than maximum allowed limit "
                                      f"{per_volume}G.")
            used, limit = (await self.usage(row.project_id))["gigabytes"], await self.quota(row.project_id,
                                                                                             "gigabytes")
            if 0 <= limit < used + new_size - row.size:
                raise PayloadTooLarge(f"Requested volume or snapshot exceeds allowed gigabytes quota. Requested "
                                      f"{new_size - row.size}G, quota is {limit}G and {used}G has been consumed.")
            async with self.db.session() as s:
                moved = await s.execute(update(Volume).where(
                    Volume.id == volume_id, Volume.deleted.is_(False), Volume.status == row.status).values(
                    status="extending", lease_owner=self.instance, lease_until=utcnow() + self.lease,
                    task={"op": "extend", "new_size": new_size}, updated_at=utcnow()))
        if moved.rowcount != 1:
            raise BadRequest(f"Invalid volume: Volume {volume_id} is busy.")
        if row.status == "in-use":
            await self._extend_attached(row, new_size)
            return
        try:
            await self._cast(row.host or "", "extend_volume", "extend", {"volume_id": volume_id,
                                                                         "new_size": new_size},
                             volume_id=volume_id, new_size=new_size)
        except Exception as exc:  # the reconciler ends it when the lease runs out
            LOG.warning("sending the extend of volume %s to %s failed: %s", volume_id, row.host, exc)

    async def _attached_over_nbd(self, volume_id: str) -> bool:
        async with self.db.session() as s:
            infos = (await s.execute(select(Attachment.connection_info).where(
                Attachment.volume_id == volume_id))).scalars()
            return any((info or {}).get("driver_volume_type") == "nbd" for info in infos)

    async def _extend_attached(self, row: Volume, new_size: int) -> None:
        """A file open in a running QEMU is grown by that QEMU (QMP block_resize): compute's
        conductor does it for each server and reports back on ``volume.controller``."""
        async with self.db.session() as s:
            servers = sorted({i for i in (await s.execute(select(Attachment.instance_uuid).where(
                Attachment.volume_id == row.id, Attachment.status == "attached"))).scalars() if i})
        ctx = {"op": "extend", "host": row.host, "started": utcnow().isoformat(), "request_id": _request_id(),
               "volume_id": row.id, "new_size": new_size}
        try:
            await self.bus.cast(CONDUCTOR, "volume_extended", {"volume_id": row.id, "new_size": new_size,
                                                               "server_ids": servers, "ctx": ctx})
        except Exception as exc:
            LOG.warning("sending the extend of attached volume %s to compute failed: %s", row.id, exc)

    async def _done_extend(self, ctx: dict[str, Any], error: str | None, result: Any) -> None:
        volume_id = ctx["volume_id"]
        if error:
            await self._extend_failed(volume_id, f"The volume could not be extended: {error}", ctx)
            return
        async with self.db.session() as s:
            row = await s.get(Volume, volume_id)
            if row is None or row.deleted or row.status != "extending":
                return  # ended meanwhile (the reconciler, an admin's reset)
            await s.execute(update(Volume).where(Volume.id == volume_id, Volume.status == "extending").values(
                status=rest_status(row.attach_status), size=int(ctx["new_size"]), fault=None, lease_owner=None,
                lease_until=None, task=None, updated_at=utcnow()))

    async def _extend_failed(self, volume_id: str, why: str, ctx: dict[str, Any] | None = None) -> None:
        LOG.warning("extending volume %s failed: %s", volume_id, why)
        async with self.db.session() as s:
            row = await s.get(Volume, volume_id)
            moved = await s.execute(update(Volume).where(Volume.id == volume_id, Volume.status == "extending").values(
                status="error_extending", fault=why, lease_owner=None, lease_until=None, task=None,
                updated_at=utcnow()))
            if moved.rowcount == 1 and row is not None:
                self._add_message(s, row.project_id, volume_id, "extend", why, _request_id(ctx))

    # -- upload to an image ------------------------------------------------------------------------
    async def upload_to_image(self, who: Caller, volume_id: str, token: str, *, image_name: str,
                              disk_format: str = "raw", container_format: str = "bare", force: bool = False,
                              visibility: str = "private", protected: bool = False) -> tuple[VolumeInfo, str]:
        """Make an image of the volume: the image record now (as the user, within their image
        quota), its data by the agent (converted to ``disk_format``, sent with the user's token).
        The volume is ``uploading`` meanwhile; (volume, image id) are returned."""
        if self.images is None or not self.image_url:
            raise BadRequest("Uploading a volume to an image needs the image service, which this cloud does not run.")
        if disk_format not in DISK_FORMATS:
            raise BadRequest(f"Invalid input received: disk_format {disk_format!r} is not supported here: "
                             f"{' or '.join(DISK_FORMATS)}.")
        if container_format not in CONTAINER_FORMATS:
            raise BadRequest(f"Invalid input received: container_format {container_format!r} is not supported "
                             "here: bare.")
        async with self.db.session() as s:
            row = await self._row(s, volume_id, who)
        allowed = ("available", "in-use") if force else ("available",)
        if row.status not in allowed:
            raise BadRequest(f"Invalid volume: Volume {volume_id} status must be available"
                             f"{' or in-use' if force else ' (or in-use with force)'}, but current status is: "
                             f"{row.status}.")
        if row.host is None:
            raise BadRequest(f"Invalid volume: Volume {volume_id} has no host.")
        props = {k: v for k, v in (row.image_meta or {}).items() if k not in IMAGE_FIELDS}
        image_who = ImageCaller(who.project_id, who.admin, who.user_id)
        image = await self.images.create_image(image_who, {
            "name": image_name, "disk_format": disk_format, "container_format": container_format,
            "visibility": visibility, "protected": protected, "min_disk": row.size, "properties": props})
        async with self.db.session() as s:
            moved = await s.execute(update(Volume).where(
                Volume.id == volume_id, Volume.deleted.is_(False), Volume.status == row.status).values(
                status="uploading", lease_owner=self.instance, lease_until=utcnow() + self.lease,
                task={"op": "upload", "image_id": image.id}, updated_at=utcnow()))
        if moved.rowcount != 1:
            await self._drop_image(image.id, row.project_id)
            raise BadRequest(f"Invalid volume: Volume {volume_id} is busy.")
        try:
            await self._cast(row.host, "upload_volume", "upload", {
                "volume_id": volume_id, "image_url": f"{self.image_url.rstrip('/')}/v2/images/{image.id}",
                "token": token, "disk_format": disk_format, "force_share": row.status != "available"},
                volume_id=volume_id, image_id=image.id)
        except Exception as exc:
            LOG.warning("sending the upload of volume %s to %s failed: %s", volume_id, row.host, exc)
        return await self.volume(volume_id, who), image.id

    async def _done_upload(self, ctx: dict[str, Any], error: str | None, result: Any) -> None:
        await self._end_upload(ctx["volume_id"], ctx.get("image_id"),
                               f"The volume could not be uploaded to an image: {error}" if error else None, ctx)

    async def _end_upload(self, volume_id: str, image_id: str | None, why: str | None,
                          ctx: dict[str, Any] | None = None) -> None:
        """Back to what its attachments make it; on failure the image goes and a message says why."""
        async with self.db.session() as s:
            row = await s.get(Volume, volume_id)
            if row is None or row.status != "uploading":
                return
            values: dict[str, Any] = {"status": rest_status(row.attach_status), "lease_owner": None,
                                      "lease_until": None, "task": None, "updated_at": utcnow()}
            if why:
                values["fault"] = why
            moved = await s.execute(update(Volume).where(Volume.id == volume_id, Volume.status == "uploading")
                                    .values(**values))
            if why and moved.rowcount == 1:
                self._add_message(s, row.project_id, volume_id, "upload", why, _request_id(ctx))
        if why:
            LOG.warning("uploading volume %s failed: %s", volume_id, why)
            if image_id:
                await self._drop_image(image_id, row.project_id)

    async def _drop_image(self, image_id: str, project_id: str) -> None:
        if self.images is None:
            return
        try:
            await self.images.delete_image(image_id, ImageCaller(project_id, True, ""))
        except Exception as exc:  # gone already, or protected: nothing more to do here
            LOG.info("deleting image %s of a failed upload: %s", image_id, exc)

    # -- the image metadata a volume carries -------------------------------------------------------
    async def image_metadata(self, volume_id: str, who: Caller) -> dict[str, str]:
        return dict((await self.volume(volume_id, who)).image_meta or {})

    async def set_image_metadata(self, volume_id: str, who: Caller, metadata: dict[str, str]) -> dict[str, str]:
        async with self.db.session() as s:
            row = await self._row(s, volume_id, who)
            row.image_meta = {**(row.image_meta or {}), **{k: str(v) for k, v in metadata.items()}}
            row.updated_at = utcnow()
            return dict(row.image_meta)

    async def unset_image_metadata(self, volume_id: str, who: Caller, key: str) -> None:
        async with self.db.session() as s:
            row = await self._row(s, volume_id, who)
            meta = dict(row.image_meta or {})
            if key not in meta:
                raise NotFound(f"Glance metadata for volume/snapshot {volume_id} cannot be found: no key {key}.")
            del meta[key]
            row.image_meta = meta
            row.updated_at = utcnow()

    # -- the admin's levers --------------------------------------------------------------------------
    async def reset_status(self, volume_id: str, status: str | None = None, attach_status: str | None = None,
                           migration_status: str | None = None) -> None:
        """Set what the admin says (Cinder's os-reset_status): any lease ends with it."""
        if status is None and attach_status is None and migration_status is None:
            raise BadRequest("Must specify 'status', 'attach_status' or 'migration_status' for update.")
        for value, allowed, what in ((status, VOLUME_STATUSES, "status"), (attach_status, ATTACH_STATUSES,
                                                                             "attach_status"),
                                     (migration_status, MIGRATION_STATUSES, "migration_status")):
            if value is not None and value not in allowed:
                raise BadRequest(f"Invalid input received: {what} {value!r} must be one of {', '.join(allowed)}.")
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None, "task": None, "updated_at": utcnow()}
        if status is not None:
            values["status"] = status
        if attach_status is not None:
            values["attach_status"] = attach_status
        if migration_status is not None:
            values["migration_status"] = None if migration_status == "none" else migration_status
        async with self.db.session() as s:
            moved = await s.execute(update(Volume).where(Volume.id == volume_id, Volume.deleted.is_(False))
                                    .values(**values))
        if moved.rowcount != 1:
            raise NotFound(f"Volume {volume_id} could not be found.")

    async def reset_snapshot_status(self, snapshot_id: str, status: str) -> None:
        if status not in SNAPSHOT_STATUSES:
            raise BadRequest(f"Invalid input received: status {status!r} must be one of "
                             f"{', '.join(SNAPSHOT_STATUSES)}.")
        async with self.db.session() as s:
            moved = await s.execute(update(Snapshot).where(Snapshot.id == snapshot_id, Snapshot.deleted.is_(False))
                                    .values(status=status, lease_owner=None, lease_until=None, updated_at=utcnow()))
        if moved.rowcount != 1:
            raise NotFound(f"Snapshot {snapshot_id} could not be found.")

    async def update_snapshot_status(self, snapshot_id: str, who: Caller, status: str,
                                     progress: str | None = None) -> None:
        """os-update_snapshot_status (what nova's assisted snapshots report): creating may become
        available or error, deleting error_deleting, as Cinder allows."""
        moves = {"creating": ("creating", "available", "error"), "deleting": ("deleting", "error_deleting")}
        async with self.db.session() as s:
            row = await s.get(Snapshot, snapshot_id)
            if row is None or row.deleted or (not who.admin and row.project_id != who.project_id):
                raise NotFound(f"Snapshot {snapshot_id} could not be found.")
            if status not in moves.get(row.status, ()):
                raise BadRequest(f"Invalid snapshot: Snapshot status {row.status} not allowed to become {status}.")
            values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
            if progress is not None:
                values["progress"] = progress
            if status != row.status:
                values.update(lease_owner=None, lease_until=None)
            await s.execute(update(Snapshot).where(Snapshot.id == snapshot_id, Snapshot.status == row.status)
                            .values(**values))

    async def force_delete(self, volume_id: str) -> None:
        """os-force_delete: delete in any status, but not while attached nor with snapshots."""
        async with self.db.session() as s:
            row = await s.get(Volume, volume_id)
            if row is None or row.deleted:
                raise NotFound(f"Volume {volume_id} could not be found.")
            attached = (await s.execute(select(Attachment.id).where(Attachment.volume_id == volume_id))).first()
            snaps = (await s.execute(select(Snapshot.id).where(Snapshot.volume_id == volume_id,
                                                               Snapshot.deleted.is_(False)))).first()
        if attached is not None or row.attach_status == "attached":
            raise BadRequest(f"Invalid volume: Volume {volume_id} is attached: detach it first.")
        if snaps is not None:
            raise BadRequest(f"Invalid volume: Volume {volume_id} still has dependent snapshots.")
        if row.group_id:  # as Cinder: even forced, a member goes with its group (or leaves it first)
            raise BadRequest(f"Invalid volume: Volume {volume_id} belongs to group {row.group_id}: remove it from "
                             "the group or delete the group with its volumes.")
        async with self.db.session() as s:
            await s.execute(update(Volume).where(Volume.id == volume_id, Volume.deleted.is_(False)).values(
                status="deleting", lease_owner=self.instance, lease_until=utcnow() + self.lease, task=None))
        await self._send_delete(volume_id, row.host)

    async def force_delete_snapshot(self, snapshot_id: str) -> None:
        async with self.db.session() as s:
            row = await s.get(Snapshot, snapshot_id)
            if row is None or row.deleted:
                raise NotFound(f"Snapshot {snapshot_id} could not be found.")
            if row.group_snapshot_id:  # as Cinder: even forced, it goes with its group snapshot
                raise BadRequest(f"Invalid snapshot: Snapshot {snapshot_id} must not be part of a group.")
            await s.execute(update(Snapshot).where(Snapshot.id == snapshot_id).values(
                status="deleting", lease_owner=self.instance, lease_until=utcnow() + self.lease))
        await self._send_snapshot_delete(snapshot_id, row.host)

    # -- user messages (3.3) -------------------------------------------------------------------------
    def _add_message(self, s: Any, project_id: str, resource_uuid: str | None, event: str, detail: str,
                     request_id: str | None = None) -> None:
        event_id, action = EVENTS[event]
        now = utcnow()
        s.add(Message(id=str(uuid.uuid4()), project_id=project_id, request_id=request_id or _request_id(),
                      resource_type="VOLUME", resource_uuid=resource_uuid, event_id=event_id, message_level="ERROR",
                      user_message=f"{action}: {detail}", created_at=now, expires_at=now + MESSAGE_TTL))

    async def messages(self, who: Caller, limit: int | None = None, marker: str | None = None,
                       ascending: bool = False) -> list[MessageInfo]:
        """The caller's project's messages not yet expired (an admin's: every project's), newest first."""
        stmt = select(Message).where(Message.expires_at > utcnow())
        if not who.admin:
            stmt = stmt.where(Message.project_id == who.project_id)
        order = (Message.created_at.asc(), Message.id.asc()) if ascending else (Message.created_at.desc(),
                                                                                Message.id.desc())
        async with self.db.session() as s:
            if marker:
                mark = await s.get(Message, marker)
                if mark is None or (not who.admin and mark.project_id != who.project_id):
                    raise NotFound(f"Marker {marker} could not be found.")
                after = (Message.created_at > mark.created_at) | (
                    (Message.created_at == mark.created_at) & (Message.id > mark.id))
                before = (Message.created_at < mark.created_at) | (
                    (Message.created_at == mark.created_at) & (Message.id < mark.id))
                stmt = stmt.where(after if ascending else before)
            rows = (await s.execute(stmt.order_by(*order).limit(limit))).scalars()
            return [message_info(r) for r in rows]

    async def message(self, message_id: str, who: Caller) -> MessageInfo:
        async with self.db.session() as s:
            row = await s.get(Message, message_id)
        if row is None or (not who.admin and row.project_id != who.project_id):
            raise NotFound(f"Message {message_id} could not be found.")
        return message_info(row)

    async def delete_message(self, message_id: str, who: Caller) -> None:
        await self.message(message_id, who)
        async with self.db.session() as s:
            await s.execute(delete(Message).where(Message.id == message_id))

    async def purge_messages(self) -> int:
        """Forget the messages past their time (the reconciler's pass)."""
        async with self.db.session() as s:
            gone = await s.execute(delete(Message).where(Message.expires_at <= utcnow()))
        return int(gone.rowcount or 0)

    # -- the reconciler's half -----------------------------------------------------------------------
    async def end_expired_action(self, volume_id: str, status: str, host: str | None) -> bool:
        """End an extend or an upload whose lease ran out; False for any other transition."""
        if status == "extending":
            await self._extend_failed(volume_id, f"The extend was not reported by {host or '(none)'} within "
                                      f"{self.cfg.volume.operation_timeout:g} s.")
            return True
        if status == "uploading":
            async with self.db.session() as s:
                row = await s.get(Volume, volume_id)
            task = (row.task or {}) if row is not None else {}
            await self._end_upload(volume_id, task.get("image_id"), f"The upload was not reported by "
                                   f"{host or '(none)'} within {self.cfg.volume.operation_timeout:g} s.")
            return True
        return False
