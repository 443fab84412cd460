"""``cumulo node``: hosts join the cloud, are listed, are removed, and go into maintenance.

    cumulo node token create      (on a controller) a single-use join token, printed once
    cumulo node join              (on the new host) fetch its settings, write its config, run its agents
    cumulo node list              (on a controller) every host, its roles and each agent's state
    cumulo node remove HOST       (on a controller) delete a host's services and agents
    cumulo node maintenance start|stop HOST   (anywhere, as an admin) disable it and move its servers away

The controller's side of the join is ``POST /v3/OS-CUMULO/nodes/join`` on the identity API
(``cumulo.identity.nodes``); the rest is in ``cumulo.ops.node``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import json
import os
import signal
from pathlib import Path
from typing import Any

import click

from cumulo.core import config as configmod
from cumulo.core import logging as logmod

ROLES = ("compute", "network", "volume")


def example(*lines: str) -> str:
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def _load(ctx: click.Context) -> configmod.Config:
    root = ctx.find_root().obj or {}
    try:
        return configmod.load(root.get("config"), state_dir=root.get("state_dir"))
    except configmod.ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


def _roles(text: str) -> list[str]:
    roles = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in roles if r not in ROLES]
    if not roles or unknown:
        raise click.BadParameter(f"one or more of {', '.join(ROLES)}, comma-separated"
                                 + (f" (not {unknown[0]!r})" if unknown else ""))
    return [r for r in ROLES if r in roles]


async def _with_db(cfg: configmod.Config, work: Any) -> Any:
    from cumulo.core.db import Database  # heavy: SQLAlchemy

    database = Database(cfg.database_url)
    try:
        return await work(database)
    finally:
        await database.close()


@click.group("node", short_help="Hosts of the cloud: token create, join, list, remove, maintenance.")
def node_group() -> None:
    """Hosts join the cloud (compute, network and volume nodes on other machines), are listed and
    removed.  A controller makes a join token; the new host presents it with `cumulo node join`,
    which fetches the bus URL and its credentials, the bus prefix, the metadata secret, the
    controller's public host, ports and region, writes them to <state-dir>/cumulo.toml (0600) and
    runs the agents of its roles."""


@node_group.group("token")
def token_group() -> None:
    """Join tokens: create."""


@token_group.command("create", epilog=example(
    "cumulo node token create                          # valid one hour, for any role",
    "cumulo node token create --ttl 600 --roles compute"))
@click.option("--ttl", default=3600, show_default=True, help="Seconds the token stays valid (60 to 604800).")
@click.option("--roles", default=",".join(ROLES), show_default=True,
              help="The roles a join with this token may ask for, comma-separated.")
@click.pass_context
def token_create(ctx: click.Context, ttl: int, roles: str) -> None:
    """Make a single-use join token and print it (it is shown once: only a hash of its secret
    is kept in the database).  Run it on a controller, as `cumulo db` runs: it writes to
    [database] url.  The token carries no secret of the cloud itself; the controller answers a
    join with them once, over the identity API."""
    from cumulo.identity.nodes import create_token

    cfg = _load(ctx)
    wanted = _roles(roles)
    try:
        token, expires = asyncio.run(_with_db(cfg, lambda db: create_token(db, ttl, wanted)))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # noqa: BLE001  (most often: the schema is older than this code)
        raise click.ClickException(f"the token could not be stored ({type(exc).__name__}: {exc}); "
                                   "is the database migrated (`cumulo db sync`)?") from None
    click.echo(token)
    click.echo(f"single use, valid until {expires:%Y-%m-%d %H:%M:%S}Z, roles {','.join(wanted)}; on the new host:\n"
               f"  cumulo node join --controller {cfg.endpoint(cfg.identity.port)} --token {token.split('.')[0]}.... "
               f"--role {','.join(wanted)}", err=True)


def _state_dir(ctx: click.Context) -> Path:
    root = ctx.find_root().obj or {}
    return Path(root.get("state_dir") or os.environ.get("CUMULO_STATE_DIR") or "/var/lib/cumulo")


def step(text: str) -> None:
    click.echo(f"cumulo node: {text}", err=True)


@node_group.command("join", short_help="Join this host to a cloud and run its agents (Ctrl-C stops them).",
                    epilog=example(
                        "cumulo node join --controller http://controller:5000 --token ID.SECRET --role compute,network",
                        "cumulo node join --controller http://ctl:5000 --token ID.SECRET --role compute --host c7 "
                        "--management-address 10.0.0.7",
                        "cumulo node join                       # again: the saved configuration, no token"))
@click.option("--controller", default="", help="The identity URL of the cloud, e.g. http://controller:5000.")
@click.option("--token", default="", help="The join token of `cumulo node token create` (needed the first time).")
@click.option("--role", "roles", default="", help="compute, network, volume (comma-separated); "
              "default: the saved roles, else compute.")
@click.option("--host", default="", help="The name this host reports (default: the system's host name).")
@click.option("--management-address", default="", help="This host's address the other hosts reach: VXLAN "
              "tunnels ([network] tunnel_address) and volume exports; empty: a single-host cloud.")
@click.option("--fake", is_flag=True, help="Compute role: the fake driver (no VMs; for scale tests), not QEMU.")
@click.option("--vcpus", default=16, show_default=True, help="Fake driver: vCPUs the node offers.")
@click.option("--memory-mb", default=32768, show_default=True, help="Fake driver: RAM the node offers.")
@click.option("--disk-gb", default=500, show_default=True, help="Fake driver: disk the node offers.")
@click.pass_context
def join(ctx: click.Context, controller: str, token: str, roles: str, host: str, management_address: str,
         fake: bool, vcpus: int, memory_mb: int, disk_gb: int) -> None:
    """Join this host to the cloud at --controller with a join token, then run the agents of
    its roles in the foreground (Ctrl-C or SIGTERM stops them; QEMU guests keep running).

    \b
    The first time it presents the token to <controller>/v3/OS-CUMULO/nodes/join, which answers
    once with the node's settings, and writes <state-dir>/cumulo.toml (0600: it holds the bus
    password and the metadata secret) and <state-dir>/node.json (host, roles, controller).
    Run again with the same --state-dir and no --token, it reuses them.  A new --token joins
    anew (new roles, say).  The log goes to <state-dir>/cumulo-node.log; it prints a line a step.
    """
    from cumulo.ops import node as nodeops

    state = _state_dir(ctx)
    saved_file = state / nodeops.NODE_FILE
    saved = json.loads(saved_file.read_text()) if saved_file.exists() else None
    wanted = _roles(roles) if roles else None
    if token:
        if not controller:
            raise click.UsageError("--token needs --controller URL (the cloud's identity URL)")
        if not controller.startswith(("http://", "https://")):
            raise click.UsageError(f"--controller {controller}: the cloud's identity URL, e.g. http://controller:5000")
        wanted = wanted or ["compute"]
        host = host or (saved or {}).get("host") or nodeops.default_host()
        logmod.add_secret(token.partition(".")[2])
        step(f"asking {controller} to join as {host} (roles {','.join(wanted)})")
        try:
            settings = nodeops.ask(controller, token, host, wanted)
        except nodeops.JoinError as exc:
            raise click.ClickException(str(exc)) from None
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(state, 0o700)
        data, notes = nodeops.node_config(settings, controller, state, management_address)
        for note in notes:
            step(note)
        nodeops.write_private(state / "cumulo.toml", "# written by `cumulo node join`: it holds the bus password "
                              "and the metadata secret (keep it 0600)\n" + configmod.to_toml(data))
        saved = {"host": host, "roles": wanted, "controller": controller, "management_address": management_address,
                 "fake": {"vcpus": vcpus, "memory_mb": memory_mb, "disk_gb": disk_gb} if fake else None,
                 "joined_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        nodeops.write_private(saved_file, json.dumps(saved, indent=2) + "\n")
        step(f"wrote {state / 'cumulo.toml'} (0600): bus {logmod.mask_url(data['bus']['url'])}, "
             f"prefix {data['bus']['prefix']}, region {data['api']['region']}")
    elif saved is None:
        raise click.UsageError(f"{state} holds no joined node: give --controller URL and --token "
                               "(made by `cumulo node token create` on a controller)")
    else:
        if wanted and wanted != saved["roles"]:
            raise click.UsageError(f"this host joined with the roles {','.join(saved['roles'])}: to change them, "
                                   "join again with a new --token and --role")
        if host and host != saved["host"]:
            raise click.UsageError(f"this host joined as {saved['host']}: to rename it, join again with a new --token")
        step(f"reusing {state / 'cumulo.toml'}: {saved['host']}, roles {','.join(saved['roles'])}, "
             f"joined to {saved['controller']} at {saved['joined_at']}")
        if fake and not saved.get("fake"):
            saved["fake"] = {"vcpus": vcpus, "memory_mb": memory_mb, "disk_gb": disk_gb}
    try:
        cfg = configmod.load(state / "cumulo.toml", state_dir=str(state))
    except configmod.ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    logmod.configure(cfg.logging)
    logmod.add_config_secrets(cfg)
    run_node(cfg, saved)


def run_node(cfg: configmod.Config, saved: dict[str, Any]) -> None:
    """Connect to the bus and run the agents of the node's roles until SIGINT or SIGTERM."""
    host, roles = saved["host"], saved["roles"]

    async def run() -> None:
        from cumulo.core import bus as busmod

        bus = busmod.connect(cfg.bus.url, cfg.bus.rpc_timeout, cfg.bus.prefix)
        try:
            await asyncio.wait_for(bus.start(), 60)
        except Exception as exc:  # noqa: BLE001
            raise click.ClickException(f"the bus at {logmod.mask_url(cfg.bus.url)} could not be reached: "
                                       f"{type(exc).__name__}: {logmod.redact(str(exc))}") from None
        step(f"connected to the bus {logmod.mask_url(cfg.bus.url)} (prefix {cfg.bus.prefix})")
        agents: list[Any] = []
        try:
            for role in roles:
                try:
                    agent, what = make_agent(cfg, bus, role, host, saved.get("fake"))
                    await agent.start()
                except Exception as exc:  # noqa: BLE001  (a missing binary, a path too long, no root)
                    raise click.ClickException(f"the {role} agent of {host} could not start: "
                                               f"{type(exc).__name__}: {logmod.redact(str(exc))}") from None
                agents.append(agent)
                step(f"{role} agent of {host} is up ({what})")
            step(f"{host} runs {', '.join(roles)}; Ctrl-C stops it (log: {cfg.logging.file})")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            step(f"stopping the agents of {host}")
        finally:
            for agent in reversed(agents):
                await agent.stop()
            await bus.stop()

    asyncio.run(run())


