"""The identity service: the only interface other services (and the identity API) call.

It is assembled from mixins, one per area: ``resources`` (domains, projects, users, groups,
roles), ``assignments``, ``auth`` (tokens, revocation, catalog), ``appcreds``, ``limits`` (unified
limits as other services read and set them) and ``bootstrap``.
"""

from __future__ import annotations

import asyncio
import logging

from cumulo.core.bus import Bus
from cumulo.core.config import Config
from cumulo.core.db import Database
from cumulo.identity.service.appcreds import AppCredMixin
from cumulo.identity.service.limits import LimitsMixin
from cumulo.identity.service.resources import ResourceMixin
from cumulo.identity.tokens import KeyRepository, TokenCodec

LOG = logging.getLogger(__name__)


class IdentityService(AppCredMixin, ResourceMixin, LimitsMixin):
    def __init__(self, cfg: Config, db: Database, bus: Bus) -> None:
        super().__init__(cfg, db, bus)
        self._init_auth()
        self.keys = KeyRepository(cfg.key_repository, cfg.identity.max_active_keys)
        self.keys.setup()
        self.codec = TokenCodec(self.keys)

    async def start(self) -> None:
        await super().start()
        self._key_task = asyncio.get_running_loop().create_task(self._watch_keys())

    async def stop(self) -> None:
        self._key_task.cancel()
        await super().stop()

    async def _watch_keys(self, interval: float = 2.0) -> None:
        """Pick up `cumulo identity rotate-keys` (or a key copy from another controller)."""
        seen = self.keys.stamp()
        while True:
            await asyncio.sleep(interval)
            stamp = self.keys.stamp()
            if stamp != seen:
                try:
                    self.codec.reload()
                    seen = stamp
                    self.invalidate()
                except Exception:  # a rotation half-copied: try again next time
                    LOG.warning("could not reload the token keys", exc_info=True)


__all__ = ["IdentityService"]
