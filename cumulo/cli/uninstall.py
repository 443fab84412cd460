"""``cumulo uninstall``: remove what ``make up`` made on this machine, and say what stays.

What belongs to the cloud is found by what it recorded, never by a process name:

* the controller and its API workers: the pids in ``<state-dir>/status.json`` (a running ``cumulo
  up`` keeps it), each checked to be a ``cumulo`` process that started before the file said;
* QEMU guests, qemu-storage-daemon exports and dnsmasq: every ``*.pid`` / ``pid`` file under the
  state directory, the instances path and the volumes path whose process names that very pid
  file on its command line (a reused pid is someone else's and is left alone);
* the dataplane: the namespaces ``<prefix>-*`` (as ``cumulo network cleanup``);
* the clouds ``cumulo`` and ``cumulo-demo`` merged into ~/.config/openstack/clouds.yaml, when they
  still point at this cloud's identity endpoint (other clouds there are kept);
* the state directory (and the instances, volumes and backups paths configured outside it),
  unless --keep-state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import yaml

from cumulo.cli.backup import example
from cumulo.core import config as configmod

CLOUD_NAMES = ("cumulo", "cumulo-demo")


@dataclass
class Plan:
    controllers: list[tuple[int, str]] = field(default_factory=list)  # (pid, what)
    processes: list[tuple[int, str]] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    user_clouds: list[str] = field(default_factory=list)
    user_clouds_file: Path | None = None
    paths: list[Path] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"  stop {what} (pid {pid})" for pid, what in self.controllers + self.processes]
        if self.namespaces:
            out.append(f"  remove {len(self.namespaces)} network namespaces: {', '.join(self.namespaces[:6])}"
                       f"{' ...' if len(self.namespaces) > 6 else ''}")
        if self.user_clouds:
            out.append(f"  remove the clouds {', '.join(self.user_clouds)} from {self.user_clouds_file}")
        out += [f"  delete {p}" for p in self.paths]
        return out


def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _started_at(pid: int) -> float | None:
    """The process's start (Unix time), from /proc/PID/stat and the boot time."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def controller_pids(state: Path) -> list[tuple[int, str]]:
    """The leader and its workers that status.json names, when they are still those processes."""
    try:
        info = json.loads((state / "status.json").read_text())
    except (OSError, ValueError):
        return []
    found = [(int(info["pid"]), "cumulo up")] + [(int(pid), f"API worker {i}")
                                                 for i, pid in (info.get("workers") or {}).items()]
    out = []
    for pid, what in found:
        args = _cmdline(pid)
        began = _started_at(pid)
        is_cumulo = any(a.endswith(b"cumulo") or b"cumulo" in a for a in args[:3])
        if is_cumulo and began is not None and began <= float(info.get("started", time.time())) + 1:
            out.append((pid, what))
    return out


def pidfile_processes(roots: list[Path]) -> list[tuple[int, str]]:
    """Processes whose pid file is under ``roots`` and whose command line names that file."""
    out: dict[int, str] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if not (path.name == "pid" or path.name.endswith(".pid")) or not path.is_file():
                continue
            try:
                pid = int(path.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            args = _cmdline(pid)
            if args and any(str(path).encode() in a for a in args):
                out[pid] = f"{Path(args[0].decode(errors='replace')).name} of {path.parent}"
    return sorted(out.items())


def user_clouds(cfg: configmod.Config, home: Path) -> tuple[Path, list[str]]:
    """Our clouds in the user's clouds.yaml: those whose auth_url is this cloud's identity."""
    path = home / ".config" / "openstack" / "clouds.yaml"
    ours = {cfg.endpoint(cfg.identity.port, "/v3").rstrip("/")}
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError, KeyError):
        mine = yaml.safe_load((cfg.state_path / "clouds.yaml").read_text())["clouds"]
        ours |= {str(c["auth"]["auth_url"]).rstrip("/") for c in mine.values()}
    try:
        clouds = (yaml.safe_load(path.read_text()) or {}).get("clouds") or {}
    except (OSError, yaml.YAMLError):
        return path, []
    return path, [name for name in CLOUD_NAMES if name in clouds and
                  str((clouds[name].get("auth") or {}).get("auth_url", "")).rstrip("/") in ours]


def drop_user_clouds(path: Path, names: list[str]) -> None:
    data = yaml.safe_load(path.read_text()) or {}
    for name in names:
        data.get("clouds", {}).pop(name, None)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)


