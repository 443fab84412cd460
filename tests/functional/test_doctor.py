"""`cumulo doctor` against a running cloud: all ok when healthy, then each fault injected on
purpose is named with its component and the exit status 1 or 2: a transition past its lease,
orphan namespaces, taps, QEMU and dnsmasq processes, a stopped agent, a full disk, an old key,
usage over a limit, a password near expiry; and the operator port's ``/livez``, ``/readyz`` and
the ``/healthcheck`` drain file.

One cloud (SQLite, in-process bus, two fake compute nodes, the file volume node) serves the module.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functional.conftest import BIN, Cloud, start_cloud, stop_cloud, wait_for

pytestmark = pytest.mark.functional


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    tmp = tmp_path_factory.mktemp("doctor")
    c = start_cloud(tmp, "sqlite", {"CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false",
                                    "CUMULO_METRICS__DISABLE_BY_FILE_PATH": str(tmp / "drain")})
    yield c
    stop_cloud(c)


def doctor(cloud: Cloud, **env: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run([str(BIN / "cumulo"), "doctor", "--json"], env={**cloud.env, **env},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 1, 2), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def not_ok(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in doc["checks"] if c["verdict"] != "ok"]


def db(cloud: Cloud) -> sqlite3.Connection:
    return sqlite3.connect(cloud.state_dir / "cumulo.db", timeout=10, isolation_level=None)


def stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")  # how SQLAlchemy keeps a DateTime in SQLite


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def operator(cloud: Cloud, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{cloud.metrics_port}{path}", timeout=10)


def test_a_healthy_cloud_is_all_ok_with_exit_0(cloud: Cloud) -> None:
    # the volume node and the fake compute nodes report within a second or two of the start
    wait_for(lambda: operator(cloud, "/readyz").status_code == 200, 20, "the cloud to be ready")
    rc, doc = doctor(cloud)
    assert rc == 0 and doc["verdict"] == "ok" and doc["broken"] == [], not_ok(doc)
    checks = {c["check"] for c in doc["checks"]}
    assert {"controller", "database", "bus", "agents", "disk", "keys", "leases", "orphans", "quotas",
            "expiry"} <= checks
    agents = {c["component"] for c in doc["checks"] if c["check"] == "agents"}
    assert {"compute agent fake-0", "compute agent fake-1"} <= agents
    assert any(a.startswith("volume agent") for a in agents)
    assert any("newest revision" in c["detail"] for c in doc["checks"] if c["check"] == "database")
    # the human form: one line a check, and the summary
    text = subprocess.run([str(BIN / "cumulo"), "doctor"], env=cloud.env, capture_output=True, text=True, timeout=60)
    assert text.returncode == 0 and "0 warnings, 0 failures" in text.stdout, text.stdout


def test_livez_readyz_and_the_drain_file(cloud: Cloud) -> None:
    assert operator(cloud, "/livez").json() == {"status": "ok"}
    ready = operator(cloud, "/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "bus": "ok", "agents": "ok"}
    assert operator(cloud, "/healthcheck").status_code == 200
    drain = cloud.state_dir / "drain"
    drain.touch()
    try:
        r = operator(cloud, "/healthcheck")
        assert r.status_code == 503 and r.text == "DISABLED BY FILE"
        assert operator(cloud, "/livez").status_code == 200  # draining is not dying
    finally:
        drain.unlink()
    assert operator(cloud, "/healthcheck").status_code == 200


def test_a_stopped_agent_is_a_failure_naming_it(cloud: Cloud) -> None:
    old = stamp(utcnow() - dt.timedelta(hours=1))
    with db(cloud) as conn:  # nodes that reported once and then stopped
        conn.execute("INSERT INTO compute_service (id, host, binary, disabled, forced_down, last_seen_at, "
                     "created_at, updated_at) VALUES (?, 'cumulo-test-gone', 'nova-compute', 0, 0, ?, ?, ?)",
                     (str(uuid.uuid4()), old, old, old))
        conn.execute("INSERT INTO volume_pool (host, capacity_gb, allocated_gb, free_gb, disabled, reported_at, "
                     "frozen) VALUES ('cumulo-test-gone-store', 10, 0, 10, 0, ?, 0)", (old,))
        # and one an admin forced down (Nova's os-services force-down): a warning, not a failure
        conn.execute("INSERT INTO compute_service (id, host, binary, disabled, forced_down, last_seen_at, "
                     "created_at, updated_at) VALUES (?, 'cumulo-test-fenced', 'nova-compute', 0, 1, ?, ?, ?)",
                     (str(uuid.uuid4()), old, old, old))
    try:
        rc, doc = doctor(cloud)
        assert rc == 2 and doc["verdict"] == "failure"
        assert {"compute agent cumulo-test-gone", "volume agent cumulo-test-gone-store",
                "compute agent cumulo-test-fenced"} == set(doc["broken"])
        by = {c["component"]: c for c in not_ok(doc)}
        gone = by["compute agent cumulo-test-gone"]
        assert gone["verdict"] == "failure" and "down" in gone["detail"]
        assert "cumulo agent --host cumulo-test-gone" in gone["fix"]
        assert by["volume agent cumulo-test-gone-store"]["verdict"] == "failure"
        fenced = by["compute agent cumulo-test-fenced"]
        assert fenced["verdict"] == "warning" and "forced down" in fenced["detail"]
    finally:
        with db(cloud) as conn:
            conn.execute("DELETE FROM compute_service WHERE host IN ('cumulo-test-gone', 'cumulo-test-fenced')")
            conn.execute("DELETE FROM volume_pool WHERE host = 'cumulo-test-gone-store'")


def test_a_filling_disk_is_a_warning_and_a_full_one_a_failure(cloud: Cloud) -> None:
    # a warning: the threshold brought down to what this disk holds, instead of filling it
    fs = os.statvfs(cloud.state_dir)
    used = 100 * (fs.f_blocks - fs.f_bfree) / (fs.f_blocks - fs.f_bfree + fs.f_bavail)
    rc, doc = doctor(cloud, CUMULO_DOCTOR__DISK_WARNING_PERCENT=f"{used / 2:.3f}")
    assert rc == 1 and doc["broken"] and all(b.startswith("disk (state directory") for b in doc["broken"]), doc
    # a failure at the default thresholds: the backups directory on a small file system filled to
    # 93%, mounted in a mount namespace of doctor's own (the cloud and the host never see it; it
    # goes away with doctor)
    backups = cloud.state_dir / "backups"
    assert backups.is_dir()
    script = (f"mount --make-rprivate / && mount -t tmpfs -o size=1m tmpfs {backups} && "
              f"dd if=/dev/zero of={backups}/fill bs=1k count=950 2>/dev/null; exec {BIN / 'cumulo'} doctor --json")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], env=cloud.env, capture_output=True, text=True,
                          timeout=60)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 2 and doc["broken"] == ["disk (backups)"], (proc.stderr, not_ok(doc))
    full = not_ok(doc)[0]
    assert full["verdict"] == "failure" and full["looked_at"] == str(backups) and "93% used" in full["detail"]
    assert "free space" in full["fix"]
    assert not (backups / "fill").exists()


def test_an_old_fernet_key_is_a_warning(cloud: Cloud) -> None:
    staged = cloud.state_dir / "fernet-keys" / "0"
    before = staged.stat()
    os.utime(staged, (before.st_atime, time.time() - 45 * 86400))
    try:
        rc, doc = doctor(cloud)
        assert rc == 1 and doc["broken"] == ["identity (Fernet keys)"]
        key = not_ok(doc)[0]
        assert "45.0 days" in key["detail"] and "cumulo identity rotate-keys" in key["fix"]
    finally:
        os.utime(staged, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_password_near_expiry_is_a_warning(cloud: Cloud) -> None:
    soon = utcnow() + dt.timedelta(days=3)
    with db(cloud) as conn:  # as [security_compliance] password_expires_days would have set it
        conn.execute("UPDATE identity_password SET expires_at = ? WHERE id = (SELECT max(p.id) FROM "
                     "identity_password p JOIN identity_user u ON u.id = p.user_id WHERE u.name = 'demo')",
                     (stamp(soon),))
    try:
        rc, doc = doctor(cloud)
    finally:
        with db(cloud) as conn:
            conn.execute("UPDATE identity_password SET expires_at = NULL WHERE user_id = "
                         "(SELECT id FROM identity_user WHERE name = 'demo')")
    assert rc == 1 and doc["broken"] == ["identity (credentials)"], not_ok(doc)
    assert f"user demo's password expires {soon:%Y-%m-%d %H:%M}" in not_ok(doc)[0]["detail"]


def idle_process(name: str, *args: str) -> subprocess.Popen[bytes]:
    """A process whose command line reads ``name args...`` (a Python that sleeps), standing in
    for a QEMU or dnsmasq left behind."""
    return subprocess.Popen([name, "-c", "import time; time.sleep(120)", *args], executable=sys.executable)


def test_orphans_are_warnings_naming_each(cloud: Cloud) -> None:
    prefix = cloud.env["CUMULO_NETWORK__NAMESPACE_PREFIX"]
    assert prefix.startswith("cumulo-test-")
    router_ns, dp = f"{prefix}-router-{uuid.uuid4()}", f"{prefix}-dp"
    tap = f"tap{uuid.uuid4().hex[:10]}0"
    server_id, network_id = str(uuid.uuid4()), str(uuid.uuid4())
    instances, dhcp = cloud.state_dir / "instances", cloud.state_dir / "network" / "dhcp"
    leftovers = [idle_process("qemu-system-x86_64", "-uuid", server_id, "-pidfile",
                              f"{instances}/fake-0/{server_id}/qemu.pid"),
                 idle_process("dnsmasq", f"--pid-file={dhcp}/{network_id}/pid")]
    try:
        subprocess.run(["ip", "netns", "add", router_ns], check=True)
        subprocess.run(["ip", "netns", "add", dp], check=True)
        subprocess.run(["ip", "-n", dp, "tuntap", "add", "dev", tap, "mode", "tap"], check=True)
        rc, doc = doctor(cloud)
        assert rc == 1 and set(doc["broken"]) == {"network (namespaces)", "network (taps)", "compute (QEMU)",
                                                  "network (dnsmasq)"}, not_ok(doc)
        found = {c["component"]: c for c in not_ok(doc)}
        assert router_ns in found["network (namespaces)"]["detail"]
        assert dp not in found["network (namespaces)"]["detail"]  # the dataplane's own namespace is no orphan
        assert tap in found["network (taps)"]["detail"] and "ip -n" in found["network (taps)"]["fix"]
        assert f"pid {leftovers[0].pid} (uuid {server_id})" in found["compute (QEMU)"]["detail"]
        assert f"pid {leftovers[1].pid} (network {network_id})" in found["network (dnsmasq)"]["detail"]
    finally:
        for proc in leftovers:
            proc.kill()
            proc.wait()
        for ns in (router_ns, dp):
            subprocess.run(["ip", "netns", "delete", ns], check=False)


def test_a_cloud_that_is_not_running_is_said_so(cloud: Cloud, tmp_path: Path) -> None:
    rc, doc = doctor(cloud, CUMULO_STATE_DIR=str(tmp_path))  # an empty state directory: never started
    assert rc == 2 and {"controller", "database"} <= set(doc["broken"])
    controller = next(c for c in doc["checks"] if c["check"] == "controller")
    assert "not running" in controller["detail"] and "cumulo up" in controller["fix"]
    assert list(tmp_path.iterdir()) == []  # doctor made nothing: no database, no keys


@pytest.fixture(scope="module")
def volume(cloud: Cloud) -> Iterator[dict[str, Any]]:
    """An available volume of the admin project: {id, url (its volumes), headers, project}."""
    token, body = cloud.token()
    headers = {"X-Auth-Token": token}
    url = f"{cloud.volume_url}/{body['project']['id']}/volumes"
    r = httpx.post(url, json={"volume": {"size": 1, "name": "doctor"}}, headers=headers, timeout=30)
    assert r.status_code == 202, r.text
    volume_id = r.json()["volume"]["id"]
    wait_for(lambda: httpx.get(f"{url}/{volume_id}", headers=headers).json()["volume"]["status"] == "available",
             20, "the volume to be available")
    yield {"id": volume_id, "url": url, "headers": headers, "project": body["project"]}
    httpx.delete(f"{url}/{volume_id}", headers=headers, timeout=30)


def test_a_volume_past_its_lease_is_a_failure_naming_it(cloud: Cloud, volume: dict[str, Any]) -> None:
    # the leader's reconciler ends an expired lease within seconds: a controller that hangs (stopped
    # here) is what leaves one behind, and what doctor must tell.  It is stopped while this test
    # holds SQLite's writer turn, so never in the middle of a write of its own.
    turn = os.open(cloud.state_dir / "cumulo.db.turn", os.O_RDWR)
    fcntl.flock(turn, fcntl.LOCK_EX)
    os.kill(cloud.proc.pid, signal.SIGSTOP)
    try:
        with db(cloud) as conn:
            conn.execute("UPDATE volume_volume SET status = 'extending', lease_owner = 'gone', lease_until = ? "
                         "WHERE id = ?", (stamp(utcnow() - dt.timedelta(minutes=10)), volume["id"]))
        rc, doc = doctor(cloud)
        with db(cloud) as conn:
            conn.execute("UPDATE volume_volume SET status = 'available', lease_owner = NULL, lease_until = NULL "
                         "WHERE id = ?", (volume["id"],))
    finally:
        fcntl.flock(turn, fcntl.LOCK_UN)
        os.close(turn)
        os.kill(cloud.proc.pid, signal.SIGCONT)
    assert rc == 2
    stuck = next(c for c in doc["checks"] if c["check"] == "leases" and c["verdict"] == "failure")
    assert volume["id"] in stuck["detail"] and "extending" in stuck["detail"] and "lease ended" in stuck["detail"]
    assert stuck["component"] == "block-storage reconciler" and "--state error" in stuck["fix"]
    # and the hung controller itself is named
    assert "controller" in doc["broken"]
    wait_for(lambda: operator(cloud, "/readyz").status_code == 200, 20, "the cloud to answer again")


def test_usage_over_a_lowered_limit_is_a_warning(cloud: Cloud, volume: dict[str, Any]) -> None:
    token, _ = cloud.token()
    h = {"X-Auth-Token": token}
    service = next(s for s in httpx.get(f"{cloud.url}/services", headers=h).json()["services"]
                   if s["type"] == "block-storage")
    registered = httpx.get(f"{cloud.url}/registered_limits", headers=h,
                           params={"service_id": service["id"], "resource_name": "volumes"}).json()
    region = registered["registered_limits"][0].get("region_id")
    # an admin lowers the project's volume limit below what it holds (unified limits allow it)
    r = httpx.post(f"{cloud.url}/limits", headers=h, json={"limits": [{
        "project_id": volume["project"]["id"], "service_id": service["id"], "region_id": region,
        "resource_name": "volumes", "resource_limit": 0}]})
    assert r.status_code == 201, r.text
    try:
        rc, doc = doctor(cloud)
    finally:
        httpx.delete(f"{cloud.url}/limits/{r.json()['limits'][0]['id']}", headers=h)
    assert rc == 1 and doc["broken"] == ["quotas"], not_ok(doc)
    over = not_ok(doc)[0]
    assert f"{volume['project']['name']} ({volume['project']['id']}) block-storage volumes: 1 used, limit 0" \
        in over["detail"] and "openstack quota set" in over["fix"]


def test_readyz_is_503_naming_the_database_when_it_does_not_answer(cloud: Cloud) -> None:
    # SQLite's writer turn held elsewhere: the controller's database does not answer in time
    fd = os.open(Path(cloud.state_dir) / "cumulo.db.turn", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        r = operator(cloud, "/readyz")
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    assert r.status_code == 503, r.text
    checks = r.json()["checks"]
    assert checks["database"].startswith("failing") and checks["bus"] == "ok", checks
    wait_for(lambda: operator(cloud, "/readyz").status_code == 200, 20, "the database to answer again")
