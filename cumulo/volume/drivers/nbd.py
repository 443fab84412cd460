"""NBD exports of volume files, for compute nodes on other machines: one ``qemu-storage-daemon``
per exported volume, started by the volume agent, serving the volume's qcow2 as a raw NBD export
(the qcow2 format node lives in the daemon, so the compute node's QEMU opens ``raw`` over
``nbd``).  The export listens on ``[volume] export_host``: a TCP address of this storage node (a
free port each), or, when it is an absolute path, a directory for unix sockets.

What runs is written down under ``<volumes dir>/.exports/``: ``<volume id>.json`` (the address,
the mode, when it started), the daemon's own ``<volume id>.pid`` and its messages,
``<volume id>.log``.  A daemon is ours only while
its command line names that pid file, so a PID the system reused is never signalled.  A restarted
agent adopts the daemons it finds alive and starts again, on the same address, the ones that
died (the compute side's NBD client reconnects), so guests keep their disks across an agent
restart; a daemon without a record, or whose volume file is gone, is stopped.  Nothing else stops
an export than ``stop`` (the agent's terminate_connection when no attachment holds the volume any
more, its volume delete, and its periodic sync with the controller), and ``stop`` waits until
the process is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)

START_TIMEOUT = 30.0  # seconds a daemon has to open the image and listen
STOP_TIMEOUT = 10.0  # seconds a daemon has to exit on SIGTERM before it gets SIGKILL
PORT_TRIES = 5  # a free port found may be taken by someone else before the daemon binds it


@dataclass
class Export:
    """One running export: where it listens and how (``port`` for TCP, ``socket`` for unix)."""

    volume_id: str
    mode: str  # rw or ro
    host: str | None = None
    port: int | None = None
    socket: str | None = None
    started: float = 0.0  # time.time() of its start or last request, for the sync's grace period
    pid: int | None = None

    @property
    def name(self) -> str:
        return f"volume-{self.volume_id}"

    def data(self) -> dict[str, Any]:
        """The address part of the connection info (block storage's ``nbd`` driver_volume_type)."""
        where: dict[str, Any] = {"socket": self.socket} if self.socket else {"host": self.host, "port": self.port}
        return {**where, "export": self.name, "format": "raw"}

    def server(self) -> dict[str, Any]:
        """QEMU's SocketAddress of the export, for a client on this machine (qemu-img)."""
        if self.socket:
            return {"type": "unix", "path": self.socket}
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", None) else str(self.host)
        return {"type": "inet", "host": host, "port": str(self.port)}


class NBDExports:
    """The qemu-storage-daemon exports of one volume agent (``path``: its volumes directory)."""

    def __init__(self, path: Path, export_host: str = "127.0.0.1") -> None:
        self.dir = Path(path) / ".exports"  # made at the first export
        self.export_host = export_host or "127.0.0.1"
        self.exports: dict[str, Export] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # -- what is exported --------------------------------------------------------------------------
    def exported(self) -> list[str]:
        return sorted(self.exports)

    def get(self, volume_id: str) -> Export | None:
        return self.exports.get(volume_id)

    async def export(self, volume_id: str, image: Path, mode: str) -> Export:
        """The volume's export, started if it is not running; a ``rw`` request on a running
        read-only export restarts it writable (on the same address).  Idempotent."""
        async with self._lock(volume_id):
            current = self.exports.get(volume_id)
            if current is not None and self._alive(volume_id):
                if mode == current.mode or current.mode == "rw":
                    current.started = time.time()  # just asked for: the sync's grace starts again
                    return current
                await self._stop(volume_id)
            elif current is not None:  # it died: start it again where the clients look for it
                self._forget(volume_id)
            return await self._start(volume_id, image, mode, current)

    async def stop(self, volume_id: str) -> None:
        """Stop the volume's export, if any, and wait for the daemon to be gone.  Idempotent."""
        async with self._lock(volume_id):
            await self._stop(volume_id)

    async def adopt(self, images: dict[str, Path]) -> None:
        """At the agent's start: take over the daemons a previous run left (``images``: the
        volume files present, by volume id).  A live daemon with its record is kept; a dead one
        whose volume is still here is started again on its address; everything else is stopped
        and its record removed."""
        ids = {p.stem for p in self.dir.glob("*.json")} | {p.stem for p in self.dir.glob("*.pid")} | {
            p.stem for p in self.dir.glob("*.log")}
        for volume_id in sorted(ids):
            record = self._read(volume_id)
            alive = self._alive(volume_id)
            if record is not None and alive and volume_id in images:
                record.pid = self._pid(volume_id)
                self.exports[volume_id] = record
                LOG.info("adopted the NBD export of volume %s (pid %s)", volume_id, record.pid)
            elif record is not None and volume_id in images:
                LOG.info("the NBD export of volume %s had stopped: starting it again", volume_id)
                self._forget(volume_id)
                try:
                    await self._start(volume_id, images[volume_id], record.mode, record)
                except RuntimeError as exc:
                    LOG.warning("restarting the NBD export of volume %s failed: %s", volume_id, exc)
            else:
                self.exports[volume_id] = record or Export(volume_id, "ro")
                await self._stop(volume_id)

    async def copy(self, volume_id: str, target: Path) -> None:
        """A qcow2 copy of an exported volume read through its export, while its guest may write
        (the daemon holds the image's lock; qemu-img is one more NBD client)."""
        e = self.exports.get(volume_id)
        if e is None:
            raise LookupError(f"volume {volume_id} is not exported")
        source = json.dumps({"driver": "raw", "file": {"driver": "nbd", "server": e.server(), "export": e.name}})
        proc = await asyncio.create_subprocess_exec(
            "qemu-img", "convert", "-q", "-O", "qcow2", f"json:{source}", str(target),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"copying volume {volume_id} from its NBD export failed: "
                               f"{err.decode(errors='replace').strip()[:300]}")

    async def stop_unheld(self, held: set[str], exported: list[str], grace: float) -> list[str]:
        """Stop the exports (among ``exported``, as the agent reported them) that no attachment
        holds, unless younger than ``grace`` seconds (an os-initialize_connection whose os-attach
        has not come yet).  Returns the ones stopped."""
        now, stopped = time.time(), []
        for volume_id in exported:
            e = self.exports.get(volume_id)
            if e is None or volume_id in held or now - e.started < grace:
                continue
            LOG.info("no attachment holds the NBD export of volume %s: stopping it", volume_id)
            await self.stop(volume_id)
            stopped.append(volume_id)
        return stopped

    # -- the daemons -------------------------------------------------------------------------------
    async def _start(self, volume_id: str, image: Path, mode: str, previous: Export | None) -> Export:
        last: str = ""
        for _ in range(PORT_TRIES):
            e = self._address(volume_id, mode, previous)
            self._write(e)
            log = self.dir / f"{volume_id}.log"  # the daemon's own messages (not a pipe: it outlives us)
            with open(log, "wb") as err_file:
                proc = await asyncio.create_subprocess_exec(
                    *self._command(e, image), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                    stderr=err_file)
            try:  # --daemonize: the parent exits once the export listens, the daemon goes on
                await asyncio.wait_for(proc.wait(), START_TIMEOUT)
                err = log.read_bytes()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                err = b"it did not start within %d s" % START_TIMEOUT
            if proc.returncode == 0 and self._alive(volume_id):
                e.pid = self._pid(volume_id)
                self.exports[volume_id] = e
                LOG.info("volume %s exported over NBD at %s (pid %s)", volume_id, e.data(), e.pid)
                return e
            self._forget(volume_id)
            last = err.decode(errors="replace").strip()[:300]
            if previous is not None or e.socket or "Address already in use" not in last:
                break
        raise RuntimeError(f"qemu-storage-daemon could not export volume {volume_id}: {last}")

    def _address(self, volume_id: str, mode: str, previous: Export | None) -> Export:
        if previous is not None and (previous.socket or previous.port):
            return Export(volume_id, mode, previous.host, previous.port, previous.socket, time.time())
        if self.export_host.startswith("/"):
            sock = Path(self.export_host) / f"volume-{volume_id}.sock"
            sock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            return Export(volume_id, mode, socket=str(sock), started=time.time())
        return Export(volume_id, mode, self.export_host, _free_port(self.export_host), started=time.time())

    def _command(self, e: Export, image: Path) -> list[str]:
        ro = "on" if e.mode == "ro" else "off"
        if e.socket:
            Path(e.socket).unlink(missing_ok=True)
            server = f"addr.type=unix,addr.path={_opt(e.socket)}"
        else:
            server = f"addr.type=inet,addr.host={_opt(str(e.host))},addr.port={e.port}"
        return ["qemu-storage-daemon",
                "--blockdev", f"driver=file,node-name=file0,filename={_opt(str(image))},read-only={ro}",
                "--blockdev", f"driver=qcow2,node-name=disk,file=file0,discard=unmap,read-only={ro}",
                "--nbd-server", server,
                "--export", f"type=nbd,id=export0,node-name=disk,name={e.name},"
                            f"writable={'off' if e.mode == 'ro' else 'on'}",
                "--pidfile", str(self._pidfile(e.volume_id)), "--daemonize"]

    async def _stop(self, volume_id: str) -> None:
        pid = self._pid(volume_id) if self._alive(volume_id) else None
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT  # (it removes its pid file before it is gone)
            while self._ours(pid, volume_id) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self._ours(pid, volume_id):
                LOG.warning("qemu-storage-daemon %s of volume %s ignored SIGTERM: killing it", pid, volume_id)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                while self._ours(pid, volume_id):
                    await asyncio.sleep(0.05)
            LOG.info("the NBD export of volume %s stopped", volume_id)
        e = self.exports.get(volume_id)
        if e is not None and e.socket:
            Path(e.socket).unlink(missing_ok=True)
        self._forget(volume_id)

    def _alive(self, volume_id: str) -> bool:
        """Whether the volume's daemon runs: the pid file's process is a qemu-storage-daemon whose
        command line names that very pid file (a reused PID, or a zombie, is not)."""
        pid = self._pid(volume_id)
        return pid is not None and self._ours(pid, volume_id)

    def _ours(self, pid: int, volume_id: str) -> bool:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return str(self._pidfile(volume_id)).encode() in args and any(
            a.endswith(b"qemu-storage-daemon") for a in args[:1])

    def _pid(self, volume_id: str) -> int | None:
        try:
            return int(self._pidfile(volume_id).read_text().strip())
        except (OSError, ValueError):
            return None

    # -- the records -------------------------------------------------------------------------------
    def _pidfile(self, volume_id: str) -> Path:
        return self.dir / f"{volume_id}.pid"

    def _write(self, e: Export) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.dir / f".{e.volume_id}.json.part"
        tmp.write_text(json.dumps({k: v for k, v in asdict(e).items() if k != "pid"}))
        os.replace(tmp, self.dir / f"{e.volume_id}.json")

    def _read(self, volume_id: str) -> Export | None:
        try:
            raw = json.loads((self.dir / f"{volume_id}.json").read_text())
            return Export(**{k: raw.get(k) for k in ("volume_id", "mode", "host", "port", "socket")},
                          started=float(raw.get("started") or 0.0))
        except (OSError, ValueError, TypeError):
            return None

    def _forget(self, volume_id: str) -> None:
        self.exports.pop(volume_id, None)
        (self.dir / f"{volume_id}.json").unlink(missing_ok=True)
        self._pidfile(volume_id).unlink(missing_ok=True)
        (self.dir / f"{volume_id}.log").unlink(missing_ok=True)

    def _lock(self, volume_id: str) -> asyncio.Lock:
        return self._locks.setdefault(volume_id, asyncio.Lock())


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _opt(value: str) -> str:
    """A value inside QEMU's key=value option syntax (a comma is doubled)."""
    return value.replace(",", ",,")


def is_local_address(ip: str | None) -> bool:
    """Whether ``ip`` is an address of this machine (it can be bound here)."""
    if not ip:
        return False
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((ip, 0))
    except (OSError, ValueError):
        return False
    return True
