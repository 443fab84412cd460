"""The RabbitMQ bus (aio-pika): a topic exchange for events, durable queues for RPC targets.

Events go to the ``cumulo.events`` topic exchange; each subscriber has its own exclusive queue,
so every controller process sees every event.  RPC requests go to the queue ``cumulo.rpc.<target>``
(shared by the servers of that target, so work is spread); replies come back on RabbitMQ's
direct reply-to pseudo-queue, matched by correlation id.

The connection is aio-pika's robust one: after the broker restarts it reconnects and declares the
queues and consumers again.  The direct reply-to consumer is not among them (it is no queue), so
it is consumed again on every reconnect; a publish while the connection is down waits for it (up
to the RPC timeout) instead of failing at once.

A request's id travels in the RPC envelope (``{"method", "args", "rid", "v"}``; ``v`` is the
message format version, see ``interface``) and in an event's
``request_id`` header; a message without one is handled outside any request, as before.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import aio_pika
import aiormq
import orjson
from aio_pika.abc import AbstractIncomingMessage

from cumulo.core.bus.interface import (
    EventHandler,
    IncompatibleMessage,
    RPCError,
    RPCHandler,
    RPCTimeout,
    carrying,
    handle_rpc,
    request_id,
    stamped,
)

LOG = logging.getLogger(__name__)
REPLY_TO = "amq.rabbitmq.reply-to"
RPC_QUEUE_EXPIRES_MS = 10 * 60 * 1000  # an RPC queue outlives its servers' restarts, not a removed host
# what a publish raises while the robust connection is away or its channel is being restored
DOWN = (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError, ConnectionError)


def envelope(method: str, args: dict[str, Any]) -> dict[str, Any]:
    """An RPC request's body: the method, its arguments, (within a request) its id, and the
    message format version."""
    rid = request_id()
    return stamped({"method": method, "args": args, "rid": rid} if rid else {"method": method, "args": args})


class RabbitBus:
    def __init__(self, url: str, rpc_timeout: float = 30.0, prefix: str = "cumulo") -> None:
        self.url, self.rpc_timeout, self.prefix = url, rpc_timeout, prefix
        self.events = f"{prefix}.events"
        self._conn: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._reply_channel: aio_pika.abc.AbstractChannel | None = None

    async def start(self) -> None:
        self._conn = await aio_pika.connect_robust(self.url)
        self._channel = await self._conn.channel()
        await self._channel.set_qos(prefetch_count=32)
        self._exchange = await self._channel.declare_exchange(self.events, aio_pika.ExchangeType.TOPIC,
                                                              durable=True)
        # direct reply-to must be consumed (no-ack) on the channel that publishes the requests
        self._reply_channel = await self._conn.channel()
        await self._consume_replies()
        self._conn.reconnect_callbacks.add(self._reconnected)

    async def _consume_replies(self) -> None:
        assert self._reply_channel is not None
        reply_queue = await self._reply_channel.get_queue(REPLY_TO, ensure=False)
        await reply_queue.consume(self._on_reply, no_ack=True)

    async def _reconnected(self, *_: Any) -> None:
        # without this every call after a broker restart fails: "fast reply consumer does not exist"
        LOG.info("bus reconnected to the broker")
        try:
            await self._consume_replies()
        except Exception:
            LOG.warning("consuming RPC replies again after a reconnect failed", exc_info=True)

    async def _publish(self, channel: aio_pika.abc.AbstractChannel, message: aio_pika.Message, routing_key: str,
                       exchange: aio_pika.abc.AbstractExchange | None = None) -> None:
        """Publish, waiting (up to the RPC timeout) for a connection that is being restored."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.rpc_timeout
        while True:
            try:
                await (exchange or channel.default_exchange).publish(message, routing_key=routing_key)
                return
            except DOWN:
                if self._conn is None or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        for fut in self._pending.values():
            fut.cancel()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        assert self._channel is not None and self._exchange is not None, "bus not started"
        rid = request_id()
        await self._publish(self._channel, aio_pika.Message(orjson.dumps(event), content_type="application/json",
                                                            headers={"request_id": rid} if rid else None),
                            topic, self._exchange)

    async def subscribe(self, pattern: str, handler: EventHandler) -> None:
        assert self._channel is not None and self._exchange is not None, "bus not started"
        queue = await self._channel.declare_queue("", exclusive=True, auto_delete=True)
        await queue.bind(self._exchange, routing_key=pattern)

        async def on_message(message: AbstractIncomingMessage) -> None:
            async with message.process(ignore_processed=True):
                try:
                    rid = (message.headers or {}).get("request_id")
                    with carrying(rid if isinstance(rid, str) else None):
                        await handler(message.routing_key or "", orjson.loads(message.body))
                except Exception:
                    LOG.exception("event handler for %s failed", message.routing_key)

        await queue.consume(on_message)

    async def serve(self, target: str, handler: RPCHandler) -> None:
        assert self._channel is not None, "bus not started"
        # not auto-deleted with its last consumer: a cast sent while the server restarts (an agent's
        # report to a conductor being restarted) waits for it; a queue unused for RPC_QUEUE_EXPIRES is removed
        queue = await self._channel.declare_queue(f"{self.prefix}.rpc.{target}", durable=False, auto_delete=False,
                                                  arguments={"x-expires": RPC_QUEUE_EXPIRES_MS})
        channel = self._channel

        async def on_request(message: AbstractIncomingMessage) -> None:
            async with message.process(ignore_processed=True):
                request = orjson.loads(message.body)
                try:
                    reply = {"ok": await handle_rpc(target, handler, request["method"], request["args"],
                                                    request.get("rid"), "call" if message.reply_to else "cast",
                                                    request)}
                except Exception as exc:
                    if isinstance(exc, IncompatibleMessage) and not message.reply_to:
                        LOG.error("cast %s to %s dropped: %s", request.get("method"), target, exc)
                    reply = {"error": [type(exc).__name__, str(exc)]}
                if message.reply_to:
                    await channel.default_exchange.publish(
                        aio_pika.Message(orjson.dumps(reply), correlation_id=message.correlation_id),
                        routing_key=message.reply_to)

        await queue.consume(on_request)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        fut = self._pending.pop(message.correlation_id or "", None)
        if fut is not None and not fut.done():
            fut.set_result(orjson.loads(message.body))

    async def call(self, target: str, method: str, args: dict[str, Any],
                   timeout: float | None = None) -> Any:
        assert self._reply_channel is not None, "bus not started"
        corr = uuid.uuid4().hex
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[corr] = fut
        try:
            await self._publish(self._reply_channel, aio_pika.Message(
                orjson.dumps(envelope(method, args)), correlation_id=corr, reply_to=REPLY_TO,
                expiration=timeout or self.rpc_timeout), f"{self.prefix}.rpc.{target}")
            reply = await asyncio.wait_for(fut, timeout or self.rpc_timeout)
        except TimeoutError:
            raise RPCTimeout(f"no reply from {target} to {method}") from None
        finally:
            self._pending.pop(corr, None)
        if "error" in reply:
            raise RPCError(*reply["error"])
        return reply["ok"]

    async def cast(self, target: str, method: str, args: dict[str, Any]) -> None:
        assert self._channel is not None, "bus not started"
        await self._publish(self._channel, aio_pika.Message(orjson.dumps(envelope(method, args))),
                            f"{self.prefix}.rpc.{target}")
