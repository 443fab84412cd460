"""The object expirer (Swift's object-expirer): the leader's background loop that deletes the
objects whose X-Delete-At has come, ``ObjectService.expire_due`` a batch at a time.  The operator's
manual is ``cumulo.object.middleware.expiry``."""

from __future__ import annotations

import asyncio
import logging

from cumulo.object.service import EXPIRE_BATCH, ObjectService
from cumulo.object.storage.node import Periodic

log = logging.getLogger(__name__)


class ObjectExpirer(Periodic):
    """A pass every ``interval`` seconds; a full batch is followed by the next one at once."""

    name = "object-expirer"

    def __init__(self, svc: ObjectService, interval: float = 30.0) -> None:
        self.svc = svc
        self.interval = max(0.1, interval)
        self.expired = 0  # objects deleted since start

    async def run_once(self) -> int:
        """One batch; how many objects it deleted."""
        done = await self.svc.expire_due(EXPIRE_BATCH)
        self.expired += done
        if done:
            log.info("object expirer: deleted %d expired objects", done)
        return done

    async def tick(self) -> None:
        # catch up after downtime, but give the loop back between batches
        for _ in range(50):
            if await self.run_once() < EXPIRE_BATCH:
                break
            await asyncio.sleep(0)
