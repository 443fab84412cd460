"""Delete and restore: soft delete, hard delete with the cleanup steps it must finish (also
after a restart), and restore."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Text, select, type_coerce, update
from sqlalchemy import delete as sql_delete

from cumulo.compute.models import Migration, Server, ServerGroupMember
from cumulo.compute.servers.base import RUNNING, SHUTDOWN
from cumulo.core import context
from cumulo.core.db import utcnow

LOG = logging.getLogger(__name__)


class Deletion:
    async def delete(self, server: Server, force: bool = False) -> None:
        interval = self.cfg.reclaim_instance_interval
        auth = context.current.get()
        user = auth.auth.user_id if auth and auth.auth else None
        if interval > 0 and not force and server.vm_state not in ("soft-delete", "error", "building"):
            await self.record(server.id, "delete", server.project_id, user)
            async with self.db.session() as s:
                await s.execute(update(Server).where(Server.id == server.id).values(
                    vm_state="soft-delete", task_state=None, lease_owner=None, lease_until=None))
            if server.host and server.power_state == RUNNING:
                await self.cast(server.host, "power", {"server_id": server.id, "action": "stop",
                                                       "server": await self.payload(server.id)},
                                "soft_delete", server.id, None)
            return
        await self.record(server.id, "forceDelete" if force else "delete", server.project_id, user)
        await self.hard_delete(server)

    async def hard_delete(self, server: Server) -> None:
        """Delete always wins: the server is gone at once.  What it held (ports, placement claims,
        a shelved image) is released here; a step that fails for any reason but "not found" is kept
        in the row's system_meta ``cleanup`` and retried by the reconciler until it succeeds."""
        now = utcnow()
        # the ports go first: once the server answers 404, nothing of it holds a security group
        left = await self._cleanup(server.id, ["ports"])
        async with self.db.session() as s:
            migrations = list((await s.execute(select(Migration.uuid).where(
                Migration.server_id == server.id, Migration.status.not_in(
                    ("confirmed", "reverted", "completed", "done", "error", "failed"))))).scalars())
            steps = ["claims:" + ",".join([server.id, *migrations]), "volumes"]
            image_id = (server.system_meta or {}).get("shelved_image_id")
            if image_id and server.vm_state == "shelved_offloaded":
                steps.append(f"image:{image_id}")
            # the steps are written with the delete itself: a controller killed before it ran them
            # leaves them to the reconciler (the fault matrix found the claims leaked otherwise)
            meta = (await s.execute(select(Server.system_meta).where(Server.id == server.id))).scalar() or {}
            pending = list(dict.fromkeys([*(meta.get("cleanup") or []), *left, *steps]))
            await s.execute(update(Server).where(Server.id == server.id).values(
                vm_state="deleted", task_state=None, deleted_at=now, terminated_at=now, lease_owner=None,
                lease_until=None, system_meta={**meta, "cleanup": pending}))
            await s.execute(sql_delete(ServerGroupMember).where(ServerGroupMember.server_id == server.id))
        failed = await self._cleanup(server.id, [x for x in steps if x != "volumes"])
        hosts = {server.host, (server.system_meta or {}).get("old_host")} - {None}
        for host in hosts:
            try:
                await self.bus.cast(f"compute.{host}", "destroy", {"server_id": server.id})
            except Exception as exc:  # the node's next report names an instance nothing owns: destroyed then
                LOG.warning("could not ask %s to destroy server %s now (%s): its next report will", host,
                            server.id, exc or type(exc).__name__)
        failed += await self._cleanup(server.id, ["volumes"])  # after the guest was told to go
        await self._cleanup_done(server.id, [x for x in steps if x not in failed])

    async def _cleanup(self, server_id: str, steps: list[str]) -> list[str]:
        """Run cleanup steps of a server (``ports``, ``claims:<consumer>,...``, ``image:<id>``, ``volumes``);
        returns the ones that failed, each logged with its cause."""
        left = []
        for step in steps:
            kind, _, arg = step.partition(":")
            try:
                if kind == "ports":
                    await self.release_ports(server_id)
                elif kind == "claims":
                    await self.placement.set_allocations({c: {"allocations": {}, "project_id": None,
                                                              "user_id": None} for c in arg.split(",") if c})
                elif kind == "image":
                    await self._delete_image(arg)
                elif kind == "volumes":
                    server = await self.get(server_id)
                    if server is not None:
                        await self.release_volumes(server)
            except Exception as exc:
                LOG.warning("releasing %s of server %s failed: %s; the reconciler tries again", kind, server_id,
                            exc or type(exc).__name__)
                left.append(step)
        return left

    async def _remember_cleanup(self, server_id: str, steps: list[str]) -> None:
        if not steps:
            return
        async with self.db.session() as s:
            meta = (await s.execute(select(Server.system_meta).where(Server.id == server_id))).scalar() or {}
            await s.execute(update(Server).where(Server.id == server_id).values(
                system_meta={**meta, "cleanup": list(dict.fromkeys([*(meta.get("cleanup") or []), *steps]))}))

    async def _cleanup_done(self, server_id: str, done: list[str]) -> None:
        async with self.db.session() as s:
            meta = dict((await s.execute(select(Server.system_meta).where(Server.id == server_id))).scalar() or {})
            pending = [x for x in meta.pop("cleanup", []) if x not in done]
            if pending:
                meta["cleanup"] = pending
            await s.execute(update(Server).where(Server.id == server_id).values(system_meta=meta))

    async def finish_cleanups(self) -> int:
        """Retry the cleanup steps servers (deleted or not) still have pending; returns how many
        steps are still left."""
        async with self.db.session() as s:
            rows = (await s.execute(select(Server.id, Server.system_meta).where(
                type_coerce(Server.system_meta, Text).like('%"cleanup":%')))).all()
        left_total = 0
        for server_id, meta in rows:
            steps = list((meta or {}).get("cleanup") or [])
            left = await self._cleanup(server_id, steps)
            left_total += len(left)
            async with self.db.session() as s:
                meta = dict((await s.execute(select(Server.system_meta).where(Server.id == server_id))).scalar()
                            or {})
                pending = [x for x in meta.pop("cleanup", []) if x in left or x not in steps]
                if pending:
                    meta["cleanup"] = pending
                else:
                    LOG.info("server %s: cleanup finished (%s)", server_id, ", ".join(steps))
                await s.execute(update(Server).where(Server.id == server_id).values(system_meta=meta))
        return left_total

    async def _done_soft_delete(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                                error: str | None) -> None:
        if not error:
            async with self.db.session() as s:
                await s.execute(update(Server).where(Server.id == server_id, Server.vm_state == "soft-delete")
                                .values(power_state=SHUTDOWN))

    async def restore(self, server: Server) -> None:
        action_id = await self.begin(server, "restore", ("soft-delete",), "restoring")
        if server.host and server.power_state != RUNNING:
            await self.cast(server.host, "power", {"server_id": server.id, "action": "start",
                                                   "server": await self.payload(server.id)},
                            "start", server.id, action_id)
        else:
            await self.settle(server.id, vm_state="active")
