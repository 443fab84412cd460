"""``cumulo doctor``: the Operations Guide's hourly, daily, weekly and monthly checklist as code.

Each check names what it looked at, gives its verdict (ok, warning, failure), the component that
is broken, and the fix in words.  The exit status is the worst verdict, as ``nova-status upgrade
check`` does it: 0 all ok, 1 a warning, 2 a failure (255: doctor itself could not run).
``--json`` prints the same for scripts.

Doctor only reads: the configuration, the state directory, the database (read-only sessions),
``/proc``, the network namespaces, and the operator port of a running ``cumulo up``
(``/readyz``), or RabbitMQ for a bus round trip.  It changes nothing; each finding's fix says
what to run.  Thresholds are in ``[doctor]`` (``cumulo config show``).

It reads the services' tables directly, as ``nova-status`` reads Nova's: the checks are about
rows (leases, heartbeats) that no API shows across services, and they must work when the APIs
do not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cumulo.core import config as configmod

OK, WARNING, FAILURE = "ok", "warning", "failure"
EXIT = {OK: 0, WARNING: 1, FAILURE: 2}
RANK = {OK: 0, WARNING: 1, FAILURE: 2}
HEALTH_TARGET = "controller-health"  # the bus target every leader serves (cumulo.server)


@dataclass
class Finding:
    check: str  # the checklist item: "database", "agents", "disk", "leases", "orphans", ...
    component: str  # what is broken when it is not ok: "database", "compute agent fake-1", ...
    looked_at: str  # what was read
    verdict: str
    detail: str
    fix: str = ""


class Doctor:
    """The checks against one cloud's configuration; ``run()`` gives every finding."""

    def __init__(self, cfg: configmod.Config) -> None:
        self.cfg = cfg
        self.findings: list[Finding] = []
        self.db: Any = None
        self.tables: set[str] = set()
        self.running = False
        self.status: dict[str, Any] = {}

    def add(self, check: str, component: str, looked_at: str, verdict: str, detail: str, fix: str = "") -> None:
        self.findings.append(Finding(check, component, looked_at, verdict, detail, fix))

    async def run(self) -> list[Finding]:
        self.restore()
        self.controller()
        await self.database()
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("bus", self.bus), ("disk", self.disk), ("keys", self.keys)]
        if self.db is not None:
            steps = [("clock", self.clock), *steps, ("agents", self.agents), ("leases", self.leases),
                     ("orphans", self.orphans), ("quotas", self.quotas), ("expiry", self.expiry)]
        for name, step in steps:
            try:
                await step()
            except Exception as exc:  # noqa: BLE001  (one check failing must not hide the others)
                self.add(name, name, "(the check itself)", FAILURE, f"the check could not run: {type(exc).__name__}: "
                         f"{exc}"[:400], "see the message; run the check again with the cloud's own user (root)")
        if self.db is not None:
            await self.db.close()
        return self.findings

    # -- a restore cut short -------------------------------------------------------------------
    def restore(self) -> None:
        from cumulo.ops.backup import RESTORING, restore_incomplete

        why = restore_incomplete(self.cfg.state_path)
        if why:
            fix = why.split("Run the restore again: ", 1)[-1]
            self.add("restore", "state directory", str(self.cfg.state_path / RESTORING), FAILURE,
                     why.split(". Run the restore again")[0], f"run the restore again: {fix}")

    # -- is the cloud running? -----------------------------------------------------------------
    def controller(self) -> None:
        path = self.cfg.state_path / "status.json"
        if not path.exists():
            self.add("controller", "controller", str(path), FAILURE,
                     "cumulo is not running here (no status.json): the APIs, the bus and the embedded agents are down; "
                     "the checks below read the files and the database only",
                     "start it: `cumulo up` (or the system service that runs it)")
            return
        self.status = json.loads(path.read_text())
        pid = int(self.status.get("pid") or 0)
        if not pid_alive(pid):
            self.add("controller", "controller", str(path), FAILURE,
                     f"status.json names controller pid {pid}, which is gone: cumulo stopped without cleaning up",
                     "start it again: `cumulo up`")
            return
        operator = self.status.get("listeners", {}).get("operator")
        if operator:
            answer, code = probe(operator + "/livez")
            if code != 200:
                self.add("controller", "controller", operator + "/livez", FAILURE,
                         f"controller pid {pid} does not answer on the operator port ({answer})",
                         "look at its log (<state-dir>/cumulo.log or [logging] file); restart it if it hangs")
                return
        self.running = True
        gone = [f"{index} (pid {wpid})" for index, wpid in sorted(self.status.get("workers", {}).items())
                if not pid_alive(int(wpid))]
        if gone:
            self.add("controller", "controller (API workers)", str(path), WARNING,
                     f"API workers gone: {', '.join(gone)}; the controller restarts a worker that dies, so one "
                     "that stays gone means it fails at its start", "look at the log for the worker's last lines")
        lease = self.status.get("leader_lease", True)
        self.add("controller", "controller", str(path), OK if lease else WARNING,
                 f"controller pid {pid} on {self.status.get('host')} answers"
                 + ("" if lease else "; it does not hold the leader lease (another controller runs the reconcilers)"),
                 "" if lease else "make sure another controller on this database runs; else restart this one")

    # -- database ------------------------------------------------------------------------------
    async def database(self) -> None:
        from sqlalchemy import inspect
        from sqlalchemy.engine import make_url

        from cumulo.core.db import Database
        from cumulo.core.logging import mask_url

        url = self.cfg.database_url
        shown = mask_url(url)
        if make_url(url).get_backend_name() == "sqlite":
            path = Path(make_url(url).database or "")
            if not path.exists():
                self.add("database", "database", shown, FAILURE, f"no database at {path}",
                         "run `cumulo db sync` (or `cumulo up`, which makes it)")
                return
            if path.stat().st_mode & 0o077:
                self.add("database", "database", str(path), FAILURE,
                         "the database file is readable by other users (it holds password hashes)",
                         f"chmod 600 {path}")
                return
        db = Database(url, pool_size=2)
        if db.read_engine is not None:
            # SQLite: every session doctor opens (the services' too) is a read-only one (query_only),
            # which never takes the writers' turn: doctor cannot write, nor wait for a writer
            db.session = db.reader  # type: ignore[method-assign]
        started = time.monotonic()
        try:
            async with db.reader() as s:
                await asyncio.wait_for(s.execute(_text("SELECT 1")), 10)
            async with db.engine.connect() as conn:
                self.tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            revision = await db.revision()
        except Exception as exc:  # noqa: BLE001
            await db.close()
            self.add("database", "database", shown, FAILURE, f"the database does not answer: {type(exc).__name__}: "
                     f"{exc}"[:400], "start the database server, or correct [database] url")
            return
        self.db = db
        head = migrations_head()
        self.add("database", "database", shown, OK, f"reachable ({1000 * (time.monotonic() - started):.0f} ms)")
        if revision == head:
            self.add("database", "database", "alembic_version", OK, f"schema at the newest revision {head}")
        else:
            self.add("database", "database", "alembic_version", FAILURE,
                     f"schema at revision {revision or 'none'}, the code expects {head}",
                     "run `cumulo db sync` (every controller of this database runs the same version)")

    async def clock(self) -> None:
        dialect = self.db.dialect
        if dialect == "sqlite":
            self.add("clock", "clock", "SQLite", OK, "the database is a file on this machine: one clock")
            return
        query = "SELECT now()" if dialect == "postgresql" else "SELECT UTC_TIMESTAMP(6)"
        before = time.time()
        async with self.db.reader() as s:
            theirs = (await s.execute(_text(query))).scalar()
        after = time.time()
        if theirs.tzinfo is None:
            theirs = theirs.replace(tzinfo=dt.UTC)
        skew = theirs.timestamp() - (before + after) / 2
        verdict = OK if abs(skew) <= 1 else WARNING if abs(skew) <= 30 else FAILURE
        self.add("clock", "clock", f"{dialect} {query}", verdict,
                 f"this machine's clock and the database server's differ by {skew:+.2f} s",
                 "" if verdict == OK else "run NTP (chrony or systemd-timesyncd) on both machines: heartbeats, "
                 "leases and token expiry compare their times")

    # -- bus -----------------------------------------------------------------------------------
    async def bus(self) -> None:
        from cumulo.core.logging import mask_url

        url = self.cfg.bus.url
        if url.startswith(("amqp:", "amqps:")):
            from cumulo.core import bus as busmod

            bus = busmod.connect(url, 5.0, self.cfg.bus.prefix)
            started = time.monotonic()
            try:
                await asyncio.wait_for(bus.start(), 10)
            except Exception as exc:  # noqa: BLE001
                self.add("bus", "bus (RabbitMQ)", mask_url(url), FAILURE, f"cannot connect: {type(exc).__name__}: "
                         f"{exc}"[:300], "start RabbitMQ, or correct [bus] url")
                return
            try:
                answer = await bus.call(HEALTH_TARGET, "ping", {}, timeout=5)
                self.add("bus", "bus (RabbitMQ)", mask_url(url), OK,
                         f"round trip to controller pid {answer.get('pid')} on {answer.get('host')} in "
                         f"{1000 * (time.monotonic() - started):.0f} ms")
            except Exception as exc:  # noqa: BLE001
                self.add("bus", "controller", mask_url(url), FAILURE,
                         f"RabbitMQ answers, but no controller answered a ping: {type(exc).__name__}: {exc}"[:300],
                         "start `cumulo up`; if it runs, its log says why it does not consume from the bus")
            finally:
                with contextlib.suppress(Exception):
                    await bus.stop()
            return
        # the in-process bus lives inside `cumulo up`: its /readyz makes the round trip
        if not self.running:
            self.add("bus", "bus (in-process)", mask_url(url), FAILURE,
                     "the in-process bus runs inside `cumulo up`, which is not running", "start it: `cumulo up`")
            return
        operator = self.status["listeners"]["operator"]
        answer, _ = probe(operator + "/readyz")
        checks = answer.get("checks", {}) if isinstance(answer, dict) else {}
        state = checks.get("bus", f"unknown ({answer})")
        self.add("bus", "bus (in-process)", operator + "/readyz", OK if state == "ok" else FAILURE,
                 "a round trip over the in-process bus came back" if state == "ok" else f"the bus: {state}",
                 "" if state == "ok" else "look at the controller's log; restart it")

    # -- agents --------------------------------------------------------------------------------
    async def agents(self) -> None:
        from sqlalchemy import Boolean, column, select, table

        from cumulo.core.db import UTCDateTime

        now = utcnow()
        seen = 0
        kinds = [("compute", "compute_service", "last_seen_at", self.cfg.compute.service_down_time,
                  "`cumulo agent --host {host}` on that node (or `cumulo up` for the embedded ones)"),
                 ("volume", "volume_pool", "reported_at", self.cfg.volume.service_down_time,
                  "`cumulo volume agent --host {host}` on that node (or `cumulo up` with [volume] local_node)"),
                 ("network", "network_agent", "heartbeat_at", 75,
                  "`cumulo network agent` on {host} (or `cumulo up` with the dataplane on)")]
        async with self.db.reader() as s:
            for kind, name, stamp, down_time, start in kinds:
                if name not in self.tables:
                    continue
                cols = [column("host"), column(stamp, UTCDateTime)]
                if name != "network_agent":
                    cols.append(column("disabled", Boolean))
                if name == "compute_service":
                    cols.append(column("binary"))  # a reserved word in MySQL: the construct quotes it
                    cols.append(column("forced_down", Boolean))
                t = table(name, *cols)
                query = select(*t.c)
                if name == "compute_service":
                    query = query.where(t.c.binary == "nova-compute")
                rows = (await s.execute(query)).all()
                latest: dict[str, Any] = {}
                for row in rows:  # the network agent is one row per function: its newest beat counts
                    if row.host not in latest or (row[1] or dt.datetime.min) > (latest[row.host][1] or dt.datetime.min):
                        latest[row.host] = row
                for host, row in sorted(latest.items()):
                    seen += 1
                    at = row[1]
                    disabled = bool(getattr(row, "disabled", False))
                    age = (now - at).total_seconds() if at else None
                    where = f"{name} {host}"
                    if getattr(row, "forced_down", False):
                        self.add("agents", f"{kind} agent {host}", where, WARNING,
                                 f"the {kind} agent on {host} is forced down by an admin (heartbeat "
                                 f"{'never' if age is None else f'{age:.0f} s ago'}): nothing is scheduled there",
                                 f"once the node is fenced or back: `openstack compute service set --up {host} "
                                 "nova-compute`")
                    elif age is not None and age <= down_time:
                        self.add("agents", f"{kind} agent {host}", where, OK,
                                 f"heartbeat {age:.0f} s ago" + (" (disabled by an admin)" if disabled else ""))
                    else:
                        since = "never reported" if age is None else f"silent for {age:.0f} s (allowed {down_time} s)"
                        self.add("agents", f"{kind} agent {host}", where, WARNING if disabled else FAILURE,
                                 f"the {kind} agent on {host} is down: {since}" + (", disabled" if disabled else ""),
                                 f"start {start.format(host=host)}; a node retired for good: delete its service "
                                 f"(openstack {'compute ' if kind == 'compute' else ''}service delete)"
                                 if kind != "network" else f"start {start.format(host=host)}; or `openstack network "
                                 "agent delete` for a machine retired for good")
        if not seen:
            self.add("agents", "agents", "compute_service, volume_pool", WARNING if "compute" in self.cfg.services
                     else OK, "no agent has ever reported", "start `cumulo up` (or the agents on their nodes)")

    # -- disk ----------------------------------------------------------------------------------
    async def disk(self) -> None:
        d = self.cfg.doctor
        state = self.cfg.state_path
        places = [("state directory", state),
                  ("instances", Path(self.cfg.compute.instances_path or state / "instances")),
                  ("volumes", Path(self.cfg.volume.volumes_path or state / "volumes")),
                  ("backups", Path(self.cfg.volume.backups_path or state / "backups"))]
        devices = state / "object" / "devices"
        if devices.is_dir():
            places += [(f"object device {p.name}", p) for p in sorted(devices.iterdir()) if p.is_dir()]
        by_fs: dict[int, list[tuple[str, Path]]] = {}
        for label, path in places:
            if path.exists():
                by_fs.setdefault(path.stat().st_dev, []).append((label, path))
        for group in by_fs.values():
            usage = shutil.disk_usage(group[0][1])
            # as df counts it: the part of what users may fill that is used (root's reserve left out)
            percent = 100 * usage.used / (usage.used + usage.free) if usage.used + usage.free else 0
            verdict = FAILURE if percent >= d.disk_failure_percent else WARNING if percent >= d.disk_warning_percent \
                else OK
            labels = ", ".join(label for label, _ in group)
            self.add("disk", f"disk ({labels})", ", ".join(str(p) for _, p in group), verdict,
                     f"{percent:.0f}% used, {usage.free / 2**30:.1f} GiB free (warning at {d.disk_warning_percent:g}%, "
                     f"failure at {d.disk_failure_percent:g}%)",
                     "" if verdict == OK else "free space: delete unused images, volumes, snapshots and backups, "
                     "old logs; or grow the file system")

    # -- keys ----------------------------------------------------------------------------------
    async def keys(self) -> None:
        repo = self.cfg.key_repository
        fix_setup = "`cumulo up` sets the repository up; copy it from another controller if there is one"
        if not repo.is_dir():
            self.add("keys", "identity (Fernet keys)", str(repo), FAILURE, "no Fernet key repository: no token "
                     "can be issued or validated", fix_setup)
            return
        indexes = sorted(int(p.name) for p in repo.iterdir() if p.name.isdigit())
        if 0 not in indexes or len(indexes) < 2:
            self.add("keys", "identity (Fernet keys)", str(repo), FAILURE,
                     f"the repository holds keys {indexes or 'none'}: it needs a staged key 0 and a primary", fix_setup)
            return
        loose = [p.name for p in [repo, *repo.iterdir()] if p.stat().st_mode & 0o077]
        if loose:
            self.add("keys", "identity (Fernet keys)", str(repo), FAILURE,
                     f"readable by other users: {', '.join(loose)} (whoever reads a key forges tokens)",
                     f"chmod 700 {repo} && chmod 600 {repo}/*")
            return
        rotated = (repo / "0").stat().st_mtime  # the staged key is written at every rotation
        days = (time.time() - rotated) / 86400
        limit = self.cfg.doctor.key_max_age_days
        self.add("keys", "identity (Fernet keys)", str(repo), OK if days <= limit else WARNING,
                 f"last rotated {days:.1f} days ago (primary key {max(indexes)}, {len(indexes)} keys"
                 + ("" if days <= limit else f"; more than {limit:g} days") + ")",
                 "" if days <= limit else "run `cumulo identity rotate-keys` (from cron, e.g. weekly), then copy the "
                 "repository to the other controllers")

    # -- resources past their lease ------------------------------------------------------------
    async def leases(self) -> None:
        from sqlalchemy import Boolean, and_, column, or_, select, table

        from cumulo.core.db import UTCDateTime

        d = self.cfg.doctor
        now = utcnow()
        expired = now - dt.timedelta(seconds=d.lease_grace)
        unowned = now - dt.timedelta(seconds=d.stuck_after)
        stuck: list[tuple[str, str, str, str]] = []  # (kind, id, state, why)
        async with self.db.reader() as s:
            for kind, name, state_cols, transitional, live in KINDS_WITH_LEASES:
                if name not in self.tables:
                    continue
                cols = [column("id"), column("lease_until", UTCDateTime), column("updated_at", UTCDateTime),
                        *(column(c) for c in state_cols)]
                if live == "deleted":
                    cols.append(column("deleted", Boolean))
                elif live:
                    cols.append(column(live, UTCDateTime))
                t = table(name, *cols)
                state = t.c[state_cols[0]]
                in_transition = state.in_(transitional) if transitional else _text("1=1")
                if kind == "server":
                    in_transition = or_(t.c.task_state.is_not(None), t.c.vm_state == "building")
                alive = (t.c.deleted.is_(False) if live == "deleted" else t.c[live].is_(None)) if live else _text("1=1")
                rows = (await s.execute(select(*t.c).where(alive, or_(
                    and_(t.c.lease_until.is_not(None), t.c.lease_until < expired),
                    and_(in_transition, t.c.lease_until.is_(None), t.c.updated_at < unowned))).limit(50))).all()
                for row in rows:
                    what = "/".join(str(getattr(row, c)) for c in state_cols if getattr(row, c) is not None)
                    if row.lease_until is not None:
                        why = f"its lease ended {(now - row.lease_until).total_seconds():.0f} s ago"
                    else:
                        why = f"no lease, unchanged for {(now - row.updated_at).total_seconds() / 3600:.1f} h"
                    stuck.append((kind, row.id, what, why))
        if not stuck:
            self.add("leases", "reconcilers", "servers, volumes, snapshots, backups, images, attachments", OK,
                     "no resource is in a transitional state past its lease")
        for kind, ident, what, why in stuck:
            component = {"server": "compute", "attachment": "compute", "image": "image"}.get(kind, "block-storage")
            self.add("leases", f"{component} reconciler", f"{kind} {ident}", FAILURE,
                     f"{kind} {ident} is stuck in {what}: {why}",
                     "the leader's reconciler ends expired leases within seconds: check that `cumulo up` runs and "
                     "holds the leader lease (`cumulo status`) and what its log says about this id; "
                     + RESET_HINT.get(kind, ""))

    # -- orphans -------------------------------------------------------------------------------
    async def orphans(self) -> None:
        for what, look in (("compute (QEMU)", self._qemu_orphans), ("network", self._network_orphans),
                           ("block-storage (files)", self._volume_file_orphans),
                           ("object-store (replicas)", lambda: asyncio.to_thread(self._object_replicas))):
            try:
                await look()
            except Exception as exc:  # noqa: BLE001  (one look failing must not hide the others)
                self.add("orphans", what, "(the check itself)", WARNING, f"could not look: {type(exc).__name__}: "
                         f"{exc}"[:300], "run doctor as the user `cumulo up` runs as (root, for namespaces)")

    async def ids(self, name: str, live: str = "") -> set[str]:
        from sqlalchemy import Boolean, column, select, table

        from cumulo.core.db import UTCDateTime

        if name not in self.tables:
            return set()
        cols = [column("id")]
        if live == "deleted":
            cols.append(column("deleted", Boolean))
        elif live:
            cols.append(column(live, UTCDateTime))
        t = table(name, *cols)
        query = select(t.c.id)
        if live == "deleted":
            query = query.where(t.c.deleted.is_(False))
        elif live:
            query = query.where(t.c[live].is_(None))
        async with self.db.reader() as s:
            return set((await s.execute(query)).scalars())

    async def _qemu_orphans(self) -> None:
        root = Path(self.cfg.compute.instances_path or self.cfg.state_path / "instances")
        servers = await self.ids("compute_server", "deleted_at")
        found = []
        marker = f"{root}/".encode()
        for args, pid in processes(b"qemu-system"):
            if not any(marker in a for a in args):
                continue
            uuid = args[args.index(b"-uuid") + 1].decode() if b"-uuid" in args[:-1] else ""
            if uuid not in servers:
                found.append(f"pid {pid} (uuid {uuid or 'none'})")
        self.add("orphans", "compute (QEMU)", f"qemu-system processes under {root}", WARNING if found else OK,
                 f"QEMU without a server: {', '.join(found)}" if found else "every QEMU process belongs to a server",
                 "the compute agent stops such processes when it starts; else `kill PID` after checking the uuid"
                 if found else "")

    async def _network_orphans(self) -> None:
        prefix = self.cfg.network.namespace_prefix
        netns = Path("/run/netns")
        names = sorted(p.name for p in netns.iterdir() if p.name.startswith(f"{prefix}-")) if netns.is_dir() else []
        networks = await self.ids("network_network")
        routers = await self.ids("network_router")
        ports = await self.ids("network_port")
        bad = []
        for name in names:
            rest = name[len(prefix) + 1:]
            if rest in ("dp", "ext"):
                continue
            if rest.startswith("dhcp-") and rest[5:] in networks:
                continue
            if rest.startswith("router-") and rest[7:] in routers:
                continue
            bad.append(name)
        self.add("orphans", "network (namespaces)", f"network namespaces {prefix}-*", WARNING if bad else OK,
                 f"namespaces no network or router owns: {', '.join(bad)}" if bad
                 else f"{len(names)} namespaces, each owned", "`ip netns delete NAME` for each (or `cumulo network "
                 "cleanup`, which rebuilds the whole dataplane)" if bad else "")
        dp = f"{prefix}-dp"
        if dp in names:
            taps = await links_in(dp)
            port_keys = {p[:10] for p in ports}
            lone = [t for t in taps if t.startswith("tap") and t[3:13] not in port_keys]
            self.add("orphans", "network (taps)", f"tap devices in {dp}", WARNING if lone else OK,
                     f"taps no port owns: {', '.join(lone)}" if lone else f"{len(taps)} links, every tap owned",
                     f"`ip -n {dp} link delete TAP` for each" if lone else "")
        dhcp = self.cfg.state_path / "network" / "dhcp"
        stray = []
        for args, pid in processes(b"dnsmasq"):
            for a in args:
                text = a.decode(errors="replace")
                if text.startswith(f"--pid-file={dhcp}/"):
                    network = text[len(f"--pid-file={dhcp}/"):].split("/")[0]
                    if network not in networks:
                        stray.append(f"pid {pid} (network {network})")
        self.add("orphans", "network (dnsmasq)", f"dnsmasq processes for {dhcp}", WARNING if stray else OK,
                 f"dnsmasq without a network: {', '.join(stray)}" if stray else "every dnsmasq serves a network",
                 "`kill PID` for each (the network agent starts those it needs)" if stray else "")

    async def _volume_file_orphans(self) -> None:
        root = Path(self.cfg.volume.volumes_path or self.cfg.state_path / "volumes")
        if not root.is_dir():
            return
        volumes = await self.ids("volume_volume", "deleted")
        snapshots = await self.ids("volume_snapshot", "deleted")
        old = time.time() - max(self.cfg.doctor.lease_grace, self.cfg.volume.operation_timeout)
        lone = []
        for path in sorted(root.glob("*/*.qcow2")):
            name = path.name.removesuffix(".qcow2")
            kind, _, ident = name.partition("-")
            owners = volumes if kind == "volume" else snapshots if kind == "snapshot" else None
            if owners is not None and ident not in owners and path.stat().st_mtime < old:
                lone.append(str(path))
        self.add("orphans", "block-storage (files)", f"{root}/*/*.qcow2", WARNING if lone else OK,
                 f"volume files no volume or snapshot owns: {', '.join(lone[:10])}"
                 + (f" and {len(lone) - 10} more" if len(lone) > 10 else "") if lone
                 else "every volume file belongs to a volume or snapshot",
                 "the volume agent removes them when it next reports; if they stay, check they are unused "
                 "(`fuser FILE`) and delete them" if lone else "")

    def _object_replicas(self) -> None:
        state = self.cfg.state_path / "object"
        ring_file = state / "object.ring.json"
        if "object" not in self.cfg.services or not ring_file.exists():
            return
        from cumulo.object.storage import ObjectStore, Ring
        from cumulo.object.storage.store import newest, walk_objects

        ring = Ring.load(ring_file)
        store = ObjectStore(state / "devices", ring)
        missing_devices = [d.name for d in ring.devices.values() if not store.device_path(d).is_dir()]
        where: dict[str, tuple[int, dict[int, str]]] = {}
        for dev in ring.devices.values():
            for part, hash_hex, _, files in walk_objects(store.device_path(dev)):
                top = newest(files)
                if top:
                    where.setdefault(hash_hex, (part, {}))[1][dev.id] = top
        short = 0
        for part, held in where.values():
            if part >= ring.partitions:
                continue
            best = max(held.values(), key=lambda f: f.rsplit(".", 1)[0])
            primaries = {d.id for d in ring.get_part_nodes(part)}
            short += sum(1 for dev_id, f in held.items() if dev_id in primaries and f == best) < ring.replicas
        verdict = FAILURE if missing_devices else WARNING if short else OK
        detail = (f"devices missing: {', '.join(missing_devices)}; " if missing_devices else "") + \
            f"{short} of {len(where)} objects have fewer than {ring.replicas} current replicas on their primaries"
        self.add("orphans", "object-store (replicas)", str(ring_file), verdict, detail,
                 "" if verdict == OK else "the replicator restores replicas every [object] replicator_interval; "
                 "a missing device: mount it again or `cumulo object ring set-weight NAME 0` and rebalance; "
                 "`cumulo object status` shows each device")

    # -- quotas --------------------------------------------------------------------------------
    async def quotas(self) -> None:
        if self.cfg.key_repository.is_dir() is False or not (self.cfg.key_repository / "0").exists():
            return  # the identity service cannot be opened read-only without its keys (reported above)
        from sqlalchemy import Boolean, column, select, table

        from cumulo.core.db import UTCDateTime

        # a project that holds nothing is within any limit: only those holding servers or volumes are read
        holders: dict[str, set[str]] = {"compute": set(), "block-storage": set()}
        async with self.db.reader() as s:
            if "compute" in self.cfg.services and "compute_server" in self.tables:
                t = table("compute_server", column("project_id"), column("deleted_at", UTCDateTime))
                holders["compute"] = set((await s.execute(select(t.c.project_id).where(
                    t.c.deleted_at.is_(None)).distinct())).scalars())
            if "volume" in self.cfg.services:
                for name in ("volume_volume", "volume_snapshot", "volume_backup"):
                    if name in self.tables:
                        t = table(name, column("project_id"), column("deleted", Boolean))
                        holders["block-storage"] |= set((await s.execute(select(t.c.project_id).where(
                            t.c.deleted.is_(False)).distinct())).scalars())
            p = table("identity_project", column("id"), column("name"))
            names = dict((await s.execute(select(p.c.id, p.c.name))).all())
        over = []
        if any(holders.values()):
            # heavy (the services' modules): only when some project holds something
            from cumulo.compute.service import ComputeService
            from cumulo.identity.service import IdentityService
            from cumulo.volume.service import VolumeService

            identity = IdentityService(self.cfg, self.db, None)  # type: ignore[arg-type]  (no bus: reads only)
            services = {"compute": ComputeService(self.cfg, self.db, identity),
                        "block-storage": VolumeService(self.cfg, self.db, None, identity)}  # type: ignore[arg-type]
            for kind, projects in holders.items():
                for project_id in sorted(projects):
                    svc = services[kind]
                    usage = await svc.usage(project_id)
                    limits = await svc.quotas(project_id)
                    for name, used in usage.items():
                        limit = limits.get(name)
                        if isinstance(limit, int) and limit >= 0 and isinstance(used, int) and used > limit:
                            over.append(f"{names.get(project_id, '?')} ({project_id}) {kind} {name}: {used} used, "
                                        f"limit {limit}")
        held = len(holders["compute"] | holders["block-storage"])
        self.add("quotas", "quotas", f"usage against limits of the {held} projects holding servers or volumes",
                 WARNING if over else OK,
                 "usage over the limit: " + "; ".join(over[:10]) if over
                 else "every project's usage is within its limits",
                 "raise the limit (`openstack quota set`) or ask the project to free resources; new requests "
                 "of theirs fail until then" if over else "")

    # -- passwords and credentials near expiry -------------------------------------------------
    async def expiry(self) -> None:
        from sqlalchemy import column, func, select, table

        from cumulo.core.db import UTCDateTime

        soon = utcnow() + dt.timedelta(days=self.cfg.doctor.expiry_warning_days)
        now = utcnow()
        findings = []
        if "identity_password" in self.tables:
            p = table("identity_password", column("id"), column("user_id"), column("expires_at", UTCDateTime))
            u = table("identity_user", column("id"), column("name"))
            newest = select(func.max(p.c.id)).group_by(p.c.user_id).scalar_subquery()
            async with self.db.reader() as s:
                rows = (await s.execute(select(u.c.name, p.c.expires_at).join(u, u.c.id == p.c.user_id).where(
                    p.c.id.in_(newest), p.c.expires_at.is_not(None), p.c.expires_at < soon))).all()
            for name, at in rows:
                findings.append(f"user {name}'s password {'expired' if at < now else 'expires'} {at:%Y-%m-%d %H:%M}")
        if "identity_application_credential" in self.tables:
            a = table("identity_application_credential", column("name"), column("expires_at", UTCDateTime))
            async with self.db.reader() as s:
                rows = (await s.execute(select(a.c.name, a.c.expires_at).where(
                    a.c.expires_at.is_not(None), a.c.expires_at < soon, a.c.expires_at > now))).all()
            findings += [f"application credential {name} expires {at:%Y-%m-%d %H:%M}" for name, at in rows]
        days = self.cfg.doctor.expiry_warning_days
        self.add("expiry", "identity (credentials)", "passwords and application credentials",
                 WARNING if findings else OK,
                 "; ".join(findings[:10]) if findings else f"no password or credential expires within {days:g} days",
                 "the user changes the password (`openstack user password set`), or an admin sets a new one; "
                 "a new application credential replaces an expiring one" if findings else "")


