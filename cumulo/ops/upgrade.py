"""Upgrades: ``cumulo upgrade check`` (is this cloud ready for the code installed here?) and
``cumulo upgrade`` (back up, migrate the schema, say what to restart in which order).

The checks are what ``nova-status upgrade check`` does for Nova, with its result codes
(oslo.upgradecheck): each check ends Success, Warning or Failure with its details, and the
command exits with the worst of them: 0 all succeeded, 1 a warning (look before going on),
2 a failure (do not go on); 255 when a check itself broke.

* **Database schema**: the database's Alembic revision against this code's newest migration.
  Behind is a warning (``cumulo db sync``, or ``cumulo upgrade``, migrates it); a revision this
  code does not know means the database was migrated by newer code: a failure.
* **Data migrations**: rows still in the old place of an expand -> migrate -> contract change
  (``DATA_MIGRATIONS``): a warning while the contract step is a later release's, a failure when
  this code's pending migrations hold the contract (``cumulo db sync`` would drop their data).
* **Agent versions**: the code version compute nodes, volume nodes and network agents last
  reported (over the bus, since migration 0032).  One minor release behind the controller is a
  warning (it keeps working: the bus reads the previous message version), more is a failure, an
  agent newer than the controller is a failure (controllers are upgraded first).
* **Configuration options**: the configuration file read raw, each option this project renamed
  or removed named with what replaces it (``RENAMED``), and any other unknown option (which
  ``cumulo up`` refuses).
* **Running cloud**: a cloud running on this state directory (``status.json``) of another version
  than this code: a warning, restart it after the upgrade.

``cumulo upgrade`` refuses while a cloud runs on the state directory: the embedded cloud runs its
controllers and agents in the one ``cumulo up`` process the operator started, which this command
cannot start again.  It runs the checks, takes a backup (``cumulo.ops.backup``), migrates the
schema and records what it did in ``<state-dir>/last-upgrade.json``; a rollback restores that
backup with ``cumulo restore --force`` and the previous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cumulo.core import config as configmod
from cumulo.core.version import code_version, minors_behind

SUCCESS, WARNING, FAILURE = "Success", "Warning", "Failure"
EXIT_CODES = {SUCCESS: 0, WARNING: 1, FAILURE: 2}
ERROR_EXIT = 255  # a check raised: the result is unknown
AGENT_VERSIONS_REVISION = "0032_agent_versions"  # the migration that gave agents' rows a version

# Options this project renamed or removed: "section.key" (top-level keys without a section) ->
# the new "section.key", or None when the option is gone with nothing in its place.  Up to 0.1.0
# no option was renamed or removed (git log -p cumulo/core/config.py); each change adds a row
# here in the commit that makes it.
RENAMED: dict[str, str | None] = {}


@dataclass(frozen=True)
class DataMigration:
    """One online data migration of an expand -> migrate -> contract schema change: ``expand``
    (a migration) adds the new place, the running code moves rows there (or the operator's
    ``fix`` does, online), and ``contract`` (a migration of a later release; None until it is
    written) removes the old place, which needs ``pending`` to count 0 first."""

    name: str  # what moves, in words
    expand: str  # the revision that added the new place: the check counts once the schema has it
    pending: str  # SQL: SELECT COUNT(*) of the rows still to migrate
    fix: str  # the command that migrates them, online
    contract: str | None = None


# The online data migrations this code knows.  Up to 0.2.0 every schema change was expand only
# (new tables, nullable columns that the old code leaves NULL, e.g. 0032's agents' versions): no
# row waits for a migration.  A change that moves data adds a row here in the commit that expands.
DATA_MIGRATIONS: tuple[DataMigration, ...] = ()


@dataclass
class Result:
    check: str
    result: str  # SUCCESS, WARNING or FAILURE
    details: str = ""


def exit_code(results: list[Result]) -> int:
    return max((EXIT_CODES[r.result] for r in results), default=0)


# ---- configuration ----

def config_file(path: str | None, state_dir: str | None, env: dict[str, str] | None = None) -> Path | None:
    """The file ``configmod.load`` reads: --config, $CUMULO_CONFIG, <state-dir>/cumulo.toml,
    /etc/cumulo/cumulo.toml (the first that exists)."""
    env = dict(os.environ) if env is None else env
    state = state_dir or env.get("CUMULO_STATE_DIR") or configmod.Config().state_dir
    for candidate in (path, env.get("CUMULO_CONFIG"), Path(state) / "cumulo.toml", "/etc/cumulo/cumulo.toml"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _keys(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Every option of a parsed file as ("section.key", value), sections walked."""
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(_keys(value, f"{name}."))
        else:
            out.append((name, value))
    return out