def make_agent(cfg: configmod.Config, bus: Any, role: str, host: str, fake: dict[str, int] | None) -> tuple[Any, str]:
    if role == "compute":
        from cumulo.compute.agent import ComputeAgent, qemu_agent
        from cumulo.compute.virt.fake import FakeDriver

        if not fake:
            agent = qemu_agent(cfg, bus, host)
            return agent, f"QEMU driver, instances in {agent.driver.root}"
        (cfg.state_path / "fake").mkdir(parents=True, exist_ok=True)
        driver = FakeDriver(host, fake["vcpus"], fake["memory_mb"], fake["disk_gb"],
                            state_file=cfg.state_path / "fake" / f"{host}.json")
        return ComputeAgent(bus, host, driver, cfg.compute.report_interval), "fake driver"
    if role == "network":
        from cumulo.network.agent import NetworkAgent
        from cumulo.network.dataplane.linux import missing_tools

        lacking = missing_tools()
        if lacking:
            raise RuntimeError(f"the dataplane needs {', '.join(lacking)} (scripts/setup.sh installs dnsmasq-base, "
                               "iproute2 and iptables; run as root)")

        kwargs: dict[str, Any] = {"host": host}
        if "tunnel_address" in inspect.signature(NetworkAgent).parameters:
            kwargs["tunnel_address"] = cfg.network.tunnel_address
        agent = NetworkAgent(bus, cfg.network.namespace_prefix, cfg.state_path,
                             f"http://{cfg.public_host}:{cfg.compute.metadata_port}", cfg.compute.metadata_secret,
                             cfg.network.reconcile_interval, **kwargs)
        return agent, (f"namespaces {cfg.network.namespace_prefix}-*, tunnels on "
                       f"{cfg.network.tunnel_address or 'none (a single host)'}")
    from cumulo.volume.agent import file_agent

    agent = file_agent(cfg, bus, host)
    return agent, f"file driver in {agent.driver.path}"


