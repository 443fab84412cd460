"""The message bus between controllers and agents: RPC ("do this now") and events ("this happened").

Two implementations share one interface and one test-suite:

* ``memory://`` — in-process asyncio, for the single-process default cloud;
* ``amqp://...`` — RabbitMQ through aio-pika, for controllers and agents on many processes/nodes;
* ``unix:///path/bus.sock`` — a worker process's connection to its leader's hub (``local.py``):
  the embedded in-process bus, spanning the API workers of one ``cumulo up``.

Topics are dotted names (``identity.revoked``); subscribers may use ``*`` (one word) and ``#``
(any words) as in AMQP topic exchanges.  RPC targets are names (``compute.node-1``); a call
waits for one server's reply and raises ``RPCError`` with the remote error, or ``RPCTimeout``.
Payloads are JSON-serialisable dicts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

EventHandler = Callable[[str, dict[str, Any]], Awaitable[None]]
RPCHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]


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


def connect(url: str, rpc_timeout: float = 30.0, prefix: str = "cumulo") -> Bus:
    if url.startswith("memory:"):
        from cumulo.core.bus.memory import MemoryBus

        return MemoryBus(rpc_timeout)
    if url.startswith(("amqp:", "amqps:")):
        from cumulo.core.bus.rabbit import RabbitBus

        return RabbitBus(url, rpc_timeout, prefix)
    if url.startswith("unix:"):
        from cumulo.core.bus.local import SocketBus

        return SocketBus(url[len("unix://"):] if url.startswith("unix://") else url[len("unix:"):], rpc_timeout)
    raise ValueError(f"unsupported bus URL {url!r}: use memory:// or amqp://user:pass@host:5672/")
