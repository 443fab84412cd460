"""A server's volumes (Nova's os-volume_attachments): attach, detach, what a delete does to them,
and the reconciling of attaches and detaches whose report never came.  Block storage is reached
only through ``VolumeService``, with its attachments API, as Nova uses Cinder's.

An attach reserves an attachment in block storage, writes the block device mapping (``attaching``,
with a lease), gets the connection info for the server's host (``attachment_update`` with the
host's connector) and casts the hot-plug to the agent; its report completes the attachment (the
volume becomes ``in-use``) or deletes it.  A detach moves the mapping to ``detaching`` and casts
the unplug; its report deletes the attachment (the volume becomes ``available``).  A server that
runs nowhere (shelved offloaded, or never scheduled) has its mappings changed at once.

At lease expiry the reconciler asks the agent which volumes the instance really has and makes
the record agree: an attach the guest has completes, one it lacks is rolled back; a detach the
guest finished completes, one it did not is rolled back to attached.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select, update

from cumulo.compute.models import BlockDeviceMapping, Server
from cumulo.core import context
from cumulo.core.db import IntegrityError, is_duplicate, new_id, utcnow
from cumulo.core.http.faults import BadRequest, Conflict, Forbidden, NotFound

LOG = logging.getLogger(__name__)
MAX_VOLUMES = 8  # the QEMU driver keeps this many PCIe root ports free for volumes
# the vm_states Nova attaches and detaches volumes in
ATTACH_STATES = ("active", "paused", "stopped", "shelved", "shelved_offloaded", "resized", "soft-delete")
DETACH_STATES = ("active", "paused", "stopped", "shelved", "shelved_offloaded", "resized", "soft-delete")
AGENT_TIMEOUT = 10.0


@dataclass(frozen=True)
class VolumeAttachment:
    """A server's volume as Nova shows it (``id`` is the block device mapping's uuid)."""

    id: str
    server_id: str
    volume_id: str
    device: str | None
    tag: str | None
    delete_on_termination: bool
    attachment_id: str | None
    status: str


def _attachment(row: BlockDeviceMapping) -> VolumeAttachment:
    return VolumeAttachment(row.id, row.server_id, row.volume_id, row.device_name, row.tag,
                            row.delete_on_termination, row.attachment_id, row.status)


def _caller_for(server: Server | Any) -> Any:
    """Block storage's Caller for work compute does on a server's behalf (reports, the
    reconciler, a delete's cleanup): the server's project, with the service's authority."""
    from cumulo.volume.service import Caller

    return Caller(server.project_id, server.user_id, admin=True)


def next_device(used: set[str]) -> str:
    """The first free virtio device name after the root disk (vda)."""
    for a in "bcdefghijklmnopqrstuvwxyz":
        if f"/dev/vd{a}" not in used:
            return f"/dev/vd{a}"
    raise Forbidden("The server has no free device names left.")


class Volumes:
    def _block_storage(self) -> Any:
        if self.volumes is None:
            raise BadRequest("Block storage does not run in this cloud: there are no volumes to attach.")
        return self.volumes

    async def volume_attachments(self, server_ids: list[str]) -> dict[str, list[VolumeAttachment]]:
        """Each server's volumes (attaching, attached or detaching), in the order attached."""
        out: dict[str, list[VolumeAttachment]] = {x: [] for x in server_ids}
        if not server_ids:
            return out
        async with self.db.session() as s:
            for row in (await s.execute(select(BlockDeviceMapping).where(
                    BlockDeviceMapping.server_id.in_(server_ids)).order_by(BlockDeviceMapping.created_at,
                                                                           BlockDeviceMapping.id))).scalars():
                out[row.server_id].append(_attachment(row))
        return out

    async def volume_attachment(self, server_id: str, volume_id: str) -> VolumeAttachment:
        async with self.db.session() as s:
            row = (await s.execute(select(BlockDeviceMapping).where(
                BlockDeviceMapping.server_id == server_id, BlockDeviceMapping.volume_id == volume_id))).scalar()
        if row is None:
            raise NotFound(f"Volume {volume_id} is not attached to instance {server_id}.")
        return _attachment(row)

    async def update_volume_attachment(self, server_id: str, volume_id: str, tag: str | None = None,
                                       delete_on_termination: bool | None = None) -> None:
        values: dict[str, Any] = {}
        if tag is not None:
            values["tag"] = tag
        if delete_on_termination is not None:
            values["delete_on_termination"] = delete_on_termination
        await self.volume_attachment(server_id, volume_id)
        if values:
            async with self.db.session() as s:
                await s.execute(update(BlockDeviceMapping).where(
                    BlockDeviceMapping.server_id == server_id, BlockDeviceMapping.volume_id == volume_id).values(
                    **values))

    def _connector(self, server: Server) -> dict[str, Any]:
        """The server's host as block storage sees it (os-brick's connector properties), and how
        it wants volumes (``cumulo_transport``: ``[compute] volume_transport``, file or NBD)."""
        return {"host": server.host, "ip": "127.0.0.1", "platform": "x86_64", "os_type": "linux",
                "multipath": False, "initiator": None,
                "cumulo_transport": getattr(self.cfg, "volume_transport", "auto") or "auto"}

    def _runs_somewhere(self, server: Server) -> bool:
        return bool(server.host) and server.vm_state != "shelved_offloaded"

    async def attach_volume(self, server: Server, volume_id: str, who: Any, device: str | None = None,
                            tag: str | None = None, delete_on_termination: bool = False) -> VolumeAttachment:
        block = self._block_storage()
        if server.vm_state not in ATTACH_STATES or server.task_state:
            raise Conflict(f"Cannot 'attach_volume' instance {server.id} while it is in vm_state {server.vm_state}"
                           + (f" and task_state {server.task_state}" if server.task_state else ""))
        await block.volume(volume_id, who)  # 404 for a volume the caller cannot see
        async with self.db.session() as s:
            rows = list((await s.execute(select(BlockDeviceMapping.volume_id, BlockDeviceMapping.device_name).where(
                BlockDeviceMapping.server_id == server.id))).all())
        if any(v == volume_id for v, _ in rows):
            raise BadRequest(f"Invalid volume: volume {volume_id} is already attached to instance {server.id}.")
        if len(rows) >= MAX_VOLUMES:
            raise Forbidden(f"The maximum number of volumes a server can hold ({MAX_VOLUMES}) is reached.")
        used = self._local_devices(server) | {d for _, d in rows if d}
        if not device or device in used or not device.startswith("/dev/"):
            device = next_device(used)
        attachment = await block.attachment_create(who, volume_id, server.id)
        bdm_id = new_id()
        try:
            async with self.db.session() as s:
                s.add(BlockDeviceMapping(id=bdm_id, server_id=server.id, volume_id=volume_id,
                                         attachment_id=attachment.id, device_name=device, tag=tag,
                                         delete_on_termination=delete_on_termination, status="attaching",
                                         lease_owner=self.instance, lease_until=utcnow() + self.build_lease))
        except IntegrityError as exc:
            await block.attachment_delete(who, attachment.id)
            if is_duplicate(exc):
                raise BadRequest(f"Invalid volume: volume {volume_id} is already attached to instance "
                                 f"{server.id}.") from None
            raise
        action_id = await self.record(server.id, "attach_volume", server.project_id, getattr(who, "user_id", None))
        try:
            attachment = await block.attachment_update(who, attachment.id, self._connector(server), mountpoint=device)
        except Exception:
            await self._drop_attachment(server, bdm_id, attachment.id)
            raise
        async with self.db.session() as s:
            await s.execute(update(BlockDeviceMapping).where(BlockDeviceMapping.id == bdm_id).values(
                connection_info=attachment.connection_info))
        if not self._runs_somewhere(server):  # its next start plugs it in
            await self._attached(server, bdm_id, attachment.id)
        else:
            await self.cast(server.host, "attach_volume", {
                "server_id": server.id, "volume": {"volume_id": volume_id, "device_name": device,
                                                   "connection_info": attachment.connection_info}},
                "attach_volume", server.id, action_id, bdm_id=bdm_id)
        return await self.volume_attachment(server.id, volume_id)

    async def _attached(self, server: Server, bdm_id: str, attachment_id: str | None) -> None:
        async with self.db.session() as s:
            result = await s.execute(update(BlockDeviceMapping).where(
                BlockDeviceMapping.id == bdm_id, BlockDeviceMapping.status == "attaching").values(
                status="attached", lease_owner=None, lease_until=None))
        if result.rowcount == 1 and attachment_id:
            await self._block_storage().attachment_complete(_caller_for(server), attachment_id)

    async def _drop_attachment(self, server: Server, bdm_id: str, attachment_id: str | None) -> None:
        """Forget a mapping and its attachment in block storage (its volume becomes available)."""
        if attachment_id:
            try:
                await self._block_storage().attachment_delete(_caller_for(server), attachment_id)
            except NotFound:
                pass
        async with self.db.session() as s:
            await s.execute(sql_delete(BlockDeviceMapping).where(BlockDeviceMapping.id == bdm_id))

    async def _bdm(self, bdm_id: str | None) -> BlockDeviceMapping | None:
        if not bdm_id:
            return None
        async with self.db.session() as s:
            return await s.get(BlockDeviceMapping, bdm_id)

    async def _done_attach_volume(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                                  error: str | None) -> None:
        bdm, server = await self._bdm(ctx.get("bdm_id")), await self.get(server_id)
        if bdm is None or server is None or bdm.status != "attaching":
            return  # the server was deleted, or the reconciler settled it already
        if error:
            LOG.warning("attaching volume %s to server %s failed: %s", bdm.volume_id, server_id, error)
            await self._drop_attachment(server, bdm.id, bdm.attachment_id)
            return
        await self._attached(server, bdm.id, bdm.attachment_id)

    async def detach_volume(self, server: Server, volume_id: str, who: Any) -> None:
        if server.vm_state not in DETACH_STATES or server.task_state:
            raise Conflict(f"Cannot 'detach_volume' instance {server.id} while it is in vm_state {server.vm_state}"
                           + (f" and task_state {server.task_state}" if server.task_state else ""))
        bdm = await self.volume_attachment(server.id, volume_id)
        async with self.db.session() as s:
            boot = (await s.execute(select(BlockDeviceMapping.boot_index).where(
                BlockDeviceMapping.id == bdm.id))).scalar()
            if boot == 0:
                raise BadRequest("Invalid volume: the root volume of a server cannot be detached.")
            result = await s.execute(update(BlockDeviceMapping).where(
                BlockDeviceMapping.id == bdm.id, BlockDeviceMapping.status == "attached").values(
                status="detaching", lease_owner=self.instance, lease_until=utcnow() + self.build_lease))
        if result.rowcount != 1:
            raise Conflict(f"Volume {volume_id} is being {bdm.status.rstrip('ing')}ed on instance {server.id}: "
                           "try again when it is done.".replace("attached", "attach").replace("detached", "detach"))
        action_id = await self.record(server.id, "detach_volume", server.project_id, getattr(who, "user_id", None))
        if not self._runs_somewhere(server):
            await self._detached(server, bdm.id)
            return
        await self.cast(server.host, "detach_volume", {"server_id": server.id, "volume_id": volume_id},
                        "detach_volume", server.id, action_id, bdm_id=bdm.id)

    async def _detached(self, server: Server, bdm_id: str) -> None:
        async with self.db.session() as s:
            row = await s.get(BlockDeviceMapping, bdm_id)
            attachment_id = row.attachment_id if row is not None and row.status == "detaching" else None
        if row is not None and row.status == "detaching":
            await self._drop_attachment(server, bdm_id, attachment_id)

    async def _done_detach_volume(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                                  error: str | None) -> None:
        bdm, server = await self._bdm(ctx.get("bdm_id")), await self.get(server_id)
        if bdm is None or server is None:
            return
        if bdm.status == "attached" and not error:
            # the reconciler rolled this detach back while the agent was away, but the guest did
            # let go of the volume: the record follows the guest
            LOG.warning("volume %s left server %s after its detach had been rolled back: detached", bdm.volume_id,
                        server_id)
            async with self.db.session() as s:
                await s.execute(update(BlockDeviceMapping).where(BlockDeviceMapping.id == bdm.id).values(
                    status="detaching"))
            await self._detached(server, bdm.id)
            return
        if bdm.status != "detaching":
            return
        if error:
            LOG.warning("detaching volume %s from server %s failed: %s", bdm.volume_id, server_id, error)
            await self._back_to_attached(bdm.id)
            return
        await self._detached(server, bdm.id)

    async def _back_to_attached(self, bdm_id: str) -> None:
        async with self.db.session() as s:
            await s.execute(update(BlockDeviceMapping).where(
                BlockDeviceMapping.id == bdm_id, BlockDeviceMapping.status == "detaching").values(
                status="attached", lease_owner=None, lease_until=None))

    async def _done_volume_cleanup(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                                   error: str | None) -> None:
        if error:
            LOG.info("unplugging a rolled-back volume from server %s: %s", server_id, error)

    # -- the volumes a server is created with (block_device_mapping_v2) ---------------------------
    async def prepare_volumes(self, server: Server) -> None:
        """Before a new server is scheduled: make the volumes it asked for (from an image, a
        snapshot or blank), as its user, wait until they are available, and reserve an attachment
        of each (and of the existing volumes it named).  Each gets its mapping at once, so a
        failed build's delete releases it (and deletes it if asked to).  Raises RuntimeError in
        words a user can read."""
        wanted = (server.request or {}).get("block_devices") or []
        if not wanted or await self.has_volumes(server.id):
            return  # nothing asked for, or made already (a rebuild or an unshelve keeps them)
        from cumulo.volume.service import Caller

        block = self._block_storage()
        ctx = context.current.get()
        token = ctx.auth.token if ctx and ctx.auth else ""
        user = Caller(server.project_id, server.user_id, admin=False)
        used = self._local_devices(server)
        made: list[tuple[str, str]] = []
        for v in wanted:
            if v["source_type"] == "volume":
                volume_id = v["uuid"]
            else:
                try:
                    vol = await block.create_volume(
                        user, v["volume_size"], volume_type=v.get("volume_type"), token=token,
                        image_id=v["uuid"] if v["source_type"] == "image" else None,
                        snapshot_id=v["uuid"] if v["source_type"] == "snapshot" else None,
                        name=f"{server.name}-{'root' if v['boot_index'] == 0 else len(made)}")
                except Exception as exc:
                    raise RuntimeError(f"the volume from {v['source_type']} {v.get('uuid') or ''} could not be "
                                       f"made: {getattr(exc, 'message', None) or exc}") from None
                volume_id = vol.id
            device = "/dev/vda" if v["boot_index"] == 0 else next_device(used)
            used.add(device)
            bdm_id = new_id()
            async with self.db.session() as s:
                s.add(BlockDeviceMapping(id=bdm_id, server_id=server.id, volume_id=volume_id, device_name=device,
                                         boot_index=v["boot_index"], source_type=v["source_type"], tag=v.get("tag"),
                                         delete_on_termination=bool(v["delete_on_termination"]),
                                         status="attaching"))
            made.append((bdm_id, volume_id))
        deadline = asyncio.get_running_loop().time() + self.build_lease.total_seconds()
        for bdm_id, volume_id in made:
            while (vol := await block.volume(volume_id, user)).status != "available":
                if vol.status not in ("creating", "downloading"):
                    raise RuntimeError(f"volume {volume_id} is {vol.status}, not available"
                                       + (f": {vol.fault}" if vol.fault else ""))
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"volume {volume_id} did not become available in time")
                await asyncio.sleep(0.1)
            try:
                attachment = await block.attachment_create(_caller_for(server), volume_id, server.id)
            except Exception as exc:
                raise RuntimeError(f"volume {volume_id} could not be reserved for the server: "
                                   f"{getattr(exc, 'message', None) or exc}") from None
            async with self.db.session() as s:
                await s.execute(update(BlockDeviceMapping).where(BlockDeviceMapping.id == bdm_id).values(
                    attachment_id=attachment.id))

    def _local_devices(self, server: Server) -> set[str]:
        """The device names the server's own disks take: the root, then ephemeral, swap and the
        config drive (in the order the QEMU driver plugs them)."""
        used = {"/dev/vda"}
        flavor = server.flavor or {}
        for extra in (flavor.get("ephemeral"), flavor.get("swap"), server.config_drive):
            if extra:
                used.add(next_device(used))
        return used

    async def connect_volumes(self, server: Server, host: str) -> None:
        """Once a new server has its host: the connection info of each reserved volume there."""
        async with self.db.session() as s:
            rows = list((await s.execute(select(BlockDeviceMapping).where(
                BlockDeviceMapping.server_id == server.id, BlockDeviceMapping.status == "attaching",
                BlockDeviceMapping.lease_until.is_(None)))).scalars())
        connector = {**self._connector(server), "host": host}
        for row in rows:
            attachment = await self._block_storage().attachment_update(_caller_for(server), row.attachment_id,
                                                                       connector, mountpoint=row.device_name)
            async with self.db.session() as s:
                await s.execute(update(BlockDeviceMapping).where(BlockDeviceMapping.id == row.id).values(
                    connection_info=attachment.connection_info))

    async def volumes_built(self, server_id: str) -> None:
        """A new server's build ended (either way): its volumes are its own, in-use, until it is deleted."""
        server = await self.get(server_id)
        async with self.db.session() as s:
            rows = list((await s.execute(select(BlockDeviceMapping).where(
                BlockDeviceMapping.server_id == server_id, BlockDeviceMapping.status == "attaching",
                BlockDeviceMapping.lease_until.is_(None)))).scalars())
        for row in rows:
            if server is not None and row.attachment_id:
                await self._attached(server, row.id, row.attachment_id)

    def refuse_volume_backed(self, server: Server, what: str) -> None:
        """The operations whose volume-backed variant is not built yet say so (400), before they
        touch anything."""
        if (server.request or {}).get("boot_volume"):
            raise BadRequest(f"Cannot {what} server {server.id}: it boots from a volume, and {what} of a "
                             "volume-backed server is not supported by this cloud yet.")

    # -- an in-use volume grown by block storage (Nova's volume-extended external event) -----------
    async def volume_extended(self, args: dict[str, Any]) -> None:
        """Block storage asks for an attached volume to grow to ``new_size`` GiB: the guest's QEMU
        grows it (``block_resize``, so the guest sees the new size at once), or the node grows the
        file of a guest that is not running.  The answer goes back to block storage with its ctx."""
        volume_id, size, ctx = args["volume_id"], int(args["new_size"]), args.get("ctx") or {}
        servers = list(dict.fromkeys(args.get("server_ids") or []))
        async with self.db.session() as s:
            rows = list((await s.execute(select(BlockDeviceMapping).where(
                BlockDeviceMapping.volume_id == volume_id, BlockDeviceMapping.server_id.in_(servers),
                BlockDeviceMapping.status == "attached"))).scalars())
        server = await self.get(rows[0].server_id) if len(rows) == 1 else None
        if server is None or not self._runs_somewhere(server):
            why = ("the volume is attached to more than one server" if len(rows) > 1 else
                   "no server here has the volume attached" if not rows else
                   "its server runs on no compute host now (shelved?)")
            await self._extended(ctx, f"the in-use volume could not be extended: {why}")
            return
        # the server's actions show it, as Nova's external event does (its report adds compute_extend_volume)
        action_id = await self.record(server.id, "extend_volume", server.project_id, server.user_id)
        await self.cast(server.host, "extend_volume", {"server_id": server.id, "volume_id": volume_id,
                                                       "size": size * 1024**3}, "extend_volume", server.id,
                        action_id, volume_ctx=ctx)

    async def attached_volume_chain(self, method: str, args: dict[str, Any]) -> bool:
        """A volume agent's snapshot chain work on an in-use volume, done by the QEMU of the
        running server that has it, while the guest runs: ``snapshot_volume`` (the guest goes on
        in the overlay ``overlay``) or ``merge_volume`` (block-stream of ``chain`` above ``base``
        into the active image).  False when no running server has the volume (the agent then
        works on the files itself); with ``check`` only says whether one has.  A multiattach
        volume that more than one running server writes is not chained (False): one guest moving
        onto the overlay would leave the others writing the frozen image."""
        volume_id = args["volume_id"]
        async with self.db.session() as s:
            server_ids = list((await s.execute(select(BlockDeviceMapping.server_id).where(
                BlockDeviceMapping.volume_id == volume_id, BlockDeviceMapping.status == "attached"))).scalars())
        running = []
        for server_id in dict.fromkeys(server_ids):
            server = await self.get(server_id)
            if server is not None and server.deleted_at is None and self._runs_somewhere(server):
                running.append(server)
        if len(running) != 1:
            return False
        if args.get("check"):
            return True
        server = running[0]
        done = await self.bus.call(f"compute.{server.host}", method, {
            **{k: v for k, v in args.items() if k != "timeout"}, "server_id": server.id},
            timeout=float(args.get("timeout") or 120))
        LOG.info("%s of in-use volume %s by the QEMU of server %s on %s: %s", method, volume_id, server.id,
                 server.host, "done" if done else "not running")
        return bool(done)

    async def _done_extend_volume(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                                  error: str | None) -> None:
        await self._extended(ctx.get("volume_ctx") or {}, error)

    async def _extended(self, volume_ctx: dict[str, Any], error: str | None) -> None:
        from cumulo.volume.service import CONTROLLER

        await self.bus.cast(CONTROLLER, "volume_update", {"ctx": volume_ctx, "error": error})

    async def has_volumes(self, server_id: str) -> bool:
        async with self.db.session() as s:
            return bool((await s.execute(select(func.count()).select_from(BlockDeviceMapping).where(
                BlockDeviceMapping.server_id == server_id))).scalar())

    async def volumes_payload(self, server_id: str) -> list[dict[str, Any]]:
        """The volumes an agent starts the instance with: the attached ones, and those a new
        server was created with (attaching until its build ends; they have no lease)."""
        async with self.db.session() as s:
            rows = (await s.execute(select(BlockDeviceMapping).where(
                BlockDeviceMapping.server_id == server_id, (BlockDeviceMapping.status == "attached") | (
                    (BlockDeviceMapping.status == "attaching") & BlockDeviceMapping.lease_until.is_(None))).order_by(
                BlockDeviceMapping.boot_index.is_(None), BlockDeviceMapping.boot_index, BlockDeviceMapping.created_at,
                BlockDeviceMapping.id))).scalars()
            return [{"volume_id": r.volume_id, "device_name": r.device_name, "connection_info": r.connection_info,
                     "boot_index": r.boot_index} for r in rows if r.connection_info]

    async def release_volumes(self, server: Server) -> None:
        """A deleted server's volumes: each attachment deleted (the volume available again), and
        the volumes marked delete_on_termination deleted."""
        async with self.db.session() as s:
            rows = list((await s.execute(select(BlockDeviceMapping).where(
                BlockDeviceMapping.server_id == server.id))).scalars())
        if rows and self.volumes is None:
            raise RuntimeError("block storage does not run here")
        who = _caller_for(server)
        swapping = (server.system_meta or {}).get("swap_volume") or {}
        if swapping.get("attachment_id") and self.volumes is not None:  # a swap's new volume, not yet its
            try:
                await self.volumes.attachment_delete(who, swapping["attachment_id"])
            except NotFound:
                pass
        for row in rows:
            await self._drop_attachment(server, row.id, row.attachment_id)
            if row.delete_on_termination:
                try:
                    await self.volumes.delete_volume(row.volume_id, who)
                except NotFound:
                    pass

    async def reconcile_volumes(self) -> int:
        """Attaches and detaches whose lease ran out, settled by what the instance really has."""
        now = utcnow()
        async with self.db.session() as s:
            stuck = list((await s.execute(select(BlockDeviceMapping).where(
                BlockDeviceMapping.status.in_(("attaching", "detaching")), BlockDeviceMapping.lease_until.is_not(None),
                BlockDeviceMapping.lease_until < now))).scalars())
        for bdm in stuck:
            server = await self.get(bdm.server_id)
            if server is None or server.deleted_at is not None:
                continue  # the delete's cleanup releases it
            if bdm.status == "detaching" and await self.settle_swap(server, bdm):
                continue  # a swap (volume_swap.py) settles by its own rule
            has: list[str] | None = None
            if self._runs_somewhere(server):
                try:
                    has = await self.bus.call(f"compute.{server.host}", "instance_volumes",
                                              {"server_id": server.id}, timeout=AGENT_TIMEOUT)
                except Exception as exc:
                    LOG.warning("compute host %s did not say which volumes server %s has: %s", server.host,
                                server.id, exc or type(exc).__name__)
            present = has is not None and bdm.volume_id in has
            seen = "the node did not answer" if has is None else f"the guest {'has' if present else 'lacks'} it"
            if bdm.status == "attaching":
                LOG.warning("attach of volume %s to server %s timed out; %s: %s", bdm.volume_id, server.id, seen,
                            "completed" if present else "rolled back")
                if present:
                    await self._attached(server, bdm.id, bdm.attachment_id)
                else:
                    await self._drop_attachment(server, bdm.id, bdm.attachment_id)
                    if self._runs_somewhere(server):  # an attach that lands late is undone too
                        await self.cast(server.host, "detach_volume", {"server_id": server.id,
                                                                       "volume_id": bdm.volume_id},
                                        "volume_cleanup", server.id, None)
            elif present or (has is None and self._runs_somewhere(server)):
                LOG.warning("detach of volume %s from server %s timed out; %s: rolled back to attached",
                            bdm.volume_id, server.id, seen)
                await self._back_to_attached(bdm.id)
            else:
                LOG.warning("detach of volume %s from server %s timed out; %s: completed", bdm.volume_id, server.id,
                            seen)
                await self._detached(server, bdm.id)
        return len(stuck)
