#!/usr/bin/env python3
"""Block storage latencies over the Block Storage v3 API, against a real cloud on this machine.

    .venv/bin/python bench/volume.py [--runs 10] [--concurrent 50]

One `cumulo up` (identity, image, volume; SQLite, the in-process bus, the embedded volume agent
with its qcow2 file driver, API workers as `cumulo up` sets them) answers real HTTP on 127.0.0.1.
Each figure runs from the moment the request is sent until a GET shows the state it waits for;
the GETs come every --poll-ms (20 ms), so the poll adds at most that to a figure.

(a) create -> available, an empty 1 GiB volume, --runs times one after another.
    Goal (issue 13): <= 0.2 s.  Anchor: Rally's cinder create at 1000 nodes, 2.58 s.
(b) create -> available, a 1 GiB volume from the cumulo-tiny image (the guest build the image
    service uploads at start-up; the agent downloads it over HTTP and converts it), --runs times.
(c) snapshot create -> available of an available 1 GiB volume, --runs times (each deleted again).
(d) --concurrent creates of 1 GiB volumes sent at once (quota raised first): the wall time until
    all are available, each one's time, and how many failed (a refused POST, an error, or not
    available within the timeout); the goal is 0 failed.  One list request per poll watches them.
(e) delete -> gone (GET answers 404) of the volumes of (a).

Everything it makes (the state directory, the volumes, the cloud's processes) is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import admin_session, start_cumulo, stop  # noqa: E402

SERVICES = "identity,image,volume"
CREATE_GOAL = "<= 0.2 s (Rally at 1000 nodes: 2.58 s)"


@dataclass
class BlockStorage:
    """Plain HTTP to /v3/{project_id} of the Block Storage API as the admin, one keep-alive pool."""

    url: str
    token: str
    poll: float
    timeout: float
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, headers={"X-Auth-Token": self.token}, timeout=60,
                                   limits=httpx.Limits(max_connections=200, max_keepalive_connections=200))

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return self.client.request(method, path, json=body)

    def wait(self, path: str, key: str, want: str | None, t0: float) -> tuple[float, str]:
        """Seconds from ``t0`` until ``path`` shows status ``want`` (None: until it answers 404),
        and the state it ended in; a terminal error state or the timeout ends the wait early."""
        while True:
            r = self.call("GET", path)
            now = time.perf_counter()
            if r.status_code == 404:
                return now - t0, "gone"
            r.raise_for_status()
            status = r.json()[key]["status"]
            if status == want or status.startswith("error"):
                return now - t0, status
            if now - t0 > self.timeout:
                return now - t0, f"timeout ({status})"
            time.sleep(self.poll)


@dataclass
class Figures:
    """One measurement's times, and what did not end as it should."""

    name: str
    times: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    goal: str = ""
    note: str = ""


def record(f: Figures, elapsed: float, status: str, want: str, what: str | None) -> None:
    if status == want:
        f.times.append(elapsed)
    else:
        f.failed.append(f"{what}: {status}")


# -- the measurements, one function each (an attach/detach one joins when compute attaches volumes) --
def create_volume(bs: BlockStorage, body: dict[str, Any]) -> tuple[str | None, float, str]:
    t0 = time.perf_counter()
    r = bs.call("POST", "/volumes", {"volume": body})
    if r.status_code != 202:
        return None, time.perf_counter() - t0, f"POST {r.status_code}: {r.text[:120]}"
    vid = r.json()["volume"]["id"]
    elapsed, status = bs.wait(f"/volumes/{vid}", "volume", "available", t0)
    return vid, elapsed, status


def measure_create(bs: BlockStorage, name: str, runs: int, body: dict[str, Any], made: list[str],
                   goal: str = "") -> Figures:
    out = Figures(name, goal=goal)
    for i in range(runs):
        vid, elapsed, status = create_volume(bs, {**body, "name": f"bench-{name[:5]}-{i}"})
        if vid:
            made.append(vid)
        record(out, elapsed, status, "available", vid)
    return out


def measure_snapshot(bs: BlockStorage, runs: int, volume_id: str) -> tuple[Figures, Figures]:
    """Snapshot create -> available, and its delete -> gone (one snapshot at a time)."""
    made, gone = Figures("snapshot create -> available"), Figures("snapshot delete -> gone")
    for i in range(runs):
        t0 = time.perf_counter()
        r = bs.call("POST", "/snapshots", {"snapshot": {"volume_id": volume_id, "name": f"bench-snap-{i}"}})
        if r.status_code != 202:
            made.failed.append(f"POST {r.status_code}: {r.text[:120]}")
            continue
        sid = r.json()["snapshot"]["id"]
        elapsed, status = bs.wait(f"/snapshots/{sid}", "snapshot", "available", t0)
        record(made, elapsed, status, "available", sid)
        t0 = time.perf_counter()
        bs.call("DELETE", f"/snapshots/{sid}")
        elapsed, status = bs.wait(f"/snapshots/{sid}", "snapshot", None, t0)
        record(gone, elapsed, status, "gone", sid)
    return made, gone