# (kind, table, state columns (the first is matched), transitional states, how a row is live)
KINDS_WITH_LEASES: list[tuple[str, str, tuple[str, ...], tuple[str, ...], str]] = [
    ("server", "compute_server", ("vm_state", "task_state"), (), "deleted_at"),
    ("attachment", "compute_block_device_mapping", ("status",), ("attaching", "detaching"), ""),
    ("volume", "volume_volume", ("status",), ("creating", "deleting", "attaching", "detaching", "extending",
                                              "downloading", "uploading", "backing-up", "restoring-backup",
                                              "retyping", "reverting"), "deleted"),
    ("snapshot", "volume_snapshot", ("status",), ("creating", "deleting", "restoring"), "deleted"),
    ("backup", "volume_backup", ("status",), ("creating", "deleting", "restoring"), "deleted"),
    ("image", "image_image", ("status",), ("saving", "importing", "uploading"), ""),
]
RESET_HINT = {
    "server": "to end it by hand: `openstack server set --state error ID` (then delete or rebuild)",
    "volume": "to end it by hand: `openstack volume set --state error ID` (Cinder's reset-state)",
    "snapshot": "to end it by hand: `openstack volume snapshot set --state error ID`",
    "backup": "to end it by hand: `openstack volume backup set --state error ID`",
    "image": "an image stuck saving: delete it and upload again",
}


