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


class Tagged(logging.Handler):
    """The lines of a logger with the request id in effect when each was written."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str | None, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        ctx = context.current.get()
        self.lines.append((ctx.request_id if ctx else None, record.getMessage()))


async def test_the_network_agents_round_carries_the_requests_that_kicked_it(tmp_path: Path) -> None:
    """The network agent is level-triggered (a change kicks a reconcile round): a round one
    request caused runs in that request's context; each request of a burst hears of the round."""
    from cumulo.network.agent import NetworkAgent

    bus = connect("memory://")
    agent = NetworkAgent(bus, f"cumulo-test-{uuid.uuid4().hex[:6]}", tmp_path, "http://127.0.0.1:1", "s" * 20,
                         interval=30)
    rounds: asyncio.Queue = asyncio.Queue()

    async def reconcile() -> dict:
        ctx = context.current.get()
        await rounds.put(ctx.request_id if ctx else None)
        return {"networks": 1, "ports": 2, "routers": 0, "seconds": 0.01, "failed": []}

    async def report() -> None:
        pass

    async def change(rid: str) -> None:
        token = context.current.set(context.RequestContext(rid))
        try:
            await bus.publish("network.changed", {"what": "port"})
        finally:
            context.current.reset(token)

    agent.reconcile, agent.report = reconcile, report  # type: ignore[method-assign]
    log, handler = logging.getLogger("cumulo.network.agent"), Tagged()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    await agent.start()
    try:
        assert await asyncio.wait_for(rounds.get(), 5) is None  # the first round, at start: no request
        one, two, three = (f"req-{uuid.uuid4()}" for _ in range(3))
        await change(one)
        assert await asyncio.wait_for(rounds.get(), 5) == one
        await asyncio.sleep(0.2)  # the agent rests after a round
        await change(two)
        await change(three)  # a burst: one round for both, in neither's context
        assert await asyncio.wait_for(rounds.get(), 5) is None
        await asyncio.sleep(0.1)
    finally:
        await agent.stop()
        await bus.stop()
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)
    applied = [(rid, line) for rid, line in handler.lines if "applied this request's change" in line]
    assert [rid for rid, _ in applied] == [one, *sorted((two, three))], applied
    assert "(1 requests in the round)" in applied[0][1] and "(2 requests in the round)" in applied[1][1]
