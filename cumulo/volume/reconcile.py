"""The volume reconciler: a singleton of the leader (``Controller.run_singleton``) that ends
every volume and snapshot transition whose lease ran out (``VolumeService.end_expired``), at start
and then every few seconds.  Each pass is one step toward agreement and safe to run at any time."""

from __future__ import annotations

import asyncio
import logging

from cumulo.volume.service import VolumeService

LOG = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, volumes: VolumeService, interval: float = 5.0) -> None:
        self.volumes, self.interval = volumes, interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.reconcile()
        self._task = asyncio.get_running_loop().create_task(self._forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def reconcile(self) -> int:
        ended = (await self.volumes.end_expired() + await self.volumes.end_expired_backups()
                 + await self.volumes.end_expired_groups())
        if ended:
            LOG.info("ended %d volume and snapshot transitions past their lease", ended)
        return ended

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away for a while: try again next time
                LOG.warning("volume reconcile failed", exc_info=True)
