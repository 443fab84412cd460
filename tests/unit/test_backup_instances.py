"""Instances' disks in a backup: the definition, the overlays and the cached bases they sit on
(not the console log or sockets); restored under another instances path, an overlay names its
base there (rebased, no data moved); a restore while a guest of the target still runs is refused.
The running-guest case (qemu-img convert -U of a disk QEMU writes) is in
tests/functional/test_backup.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cumulo.core import config as configmod
from cumulo.ops import backup as ops
from cumulo.ops.backup import BackupError
from tests.unit.test_backup import make_state

pytestmark = pytest.mark.skipif(not shutil.which("qemu-img"), reason="needs qemu-img")
SERVER = "5b0d7f8e-1c2a-4e4b-9a55-0c6f7d1e2a33"


def qemu_img(*args: str) -> str:
    return subprocess.run(["qemu-img", *args], check=True, capture_output=True, text=True).stdout


def make_instance(state: Path) -> Path:
    node = state / "instances" / "qnode"
    (node / "_base").mkdir(parents=True)
    (node / SERVER).mkdir()
    base = node / "_base" / "img-1"
    qemu_img("create", "-q", "-f", "qcow2", str(base), "16M")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 2M", str(base)], check=True, capture_output=True)
    (node / "_base" / "img-1.json").write_text('{"disk_format": "qcow2"}')
    disk = node / SERVER / "disk"
    qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(disk), "32M")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x22 1M 1M", str(disk)], check=True,
                   capture_output=True)
    (node / SERVER / "instance.json").write_text(json.dumps({"id": SERVER}))
    (node / SERVER / "console.log").write_text("boot log\n")
    (node / SERVER / "qemu.pid").write_text("1\n")
    return disk


def test_instances_are_backed_up_and_rebased_when_restored_elsewhere(tmp_path: Path) -> None:
    cfg = make_state(tmp_path / "state")
    disk = make_instance(tmp_path / "state")
    manifest = ops.backup(cfg, tmp_path / "b", key=None)
    held = sorted(f["target"] for f in manifest["files"] if f["kind"] == "instances")
    assert held == sorted(["qnode/_base/img-1", "qnode/_base/img-1.json", f"qnode/{SERVER}/disk",
                           f"qnode/{SERVER}/instance.json"])  # no console log, no pid file
    assert manifest["areas"]["instances"] == str(tmp_path / "state" / "instances")
    target = configmod.load(None, env={"CUMULO_STATE_DIR": str(tmp_path / "other")})
    result = ops.restore(tmp_path / "b" / manifest["name"], target)
    assert result["restored"]["instances"] == 4
    restored = tmp_path / "other" / "instances" / "qnode" / SERVER / "disk"
    info = qemu_img("info", "-U", str(restored))
    assert f"backing file: {tmp_path / 'other' / 'instances' / 'qnode' / '_base' / 'img-1'}\n" in info, info
    assert "Images are identical" in qemu_img("compare", "-U", str(disk), str(restored))
    assert not (restored.parent / "qemu.pid").exists()


def test_a_restore_is_refused_while_a_guest_of_the_target_runs(tmp_path: Path) -> None:
    cfg = make_state(tmp_path / "state")
    make_instance(tmp_path / "state")
    manifest = ops.backup(cfg, tmp_path / "b", key=None)
    guest = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", SERVER])
    try:
        (tmp_path / "state" / "instances" / "qnode" / SERVER / "qemu.pid").write_text(f"{guest.pid}\n")
        with pytest.raises(BackupError, match=f"guests of .* still run: {SERVER} \\(pid {guest.pid}\\)"):
            ops.restore(tmp_path / "b" / manifest["name"], cfg, force=True)
    finally:
        guest.kill()
        guest.wait()
    ops.restore(tmp_path / "b" / manifest["name"], cfg, force=True)  # once it is gone
