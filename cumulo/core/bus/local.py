"""The local socket bus: the embedded cloud's bus across the processes of one machine.

With ``[bus] url = "memory://"`` and several API workers, the leader (``cumulo up``) runs a
``HubBus``: the in-process bus it always had, which also listens on a unix socket
(``<state_dir>/bus.sock``, mode 0600) so that the worker processes it started join it as
``SocketBus`` clients.  Every message goes through the hub:

* an event published anywhere reaches every matching subscriber of every process (the
  publisher's own too, as on the in-process bus and RabbitMQ);
* an RPC ``call``/``cast`` goes to a server of the target in the hub's own process if there is
  one (the conductor, the agents, the dataplane's desired state all live in the leader), else to
  a worker that serves it; a target nobody serves times out as with a broker.

Why a hub in the leader rather than a broker or SQLite-backed events: the leader already owns
every RPC server of the embedded cloud, so an RPC from a worker is one hop over the socket and
an RPC inside the leader costs what it did before; it needs no new daemon and no polling (the
socket wakes the reader at once, where a table of events would be polled).  If the leader goes,
the workers' connection drops and they stop: the leader is also their supervisor.

Frames are a 4-byte big-endian length and an orjson document; a message sent within a request
has its id in ``rid``; an RPC's frames (``call``, ``cast``, ``request``) carry the message format
version ``v`` as RPC envelopes do (``interface``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import struct
from pathlib import Path
from typing import Any

import orjson

from cumulo.core.bus.interface import (
    EventHandler,
    IncompatibleMessage,
    RPCError,
    RPCHandler,
    RPCTimeout,
    TopicPattern,
    carrying,
    handle_rpc,
    message_version,
    request_id,
    stamped,
)
from cumulo.core.bus.memory import MemoryBus

LOG = logging.getLogger(__name__)
HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024


def frame(message: dict[str, Any]) -> bytes:
    body = orjson.dumps(message)
    return HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any]:
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    if size > MAX_FRAME:
        raise ConnectionError(f"bus frame of {size} bytes")
    return orjson.loads(await reader.readexactly(size))  # type: ignore[no-any-return]


def reply_of(outcome: BaseException | None, value: Any = None) -> dict[str, Any]:
    if outcome is None:
        return {"ok": value}
    if isinstance(outcome, RPCTimeout):
        return {"timeout": str(outcome)}
    if isinstance(outcome, RPCError):
        return {"error": [outcome.kind, outcome.message]}
    return {"error": [type(outcome).__name__, str(outcome)]}


def outcome_of(reply: dict[str, Any]) -> Any:
    if "timeout" in reply:
        raise RPCTimeout(reply["timeout"])
    if "error" in reply:
        raise RPCError(*reply["error"])
    return reply.get("ok")


class Peer:
    """A worker process connected to the hub."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.patterns: list[TopicPattern] = []
        self.targets: set[str] = set()
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


class HubBus(MemoryBus):
    """The in-process bus of the leader, open to its workers on a unix socket."""

    def __init__(self, path: str | Path, rpc_timeout: float = 30.0) -> None:
        super().__init__(rpc_timeout)
        self.path = str(path)
        self.peers: list[Peer] = []
        self._server: asyncio.AbstractServer | None = None
        self._ids = itertools.count(1)
        self._turn = itertools.count()

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._peer, self.path)
        finally:
            os.umask(old)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for peer in list(self.peers):
                peer.writer.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self._server = None
        await super().stop()

    # -- the bus, for the leader's own callers (and what the workers send) --------------------
    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        await super().publish(topic, event)
        data: bytes | None = None
        for peer in list(self.peers):
            if any(p.match(topic) for p in peer.patterns):
                data = data or frame({"op": "event", "topic": topic, "event": event, "rid": request_id()})
                with contextlib.suppress(ConnectionError):
                    await peer.send(data)

    def _peer_serving(self, target: str) -> Peer | None:
        serving = [p for p in self.peers if target in p.targets]
        return serving[next(self._turn) % len(serving)] if serving else None

    async def call(self, target: str, method: str, args: dict[str, Any],
                   timeout: float | None = None) -> Any:
        timeout = timeout if timeout is not None else self.rpc_timeout
        if target in self._servers:
            return await super().call(target, method, args, timeout)
        peer = self._peer_serving(target)
        if peer is None:
            return await super().call(target, method, args, timeout)  # waits, then RPCTimeout
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        peer.pending[rid] = fut
        try:
            await peer.send(frame(stamped({"op": "request", "id": rid, "target": target, "method": method,
                                           "args": args, "rid": request_id()})))
            reply = await asyncio.wait_for(fut, timeout)
        except (TimeoutError, ConnectionError):
            raise RPCTimeout(f"no reply from {target} to {method}") from None
        finally:
            peer.pending.pop(rid, None)
        return outcome_of(reply)

    async def cast(self, target: str, method: str, args: dict[str, Any]) -> None:
        if target in self._servers:
            await super().cast(target, method, args)
            return
        peer = self._peer_serving(target)
        if peer is not None:
            with contextlib.suppress(ConnectionError):
                await peer.send(frame(stamped({"op": "request", "id": None, "target": target, "method": method,
                                               "args": args, "rid": request_id()})))

    # -- a worker's connection ----------------------------------------------------------------
    async def _peer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(writer)
        self.peers.append(peer)
        try:
            while True:
                msg = await read_frame(reader)
                op = msg.get("op")
                if op == "sub":
                    peer.patterns.append(TopicPattern(msg["pattern"]))
                elif op == "serve":
                    peer.targets.add(msg["target"])
                elif op == "pub":
                    with carrying(msg.get("rid")):
                        await self.publish(msg["topic"], msg["event"])
                elif op == "call":
                    self._spawn(self._call_for(peer, msg))
                elif op == "cast":
                    try:
                        message_version(msg)
                    except IncompatibleMessage as exc:
                        LOG.error("cast %s to %s dropped: %s", msg.get("method"), msg.get("target"), exc)
                        continue
                    with carrying(msg.get("rid")):
                        await self.cast(msg["target"], msg["method"], msg["args"])
                elif op == "reply":
                    fut = peer.pending.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            LOG.exception("bus peer failed")
        finally:
            self.peers.remove(peer)
            for fut in peer.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("the worker went away"))
            writer.close()

    async def _call_for(self, peer: Peer, msg: dict[str, Any]) -> None:
        try:
            message_version(msg)
            with carrying(msg.get("rid")):
                value = await self.call(msg["target"], msg["method"], msg["args"], msg.get("timeout"))
            reply = reply_of(None, value)
        except Exception as exc:  # noqa: BLE001  (sent back to the caller)
            reply = reply_of(exc)
        with contextlib.suppress(ConnectionError):
            await peer.send(frame({"op": "reply", "id": msg["id"], **reply}))


