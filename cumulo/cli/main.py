"""The ``cumulo`` command: start the cloud and look after it.

    cumulo up                     start every service in the foreground (Ctrl-C stops it)
    cumulo status                 what runs, where, and whether it answers
    cumulo doctor                 the operator's checklist: what is broken, and the fix
    cumulo config show            the effective configuration (file + environment)
    cumulo db sync | version      apply migrations / show the schema revision
    cumulo identity rotate-keys   rotate the Fernet token keys
    cumulo policy show            the effective policy rules, in oslo.policy YAML
    cumulo trace req-ID           one request's log lines across the services, in time order
    cumulo logs [-s S] [-f]       the cloud's log, filtered by service or level; --follow
    cumulo network trace X        the dataplane path of a server's ports (or one port)
    cumulo network agent          run this machine's network agent on its own
    cumulo network cleanup        remove every namespace, process and file of the dataplane
    cumulo agent                  run a compute agent for one node on its own
    cumulo volume agent           run a volume agent (qcow2 files) for one storage node on its own
    cumulo node join | list       a host joins the cloud and runs its agents; the hosts (token create, remove)
    cumulo object ring | status   the object storage ring, and this node's devices and replicas
    cumulo backup [--to DIR]      back the running cloud up (incremental, secrets encrypted)
    cumulo restore BACKUP         restore a backup; then `cumulo up`
    cumulo upgrade check          is this cloud ready for the code installed here (exit 0/1/2)
    cumulo upgrade                back up, migrate the schema, print the restart order
    cumulo canary                 boot a server, reach it, store an object, attach a volume (exit 0/2)
    cumulo uninstall              remove what `make up` made: processes, guests, dataplane, state
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import click

from cumulo.cli.backup import backup_group, restore_command
from cumulo.cli.canary import canary_command
from cumulo.cli.node import node_group
from cumulo.cli.object import object_group
from cumulo.cli.trace import logs_command, trace_command
from cumulo.cli.uninstall import uninstall_command
from cumulo.cli.upgrade import upgrade_group
from cumulo.cli.usage import usage_group
from cumulo.core import bus as busmod
from cumulo.core import config as configmod
from cumulo.core import logging as logmod
from cumulo.core import workers

# The commands import what is heavy (SQLAlchemy, the server, the services: 0.2-1 s each) in their
# bodies, so that `cumulo --help` and `cumulo status` answer at once.


def load(ctx: click.Context) -> configmod.Config:
    try:
        return configmod.load(ctx.obj["config"], state_dir=ctx.obj["state_dir"])
    except configmod.ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


def install_uvloop() -> None:
    """The faster event loop when it is there: uvloop is optional (uvicorn[standard] brings it)."""
    try:
        import uvloop
    except ImportError:
        return
    uvloop.install()


# `cumulo --help`: the commands one a line (click's \b keeps a paragraph as written), each
# command's own help then says what it does, shows an example and names the settings that matter
HELP = """Start an OpenStack-compatible cloud on this machine, and look after it.

\b
  cumulo up                     start every service in the foreground (Ctrl-C stops it)
  cumulo status                 what runs, where, and whether it answers
  cumulo doctor                 the operator's checklist: what is broken, and the fix
  cumulo config show            the effective configuration (file + environment)
  cumulo db sync | version      apply migrations / show the schema revision
  cumulo identity rotate-keys   rotate the Fernet token keys
  cumulo policy show            the effective policy rules, in oslo.policy YAML
  cumulo trace req-ID           one request's log lines across the services, in time order
  cumulo logs [-s S] [-f]       the cloud's log, filtered by service or level; --follow
  cumulo usage report -p P      a project's vCPU-, RAM-, disk-, volume-, floating-IP-hours (--csv)
  cumulo network trace X        the dataplane path of a server's ports (or one port)
  cumulo network agent          run this machine's network agent on its own
  cumulo network cleanup        remove every namespace, process and file of the dataplane
  cumulo agent                  run a compute agent for one node on its own
  cumulo volume agent           run a volume agent (qcow2 files) for one storage node on its own
  cumulo node join | list       a host joins the cloud and runs its agents; the hosts (token create, remove)
  cumulo object ring | status   the object storage ring, and this node's devices and replicas
  cumulo backup [--to DIR]      back the running cloud up (incremental, secrets encrypted)
  cumulo restore BACKUP         restore a backup; then `cumulo up`
  cumulo upgrade check          is this cloud ready for the code installed here (exit 0/1/2)
  cumulo upgrade                back up, migrate the schema, print the restart order
  cumulo canary                 boot a server, reach it, store an object, attach a volume (exit 0/2)
  cumulo uninstall              remove what `make up` made: processes, guests, dataplane, state