@node_group.command("list", epilog=example("cumulo node list"))
@click.pass_context
def node_list(ctx: click.Context) -> None:
    """Every host with an agent record: its roles, and each agent's state and last report (the
    compute service of os-services, the network agents of GET /v2.0/agents, the volume service).
    Run it on a controller: it reads [database] url."""
    from cumulo.ops import node as nodeops

    cfg = _load(ctx)
    found = asyncio.run(_with_db(cfg, lambda db: nodeops.hosts(db, cfg)))
    click.echo(nodeops.render(found))


@node_group.command("remove", epilog=example(
    "cumulo node remove compute-7",
    "cumulo node remove compute-7 --force     # its servers, volumes or routers are left pointing at it"))
@click.argument("host")
@click.option("--force", is_flag=True, help="Remove it even while servers, volumes or routers are on it, or its "
              "agents still report.")
@click.pass_context
def node_remove(ctx: click.Context, host: str, force: bool) -> None:
    """Remove HOST: disable, then delete its compute service and hypervisors (and their placement
    providers), network agents and volume service, so that they vanish from os-services,
    os-hypervisors, /v2.0/agents and the volume services.  Refused while servers, volumes or
    routers are on it, or while its agents still report (stop `cumulo node join` there first),
    unless --force.  Run it on a controller: it writes to [database] url."""
    from cumulo.ops import node as nodeops

    cfg = _load(ctx)
    try:
        done = asyncio.run(_with_db(cfg, lambda db: nodeops.remove(db, cfg, host, force)))
    except nodeops.Refused as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"removed host {host}: {', '.join(done) or 'nothing was left'}")


