"""The API worker processes of one ``cumulo up``: started, watched and stopped by the leader.

The ``cumulo up`` process is the leader.  It binds every API's listening socket once and starts
``[api] workers - 1`` worker processes (``python -m cumulo.cli.main worker --index N``) that
inherit those sockets (``pass_fds``; their numbers in ``_CUMULO_WORKER_SOCKETS``) and serve the
same APIs from them: the kernel hands each new connection to whichever process accepts first,
so a process busy with one request never holds up a connection another could take.

A worker tells it is serving by writing one byte on a pipe the leader gave it.  A worker that
exits is started again (at once the first time, then after a pause that grows to 10 s while it
keeps failing within a few seconds of its start).  Stopping the leader stops them all: SIGTERM,
then SIGKILL for any still there after the grace period; a worker whose leader is gone
(even by ``kill -9``) gets SIGTERM from the kernel (``PR_SET_PDEATHSIG``) and stops as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

LOG = logging.getLogger("cumulo.workers")
SOCKETS_ENV = "_CUMULO_WORKER_SOCKETS"
READY_ENV = "_CUMULO_WORKER_READY_FD"
LEADER_ENV = "_CUMULO_WORKER_LEADER_PID"


def unix_path(state_path: Path, name: str) -> Path:
    """Where a private unix socket of this cloud lives: in the state directory, or (when that path
    is too long for a socket address, 107 bytes) in a directory of its own under /tmp named
    after the state directory, mode 0700."""
    path = state_path / name
    if len(str(path).encode()) < 100:
        return path
    short = Path(tempfile.gettempdir()) / f"cumulo-{hashlib.sha256(str(state_path).encode()).hexdigest()[:12]}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / name


def count(configured: int) -> int:
    """How many processes serve the APIs: ``[api] workers``, 0 meaning one per CPU core."""
    return configured if configured > 0 else max(1, os.cpu_count() or 1)


def listen(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family, backlog=backlog)


class Supervisor:
    def __init__(self, argv: list[str], sockets: dict[str, socket.socket], workers: int,
                 on_change: Callable[[dict[int, int]], None] | None = None, grace: float = 10.0) -> None:
        self.argv, self.sockets, self.workers, self.grace = argv, sockets, workers, grace
        self.on_change = on_change
        self.pids: dict[int, int] = {}
        self.restarts = 0
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self, wait: float = 60.0) -> None:
        """Start every worker and wait (up to ``wait`` s) until each serves."""
        ready = [asyncio.get_running_loop().create_future() for _ in range(self.workers)]
        self._tasks = [asyncio.get_running_loop().create_task(self._keep(i + 1, ready[i]), name=f"worker-{i + 1}")
                       for i in range(self.workers)]
        done, _ = await asyncio.wait(ready, timeout=wait)
        if len(done) < len(ready):
            LOG.warning("%d of %d API workers did not start within %.0f s", len(ready) - len(done), len(ready), wait)

    async def _keep(self, index: int, first: asyncio.Future[None]) -> None:
        pause = 0.0
        while not self._stopping:
            began = time.monotonic()
            try:
                proc = await self._spawn(index)
            except Exception:
                LOG.exception("could not start API worker %d", index)
                proc = None
            if not first.done():
                first.set_result(None)
            if proc is not None:
                rc = await proc.wait()
                self._procs.pop(index, None)
                self.pids.pop(index, None)
                self._changed()
                if self._stopping:
                    break
                self.restarts += 1
                LOG.warning("API worker %d (pid %d) exited with %s: starting it again", index, proc.pid, rc)
            pause = 0.0 if time.monotonic() - began > 5 else min(10.0, max(0.5, pause * 2))
            if pause:
                await asyncio.sleep(pause)

    async def _spawn(self, index: int) -> asyncio.subprocess.Process | None:
        fds = {name: sock.fileno() for name, sock in self.sockets.items()}
        read_end, write_end = os.pipe()
        env = {**os.environ, SOCKETS_ENV: ",".join(f"{n}={fd}" for n, fd in fds.items()),
               READY_ENV: str(write_end), LEADER_ENV: str(os.getpid())}
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, "--index", str(index), env=env, pass_fds=(*fds.values(), write_end),
                stdin=asyncio.subprocess.DEVNULL)
        finally:
            os.close(write_end)
        self._procs[index] = proc
        try:
            ok = await asyncio.to_thread(os.read, read_end, 1)
        finally:
            os.close(read_end)
        if not ok:  # it exited before serving
            return proc
        self.pids[index] = proc.pid
        self._changed()
        LOG.info("API worker %d serves (pid %d)", index, proc.pid)
        return proc

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(dict(self.pids))

    async def stop(self) -> None:
        self._stopping = True
        procs = list(self._procs.values())
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        waits = [asyncio.ensure_future(p.wait()) for p in procs]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=self.grace)
            for proc in procs:
                if proc.returncode is None:
                    LOG.warning("API worker pid %d did not stop in %.0f s: killing it", proc.pid, self.grace)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            if pending:
                await asyncio.wait(pending, timeout=5)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def worker_argv(cfg_source: str, state_dir: str) -> list[str]:
    argv = [sys.executable, "-m", "cumulo.cli.main"]
    if cfg_source:
        argv += ["--config", cfg_source]
    return [*argv, "--state-dir", state_dir, "worker"]


def inherited_sockets() -> dict[str, socket.socket]:
    """In a worker: the leader's listening sockets, by API name."""
    out = {}
    for item in filter(None, os.environ.get(SOCKETS_ENV, "").split(",")):
        name, fd = item.split("=")
        out[name] = socket.socket(fileno=int(fd))
    return out


def die_with_leader() -> None:
    """In a worker: SIGTERM from the kernel when the leader goes, however it goes."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    leader = os.environ.get(LEADER_ENV)
    if leader and os.getppid() != int(leader):  # gone before the line above
        raise SystemExit("the leader is gone")


def tell_ready() -> None:
    fd = os.environ.get(READY_ENV)
    if fd:
        with contextlib.suppress(OSError):
            os.write(int(fd), b"1")
            os.close(int(fd))
