"""``cumulo backup`` and ``cumulo restore``: the whole cloud in one command, and back.

The work is in ``cumulo.ops.backup`` (what a backup holds, how it stays consistent on a running
cloud, incremental copies, how secrets are protected, the restore order); this module is the
command line: options, the key file, a progress bar on a terminal, the summary.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from cumulo.core import config as configmod


def example(*lines: str) -> str:
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def _load(ctx: click.Context, state_dir: str | None = None) -> configmod.Config:
    root = ctx.find_root().obj or {}
    try:
        return configmod.load(root.get("config"), state_dir=state_dir or root.get("state_dir"))
    except configmod.ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


def _existing_dir(path: str | None) -> str:
    if not path:
        raise click.UsageError("give BACKUP_DIR (a backup, or a directory of backups), or --from-container NAME")
    if not Path(path).is_dir():
        raise click.BadParameter(f"directory {path!r} does not exist", param_hint="BACKUP_DIR")
    return path


def default_key_file() -> Path:
    """The backup key when --key-file is not given: $CUMULO_BACKUP_KEY_FILE, else
    ~/.config/cumulo/backup.key (away from both the state directory and the backups)."""
    return Path(os.environ.get("CUMULO_BACKUP_KEY_FILE") or Path.home() / ".config" / "cumulo" / "backup.key")


def default_backup_dir(cfg: configmod.Config) -> Path:
    """Beside the state directory, never inside it: /var/lib/cumulo -> /var/lib/cumulo-backups."""
    state = cfg.state_path.resolve()
    return state.with_name(f"{state.name}-backups")


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Bar:
    """A rich progress bar on stderr when it is a terminal (and not --quiet); lines otherwise."""

    def __init__(self, title: str, quiet: bool) -> None:
        from cumulo.ops.backup import Progress

        self.quiet = quiet
        self.live = not quiet and sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._total = 0
        parent = self

        class Reporter(Progress):
            def total(self, nbytes: int) -> None:
                parent._total += nbytes
                if parent._bar is not None:
                    parent._bar.update(parent._task, total=parent._total)

            def advance(self, nbytes: int, what: str = "") -> None:
                if parent._bar is not None:
                    parent._bar.update(parent._task, advance=nbytes, description=what[:32] or title)

            def say(self, line: str) -> None:
                if parent._bar is not None:
                    parent._bar.console.print(line)
                elif not parent.quiet:
                    click.echo(f"cumulo: {line}", err=True)

        self.reporter = Reporter()
        self.title = title

    def __enter__(self) -> Any:
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(TextColumn("{task.description:<32}"), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                                 transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.title, total=None)
        return self.reporter

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()


CONTAINER_OPTIONS = (
    click.option("--os-cloud", "os_cloud", default="cumulo", show_default=True,
                 help="The clouds.yaml entry whose object storage holds the container (the usual clouds.yaml "
                      "places, then <state-dir>/clouds.yaml: `cumulo` is this cloud's own admin)."),
)


def _container(cfg: configmod.Config, os_cloud: str, name: str) -> Any:
    from cumulo.ops.remote import Container, cloud_entry

    return Container(cloud_entry(os_cloud, cfg.state_path), name)


def _pulled(cfg: configmod.Config, os_cloud: str, container: str, name: str | None, progress: Any) -> Path:
    """The backup downloaded from the container into a scratch directory (the caller removes it)."""
    from cumulo.ops.backup import scratch_dir
    from cumulo.ops.remote import pull

    box = _container(cfg, os_cloud, container)
    scratch = scratch_dir("cumulo-download-")
    try:
        return pull(box, scratch, name, progress)
    except BaseException:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
        raise
    finally:
        box.close()


def _key(key_file: str | None, create: bool, no_encrypt: bool = False) -> tuple[bytes | None, Path | None]:
    from cumulo.ops.backup import BackupError, load_key

    if no_encrypt:
        return None, None
    path = Path(key_file) if key_file else default_key_file()
    if not create and not path.exists():
        return None, path
    try:
        key, made = load_key(path, create)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    if made:
        click.echo(f"cumulo: made a new backup key in {path} (0600). Keep a copy away from this machine and "
                   f"its backups: a restore needs it to decrypt the secrets and token keys.", err=True)
    return key, path


@click.group("backup", invoke_without_command=True, short_help="Back the running cloud up: one command.",
             epilog=example(
                 "cumulo backup                                  # into <state-dir>-backups, key in "
                 "~/.config/cumulo/backup.key",
                 "cumulo backup --to /mnt/backup/cumulo --keep 7 --key-file /root/cumulo-backup.key",
                 "cumulo backup --include images,volumes,objects --quiet",
                 "cumulo backup --to-container cumulo-backups --os-cloud offsite --keep 14",
                 "cumulo backup verify /mnt/backup/cumulo        # check the newest one's files"))
@click.option("--to", "to", type=click.Path(file_okay=False), help="The directory of backups (default: "
              "<state-dir>-backups beside the state directory); each backup is a directory in it.")
@click.option("--include", default="images,volumes,instances", show_default=True,
              help="What besides the database, keys, secrets, configuration and ring: any of images, "
                   "volumes, instances (the QEMU nodes' server disks and definitions), objects "
                   "(comma-separated; '' for none).")
@click.option("--keep", type=click.IntRange(min=1), help="Keep the newest N backups in the directory, remove older.")
@click.option("--key-file", type=click.Path(dir_okay=False), help="The key the secrets are encrypted with "
              "(made there when missing; default $CUMULO_BACKUP_KEY_FILE or ~/.config/cumulo/backup.key).")
@click.option("--no-encrypt", is_flag=True, help="Store the secrets and token keys in the clear (not advised).")
@click.option("--full", is_flag=True, help="Copy every file, even those unchanged since the last backup.")
@click.option("--to-container", "to_container", metavar="NAME", help="Also copy the backup into this container "
              "of an object store (--os-cloud); unchanged files are copied inside the store.")
@CONTAINER_OPTIONS[0]
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; only the summary line.")
@click.pass_context
def backup_group(ctx: click.Context, to: str | None, include: str, keep: int | None, key_file: str | None,
                 no_encrypt: bool, full: bool, to_container: str | None, os_cloud: str, quiet: bool) -> None:
    """Back the cloud up while it runs: the database (a consistent snapshot: SQLite's online
    backup, pg_dump, mariadb-dump --single-transaction), the Fernet token keys, the generated
    secrets, the configuration file, the image stores, the object ring, volume data, the QEMU
    nodes' instances (definitions, disks, cached bases), and objects when asked, with a manifest
    of every file's sha256.  After the first backup in a directory each backup is incremental:
    files unchanged since the newest one are hard links to its copy.

    A disk a running guest writes (volume or instance disk) is read with `qemu-img convert -U`:
    each disk crash-consistent on its own (as after a power cut), not one instant across disks.
    Not in a backup: console logs and logs, caches, sockets, pid and status files.

    Secrets, keys and the configuration are encrypted with the key in --key-file; keep that key
    apart from the backups.  Restore with `cumulo restore DIR`.

    --to-container NAME copies the backup, once written in the directory of backups, into that
    container of the object storage of --os-cloud (another cloud's, for a copy away from this
    one); `cumulo restore --from-container NAME` and `cumulo backup verify --from-container NAME`
    read it back."""
    if ctx.invoked_subcommand is not None:
        return
    from cumulo.ops.backup import INCLUDE_CHOICES, BackupError, backup

    parts = tuple(p.strip() for p in include.split(",") if p.strip())
    unknown = [p for p in parts if p not in INCLUDE_CHOICES]
    if unknown:
        raise click.BadParameter(f"unknown {', '.join(unknown)} (choose from {', '.join(INCLUDE_CHOICES)})",
                                 param_hint="--include")
    cfg = _load(ctx)
    root = Path(to) if to else default_backup_dir(cfg)
    key, _path = _key(key_file, create=True, no_encrypt=no_encrypt)
    if no_encrypt:
        click.echo("cumulo: --no-encrypt: the secrets and token keys are stored in the clear", err=True)
    pushed = None
    with Bar("backup", quiet) as progress:
        try:
            box = _container(cfg, os_cloud, to_container) if to_container else None  # credentials first
            manifest = backup(cfg, root, parts, key=key, keep=keep, full=full, progress=progress)
            if box is not None:
                from cumulo.ops.remote import push

                try:
                    pushed = push(root / manifest["name"], box, keep=keep, progress=progress)
                finally:
                    box.close()
        except BackupError as exc:
            raise click.ClickException(str(exc)) from None
    copied, linked = manifest["copied"], manifest["linked"]
    kind = f"incremental on {manifest['base']}" if manifest["incremental"] else "full"
    click.echo(f"backup {root / manifest['name']} ({kind}): {len(manifest['files'])} files, copied "
               f"{copied['files']} ({_human(copied['bytes'])}), linked {linked['files']} "
               f"({_human(linked['bytes'])}); schema {manifest['schema_revision']}; {manifest['seconds']:.1f} s")
    if pushed is not None:
        up, inside = pushed["uploaded"], pushed["copied_in_store"]
        click.echo(f"container {pushed['container']} ({os_cloud}): {pushed['backup']}: uploaded {up['files']} files "
                   f"({_human(up['bytes'])}), copied in the store {inside['files']} ({_human(inside['bytes'])})"
                   + (f"; removed {', '.join(pushed['removed'])}" if pushed["removed"] else ""))


@backup_group.command("verify", epilog=example(
    "cumulo backup verify /var/lib/cumulo-backups                  # the newest backup there",
    "cumulo backup verify --key-file /root/cumulo-backup.key /mnt/b/cumulo-backup-2026...",
    "cumulo backup verify --checksums-only /var/lib/cumulo-backups  # only the files' sha256",
    "cumulo backup verify --from-container cumulo-backups --os-cloud offsite  # the newest there"))
@click.argument("backup_dir", required=False)
@click.option("--from-container", "from_container", metavar="NAME", help="Verify a backup of this container "
              "(BACKUP_DIR: its name there; default the newest), downloaded into a scratch directory first.")
@CONTAINER_OPTIONS[0]
@click.option("--key-file", type=click.Path(dir_okay=False), help="The key the backup's secrets were "
              "encrypted with (default $CUMULO_BACKUP_KEY_FILE or ~/.config/cumulo/backup.key).")
@click.option("--checksums-only", is_flag=True, help="Check the manifest and the files' sha256; restore nothing.")
@click.option("--keep-scratch", is_flag=True, help="Leave the scratch state directory (for a look at its log).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as one JSON document.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def backup_verify(ctx: click.Context, backup_dir: str | None, from_container: str | None, os_cloud: str,
                  key_file: str | None, checksums_only: bool, keep_scratch: bool, as_json: bool,
                  quiet: bool) -> None:
    """Prove that BACKUP (a backup, or the newest in a directory of backups) restores: check the
    manifest and every file's sha256, restore it into a scratch directory, start that cloud on
    spare ports (its own database, in-process bus, no dataplane, no QEMU: nothing reaches the live
    cloud), and compare each resource type's ids through the APIs with those the backup recorded.

    Exit status 0 when identical, 1 for a damaged file or a difference (each one listed)."""
    import json

    from cumulo.ops.backup import BackupError, check, read_manifest, resolve
    from cumulo.ops.verify import verify

    downloaded = None
    try:
        if from_container:
            with Bar("download", quiet) as progress:
                path = downloaded = _pulled(_load(ctx), os_cloud, from_container, backup_dir, progress)
        else:
            path = resolve(Path(_existing_dir(backup_dir)))
        manifest = read_manifest(path)
        if checksums_only:
            with Bar("verify", quiet) as progress:
                check(path, manifest, progress)
            click.echo(f"{path}: {len(manifest['files'])} files whole, schema {manifest['schema_revision']}, "
                       f"made {manifest['created']} by cumulo {manifest['cumulo_version']}")
            return
        cfg = _load(ctx)
        key, _ = _key(key_file, create=False)
        with Bar("verify", quiet) as progress:
            report = verify(path, cfg, key, keep_scratch=keep_scratch, progress=progress)
    except BackupError as exc:
        click.echo(f"cumulo backup verify: {exc}", err=True)
        sys.exit(1)
    finally:
        if downloaded is not None:
            import shutil

            shutil.rmtree(downloaded.parent, ignore_errors=True)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(f"{path}: {len(manifest['files'])} files whole; restored and started in "
                   f"{report['start_seconds']} s; through the APIs:")
        for resource, r in report["resources"].items():
            if "skipped" in r:
                click.echo(f"  {resource:16s} skipped ({r['skipped']})")
                continue
            state = "identical" if not (r["missing"] or r["extra"]) else \
                f"DIFFERENT: missing {', '.join(r['missing'][:5]) or '-'}; extra {', '.join(r['extra'][:5]) or '-'}"
            click.echo(f"  {resource:16s} {r['backup']:6d} in the backup, {r['restored']:6d} restored: {state}")
        click.echo("identical" if report["identical"] else "the restored cloud differs from the backup")
    sys.exit(0 if report["identical"] else 1)


@click.command("restore", short_help="Restore a backup into a stopped (or new) state directory.", epilog=example(
    "cumulo restore /var/lib/cumulo-backups                 # the newest backup there",
    "cumulo restore --state-dir /srv/cumulo --key-file /root/cumulo-backup.key /mnt/b/cumulo-backup-2026...",
    "cumulo restore --force /var/lib/cumulo-backups && cumulo up",
    "cumulo restore --from-container cumulo-backups --os-cloud offsite --state-dir /srv/cumulo"))
@click.argument("backup_dir", required=False)
@click.option("--from-container", "from_container", metavar="NAME", help="Restore a backup of this container "
              "(BACKUP_DIR: its name there; default the newest), downloaded into a scratch directory first.")
@CONTAINER_OPTIONS[0]
@click.option("--state-dir", type=click.Path(file_okay=False),
              help="Restore into this state directory (default: the configured one).")
@click.option("--key-file", type=click.Path(dir_okay=False), help="The key the backup's secrets were "
              "encrypted with (default $CUMULO_BACKUP_KEY_FILE or ~/.config/cumulo/backup.key).")
@click.option("--force", is_flag=True, help="Replace the cloud already in the state directory (its database, "
              "keys, images, volumes, objects).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def restore_command(ctx: click.Context, backup_dir: str | None, from_container: str | None, os_cloud: str,
                    state_dir: str | None, key_file: str | None, force: bool, quiet: bool) -> None:
    """Restore BACKUP (a backup directory, or the newest backup in a directory of backups).

    First checks the manifest and every file's sha256 (a damaged file is named and nothing is
    written), refuses while a cloud runs on the state directory or database, and refuses a state
    directory that already holds a cloud unless --force.  Then restores the token keys and
    secrets, the configuration, the image stores, ring and objects, the volumes, the instances,
    the fake nodes' state, and the database last.  `cumulo up` then brings the cloud back as it
    was (it migrates the schema first when the backup's is older): tokens issued before the
    backup still validate.  Servers whose guests ran are started again as their compute nodes
    first report; the others stay SHUTOFF."""
    from cumulo.ops.backup import BackupError, resolve, restore

    cfg = _load(ctx, state_dir)
    key, path = _key(key_file, create=False)
    downloaded = None
    try:
        with Bar("restore", quiet) as progress:
            if from_container:
                backup_path = downloaded = _pulled(cfg, os_cloud, from_container, backup_dir, progress)
            else:
                backup_path = resolve(Path(_existing_dir(backup_dir)))
            source = (f"--from-container {from_container} --os-cloud {os_cloud} {backup_path.name}"
                      if from_container else None)  # what a restore cut short names to run again
            result = restore(backup_path, cfg, key=key, force=force, progress=progress, source=source)
    except BackupError as exc:
        if key is None and path is not None and "encrypted" in str(exc):
            exc = BackupError(f"{exc} ({path} does not exist)")
        raise click.ClickException(str(exc)) from None
    finally:
        if downloaded is not None:
            import shutil

            shutil.rmtree(downloaded.parent, ignore_errors=True)
    counts = ", ".join(f"{n} {kind}" for kind, n in result["restored"].items())
    click.echo(f"restored {result['backup']} into {result['state_dir']} ({counts}); schema "
               f"{result['schema_revision']}. Start it with `cumulo up`.")
