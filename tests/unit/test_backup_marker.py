"""A restore cut short leaves <state_dir>/.restore-incomplete: `cumulo up` refuses that state
directory naming the command that finishes the job, `cumulo doctor` reports it as a failure, and
the restore run again removes the marker so the cloud starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from cumulo.cli.doctor import FAILURE, Doctor
from cumulo.cli.main import main
from cumulo.core import config as configmod
from cumulo.ops import backup as ops
from tests.unit.test_backup import make_state


def interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, configmod.Config]:
    cfg = make_state(tmp_path / "state")
    manifest = ops.backup(cfg, tmp_path / "b", key=None)
    backup = tmp_path / "b" / manifest["name"]
    target = configmod.load(None, env={"CUMULO_STATE_DIR": str(tmp_path / "new")})

    def killed(*_args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(ops, "_restore_database", killed)
        with pytest.raises(KeyboardInterrupt):
            ops.restore(backup, target)
    assert (target.state_path / ops.RESTORING).is_file()
    return backup, target


def test_up_refuses_a_state_dir_whose_restore_did_not_finish(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    backup, target = interrupted(tmp_path, monkeypatch)
    for name in [n for n in os.environ if n.startswith("CUMULO_")]:
        monkeypatch.delenv(name)
    result = CliRunner().invoke(main, ["--state-dir", str(target.state_path), "up", "--quiet"])
    assert result.exit_code == 1, result.output
    assert "did not finish" in result.output and str(target.state_path / ops.RESTORING) in result.output
    assert f"restore {backup.resolve()}" in result.output  # the command that finishes it, with the backup
    assert not (target.state_path / "status.json").exists() and not (target.state_path / "cumulo.log").exists()
    ops.restore(backup, target)  # run again: done, the marker gone, nothing refuses any more
    assert ops.restore_incomplete(target.state_path) is None


def test_doctor_reports_the_restore_cut_short_as_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backup, target = interrupted(tmp_path, monkeypatch)
    doctor = Doctor(target)
    doctor.restore()
    (finding,) = doctor.findings
    assert finding.check == "restore" and finding.verdict == FAILURE
    assert finding.looked_at == str(target.state_path / ops.RESTORING)
    assert "did not finish" in finding.detail and f"restore {backup.resolve()}" in finding.fix
    ops.restore(backup, target)
    again = Doctor(target)
    again.restore()
    assert again.findings == []


def test_an_old_marker_without_the_backup_path_still_names_the_backup(tmp_path: Path) -> None:
    (tmp_path / ops.RESTORING).write_text("cumulo-backup-20261204T000000000000Z\n")
    why = ops.restore_incomplete(tmp_path)
    assert why and "<the backup cumulo-backup-20261204T000000000000Z>" in why
