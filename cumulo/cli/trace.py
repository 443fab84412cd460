"""``cumulo trace`` and ``cumulo logs``: one request's story, and the cloud's log, from its log files.

``cumulo trace req-<uuid>`` reads the log file (``[logging] file``, else ``<state_dir>/cumulo.log``)
and its rotated copies, text or JSON, and prints every line of that request in time order: the
API that took it, the scheduler's pick and placement claim, the bus hops to the conductor and the
agents, the agents' work and the QEMU driver's steps (work sent over the bus carries the request's
id, so the agents' lines have it too).  Each line shows the time since the first one and since the
one before; a summary gives each component's first and last line.  Lines from other nodes' log
files join with ``--log-file`` (repeatable).

``cumulo logs`` prints the last lines of the log (``--lines``), filtered by service or logger
(``--service compute``, ``--service cumulo.bus``), level (``--level WARNING``: that and worse) or
request, and with ``--follow`` goes on printing what is written (across a rotation).
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import click

from cumulo.core import config as configmod
from cumulo.core import logging as logmod

TEXT_LINE = re.compile(r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (?P<level>[A-Z]+) (?P<logger>\S+) "
                       r"\[(?P<rid>-|\S+)(?: (?P<user>\S+) (?P<project>\S+))?\] ?(?P<message>.*)$")
ACCESS = re.compile(r'^(?P<service>\S+) "(?P<method>\S+) (?P<path>\S+)" (?P<status>\d+) (?P<ms>[\d.]+)ms$')
API_LINE = re.compile(r'^(?P<service>[\w-]+) "')  # an access line, or the moment its request came in
REQUEST_ID = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# an API's name in its access lines, for the service its code lives in
API_SERVICES = {"block-storage": "volume", "object-store": "object", "s3": "object", "metadata": "compute"}
SERVICES = ("identity", "image", "compute", "placement", "network", "volume", "object", "bus", "server")
MAX_LINE = 1 << 20  # a longer line is cut when read (a runaway message must not take the reader's memory)


@dataclass
class Entry:
    """One log line (with its continuation lines: a traceback), from a text or JSON log."""

    time: dt.datetime  # aware
    level: str
    logger: str
    request_id: str | None
    message: str
    raw: str
    fields: dict[str, Any] = field(default_factory=dict)
    derived: bool = False  # made from another line (the moment an API request came in)

    @property
    def component(self) -> str:
        return component_of(self)

    @property
    def service(self) -> str:
        return service_of(self)

    def text(self) -> str:
        """The line as the text format writes it."""
        if self.raw and not self.raw.startswith("{"):
            return self.raw
        stamp = self.time.astimezone().strftime("%Y-%m-%d %H:%M:%S,") + f"{self.time.microsecond // 1000:03d}"
        user, project = self.fields.get("user_id"), self.fields.get("project_id")
        tag = f"[{self.request_id} {user or '-'} {project or '-'}]" if self.request_id else "[-]"
        return f"{stamp} {self.level} {self.logger} {tag} {self.message}"


def parse_line(line: str) -> Entry | None:
    """An entry from a line that starts one (text or JSON); None for a continuation or other line."""
    line = line.rstrip("\n")
    if line.startswith("{"):
        try:
            doc = json.loads(line)
            when = dt.datetime.fromisoformat(doc["time"])
        except (ValueError, KeyError, TypeError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        extra = {k: v for k, v in doc.items() if k not in ("time", "level", "logger", "request_id", "message")}
        message = str(doc.get("message", ""))
        if doc.get("exception"):
            message += "\n" + str(doc["exception"])
        return Entry(when, str(doc.get("level", "")), str(doc.get("logger", "")), doc.get("request_id") or None,
                     message, line, extra)
    m = TEXT_LINE.match(line)
    if m is None:
        return None
    try:
        when = dt.datetime.strptime(m["time"], "%Y-%m-%d %H:%M:%S,%f").astimezone()  # written in local time
    except ValueError:
        return None
    rid = None if m["rid"] == "-" else m["rid"]
    extra = {k: m[k] for k in ("user", "project") if m[k] and m[k] != "-"}
    return Entry(when, m["level"], m["logger"], rid, m["message"], line,
                 {"user_id": extra.get("user"), "project_id": extra.get("project")} if extra else {})


def starts_entry(line: str) -> bool:
    """Cheaply: whether ``line`` begins a log entry (else it continues the one before)."""
    return line.startswith("{") or (len(line) > 20 and line[:4].isdigit() and line[4] == "-" and line[10] == " ")


def read_entries(lines: Iterable[str], wanted: str | None = None) -> Iterator[Entry]:
    """The entries of a log's lines, in file order.  With ``wanted``, only lines holding that text
    are parsed (a fast path through a big file); their continuation lines go with them."""
    last: Entry | None = None
    for line in lines:
        if len(line) > MAX_LINE:
            line = line[:MAX_LINE]
        if starts_entry(line):
            if last is not None:
                yield last
                last = None
            if wanted is not None and wanted not in line:
                continue
            last = parse_line(line)
        elif last is not None and line.strip():
            last.message += "\n" + line.rstrip("\n")
            last.raw += "\n" + line.rstrip("\n")
    if last is not None:
        yield last


def component_of(entry: Entry) -> str:
    """The part of the cloud a line comes from, in an operator's words."""
    name = entry.logger
    if name == "cumulo.access":
        m = API_LINE.match(entry.message)
        return f"{m['service']}-api" if m else "api"
    prefixes = (("cumulo.bus", "bus"), ("cumulo.core.bus", "bus"), ("cumulo.compute.virt.qemu", "qemu"),
                ("cumulo.compute.virt", "compute-driver"), ("cumulo.compute.agent", "compute-agent"),
                ("cumulo.compute.scheduler", "scheduler"), ("cumulo.compute.conductor", "conductor"),
                ("cumulo.compute.servers", "conductor"), ("cumulo.network.agent", "network-agent"),
                ("cumulo.network.dataplane", "network-agent"), ("cumulo.volume.agent", "volume-agent"),
                ("cumulo.volume.drivers", "volume-agent"), ("cumulo.volume.backup_agent", "backup-agent"))
    for prefix, label in prefixes:
        if name == prefix or name.startswith(prefix + "."):
            return label
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "cumulo" else name


