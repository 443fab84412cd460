"""The in-process bus: asyncio tasks deliver events and RPCs within one controller process (a
task starts in a copy of the sender's context: the request id goes with it by itself)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from cumulo.core.bus.interface import (
    EventHandler,
    RPCError,
    RPCHandler,
    RPCTimeout,
    TopicPattern,
    handle_rpc,
    request_id,
)

LOG = logging.getLogger(__name__)


class MemoryBus:
    def __init__(self, rpc_timeout: float = 30.0) -> None:
        self.rpc_timeout = rpc_timeout
        self._subs: list[tuple[TopicPattern, EventHandler]] = []
        self._servers: dict[str, RPCHandler] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        for regex, handler in self._subs:
            if regex.match(topic):
                self._spawn(self._deliver(handler, topic, event))

    @staticmethod
    async def _deliver(handler: EventHandler, topic: str, event: dict[str, Any]) -> None:
        try:
            await handler(topic, event)
        except Exception:
            LOG.exception("event handler for %s failed", topic)

    async def subscribe(self, pattern: str, handler: EventHandler) -> None:
        self._subs.append((TopicPattern(pattern), handler))

    async def serve(self, target: str, handler: RPCHandler) -> None:
        self._servers[target] = handler

    async def call(self, target: str, method: str, args: dict[str, Any],
                   timeout: float | None = None) -> Any:
        handler = self._servers.get(target)
        if handler is None:
            # as with a broker: nobody consumes the request, so the caller times out
            await asyncio.sleep(timeout if timeout is not None else self.rpc_timeout)
            raise RPCTimeout(f"no reply from {target} to {method}")
        try:
            return await asyncio.wait_for(handle_rpc(target, handler, method, args, request_id(), "call"),
                                          timeout or self.rpc_timeout)
        except TimeoutError:
            raise RPCTimeout(f"no reply from {target} to {method}") from None
        except RPCError:
            raise
        except Exception as exc:
            raise RPCError(type(exc).__name__, str(exc)) from exc

    async def cast(self, target: str, method: str, args: dict[str, Any]) -> None:
        handler = self._servers.get(target)
        if handler is not None:
            self._spawn(self._deliver_rpc(target, handler, method, args))

    @staticmethod
    async def _deliver_rpc(target: str, handler: RPCHandler, method: str, args: dict[str, Any]) -> None:
        try:
            await handle_rpc(target, handler, method, args, request_id(), "cast")
        except Exception:
            LOG.exception("cast %s failed", method)
