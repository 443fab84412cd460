"""The reconciler: what the agents report against what the database says, and the operations
whose lease ran out."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path

from sqlalchemy import select, update

from cumulo.compute.models import Server
from cumulo.compute.servers.base import RUNNING, SHUTDOWN, SUSPENDED
from cumulo.core.db import utcnow

LOG = logging.getLogger(__name__)
# left in the state directory by `cumulo restore`: the guests that ran when the backup was taken
# start again on their hosts' first reports, as if resume_guests_state_on_host_boot were on
RESUME_AFTER_RESTORE = ".resume-guests"


class Reconciler:
    # hosts whose first report after a restore is still to come (None: not looked yet)
    _restored_hosts_done: set[str] | None = None
    _restored: bool = False

    def _resume_after_restore(self, host: str) -> bool:
        """Whether ``host``'s first report is the first since a restore: the marker is taken (read
        and removed) the first time this process reconciles; each host is resumed once."""
        if self._restored_hosts_done is None:
            self._restored_hosts_done = set()
            marker = Path(self.compute.cfg.state_path) / RESUME_AFTER_RESTORE
            if marker.exists():
                self._restored = True
                LOG.warning("the cloud was restored (%s): the servers that ran start again as their hosts report",
                            marker.read_text().strip() or marker)
                marker.unlink(missing_ok=True)
        if not self._restored or host in self._restored_hosts_done:
            return False
        self._restored_hosts_done.add(host)
        return True

    async def sync_host(self, host: str, instances: dict[str, int], taken_at: dt.datetime | None = None,
                        first: bool = False, agent_started: dt.datetime | None = None) -> None:
        """Reconcile what a node runs with what the database says it should (Nova's power-state
        sync): instances nothing owns are destroyed (a delete the agent missed); a build whose
        report was lost (its controller died) completes when the node runs it; servers the node
        lost or that powered themselves off are shown SHUTOFF, or, on the first report after the
        agent started and with [compute] resume_guests_state_on_host_boot (or after a restore), started
        again."""
        async with self.db.session() as s:
            rows = (await s.execute(select(Server.id, Server.host, Server.vm_state, Server.task_state,
                                           Server.deleted_at, Server.system_meta, Server.updated_at).where(
                (Server.id.in_(list(instances))) | (Server.host == host)))).all()
        known = {r.id: r for r in rows}
        for instance_id in instances:
            r = known.get(instance_id)
            moving = r is not None and r.deleted_at is None and (
                r.task_state is not None or r.vm_state == "resized"
                or (r.system_meta or {}).get("old_host") == host)
            if r is None or r.deleted_at is not None or (r.host != host and not moving):
                LOG.info("instance %s on %s belongs to no server here: destroying it", instance_id, host)
                await self.bus.cast(f"compute.{host}", "destroy", {"server_id": instance_id})
        # only servers last changed before the node looked: a report overtaken by a spawn proves nothing
        before = (taken_at or utcnow()) - dt.timedelta(seconds=2)
        # (a row last changed before this agent started is not one a spawn of it overtook: after a
        # fast restart the rows the old agent's last report touched still count on the first report)
        mine = [r for r in rows if r.host == host and r.deleted_at is None and (
            r.updated_at < before or (agent_started is not None and r.updated_at < agent_started))]
        for r in rows:
            if r.host != host or r.deleted_at is not None or r.vm_state != "building" or r.task_state != "spawning":
                continue
            if instances.get(r.id) == RUNNING and r.updated_at < before:
                LOG.info("server %s runs on %s though its build was never reported: ACTIVE", r.id, host)
                await self._done_spawn(r.id, {}, {}, None)
            elif agent_started is not None and r.updated_at < agent_started and instances.get(r.id) != RUNNING:
                # handed to an agent that has restarted since: the build it had in hand is lost
                await self._done_spawn(r.id, {}, {}, f"the compute agent on {host} restarted during the build")
        down = [r.id for r in mine if r.task_state is None and r.vm_state in ("active", "paused", "suspended")
                and instances.get(r.id, SHUTDOWN) == SHUTDOWN
                and not (r.vm_state == "suspended" and instances.get(r.id) == SUSPENDED)]
        resume = first and (self._resume_after_restore(host) or self.cfg.resume_guests_state_on_host_boot)
        if down and resume:
            LOG.warning("%d servers of %s are not running after it started: starting them", len(down), host)
            for server_id in down:
                await self.cast(host, "power", {"server_id": server_id, "action": "start",
                                                "server": await self.payload(server_id)}, "start", server_id, None)
        elif down:
            LOG.warning("%d servers are not running on %s (lost, or powered off from inside): shown SHUTOFF",
                        len(down), host)
            async with self.db.session() as s:
                await s.execute(update(Server).where(Server.id.in_(down), Server.task_state.is_(None)).values(
                    vm_state="stopped", power_state=SHUTDOWN))

    async def reconcile(self) -> int:
        """Servers left building past their lease go to ERROR, their claims released; a move whose
        agent never answered goes back to its source; any other operation has its task_state
        cleared.  Soft-deleted servers older than the reclaim interval are deleted."""
        now = utcnow()
        async with self.db.session() as s:
            stuck = list((await s.execute(select(Server).where(
                Server.task_state.is_not(None), Server.deleted_at.is_(None), Server.lease_until.is_not(None),
                Server.lease_until < now))).scalars())
        for server in stuck:
            if server.vm_state == "building":
                await self.release(server.id)
                await self.fail(server.id, "The build did not finish in time: its owner stopped (controller or "
                                           "compute agent) and the lease expired.", "Build of instance timed out.")
                await self.volumes_built(server.id)
            elif server.task_state in ("resize_prep", "resize_migrating", "migrating") and \
                    (server.system_meta or {}).get("migration"):
                await self._rollback_move(server, dict(server.system_meta or {}), "the lease expired")
            elif server.vm_state == "shelved_offloaded":
                await self.release(server.id)
                await self.settle(server.id, host=None, node=None)
            else:
                await self.settle(server.id)
        interval = self.cfg.reclaim_instance_interval
        if interval > 0:
            async with self.db.session() as s:
                old = list((await s.execute(select(Server).where(
                    Server.vm_state == "soft-delete", Server.deleted_at.is_(None),
                    Server.updated_at < now - dt.timedelta(seconds=interval)))).scalars())
            for server in old:
                LOG.info("reclaiming soft-deleted server %s", server.id)
                await self.hard_delete(server)
        await self.finish_cleanups()
        return len(stuck) + await self.reconcile_volumes()

    async def _reconcile_forever(self) -> None:
        every = min(10.0, self.build_lease.total_seconds() / 2)
        if self.cfg.reclaim_instance_interval > 0:
            every = min(every, max(1.0, self.cfg.reclaim_instance_interval / 2))
        while True:
            await asyncio.sleep(every)
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                LOG.warning("server reconcile failed", exc_info=True)