def service_of(entry: Entry) -> str:
    """The service a line belongs to: compute (its API, conductor, scheduler, agents, QEMU),
    network, volume, image, identity, placement, object, or bus."""
    if entry.logger == "cumulo.access":
        m = API_LINE.match(entry.message)
        return API_SERVICES.get(m["service"], m["service"]) if m else "api"
    if entry.logger in ("cumulo.bus",) or entry.logger.startswith("cumulo.core.bus"):
        return "bus"
    parts = entry.logger.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "cumulo" else entry.logger


def matches_service(entry: Entry, services: Iterable[str]) -> bool:
    """``compute`` (a service, or a component: ``compute-agent``, ``qemu``) or a logger name
    (``cumulo.bus``: that logger and its children)."""
    for s in services:
        if "." in s:
            if entry.logger == s or entry.logger.startswith(s + "."):
                return True
        elif API_SERVICES.get(s, s) == entry.service or s in (entry.component, entry.component.removesuffix("-api")):
            return True
    return False


def log_files(cfg: configmod.Config, extra: Iterable[str] = ()) -> list[Path]:
    """The cloud's log file and its rotated copies (oldest first), then any others named."""
    base = cfg.logging.file or str(cfg.state_path / "cumulo.log")
    files = logmod.rotated_files(base)
    for name in extra:
        files += logmod.rotated_files(name) or [Path(name)]
    return files


