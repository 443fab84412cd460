"""A volume's attachments to servers: the ``VolumeService`` half of Cinder's attachments API (3.27)
and of the legacy os-reserve/os-attach/os-detach actions, which are built on the same steps.

The flow compute follows: ``attachment_create`` (no connector: the attachment and the volume are
``reserved``) -> ``attachment_update`` with the compute node's connector (the volume's agent
answers how to reach the volume, its ``connection_info``; both go ``attaching``) ->
``attachment_complete`` (``attached``, the volume ``in-use``) ... ``attachment_delete`` (the row
goes; the volume is ``available`` again when no attachment is left).

The volume's status is never set by hand: every step changes its attachment and then derives the
volume's status from all of the volume's attachments (``_settle``) in the same transaction, which
holds the volume's row (the conditional UPDATE of a create, or SELECT ... FOR UPDATE), so two
racing steps on one volume take turns and a non-multiattach volume is reserved by one create only.
The agent is asked for the connection outside any transaction; if it does not answer, the
attachment stays as it was and the caller is told in words.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import delete, select, update

from cumulo.core.bus import Bus, RPCError, RPCTimeout
from cumulo.core.db import Database, utcnow
from cumulo.core.http.faults import BadRequest, Fault, NotFound
from cumulo.core.http.paging import ListQuery, apply
from cumulo.volume.info import AttachmentInfo, Caller
from cumulo.volume.models import Attachment, Volume
from cumulo.volume.qos import front_end_specs

LOG = logging.getLogger(__name__)

# the volume statuses an attachment may start from: a single-attach volume only when it is free
# ("attaching" is the legacy os-reserve's), a multiattach one while it is attached elsewhere too
ATTACHABLE = ("available",)
MULTI_ATTACHABLE = ("available", "reserved", "attaching", "in-use")
# the statuses _settle may move: an attachment never drags a volume out of deleting or error
ATTACH_STATUSES = ("available", "reserved", "attaching", "in-use", "detaching")
MODES = ("rw", "ro")
CONNECT_TIMEOUT = 30.0  # seconds the agent has to answer initialize_connection
ATTACHMENT_SORT_KEYS = {"id", "created_at", "updated_at", "volume_id", "instance_uuid", "status"}
MAX_PAGE = 1000


def attachment_info(row: Attachment) -> AttachmentInfo:
    return AttachmentInfo(row.id, row.volume_id, row.project_id, row.instance_uuid, row.status, row.attach_mode,
                          row.attached_host, row.mountpoint, dict(row.connector) if row.connector else None,
                          dict(row.connection_info) if row.connection_info else None, row.attached_at,
                          row.created_at, row.updated_at)


def _unknown(attachment_id: str) -> NotFound:
    return NotFound(f"Volume attachment could not be found with filter: attachment_id = {attachment_id}.")


class AttachmentsMixin:
    """VolumeService's attachment methods (it inherits them; they use its database and bus)."""

    db: Database
    bus: Bus

    # -- reading -------------------------------------------------------------------------------
    async def attachment(self, attachment_id: str, who: Caller) -> AttachmentInfo:
        async with self.db.session() as s:
            return attachment_info(await self._attachment_row(s, attachment_id, who))

    async def attachments(self, who: Caller, volume_id: str | None = None, instance_uuid: str | None = None,
                          all_projects: bool = False, *, status: str | None = None,
                          query: ListQuery | None = None, offset: int = 0) -> list[AttachmentInfo]:
        """A page of the attachments the caller sees (its project's; an admin's ``all_projects``:
        everyone's), oldest first unless ``query`` sorts; never more than 1000."""
        q = query or ListQuery(sort=[("created_at", "asc")])
        limit = MAX_PAGE if q.limit is None else min(q.limit, MAX_PAGE)
        q = ListQuery(limit=limit, marker=q.marker, sort=q.sort or [("created_at", "asc")])
        stmt = select(Attachment)
        if not (who.admin and all_projects):
            stmt = stmt.where(Attachment.project_id == who.project_id)
        for column, value in ((Attachment.volume_id, volume_id), (Attachment.instance_uuid, instance_uuid),
                              (Attachment.status, status)):
            if value is not None:
                stmt = stmt.where(column == value)
        async with self.db.session() as s:
            marker = None
            if q.marker:
                marker = await s.get(Attachment, q.marker)
                if marker is None or (not who.admin and marker.project_id != who.project_id):
                    raise NotFound(f"Marker {q.marker} could not be found.")
            rows = (await s.execute(apply(stmt, Attachment, q, marker).offset(offset or None))).scalars()
            return [attachment_info(r) for r in rows]

    async def _attachments_of(self, s: Any, volume_ids: list[str]) -> dict[str, tuple[AttachmentInfo, ...]]:
        """The attachments of these volumes, oldest first: one query for a whole page of volumes."""
        if not volume_ids:
            return {}
        out: dict[str, list[AttachmentInfo]] = {}
        rows = (await s.execute(select(Attachment).where(Attachment.volume_id.in_(volume_ids))
                                .order_by(Attachment.created_at, Attachment.id))).scalars()
        for row in rows:
            out.setdefault(row.volume_id, []).append(attachment_info(row))
        return {vid: tuple(items) for vid, items in out.items()}

    # -- the attachments API -------------------------------------------------------------------
    async def attachment_create(self, who: Caller, volume_id: str, instance_uuid: str | None,
                                connector: dict | None = None, mode: str = "rw") -> AttachmentInfo:
        """Reserve the volume for ``instance_uuid`` (a new attachment in ``reserved``); with a
        connector, connect it at once as ``attachment_update`` does (if that fails, the
        reservation is undone and the error is the caller's)."""
        if mode not in MODES:
            raise BadRequest(f"Invalid input received: attach mode {mode!r} must be rw or ro.")
        row = await self._reserve(who, volume_id, instance_uuid, mode)
        if connector is None:
            return attachment_info(row)
        try:
            return await self.attachment_update(who, row.id, connector)
        except Exception:
            try:
                await self._remove(row.id)
            except Exception as exc:  # the original error is the one the caller must see
                LOG.warning("undoing attachment %s failed: %s", row.id, exc)
            raise

    async def attachment_update(self, who: Caller, attachment_id: str, connector: dict,
                                mountpoint: str | None = None) -> AttachmentInfo:
        """Ask the volume's agent how ``connector``'s host reaches the volume, and keep its answer
        (the attachment and the volume go ``attaching``)."""
        if not isinstance(connector, dict):
            raise BadRequest("Invalid input received: the connector must be an object.")
        async with self.db.session() as s:
            att = await self._attachment_row(s, attachment_id, who)
            vol = await s.get(Volume, att.volume_id)
        if att.status not in ("reserved", "attaching"):
            raise BadRequest(f"Invalid volume: attachment {attachment_id} is {att.status}: only a reserved "
                             "attachment takes a connector.")
        if vol is None or vol.host is None:
            raise BadRequest(f"Invalid volume: volume {att.volume_id} has no host to connect to.")
        info = await self._connection_info(vol.host, vol.id, att.attach_mode, connector)
        mountpoint = mountpoint or connector.get("mountpoint")
        async with self.db.session() as s:
            await self._lock(s, att.volume_id)
            moved = await s.execute(update(Attachment).where(
                Attachment.id == attachment_id, Attachment.status.in_(("reserved", "attaching"))).values(
                status="attaching", connector=dict(connector), connection_info=info,
                attached_host=str(connector.get("host") or "") or None, mountpoint=mountpoint, updated_at=utcnow()))
            if moved.rowcount != 1:
                raise _unknown(attachment_id)
            await self._settle(s, att.volume_id)
            return attachment_info(await s.get(Attachment, attachment_id))

    async def attachment_complete(self, who: Caller, attachment_id: str) -> None:
        """The compute node has connected the volume: ``attached``, the volume ``in-use``."""
        async with self.db.session() as s:
            att = await self._attachment_row(s, attachment_id, who)
            if att.status == "attached":
                return
            if att.status != "attaching":
                raise BadRequest(f"Invalid volume: attachment {attachment_id} is {att.status}: it needs a connector "
                                 "(an update) before it completes.")
            await self._lock(s, att.volume_id)
            await s.execute(update(Attachment).where(Attachment.id == attachment_id).values(
                status="attached", attached_at=utcnow(), updated_at=utcnow()))
            await self._settle(s, att.volume_id)

    async def attachment_delete(self, who: Caller, attachment_id: str) -> None:
        """Disconnect and forget the attachment; the volume is ``available`` when none is left."""
        async with self.db.session() as s:
            att = await self._attachment_row(s, attachment_id, who)
            vol = await s.get(Volume, att.volume_id)
        await self._remove(attachment_id)
        if vol is not None and vol.host and att.connector is not None:
            try:  # harmless for files; the NBD export stops with the volume's last attachment
                await self.bus.cast(f"volume.{vol.host}", "terminate_connection",
                                    {"volume_id": vol.id, "connector": att.connector,
                                     "held": await self._held(vol.id)})
            except Exception as exc:
                LOG.warning("terminate_connection of volume %s on %s not sent: %s", vol.id, vol.host, exc)

    # -- the legacy volume actions, on the same steps ------------------------------------------------
    async def reserve(self, who: Caller, volume_id: str) -> None:
        """os-reserve: the volume is ``attaching`` with no attachment yet (Cinder's legacy flow)."""
        async with self.db.session() as s:
            vol = await self._volume_row(s, volume_id, who)
            allowed = MULTI_ATTACHABLE if vol.multiattach else ATTACHABLE
            moved = await s.execute(update(Volume).where(Volume.id == volume_id, Volume.status.in_(allowed))
                                    .values(status="attaching", updated_at=utcnow()))
            if moved.rowcount != 1:
                await s.refresh(vol)
                raise self._not_attachable(vol)

    async def unreserve(self, who: Caller, volume_id: str) -> None:
        """os-unreserve: undo os-reserve (the volume is what its attachments make it)."""
        async with self.db.session() as s:
            vol = await self._volume_row(s, volume_id, who, lock=True)
            if vol.status == "attaching":
                await self._settle(s, volume_id)

    async def attach(self, who: Caller, volume_id: str, instance_uuid: str | None, mountpoint: str | None,
                     host_name: str | None = None, mode: str = "rw") -> AttachmentInfo:
        """os-attach: an attachment made and completed at once (after os-reserve, or straight from
        ``available``); the connection was the caller's business (os-initialize_connection)."""
        if mode not in MODES:
            raise BadRequest(f"Invalid input received: attach mode {mode!r} must be rw or ro.")
        row = await self._reserve(who, volume_id, instance_uuid, mode, legacy=True, mountpoint=mountpoint,
                                  host_name=host_name)
        return await self.attachment(row.id, who)

    async def begin_detaching(self, who: Caller, volume_id: str) -> None:
        async with self.db.session() as s:
            vol = await self._volume_row(s, volume_id, who)
            moved = await s.execute(update(Volume).where(
                Volume.id == volume_id, Volume.status == "in-use", Volume.attach_status == "attached").values(
                status="detaching", updated_at=utcnow()))
        if moved.rowcount != 1:
            raise BadRequest(f"Invalid volume: Unable to detach volume. Volume status must be 'in-use' and "
                             f"attach_status must be 'attached' to detach (it is {vol.status}).")

    async def roll_detaching(self, who: Caller, volume_id: str) -> None:
        """os-roll_detaching: back from ``detaching`` (nothing to do otherwise, as in Cinder)."""
        async with self.db.session() as s:
            vol = await self._volume_row(s, volume_id, who, lock=True)
            if vol.status == "detaching":
                await s.execute(update(Volume).where(Volume.id == volume_id, Volume.status == "detaching").values(
                    status="in-use", updated_at=utcnow()))
                await self._settle(s, volume_id)

    async def detach(self, who: Caller, volume_id: str, attachment_id: str | None = None) -> None:
        """os-detach: delete the named attachment, or the volume's only one."""
        async with self.db.session() as s:
            await self._volume_row(s, volume_id, who)
            ids = list((await s.execute(select(Attachment.id).where(Attachment.volume_id == volume_id))).scalars())
        if attachment_id is None:
            if not ids:  # nothing to detach: Cinder's manager only makes sure the volume says so
                async with self.db.session() as s:
                    await self._lock(s, volume_id)
                    await self._settle(s, volume_id)
                return
            if len(ids) > 1:
                raise BadRequest(f"Invalid volume: Volume {volume_id} has {len(ids)} attachments: name the "
                                 "attachment_id to detach.")
            attachment_id = ids[0]
        elif attachment_id not in ids:
            raise _unknown(attachment_id)
        await self.attachment_delete(who, attachment_id)

    async def force_detach(self, who: Caller, volume_id: str, attachment_id: str | None = None) -> None:
        """os-force_detach (an admin's): the named attachment, or every one, goes."""
        async with self.db.session() as s:
            await self._volume_row(s, volume_id, who)
            ids = list((await s.execute(select(Attachment.id).where(Attachment.volume_id == volume_id))).scalars())
        if attachment_id is not None and attachment_id not in ids:
            raise _unknown(attachment_id)
        for ident in [attachment_id] if attachment_id else ids:
            await self.attachment_delete(who, ident)
        async with self.db.session() as s:
            await self._lock(s, volume_id)
            await self._settle(s, volume_id)  # a reservation without attachments (os-reserve) is undone too
            # an admin's reset to error is what a force-detach clears, as Cinder's detach does: with
            # no attachment left the volume is available again
            left = (await s.execute(select(Attachment.id).where(Attachment.volume_id == volume_id))).first()
            if left is None:
                await s.execute(update(Volume).where(Volume.id == volume_id, Volume.status == "error").values(
                    status="available", attach_status="detached", updated_at=utcnow()))

    async def initialize_connection(self, who: Caller, volume_id: str, connector: dict) -> dict[str, Any]:
        """os-initialize_connection: the connection info alone, no attachment (the legacy flow)."""
        if not isinstance(connector, dict):
            raise BadRequest("Invalid input received: the connector must be an object.")
        async with self.db.session() as s:
            vol = await self._volume_row(s, volume_id, who)
        if vol.host is None:
            raise BadRequest(f"Invalid volume: volume {volume_id} has no host to connect to.")
        readonly = (vol.meta or {}).get("readonly") == "True"
        mode = "ro" if readonly or connector.get("mode") == "ro" else "rw"
        return await self._connection_info(vol.host, vol.id, mode, connector)

    async def terminate_connection(self, who: Caller, volume_id: str, connector: dict) -> None:
        async with self.db.session() as s:
            vol = await self._volume_row(s, volume_id, who)
        if vol.host:
            try:
                await self.bus.cast(f"volume.{vol.host}", "terminate_connection",
                                    {"volume_id": vol.id, "connector": connector, "held": await self._held(vol.id)})
            except Exception as exc:  # nothing to undo for a file: the answer stays a 202
                LOG.warning("terminate_connection of volume %s on %s not sent: %s", vol.id, vol.host, exc)

    async def sync_exports(self, host: str, exported: set[str]) -> None:
        """Answer an agent's report of its NBD exports with the ones an attachment still holds:
        it stops the others (a terminate_connection that never arrived, an agent that was down)."""
        if not exported:
            return
        async with self.db.session() as s:
            held = set((await s.execute(select(Attachment.volume_id).where(
                Attachment.volume_id.in_(sorted(exported))))).scalars())
        if exported - held:
            await self.bus.cast(f"volume.{host}", "sync_exports", {"held": sorted(held), "exported": sorted(exported)})

    async def _held(self, volume_id: str) -> bool:
        """Whether any attachment of the volume is left (its export must stay)."""
        async with self.db.session() as s:
            return (await s.execute(select(Attachment.id).where(Attachment.volume_id == volume_id).limit(1))
                    ).scalar() is not None

    # -- the steps -------------------------------------------------------------------------------
    async def _reserve(self, who: Caller, volume_id: str, instance_uuid: str | None, mode: str, *,
                       legacy: bool = False, mountpoint: str | None = None,
                       host_name: str | None = None) -> Attachment:
        """One conditional UPDATE claims the volume (two racing creates on a single-attach volume:
        one wins), then the attachment is written and the volume settled, in one transaction.
        ``legacy`` (os-attach) writes it attached at once, and may follow os-reserve."""
        async with self.db.session() as s:
            vol = await self._volume_row(s, volume_id, who)
            allowed = MULTI_ATTACHABLE if vol.multiattach else ATTACHABLE + (("attaching",) if legacy else ())
            moved = await s.execute(update(Volume).where(
                Volume.id == volume_id, Volume.deleted.is_(False), Volume.status.in_(allowed)).values(
                status="reserved", updated_at=utcnow()))
            if moved.rowcount != 1 and not await self._same_server(s, vol, instance_uuid):
                await s.refresh(vol)
                raise self._not_attachable(vol)
            if (vol.meta or {}).get("readonly") == "True":
                mode = "ro"
            now = utcnow()
            row = Attachment(id=str(uuid.uuid4()), volume_id=volume_id, project_id=vol.project_id,
                             instance_uuid=instance_uuid, status="attached" if legacy else "reserved",
                             attach_mode=mode, mountpoint=mountpoint, attached_host=host_name,
                             attached_at=now if legacy else None, created_at=now, updated_at=now)
            s.add(row)
            await s.flush()
            await self._settle(s, volume_id)
        return row

    async def _same_server(self, s: Any, vol: Volume, instance_uuid: str | None) -> bool:
        """Whether a volume taken already is the same server's only (held for this transaction):
        a live migration connects it on the destination too before the source lets go, and
        Cinder lets that second attachment be made."""
        if not instance_uuid:
            return False
        await self._lock(s, vol.id)
        await s.refresh(vol)
        if vol.deleted or vol.status not in ("in-use", "reserved", "attaching"):
            return False
        owners = set((await s.execute(select(Attachment.instance_uuid).where(
            Attachment.volume_id == vol.id))).scalars())
        return owners == {instance_uuid}

    async def _remove(self, attachment_id: str) -> None:
        async with self.db.session() as s:
            volume_id = (await s.execute(select(Attachment.volume_id).where(
                Attachment.id == attachment_id))).scalar()
            if volume_id is None:
                raise _unknown(attachment_id)
            await self._lock(s, volume_id)
            await s.execute(delete(Attachment).where(Attachment.id == attachment_id))
            await self._settle(s, volume_id)

    async def _settle(self, s: Any, volume_id: str) -> None:
        """The volume's status from its attachments: any attached -> in-use, else any attaching ->
        attaching, else any reserved -> reserved, none -> available (detached).  A volume being
        detached (os-begin_detaching) stays detaching while attached."""
        statuses = set((await s.execute(select(Attachment.status).where(
            Attachment.volume_id == volume_id))).scalars())
        order = (("attached", "in-use"), ("attaching", "attaching"), ("reserved", "reserved"))
        status, volume_status = next(((a, v) for a, v in order if a in statuses), ("detached", "available"))
        keep = Volume.status.in_(ATTACH_STATUSES)
        await s.execute(update(Volume).where(Volume.id == volume_id, keep, Volume.status != "detaching").values(
            status=volume_status, attach_status=status, updated_at=utcnow()))
        if status != "attached":  # nothing attached is left to detach
            await s.execute(update(Volume).where(Volume.id == volume_id, Volume.status == "detaching").values(
                status=volume_status, attach_status=status, updated_at=utcnow()))

    async def _connection_info(self, host: str, volume_id: str, mode: str,
                               connector: dict | None = None) -> dict[str, Any]:
        try:  # the connector says how the node wants it (a file, or an NBD export: the agent's choice)
            info = await self.bus.call(f"volume.{host}", "initialize_connection",
                                       {"volume_id": volume_id, "access_mode": mode, "connector": connector},
                                       timeout=CONNECT_TIMEOUT)
        except RPCTimeout:
            raise Fault(f"Unable to update the attachment: the volume service on {host} did not answer within "
                        f"{CONNECT_TIMEOUT:g} s; the attachment stays reserved, try again later.",
                        code=503, kind="ServiceUnavailable") from None
        except RPCError as exc:
            raise Fault(f"Unable to update the attachment: the volume service on {host} could not export volume "
                        f"{volume_id}: {exc.message}", code=500, kind="VolumeBackendAPIException") from None
        if not isinstance(info, dict):
            raise Fault(f"Unable to update the attachment: the volume service on {host} gave no connection info.",
                        code=500, kind="VolumeBackendAPIException")
        async with self.db.session() as s:  # the front end's limits, as Cinder adds them (qos.py)
            vol = await s.get(Volume, volume_id)
            qos = await front_end_specs(s, vol) if vol is not None else None
        info.setdefault("data", {})["qos_specs"] = qos
        return info

    async def _volume_row(self, s: Any, volume_id: str, who: Caller, lock: bool = False) -> Volume:
        stmt = select(Volume).where(Volume.id == volume_id)
        row = (await s.execute(stmt.with_for_update() if lock else stmt)).scalar()
        if row is None or row.deleted or (not who.admin and row.project_id != who.project_id):
            raise NotFound(f"Volume {volume_id} could not be found.")
        return row  # type: ignore[no-any-return]

    async def _lock(self, s: Any, volume_id: str) -> None:
        """Hold the volume's row to the end of the transaction: its attachment steps take turns."""
        await s.execute(select(Volume.id).where(Volume.id == volume_id).with_for_update())

    async def _attachment_row(self, s: Any, attachment_id: str, who: Caller) -> Attachment:
        row = await s.get(Attachment, attachment_id)
        if row is None or (not who.admin and row.project_id != who.project_id):
            raise _unknown(attachment_id)
        return row  # type: ignore[no-any-return]

    @staticmethod
    def _not_attachable(vol: Volume) -> BadRequest:
        more = " (or in-use, reserved or attaching: it is multiattach)" if vol.multiattach else ""
        return BadRequest(f"Invalid volume: Volume {vol.id} status must be available{more} to attach, but current "
                          f"status is: {vol.status}.")