def stop(pids: list[tuple[int, str]], timeout: float) -> list[str]:
    """SIGTERM each, SIGKILL what still runs after ``timeout``; what could not be stopped."""
    for pid, _ in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [(p, w) for p, w in alive if _running(p)]
    for pid, _ in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    time.sleep(0.2 if alive else 0)
    return [f"{what} (pid {pid})" for pid, what in alive if _running(pid)]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def plan(cfg: configmod.Config, keep_state: bool, home: Path) -> Plan:
    from cumulo.cli.backup import default_backup_dir
    from cumulo.network.dataplane.linux import namespaces

    state = cfg.state_path
    instances = Path(cfg.compute.instances_path) if cfg.compute.instances_path else state / "instances"
    volumes = Path(cfg.volume.volumes_path) if cfg.volume.volumes_path else state / "volumes"
    p = Plan(controllers=controller_pids(state))
    p.processes = [x for x in pidfile_processes(sorted({state, instances, volumes}))
                   if x[0] not in {pid for pid, _ in p.controllers}]
    p.namespaces = namespaces(cfg.network.namespace_prefix)
    p.user_clouds_file, p.user_clouds = user_clouds(cfg, home)
    if not keep_state:
        backups = Path(cfg.volume.backups_path) if cfg.volume.backups_path else None
        for path in (state, instances, volumes, backups, default_backup_dir(cfg)):
            if path is not None and path.exists() and not any(path.is_relative_to(q) for q in p.paths):
                p.paths.append(path)
    return p


@click.command("uninstall", short_help="Remove what `make up` made: processes, guests, dataplane, state.",
               epilog=example(
                   "cumulo uninstall                       # shows what goes, asks once",
                   "cumulo --state-dir /tmp/c uninstall --yes",
                   "cumulo uninstall --keep-state          # stop and clean the machine, keep the data"))
@click.option("--yes", is_flag=True, help="Do not ask.")
@click.option("--keep-state", is_flag=True, help="Keep the state directory (database, keys, images, "
              "volumes, backups): `cumulo up` starts the same cloud again.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds a process gets after SIGTERM "
              "before SIGKILL.")
@click.pass_context
def uninstall_command(ctx: click.Context, yes: bool, keep_state: bool, timeout: float) -> None:
    """Remove this machine's cloud: stop `cumulo up` and its API workers (the pids of
    <state-dir>/status.json), its QEMU guests, NBD exports and dnsmasq (their pid files under the
    state, instances and volumes paths), remove the dataplane's namespaces <prefix>-* (as `cumulo
    network cleanup`), the clouds cumulo and cumulo-demo it merged into
    ~/.config/openstack/clouds.yaml (when they still name this cloud), and the state directory with
    the instances, volumes and backups (unless --keep-state).

    It shows the list and asks once (unless --yes).  Processes are found by what the cloud
    recorded, never by name: a separate `cumulo agent` or `cumulo network agent` is not stopped
    (stop its service first).  The virtualenv, the Debian packages and the guest build stay; the
    last lines say how to remove them.
    """
    root = ctx.find_root().obj or {}
    try:
        cfg = configmod.load(root.get("config"), state_dir=root.get("state_dir"))
    except configmod.ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    p = plan(cfg, keep_state, Path.home())
    lines = p.lines()
    if not lines:
        click.echo(f"nothing of a cloud in {cfg.state_path} (prefix {cfg.network.namespace_prefix}) on this machine")
    else:
        click.echo("cumulo uninstall will:\n" + "\n".join(lines))
        if not yes:
            click.confirm("go ahead?", abort=True)
    problems = []
    if p.controllers:  # the controller first: its agents would start guests and namespaces again
        problems += stop(p.controllers, timeout)
        p.processes = [x for x in p.processes if _running(x[0])]
    problems += stop(p.processes, timeout)
    for pid, what in p.controllers + p.processes:
        if f"{what} (pid {pid})" not in " ".join(problems):
            click.echo(f"stopped {what} (pid {pid})")
    if p.namespaces:
        async def teardown() -> None:
            from cumulo.network.agent import NetworkAgent

            await NetworkAgent(None, cfg.network.namespace_prefix, cfg.state_path, "", "").teardown()

        asyncio.run(teardown())
        from cumulo.network.dataplane.linux import namespaces

        left = namespaces(cfg.network.namespace_prefix)
        problems += [f"namespace {ns}" for ns in left]
        click.echo(f"removed {len(p.namespaces) - len(left)} network namespaces")
    if p.user_clouds and p.user_clouds_file is not None:
        drop_user_clouds(p.user_clouds_file, p.user_clouds)
        click.echo(f"removed the clouds {', '.join(p.user_clouds)} from {p.user_clouds_file}")
    for path in p.paths:
        try:
            shutil.rmtree(path)
            click.echo(f"deleted {path}")
        except OSError as exc:
            problems.append(f"{path} ({exc})")
    venv = Path(sys.prefix)
    click.echo("left on this machine: " + "; ".join(x for x in (
        f"the state directory {cfg.state_path}" if keep_state and cfg.state_path.exists() else "",
        f"the virtualenv {venv} (rm -rf {venv})",
        "the Debian packages scripts/setup.sh installed (qemu-system-x86, dnsmasq, iproute2, iptables, ...; "
        "apt-get remove them if nothing else uses them)",
        "the guest build guest/out (make clean removes the virtualenv; rm -rf guest/out the guest)",
        "any separate `cumulo agent` / `cumulo network agent` / `cumulo volume agent` (stop their services)") if x))
    if problems:
        click.echo("could not remove: " + "; ".join(problems), err=True)
        raise SystemExit(1)