@node_group.group("maintenance")
def maintenance_group() -> None:
    """Planned maintenance of a compute node: start (disable it, move its servers away), stop."""


def _compute(ctx: click.Context, cloud_name: str, timeout: float) -> Any:
    from cumulo.ops import canary
    from cumulo.ops import maintenance as maint

    cfg = _load(ctx)
    try:
        if cloud_name:
            cloud = canary.find_cloud(cloud_name, canary.clouds_files(cfg.state_path))
        else:
            cloud = canary.find_cloud("cumulo", [cfg.state_path / "clouds.yaml"])
    except LookupError as exc:
        raise click.ClickException(f"{exc} (give --cloud NAME of a clouds.yaml with an admin's credentials)") from None
    try:
        return maint.Compute(cloud, timeout)
    except maint.MaintenanceError as exc:
        raise click.ClickException(str(exc)) from None


_cloud_option = click.option(
    "--cloud", "cloud_name", default="", help="A cloud of clouds.yaml ($OS_CLIENT_CONFIG_FILE, ./clouds.yaml, "
    "~/.config/openstack, /etc/openstack) with an admin's credentials; default: the admin cloud `cumulo` of "
    "<state-dir>/clouds.yaml.")


@maintenance_group.command("start", epilog=example(
    "cumulo node maintenance start compute-7 --reason 'RAM replacement, ticket 4711'",
    "cumulo node maintenance start compute-7 --max-servers 2 --json",
    "cumulo node maintenance start compute-7 --no-wait     # ask for the moves, do not wait for them"))
@click.argument("host")
@click.option("--reason", default="maintenance", show_default=True,
              help="The disabled_reason os-services shows (`openstack compute service list --long`).")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for each move (and confirm the cold ones), or only ask for them.")
@click.option("--max-servers", default=1, show_default=True,
              help="Servers moved at the same time (Nova's max_concurrent_live_migrations is 1).")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds one server's move may take.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@_cloud_option
@click.pass_context
def maintenance_start(ctx: click.Context, host: str, reason: str, wait: bool, max_servers: int, timeout: float,
                      as_json: bool, cloud_name: str) -> None:
    """Take compute node HOST out for maintenance: disable its compute service with --reason, so the
    scheduler sends nothing new there, then move every server on it to other hosts the scheduler
    picks: ACTIVE and PAUSED ones by live migration (they go on running), SHUTOFF ones by cold
    migration, confirmed (they stay SHUTOFF).  One line a server; a server that stayed is named with
    the reason (the API's refusal, "No valid host" with what each filter eliminated, or the move's
    failed event).  It talks to the Compute API as an admin of a clouds.yaml (--cloud), as the
    `openstack` CLI does, so it runs from anywhere.

    \b
    Exit status: 0 when HOST holds no server at the end (with --no-wait: every move was accepted),
    1 when some stayed.  `cumulo node maintenance stop HOST` enables it again.
    """
    from cumulo.ops import maintenance as maint

    compute = _compute(ctx, cloud_name, timeout)

    def progress(m: maint.Move) -> None:
        if not as_json:
            click.echo(m.line())

    try:
        report = maint.start(compute, host, reason, wait, max_servers, progress)
    except maint.MaintenanceError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    moved = sum(m.moved for m in report.moves)
    refused = [m for m in report.moves if not m.moved and m.dest != "?"]
    ok = report.empty if wait else not refused
    if not as_json:
        if not report.moves:
            click.echo(f"{host} is disabled ({reason}) and holds no server")
        elif wait:
            click.echo(f"{host} is disabled ({reason}): {moved} of {len(report.moves)} servers moved in "
                       f"{report.seconds:.1f} s" + ("; it is empty" if report.empty else
                                                    f"; {len(report.left)} still on it: "
                                                    + ", ".join(s["name"] or s["id"] for s in report.left)))
        else:
            click.echo(f"{host} is disabled ({reason}): {len(report.moves) - len(refused)} moves asked for, "
                       f"{len(refused)} refused; `openstack server list --host {host} --all-projects` follows them")
    ctx.exit(0 if ok else 1)


@maintenance_group.command("stop", epilog=example("cumulo node maintenance stop compute-7"))
@click.argument("host")
@click.option("--json", "as_json", is_flag=True, help="The result as JSON.")
@_cloud_option
@click.pass_context
def maintenance_stop(ctx: click.Context, host: str, as_json: bool, cloud_name: str) -> None:
    """End HOST's maintenance: enable its compute service again (disabled_reason cleared), so the
    scheduler places servers there again.  The servers moved away stay where they went."""
    from cumulo.ops import maintenance as maint

    compute = _compute(ctx, cloud_name, 60.0)
    try:
        out = maint.stop(compute, host)
    except maint.MaintenanceError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(out) if as_json else f"{host} is enabled ({out['servers']} servers on it)")
