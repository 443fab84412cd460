"""Work carries the request that caused it: a call, a cast or an event sent while a request is
served is handled with that request's id in the log context, on every bus (in-process, RabbitMQ,
the local socket hub), and the RPC hop is logged; work sent outside a request carries none."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

import pytest

from cumulo.core import context
from cumulo.core.bus import connect
from cumulo.core.bus.local import HubBus

URLS = ["memory://", "amqp://guest:guest@127.0.0.1:5672/"]


def seen_ids() -> tuple[asyncio.Queue, object, object]:
    got: asyncio.Queue = asyncio.Queue()

    def rid() -> str | None:
        ctx = context.current.get()
        return ctx.request_id if ctx else None

    async def server(method, args):  # type: ignore[no-untyped-def]
        await got.put((method, rid()))
        return rid()

    async def subscriber(topic, event):  # type: ignore[no-untyped-def]
        await got.put((topic, rid()))

    return got, server, subscriber


async def exchange(sender, receiver, got: asyncio.Queue, server, subscriber, target: str) -> None:  # type: ignore[no-untyped-def]
    await receiver.serve(target, server)
    await receiver.subscribe(f"{target}.happened", subscriber)
    await asyncio.sleep(0.1)  # the subscriptions reach the hub / broker
    rid = f"req-{uuid.uuid4()}"
    token = context.current.set(context.RequestContext(rid))
    try:
        assert await sender.call(target, "work", {}) == rid
        assert await asyncio.wait_for(got.get(), 5) == ("work", rid)
        await sender.cast(target, "later", {})
        assert await asyncio.wait_for(got.get(), 5) == ("later", rid)
        await sender.publish(f"{target}.happened", {})
        assert await asyncio.wait_for(got.get(), 5) == (f"{target}.happened", rid)
    finally:
        context.current.reset(token)
    # outside a request (a heartbeat): no id
    assert await sender.call(target, "beat", {}) is None
    assert await asyncio.wait_for(got.get(), 5) == ("beat", None)


@pytest.mark.parametrize("url", URLS)
async def test_rpc_and_events_carry_the_request_id(url: str, caplog: pytest.LogCaptureFixture) -> None:
    a, b = connect(url), connect(url)
    await a.start()
    await b.start()
    got, server, subscriber = seen_ids()
    try:
        with caplog.at_level(logging.INFO, logger="cumulo.bus"):
            await exchange(a, b if url != "memory://" else a, got, server, subscriber, f"t-{uuid.uuid4().hex[:8]}")
    finally:
        await a.stop()
        await b.stop()
    hops = [r.getMessage() for r in caplog.records if r.name == "cumulo.bus"]
    assert any(h.startswith("call work received by t-") for h in hops), hops
    assert any(h.startswith("cast later by t-") and " done in " in h for h in hops), hops
    assert not any(" beat " in h for h in hops), hops  # work outside a request is not a hop


async def test_the_socket_hub_carries_the_request_id_both_ways(tmp_path: Path) -> None:
    hub = HubBus(tmp_path / "bus.sock", rpc_timeout=5)
    await hub.start()
    worker = connect(f"unix://{tmp_path / 'bus.sock'}", rpc_timeout=5)
    await worker.start()
    try:
        got, server, subscriber = seen_ids()
        await exchange(worker, hub, got, server, subscriber, "leader")  # worker -> the leader's agents
        got, server, subscriber = seen_ids()
        await exchange(hub, worker, got, server, subscriber, "worker")  # leader -> a worker
    finally:
        await worker.stop()
        await hub.stop()


async def test_an_envelope_without_an_id_is_handled_as_before(tmp_path: Path) -> None:
    """An older peer sends no ``rid``: the handler runs outside any request."""
    from cumulo.core.bus.local import frame

    hub = HubBus(tmp_path / "bus.sock", rpc_timeout=5)
    await hub.start()
    got, server, _ = seen_ids()
    await hub.serve("conductor", server)
    reader, writer = await asyncio.open_unix_connection(str(tmp_path / "bus.sock"))
    try:
        writer.write(frame({"op": "cast", "target": "conductor", "method": "old", "args": {}}))
        await writer.drain()
        assert await asyncio.wait_for(got.get(), 5) == ("old", None)
    finally:
        writer.close()
        await hub.stop()
