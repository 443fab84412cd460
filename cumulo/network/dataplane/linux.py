"""Linux plumbing for the dataplane: network namespaces, links and addresses (iproute2), and two
things only a thread inside a namespace can make: tap devices handed to QEMU as open file
descriptors, and listening sockets the agent serves from its own event loop.

A tap made this way lives exactly as long as the QEMU that holds it; a socket keeps the
namespace it was made in whatever thread later uses it.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import json
import logging
import os
import shutil
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import Counter

T = TypeVar("T")
NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
_libc = ctypes.CDLL(None, use_errno=True)


LOG = logging.getLogger(__name__)
TIMEOUT = 30.0  # seconds any one command may take before it is killed
# the only failures that mean "it is already so" (anything else is a real failure)
GONE_LINK = ("Cannot find device",)  # ip link del of a link that is not there
GONE_NS = ("No such file or directory",)  # ip netns delete of a namespace that is not there
EXISTS = ("File exists",)  # ip netns add / ip link add of what is there already
COMMAND_FAILURES = Counter("cumulo_network_command_failures_total",
                           "Dataplane commands (ip, iptables-restore, dnsmasq, conntrack, ...) that failed or timed "
                           "out; the agent's next reconcile retries them", ["command", "reason"])


class CommandFailed(RuntimeError):
    def __init__(self, cmd: tuple[str, ...], returncode: int | None, stderr: str, timed_out: bool = False) -> None:
        self.cmd, self.returncode, self.stderr, self.timed_out = cmd, returncode, stderr, timed_out
        what = "timed out" if timed_out else f"failed ({returncode})"
        super().__init__(f"{shown(cmd)} {what}: {stderr.strip()[-600:]}")


class CommandTimedOut(CommandFailed):
    pass


def shown(cmd: tuple[str, ...] | list[str]) -> str:
    return " ".join(cmd)[:300]


def tool(cmd: tuple[str, ...] | list[str]) -> str:
    """The program a command line runs (the one behind ``ip netns exec NS``)."""
    if len(cmd) > 3 and cmd[0] == "ip" and cmd[1:3] == ("netns", "exec"):
        return os.path.basename(cmd[4]) if len(cmd) > 4 else "ip"
    return os.path.basename(cmd[0])


async def run(*cmd: str, input: str | None = None, check: bool = True, timeout: float = TIMEOUT,
              ok_if: tuple[str, ...] = ()) -> str:
    """Run ``cmd`` and return its output.  A failure raises ``CommandFailed`` (unless ``check`` is
    false, or its error output says one of ``ok_if``: the "already so" case the caller expects); a
    command that takes longer than ``timeout`` seconds is killed and raises ``CommandTimedOut``
    whatever ``check`` says, so no command can hang the agent.  Both are logged and counted."""
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(input.encode() if input is not None else None), timeout)
    except TimeoutError:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            LOG.error("command %s (pid %s) does not die after SIGKILL", shown(cmd), proc.pid)
        COMMAND_FAILURES.labels(tool(cmd), "timeout").inc()
        LOG.warning("command timed out after %ss and was killed: %s", timeout, shown(cmd))
        raise CommandTimedOut(cmd, None, "", timed_out=True) from None
    except BaseException:  # cancelled: the command must not outlive the caller
        if proc.returncode is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
        raise
    text = err.decode(errors="replace")
    if proc.returncode != 0 and not any(marker in text for marker in ok_if):
        COMMAND_FAILURES.labels(tool(cmd), "failed").inc()
        if check:
            LOG.warning("command failed (%s): %s: %s", proc.returncode, shown(cmd), text.strip()[-600:])
            raise CommandFailed(cmd, proc.returncode, text)
        LOG.debug("command failed (%s), as the caller allows: %s: %s", proc.returncode, shown(cmd),
                  text.strip()[-600:])
    return out.decode(errors="replace")


def ns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def namespaces(prefix: str) -> list[str]:
    """Namespaces whose name starts with ``prefix-``."""
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(f"{prefix}-"))
    except FileNotFoundError:
        return []


_settled: set[tuple[str, int]] = set()  # namespaces (name, inode) whose loopback and sysctls are set


async def ensure_ns(name: str, sysctls: dict[str, str] | None = None) -> bool:
    """The namespace, with its loopback up and the given sysctls (set once per namespace this
    process sees; a namespace made again is set again); True when it was just made."""
    made = False
    if not ns_exists(name):
        await run("ip", "netns", "add", name, ok_if=EXISTS)  # a concurrent maker may win: fine
        made = True
    try:
        key = (name, os.stat(NETNS_DIR / name).st_ino)
    except OSError:
        key = (name, 0)
    if made or key not in _settled:
        await run("ip", "-n", name, "link", "set", "lo", "up")
        if sysctls:
            await asyncio.to_thread(in_netns, name, lambda: [_write_sysctl(k, v) for k, v in sysctls.items()])
        _settled.add(key)
    return made


def _write_sysctl(key: str, value: str) -> None:
    path = Path("/proc/sys") / key.replace(".", "/")
    if path.read_text().strip() != value:
        path.write_text(value)


async def delete_ns(name: str) -> None:
    """The namespace, and first any process still inside it (a dnsmasq whose files are gone)."""
    if not ns_exists(name):
        return
    for pid in pids_in(name):
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass
    await run("ip", "netns", "delete", name, ok_if=GONE_NS)


def pids_in(name: str) -> list[int]:
    """Processes whose network namespace is ``name``."""
    try:
        target = os.stat(NETNS_DIR / name).st_ino
    except OSError:
        return []
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.stat(entry / "ns" / "net").st_ino == target:
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


async def links(ns: str) -> list[dict[str, Any]]:
    """``ip -d link`` of the namespace: name, kind, master, state, mtu, address."""
    if not ns_exists(ns):
        return []
    out = []
    for item in json.loads(await run("ip", "-n", ns, "-j", "-d", "link", "show") or "[]"):
        info = item.get("linkinfo") or {}
        out.append({"name": item["ifname"], "kind": info.get("info_kind", ""), "master": item.get("master"),
                    "up": "UP" in (item.get("flags") or []), "mtu": item.get("mtu"),
                    "address": item.get("address")})
    return out


async def addresses(ns: str) -> dict[str, list[str]]:
    """Addresses per interface, as ``address/prefixlen``."""
    if not ns_exists(ns):
        return {}
    out: dict[str, list[str]] = {}
    for item in json.loads(await run("ip", "-n", ns, "-j", "addr", "show") or "[]"):
        out[item["ifname"]] = [f"{a['local']}/{a['prefixlen']}" for a in item.get("addr_info") or []
                               if a.get("scope") != "link" and a.get("family") in ("inet", "inet6")]
    return out


async def ensure_bridge(ns: str, name: str, mtu: int, link: dict[str, Any] | None) -> None:
    """Bridge ``name`` in ``ns``, up; ``link`` is what ``links()`` saw of it (None: absent).  The
    agent and the compute driver may both make it at the same moment: either wins."""
    if link is None:
        await run("ip", "-n", ns, "link", "add", name, "mtu", str(mtu), "type", "bridge", ok_if=EXISTS)
    if link is None or not link["up"]:
        await run("ip", "-n", ns, "link", "set", name, "up")


async def batch(ns: str, commands: list[str]) -> None:
    """Several iproute2 commands in one process (``ip -batch``); stops at the first failure."""
    if commands:
        await run("ip", "-n", ns, "-batch", "-", input="\n".join(commands) + "\n")


def in_netns(name: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` on a thread of its own that has entered namespace ``name`` (setns is per thread,
    so the rest of the process stays where it is)."""
    result: dict[str, Any] = {}

    def body() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(NETNS_DIR / name, os.O_RDONLY)
        except OSError as exc:
            os.close(home)
            result["error"] = exc
            return
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns into {name}: {os.strerror(err)}")
            try:
                result["value"] = fn()
            finally:
                _libc.setns(home, CLONE_NEWNET)
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc
        finally:
            os.close(home)
            os.close(target)

    t = threading.Thread(target=body, name=f"netns-{name}")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["value"]  # type: ignore[no-any-return]


