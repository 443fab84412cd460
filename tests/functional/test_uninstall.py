"""``cumulo uninstall`` on a throwaway cloud (its own state directory, namespace prefix and HOME):
it asks first, then stops the controller by the pid status.json names, a QEMU process by its pid
file (and not a process whose pid merely sits in a file there), removes the dataplane's
namespaces, its clouds in ~/.config/openstack/clouds.yaml (not the user's others) and the state
directory, and says what it left."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.functional.conftest import BIN, Cloud, start_cloud, stop_cloud, wait_for
from tests.functional.test_dataplane import namespaces


@pytest.fixture(scope="module")
def ucloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cloud, Path]]:
    home = tmp_path_factory.mktemp("home")
    user_file = home / ".config" / "openstack" / "clouds.yaml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text(yaml.safe_dump({"clouds": {"other": {"auth": {"auth_url": "http://elsewhere:5000/v3"}}}}))
    c = start_cloud(tmp_path_factory.mktemp("un"), "sqlite", {
        "HOME": str(home), "CUMULO_BOOTSTRAP__WRITE_USER_CLOUDS": "true",
        "CUMULO_SERVICES": "identity,image,compute,placement,network", "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false",
        "CUMULO_NETWORK__DATAPLANE": "true", "CUMULO_NETWORK__BOOTSTRAP": "true"})
    yield c, home
    stop_cloud(c)
    subprocess.run([str(BIN / "cumulo"), "network", "cleanup", "--yes"], env=c.env, capture_output=True, timeout=60)
    shutil.rmtree(c.state_dir, ignore_errors=True)


def uninstall(c: Cloud, *args: str, answer: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "cumulo"), "uninstall", *args], env=c.env, input=answer, capture_output=True,
                          text=True, timeout=120)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_uninstall_asks_and_a_no_changes_nothing(ucloud: tuple[Cloud, Path]) -> None:
    c, home = ucloud
    prefix = c.env["CUMULO_NETWORK__NAMESPACE_PREFIX"]
    wait_for(lambda: f"{prefix}-ext" in namespaces(prefix), 30, "the external namespace of network public")
    r = uninstall(c, answer="n\n")
    assert r.returncode == 1 and "Aborted" in r.stderr, r
    assert f"stop cumulo up (pid {c.proc.pid})" in r.stdout, r.stdout
    assert f"delete {c.state_dir}" in r.stdout and f"{prefix}-ext" in r.stdout
    assert "remove the clouds cumulo, cumulo-demo from" in r.stdout
    assert c.proc.poll() is None and c.state_dir.is_dir() and namespaces(prefix)


def test_uninstall_yes_removes_what_the_cloud_made_and_says_what_stays(ucloud: tuple[Cloud, Path]) -> None:
    c, home = ucloud
    prefix = c.env["CUMULO_NETWORK__NAMESPACE_PREFIX"]
    # a QEMU of this state directory (as the driver starts one: -pidfile in the instance's folder)
    guest = c.state_dir / "instances" / "unode" / str(uuid.uuid4())
    guest.mkdir(parents=True)
    subprocess.run(["qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none",
                    "-pidfile", str(guest / "qemu.pid"), "-daemonize"], check=True, timeout=30)
    qemu = int((guest / "qemu.pid").read_text())
    # a process whose pid is in a file there but that does not name it: not the cloud's
    decoy = subprocess.Popen(["sleep", "300"])
    (guest.parent / "decoy.pid").write_text(str(decoy.pid))
    try:
        r = uninstall(c, "--yes")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert c.proc.wait(30) == 0  # the controller stopped as on Ctrl-C
        assert f"stopped qemu-system-x86_64 of {guest} (pid {qemu})" in r.stdout, r.stdout
        assert not alive(qemu)
        assert decoy.poll() is None, "a process the cloud did not record was stopped"
        assert not namespaces(prefix)
        assert not c.state_dir.exists()
        clouds = yaml.safe_load((home / ".config" / "openstack" / "clouds.yaml").read_text())["clouds"]
        assert list(clouds) == ["other"]
        left = r.stdout.strip().splitlines()[-1]
        assert left.startswith("left on this machine: ") and "virtualenv" in left and "Debian packages" in left
        # a second run finds nothing
        again = uninstall(c, "--yes")
        assert again.returncode == 0 and "nothing of a cloud in" in again.stdout, again.stdout
    finally:
        decoy.kill()
        decoy.wait()
        if alive(qemu):
            os.kill(qemu, signal.SIGKILL)