Every command has its own help with an example: cumulo up --help, cumulo db sync --help.

\b
Settings come from one TOML file plus CUMULO_<SECTION>__<KEY> environment variables:
  CUMULO_STATE_DIR=/srv/cumulo CUMULO_IDENTITY__PORT=15000 cumulo up
  cumulo config show            shows what they add up to
"""

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def example(*lines: str) -> str:
    """A command's epilog: its examples, kept one a line."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


@click.group(help=HELP, context_settings=CONTEXT)
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML configuration file (default: $CUMULO_CONFIG, <state-dir>/cumulo.toml, "
                   "/etc/cumulo/cumulo.toml).")
@click.option("--state-dir", type=click.Path(file_okay=False),
              help="Where the database, keys and clouds.yaml live (default /var/lib/cumulo).")
@click.pass_context
def main(ctx: click.Context, config_file: str | None, state_dir: str | None) -> None:
    ctx.obj = {"config": config_file, "state_dir": state_dir}


@main.command(short_help="Start every service in the foreground (Ctrl-C stops it).", epilog=example(
    "cumulo up                                  # state in /var/lib/cumulo, SQLite, in-process bus",
    "cumulo --state-dir /tmp/c up --quiet       # progress lines only; the log in /tmp/c/cumulo.log",
    "CUMULO_SERVICES=identity,object cumulo up  # only some services",
    "CUMULO_DATABASE__URL=postgresql://cumulo@db/cumulo CUMULO_BUS__URL=amqp://mq/ cumulo up"))
@click.option("--quiet", "-q", is_flag=True,
              help="Print progress lines only; the log goes to [logging] file, else <state-dir>/cumulo.log "
                   "(its last lines are shown if the start fails).")
@click.pass_context
def up(ctx: click.Context, quiet: bool) -> None:
    """Start the cloud in the foreground: migrate the database, bootstrap the admin and demo
    projects, write <state-dir>/clouds.yaml, then serve every API in the services setting (identity,
    image, compute, placement, network, volume, object).

    Restarting keeps every record.  Stop it with Ctrl-C (or SIGTERM): requests in flight finish,
    then connections close.  The log goes to stderr unless [logging] file names a file (or
    --quiet is given).

    \b
    Settings that matter (TOML [section] key, or CUMULO_SECTION__KEY):
      [database] url    sqlite (default), postgresql:// or mysql://
      [bus] url         memory:// (default, one machine) or amqp:// (RabbitMQ, several machines)
      [identity] port   5000; every service has its own port ([image] port 9292, ...)
      [compute] local_nodes, fake_nodes   QEMU nodes on this machine / fake nodes for scale
      [network] namespace_prefix          the name of this cloud's network namespaces
    """
    started = time.monotonic()
    cfg = load(ctx)
    from cumulo.ops.backup import restore_incomplete

    cut_short = restore_incomplete(cfg.state_path)
    if cut_short:
        raise click.ClickException(cut_short)
    log_file = cfg.logging.file
    if quiet and not log_file:
        log_file = cfg.logging.file = str(cfg.state_path / "cumulo.log")
        cfg.state_path.mkdir(parents=True, exist_ok=True)
        os.environ["CUMULO_LOGGING__FILE"] = log_file  # the API workers log there too
    logmod.configure(cfg.logging, log_file)
    logmod.add_config_secrets(cfg)
    install_uvloop()
    click.echo(f"cumulo: state in {cfg.state_dir}, database {logmod.mask_url(cfg.database_url)}, "
               f"bus {logmod.mask_url(cfg.bus.url)}", err=True)
    if quiet:
        click.echo(f"cumulo: starting {', '.join(cfg.services)} (log: {log_file})", err=True)
    ready = asyncio.Event()

    async def main_task() -> None:
        from cumulo.server import run  # heavy: every API of the services that run

        watcher = asyncio.get_running_loop().create_task(announce(ready, cfg, started))
        try:
            await run(cfg, ready)
        finally:
            watcher.cancel()

    try:
        asyncio.run(main_task())
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        if not quiet:
            raise
        import logging

        logging.getLogger("cumulo.cli").exception("cumulo up failed")
        click.echo(f"cumulo: FAILED: {type(exc).__name__}: {exc}\n  the last lines of {log_file}:", err=True)
        with open(log_file, errors="replace") as f:
            click.echo("".join(f"  | {line}" for line in f.readlines()[-20:]).rstrip(), err=True)
        sys.exit(1)


