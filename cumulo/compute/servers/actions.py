"""Power and state actions (stop, start, reboot, pause, suspend and their reverses), lock,
reset-state, rebuild, the console log and a server's tags."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import select, update

from cumulo.compute.models import Server, ServerTag
from cumulo.compute.servers.base import ACTION_NAMES, POWER, RUNNING, SHUTDOWN
from cumulo.core import context
from cumulo.core.http.faults import BadRequest, Conflict

LOG = logging.getLogger(__name__)


class Actions:
    async def _done_rebuild(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                            error: str | None) -> None:
        if error:
            await self.fail(server_id, error, "Rebuild of the instance failed.", None, "compute_rebuild_instance")
            return
        stopped = ctx.get("stopped")
        await self.settle(server_id, vm_state="stopped" if stopped else "active",
                          power_state=SHUTDOWN if stopped else RUNNING)

    async def act(self, server: Server, action: str) -> None:
        allowed, task_state, _, _ = POWER[action]
        action_id = await self.begin(server, ACTION_NAMES.get(action, action), allowed, task_state)
        if not server.host:
            await self.settle(server.id)
            return
        await self.cast(server.host, "power", {"server_id": server.id, "action": action,
                                               "server": await self.payload(server.id)}, action, server.id, action_id)

    async def _done_power(self, server_id: str, action: str, error: str | None) -> None:
        if error:
            await self.settle(server_id)
            return
        _, _, vm_state, power_state = POWER[action]
        await self.settle(server_id, vm_state=vm_state, power_state=power_state)

    async def set_locked(self, server: Server, locked: bool, reason: str | None) -> None:
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server.id).values(
                locked=locked, locked_reason=reason if locked else None))
        auth = context.current.get()
        await self.record(server.id, "lock" if locked else "unlock", server.project_id,
                          auth.auth.user_id if auth and auth.auth else None)

    async def reset_state(self, server: Server, state: str) -> None:
        await self.record(server.id, "resetState", server.project_id, None)
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server.id).values(
                vm_state=state, task_state=None, lease_owner=None, lease_until=None))

    async def rebuild(self, server: Server, image_id: str, values: dict[str, Any],
                      image_properties: dict[str, Any]) -> None:
        """Rebuild: the guest is made again from ``image_id``.  A volume-backed server keeps its
        volumes as they are (no reimage): only the image its root volume holds is accepted, and the
        guest is started again from it (Nova's behaviour before 2.93's reimage)."""
        request = {**(server.request or {}), "image_properties": image_properties}
        if self.volume_backed(server):
            await self.check_volume_backed_rebuild(server, image_id)
            image_id, request = server.image_id, dict(server.request or {})
        stopped = server.vm_state == "stopped"
        action_id = await self.begin(server, "rebuild", ("active", "stopped", "error"), "rebuilding",
                                     {"image_id": image_id, "request": request, **values})
        if not server.host:
            await self.settle(server.id)
            return
        await self.cast(server.host, "rebuild", {"server": await self.payload(server.id)}, "rebuild", server.id,
                        action_id, stopped=stopped)

    async def console_output(self, server: Server, length: int | None) -> str:
        if not server.host or server.vm_state in ("building", "shelved_offloaded"):
            raise Conflict(f"Instance {server.id} is not ready yet: it has no console output.")
        try:
            out: str = await self.bus.call(f"compute.{server.host}", "console", {"server_id": server.id},
                                           timeout=15)
        except Exception as exc:
            raise Conflict(f"The compute host {server.host} did not return the console: {exc}") from None
        if length is not None:  # Nova's tail: the last ``length`` pieces of the text split at newlines
            out = "\n".join(out.split("\n")[-length:]) if length else ""
        return out

    async def tags(self, server_ids: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {x: [] for x in server_ids}
        if not server_ids:
            return out
        async with self.db.session() as s:
            for server_id, tag in (await s.execute(select(ServerTag.server_id, ServerTag.tag).where(
                    ServerTag.server_id.in_(server_ids)).order_by(ServerTag.tag))).all():
                out[server_id].append(tag)
        return out

    async def set_tags(self, server_id: str, tags: list[str], replace: bool = True) -> list[str]:
        async with self.db.session() as s:
            have = set((await s.execute(select(ServerTag.tag).where(ServerTag.server_id == server_id))).scalars())
            wanted = set(tags) if replace else have | set(tags)
            if len(wanted) > 50:
                raise BadRequest("A server may have at most 50 tags.")
            for tag in have - wanted:
                await s.execute(sql_delete(ServerTag).where(ServerTag.server_id == server_id, ServerTag.tag == tag))
            for tag in wanted - have:
                s.add(ServerTag(server_id=server_id, tag=tag))
        return sorted(wanted)

    async def delete_tag(self, server_id: str, tag: str) -> bool:
        async with self.db.session() as s:
            result = await s.execute(sql_delete(ServerTag).where(ServerTag.server_id == server_id,
                                                                 ServerTag.tag == tag))
        return bool(result.rowcount)
