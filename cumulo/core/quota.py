"""Quota enforcement without overshoot: create first, count what is committed, undo if over.

Two requests racing for the last unit both commit, both count, and both see the limit exceeded:
each removes its own row and answers 413.  Nothing ever exceeds the limit; at worst a racing
request is refused that could have fitted, and its retry succeeds (Nova's "recheck" does the same).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from cumulo.core.http.faults import PayloadTooLarge

T = TypeVar("T")


async def create_within(limit: int | None, create: Callable[[], Awaitable[T]], count: Callable[[], Awaitable[int]],
                        undo: Callable[[T], Awaitable[None]], what: str) -> T:
    if limit is not None and limit >= 0 and await count() >= limit:
        raise PayloadTooLarge(f"Quota exceeded for {what}: the limit is {limit}.")
    created = await create()
    if limit is not None and limit >= 0 and await count() > limit:
        await undo(created)
        raise PayloadTooLarge(f"Quota exceeded for {what}: the limit is {limit}.")
    return created
