"""The object node's background work: a replicator pass and an auditor pass every interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from cumulo.object.storage.auditor import Auditor, AuditPass
from cumulo.object.storage.replicator import ReplicationPass, Replicator
from cumulo.object.storage.store import ObjectStore

log = logging.getLogger(__name__)


class Periodic:
    """A leader's background loop: ``tick()`` every ``interval`` seconds, a failing tick logged and
    the loop going on; ``start()`` and ``stop()`` as the controller's agents have them."""

    name = "periodic"
    interval = 30.0
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def tick(self) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except Exception:  # a failing pass must not end the loop; the next one tries again
                log.exception("%s pass failed", self.name)


class ObjectNode(Periodic):
    """Runs the passes in a thread, one after the other, so they never overlap each other."""

    name = "object-node"

    def __init__(self, store: ObjectStore, interval: float = 30.0) -> None:
        self.store = store
        self.interval = interval
        # each pass gets at most the interval, so a slow disk delays passes but never piles them up
        self.replicator = Replicator(store, max_seconds=max(1.0, interval))
        self.auditor = Auditor(store, max_seconds=max(1.0, interval))
        self.last_replication: ReplicationPass | None = None
        self.last_audit: AuditPass | None = None

    async def run_once(self) -> None:
        self.last_replication = await asyncio.to_thread(self.replicator.run_once)
        self.last_audit = await asyncio.to_thread(self.auditor.run_once)
        rep, aud = self.last_replication, self.last_audit
        if rep.copied or rep.removed or rep.failed or aud.quarantined:
            log.info("object node: replicated %d copies, removed %d handoff copies, %d failed; "
                     "audited %d objects, quarantined %d", rep.copied, rep.removed, rep.failed,
                     aud.checked, aud.quarantined)

    async def tick(self) -> None:
        await self.run_once()
