"""One ``/metrics`` for the leader and its API workers: the operator port shows every process.

Prometheus counters live in each process.  Each worker answers ``GET /metrics`` on a unix socket
of its own (``<state_dir>/metrics-worker-<N>.sock``, mode 0600); the leader's operator port
serves its own figures and every worker's, each sample labelled ``process="leader"`` or
``process="worker-N"`` so that sums over workers are one PromQL ``sum without (process)``.  A
worker that does not answer within a second is left out of that scrape (and logged).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from cumulo.core.workers import unix_path

LOG = logging.getLogger(__name__)
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:")


def socket_path(state_path: Path, index: int) -> Path:
    return unix_path(state_path, f"metrics-worker-{index}.sock")


def listen_unix(path: Path) -> socket.socket:
    if path.exists():
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    sock.listen(16)
    return sock


async def metrics_only(scope: Scope, receive: Receive, send: Send) -> None:
    """A worker's metrics app (the whole app: it is only reachable on its private socket)."""
    if scope["type"] != "http":
        return
    body = generate_latest()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode())]})
    await send({"type": "http.response.body", "body": body})


def labelled(text: str, process: str, families: dict[str, tuple[list[str], list[str]]]) -> None:
    """Add ``text``'s samples, labelled with ``process``, to ``families`` (name -> header, samples)."""
    current = ""
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                current = parts[2]
                header, _ = families.setdefault(current, ([], []))
                if len(header) < 2 and line not in header:
                    header.append(line)
            continue
        end = next((i for i, ch in enumerate(line) if ch not in NAME_CHARS), len(line))
        name, rest = line[:end], line[end:]
        tag = f'process="{process}"'
        if rest.startswith("{"):
            sample = f"{name}{{{tag}{',' if rest[1:2] != '}' else ''}{rest[1:]}"
        else:
            sample = f"{name}{{{tag}}}{rest}"
        families.setdefault(current or name, ([], []))[1].append(sample)


def render(families: dict[str, tuple[list[str], list[str]]]) -> bytes:
    lines: list[str] = []
    for header, samples in families.values():
        lines += header + samples
    return ("\n".join(lines) + "\n").encode()


async def scrape(path: Path, timeout: float = 1.0) -> str | None:
    async def get() -> str | None:
        reader, writer = await asyncio.open_unix_connection(str(path))
        try:
            writer.write(b"GET /metrics HTTP/1.0\r\nHost: worker\r\n\r\n")
            answer = await reader.read()
        finally:
            writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        return body.decode() if head.split(b" ", 2)[1:2] == [b"200"] else None

    try:
        return await asyncio.wait_for(get(), timeout)
    except (OSError, TimeoutError, IndexError) as exc:
        LOG.warning("no metrics from %s: %s", path.name, exc or type(exc).__name__)
        return None


class AllProcessesMetrics:
    """Wraps the operator app: ``/metrics`` answers for the leader and every worker."""

    def __init__(self, app: ASGIApp, state_path: Path, worker_indexes: Callable[[], list[int]]) -> None:
        self.app, self.state_path, self.worker_indexes = app, state_path, worker_indexes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/metrics" or not self.worker_indexes():
            await self.app(scope, receive, send)
            return
        indexes = sorted(self.worker_indexes())
        texts = await asyncio.gather(*(scrape(socket_path(self.state_path, i)) for i in indexes))
        families: dict[str, tuple[list[str], list[str]]] = {}
        labelled(generate_latest().decode(), "leader", families)
        for index, text in zip(indexes, texts, strict=True):
            if text is not None:
                labelled(text, f"worker-{index}", families)
        body = render(families)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
