"""Versioned bus messages: every RPC envelope carries ``v``; a receiver reads the previous and the
next version (an envelope without ``v`` is version 1) and refuses what is further apart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from cumulo.core.bus import BUS_VERSION, IncompatibleMessage
from cumulo.core.bus.interface import handle_rpc, message_version, stamped
from cumulo.core.bus.local import HubBus, SocketBus, frame, read_frame


def test_an_envelope_without_v_is_version_1() -> None:
    assert message_version({"method": "report_node", "args": {}}) == 1


@pytest.mark.parametrize("v", [BUS_VERSION - 1, BUS_VERSION, BUS_VERSION + 1])
def test_the_previous_this_and_the_next_version_are_read(v: int) -> None:
    assert message_version({"v": v}) == v


@pytest.mark.parametrize("v", [BUS_VERSION + 2, BUS_VERSION - 2, "2", True, None])
def test_versions_further_apart_or_not_numbers_are_refused(v: Any) -> None:
    with pytest.raises(IncompatibleMessage):
        message_version({"v": v})


def test_this_code_writes_its_version() -> None:
    assert stamped({"method": "m", "args": {}})["v"] == BUS_VERSION


def test_the_rabbit_envelope_carries_v() -> None:
    pytest.importorskip("aio_pika")
    from cumulo.core.bus.rabbit import envelope

    assert envelope("report_pool", {"host": "a"}) == {"method": "report_pool", "args": {"host": "a"},
                                                      "v": BUS_VERSION}


async def test_a_handler_never_runs_for_a_refused_message() -> None:
    ran: list[str] = []

    async def handler(method: str, args: dict[str, Any]) -> Any:
        ran.append(method)
        return "done"

    assert await handle_rpc("t", handler, "old", {}, None, "call", {"method": "old", "args": {}}) == "done"
    with pytest.raises(IncompatibleMessage):
        await handle_rpc("t", handler, "future", {}, None, "call", {"v": BUS_VERSION + 5})
    assert ran == ["old"]


async def raw_call(path: Path, message: dict[str, Any]) -> dict[str, Any]:
    """A worker of another release on the hub's socket: one call frame, its reply."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(frame(message))
        await writer.drain()
        return await asyncio.wait_for(read_frame(reader), 5)
    finally:
        writer.close()


async def test_the_hub_answers_version_1_and_refuses_a_far_newer_call(tmp_path: Path) -> None:
    hub = HubBus(tmp_path / "bus.sock", rpc_timeout=5)
    await hub.start()
    seen: list[dict[str, Any]] = []

    async def conductor(method: str, args: dict[str, Any]) -> Any:
        seen.append(args)
        return {"ok": method}

    try:
        await hub.serve("conductor", conductor)
        old = {"op": "call", "id": 1, "target": "conductor", "method": "report_node", "args": {"host": "n1"}}
        assert (await raw_call(hub.path, old))["ok"] == {"ok": "report_node"}
        future = {**old, "id": 2, "v": BUS_VERSION + 2}
        reply = await raw_call(hub.path, future)
        assert reply["error"][0] == "IncompatibleMessage" and "upgrade" in reply["error"][1]
        assert seen == [{"host": "n1"}]
    finally:
        await hub.stop()


async def test_a_worker_serves_the_hubs_versioned_requests(tmp_path: Path) -> None:
    hub = HubBus(tmp_path / "bus.sock", rpc_timeout=5)
    await hub.start()
    worker = SocketBus(tmp_path / "bus.sock", rpc_timeout=5)
    await worker.start()
    try:
        calls: list[int] = []

        async def agent(method: str, args: dict[str, Any]) -> Any:
            calls.append(args["n"])
            return args["n"] * 2

        await worker.serve("compute.n1", agent)
        for _ in range(200):
            if hub.peers and "compute.n1" in hub.peers[0].targets:
                break
            await asyncio.sleep(0.01)
        assert await hub.call("compute.n1", "double", {"n": 21}) == 42
        # a cast too new for the worker is dropped (logged), its handler never runs
        await worker._answer({"op": "request", "id": None, "target": "compute.n1", "method": "double",
                              "args": {"n": 1}, "v": BUS_VERSION + 3})
        assert calls == [21]
    finally:
        await worker.stop()
        await hub.stop()
