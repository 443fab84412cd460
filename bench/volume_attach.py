#!/usr/bin/env python3
"""Attach and detach of a volume in a real guest, timed until the guest itself sees the change.

    .venv/bin/python bench/volume_attach.py [--runs 10]

One `cumulo up` (identity, image, compute, placement, volume; SQLite, the in-process bus, this
machine as the QEMU node, the embedded volume agent) boots one cumulo-tiny server whose user-data
watches /sys/block every 20 ms and prints a line on the serial console when a disk with a serial
appears or goes.  Then, --runs times:

(a) attach: POST os-volume_attachments -> the guest's console line that the disk appeared.
    Goal (issue 13): <= 1 s.  Anchor: Rally's attach at 1000 nodes, 2.77 s (its 2 s polling).
(b) detach: DELETE os-volume_attachments -> the guest's console line that it is gone.
(c) attach -> the volume shows in-use in the Block Storage API; detach -> available.

The console is read through the Compute API every 50 ms, so a figure holds up to 50 ms of polling
and the guest's 20 ms on top of the work.  Everything is removed at the end.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import admin_session, start_cumulo, stop  # noqa: E402

WATCHER = """#!/bin/sh
(seen=""; while true; do
  now=""
  for b in /sys/block/vd*; do
    s=$(cat "$b/serial" 2>/dev/null); [ -n "$s" ] && now="$now $s"
  done
  for s in $now; do case " $seen " in *" $s "*) ;; *) echo "disk $s appeared" > /dev/console;; esac; done
  for s in $seen; do case " $now " in *" $s "*) ;; *) echo "disk $s went" > /dev/console;; esac; done
  seen="$now"
  sleep 0.02
done) &
"""
POLL = 0.05


def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.perf_counter() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(POLL)


def line(name: str, values: list[float], goal: str = "") -> str:
    values = sorted(values)
    return (f"{name:34s} {len(values):3d} {values[0]:8.3f} {statistics.median(values):8.3f} "
            f"{values[-1]:8.3f}  {goal}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="attach/detach rounds (default 10)")
    ap.add_argument("--port", type=int, default=5062, help="identity's port; the others follow it (default 5062)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cumulo-bench-attach-"))
    p = args.port
    env = {"CUMULO_SERVICES": "identity,image,compute,placement,volume", "CUMULO_COMPUTE__LOCAL_NODE": "true",
           "CUMULO_COMPUTE__FAKE_NODES": "0", "CUMULO_COMPUTE__HOST": "bench-node",
           "CUMULO_IMAGE__PORT": str(p + 1), "CUMULO_COMPUTE__PORT": str(p + 2), "CUMULO_PLACEMENT__PORT": str(p + 3),
           "CUMULO_COMPUTE__METADATA_PORT": str(p + 4), "CUMULO_VOLUME__PORT": str(p + 5),
           "CUMULO_VOLUME__REPORT_INTERVAL": "1"}
    proc, ep = start_cumulo(work, 4, p, env)
    compute, volume_api = f"http://127.0.0.1:{p + 2}/v2.1", f"http://127.0.0.1:{p + 5}/v3"
    try:
        headers, project = admin_session(ep)
        c = httpx.Client(headers=headers, timeout=60)
        image = until(lambda: c.get(f"http://127.0.0.1:{p + 1}/v2/images?name=cumulo-tiny").json()["images"], 60,
                      "the cumulo-tiny image")[0]["id"]
        until(lambda: c.get(f"{compute}/os-hypervisors").json()["hypervisors"], 30, "the QEMU node")
        r = c.post(f"{compute}/servers", json={"server": {
            "name": "attach-bench", "flavorRef": "10", "imageRef": image, "networks": "none", "config_drive": True,
            "user_data": base64.b64encode(WATCHER.encode()).decode()}})
        r.raise_for_status()
        sid = r.json()["server"]["id"]

        def console() -> str:
            r = c.post(f"{compute}/servers/{sid}/action", json={"os-getConsoleOutput": {}})
            return str(r.json().get("output", "")) if r.status_code == 200 else ""

        until(lambda: "cumulo-guest ready" in console(), 180, "the guest to boot")
        r = c.post(f"{volume_api}/{project}/volumes", json={"volume": {"size": 1, "name": "attach-bench"}})
        r.raise_for_status()
        vid = r.json()["volume"]["id"]

        def status() -> str:
            return str(c.get(f"{volume_api}/{project}/volumes/{vid}").json()["volume"]["status"])

        until(lambda: status() == "available", 30, "the volume")
        def timed(t0: float, want: str, marker: str, count: int) -> tuple[float, float]:
            """Seconds from t0 until the guest printed ``marker`` for the count-th time, and until
            the volume's status became ``want``."""
            marks = {"guest": 0.0, "api": 0.0}

            def done() -> bool:
                if not marks["api"] and status() == want:
                    marks["api"] = time.perf_counter() - t0
                if not marks["guest"] and console().count(marker) >= count:
                    marks["guest"] = time.perf_counter() - t0
                return bool(marks["guest"] and marks["api"])

            until(done, 60, f"{marker} and {want}")
            return marks["guest"], marks["api"]

        seen, gone, in_use, available = [], [], [], []
        path = f"{compute}/servers/{sid}/os-volume_attachments"
        for n in range(1, args.runs + 1):
            t0 = time.perf_counter()
            c.post(path, json={"volumeAttachment": {"volumeId": vid}}).raise_for_status()
            guest, api = timed(t0, "in-use", f"disk {vid[:20]} appeared", n)
            seen.append(guest)
            in_use.append(api)
            t0 = time.perf_counter()
            c.delete(f"{path}/{vid}").raise_for_status()
            guest, api = timed(t0, "available", f"disk {vid[:20]} went", n)
            gone.append(guest)
            available.append(api)
        print(f"{'seconds (console polled every 50 ms)':34s} {'n':>3s} {'min':>8s} {'median':>8s} {'max':>8s}  goal")
        print(line("(a) attach -> visible in the guest", seen, "<= 1 s (Rally at 1000 nodes: 2.77 s)"))
        print(line("(b) detach -> gone from the guest", gone))
        print(line("(c) attach -> volume in-use", in_use))
        print(line("(c) detach -> volume available", available))
        c.delete(f"{compute}/servers/{sid}")
        until(lambda: status() == "available", 30, "the volume to be free")
        c.delete(f"{volume_api}/{project}/volumes/{vid}")
    finally:
        stop(proc)
        for entry in Path("/proc").iterdir():  # guests this run started outlive the cloud: end them
            try:
                if entry.name.isdigit() and str(work).encode() in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
