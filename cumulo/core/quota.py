"""Quota enforcement that is exact under concurrency: count, create and commit in turn.

``turn(db, key)`` serializes the quota-checked creates of one key (a project's resource) across
tasks, API worker processes and controllers, with a lock the database itself holds: an advisory
transaction lock on PostgreSQL, a named lock (GET_LOCK) on MariaDB/MySQL, and on SQLite (one
file, one writer) a file lock next to the database.  Inside a turn a create counts what is
committed, creates and commits before the next one counts: of N racing requests for the last
K units exactly K succeed, never more (an overshoot) and never fewer (a refusal while there was
room, which the older create-count-undo scheme gave when racers saw each other's rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import hashlib
import os
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from cumulo.core.http.faults import Conflict, PayloadTooLarge

T = TypeVar("T")
LOCK_TIMEOUT = 60  # seconds a create waits for its turn before it is refused with 409
BUSY = "Other requests of this project are being counted against its quota: try again."

_local: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
_sqlite_file = asyncio.Lock()  # one thread per process waits on the file lock, not one per request
# the turns the current task holds (a task started inside a turn inherits the variable, not the turn)
_held: contextvars.ContextVar[tuple[object, frozenset[str]]] = contextvars.ContextVar(
    "quota_turns", default=(None, frozenset()))


@contextlib.asynccontextmanager
async def turn(db: Any, key: str) -> AsyncIterator[None]:
    """Hold the turn of ``key`` (e.g. ``network:port:<project>``) on the database ``db``.  A task
    already holding it (a nested create) does not wait for itself."""
    task = asyncio.current_task()
    owner, held = _held.get()
    held = held if owner is task else frozenset()
    if key in held:
        yield
        return
    lock = _local.setdefault(key, asyncio.Lock())  # tasks of this process queue here first
    async with lock:
        token = _held.set((task, held | {key}))
        try:
            async with _database_lock(db, key, nested=bool(held)):
                yield
        finally:
            _held.reset(token)


@contextlib.asynccontextmanager
async def _database_lock(db: Any, key: str, nested: bool) -> AsyncIterator[None]:
    digest = hashlib.sha256(f"{make_url(db.url).database}:{key}".encode()).digest()
    if db.dialect == "postgresql":
        async with db.engine.begin() as conn:  # released when this transaction ends, whatever happens
            await conn.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": f"{LOCK_TIMEOUT}s"})
            try:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                                   {"k": int.from_bytes(digest[:8], "big", signed=True)})
            except DBAPIError as exc:  # lock_timeout passed
                raise Conflict(BUSY) from exc
            yield
    elif db.dialect == "mysql":
        name = f"cumulo-quota-{digest.hex()[:40]}"  # lock names are server-wide, at most 64 characters
        async with db.engine.connect() as conn:
            got = (await conn.execute(text("SELECT GET_LOCK(:n, :t)"), {"n": name, "t": LOCK_TIMEOUT})).scalar()
            if got != 1:
                raise Conflict(BUSY)
            try:
                yield
            finally:
                try:
                    await conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": name})
                except BaseException:
                    await conn.invalidate()  # closing the connection is what frees the lock then
                    raise
    else:
        path = make_url(db.url).database
        if not path or path == ":memory:" or nested:  # nested: the outer turn holds the file
            yield
            return
        async with _sqlite_file:
            fd = os.open(f"{path}.quota-lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the lock


async def create_within(limit: int | None, create: Callable[[], Awaitable[T]], count: Callable[[], Awaitable[int]],
                        undo: Callable[[T], Awaitable[None]], what: str) -> T:
    """Check, create, recount and undo when racers together went over: never an overshoot, but
    without a ``turn`` around it a racing request may be refused although there was room."""
    if limit is not None and limit >= 0 and await count() >= limit:
        raise PayloadTooLarge(f"Quota exceeded for {what}: the limit is {limit}.")
    created = await create()
    if limit is not None and limit >= 0 and await count() > limit:
        await undo(created)
        raise PayloadTooLarge(f"Quota exceeded for {what}: the limit is {limit}.")
    return created
