"""Swap volume (PUT os-volume_attachments/{volume_id} naming another volume): the running guest's
disk moves from one volume to another without the guest noticing, the way Nova does it when
block storage migrates or retypes an in-use volume.

Nova today takes a swap only while the old volume is migrating (block storage asked for it) and
only from a service (the policy); the API checks that.  Here compute reserves the new volume
(``attachment_create``) and connects it on the server's host (``attachment_update``), moves the
mapping to ``detaching`` with a lease and casts the copy to the agent (QEMU ``blockdev-mirror``
and pivot, ``virt/qemu/swap.py``).  Its report either completes the new attachment, points the
mapping at the new volume and deletes the old attachment (the old volume is ``available``), or
deletes the new attachment and puts the mapping back.  The swap in flight is kept in the server's
system metadata (``swap_volume``), so if its report never comes the volume reconciler settles it
at the lease's end by what the guest has.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import update

from cumulo.compute.models import BlockDeviceMapping, Server
from cumulo.compute.servers.volumes import AGENT_TIMEOUT, _caller_for
from cumulo.core.db import utcnow
from cumulo.core.http.faults import BadRequest, Conflict, NotFound

LOG = logging.getLogger(__name__)
SWAP_STATES = ("active", "paused", "resized")  # Nova's: the guest must run for its disk to be copied


class VolumeSwap:
    async def swap_volume(self, server: Server, old_volume_id: str, new_volume_id: str, who: Any) -> None:
        """Start the swap of ``old_volume_id`` for ``new_volume_id`` on the server (202 follows);
        the faults are Nova's: 404 for an old volume the server lacks, 400 for a new volume that
        is missing, attached, smaller, or an old one with other read/write attachments, 409 for a
        server in another state."""
        block = self._block_storage()
        if server.vm_state not in SWAP_STATES or server.task_state:
            raise Conflict(f"Cannot 'swap_volume' instance {server.id} while it is in vm_state {server.vm_state}"
                           + (f" and task_state {server.task_state}" if server.task_state else ""))
        bdm = await self.volume_attachment(server.id, old_volume_id)
        old = await block.volume(old_volume_id, who)
        try:
            new = await block.volume(new_volume_id, who)
        except NotFound:
            raise BadRequest(f"Volume {new_volume_id} could not be found.") from None
        if new.attach_status == "attached" or new.attachments or new.status != "available":
            raise BadRequest("Invalid volume: the new volume must be available (detached) in order to swap.")
        if new.size < old.size:
            raise BadRequest("Invalid volume: the new volume must be the same size or larger.")
        if sum(1 for a in old.attachments if a.attach_mode == "rw") > 1:
            raise BadRequest("Swapping multi-attach volumes with more than one read/write attachment is not "
                             "supported.")
        if not self._runs_somewhere(server):
            raise Conflict(f"Cannot 'swap_volume' instance {server.id}: it runs on no compute host.")
        attachment = await block.attachment_create(_caller_for(server), new_volume_id, server.id)
        try:
            attachment = await block.attachment_update(_caller_for(server), attachment.id, self._connector(server),
                                                       mountpoint=bdm.device)
        except Exception:
            await block.attachment_delete(_caller_for(server), attachment.id)
            raise
        async with self.db.session() as s:
            moved = await s.execute(update(BlockDeviceMapping).where(
                BlockDeviceMapping.id == bdm.id, BlockDeviceMapping.status == "attached").values(
                status="detaching", lease_owner=self.instance, lease_until=utcnow() + self.build_lease))
        if moved.rowcount != 1:
            await block.attachment_delete(_caller_for(server), attachment.id)
            raise Conflict(f"Volume {old_volume_id} is being attached or detached on instance {server.id}: try "
                           "again when it is done.")
        await self._remember_swap(server.id, {"bdm_id": bdm.id, "volume_id": new_volume_id,
                                              "attachment_id": attachment.id})
        action_id = await self.record(server.id, "swap_volume", server.project_id, getattr(who, "user_id", None))
        await self.cast(server.host, "swap_volume", {
            "server_id": server.id, "old_volume_id": old_volume_id,
            "volume": {"volume_id": new_volume_id, "device_name": bdm.device,
                       "connection_info": attachment.connection_info}},
            "swap_volume", server.id, action_id, bdm_id=bdm.id, attachment_id=attachment.id,
            volume_id=new_volume_id)

    async def _remember_swap(self, server_id: str, pending: dict[str, Any] | None) -> None:
        """The swap in flight, in the server's system metadata, so the reconciler can settle it."""
        server = await self.get(server_id)
        if server is None:
            return
        meta = {k: v for k, v in (server.system_meta or {}).items() if k != "swap_volume"}
        if pending:
            meta["swap_volume"] = pending
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server_id).values(system_meta=meta))

    async def _done_swap_volume(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                                error: str | None) -> None:
        bdm, server = await self._bdm(ctx.get("bdm_id")), await self.get(server_id)
        if bdm is None or server is None or bdm.status != "detaching" or bdm.volume_id == ctx.get("volume_id"):
            return  # the server was deleted, or the reconciler settled it already
        await self._finish_swap(server, bdm, ctx["volume_id"], ctx["attachment_id"], error)

    async def _finish_swap(self, server: Server, bdm: BlockDeviceMapping, new_volume_id: str, new_attachment: str,
                           error: str | None) -> None:
        """The mapping follows the guest: onto the new volume (its attachment completed, the old
        one's deleted), or back on the old one (the new attachment deleted)."""
        block = self._block_storage()
        who = _caller_for(server)
        await self._remember_swap(server.id, None)
        if error:
            LOG.warning("swapping volume %s of server %s for %s failed: %s", bdm.volume_id, server.id, new_volume_id,
                        error)
            try:
                await block.attachment_delete(who, new_attachment)
            except NotFound:
                pass
            await self._back_to_attached(bdm.id)
            return
        info = await block.attachment(new_attachment, who)
        async with self.db.session() as s:
            await s.execute(update(BlockDeviceMapping).where(BlockDeviceMapping.id == bdm.id).values(
                volume_id=new_volume_id, attachment_id=new_attachment, connection_info=info.connection_info,
                status="attached", lease_owner=None, lease_until=None))
        await block.attachment_complete(who, new_attachment)
        if bdm.attachment_id:
            try:
                await block.attachment_delete(who, bdm.attachment_id)
            except NotFound:
                pass
        LOG.info("server %s: volume %s swapped for %s", server.id, bdm.volume_id, new_volume_id)

    async def settle_swap(self, server: Server, bdm: BlockDeviceMapping) -> bool:
        """At the lease's end of a mapping that is ``detaching``: if it is a swap whose report never
        came, settle it by what the guest has (the new volume: done; else rolled back) and say so.
        A node that does not answer keeps it for the next round."""
        pending = (server.system_meta or {}).get("swap_volume") or {}
        if pending.get("bdm_id") != bdm.id:
            return False
        try:
            has = await self.bus.call(f"compute.{server.host}", "instance_volumes", {"server_id": server.id},
                                      timeout=AGENT_TIMEOUT)
        except Exception as exc:
            LOG.warning("compute host %s did not say which volumes server %s has (a swap waits): %s", server.host,
                        server.id, exc or type(exc).__name__)
            async with self.db.session() as s:
                await s.execute(update(BlockDeviceMapping).where(BlockDeviceMapping.id == bdm.id).values(
                    lease_until=utcnow() + self.build_lease))
            return True
        done = has is not None and pending["volume_id"] in has
        LOG.warning("swap of volume %s on server %s timed out; the guest %s the new one: %s", bdm.volume_id,
                    server.id, "has" if done else "lacks", "completed" if done else "rolled back")
        await self._finish_swap(server, bdm, pending["volume_id"], pending["attachment_id"],
                                None if done else "the swap's report never came and the guest lacks the new volume")
        return True
