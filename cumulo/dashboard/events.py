"""The dashboard's event stream: ``GET /events`` as server-sent events, from the bus's resource events.

One subscription per process (``resource.#``, see ``cumulo.core.events``) fans out to every open
stream through a bounded queue each (a slow browser loses its oldest events, never the
process's memory).  A stream gets only the events of the project its session is scoped to, or
every project's when the session is an admin's; an event names a resource and its new status,
and the page fetches what it shows through the API with the user's token.  A comment line every
15 s keeps proxies from closing an idle stream; the stream ends when the session's token expires,
or when ``still_valid`` (asked every REVALIDATE seconds: identity's answer for the token) says
the token was revoked, so a sign-out (or a copied cookie's token revoked) stops its streams too.

A page opens its stream only after it was rendered: what changed in between would never reach
it.  So the process keeps its last RECENT events (at most REPLAY seconds old), and a stream
opened with ``since`` (the time the page's request began) first sends those that came after it;
a resource changed twice is fetched twice, which is harmless.  The subscription is made when the
app starts, so the first page of a process misses nothing either.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

QUEUE = 256
KEEPALIVE = 15.0
MAX_STREAMS = 1000
MAX_PER_USER = 16  # one user's tabs; without it one tenant's script could take all MAX_STREAMS
REVALIDATE = 60.0
RECENT = 1024  # events kept for streams that open after their page was rendered
REPLAY = 30.0  # seconds back such a stream is sent what it missed


class EventStream:
    def __init__(self, bus: Any) -> None:
        self.bus = bus
        # (number, time received, event): the number tells a replayed event from the same one queued
        self.queues: set[asyncio.Queue[tuple[int, float, dict[str, Any]]]] = set()
        self.recent: deque[tuple[int, float, dict[str, Any]]] = deque(maxlen=RECENT)
        self.received = 0
        self.per_user: dict[str, int] = {}
        self._subscribed = False
        self._lock = asyncio.Lock()
        self.delivered = 0

    async def start(self) -> None:
        """Subscribe now (the app's startup), so that events before the first stream are kept."""
        await self._ensure()

    async def _ensure(self) -> None:
        async with self._lock:
            if not self._subscribed:
                await self.bus.subscribe("resource.#", self._on_event)
                self._subscribed = True

    async def _on_event(self, topic: str, event: dict[str, Any]) -> None:
        self.received += 1
        item = (self.received, time.time(), event)
        self.recent.append(item)
        for q in list(self.queues):
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(item)

    async def stream(self, project_id: str, everything: bool, expires_at: float,
                     still_valid: Callable[[], Awaitable[bool]] | None = None,
                     revalidate: float = REVALIDATE, user: str = "", since: float = 0.0) -> AsyncIterator[bytes]:
        if len(self.queues) >= MAX_STREAMS or self.per_user.get(user, 0) >= MAX_PER_USER:
            yield b"retry: 30000\n: too many open streams\n\n"
            return
        q: asyncio.Queue[tuple[int, float, dict[str, Any]]] = asyncio.Queue(QUEUE)
        self.queues.add(q)
        self.per_user[user] = self.per_user.get(user, 0) + 1
        try:
            await self._ensure()
            yield b"retry: 3000\n: connected\n\n"
            replayed = 0  # the queue's events up to this number were in the replay already
            if since:
                floor = max(since, time.time() - REPLAY)
                missed = [(n, e) for n, stamp, e in self.recent if stamp >= floor]
                replayed = max((n for n, _ in missed), default=0)
                for _, event in missed:
                    if everything or event.get("project_id") == project_id:
                        self.delivered += 1
                        yield b"data: " + orjson.dumps(event) + b"\n\n"
            checked = time.monotonic()
            while time.time() < expires_at:
                if still_valid is not None and time.monotonic() - checked >= revalidate:
                    checked = time.monotonic()
                    if not await still_valid():
                        yield b": the session has ended\n\n"
                        return
                try:
                    number, _, event = await asyncio.wait_for(q.get(), min(KEEPALIVE, revalidate))
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if number <= replayed:
                    continue
                if everything or event.get("project_id") == project_id:
                    self.delivered += 1
                    yield b"data: " + orjson.dumps(event) + b"\n\n"
        finally:
            self.queues.discard(q)
            self.per_user[user] -= 1
            if not self.per_user[user]:
                del self.per_user[user]
