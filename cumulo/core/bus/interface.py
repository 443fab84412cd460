"""The bus's interface, shared by its implementations: the ``Bus`` protocol, handler types, RPC
errors and AMQP topic matching (``cumulo.core.bus`` re-exports them).

Work carries the request that caused it: a message sent while a request is served (or by work
that request set going) carries its id (``rid`` in the RPC envelope and in a socket frame, the
``request_id`` header of an AMQP message; absent outside a request, and ignored by an older
peer), and its handler runs with that id on every log line it writes.  The RPCs of a request
are logged on the side that serves them (``cumulo.bus``: received, then done or failed, with
the time the handler took), which is what ``cumulo trace`` shows as the bus hops.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

from cumulo.core import context

EventHandler = Callable[[str, dict[str, Any]], Awaitable[None]]
RPCHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]
HOPS = logging.getLogger("cumulo.bus")


def request_id() -> str | None:
    """The id of the request the message being sent belongs to (None outside a request)."""
    ctx = context.current.get()
    return ctx.request_id if ctx else None


@contextlib.contextmanager
def carrying(rid: str | None) -> Iterator[None]:
    """Within: the request context of the message being handled (its id on every log line, and on
    every message sent on)."""
    ctx = context.current.get()
    if not rid or not isinstance(rid, str) or (ctx is not None and ctx.request_id == rid):
        yield
        return
    token = context.current.set(context.RequestContext(rid[:128]))
    try:
        yield
    finally:
        context.current.reset(token)


async def handle_rpc(target: str, handler: RPCHandler, method: str, args: dict[str, Any], rid: str | None,
                     kind: str) -> Any:
    """Run an RPC's handler in the request it came from; a request's RPCs are logged (the hop)."""
    with carrying(rid):
        if not rid:
            return await handler(method, args)
        HOPS.info("%s %s received by %s", kind, method, target)
        started = time.perf_counter()
        try:
            result = await handler(method, args)
        except BaseException as exc:
            HOPS.info("%s %s by %s failed after %.1f ms: %s", kind, method, target,
                      (time.perf_counter() - started) * 1000, type(exc).__name__)
            raise
        HOPS.info("%s %s by %s done in %.1f ms", kind, method, target, (time.perf_counter() - started) * 1000)
        return result


class RPCError(Exception):
    """The remote side raised; ``kind`` is its exception class name."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind, self.message = kind, message


class RPCTimeout(TimeoutError):
    pass


class Bus(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, topic: str, event: dict[str, Any]) -> None: ...
    async def subscribe(self, pattern: str, handler: EventHandler) -> None: ...
    async def serve(self, target: str, handler: RPCHandler) -> None: ...
    async def call(self, target: str, method: str, args: dict[str, Any],
                   timeout: float | None = None) -> Any: ...
    async def cast(self, target: str, method: str, args: dict[str, Any]) -> None: ...


class TopicPattern:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` is zero or more words."""

    def __init__(self, pattern: str) -> None:
        self.words = pattern.split(".")

    def match(self, topic: str) -> bool:
        return self._match(0, topic.split("."), 0)

    def _match(self, i: int, words: list[str], j: int) -> bool:
        while i < len(self.words):
            w = self.words[i]
            if w == "#":
                return any(self._match(i + 1, words, k) for k in range(j, len(words) + 1))
            if j >= len(words) or (w != "*" and w != words[j]):
                return False
            i, j = i + 1, j + 1
        return j == len(words)