def _known(name: str, defaults: dict[str, Any]) -> bool:
    node: Any = defaults
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return not isinstance(node, dict)


def _shown(name: str) -> str:
    """An option as an operator writes it: [section] key (key for a top-level one)."""
    section, _, key = name.rpartition(".")
    return f"[{section}] {key}" if section else key


def config_findings(data: dict[str, Any], renamed: dict[str, str | None] | None = None) -> list[str]:
    """What in a parsed configuration file is renamed, removed or unknown, in words."""
    renamed = RENAMED if renamed is None else renamed
    defaults = configmod.as_dict(configmod.Config())
    found = []
    for name, _value in _keys(data):
        if name in renamed:
            new = renamed[name]
            found.append(f"{_shown(name)} was removed: delete it" if new is None
                         else f"{_shown(name)} is now {_shown(new)}: rename it")
        elif not _known(name, defaults):
            found.append(f"{_shown(name)} is not an option of this version: `cumulo up` refuses it")
    return found


def translated(data: dict[str, Any], renamed: dict[str, str | None] | None = None) -> dict[str, Any]:
    """The file's options under their new names, removed and unknown ones left out: what the
    other checks read the cloud's settings from when the file itself no longer loads."""
    renamed = RENAMED if renamed is None else renamed
    defaults = configmod.as_dict(configmod.Config())
    out: dict[str, Any] = {}
    # the options under their current names first: one also set under its old name keeps its value
    for name, value in sorted(_keys(data), key=lambda item: item[0] in renamed):
        name = renamed.get(name, name) or ""
        if not name or not _known(name, defaults):
            continue
        node = out
        *sections, key = name.split(".")
        for part in sections:
            node = node.setdefault(part, {})
        node.setdefault(key, value)
    return out


def load_config(path: str | None, state_dir: str | None,
                renamed: dict[str, str | None] | None = None) -> tuple[configmod.Config, Path | None, Any]:
    """The configuration (read leniently: a renamed option under its new name), the file, and
    the file parsed raw (or the error that kept it from parsing)."""
    source = config_file(path, state_dir)
    raw: Any = {}
    if source is not None:
        try:
            raw = tomllib.loads(source.read_text())
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
            raw = exc
    try:
        return configmod.load(path, state_dir=state_dir), source, raw
    except configmod.ConfigError:
        if not isinstance(raw, dict):
            raise
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cumulo-upgrade-") as tmp:
        lenient = Path(tmp) / "cumulo.toml"
        lenient.write_text(configmod.to_toml(translated(raw, renamed)))
        cfg = configmod.load(lenient, state_dir=state_dir)
    cfg.source = str(source)
    return cfg, source, raw


def check_config(source: Path | None, raw: Any, renamed: dict[str, str | None] | None = None) -> Result:
    name = "Configuration options"
    if source is None:
        return Result(name, SUCCESS, "no configuration file (defaults and CUMULO_* variables)")
    if not isinstance(raw, dict):
        return Result(name, FAILURE, f"{source} does not parse: {raw}")
    found = config_findings(raw, renamed)
    if found:
        return Result(name, FAILURE, f"{source}: " + "; ".join(found))
    return Result(name, SUCCESS, f"{source}: every option is current")


