"""``cumulo upgrade check`` and ``cumulo upgrade``: the command line of ``cumulo.ops.upgrade``
(what each check means, why the upgrade refuses a running cloud, the rollback)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cumulo.cli.backup import Bar, _key, default_backup_dir, example

if TYPE_CHECKING:
    from cumulo.core.config import Config
    from cumulo.ops.upgrade import Result


def _checks(ctx: click.Context) -> tuple[list[Result], Config]:
    from cumulo.core import config as configmod
    from cumulo.ops.upgrade import run_checks

    root = ctx.find_root().obj or {}
    try:
        return run_checks(root.get("config"), root.get("state_dir"))
    except configmod.ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


@click.group("upgrade", invoke_without_command=True, short_help="Upgrade: back up, migrate, restart in order.",
             epilog=example(
                 "cumulo upgrade check                 # is this cloud ready for the code installed here?",
                 "cumulo upgrade check --json",
                 "cumulo upgrade --to /mnt/backup/cumulo --key-file /root/cumulo-backup.key"))
@click.option("--to", "to", type=click.Path(file_okay=False), help="Where the backup taken first goes "
              "(default: <state-dir>-backups, as `cumulo backup`).")
@click.option("--include", default="images,volumes", show_default=True,
              help="What the backup holds besides the database, keys, secrets and configuration.")
@click.option("--key-file", type=click.Path(dir_okay=False), help="The backup key (as `cumulo backup`).")
@click.option("--no-encrypt", is_flag=True, help="Store the backup's secrets in the clear (not advised).")
@click.option("--force", is_flag=True, help="Go on although `cumulo upgrade check` reports a failure.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def upgrade_group(ctx: click.Context, to: str | None, include: str, key_file: str | None, no_encrypt: bool,
                  force: bool, quiet: bool) -> None:
    """Upgrade this cloud to the code installed here, with a way back: runs `cumulo upgrade
    check`, takes a backup (as `cumulo backup`), migrates the schema (`cumulo db sync`), records
    both in <state-dir>/last-upgrade.json and prints the restart order: the controllers, then
    the agents.  Refuses while a cloud runs on the state directory (stop it first; this command
    never stops or starts one).  Roll back: install the previous code, then
    `cumulo restore --force BACKUP` with the backup it names, then `cumulo up`."""
    if ctx.invoked_subcommand is not None:
        return
    from cumulo.ops.backup import INCLUDE_CHOICES, BackupError
    from cumulo.ops.upgrade import RESTART_ORDER, UpgradeRefused, preflight, upgrade

    parts = tuple(p.strip() for p in include.split(",") if p.strip())
    unknown = [p for p in parts if p not in INCLUDE_CHOICES]
    if unknown:
        raise click.BadParameter(f"unknown {', '.join(unknown)} (choose from {', '.join(INCLUDE_CHOICES)})",
                                 param_hint="--include")
    results, cfg = _checks(ctx)
    try:
        preflight(cfg, results, force)  # before a backup key is made for an upgrade that cannot run
    except UpgradeRefused as exc:
        raise click.ClickException(str(exc)) from None
    root = Path(to) if to else default_backup_dir(cfg)
    key, _path = _key(key_file, create=True, no_encrypt=no_encrypt)
    try:
        with Bar("backup", quiet) as progress:
            record = upgrade(cfg, results, root, key, parts, force=force, progress=progress,
                             say=lambda line: click.echo(f"cumulo: {line}", err=True))
    except (UpgradeRefused, BackupError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"schema {record['schema_before']} -> {record['schema_after']}; backup {record['backup']}")
    click.echo("Now start, in this order:")
    for line in RESTART_ORDER:
        click.echo(f"  {line}")
    click.echo(f"Rollback: install the previous code, then `cumulo restore --force {record['backup']}`, "
               f"then `cumulo up`.")


@upgrade_group.command("check", epilog=example("cumulo upgrade check", "cumulo upgrade check --json | jq .code"))
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON document.")
@click.pass_context
def upgrade_check(ctx: click.Context, as_json: bool) -> None:
    """Check this cloud against the code installed here, as `nova-status upgrade check` does:
    the database schema, the agents' versions, renamed or removed configuration options, a
    running cloud of another version.  Exit status: 0 all succeeded, 1 a warning, 2 a failure,
    255 a check could not run."""
    from cumulo.ops.upgrade import ERROR_EXIT, exit_code, run_checks, table
    from cumulo.ops.upgrade import as_json as to_json

    root = ctx.find_root().obj or {}
    try:
        results, _cfg = run_checks(root.get("config"), root.get("state_dir"))
    except Exception as exc:  # noqa: BLE001 - the check itself broke: say so, exit 255
        if as_json:
            click.echo(json.dumps({"code": ERROR_EXIT, "error": f"{type(exc).__name__}: {exc}"}))
        else:
            click.echo(f"Error: the upgrade check could not run: {type(exc).__name__}: {exc}", err=True)
        sys.exit(ERROR_EXIT)
    if as_json:
        click.echo(json.dumps(to_json(results), indent=2))
    else:
        click.echo(table(results))
    sys.exit(exit_code(results))
