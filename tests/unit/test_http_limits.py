"""What keeps one request from stalling the others, each piece on its own: the event-loop watchdog,
the per-request time budget, the header timeout against slow clients, and the SQLite turn that
the API worker processes take across processes."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import re
import socket
import time
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn

from cumulo.core.http.deadline import Deadline
from cumulo.core.http.slowclients import protocol
from cumulo.core.http.watchdog import STALLS, Watchdog


async def test_the_watchdog_counts_a_stall_and_names_what_blocked(caplog: pytest.LogCaptureFixture) -> None:
    dog = Watchdog("unit", threshold=0.1)
    before = STALLS._value.get()
    dog.start()
    try:
        await asyncio.sleep(0.1)
        assert dog.stalls == 0  # an idle loop never stalls

        def blocking_handler() -> None:
            time.sleep(0.3)

        with caplog.at_level(logging.WARNING, "cumulo.watchdog"):
            blocking_handler()
            await asyncio.sleep(0.1)
        assert dog.stalls == 1 and STALLS._value.get() == before + 1
        blocked, cpu = map(float, re.search(r"blocked for ([0-9.]+) s \(([0-9.]+) s of CPU",  # type: ignore[union-attr]
                                            caplog.text).groups())
        assert cpu < 0.1  # a sleep: blocking, but no CPU
        assert 0.2 < blocked < 0.6 and "blocking_handler" in caplog.text and "time.sleep(0.3)" in caplog.text
        caplog.clear()

        def spinning_handler() -> None:
            end = time.thread_time() + 0.3
            while time.thread_time() < end:
                pass

        with caplog.at_level(logging.WARNING, "cumulo.watchdog"):
            spinning_handler()
            await asyncio.sleep(0.1)
        blocked, cpu = map(float, re.search(r"blocked for ([0-9.]+) s \(([0-9.]+) s of CPU",  # type: ignore[union-attr]
                                            caplog.text).groups())
        assert dog.stalls == 2 and blocked >= 0.25 and cpu >= 0.25 and "spinning_handler" in caplog.text
    finally:
        dog.stop()


def budget_app(record: list[str]):  # type: ignore[no-untyped-def]
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        try:
            if scope["path"] == "/slow":
                await asyncio.sleep(5)
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            if scope["path"] == "/stream":  # slow once the answer started: not limited
                await asyncio.sleep(0.5)
            await send({"type": "http.response.body", "body": b"done"})
        except asyncio.CancelledError:
            record.append("cancelled")
            raise
    return app


async def test_a_request_past_its_budget_is_cancelled_with_a_503_in_the_services_format() -> None:
    record: list[str] = []
    app = Deadline(budget_app(record), "compute", budget=0.2, worker=3)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        t0 = time.monotonic()
        r = await client.get("/slow")
        assert time.monotonic() - t0 < 1
        assert r.status_code == 503 and record == ["cancelled"]
        assert r.json()["serviceUnavailable"]["code"] == 503 and "time budget of 0.2 s" in r.text
        assert r.headers["x-cumulo-worker"].startswith("3:")
        r = await client.get("/stream")
        assert r.status_code == 200 and r.text == "done" and record == ["cancelled"]
        r = await client.put("/slow", content=b"x", headers={"content-type": "application/octet-stream"},
                             timeout=10)
        assert r.status_code == 200  # a data upload streams for as long as its client sends
    identity = Deadline(budget_app([]), "identity", budget=0.1)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=identity), base_url="http://t") as client:
        assert (await client.get("/slow")).json()["error"]["code"] == 503


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_client_trickling_its_headers_is_cut_off() -> None:
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=protocol(0.3), log_config=None,
                                           lifespan="off", timeout_keep_alive=5))
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # a prompt client is served
        assert b"200 OK" in await asyncio.wait_for(reader.read(200), 2)
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        t0 = time.monotonic()
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # ... and never the blank line
        assert await asyncio.wait_for(reader.read(100), 3) == b""
        assert 0.25 < time.monotonic() - t0 < 2
        writer.close()
    finally:
        server.should_exit = True
        await task


def _writer(url: str, rounds: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from sqlalchemy import text

    from cumulo.core.db import Database

    async def run() -> None:
        db = Database(url)
        t0 = time.monotonic()
        for _ in range(rounds):
            async with db.session() as s:  # read, then write: SQLite's BUSY_SNAPSHOT case
                n = (await s.execute(text("SELECT n FROM counter"))).scalar()
                await s.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
        out.put(time.monotonic() - t0)
        await db.close()

    asyncio.run(run())


def test_sqlite_sessions_take_turns_across_processes(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "c.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE counter (n INTEGER)")
    con.execute("INSERT INTO counter VALUES (0)")
    con.commit()
    con.close()
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_writer, args=(f"sqlite:///{path}", 300, out)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0  # no "database is locked", no lost turn
    times = [out.get(timeout=5) for _ in procs]
    con = sqlite3.connect(path)
    assert con.execute("SELECT n FROM counter").fetchone()[0] == 900  # no update lost
    con.close()
    print(f"3 processes x 300 read-then-write sessions: {max(times):.2f} s ({900 / max(times):.0f}/s)")
    assert max(times) < 60


def test_fault_bodies_are_json() -> None:
    assert orjson.loads(orjson.dumps({"a": 1})) == {"a": 1}