# ---- the database ----

def code_head() -> str:
    from alembic.script import ScriptDirectory

    from cumulo.core.db import MIGRATIONS

    return ScriptDirectory(str(MIGRATIONS)).get_current_head() or ""


def known_revisions() -> list[str]:
    """This code's migrations, oldest first."""
    from alembic.script import ScriptDirectory

    from cumulo.core.db import MIGRATIONS

    return [rev.revision for rev in reversed(list(ScriptDirectory(str(MIGRATIONS)).walk_revisions()))]


async def _read_database(url: str, agents: bool) -> tuple[str | None, list[dict[str, Any]]]:
    from sqlalchemy import text

    from cumulo.core.db import Database

    database = Database(url)
    try:
        revision = await database.revision()
        rows: list[dict[str, Any]] = []
        if agents:
            queries = {
                "compute": "SELECT host, version FROM compute_service WHERE \"binary\" = 'nova-compute'",
                "volume": "SELECT host, version FROM volume_pool",
                "network": "SELECT DISTINCT host, version FROM network_agent",
            }
            async with database.engine.connect() as conn:
                for kind, query in queries.items():
                    for host, version in (await conn.execute(text(query))).all():
                        rows.append({"kind": kind, "host": host, "version": version})
        return revision, rows
    finally:
        await database.close()


def read_database(cfg: configmod.Config) -> tuple[str | None, list[dict[str, Any]] | None]:
    """The schema revision and (when the schema has the column) the agents' reported versions."""
    revision, _ = asyncio.run(_read_database(cfg.database_url, agents=False))
    order = known_revisions()
    if revision in order and order.index(revision) >= order.index(AGENT_VERSIONS_REVISION):
        return asyncio.run(_read_database(cfg.database_url, agents=True))
    return revision, None


def check_schema(revision: str | None) -> Result:
    name, head, order = "Database schema", code_head(), known_revisions()
    if revision is None:
        return Result(name, FAILURE, f"the database is empty: run `cumulo db sync` (this code's head is {head})")
    if revision == head:
        return Result(name, SUCCESS, f"at {head}, this code's newest migration")
    if revision not in order:
        return Result(name, FAILURE, f"the database is at {revision}, which this code does not know: this code "
                                     f"is older than the database (newest here {head}); install the newer code "
                                     f"or restore the backup taken before the upgrade")
    pending = order[order.index(revision) + 1:]
    return Result(name, WARNING, f"at {revision}, {len(pending)} migration(s) behind this code ({head}): run "
                                 f"`cumulo db sync` (or `cumulo upgrade`, which backs up first)")


def check_agents(rows: list[dict[str, Any]] | None, controller: str | None = None) -> Result:
    name, controller = "Agent versions", controller or code_version()
    if rows is None:
        return Result(name, WARNING, f"the schema is from before {AGENT_VERSIONS_REVISION}: agents' versions "
                                     f"are not recorded yet; run `cumulo db sync`, then check again once "
                                     f"the agents have reported")
    if not rows:
        return Result(name, SUCCESS, "no agent has reported yet")
    failures, warnings = [], []
    for row in sorted(rows, key=lambda r: (r["kind"], r["host"])):
        who, version = f"{row['kind']} agent on {row['host']}", row["version"]
        behind = minors_behind(version, controller)
        if version is None:
            warnings.append(f"{who} reports no version (code from before versioned reports): upgrade it")
        elif behind is None:
            warnings.append(f"{who} reports version {version!r}, which this code cannot read")
        elif behind > 1:
            failures.append(f"{who} runs {version}, more than one minor release behind {controller}: "
                            f"upgrade it before the controllers (the bus reads only the previous version)")
        elif behind == 1:
            warnings.append(f"{who} runs {version}, one minor release behind {controller}: it keeps "
                            f"working; upgrade it after the controllers")
        elif behind < 0:
            failures.append(f"{who} runs {version}, newer than this controller code ({controller}): "
                            f"upgrade the controllers first")
    if failures or warnings:
        return Result(name, FAILURE if failures else WARNING, "; ".join(failures + warnings))
    return Result(name, SUCCESS, f"{len(rows)} agent(s), all on {controller}'s minor release")


