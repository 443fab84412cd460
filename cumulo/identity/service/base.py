"""Shared machinery of the identity service: the database, the change generation and caches.

Every write that can change what a token means (a user disabled, a role removed, ...) calls
``changed()``: the local generation moves on, cached validations and role maps are dropped, and
an ``identity.changed`` event tells the other controllers to do the same.  A poll of the stored
generation catches any event the bus lost.  The API workers of one machine also share a counter
(``cumulo.core.bus.shared``) that ``changed()`` bumps before the write answers and ``follow()``
reads on every validation, so a token revoked through one worker is refused by all at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cumulo.core.bus import Bus
from cumulo.core.bus.shared import SharedCounter
from cumulo.core.config import Config
from cumulo.core.db import Base, Database, is_duplicate, new_id
from cumulo.core.http.faults import Conflict, NotFound
from cumulo.identity import models as m

LOG = logging.getLogger(__name__)
T = TypeVar("T", bound=Base)

KIND = {
    m.Domain: "domain", m.Project: "project", m.User: "user", m.Group: "group", m.Role: "role",
    m.Region: "region", m.Service: "service", m.Endpoint: "endpoint", m.Credential: "credential",
    m.Policy: "policy", m.ApplicationCredential: "application credential", m.AccessRule: "access rule",
    m.RegisteredLimit: "registered limit", m.Limit: "limit", m.Trust: "trust",
    m.EndpointGroup: "endpoint group", m.Consumer: "consumer",
}
NULL_DOMAIN = "<<null>>"
MEMO_SIZE = 50000


class ServiceBase:
    def __init__(self, cfg: Config, db: Database, bus: Bus) -> None:
        self.cfg, self.db, self.bus = cfg, db, bus
        self.generation = 0
        self.instance = new_id()  # tells our own change events from other controllers'
        self._roles: dict[str, m.Role] | None = None
        self._implies: dict[str, list[str]] | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._memo: dict[tuple[Any, ...], Any] = {}
        self._stored_generation = 0
        self._shared: SharedCounter | None = None
        self._shared_seen = 0

    # -- change tracking -------------------------------------------------------------------
    async def start(self) -> None:
        self._shared = SharedCounter(self.cfg.state_path / "identity.generation")
        self._shared_seen = self._shared.value()
        await self.bus.subscribe("identity.changed", self._on_remote_change)
        async with self.db.session() as s:
            row = await s.get(m.IdentityState, 1)
            if row is None:
                s.add(m.IdentityState(id=1, generation=0))
            else:
                self._stored_generation = row.generation
        self._poll_task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        if self._poll_task:
            self._poll_task.cancel()
        if self._shared is not None:
            self._shared.close()
            self._shared = None

    def follow(self) -> None:
        """Drop the caches if another process of this machine changed identity since we last looked."""
        if self._shared is not None:
            seen = self._shared.value()
            if seen != self._shared_seen:
                self._shared_seen = seen
                self.invalidate()

    def invalidate(self) -> None:
        self.generation += 1
        self._roles = None
        self._implies = None
        self._memo.clear()
        self._on_invalidate()

    async def memo(self, key: tuple[Any, ...], load: Callable[[], Awaitable[Any]]) -> Any:
        """A read that stays valid until the next identity change (the hot paths' cache).

        Values are shared between requests: callers must not modify them.
        """
        self.follow()
        try:
            return self._memo[key]
        except KeyError:
            pass
        gen = self.generation
        value = await load()
        # "not found" is never remembered: the thing may be created a moment later
        if value is not None and gen == self.generation:
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = value
        return value

    async def cached(self, model: type[T], id_: str | None) -> T | None:
        """A row by primary key through the memo (None when absent)."""
        if not id_:
            return None

        async def load() -> T | None:
            async with self.db.reader() as s:
                return await s.get(model, id_)

        return await self.memo((model.__tablename__, id_), load)  # type: ignore[no-any-return]

    def _on_invalidate(self) -> None:
        """Hook for subclasses holding more caches."""

    async def changed(self, what: str = "") -> None:
        self.invalidate()
        if self._shared is not None:  # the write has committed: every worker here drops its caches now
            self._shared_seen = self._shared.bump()
        try:
            async with self.db.session() as s:
                await s.execute(update(m.IdentityState).where(m.IdentityState.id == 1)
                                .values(generation=m.IdentityState.generation + 1))
            await self.bus.publish("identity.changed", {"what": what, "origin": self.instance})
        except Exception:  # the poll below catches up; a lost event must not fail the write
            LOG.warning("could not announce an identity change (%s)", what, exc_info=True)

    async def _on_remote_change(self, _topic: str, event: dict[str, Any]) -> None:
        if event.get("origin") != self.instance:
            self.invalidate()

    async def _poll(self, interval: float = 5.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.db.session() as s:
                    gen = (await s.execute(select(m.IdentityState.generation))).scalar()
                if gen is not None and gen != self._stored_generation:
                    self._stored_generation = gen
                    self.invalidate()
            except asyncio.CancelledError:
                raise
            except Exception:
                LOG.warning("identity generation poll failed", exc_info=True)

    # -- generic record access -------------------------------------------------------------
    async def get(self, model: type[T], id_: str, session: AsyncSession | None = None) -> T:
        if session is None:
            async with self.db.session() as s:
                return await self.get(model, id_, s)
        row = await session.get(model, id_) if id_ else None
        if row is None:
            raise NotFound(f"Could not find {KIND.get(model, model.__tablename__)}: {id_}.")
        return row

    async def find(self, model: type[T], id_: str) -> T | None:
        async with self.db.session() as s:
            return await s.get(model, id_)

    async def list(self, model: type[T], *where: Any, order: Any = None) -> Sequence[T]:
        stmt = select(model).where(*where)
        if order is not None:
            stmt = stmt.order_by(order)
        async with self.db.session() as s:
            return (await s.execute(stmt)).scalars().all()

    async def insert(self, row: T, conflict: str) -> T:
        try:
            async with self.db.session() as s:
                s.add(row)
        except IntegrityError as exc:
            if not is_duplicate(exc):  # a foreign key or NOT NULL: not "already exists"
                raise
            raise Conflict(conflict) from None
        return row

    async def save(self, model: type[T], id_: str, values: dict[str, Any], conflict: str = "") -> T:
        try:
            async with self.db.session() as s:
                row = await self.get(model, id_, s)
                for key, value in values.items():
                    setattr(row, key, value)
        except IntegrityError as exc:
            if not is_duplicate(exc):
                raise
            raise Conflict(conflict or f"Conflict updating {KIND.get(model)} {id_}.") from None
        await self.changed(f"{model.__tablename__} updated")  # names, flags and options feed tokens
        return row

    async def remove(self, model: type[T], id_: str) -> None:
        async with self.db.session() as s:
            row = await self.get(model, id_, s)
            await s.delete(row)
        await self.changed(f"{model.__tablename__} removed")

    # -- roles, shared by assignments and tokens -------------------------------------------
    async def role_graph(self) -> tuple[dict[str, m.Role], dict[str, list[str]]]:
        """Every role by id, and the direct implications (prior id -> implied ids); cached."""
        if self._roles is None or self._implies is None:
            gen = self.generation
            async with self.db.session() as s:
                roles = {r.id: r for r in (await s.execute(select(m.Role))).scalars()}
                edges = (await s.execute(select(m.ImpliedRole))).scalars().all()
            implies: dict[str, list[str]] = {}
            for e in edges:
                implies.setdefault(e.prior_role_id, []).append(e.implied_role_id)
            if gen == self.generation:
                self._roles, self._implies = roles, implies
            return roles, implies
        return self._roles, self._implies

    async def roles_by_id(self) -> dict[str, m.Role]:
        return (await self.role_graph())[0]

    async def expand_implied(self, role_ids: set[str]) -> list[str]:
        """The roles plus everything they imply, transitively, in a stable order."""
        _, implies = await self.role_graph()
        out: list[str] = []
        seen: set[str] = set()
        stack = sorted(role_ids)
        while stack:
            rid = stack.pop(0)
            if rid in seen:
                continue
            seen.add(rid)
            out.append(rid)
            stack.extend(implies.get(rid, []))
        return out

    async def delete_where(self, model: type[Base], *where: Any) -> None:
        async with self.db.session() as s:
            await s.execute(delete(model).where(*where))
