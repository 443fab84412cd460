"""The bus's interface, shared by its implementations: the ``Bus`` protocol, handler types, RPC
errors and AMQP topic matching (``cumulo.core.bus`` re-exports them)."""

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
