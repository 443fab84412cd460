"""Object storage operations end to end (issue 14, parts 4 and 5; Operations Guide chapter 11)
against a real identity + object cloud (SQLite) whose replicator runs every second: a wiped
device refilled, a flipped byte never served and repaired, and a failed device replaced with
`cumulo object ring` while the cloud runs -- each step watched with `cumulo object status`."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.functional.conftest import BIN, Cloud, start_cloud, stop_cloud

COUNT = 50


@pytest.fixture(scope="module")
def ocloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("object-ops"), "sqlite", {
        "CUMULO_SERVICES": "identity,object", "CUMULO_OBJECT__REPLICATOR_INTERVAL": "1",
        "CUMULO_OBJECT__PART_POWER": "6"})
    yield c
    stop_cloud(c)


@pytest.fixture(scope="module")
def objects(ocloud: Cloud) -> dict[str, bytes]:
    """COUNT objects PUT over HTTP into container ops of the admin's account."""
    token, body = ocloud.token()
    base = f"{ocloud.object_url}/v1/AUTH_{body['project']['id']}"
    head = {"X-Auth-Token": token}
    with httpx.Client(timeout=30, headers=head) as http:
        assert http.put(f"{base}/ops").status_code == 201
        out = {}
        for i in range(COUNT):
            data = hashlib.sha256(str(i).encode()).digest() * (1 + i * 7)
            r = http.put(f"{base}/ops/o{i:03d}", content=data)
            assert r.status_code == 201 and r.headers["etag"] == hashlib.md5(data).hexdigest()
            out[f"o{i:03d}"] = data
    return out


def get(ocloud: Cloud, name: str) -> httpx.Response:
    token, body = ocloud.token()
    return httpx.get(f"{ocloud.object_url}/v1/AUTH_{body['project']['id']}/ops/{name}",
                     headers={"X-Auth-Token": token}, timeout=30)