def _text(sql: str) -> Any:
    from sqlalchemy import text

    return text(sql)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def migrations_head() -> str | None:
    """The newest revision of the migration history: the one no other revision follows.  Read from
    the files' ``revision``/``down_revision`` assignments (Alembic's script directory imports every
    migration, half a second)."""
    import ast

    from cumulo.core.db import MIGRATIONS

    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = {t.id for t in targets if isinstance(t, ast.Name)} & {"revision", "down_revision"}
                if not names or node.value is None:
                    continue
                value = ast.literal_eval(node.value)
                if "revision" in names and isinstance(value, str):
                    revisions.add(value)
                elif "down_revision" in names and value:
                    parents |= {value} if isinstance(value, str) else set(value)
    heads = sorted(revisions - parents)
    return heads[0] if len(heads) == 1 else ", ".join(heads) or None


def probe(url: str, timeout: float = 5.0) -> tuple[Any, int]:
    """The JSON (or text) answer of a GET and its status; (reason, 0) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body, code = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        body, code = exc.read(), exc.code
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}", 0
    try:
        return json.loads(body), code
    except ValueError:
        return body.decode(errors="replace"), code


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    return True


def processes(name: bytes) -> list[tuple[list[bytes], int]]:
    """The command lines (split) and pids of the processes whose program's name contains ``name``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and name in os.path.basename(args[0]):
            out.append((args, int(entry.name)))
    return out


