"""``cumulo canary``: the command line of ``cumulo.ops.canary`` (one run, its progress lines, the
exit status and the metrics in a node_exporter textfile)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

from cumulo.cli.backup import example
from cumulo.core import config as configmod


@click.command("canary", short_help="Prove the cloud works: image, server, floating IP, object, volume.",
               epilog=example(
                   "cumulo canary                          # this machine's cloud, as its admin (exit 0 ok, 2 failed)",
                   "cumulo canary --json | jq '.steps[] | select(.ok != true)'",
                   "cumulo canary --textfile /var/lib/prometheus/node-exporter/cumulo_canary.prom   # from cron",
                   "cumulo canary --cloud mycloud --external-network public   # any cloud of a clouds.yaml"))
@click.option("--cloud", "cloud_name", default="", help="A cloud of clouds.yaml ($OS_CLIENT_CONFIG_FILE, "
              "./clouds.yaml, ~/.config/openstack, /etc/openstack); default: the admin cloud `cumulo` of "
              "<state-dir>/clouds.yaml.  It needs rights to create an external network's floating IP.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as one JSON document (no progress lines).")
@click.option("--keep-going", is_flag=True, help="Run every step even when one it needs failed (the "
              "faults that follow are then often consequences).")
@click.option("--textfile", type=click.Path(dir_okay=False), help="Write the run's metrics here in "
              "node_exporter's textfile format (a name ending in .prom in its --collector.textfile.directory).")
@click.option("--external-network", default="", help="The network of the floating IP (default: the first "
              "with router:external).")
@click.option("--flavor", default="", help="Flavor name or id (default: the smallest with 96 MB and a disk).")
@click.option("--timeout", default=180.0, show_default=True, help="Seconds each wait may take (the server "
              "to become ACTIVE, the guest's ready line).")
@click.pass_context
def canary_command(ctx: click.Context, cloud_name: str, as_json: bool, keep_going: bool, textfile: str | None,
                   external_network: str, flavor: str, timeout: float) -> None:
    """Run the canary once: what a user does, step by step, each timed.

    \b
    Steps (each needs the ones before it that it uses; a failed one skips those that need it):
      auth         a token and the catalog from identity
      image        a fresh private copy of the cumulo-tiny guest (guest/out, else the cloud's
                   own cumulo-tiny image), uploaded until active
      network      a network, subnet, router on the external network, a security group letting
                   HTTP in, and a port
      server       a server on them, until ACTIVE
      guest        its ready line on the console, with the port's address (DHCP worked)
      floating-ip  a floating IP on the port, and the guest's HTTP server answering on it (from
                   <prefix>-ext when this machine has it)
      object       4 KiB written to a container and read back the same
      volume       a 1 GB volume, attached, until the guest sees the disk
      cleanup      everything above deleted, whatever failed (always runs)

    A progress line a step (its verdict, seconds and fault); exit status 0 when every step
    passed, 2 when one failed.  The metrics cumulo_canary_success, cumulo_canary_step_success{step},
    cumulo_canary_step_seconds{step} and cumulo_canary_last_run_timestamp_seconds go to --textfile;
    a running `cumulo up` with [canary] interval = SECONDS runs the canary itself and serves them on
    its operator port's /metrics.
    """
    from cumulo.ops import canary

    root = ctx.find_root().obj or {}
    try:
        cfg = configmod.load(root.get("config"), state_dir=root.get("state_dir"))
    except configmod.ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    try:
        if cloud_name:
            cloud = canary.find_cloud(cloud_name, canary.clouds_files(cfg.state_path))
        else:
            cloud = canary.find_cloud("cumulo", [cfg.state_path / "clouds.yaml"])
    except LookupError as exc:
        raise click.ClickException(f"{exc} (is the cloud up? `cumulo up` writes <state-dir>/clouds.yaml)") from None

    def progress(step: canary.Step) -> None:
        if not as_json:
            click.echo(step.line())

    runner = canary.Canary(cloud, ext_namespace=canary.local_ext_namespace(cfg.network.namespace_prefix),
                           external_network=external_network, flavor=flavor, keep_going=keep_going,
                           timeout=timeout, progress=progress)
    result = asyncio.run(runner.run())
    if textfile:
        Path(textfile).parent.mkdir(parents=True, exist_ok=True)
        canary.write_textfile(result, textfile)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    elif result.ok:
        click.echo(f"canary: passed in {result.seconds:.1f} s")
    else:
        first = result.failed[0]
        click.echo(f"canary: FAILED at {first.name} ({first.detail}) in {result.seconds:.1f} s")
    sys.exit(0 if result.ok else 2)