@main.command(hidden=True)
@click.option("--index", type=int, required=True, help="The worker's number (1..).")
@click.pass_context
def worker(ctx: click.Context, index: int) -> None:
    """An API worker process, started by `cumulo up` with its listening sockets (never by hand)."""
    workers.die_with_leader()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the leader, which stops us
    cfg = load(ctx)
    logmod.configure(cfg.logging)
    logmod.add_config_secrets(cfg)
    install_uvloop()

    async def main_task() -> None:
        from cumulo.server import run  # heavy, as in `cumulo up`

        await run(cfg, worker=index)

    asyncio.run(main_task())


async def announce(ready: asyncio.Event, cfg: configmod.Config, started: float) -> None:
    await ready.wait()
    click.echo(f"cumulo is up (ready in {time.monotonic() - started:.0f} s). "
               f"Identity: {cfg.endpoint(cfg.identity.port, '/v3')}\n"
               f"  clouds.yaml: {cfg.state_path / 'clouds.yaml'} (clouds: cumulo = admin, cumulo-demo)\n"
               f"  try: openstack --os-cloud cumulo token issue\n"
               f"{dashboard_line(cfg)}"
               f"  Ctrl-C stops it.", err=True)


def dashboard_line(cfg: configmod.Config) -> str:
    if "dashboard" not in cfg.services:
        return ""
    return (f"  dashboard: {cfg.endpoint(cfg.dashboard.port, '/')} (sign in as admin or demo; the passwords are in "
            f"{cfg.state_path / 'admin-password'} and demo-password)\n")


@main.command(epilog=example(
    "cumulo status                       # exit status 0: all answer, 1: one fails, 3: not running",
    "cumulo --state-dir /tmp/c status    # the cloud whose state is in /tmp/c"))
@click.pass_context
def status(ctx: click.Context) -> None:
    """Tell what runs and where, and whether each API answers.

    Reads <state-dir>/status.json, which a running `cumulo up` keeps, and asks each listener
    (every API and the operator port with /metrics and /healthcheck) for an answer."""
    cfg = load(ctx)
    path = cfg.state_path / "status.json"
    if not path.exists():
        click.echo(f"cumulo is not running (no {path}). Start it with `cumulo up`.")
        sys.exit(3)
    info = json.loads(path.read_text())
    uptime = time.time() - info["started"]
    click.echo(f"cumulo controller pid {info['pid']} on {info['host']}, up {uptime:.0f}s")
    if info.get("workers"):
        click.echo("  API workers: " + ", ".join(f"{i} (pid {pid})" for i, pid in info["workers"].items()))
    if "leader_lease" in info:
        click.echo("  leader lease: " + ("held (the reconcilers run here)" if info["leader_lease"] else
                                         "held by another controller (this one waits to take over)"))
    click.echo(f"  database: {info['database']}\n  bus: {info['bus']}")
    failing = 0
    for name, url in info["listeners"].items():
        probe = url + ("/healthcheck" if name == "operator" else "/")
        try:
            with urllib.request.urlopen(probe, timeout=3) as resp:
                state = f"ok ({resp.status})"
        except urllib.error.HTTPError as exc:
            state = f"ok ({exc.code})" if exc.code < 500 else f"failing ({exc.code})"
            failing += exc.code >= 500
        except OSError as exc:
            state, failing = f"not answering ({exc})", failing + 1
        click.echo(f"  {name:10s} {url:32s} {state}")
    sys.exit(1 if failing else 0)


@main.command(short_help="Run a compute agent for one node on its own (Ctrl-C stops it).", epilog=example(
    "CUMULO_BUS__URL=amqp://guest:guest@mq:5672/ cumulo agent --host node-7          # a QEMU node",
    "CUMULO_BUS__URL=amqp://guest:guest@mq:5672/ cumulo agent --host node-8 --fake   # no VMs"))