def open_tap(ns: str, name: str) -> int:
    """A tap device ``name`` in namespace ``ns``, as an open descriptor (with the virtio-net
    header, as QEMU's tap backend wants).  Closing the last descriptor removes the device."""

    def make() -> int:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
        except OSError:
            os.close(fd)
            raise
        return fd

    return in_netns(ns, make)


def listen_in(ns: str, host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` inside namespace ``ns``."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
        sock.setblocking(False)
        return sock

    return in_netns(ns, make)


def pid_alive(pid_file: Path, marker: str) -> int | None:
    """The process named by ``pid_file`` if it runs and its command line contains ``marker``."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if marker.encode() in cmdline else None


def missing_tools() -> list[str]:
    """What this machine lacks to run the dataplane (empty: it can)."""
    out = [tool for tool in ("ip", "dnsmasq", "iptables-restore", "ip6tables-restore", "ebtables-restore")
           if shutil.which(tool) is None]
    if os.geteuid() != 0:
        out.append("root")
    if not Path("/dev/net/tun").exists():
        out.append("/dev/net/tun")
    return out


def enabled(setting: str) -> bool:
    """[network] dataplane: "auto" when the machine can, "true" insists, "false" never."""
    value = str(setting).lower()
    if value in ("false", "0", "no", "off"):
        return False
    lacking = missing_tools()
    if value in ("true", "1", "yes", "on") and lacking:
        raise RuntimeError(f"[network] dataplane is true but this machine lacks {', '.join(lacking)} "
                           "(scripts/setup.sh installs dnsmasq-base, iproute2 and iptables; run as root)")
    return not lacking