async def _count_pending(url: str, migrations: list[DataMigration]) -> list[int]:
    from sqlalchemy import text

    from cumulo.core.db import Database

    database = Database(url)
    try:
        async with database.engine.connect() as conn:
            return [int((await conn.execute(text(m.pending))).scalar() or 0) for m in migrations]
    finally:
        await database.close()


def check_data_migrations(cfg: configmod.Config, revision: str | None,
                          migrations: tuple[DataMigration, ...] | None = None) -> Result:
    """Rows an online data migration has not moved yet (see ``DataMigration``)."""
    name, order = "Data migrations", known_revisions()
    migrations = DATA_MIGRATIONS if migrations is None else migrations
    if revision not in order:
        return Result(name, WARNING, "not checked: the schema revision is not one of this code's (see the "
                                     "schema check)")
    done = order[:order.index(revision) + 1]
    applicable = [m for m in migrations if m.expand in done and m.contract not in done]  # contracted: gone
    if not applicable:
        return Result(name, SUCCESS, f"no online data migration waits at {revision} ({len(migrations)} known)")
    counts = asyncio.run(_count_pending(cfg.database_url, applicable))
    failures, warnings = [], []
    for m, n in zip(applicable, counts, strict=True):
        if not n:
            continue
        if m.contract and m.contract in order and m.contract not in done:
            failures.append(f"{m.name}: {n} row(s) not migrated, and this code's migration {m.contract} removes "
                            f"their old place: run `{m.fix}` with the old code first, then upgrade")
        else:
            warnings.append(f"{m.name}: {n} row(s) not migrated yet: run `{m.fix}` before the release that "
                            f"contracts them")
    if failures or warnings:
        return Result(name, FAILURE if failures else WARNING, "; ".join(failures + warnings))
    return Result(name, SUCCESS, f"{len(applicable)} online data migration(s), every row migrated")


# ---- a running cloud ----

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_status(cfg: configmod.Config) -> dict[str, Any] | None:
    """status.json of a cloud running on this state directory, or None."""
    path = cfg.state_path / "status.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        status = json.loads(path.read_text())
        if _pid_alive(int(status["pid"])):
            return dict(status)
    return None


def check_running(cfg: configmod.Config) -> Result:
    name, status = "Running cloud", running_status(cfg)
    if status is None:
        return Result(name, SUCCESS, f"no cloud runs on {cfg.state_path}")
    version = status.get("version")
    if version == code_version():
        return Result(name, SUCCESS, f"the cloud running on {cfg.state_path} (pid {status['pid']}) is this "
                                     f"version ({version})")
    return Result(name, WARNING, f"the cloud running on {cfg.state_path} (pid {status['pid']}) is "
                                 f"{version or 'of a version from before 0.2 (its status.json names none)'}, "
                                 f"this code is {code_version()}: restart it after the upgrade")


# ---- all of them ----

def run_checks(path: str | None, state_dir: str | None, renamed: dict[str, str | None] | None = None,
               migrations: tuple[DataMigration, ...] | None = None) -> tuple[list[Result], configmod.Config]:
    """Every check, in order; a check that raises raises (the caller exits 255)."""
    cfg, source, raw = load_config(path, state_dir, renamed)
    results = [check_config(source, raw, renamed)]
    try:
        revision, rows = read_database(cfg)
    except Exception as exc:  # noqa: BLE001 - an unreachable database is a finding, not a crash
        detail = f"cannot read the database ({type(exc).__name__}: {exc})"
        results += [Result("Database schema", FAILURE, detail), Result("Data migrations", FAILURE, detail),
                    Result("Agent versions", FAILURE, detail)]
    else:
        results += [check_schema(revision)]
        if revision is None:
            results.append(Result("Data migrations", FAILURE, "the database is empty"))
        else:
            results.append(check_data_migrations(cfg, revision, migrations))
        results.append(check_agents(rows))
    results.append(check_running(cfg))
    return results, cfg