def cumulo(ocloud: Cloud, *args: str) -> str:
    """The `cumulo` CLI with the cloud's environment (its state directory)."""
    proc = subprocess.run([str(BIN / "cumulo"), *args], env=ocloud.env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


def health(ocloud: Cloud) -> tuple[dict[int, int], dict[str, dict[str, int]], str]:
    """From `cumulo object status`: {N: objects with their newest copy on N primaries}, and per
    device its objects and quarantined copies."""
    out = cumulo(ocloud, "object", "status")
    found = re.search(r"newest copy on N of 3 primaries: (.*)", out)
    assert found, out
    counts = {int(n): int(k) for n, k in re.findall(r"(\d+): (\d+)", found.group(1))}
    devices = {m[0]: {"objects": int(m[1]), "quarantined": int(m[2])} for m in re.findall(
        r"^\s+(\S+)\s+zone \d+ weight \S+: (\d+) objects, \d+ tombstones, \d+ bytes, (\d+) quarantined",
        out, re.M)}
    return counts, devices, out


def wait_for(check: Callable[[], bool], what: str, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout} s"
        time.sleep(0.5)


def devices_dir(ocloud: Cloud) -> Path:
    return ocloud.state_dir / "object" / "devices"


def fail_device(path: Path) -> None:
    """The disk at ``path`` is gone: its directory goes aside and a plain file takes its place
    (as an unmounted mount point, nothing can be written there).  The running replicator may make
    the directory again between the two steps: then again."""
    marker = path.with_name(path.name + ".marker")
    marker.write_text("failed disk")
    for attempt in range(20):
        if path.is_dir():
            path.rename(path.with_name(f"{path.name}.failed{attempt}"))
        try:
            marker.rename(path)
            return
        except OSError:
            continue
    raise AssertionError(f"could not take {path} away")


def data_files(device: Path) -> list[Path]:
    return sorted((device / "objects").glob("*/*/*/*.data"))


def test_a_wiped_device_is_refilled_by_the_replicator(ocloud: Cloud, objects: dict[str, bytes]) -> None:
    counts, devices, out = health(ocloud)
    assert counts == {3: COUNT}, out
    d1 = devices_dir(ocloud) / "d1"
    assert len(data_files(d1)) == COUNT  # three replicas on three devices: a copy of each on each
    fail_device(d1)
    counts, devices, out = health(ocloud)
    assert counts == {2: COUNT} and devices["d1"]["objects"] == 0 and "MISSING" in out, out
    for name, data in list(objects.items())[:10]:  # reads go on from the other replicas
        assert get(ocloud, name).content == data
    # writes go on at the quorum (2 of 3: no device is left for a handoff), and land home later
    token, body = ocloud.token()
    for i in range(5):
        name, data = f"during-{i}", f"written while d1 is gone {i}".encode()
        r = httpx.put(f"{ocloud.object_url}/v1/AUTH_{body['project']['id']}/ops/{name}", content=data,
                      headers={"X-Auth-Token": token})
        assert r.status_code == 201, r.text
        objects[name] = data
    assert health(ocloud)[0] == {2: len(objects)}
    d1.unlink()
    d1.mkdir()  # the replacement disk, empty
    wait_for(lambda: health(ocloud)[0] == {3: len(objects)}, "the replicator's refill of d1")
    assert len(data_files(d1)) == len(objects)
    assert health(ocloud)[1]["d1"]["objects"] == len(objects)
    for name in ("during-0", "during-4"):
        assert get(ocloud, name).content == objects[name]


def test_a_flipped_byte_is_never_served_and_the_copy_is_quarantined_and_repaired(
        ocloud: Cloud, objects: dict[str, bytes]) -> None:
    d2 = devices_dir(ocloud) / "d2"
    before = health(ocloud)[1]["d2"]["quarantined"]
    victims = data_files(d2)[:3]
    for path in victims:
        raw = bytearray(path.read_bytes())
        raw[0] ^= 0xFF  # the first body byte (the trailer with the checksum stays)
        path.write_bytes(bytes(raw))
    for _ in range(3):  # every read is the right data, whichever copy it lands on
        for name, data in objects.items():
            r = get(ocloud, name)
            assert r.status_code == 200 and r.content == data, name
    wait_for(lambda: health(ocloud)[1]["d2"]["quarantined"] >= before + len(victims), "the quarantine")
    wait_for(lambda: health(ocloud)[0] == {3: len(objects)}, "the repair of the quarantined copies")
    files = data_files(d2)
    assert len(files) == len(objects)
    # what d2 holds now is what the other devices hold, byte for byte
    d1 = devices_dir(ocloud) / "d1"
    for path in files:
        twin = d1 / path.relative_to(d2)
        assert twin.read_bytes() == path.read_bytes(), path


def test_a_failed_device_is_replaced_in_the_running_cloud(ocloud: Cloud, objects: dict[str, bytes]) -> None:
    """Operations Guide ch. 11: add the new device, mark the failed one out, rebalance, remove it;
    the running node takes the new ring file and its replicator fills the new device."""
    assert "now `cumulo object ring rebalance`" in cumulo(ocloud, "object", "ring", "add", "d4", "--zone", "4")
    cumulo(ocloud, "object", "ring", "set-weight", "d1", "0")
    assert "partition replicas moved" in cumulo(ocloud, "object", "ring", "rebalance")
    assert "removed device d1" in cumulo(ocloud, "object", "ring", "remove", "d1")
    shown = cumulo(ocloud, "object", "ring", "show")
    assert " d4 " in shown and " d1 " not in shown, shown
    d4 = devices_dir(ocloud) / "d4"
    wait_for(lambda: health(ocloud)[0] == {3: len(objects)}, "the refill of the new device d4")
    assert len(data_files(d4)) == len(objects)
    counts, devices, out = health(ocloud)
    assert set(devices) == {"d2", "d3", "d4"} and devices["d4"]["objects"] == len(objects), out
    # the failed device can go: every object reads from the new ring, and new writes land on d4
    shutil.rmtree(devices_dir(ocloud) / "d1")
    for name, data in objects.items():
        assert get(ocloud, name).content == data
    token, body = ocloud.token()
    r = httpx.put(f"{ocloud.object_url}/v1/AUTH_{body['project']['id']}/ops/after", content=b"new ring",
                  headers={"X-Auth-Token": token})
    assert r.status_code == 201
    assert len(data_files(d4)) == len(objects) + 1
