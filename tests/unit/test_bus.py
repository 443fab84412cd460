"""The bus contract, run against both implementations (RabbitMQ on 127.0.0.1:5672)."""

from __future__ import annotations

import asyncio

import pytest

from cumulo.core.bus import RPCError, RPCTimeout, TopicPattern, connect

URLS = ["memory://", "amqp://guest:guest@127.0.0.1:5672/"]


def test_topic_patterns() -> None:
    assert TopicPattern("identity.*").match("identity.changed")
    assert not TopicPattern("identity.*").match("identity.a.b")
    assert TopicPattern("compute.#").match("compute") and TopicPattern("compute.#").match("compute.a.b")
    assert TopicPattern("#.done").match("x.y.done") and not TopicPattern("#.done").match("x.y")


@pytest.mark.parametrize("url", URLS)
async def test_events_reach_every_matching_subscriber(url: str) -> None:
    a, b = connect(url), connect(url)
    await a.start()
    await b.start()
    try:
        got_a: asyncio.Queue = asyncio.Queue()
        got_b: asyncio.Queue = asyncio.Queue()

        async def on_a(topic, event):  # type: ignore[no-untyped-def]
            await got_a.put((topic, event))

        async def on_b(topic, event):  # type: ignore[no-untyped-def]
            await got_b.put((topic, event))

        await a.subscribe("identity.*", on_a)
        await (b if url != "memory://" else a).subscribe("identity.changed", on_b)
        await a.publish("identity.changed", {"n": 1})
        await a.publish("compute.other", {"n": 2})
        assert await asyncio.wait_for(got_a.get(), 5) == ("identity.changed", {"n": 1})
        assert await asyncio.wait_for(got_b.get(), 5) == ("identity.changed", {"n": 1})
        await asyncio.sleep(0.2)
        assert got_a.empty()
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.parametrize("url", URLS)
async def test_rpc_call_cast_errors_and_timeouts(url: str) -> None:
    bus = connect(url, rpc_timeout=5)
    await bus.start()
    try:
        casts: asyncio.Queue = asyncio.Queue()

        async def handler(method, args):  # type: ignore[no-untyped-def]
            if method == "add":
                return args["a"] + args["b"]
            if method == "note":
                await casts.put(args)
                return None
            raise ValueError(f"no method {method}")

        target = f"test-{id(bus)}"
        await bus.serve(target, handler)
        assert await bus.call(target, "add", {"a": 2, "b": 3}) == 5
        await bus.cast(target, "note", {"x": 1})
        assert await asyncio.wait_for(casts.get(), 5) == {"x": 1}
        with pytest.raises(RPCError) as exc:
            await bus.call(target, "nope", {})
        assert exc.value.kind == "ValueError"
        with pytest.raises(RPCTimeout):
            await bus.call("nobody-serves-this", "add", {}, timeout=0.3)
    finally:
        await bus.stop()


async def test_a_cast_sent_while_its_server_restarts_reaches_the_new_server() -> None:
    """An agent's report cast while the conductor restarts is not lost: the RPC queue outlives its
    consumer (RabbitMQ; the in-process bus has no such gap)."""
    url = URLS[1]
    target = f"test-restart-{id(url)}-{asyncio.get_running_loop().time()}"
    old, sender = connect(url), connect(url)
    await old.start()
    await sender.start()
    got: asyncio.Queue = asyncio.Queue()

    async def handler(method, args):  # type: ignore[no-untyped-def]
        await got.put((method, args))

    try:
        await old.serve(target, handler)
        await old.stop()  # the server goes away...
        await sender.cast(target, "server_update", {"n": 1})  # ...the report is sent meanwhile...
        new = connect(url)
        await new.start()
        try:
            await new.serve(target, handler)  # ...and the restarted server gets it
            assert await asyncio.wait_for(got.get(), 5) == ("server_update", {"n": 1})
        finally:
            await new.stop()
    finally:
        await sender.stop()