def as_json(results: list[Result]) -> dict[str, Any]:
    return {"version": code_version(), "code": exit_code(results), "checks": [asdict(r) for r in results]}


def table(results: list[Result], width: int = 100) -> str:
    """The results as a box, one check after another (as nova-status prints them)."""
    import textwrap

    inner = width - 4
    rule = "+" + "-" * (width - 2) + "+"
    lines = [rule, f"| {'Upgrade Check Results':<{inner}} |", rule.replace("-", "=")]
    for r in results:
        for label, text in (("Check", r.check), ("Result", r.result), ("Details", r.details or "None")):
            wrapped = textwrap.wrap(f"{label}: {text}", inner, subsequent_indent="  ") or [""]
            lines += [f"| {line:<{inner}} |" for line in wrapped]
        lines.append(rule)
    return "\n".join(lines)


# ---- cumulo upgrade ----

class UpgradeRefused(Exception):
    """Why ``cumulo upgrade`` did not start (nothing was changed)."""


RESTART_ORDER = (
    "1. the controllers: `cumulo up` on each controller machine (with several, every one on this code);",
    "2. then the agents, one node at a time (compute, volume, network agents): an agent one minor "
    "release behind keeps working meanwhile, and running guests are untouched (their QEMU processes "
    "outlive the agent, which adopts them when it starts).",
)


def preflight(cfg: configmod.Config, results: list[Result], force: bool = False) -> None:
    """``UpgradeRefused`` while a cloud runs here, or when a check failed (unless ``force``)."""
    from cumulo.ops import backup as backupmod

    why = backupmod.running(cfg)
    if why:
        raise UpgradeRefused(f"{why}. `cumulo upgrade` does not stop or start a cloud: stop it, run "
                             f"`cumulo upgrade`, then start again in order: " + " ".join(RESTART_ORDER))
    blocking = [r for r in results if r.result == FAILURE]  # a schema behind is a warning: what this fixes
    if blocking and not force:
        raise UpgradeRefused("the upgrade check failed: " + "; ".join(f"{r.check}: {r.details}" for r in blocking)
                             + " (fix it, or --force)")


def upgrade(cfg: configmod.Config, results: list[Result], backup_root: Path, key: bytes | None,
            include: tuple[str, ...], force: bool = False, progress: Any = None,
            say: Callable[[str], None] = print) -> dict[str, Any]:
    """Back up, migrate, record; ``results`` are the checks' (run just before)."""
    from cumulo.core.db import Database
    from cumulo.ops import backup as backupmod

    preflight(cfg, results, force)  # again: the cloud may have started since
    before = asyncio.run(_read_database(cfg.database_url, agents=False))[0]
    say(f"backing up to {backup_root} first")
    manifest = backupmod.backup(cfg, backup_root, include, key=key, progress=progress)
    taken = backup_root / manifest["name"]
    say(f"backup {taken} (schema {manifest['schema_revision']})")

    async def migrate() -> str | None:
        database = Database(cfg.database_url)
        try:
            await database.migrate()
            return await database.revision()
        finally:
            await database.close()

    after = asyncio.run(migrate())
    record = {"at": dt.datetime.now(dt.UTC).isoformat(), "version": code_version(), "backup": str(taken),
              "schema_before": before, "schema_after": after, "encrypted": key is not None}
    path = cfg.state_path / "last-upgrade.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    os.chmod(path, 0o600)
    return record