class SocketBus:
    """A worker's side of the hub: the same Bus interface, every message through the socket."""

    def __init__(self, path: str | Path, rpc_timeout: float = 30.0) -> None:
        self.path, self.rpc_timeout = str(path), rpc_timeout
        self._subs: list[tuple[TopicPattern, EventHandler]] = []
        self._servers: dict[str, RPCHandler] = {}
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self.lost = asyncio.Event()  # set when the hub (the leader) goes away

    async def start(self) -> None:
        reader, self._writer = await asyncio.open_unix_connection(self.path)
        self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))

    async def stop(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def _send(self, message: dict[str, Any]) -> None:
        if self._writer is None or self.lost.is_set():
            raise ConnectionError("the bus hub is gone")
        self._writer.write(frame(message))
        await self._writer.drain()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        await self._send({"op": "pub", "topic": topic, "event": event, "rid": request_id()})

    async def subscribe(self, pattern: str, handler: EventHandler) -> None:
        self._subs.append((TopicPattern(pattern), handler))
        await self._send({"op": "sub", "pattern": pattern})

    async def serve(self, target: str, handler: RPCHandler) -> None:
        self._servers[target] = handler
        await self._send({"op": "serve", "target": target})

    async def call(self, target: str, method: str, args: dict[str, Any],
                   timeout: float | None = None) -> Any:
        timeout = timeout if timeout is not None else self.rpc_timeout
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await self._send(stamped({"op": "call", "id": rid, "target": target, "method": method, "args": args,
                                      "timeout": timeout, "rid": request_id()}))
            # the hub answers "timeout" itself; the margin covers the hop
            reply = await asyncio.wait_for(fut, timeout + 1)
        except (TimeoutError, ConnectionError):
            raise RPCTimeout(f"no reply from {target} to {method}") from None
        finally:
            self._pending.pop(rid, None)
        return outcome_of(reply)

    async def cast(self, target: str, method: str, args: dict[str, Any]) -> None:
        await self._send(stamped({"op": "cast", "target": target, "method": method, "args": args,
                                  "rid": request_id()}))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                msg = await read_frame(reader)
                op = msg.get("op")
                if op == "event":
                    with carrying(msg.get("rid")):  # the tasks start in a copy of this context
                        for pattern, handler in self._subs:
                            if pattern.match(msg["topic"]):
                                self._spawn(self._deliver(handler, msg["topic"], msg["event"]))
                elif op == "request":
                    self._spawn(self._answer(msg))
                elif op == "reply":
                    fut = self._pending.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
        except (asyncio.IncompleteReadError, ConnectionError):
            LOG.warning("the bus hub closed the connection")
        except asyncio.CancelledError:
            raise
        except Exception:
            LOG.exception("bus connection failed")
        finally:
            self.lost.set()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("the bus hub is gone"))

    @staticmethod
    async def _deliver(handler: EventHandler, topic: str, event: dict[str, Any]) -> None:
        try:
            await handler(topic, event)
        except Exception:
            LOG.exception("event handler for %s failed", topic)

    async def _answer(self, msg: dict[str, Any]) -> None:
        handler = self._servers.get(msg["target"])
        if handler is None:
            return
        try:
            reply = reply_of(None, await handle_rpc(msg["target"], handler, msg["method"], msg["args"], msg.get("rid"),
                                                    "call" if msg["id"] is not None else "cast", msg))
        except Exception as exc:  # noqa: BLE001  (sent back to the caller)
            if msg["id"] is None:
                LOG.exception("cast %s failed", msg["method"])
            reply = reply_of(exc)
        if msg["id"] is not None:
            with contextlib.suppress(ConnectionError):
                await self._send({"op": "reply", "id": msg["id"], **reply})
