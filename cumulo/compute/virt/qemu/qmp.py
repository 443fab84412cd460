"""A small asynchronous QMP client: one connection per exchange; the events that arrive meanwhile
are kept, so a caller can wait for one (DEVICE_DELETED after a hot-unplug)."""

from __future__ import annotations

import asyncio
import json
from typing import Any


class QMPError(RuntimeError):
    pass


class QMP:
    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path, self.timeout = path, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.events: list[dict[str, Any]] = []

    async def __aenter__(self) -> QMP:
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_unix_connection(self.path), self.timeout)
        await self._read()  # the greeting
        await self.execute("qmp_capabilities")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def _read(self) -> dict[str, Any]:
        assert self.reader is not None
        line = await asyncio.wait_for(self.reader.readline(), self.timeout)
        if not line:
            raise QMPError("QEMU closed the monitor connection")
        return json.loads(line)  # type: ignore[no-any-return]

    async def execute(self, command: str, **arguments: Any) -> Any:
        assert self.writer is not None
        msg: dict[str, Any] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.writer.write(json.dumps(msg).encode() + b"\n")
        await self.writer.drain()
        while True:
            reply = await self._read()
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise QMPError(f"{command}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return")

    async def wait_event(self, name: str, timeout: float, **data: Any) -> dict[str, Any]:
        """The first event ``name`` whose data holds ``data`` (one already received counts)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for event in self.events:
                if event["event"] == name and all((event.get("data") or {}).get(k) == v for k, v in data.items()):
                    self.events.remove(event)
                    return event
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no {name} event within {timeout:g} s")
            assert self.reader is not None
            line = await asyncio.wait_for(self.reader.readline(), left)
            if not line:
                raise QMPError("QEMU closed the monitor connection")
            reply = json.loads(line)
            if "event" in reply:
                self.events.append(reply)


async def qmp(path: str, command: str, timeout: float = 10.0, **arguments: Any) -> Any:
    async with QMP(path, timeout) as q:
        return await q.execute(command, **arguments)
