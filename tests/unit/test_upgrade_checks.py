"""The upgrade checks' verdicts without a cloud: agents' versions, the schema revision, the
configuration file's renamed, removed and unknown options, the exit code, the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from cumulo.core import config as configmod
from cumulo.ops.upgrade import (
    FAILURE,
    SUCCESS,
    WARNING,
    Result,
    UpgradeRefused,
    check_agents,
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
