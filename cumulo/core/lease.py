"""The leader lease: the cloud's singleton work runs in one ``cumulo up`` at a time.

Within one ``cumulo up`` the leader process is the singleton (its API workers run none).  When
several ``cumulo up`` share one PostgreSQL or MariaDB database (the scale-out case), each serves
the APIs, hosts its own agents and answers the conductor's queue, but only the holder of this
lease runs the reconcilers (builds and moves past their lease, image uploads past theirs,
reclaiming soft-deleted servers).  The others try again every few seconds and one takes over
within that interval when the holder goes.

The lease is the database's own session lock, held on a connection the holder keeps open:
``pg_try_advisory_lock`` on PostgreSQL, ``GET_LOCK`` (named after the database) on MariaDB and
MySQL, and an ``flock`` on ``<database>.leader`` for SQLite.  It needs no table, and the
database lets go of it the moment the holder's connection ends (a crash, ``kill -9``, a lost
network), so there is no expiry to wait for.  Should the holder lose its connection while it
lives, it says so in the log and tries to take the lease again; the reconcilers it runs meanwhile
stay harmless, since each acts only on leases that expired, with conditional updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from cumulo.core.db import Database

LOG = logging.getLogger("cumulo.lease")
PG_KEY = 0x63756D756C6F  # "cumulo": advisory locks are per database, so one key serves every cloud


class LeaderLease:
    def __init__(self, db: Database, interval: float = 5.0) -> None:
        self.db, self.interval = db, interval
        self.held = False
        self._conn: Any = None
        self._fd: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._on_acquired: Callable[[], Awaitable[None]] | None = None
        self._started_singletons = False

    async def start(self, on_acquired: Callable[[], Awaitable[None]],
                    on_change: Callable[[bool], None] | None = None) -> None:
        """Take the lease now if it is free (``on_acquired`` then runs before this returns), and
        keep trying or watching in the background."""
        self._on_acquired, self._on_change = on_acquired, on_change
        await self._try()
        self._task = asyncio.get_running_loop().create_task(self._keep())

    async def _try(self) -> None:
        try:
            got = await self._acquire()
        except Exception as exc:  # noqa: BLE001  (the database is away: try again later)
            LOG.warning("could not ask for the leader lease: %s", exc)
            got = False
        if got == self.held:
            return
        self.held = got
        if got:
            LOG.info("this controller holds the leader lease: the reconcilers run here")
            if not self._started_singletons and self._on_acquired is not None:
                self._started_singletons = True
                await self._on_acquired()
        if self._on_change is not None:
            self._on_change(self.held)

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.held and not await self._still_held():
                LOG.warning("the leader lease's database connection was lost: taking the lease again")
                await self._drop()
                self.held = False
                if self._on_change is not None:
                    self._on_change(False)
            if not self.held:
                await self._try()

    async def _acquire(self) -> bool:
        dialect = self.db.dialect
        if dialect == "sqlite":
            path = make_url(self.db.url).database
            if not path or path == ":memory:":
                return True
            if self._fd is None:
                self._fd = os.open(path + ".leader", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
        if self._conn is None:
            conn = await self.db.engine.connect()
            self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        if dialect == "postgresql":
            got = (await self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": PG_KEY})).scalar()
        else:
            got = (await self._conn.execute(text("SELECT GET_LOCK(CONCAT('cumulo-leader.', DATABASE()), 0)"))
                   ).scalar() == 1
        if not got:  # keep no connection while we only wait
            await self._drop()
        return bool(got)

    async def _still_held(self) -> bool:
        if self._conn is None:
            return self.db.dialect == "sqlite"
        try:
            await asyncio.wait_for(self._conn.execute(text("SELECT 1")), self.interval)
            return True
        except Exception:  # noqa: BLE001
            return False

    async def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.invalidate()  # never back to the pool holding the lock
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        self.held = False
