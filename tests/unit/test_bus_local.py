"""The local socket bus: a hub (the leader's in-process bus) and clients (workers) on a unix socket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cumulo.core.bus import RPCError, RPCTimeout, connect
from cumulo.core.bus.local import HubBus, SocketBus


async def collector() -> tuple[asyncio.Queue, object]:
    got: asyncio.Queue = asyncio.Queue()

    async def on(topic, event):  # type: ignore[no-untyped-def]
        await got.put((topic, event))

    return got, on


@pytest.fixture
async def hub(tmp_path: Path):  # type: ignore[no-untyped-def]
    bus = HubBus(tmp_path / "bus.sock", rpc_timeout=5)
    await bus.start()
    clients: list[SocketBus] = []

    async def client() -> SocketBus:
        c = connect(f"unix://{tmp_path / 'bus.sock'}", rpc_timeout=5)
        assert isinstance(c, SocketBus)
        await c.start()
        clients.append(c)
        return c

    yield bus, client
    for c in clients:
        await c.stop()
    await bus.stop()


async def settle(hub: HubBus, peers: int) -> None:
    """The hub has registered what the clients sent (they are asynchronous writes)."""
    for _ in range(200):
        if len(hub.peers) == peers:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(hub.peers)} peers, wanted {peers}")


async def test_events_cross_processes_both_ways(hub) -> None:  # type: ignore[no-untyped-def]
    bus, client = hub
    a, b = await client(), await client()
    got_hub, on_hub = await collector()
    got_a, on_a = await collector()
    got_b, on_b = await collector()
    await bus.subscribe("identity.*", on_hub)
    await a.subscribe("identity.changed", on_a)
    await b.subscribe("identity.#", on_b)
    await settle(bus, 2)
    await a.publish("identity.changed", {"n": 1})  # a worker publishes: everyone hears it, a too
    for q in (got_hub, got_a, got_b):
        assert await asyncio.wait_for(q.get(), 5) == ("identity.changed", {"n": 1})
    await bus.publish("identity.other", {"n": 2})  # the leader publishes: the matching workers hear
    assert await asyncio.wait_for(got_hub.get(), 5) == ("identity.other", {"n": 2})
    assert await asyncio.wait_for(got_b.get(), 5) == ("identity.other", {"n": 2})
    await a.publish("compute.x", {"n": 3})
    await a.publish("identity.changed", {"n": 4})  # ordered after compute.x, which nobody wants
    assert await asyncio.wait_for(got_a.get(), 5) == ("identity.changed", {"n": 4})
    assert got_a.empty()


async def test_rpc_from_a_worker_to_the_leader_and_back(hub) -> None:  # type: ignore[no-untyped-def]
    bus, client = hub
    a, b = await client(), await client()
    casts: asyncio.Queue = asyncio.Queue()

    async def conductor(method, args):  # type: ignore[no-untyped-def]
        if method == "add":
            return args["a"] + args["b"]
        if method == "note":
            await casts.put(args)
            return None
        raise ValueError(f"no method {method}")

    async def worker_b(method, args):  # type: ignore[no-untyped-def]
        return {"served_by": "b", **args}

    await bus.serve("conductor", conductor)
    await b.serve("worker.b", worker_b)
    await settle(bus, 2)
    for _ in range(100):
        if any("worker.b" in p.targets for p in bus.peers):
            break
        await asyncio.sleep(0.01)
    assert await a.call("conductor", "add", {"a": 2, "b": 3}) == 5
    await a.cast("conductor", "note", {"x": 1})
    assert await asyncio.wait_for(casts.get(), 5) == {"x": 1}
    with pytest.raises(RPCError) as exc:
        await a.call("conductor", "nope", {})
    assert exc.value.kind == "ValueError"
    assert await bus.call("worker.b", "m", {"k": 1}) == {"served_by": "b", "k": 1}  # leader -> worker
    assert await a.call("worker.b", "m", {"k": 2}) == {"served_by": "b", "k": 2}  # worker -> worker
    with pytest.raises(RPCTimeout):
        await a.call("nobody-serves-this", "add", {}, timeout=0.3)


async def test_many_concurrent_calls_are_matched_to_their_replies(hub) -> None:  # type: ignore[no-untyped-def]
    bus, client = hub
    a = await client()

    async def echo(method, args):  # type: ignore[no-untyped-def]
        await asyncio.sleep(args["delay"])
        return args["i"]

    await bus.serve("echo", echo)
    results = await asyncio.gather(*(a.call("echo", "e", {"i": i, "delay": (i % 7) / 100}) for i in range(300)))
    assert results == list(range(300))


async def test_a_worker_learns_when_the_leader_goes(hub) -> None:  # type: ignore[no-untyped-def]
    bus, client = hub
    a = await client()

    async def slow(method, args):  # type: ignore[no-untyped-def]
        await asyncio.sleep(30)

    await bus.serve("slow", slow)
    call = asyncio.ensure_future(a.call("slow", "x", {}, timeout=20))
    await asyncio.sleep(0.1)
    await bus.stop()
    await asyncio.wait_for(a.lost.wait(), 5)
    with pytest.raises(RPCTimeout):  # at once, not after 20 s
        await asyncio.wait_for(call, 5)
    with pytest.raises(ConnectionError):
        await a.publish("x.y", {})


async def test_the_socket_is_private(hub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert (tmp_path / "bus.sock").stat().st_mode & 0o777 == 0o600