@click.option("--host", default="", help="The name this node reports (os-services, os-hypervisors); "
              "default [compute] host, else the system's host name.")
@click.option("--fake", is_flag=True, help="Use the fake driver (no VMs; for scale tests) instead of QEMU.")
@click.option("--vcpus", default=16, show_default=True, help="Fake driver: vCPUs the node offers.")
@click.option("--memory-mb", default=32768, show_default=True, help="Fake driver: RAM the node offers.")
@click.option("--disk-gb", default=500, show_default=True, help="Fake driver: disk the node offers.")
@click.pass_context
def agent(ctx: click.Context, host: str, fake: bool, vcpus: int, memory_mb: int, disk_gb: int) -> None:
    """Run a compute agent for one node in the foreground (Ctrl-C stops it).

    With the QEMU driver its instances keep running when the agent stops; a restarted agent
    takes them up again.

    The agent talks to the controllers only through the bus, so [bus] url must name RabbitMQ
    (amqp://...) shared with them.
    """
    cfg = _agent_config(ctx, "(or run fake nodes inside `cumulo up` with [compute] fake_nodes)")

    def make(bus: Any) -> Any:
        # heavy: the compute agent and its drivers
        from cumulo.compute.agent import ComputeAgent, qemu_agent
        from cumulo.compute.virt.fake import FakeDriver

        if not fake:
            return qemu_agent(cfg, bus, host)
        if not host:
            raise click.ClickException("--fake needs --host NAME")
        state = cfg.state_path / "fake"
        state.mkdir(parents=True, exist_ok=True)
        driver = FakeDriver(host, vcpus, memory_mb, disk_gb, state_file=state / f"{host}.json")
        return ComputeAgent(bus, host, driver, cfg.compute.report_interval)

    _run_agent(cfg, make, lambda node: f"compute agent {node.host} is up ({'fake' if fake else 'QEMU'} driver)")


def _agent_config(ctx: click.Context, alternative: str) -> Any:
    """The configuration of an agent process, which needs a bus shared with the controllers."""
    cfg = load(ctx)
    logmod.configure(cfg.logging)
    logmod.add_config_secrets(cfg)
    if cfg.bus.url.startswith("memory:"):
        raise click.ClickException(f"a separate agent needs a shared bus: set CUMULO_BUS__URL=amqp://... {alternative}")
    return cfg