@dataclass
class Batch:
    each: Figures  # POST sent -> seen available, per volume
    answers: Figures  # POST sent -> its 202
    wall: float  # the first POST sent -> the last volume seen available
    round_trip: float  # a list request's mean time


def measure_concurrent(bs: BlockStorage, n: int, made: list[str]) -> Batch:
    """``n`` creates sent at once from ``n`` threads while one GET /volumes/detail per poll records
    when each is first seen available (polling each volume every 20 ms would load the server more
    than the creates do).  The polling starts with the POSTs, so a volume ready before the last POST
    is answered counts as ready then."""
    each, answers = Figures(f"{n} at once: create -> available"), Figures(f"{n} at once: POST -> 202")
    sent: queue.Queue[tuple[str, float]] = queue.Queue()
    t0 = time.perf_counter()

    def post(i: int) -> None:
        started = time.perf_counter()
        r = bs.call("POST", "/volumes", {"volume": {"size": 1, "name": f"bench-batch-{i}"}})
        if r.status_code == 202:
            answers.times.append(time.perf_counter() - started)  # list.append is atomic
            sent.put((r.json()["volume"]["id"], started))
        else:  # a failed create of the batch, shown in both rows
            answers.failed.append(f"POST {r.status_code}: {r.text[:120]}")
            each.failed.append(answers.failed[-1])

    started_at: dict[str, float] = {}
    pending: set[str] = set()
    rounds, spent = 0, 0.0
    with ThreadPoolExecutor(n) as pool:
        posts = [pool.submit(post, i) for i in range(n)]
        while True:
            in_flight = not all(f.done() for f in posts)
            while not sent.empty():
                vid, started = sent.get()
                started_at[vid] = started
                pending.add(vid)
            if not pending and not in_flight:
                break
            before = time.perf_counter()
            r = bs.call("GET", "/volumes/detail?limit=1000")
            now = time.perf_counter()
            rounds, spent = rounds + 1, spent + (now - before)
            r.raise_for_status()
            for v in r.json()["volumes"]:
                if v["id"] not in pending or v["status"] == "creating":
                    continue
                pending.discard(v["id"])
                if v["status"] == "available":
                    each.times.append(now - started_at[v["id"]])
                else:
                    each.failed.append(f"{v['id']}: {v['status']}")
            if now - t0 > bs.timeout:
                each.failed.extend(f"{vid}: timeout" for vid in pending)
                break
            time.sleep(bs.poll)
    made.extend(started_at)
    return Batch(each, answers, time.perf_counter() - t0, spent / max(rounds, 1))


def measure_delete(bs: BlockStorage, volume_ids: list[str]) -> Figures:
    out = Figures("volume delete -> gone")
    for vid in volume_ids:
        t0 = time.perf_counter()
        r = bs.call("DELETE", f"/volumes/{vid}")
        if r.status_code != 202:
            out.failed.append(f"{vid}: DELETE {r.status_code}")
            continue
        elapsed, status = bs.wait(f"/volumes/{vid}", "volume", None, t0)
        record(out, elapsed, status, "gone", vid)
    return out


# -- setting up ------------------------------------------------------------------------------------
def wait_until(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := check():
            return got
        time.sleep(0.2)
    raise SystemExit(f"{what} did not happen in {timeout:.0f} s")


def warm_up(bs: BlockStorage) -> None:
    """Creates until one becomes available: the agent's pool must have reported before a create can
    land anywhere, and the first request of each worker pays for imports that a figure should not."""
    def one() -> bool:
        vid, _, status = create_volume(bs, {"size": 1, "name": "bench-warm-up"})
        if vid:
            bs.call("DELETE", f"/volumes/{vid}")
            bs.wait(f"/volumes/{vid}", "volume", None, time.perf_counter())
        return status == "available"

    wait_until("a first volume", one, 30)
    for _ in range(3):
        one()


def delete_everything(bs: BlockStorage) -> int:
    """Whatever is left in the project (an interrupted run's too), snapshots first."""
    left = 0
    for kind, key in (("snapshots", "snapshot"), ("volumes", "volume")):
        items = bs.call("GET", f"/{kind}?limit=1000").json()[kind]
        left += len(items)
        for item in items:
            bs.call("DELETE", f"/{kind}/{item['id']}")
        for item in items:
            bs.wait(f"/{kind}/{item['id']}", key, None, time.perf_counter())
    return left


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]  # nearest rank


