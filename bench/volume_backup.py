#!/usr/bin/env python3
"""Volume backup and restore throughput over the Block Storage v3 API, against a real cloud on this machine.

    .venv/bin/python bench/volume_backup.py [--runs 3] [--data-mib 200]

One `cumulo up` (identity, image, volume; SQLite, the in-process bus, the embedded volume agent)
answers on 127.0.0.1.  A 1 GiB volume gets --data-mib MiB of non-zero data written into its qcow2
(half random bytes, half repeating text, in 4 MiB pieces spread over the disk), then:

(a) backup create -> available (a full backup), --runs times;
(b) an incremental backup after 8 MiB more were written;
(c) restore into a new volume -> available, --runs times; the restored volume's raw bytes must
    have the original's sha256.

Throughput is MB/s of the volume's allocated data (the non-zero MiB written, in 10^6 bytes per
second), from the POST until a GET shows the end state (polled every 20 ms).  Goal (issue 13):
>= 300 MB/s for both.  The same engine without the API (cumulo.volume.drivers.backup, in this
process) is measured too, so the API's and the agent's share is visible.  Everything it makes is
removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import admin_session, start_cumulo, stop  # noqa: E402
from cumulo.volume.drivers.backup import BackupEngine, DirectoryStore  # noqa: E402

SERVICES = "identity,image,volume"
MiB = 1024**2
GOAL = 300.0  # MB/s


def fill(volume: Path, data_mib: int, scratch: Path) -> None:
    """``data_mib`` MiB of data in 4 MiB pieces spread over the 1 GiB disk, written with qemu-img."""
    raw = scratch / "fill.raw"
    pieces = data_mib // 4
    stride = (1024 // 4) // pieces
    text = (b"cumulo volume backup benchmark: the quick brown fox jumps over the lazy dog 0123456789\n" * 50000)
    with open(raw, "wb") as fh:
        fh.truncate(1024 * MiB)
        for i in range(pieces):
            fh.seek(i * stride * 4 * MiB)
            fh.write(os.urandom(4 * MiB) if i % 2 == 0 else text[:4 * MiB])
    subprocess.run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", str(raw), str(volume)], check=True)
    raw.unlink()


def raw_sha256(volume: Path, scratch: Path) -> str:
    raw = scratch / "check.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(volume), str(raw)], check=True)
    digest = hashlib.sha256()
    with open(raw, "rb") as fh:
        while block := fh.read(8 * MiB):
            digest.update(block)
    raw.unlink()
    return digest.hexdigest()


class Api:
    def __init__(self, url: str, token: str, poll: float = 0.02) -> None:
        self.client = httpx.Client(base_url=url, headers={"X-Auth-Token": token}, timeout=60)
        self.poll = poll

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        r = self.client.request(method, path, json=body)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
        return r

    def wait(self, path: str, key: str, want: str, t0: float, timeout: float = 300) -> float:
        while True:
            status = self.call("GET", path).json()[key]["status"]
            now = time.perf_counter()
            if status == want:
                return now - t0
            if status.startswith("error") or now - t0 > timeout:
                raise RuntimeError(f"{path} is {status} after {now - t0:.1f} s")
            time.sleep(self.poll)


def mbps(data_mib: int, seconds: float) -> float:
    return data_mib * MiB / 1e6 / seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data-mib", type=int, default=200)
    ap.add_argument("--port", type=int, default=5062, help="identity's port; image +1, volume +2 (default 5062)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cumulo-bench-backup-"))
    proc = None
    lines: list[str] = []
    try:
        volume_port = args.port + 2
        proc, ep = start_cumulo(work, 4, args.port, {"CUMULO_SERVICES": SERVICES,
                                                     "CUMULO_IMAGE__PORT": str(args.port + 1),
                                                     "CUMULO_VOLUME__PORT": str(volume_port),
                                                     "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false"})
        headers, project = admin_session(ep)
        api = Api(f"http://127.0.0.1:{volume_port}/v3/{project}", headers["X-Auth-Token"])
        api.call("PUT", f"/os-quota-sets/{project}", {"quota_set": {"volumes": 50, "gigabytes": 100, "backups": 50}})
        vid = api.call("POST", "/volumes", {"volume": {"size": 1, "name": "bench-source"}}).json()["volume"]["id"]
        api.wait(f"/volumes/{vid}", "volume", "available", time.perf_counter())
        (source,) = (work / "cumulo" / "volumes").rglob(f"volume-{vid}.qcow2")
        fill(source, args.data_mib, work)
        original = raw_sha256(source, work)

        backups, backup_times = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            bid = api.call("POST", "/backups", {"backup": {"volume_id": vid}}).json()["backup"]["id"]
            backup_times.append(api.wait(f"/backups/{bid}", "backup", "available", t0))
            api.wait(f"/volumes/{vid}", "volume", "available", t0)
            backups.append(bid)
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5c 300M 8M", str(source)], check=True,
                       capture_output=True)
        t0 = time.perf_counter()
        inc = api.call("POST", "/backups", {"backup": {"volume_id": vid, "incremental": True}}).json()["backup"]["id"]
        inc_time = api.wait(f"/backups/{inc}", "backup", "available", t0)
        inc_objects = api.call("GET", f"/backups/{inc}").json()["backup"]["object_count"]
        api.wait(f"/volumes/{vid}", "volume", "available", t0)

        restore_times, same = [], True
        for i in range(args.runs):
            t0 = time.perf_counter()
            out = api.call("POST", f"/backups/{backups[0]}/restore", {"restore": {"name": f"bench-r{i}"}}).json()
            rid = out["restore"]["volume_id"]
            restore_times.append(api.wait(f"/volumes/{rid}", "volume", "available", t0))
            (restored,) = (work / "cumulo" / "volumes").rglob(f"volume-{rid}.qcow2")
            same = same and raw_sha256(restored, work) == original
        stored = sum(p.stat().st_size for p in (work / "cumulo" / "backups" / "volumebackups" / backups[0]).iterdir())

        # the engine alone, in this process: what the agent does without the API and the bus around it
        engine = BackupEngine(DirectoryStore(work / "engine"))
        t0 = time.perf_counter()
        engine.backup(source, backup_id="direct", volume_id=vid, container="volumebackups")
        direct_backup = time.perf_counter() - t0
        t0 = time.perf_counter()
        engine.restore("volumebackups", "direct", work / "direct.qcow2")
        direct_restore = time.perf_counter() - t0

        med_b, med_r = statistics.median(backup_times), statistics.median(restore_times)
        lines += [
            f"# 1 GiB volume, {args.data_mib} MiB of non-zero data (half random, half text), {os.cpu_count()} cores, "
            f"SQLite, in-process bus; MB/s of that data; goal >= {GOAL:.0f} MB/s",
            f"{'measurement':<44} {'runs':>4} {'median s':>9} {'MB/s':>7}  note",
            f"{'backup create -> available (full)':<44} {args.runs:>4} {med_b:>9.3f} {mbps(args.data_mib, med_b):>7.0f}"
            f"  min {min(backup_times):.3f} s; stored {stored / MiB:.1f} MiB",
            f"{'backup create -> available (incremental)':<44} {1:>4} {inc_time:>9.3f} {'':>7}  8 MiB changed: "
            f"{inc_objects} chunk objects stored",
            f"{'restore -> new volume available':<44} {args.runs:>4} {med_r:>9.3f} {mbps(args.data_mib, med_r):>7.0f}"
            f"  min {min(restore_times):.3f} s; sha256 of the raw bytes {'matches' if same else 'DIFFERS'}",
            f"{'engine alone: backup':<44} {1:>4} {direct_backup:>9.3f} {mbps(args.data_mib, direct_backup):>7.0f}",
            f"{'engine alone: restore':<44} {1:>4} {direct_restore:>9.3f} {mbps(args.data_mib, direct_restore):>7.0f}",
        ]
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))
    return 0 if lines and "DIFFERS" not in lines[4] else 1


if __name__ == "__main__":
    sys.exit(main())
