"""The bus's interface, shared by its implementations: the ``Bus`` protocol, handler types, RPC
errors and AMQP topic matching (``cumulo.core.bus`` re-exports them).

Work carries the request that caused it: a message sent while a request is served (or by work
that request set going) carries its id (``rid`` in the RPC envelope and in a socket frame, the
``request_id`` header of an AMQP message; absent outside a request, and ignored by an older
peer), and its handler runs with that id on every log line it writes.  The RPCs of a request
are logged on the side that serves them (``cumulo.bus``: received, then done or failed, with
the time the handler took), which is what ``cumulo trace`` shows as the bus hops.

Versioned messages (so controllers and agents of two releases run side by side during an
upgrade): an RPC or cast envelope carries ``v``, the message format version (``BUS_VERSION``);
an envelope without ``v`` is version 1 (every release before 0.2).  The rule:

* a sender writes ``BUS_VERSION``;
* a receiver handles versions ``BUS_VERSION - 1`` to ``BUS_VERSION + 1``: the previous release's
  messages, and the next one's, since a new version may only *add* fields (a reader ignores a
  field it does not know, and a handler takes a field the previous version did not send as
  optional);
* a change that removes, renames or changes the meaning of a field takes two versions: N+1
  sends the new field beside the old one, N+2 stops sending the old one;
* ``BUS_VERSION`` goes up at most once per minor release, so an agent one minor release behind
  the controllers (what ``cumulo upgrade check`` lets through with a warning) always speaks a
  version they read, and reads theirs;
* a message outside the window is refused: a call gets ``RPCError`` of kind
  ``IncompatibleMessage``, a cast is logged and dropped (``cumulo upgrade check`` fails on
  agents that far apart before it comes to that).

Version 2: ``v`` itself, and agents' reports (``report_node``, ``report_pool``, the network
agents' ``report``) carry ``version``, the code version the agent runs.  Events carry no ``v``
(their payloads only ever gain fields).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

from cumulo.core import context

# the message format version this code writes (see the module's docstring); 1: no "v" in the envelope
BUS_VERSION = 2
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


class IncompatibleMessage(Exception):
    """A bus message of a format version this code does not read (more than one version apart)."""


def stamped(envelope: dict[str, Any]) -> dict[str, Any]:
    """An RPC envelope with this code's message format version in it."""
    envelope["v"] = BUS_VERSION
    return envelope


def message_version(envelope: dict[str, Any]) -> int:
    """The format version of a received envelope (1 when it carries none), or
    ``IncompatibleMessage`` when this code does not read it."""
    v = envelope.get("v", 1)
    if isinstance(v, bool) or not isinstance(v, int):
        raise IncompatibleMessage(f"bus message version {v!r} is not a number")
    if abs(v - BUS_VERSION) > 1:
        raise IncompatibleMessage(f"bus message version {v}: this side (version {BUS_VERSION}) reads "
                                  f"{BUS_VERSION - 1} to {BUS_VERSION + 1}; upgrade the older side "
                                  f"(`cumulo upgrade check`)")
    return v


async def handle_rpc(target: str, handler: RPCHandler, method: str, args: dict[str, Any], rid: str | None,
                     kind: str, envelope: dict[str, Any] | None = None) -> Any:
    """Run an RPC's handler in the request it came from; a request's RPCs are logged (the hop).
    ``envelope`` (the received message, when it crossed a process) is checked for its version."""
    if envelope is not None:
        message_version(envelope)
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