def row(f: Figures) -> str:
    if f.times:
        t = f.times
        nums = (f"{min(t):7.3f} {statistics.median(t):7.3f} {percentile(t, 0.95):7.3f} {max(t):7.3f}")
    else:
        nums = f"{'-':>7} {'-':>7} {'-':>7} {'-':>7}"
    return f"{f.name:<34} {len(f.times):>3} {len(f.failed):>4}  {nums}  {f.goal or f.note}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="sequential runs of (a), (b), (c) (default 10)")
    ap.add_argument("--concurrent", type=int, default=50, help="creates sent at once in (d) (default 50)")
    ap.add_argument("--poll-ms", type=float, default=20, help="interval between status GETs (default 20)")
    ap.add_argument("--timeout", type=float, default=60, help="seconds a volume may take (default 60)")
    ap.add_argument("--port", type=int, default=5042, help="identity's port; image +1, volume +2 (default 5042)")
    args = ap.parse_args()
    begun = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="cumulo-bench-volume-"))
    image_port, volume_port = args.port + 1, args.port + 2
    proc = None
    figures: list[Figures] = []
    try:
        proc, ep = start_cumulo(work, 4, args.port, {
            "CUMULO_SERVICES": SERVICES, "CUMULO_IMAGE__PORT": str(image_port),
            "CUMULO_VOLUME__PORT": str(volume_port)})
        headers, project = admin_session(ep)
        token = headers["X-Auth-Token"]
        bs = BlockStorage(f"http://127.0.0.1:{volume_port}/v3/{project}", token, args.poll_ms / 1000, args.timeout)
        # room for the batch and the sequential runs (defaults: 10 volumes, 1000 GiB)
        need = args.concurrent + 2 * args.runs + 10
        r = bs.call("PUT", f"/os-quota-sets/{project}", {"quota_set": {
            "volumes": need, "gigabytes": need, "snapshots": args.runs + 10}})
        r.raise_for_status()
        image = wait_until("the cumulo-tiny image", lambda: next(iter(httpx.get(
            f"http://127.0.0.1:{image_port}/v2/images?name=cumulo-tiny&status=active",
            headers={"X-Auth-Token": token}).json()["images"]), None), 60)
        # the leader writes status.json once its API workers are up: before it, a worker still starting
        # would take the CPU from the figures
        status_file = work / "cumulo" / "status.json"
        wait_until("cumulo's status.json", status_file.exists, 60)
        warm_up(bs)
        status = json.loads(status_file.read_text())
        extra = len(status["workers"])
        serving = f"the leader and {extra} API worker{'s' if extra > 1 else ''}" if extra else "one process"
        started = time.perf_counter()
        empty: list[str] = []
        figures.append(measure_create(bs, "create -> available, empty 1 GiB", args.runs, {"size": 1}, empty,
                                      CREATE_GOAL))
        print(row(figures[-1]), flush=True)
        from_image: list[str] = []
        disk = (image.get("virtual_size") or 0) / 2**20
        image_note = f"cumulo-tiny: {image['size'] / 2**20:.1f} MiB qcow2, {disk:.0f} MiB disk"
        figures.append(measure_create(bs, "create -> available, from image", args.runs,
                                      {"size": 1, "imageRef": image["id"]}, from_image))
        figures[-1].note = image_note
        print(row(figures[-1]), flush=True)
        if empty:
            figures.extend(measure_snapshot(bs, args.runs, empty[0]))
            print(row(figures[-2]), row(figures[-1]), sep="\n", flush=True)
        batch = measure_concurrent(bs, args.concurrent, [])
        batch.each.note = f"all available after {batch.wall:.2f} s wall"
        figures.extend((batch.answers, batch.each))
        print(row(batch.answers), row(batch.each), sep="\n", flush=True)
        figures.append(measure_delete(bs, empty))
        print(row(figures[-1]), flush=True)
        measured = time.perf_counter() - started
        left = delete_everything(bs)
        files = list((work / "cumulo" / "volumes").rglob("*.qcow2"))
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"# Block Storage v3 over HTTP on 127.0.0.1 ({serving}), {os.cpu_count()} cores, SQLite, in-process bus, "
          f"qcow2 file driver")
    print(f"# status polled every {args.poll_ms:.0f} ms (the batch: one list per poll, "
          f"{batch.round_trip * 1000:.0f} ms a round trip); times in seconds")
    print(f"{'measurement':<34} {'ok':>3} {'fail':>4}  {'min':>7} {'median':>7} {'p95':>7} {'max':>7}  goal / note")
    for f in figures:
        print(row(f))
    print(f"(d) {args.concurrent} creates at once: all available after {batch.wall:.2f} s, "
          f"{len(batch.each.failed)} failed (goal: 0)")
    for f in figures:
        for why in f.failed[:5]:
            print(f"  failed in {f.name}: {why}")
    print(f"measured in {measured:.1f} s ({time.perf_counter() - begun:.0f} s with start-up and cleanup); "
          f"cleanup deleted {left} volumes/snapshots, {len(files)} volume files were left after it")
    return 1 if any(f.failed for f in figures) else 0


if __name__ == "__main__":
    raise SystemExit(main())