def _open(path: Path) -> TextIO:
    return open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 (closed by the caller's with)


def trace_entries(files: Iterable[Path], rid: str) -> list[Entry]:
    """Every line of request ``rid`` in ``files``, in time order; an API line (written when the
    response left) also gives the moment the request came in."""
    found: list[Entry] = []
    for path in files:
        try:
            with _open(path) as f:
                found += [e for e in read_entries(f, rid) if e.request_id == rid]
        except FileNotFoundError:
            continue
    for e in list(found):
        m = ACCESS.match(e.message) if e.logger == "cumulo.access" else None
        if m:
            began = e.time - dt.timedelta(milliseconds=float(m["ms"]))
            found.append(Entry(began, e.level, e.logger, rid, f'{m["service"]} "{m["method"]} {m["path"]}" received',
                               "", dict(e.fields), derived=True))
    found.sort(key=lambda e: (e.time, not e.derived))
    return found


def render_trace(rid: str, entries: list[Entry]) -> str:
    """The request's lines with the time since the first and since the line before, then each
    component's first and last line."""
    if not entries:
        return f"no log line carries {rid}"
    first, last = entries[0].time, entries[-1].time
    width = max(len(e.component) for e in entries)
    out = [f"{rid}: {len(entries)} lines from {first.astimezone():%Y-%m-%d %H:%M:%S} over "
           f"{(last - first).total_seconds():.3f} s",
           f"{'since start':>12} {'since prev':>11}  {'component':<{width}}  {'level':<7} message"]
    prev = first
    for e in entries:
        since, step = (e.time - first).total_seconds(), (e.time - prev).total_seconds()
        lines = e.message.split("\n")
        out.append(f"{since:>+11.3f}s {step:>+10.3f}s  {e.component:<{width}}  {e.level:<7} {lines[0]}")
        out += [f"{'':>12} {'':>11}  {'':<{width}}  {'':<7} {more}" for more in lines[1:]]
        prev = e.time
    spans: dict[str, list[Any]] = {}
    for e in entries:
        span = spans.setdefault(e.component, [e.time, e.time, 0])
        span[1], span[2] = e.time, span[2] + 1
    out.append("")
    out.append(f"{'component':<{width}}  {'lines':>5}  {'first':>9}  {'last':>9}  {'span':>9}")
    for name, (start, end, count) in sorted(spans.items(), key=lambda kv: kv[1][0]):
        out.append(f"{name:<{width}}  {count:>5}  {(start - first).total_seconds():>+8.3f}s  "
                   f"{(end - first).total_seconds():>+8.3f}s  {(end - start).total_seconds():>8.3f}s")
    return "\n".join(out)


def _config(ctx: click.Context) -> configmod.Config:
    root = ctx.find_root().obj or {}
    try:
        return configmod.load(root.get("config"), state_dir=root.get("state_dir"))
    except configmod.ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


def example(*lines: str) -> str:
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


@click.command("trace", short_help="One request's story across the services, in time order.", epilog=example(
    "cumulo trace req-0f6e3d2a-9c61-4c3e-a3b5-5d1c8e2f7a10",
    "openstack server create ... --debug 2>&1 | grep -o 'req-[0-9a-f-]*' | head -1   # the id to trace",
    "cumulo trace req-... --log-file /srv/node2/cumulo.log   # an agent's log from another node too",
    "cumulo trace req-... --json                              # the lines as JSON objects, for scripts"))
@click.argument("request_id")
@click.option("--log-file", "extra", multiple=True, type=click.Path(dir_okay=False),
              help="Another log file to read as well (a node's own log); its rotated copies are read too.")
@click.option("--json", "as_json", is_flag=True, help="Print each line as a JSON object (time, since_start, "
              "component, service, level, logger, message, process: a JSON log's process id).")
@click.pass_context
def trace_command(ctx: click.Context, request_id: str, extra: tuple[str, ...], as_json: bool) -> None:
    """Print every log line of one request (the x-openstack-request-id a response carried) in time
    order: the API, the scheduler and placement, the bus hops to the conductor and the agents, the
    agents' work and QEMU's steps, each with the time since the first line and since the one
    before, then each component's first and last line.  Reads [logging] file (default
    <state-dir>/cumulo.log) and its rotated copies, text or JSON.  Exit status 1 if no line has it."""
    if not REQUEST_ID.match(request_id):
        raise click.BadParameter("a request id looks like req-<uuid> (the x-openstack-request-id header)",
                                 param_hint="REQUEST_ID")
    files = log_files(_config(ctx), extra)
    if not files:
        raise click.ClickException("no log file: set [logging] file (cumulo up --quiet writes <state-dir>/cumulo.log)")
    entries = trace_entries(files, request_id)
    if as_json:
        start = entries[0].time if entries else None
        for e in entries:
            click.echo(json.dumps({"time": e.time.isoformat(timespec="milliseconds"),
                                   "since_start": round((e.time - start).total_seconds(), 6) if start else 0,
                                   "component": e.component, "service": e.service, "level": e.level,
                                   "logger": e.logger, "message": e.message, "derived": e.derived,
                                   "process": e.fields.get("process")}))
    else:
        click.echo(render_trace(request_id, entries))
    if not entries:
        ctx.exit(1)


def tail(path: Path, count: int, wanted: Any, hint: str | None = None, window: int = 1 << 20) -> list[Entry]:
    """The last ``count`` entries of ``path`` that ``wanted`` keeps, reading back from the end
    (a window that doubles until it holds enough of them, or the whole file)."""
    size = path.stat().st_size
    while True:
        start = max(0, size - window)
        with path.open("rb") as f:
            f.seek(start)
            data = f.read(size - start).decode("utf-8", errors="replace")
        lines = data.splitlines(keepends=True)
        if start and lines:
            lines = lines[1:]  # most likely cut
            while lines and not starts_entry(lines[0]):
                lines = lines[1:]  # the end of an entry that began before the window
        last: collections.deque[Entry] = collections.deque(maxlen=count)
        for entry in read_entries(lines, hint):
            if wanted(entry):
                last.append(entry)
        if len(last) >= count or start == 0:
            return list(last)
        window *= 4


def _follow(path: Path, wanted: Any, raw: bool, poll: float = 0.5) -> None:
    """Print what is appended to ``path`` as it comes, reopening it when it is rotated."""
    f = _open(path)
    f.seek(0, os.SEEK_END)
    inode = os.fstat(f.fileno()).st_ino
    pending = ""
    try:
        while True:
            chunk = f.read()
            if chunk:
                pending += chunk
                *complete, pending = pending.split("\n")
                for entry in read_entries(line + "\n" for line in complete):
                    if wanted(entry):
                        click.echo(entry.raw if raw else entry.text())
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            if st is not None and (st.st_ino != inode or st.st_size < f.tell()):  # rotated or truncated
                f.close()
                f = _open(path)
                inode = os.fstat(f.fileno()).st_ino
                continue
            time.sleep(poll)
    finally:
        f.close()


@click.command("logs", short_help="The cloud's log, filtered by service or level; --follow.", epilog=example(
    "cumulo logs                          # the last 50 lines",
    "cumulo logs --service compute -n 200 # compute: its API, conductor, scheduler, agents, QEMU",
    "cumulo logs --service qemu --service cumulo.bus --follow",
    "cumulo logs --level WARNING --follow # warnings and errors as they happen",
    "cumulo logs --request req-...        # one request's lines (cumulo trace shows them with times)"))
@click.option("--service", "-s", "services", multiple=True,
              help=f"A service ({', '.join(SERVICES)}), a component (compute-api, scheduler, conductor, "
                   "compute-agent, qemu, network-agent, volume-agent, ...) or a logger name (cumulo.bus); "
                   "repeatable.")
@click.option("--level", "-l", type=click.Choice(LEVELS, case_sensitive=False), help="This level and worse.")
@click.option("--request", "request_id", help="Only this request's lines.")
@click.option("--lines", "-n", "count", default=50, show_default=True, type=click.IntRange(0, 1_000_000),
              help="How many of the last lines to print first.")
@click.option("--follow", "-f", is_flag=True, help="Go on printing lines as they are written (Ctrl-C stops).")
@click.option("--raw", is_flag=True, help="Print lines as stored (JSON lines stay JSON).")
@click.pass_context
def logs_command(ctx: click.Context, services: tuple[str, ...], level: str | None, request_id: str | None,
                 count: int, follow: bool, raw: bool) -> None:
    """Print the last lines of the cloud's log ([logging] file, default <state-dir>/cumulo.log),
    text or JSON, filtered by service, level or request; --follow goes on as lines are written."""
    cfg = _config(ctx)
    path = Path(cfg.logging.file or cfg.state_path / "cumulo.log")
    floor = LEVELS.index(level.upper()) if level else 0

    def wanted(e: Entry) -> bool:
        if floor and (e.level not in LEVELS or LEVELS.index(e.level) < floor):
            return False
        if request_id and e.request_id != request_id:
            return False
        return not services or matches_service(e, services)

    if not path.exists():
        raise click.ClickException(f"{path} does not exist: set [logging] file, or start with cumulo up --quiet")
    if count:
        for entry in tail(path, count, wanted, request_id):
            click.echo(entry.raw if raw else entry.text())
    if follow:
        try:
            _follow(path, wanted, raw)
        except KeyboardInterrupt:
            pass
