"""The dashboard's event stream sends a page what changed between its render and the stream's
opening (``since``), once, and only its project's."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from cumulo.dashboard.events import EventStream
from cumulo.dashboard.pages.live import since_of


class Bus:
    def __init__(self) -> None:
        self.handler: Any = None

    async def subscribe(self, topic: str, handler: Any) -> None:
        self.handler = handler


def ids(chunks: list[bytes]) -> list[str]:
    return [orjson.loads(c[6:])["id"] for c in chunks if c.startswith(b"data: ")]


def test_a_stream_opened_after_its_page_gets_what_changed_since_once() -> None:
    async def scenario() -> tuple[list[bytes], list[bytes]]:
        bus = Bus()
        streams = EventStream(bus)
        await streams.start()  # the app's startup: events are kept before any stream opens
        await bus.handler("resource.server.update", {"kind": "server", "id": "before", "project_id": "p1"})
        rendered = time.time()
        await asyncio.sleep(0.01)
        await bus.handler("resource.server.update", {"kind": "server", "id": "s1", "project_id": "p1"})
        await bus.handler("resource.server.update", {"kind": "server", "id": "other", "project_id": "p2"})
        page = streams.stream("p1", False, time.time() + 60, since=rendered)
        got = [await page.__anext__(), await page.__anext__()]
        await bus.handler("resource.server.update", {"kind": "server", "id": "s2", "project_id": "p1"})
        got.append(await asyncio.wait_for(page.__anext__(), 5))
        await page.aclose()
        plain = streams.stream("p1", False, time.time() + 60)  # no since: nothing from before
        first = [await plain.__anext__()]
        await bus.handler("resource.server.update", {"kind": "server", "id": "s3", "project_id": "p1"})
        first.append(await asyncio.wait_for(plain.__anext__(), 5))
        await plain.aclose()
        return got, first

    got, plain = asyncio.run(scenario())
    assert b"connected" in got[0]
    assert ids(got) == ["s1", "s2"]  # not the one before the render, not another project's, none twice
    assert ids(plain) == ["s3"]


def test_since_is_a_time_or_nothing() -> None:
    assert since_of("1796410000.250") == 1796409999.25
    for value in (None, "", "soon", "nan", "inf", "-5", "0"):
        assert since_of(value) == 0.0