def _run_agent(cfg: Any, make: Any, describe: Any) -> None:
    """Connect to the bus, start the agent ``make(bus)`` returns, and run until SIGINT or SIGTERM."""
    async def run() -> None:
        bus = busmod.connect(cfg.bus.url, cfg.bus.rpc_timeout, cfg.bus.prefix)
        await bus.start()
        node = make(bus)
        await node.start()
        click.echo(f"{describe(node)}; Ctrl-C stops it", err=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await node.stop()
        await bus.stop()

    asyncio.run(run())


@main.group(short_help="Block storage on this machine: agent.")
def volume() -> None:
    """Block storage on this machine."""


@volume.command("agent", short_help="Run a volume agent for one storage node on its own.", epilog=example(
    "CUMULO_BUS__URL=amqp://guest:guest@mq:5672/ cumulo volume agent --host store-1"))
@click.option("--host", default="", help="The name this storage node reports (its pool, host@file#file); "
              "default [volume] host, else the system's host name.")
@click.pass_context
def volume_agent(ctx: click.Context, host: str) -> None:
    """Run a volume agent for one storage node in the foreground (Ctrl-C stops it).

    Its volumes are qcow2 files under [volume] volumes_path/<host>; a restarted agent adopts the
    files it finds and the controller removes those no volume owns.  Turn the controller's own
    agent off with [volume] local_node = false when the storage runs here instead.

    The agent talks to the controllers only through the bus, so [bus] url must name RabbitMQ
    (amqp://...) shared with them.
    """
    cfg = _agent_config(ctx, "(or let `cumulo up` run the volume agent: [volume] local_node)")

    def make(bus: Any) -> Any:
        from cumulo.volume.agent import file_agent

        return file_agent(cfg, bus, host or None)

    _run_agent(cfg, make, lambda node: f"volume agent {node.host} is up (file driver in {node.driver.path})")


@main.command(short_help="The operator's checklist: what is broken, and the fix.", epilog=example(
    "cumulo doctor                        # exit status 0: all ok, 1: a warning, 2: a failure",
    "cumulo doctor --json | jq '.checks[] | select(.verdict != \"ok\")'",
    "CUMULO_DOCTOR__DISK_WARNING_PERCENT=70 cumulo --state-dir /srv/cumulo doctor"))
@click.option("--json", "as_json", is_flag=True, help="Print the findings as one JSON document (for scripts).")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Run the Operations Guide's hourly, daily, weekly and monthly checks against this cloud and
    tell, for each, what was looked at, the verdict (ok, warning, failure), the broken component
    and the fix.  It only reads: nothing is changed.

    \b
    Checks: the controller answers; the database answers and is migrated to the newest revision;
    a round trip over the bus; the clocks of this machine and the database server agree; every
    compute, volume and network agent heartbeats; disk use of the state directory, instances,
    volumes, backups and object devices; the Fernet keys rotated recently and private; no server,
    volume, snapshot, backup, attachment or image in a transitional state past its lease; no
    QEMU, namespace, tap, dnsmasq or volume file without its owner; objects with all their
    replicas; usage within quotas; passwords and application credentials near expiry.

    \b
    Exit status (as nova-status upgrade check): 0 all ok, 1 a warning, 2 a failure, 255 doctor
    could not run.  Thresholds: [doctor] disk_warning_percent (80), disk_failure_percent (90),
    lease_grace (60 s), stuck_after (3600 s), key_max_age_days (30), expiry_warning_days (14).
    Run it as the user `cumulo up` runs as (root, for the namespaces and processes).
    """
    from cumulo.cli import doctor as doctormod  # heavy: SQLAlchemy, the services' modules

    cfg = load(ctx)
    try:
        findings = doctormod.diagnose(cfg)
    except Exception as exc:  # noqa: BLE001
        click.echo(f"cumulo doctor could not run: {type(exc).__name__}: {exc}", err=True)
        sys.exit(255)
    if as_json:
        click.echo(json.dumps(doctormod.report(findings), indent=2, default=str))
    else:
        click.echo(doctormod.render(findings))
    sys.exit(doctormod.EXIT[doctormod.worst(findings)])


@main.group()
def config() -> None:
    """Inspect the configuration: show."""


@config.command("show", epilog=example(
    "cumulo config show",
    "CUMULO_IDENTITY__PORT=15000 cumulo --config ./cumulo.toml config show > effective.toml"))
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective configuration as TOML (passwords masked): the defaults, the file
    (--config, $CUMULO_CONFIG, <state-dir>/cumulo.toml or /etc/cumulo/cumulo.toml) and the
    CUMULO_<SECTION>__<KEY> environment variables on top."""
    cfg = load(ctx.parent.parent if ctx.parent and ctx.parent.parent else ctx)
    data = configmod.as_dict(cfg)
    for section, key in (("bootstrap", "admin_password"), ("bootstrap", "demo_password"),
                         ("compute", "metadata_secret")):
        if data[section].get(key):
            data[section][key] = "***"
    data["database"]["url"] = logmod.mask_url(data["database"]["url"])
    data["bus"]["url"] = logmod.mask_url(data["bus"]["url"])
    click.echo(f"# from {cfg.source or 'defaults'} and CUMULO_* environment variables")
    click.echo(configmod.to_toml(data))


@main.group()
def db() -> None:
    """Database schema management: sync, version."""


@db.command("sync", epilog=example(
    "cumulo db sync",
    "CUMULO_DATABASE__URL=postgresql://cumulo:secret@db/cumulo cumulo db sync"))
@click.pass_context
def db_sync(ctx: click.Context) -> None:
    """Apply every pending migration to [database] url (safe to repeat).  `cumulo up` does it
    too: run it to migrate before starting, e.g. when upgrading several controllers."""
    from cumulo.core.db import Database  # heavy: SQLAlchemy

    cfg = load(ctx.find_root())

    async def go() -> str | None:
        database = Database(cfg.database_url)
        try:
            await database.migrate()
            return await database.revision()
        finally:
            await database.close()

    click.echo(f"schema at revision {asyncio.run(go())}")


@db.command("version", epilog=example("cumulo db version"))
@click.pass_context
def db_version(ctx: click.Context) -> None:
    """Show the schema revision of the database."""
    from cumulo.core.db import Database  # heavy: SQLAlchemy

    cfg = load(ctx.find_root())

    async def go() -> str | None:
        database = Database(cfg.database_url)
        try:
            return await database.revision()
        finally:
            await database.close()

    click.echo(asyncio.run(go()) or "empty (run `cumulo db sync`)")


@main.group()
def identity() -> None:
    """Identity maintenance: rotate-keys."""


@identity.command("rotate-keys", short_help="Rotate the Fernet token keys.", epilog=example(
    "cumulo identity rotate-keys                  # keys in <state-dir>/fernet-keys",
    "CUMULO_IDENTITY__MAX_ACTIVE_KEYS=5 cumulo identity rotate-keys"))
@click.pass_context
def rotate_keys(ctx: click.Context) -> None:
    """Rotate the Fernet keys: the staged key becomes primary, a new key is staged, and the
    oldest keys beyond [identity] max_active_keys are removed.  Tokens made with a removed key
    stop working; running controllers pick the new keys up within seconds."""
    from cumulo.identity.tokens import KeyRepository  # heavy: cryptography's Fernet

    cfg = load(ctx.find_root())
    repo = KeyRepository(cfg.key_repository, cfg.identity.max_active_keys)
    repo.setup()
    indexes = repo.rotate()
    click.echo(f"keys in {cfg.key_repository}: primary {max(indexes)}, staged 0, "
               f"secondary {', '.join(str(i) for i in indexes if i not in (0, max(indexes))) or 'none'}")


@main.group()
def policy() -> None:
    """Policy rules: show."""


POLICY_SERVICES = ("identity", "compute", "network", "image", "placement", "volume", "dashboard")


@policy.command("show", epilog=example(
    "cumulo policy show --service compute > compute-policy.yaml",
    "CUMULO_POLICY__FILE=/etc/cumulo/policy.yaml cumulo policy show   # with the overrides applied"))
@click.option("--service", type=click.Choice(POLICY_SERVICES), multiple=True,
              help="Only this service's rules (repeatable); all services by default.")
@click.pass_context
def policy_show(ctx: click.Context, service: tuple[str, ...]) -> None:
    """Print every service's effective policy (defaults plus [policy] file) as YAML."""
    # heavy: the policy engine and the HTTP stack the rules' defaults come with (~0.3 s)
    from cumulo.core.http.authz import defaults
    from cumulo.core.policy import Enforcer

    cfg = load(ctx.find_root())
    known: set[str] = set()
    enforcers = []
    for name in POLICY_SERVICES:
        rules = importlib.import_module(f"cumulo.{name}.policies").RULES
        checks, descriptions = (rules, {}) if isinstance(rules, dict) else defaults(rules)
        known |= set(checks)
        enforcers.append((name, Enforcer(checks, cfg.policy.file or None, descriptions)))
    for name, enforcer in enforcers:
        if not service or name in service:
            click.echo(f"# ---- {name} ({len(enforcer.defaults)} rules) ----")
            click.echo(enforcer.rules_as_yaml(only_defaults=True))
    if not service and enforcers:
        stray = sorted(set(enforcers[0][1]._rules) - known)
        if stray:
            click.echo("# ---- in the policy file but no service's rule (ignored) ----")
            for rule in stray:
                click.echo(f"# {rule}")


@main.group(short_help="The network dataplane on this machine: trace, cleanup, agent.")
def network() -> None:
    """The network dataplane on this machine (namespaces named [network] namespace_prefix-*)."""


@network.command("trace", short_help="The dataplane path of a server's ports (or one port).", epilog=example(
    "cumulo network trace vm1            # a server by name",
    "cumulo network trace 3f2a9c1e       # a port by the first 8 characters of its id"))
@click.argument("what")
@click.pass_context
def network_trace(ctx: click.Context, what: str) -> None:
    """Show the path of SERVER's ports (a name or id) or of one PORT (an id or its first 8+
    characters): tap, bridge, DHCP namespace and lease, security-group chains with hit counters,
    router with routes and NAT rules, floating IP.  Run it as root on the machine whose dataplane
    you look at; it reads the database for what should be there and the kernel for what is."""
    cfg = load(ctx.find_root())

    async def go() -> list[str]:
        from cumulo.compute.service import live_servers_named
        from cumulo.core.db import Database
        from cumulo.network.dataplane.trace import trace
        from cumulo.network.ipam import Ipam
        from cumulo.network.topology import Topology

        database = Database(cfg.database_url)
        try:
            state = await Topology(database, Ipam(database)).state(ensure=False)
            servers = await live_servers_named(database, what)
        finally:
            await database.close()
        return await trace(state, what, cfg.network.namespace_prefix, cfg.state_path, servers)

    click.echo("\n".join(asyncio.run(go())).rstrip())


@network.command("cleanup", short_help="Remove every namespace, process and file of the dataplane.",
                 epilog=example("cumulo network cleanup",
                                "CUMULO_NETWORK__NAMESPACE_PREFIX=cumulo-test cumulo network cleanup --yes"))
@click.option("--yes", is_flag=True, help="Do not ask.")
@click.pass_context
def network_cleanup(ctx: click.Context, yes: bool) -> None:
    """Remove every namespace (<prefix>-dp, -ext, -dhcp-*, -router-*), dnsmasq and DHCP file of
    this machine's dataplane.  Guests lose their network until the agent rebuilds it (it does so
    from the desired state as soon as it runs)."""
    cfg = load(ctx.find_root())
    from cumulo.network.dataplane.linux import namespaces

    found = namespaces(cfg.network.namespace_prefix)
    if not found:
        click.echo("nothing to remove")
        return
    if not yes:
        click.confirm(f"remove {len(found)} namespaces ({', '.join(found[:4])}...)?", abort=True)

    async def go() -> None:
        from cumulo.network.agent import NetworkAgent

        await NetworkAgent(None, cfg.network.namespace_prefix, cfg.state_path, "", "").teardown()

    asyncio.run(go())
    click.echo(f"removed {len(found)} namespaces")


@network.command("agent", short_help="Run this machine's network agent on its own.", epilog=example(
    "CUMULO_BUS__URL=amqp://guest:guest@mq:5672/ CUMULO_COMPUTE__METADATA_SECRET=s3cret cumulo network agent"))
@click.pass_context
def network_agent(ctx: click.Context) -> None:
    """Run this machine's network agent in the foreground (Ctrl-C stops it; the dataplane stays
    as it is and a restarted agent takes it up again).  It talks to the controllers only over the
    bus, so [bus] url must name RabbitMQ shared with them; run no agent inside `cumulo up` on the
    same machine ([network] dataplane = false there).  Its metadata proxy signs for the metadata
    API with [compute] metadata_secret (or <state_dir>/metadata-secret): give it the controllers'
    secret, and [api] public_host where their metadata API answers."""
    cfg = load(ctx.find_root())
    logmod.configure(cfg.logging)
    logmod.add_config_secrets(cfg)
    if cfg.bus.url.startswith("memory:"):
        raise click.ClickException("a separate agent needs a shared bus: set CUMULO_BUS__URL=amqp://...")

    async def run() -> None:
        import signal

        from cumulo.core import bus as busmod
        from cumulo.network.agent import NetworkAgent

        bus = busmod.connect(cfg.bus.url, cfg.bus.rpc_timeout, cfg.bus.prefix)
        await bus.start()
        secret_file = cfg.state_path / "metadata-secret"
        secret = cfg.compute.metadata_secret or (secret_file.read_text().strip() if secret_file.exists() else "")
        agent = NetworkAgent(bus, cfg.network.namespace_prefix, cfg.state_path,
                             f"http://{cfg.public_host}:{cfg.compute.metadata_port}", secret,
                             cfg.network.reconcile_interval, host=cfg.compute.host or None,
                             tunnel_address=cfg.network.tunnel_address)
        await agent.start()
        click.echo(f"network agent is up (namespaces {cfg.network.namespace_prefix}-*); Ctrl-C stops it", err=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await agent.stop()
        await bus.stop()

    asyncio.run(run())


main.add_command(object_group)
main.add_command(trace_command)
main.add_command(logs_command)
main.add_command(backup_group)
main.add_command(restore_command)
main.add_command(upgrade_group)
main.add_command(canary_command)
main.add_command(uninstall_command)
main.add_command(usage_group)
main.add_command(node_group)

if __name__ == "__main__":
    main()