async def links_in(namespace: str) -> list[str]:
    proc = await asyncio.create_subprocess_exec("ip", "-n", namespace, "-j", "link", "show",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"ip -n {namespace} link show: {err.decode(errors='replace').strip()}")
    return [item["ifname"] for item in json.loads(out or b"[]")]


def worst(findings: list[Finding]) -> str:
    return max((f.verdict for f in findings), key=RANK.__getitem__, default=OK)


def report(findings: list[Finding]) -> dict[str, Any]:
    """The JSON document of ``cumulo doctor --json``."""
    verdict = worst(findings)
    broken = sorted({f.component for f in findings if f.verdict != OK})
    return {"verdict": verdict, "exit_code": EXIT[verdict], "broken": broken,
            "counts": {v: sum(f.verdict == v for f in findings) for v in (OK, WARNING, FAILURE)},
            "checks": [asdict(f) for f in findings]}


def render(findings: list[Finding]) -> str:
    mark = {OK: "ok     ", WARNING: "WARNING", FAILURE: "FAILURE"}
    lines = []
    for f in findings:
        lines.append(f"{mark[f.verdict]}  {f.check:10s} {f.component}: {f.detail}")
        if f.verdict != OK:
            lines.append(f"{'':20s}looked at: {f.looked_at}")
            if f.fix:
                lines.append(f"{'':20s}fix: {f.fix}")
    doc = report(findings)
    counts = doc["counts"]
    summary = f"{counts[OK]} ok, {counts[WARNING]} warnings, {counts[FAILURE]} failures"
    if doc["broken"]:
        summary += " -- needs attention: " + ", ".join(doc["broken"])
    return "\n".join(lines + ["", summary])


def diagnose(cfg: configmod.Config) -> list[Finding]:
    return asyncio.run(Doctor(cfg).run())
