"""Snapshots and shelving: an image of the server's disk, shelve (snapshot, then free the host)
and unshelve (schedule again and boot from that image; a volume-backed server boots from its
volumes, which stayed attached)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import update

from cumulo.compute.models import Server
from cumulo.compute.scheduler.scheduler import NoValidHost
from cumulo.compute.servers.base import RUNNING, SHUTDOWN, SNAPSHOT_STATES, resources_of
from cumulo.core.http.faults import BadRequest, Forbidden, NotFound
from cumulo.image.service import Caller

LOG = logging.getLogger(__name__)


class Shelving:
    async def _done_unshelve(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                             error: str | None) -> None:
        server = await self.get(server_id)
        if server is None:
            return
        if error:
            await self.release(server_id)
            await self.settle(server_id, vm_state="shelved_offloaded", host=None, node=None)
            return
        meta = dict(server.system_meta or {})
        image_id = meta.pop("shelved_image_id", None)
        await self.settle(server_id, vm_state="active", power_state=RUNNING, system_meta=meta)
        if image_id:
            await self._drop_image(image_id, server_id)

    async def snapshot(self, server: Server, image_id: str, token: str) -> None:
        self.refuse_volume_backed(server, "snapshot")
        action_id = await self.begin(server, "createImage", SNAPSHOT_STATES, "image_snapshot")
        await self.cast(server.host or "", "snapshot", {"server_id": server.id, "image_id": image_id,
                                                         "image_url": self.image_url, "token": token},
                        "snapshot", server.id, action_id, image_id=image_id)

    async def _done_snapshot(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                             error: str | None) -> None:
        await self.settle(server_id)
        if error and ctx.get("image_id"):
            await self._drop_image(ctx["image_id"], server_id)

    async def _drop_image(self, image_id: str, server_id: str | None = None) -> None:
        """Delete an image a server's operation made and no longer needs (a failed snapshot, a
        shelved image after unshelve or delete).  A failure is logged with its cause and, when the
        image is a server's, left for the reconciler to retry: it never passes for "already gone"."""
        try:
            await self._delete_image(image_id)
        except Exception as exc:
            LOG.warning("image %s could not be deleted: %s%s", image_id, exc or type(exc).__name__,
                        "; the reconciler tries again" if server_id else "")
            if server_id:
                await self._remember_cleanup(server_id, [f"image:{image_id}"])

    async def _delete_image(self, image_id: str) -> None:
        """Delete the image; only a missing one counts as done already (a protected one is kept:
        its owner asked for that).  Any other error is raised."""
        if self.images is None:
            return
        admin = Caller(None, True, "")
        try:
            await self.images.delete_image(image_id, admin)
        except NotFound:
            LOG.info("image %s was already gone", image_id)
        except Forbidden as exc:
            LOG.warning("image %s is kept: %s", image_id, exc.message)

    async def shelve(self, server: Server, image_id: str | None, token: str) -> None:
        """Shelve: the agent snapshots the disk into ``image_id`` and removes the instance.  A
        volume-backed server (no ``image_id``) makes no image: its guest is shut down and removed,
        its volumes stay attached, and unshelve boots it from them again."""
        if image_id is None and not self.volume_backed(server):
            raise BadRequest(f"Cannot shelve server {server.id} without an image to keep its disk in.")
        meta = {"system_meta": {**(server.system_meta or {}), "shelved_image_id": image_id}} if image_id else None
        action_id = await self.begin(server, "shelve", SNAPSHOT_STATES, "shelving", meta)
        await self.cast(server.host or "", "shelve", {"server_id": server.id, "image_id": image_id,
                                                       "image_url": self.image_url, "token": token},
                        "shelve", server.id, action_id)

    async def _done_shelve(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                           error: str | None) -> None:
        if error:
            server = await self.get(server_id)
            meta = dict(server.system_meta or {}) if server else {}
            image_id = meta.pop("shelved_image_id", None)
            await self.settle(server_id, system_meta=meta)
            if image_id:
                await self._drop_image(image_id, server_id)
            return
        await self.release(server_id)  # offloaded at once: the host's resources are free again
        await self.settle(server_id, vm_state="shelved_offloaded", power_state=SHUTDOWN, host=None, node=None)

    async def unshelve(self, server: Server, zone: str | None, host: str | None) -> None:
        request = dict(server.request or {})
        request.pop("requested_host", None)
        if host:
            request["requested_host"] = host
        values: dict[str, Any] = {"request": request}
        if zone is not None:
            values["availability_zone"] = zone
        action_id = await self.begin(server, "unshelve", ("shelved_offloaded",), "spawning", values)
        server = await self.get(server.id) or server
        image_id = (server.system_meta or {}).get("shelved_image_id")
        async with self.builds:
            try:
                host_state = await self.pick(await self.request_spec(server), server, resources_of(server.flavor))
            except NoValidHost as exc:
                await self.settle(server.id)
                await self.event(action_id, "schedule_instances", None, None, exc.message)
                return
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server.id).values(
                host=host_state.host, node=host_state.node, availability_zone=host_state.zone))
        await self.cast(host_state.host, "spawn", {"server": await self.payload(server.id, image_id)}, "unshelve",
                        server.id, action_id)
