"""The upgrade checks' verdicts without a cloud: agents' versions, the schema revision, the
configuration file's renamed, removed and unknown options, the exit code, the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from cumulo.core import config as configmod
from cumulo.ops.upgrade import (
    DATA_MIGRATIONS,
    FAILURE,
    RENAMED,
    SUCCESS,
    WARNING,
    DataMigration,
    Result,
    UpgradeRefused,
    check_agents,
    check_data_migrations,
    check_schema,
    config_findings,
    exit_code,
    known_revisions,
    preflight,
    table,
    translated,
)


def agents(*versions: str | None) -> list[dict[str, str | None]]:
    return [{"kind": "compute", "host": f"n{i}", "version": v} for i, v in enumerate(versions)]


def test_agents_on_the_controllers_minor_release_succeed() -> None:
    assert check_agents(agents("0.2.0", "0.2.7"), "0.2.3").result == SUCCESS


def test_one_minor_behind_is_a_warning_more_is_a_failure() -> None:
    one = check_agents(agents("0.1.4"), "0.2.0")
    assert one.result == WARNING and "n0 runs 0.1.4, one minor release behind 0.2.0" in one.details
    two = check_agents(agents("0.1.4", "0.0.1"), "0.2.0")
    assert two.result == FAILURE and "n1 runs 0.0.1, more than one minor release behind" in two.details
    assert check_agents(agents("1.9.0"), "2.0.0").result == FAILURE  # another major release


def test_an_agent_newer_than_the_controller_fails() -> None:
    result = check_agents(agents("0.3.0"), "0.2.0")
    assert result.result == FAILURE and "upgrade the controllers first" in result.details


def test_an_agent_without_a_version_is_named() -> None:
    result = check_agents([{"kind": "network", "host": "net1", "version": None}], "0.2.0")
    assert result.result == WARNING and "network agent on net1 reports no version" in result.details


def test_no_version_column_yet_asks_for_db_sync() -> None:
    result = check_agents(None, "0.2.0")
    assert result.result == WARNING and "cumulo db sync" in result.details


def test_schema_verdicts() -> None:
    order = known_revisions()
    assert check_schema(order[-1]).result == SUCCESS
    behind = check_schema(order[-3])
    assert behind.result == WARNING and "2 migration(s) behind" in behind.details
    assert "`cumulo db sync`" in behind.details
    ahead = check_schema("0999_from_the_future")
    assert ahead.result == FAILURE and "this code is older than the database" in ahead.details
    assert check_schema(None).result == FAILURE


def test_renamed_removed_and_unknown_options_are_named() -> None:
    data = {"state_dir": "/srv", "api": {"workers": 2, "old_workers": 3},
            "compute": {"fake_node_count": 2}, "gone": {"x": 1}}
    renamed = {"compute.fake_node_count": "compute.fake_nodes", "api.old_workers": None}
    found = config_findings(data, renamed)
    assert "[compute] fake_node_count is now [compute] fake_nodes: rename it" in found
    assert "[api] old_workers was removed: delete it" in found
    assert "[gone] x is not an option of this version: `cumulo up` refuses it" in found
    assert len(found) == 3  # state_dir and [api] workers are current
    # what the other checks read: the new names, nothing unknown; a value set under the new name wins
    assert translated(data, renamed) == {"state_dir": "/srv", "api": {"workers": 2}, "compute": {"fake_nodes": 2}}
    for both in ({"fake_nodes": 1, "fake_node_count": 5}, {"fake_node_count": 5, "fake_nodes": 1}):
        assert translated({"compute": both}, renamed) == {"compute": {"fake_nodes": 1}}


def test_the_worst_result_is_the_exit_code_and_the_table_shows_each() -> None:
    results = [Result("A", SUCCESS, "fine"), Result("B", WARNING, "look"), Result("C", SUCCESS)]
    assert exit_code(results) == 1 and exit_code(results + [Result("D", FAILURE)]) == 2 and exit_code([]) == 0
    text = table(results)
    assert "Check: B" in text and "Result: Warning" in text and "Details: None" in text
    assert all(len(line) == 100 for line in text.splitlines())


def test_upgrade_refuses_a_failed_check_unless_forced(tmp_path: Path) -> None:
    cfg = configmod.load(None, env={}, state_dir=str(tmp_path))
    failed = [Result("Agent versions", FAILURE, "compute agent on n1 runs 0.0.1"), Result("Database schema", WARNING)]
    with pytest.raises(UpgradeRefused, match="compute agent on n1 runs 0.0.1.*--force"):
        preflight(cfg, failed)
    preflight(cfg, failed, force=True)
    preflight(cfg, [Result("Database schema", WARNING, "1 migration(s) behind")])  # what the upgrade is for


# ---- data migrations, and the table of renamed options ----

def data_db(tmp_path: Path, revision: str, rows: list[tuple[str, str | None]]) -> configmod.Config:
    import sqlite3

    db = tmp_path / "cumulo.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    con.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
    con.execute("CREATE TABLE thing (id TEXT PRIMARY KEY, old_blob TEXT, new_blob TEXT)")
    con.executemany("INSERT INTO thing VALUES (?, 'x', ?)", rows)
    con.commit()
    con.close()
    return configmod.load(None, env={"CUMULO_STATE_DIR": str(tmp_path), "CUMULO_DATABASE__URL": f"sqlite:///{db}"})


def migration(contract: str | None = None) -> DataMigration:
    return DataMigration("thing.old_blob -> thing.new_blob", expand=known_revisions()[-2],
                         pending="SELECT COUNT(*) FROM thing WHERE new_blob IS NULL",
                         fix="cumulo db migrate-data", contract=contract)


def test_no_registered_data_migration_is_a_success(tmp_path: Path) -> None:
    head = known_revisions()[-1]
    cfg = data_db(tmp_path, head, [("a", None)])
    assert DATA_MIGRATIONS == ()  # up to 0.2.0 every change was expand only
    found = check_data_migrations(cfg, head)
    assert found.result == SUCCESS and "no online data migration waits" in found.details


def test_rows_left_to_migrate_warn_until_the_contract_is_this_codes(tmp_path: Path) -> None:
    previous, head = known_revisions()[-2:]
    cfg = data_db(tmp_path, previous, [("a", None), ("b", None), ("c", "moved")])
    later = check_data_migrations(cfg, previous, (migration(contract=None),))
    assert later.result == WARNING
    assert "thing.old_blob -> thing.new_blob: 2 row(s) not migrated yet: run `cumulo db migrate-data`" \
        in later.details
    now = check_data_migrations(cfg, previous, (migration(contract=head),))
    assert now.result == FAILURE and f"this code's migration {head} removes their old place" in now.details
    # not expanded yet (the schema is older than the migration that adds the new place): nothing to count
    older = check_data_migrations(cfg, known_revisions()[-3], (migration(contract=head),))
    assert older.result == SUCCESS


def test_every_row_migrated_is_a_success_and_a_contracted_one_is_not_counted(tmp_path: Path) -> None:
    previous, head = known_revisions()[-2:]
    cfg = data_db(tmp_path, previous, [("a", "moved")])
    assert check_data_migrations(cfg, previous, (migration(contract=head),)).result == SUCCESS
    (tmp_path / "h").mkdir()
    cfg = data_db(tmp_path / "h", head, [])
    gone = check_data_migrations(cfg, head, (DataMigration("x", known_revisions()[-2], "SELECT no_such_column",
                                                            "fix", contract=head),))
    assert gone.result == SUCCESS  # contracted: the old place is gone, its query is not run


def test_the_renamed_table_names_only_old_options_and_current_targets() -> None:
    """RENAMED is empty up to 0.2.0; any row added later must name an option this code no longer
    has, and a new name this code has (or None: removed)."""
    defaults = configmod.as_dict(configmod.Config())

    def known(name: str) -> bool:
        node: object = defaults
        for part in name.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return not isinstance(node, dict)

    for old, new in RENAMED.items():
        assert not known(old), f"{old} is renamed but is still an option"
        assert new is None or known(new), f"{old} is renamed to {new}, which is not an option"
    assert config_findings({"compute": {"fake_nodes": 2}}) == []  # a current option is never named
