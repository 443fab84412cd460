"""cumulo.ops.backup without a running cloud: retention, the manifest's and the key's checks, secrets
never in the clear unless told, no half-written backup left, a newer schema refused, --force."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from cumulo.core import config as configmod
from cumulo.ops import backup as ops
from cumulo.ops.backup import BackupError


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from cumulo.core.db import MIGRATIONS

    return str(ScriptDirectory(str(MIGRATIONS)).get_current_head())


def make_state(state: Path, revision: str | None = None) -> configmod.Config:
    (state / "fernet-keys").mkdir(parents=True)
    (state / "fernet-keys" / "0").write_text("staged-key")
    (state / "fernet-keys" / "1").write_text("primary-key")
    (state / "admin-password").write_text("hunter2-admin\n")
    (state / "images").mkdir()
    (state / "images" / "img-1").write_bytes(b"image bytes " * 1000)
    con = sqlite3.connect(state / "cumulo.db")
    con.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    con.execute("INSERT INTO alembic_version VALUES (?)", (revision or head_revision(),))
    con.execute("CREATE TABLE identity_project (id VARCHAR(64) PRIMARY KEY, name TEXT)")
    con.executemany("INSERT INTO identity_project VALUES (?, ?)", [("p1", "admin"), ("p2", "demo")])
    con.commit()
    con.close()
    return configmod.load(None, env={"CUMULO_STATE_DIR": str(state)})


@pytest.fixture
def cfg(tmp_path: Path) -> configmod.Config:
    return make_state(tmp_path / "state")


def test_keep_removes_the_oldest_and_linked_files_stay_readable(cfg: configmod.Config, tmp_path: Path) -> None:
    key = Fernet.generate_key()
    names = [ops.backup(cfg, tmp_path / "b", key=key, keep=2)["name"] for _ in range(3)]
    left = ops.backups_in(tmp_path / "b")
    assert [p.name for p in left] == names[1:]
    newest = ops.read_manifest(left[-1])
    image = next(f for f in newest["files"] if f["kind"] == "images")
    assert image["from"] == names[0]  # linked to the first backup's copy, which --keep removed
    ops.check(left[-1], newest)  # the hard link keeps the bytes
    assert (left[-1] / image["path"]).read_bytes() == b"image bytes " * 1000


def test_a_damaged_manifest_is_refused(cfg: configmod.Config, tmp_path: Path) -> None:
    manifest = ops.backup(cfg, tmp_path / "b", key=Fernet.generate_key())
    path = tmp_path / "b" / manifest["name"] / "manifest.json"
    path.write_text(path.read_text().replace('"p1"', '"p9"'))
    with pytest.raises(BackupError, match="manifest.json: corrupted"):
        ops.read_manifest(path.parent)


def test_secrets_are_encrypted_and_the_wrong_key_is_refused(cfg: configmod.Config, tmp_path: Path) -> None:
    key = Fernet.generate_key()
    manifest = ops.backup(cfg, tmp_path / "b", key=key)
    backup = tmp_path / "b" / manifest["name"]
    for f in manifest["files"]:
        if f["kind"] in ("keys", "secrets"):
            data = (backup / f["path"]).read_bytes()
            assert f["encrypted"] and b"hunter2" not in data and b"primary-key" not in data
    target = configmod.load(None, env={"CUMULO_STATE_DIR": str(tmp_path / "new")})
    with pytest.raises(BackupError, match="not the backup's"):
        ops.restore(backup, target, key=Fernet.generate_key())
    with pytest.raises(BackupError, match="encrypted"):
        ops.restore(backup, target, key=None)
    ops.restore(backup, target, key=key)
    assert (tmp_path / "new" / "admin-password").read_text() == "hunter2-admin\n"
    assert (tmp_path / "new" / "fernet-keys" / "1").read_text() == "primary-key"
    assert (tmp_path / "new" / "admin-password").stat().st_mode & 0o077 == 0


def test_without_a_key_the_manifest_says_the_secrets_are_in_the_clear(cfg: configmod.Config, tmp_path: Path) -> None:
    manifest = ops.backup(cfg, tmp_path / "b", key=None)
    assert manifest["encryption"]["cipher"] is None
    assert not any(f["encrypted"] for f in manifest["files"])
    target = configmod.load(None, env={"CUMULO_STATE_DIR": str(tmp_path / "new")})
    ops.restore(tmp_path / "b" / manifest["name"], target)
    assert (tmp_path / "new" / "admin-password").read_text() == "hunter2-admin\n"


def test_a_failed_backup_leaves_nothing_half_written(cfg: configmod.Config, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> None:
        raise BackupError("pg_dump failed: connection refused")

    monkeypatch.setattr(ops, "dump_database", broken)
    with pytest.raises(BackupError, match="pg_dump failed"):
        ops.backup(cfg, tmp_path / "b", key=Fernet.generate_key())
    assert [p.name for p in (tmp_path / "b").iterdir()] == [".lock"]


def test_a_backup_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    cfg = make_state(tmp_path / "state", revision="9999_from_the_future")
    manifest = ops.backup(cfg, tmp_path / "b", key=None)
    target = configmod.load(None, env={"CUMULO_STATE_DIR": str(tmp_path / "new")})
    with pytest.raises(BackupError, match="9999_from_the_future is unknown to this cumulo"):
        ops.restore(tmp_path / "b" / manifest["name"], target)
    assert not (tmp_path / "new").exists()


def test_a_state_dir_holding_a_cloud_needs_force(cfg: configmod.Config, tmp_path: Path) -> None:
    manifest = ops.backup(cfg, tmp_path / "b", key=None)
    (cfg.state_path / "images" / "img-2").write_bytes(b"made after the backup")
    with pytest.raises(BackupError, match="a cloud is already there"):
        ops.restore(tmp_path / "b" / manifest["name"], cfg)
    ops.restore(tmp_path / "b" / manifest["name"], cfg, force=True)
    assert sorted(p.name for p in (cfg.state_path / "images").iterdir()) == ["img-1"]
    con = sqlite3.connect(cfg.state_path / "cumulo.db")
    assert [r[0] for r in con.execute("SELECT id FROM identity_project ORDER BY id")] == ["p1", "p2"]
    con.close()
    assert json.loads((tmp_path / "b" / manifest["name"] / "manifest.json").read_text())["resources"]["projects"] \
        == ["p1", "p2"]


def test_a_restore_run_again_after_an_interruption_needs_no_force(cfg: configmod.Config, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = ops.backup(cfg, tmp_path / "b", key=None)
    backup = tmp_path / "b" / manifest["name"]
    target = configmod.load(None, env={"CUMULO_STATE_DIR": str(tmp_path / "new")})

    def killed(*_args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(ops, "_restore_database", killed)
        with pytest.raises(KeyboardInterrupt):
            ops.restore(backup, target)
    assert (tmp_path / "new" / ops.RESTORING).exists() and not (tmp_path / "new" / "cumulo.db").exists()
    ops.restore(backup, target)  # the images it left do not count as a cloud
    assert (tmp_path / "new" / "cumulo.db").exists() and not (tmp_path / "new" / ops.RESTORING).exists()
