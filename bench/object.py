#!/usr/bin/env python3
"""Object storage side by side: Cumulo's Swift v1 API and OpenStack Swift 2.38 from PyPI, one run.

    .venv/bin/python bench/object.py [--duration 10] [--clients 1,4,8] [--listing-objects 100000]
    .venv/bin/python bench/object.py --duration 5 --listing-objects 20000 --json /tmp/object.json
    .venv/bin/python bench/object.py --listing-objects 1000000 --fill-timeout 7200   # the issue's 1M

Both stores run on this machine at once, on free 127.0.0.1 ports, and every phase runs against
one and then the other, so a change in the machine's load hits both alike:

* Cumulo: one `cumulo up` with services identity,object (SQLite unless --db-url), one process
  ([api] workers = 1), the default ring (3 device directories, 3 replicas, part power 10), object
  encryption at rest off unless --encryption (Swift's pipeline has no encryption either), the
  background replicator moved out of the way (interval 1 h; Swift runs no replicator here).
* Swift: bench/swift_peer.py (installed once into ~/.cache/cumulo-bench/swift-venv): proxy,
  account, container and object servers with workers = 1 each, 3 device directories, rings of 3
  replicas built by swift-ring-builder, memcached, tempauth, the sample pipeline.

Auth costs match: each side gets one token before the figures (Keystone password auth for
Cumulo, tempauth for Swift) and sends it on every request; each validates it per request (Cumulo
from its token cache, Swift from memcached).

The client is asyncio + httpx (keep-alive, one pool per store) in this process, the same for both;
on a small machine it shares the CPU with the servers, so absolute figures are a floor.

Phases (a progress line for each on stderr):
(1) 4 KiB PUT, then GET of what was put, at each --clients level for --duration seconds
    (at most --max-requests per point): req/s, p50/p99 latency, errors.
(2) 1 MiB PUT/GET, --mib-count objects one after another; 100 MiB (--big-mib) PUT/GET,
    --big-count objects: MB/s (10^6 bytes/s) over the whole body.
(3) the fill: --listing-objects zero-byte PUTs into one fresh container by --fill-clients clients
    (stopped at --fill-timeout), the PUT rate of the first and last 10% of it.
(4) --listings GETs of ?limit=1000&marker=<random name> from that container: p50/p99, and the
    rows they returned.

A table goes to stdout, and the figures as JSON to --json (a file) or, without it, after the
table.  Ctrl-C stops both stores and removes the work directory (only the processes this script
started are stopped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import swift_peer  # noqa: E402
from bench.common import admin_session, start_cumulo, stop  # noqa: E402

KIB4 = 4096
MIB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]  # nearest rank


@dataclass
class Store:
    name: str
    url: str  # the account's URL: .../v1/AUTH_...
    token: str
    client: httpx.AsyncClient = field(init=False)

    def open(self) -> None:
        self.client = httpx.AsyncClient(headers={"X-Auth-Token": self.token}, timeout=120,
                                        limits=httpx.Limits(max_connections=256, max_keepalive_connections=256))


# -- the phases ------------------------------------------------------------------------------------
async def timed_loop(store: Store, clients: int, duration: float, max_requests: int,
                     one: Any) -> dict[str, Any]:
    """``clients`` tasks calling ``one(i)`` (an awaitable returning True when the answer was right)
    until ``duration`` has passed or ``max_requests`` were sent."""
    lat: list[float] = []
    errors = 0
    sent = 0
    end = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal errors, sent
        while time.perf_counter() < end and sent < max_requests:
            i = sent
            sent += 1
            t0 = time.perf_counter()
            try:
                ok = await one(i)
            except httpx.HTTPError:
                ok = False
            lat.append(time.perf_counter() - t0)
            errors += not ok

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - t0
    return {"requests": len(lat), "errors": errors, "seconds": round(wall, 3),
            "req_s": round(len(lat) / wall, 1) if wall else 0.0,
            "p50_ms": round(pct(lat, 0.5) * 1000, 2), "p99_ms": round(pct(lat, 0.99) * 1000, 2)}


async def small_objects(store: Store, clients: int, duration: float, max_requests: int) -> dict[str, Any]:
    container = f"{store.url}/bench-small-{clients}"
    r = await store.client.put(container)
    r.raise_for_status()
    body = os.urandom(KIB4)
    names: list[str] = []

    async def put(i: int) -> bool:
        r = await store.client.put(f"{container}/o{i:08d}", content=body)
        if r.status_code == 201:
            names.append(f"o{i:08d}")
            return True
        return False

    async def get(i: int) -> bool:
        r = await store.client.get(f"{container}/{random.choice(names)}")
        return r.status_code == 200 and len(r.content) == KIB4

    out = {"put": await timed_loop(store, clients, duration, max_requests, put)}
    if names:
        out["get"] = await timed_loop(store, clients, duration, max_requests, get)
    return out


async def stream_body(size: int, chunk: bytes) -> Any:
    left = size
    while left > 0:
        piece = chunk[:min(left, len(chunk))]
        left -= len(piece)
        yield piece


async def throughput(store: Store, size: int, count: int) -> dict[str, Any]:
    container = f"{store.url}/bench-bulk"
    (await store.client.put(container)).raise_for_status()
    chunk = os.urandom(MIB)
    put_s, get_s, errors = 0.0, 0.0, 0
    for i in range(count):
        t0 = time.perf_counter()
        r = await store.client.put(f"{container}/b{size}-{i}", content=stream_body(size, chunk),
                                   headers={"Content-Length": str(size)})
        put_s += time.perf_counter() - t0
        errors += r.status_code != 201
    for i in range(count):
        t0 = time.perf_counter()
        got = 0
        async with store.client.stream("GET", f"{container}/b{size}-{i}") as r:
            async for piece in r.aiter_raw(MIB):
                got += len(piece)
        get_s += time.perf_counter() - t0
        errors += r.status_code != 200 or got != size
    total = size * count
    for i in range(count):
        await store.client.delete(f"{container}/b{size}-{i}")
    return {"size": size, "count": count, "errors": errors,
            "put_MB_s": round(total / put_s / 1e6, 1), "get_MB_s": round(total / get_s / 1e6, 1)}


async def fill(store: Store, n: int, clients: int, timeout: float) -> dict[str, Any]:
    container = f"{store.url}/bench-listing"
    (await store.client.put(container)).raise_for_status()
    stamps: list[float] = [0.0] * n  # when each PUT was answered
    done = 0
    errors = 0
    nxt = 0
    t0 = time.perf_counter()
    end = t0 + timeout
    last_note = t0

    async def worker() -> None:
        nonlocal nxt, done, errors, last_note
        while nxt < n and time.perf_counter() < end:
            i = nxt
            nxt += 1
            try:
                r = await store.client.put(f"{container}/{i:09d}", content=b"")
                ok = r.status_code == 201
            except httpx.HTTPError:
                ok = False
            stamps[done] = time.perf_counter() - t0
            done += 1
            errors += not ok
            if stamps[done - 1] - (last_note - t0) > 30:
                last_note = time.perf_counter()
                progress(f"  {store.name} fill: {done}/{n} in {stamps[done - 1]:.0f} s "
                         f"({done / stamps[done - 1]:.0f}/s)")

    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - t0
    tenth = max(1, done // 10)

    def rate(a: int, b: int) -> float:
        span = stamps[b - 1] - (stamps[a - 1] if a else 0.0)
        return round((b - a) / span, 1) if span > 0 else 0.0

    return {"objects": done, "wanted": n, "errors": errors, "seconds": round(wall, 1),
            "put_s": round(done / wall, 1) if wall else 0.0,
            "first_10pct_put_s": rate(0, tenth), "last_10pct_put_s": rate(done - tenth, done),
            "timed_out": done < n}


async def listing(store: Store, filled: int, count: int, rng: random.Random) -> dict[str, Any]:
    container = f"{store.url}/bench-listing"
    lat: list[float] = []
    rows: list[int] = []
    errors = 0
    markers = [rng.randrange(max(1, filled - 1000)) for _ in range(count)]
    for m in markers:
        t0 = time.perf_counter()
        r = await store.client.get(container, params={"limit": "1000", "marker": f"{m:09d}", "format": "json"})
        lat.append(time.perf_counter() - t0)
        if r.status_code != 200:
            errors += 1
            continue
        rows.append(len(r.json()))
    want = min(1000, max(0, filled - 1))
    return {"requests": count, "errors": errors, "p50_ms": round(pct(lat, 0.5) * 1000, 2),
            "p99_ms": round(pct(lat, 0.99) * 1000, 2), "min_rows": min(rows, default=0),
            "rows_expected_at_least": min(want, 1000 - 1) if filled > 1000 else 0}


# -- the stores ------------------------------------------------------------------------------------
def start_cumulo_store(work: Path, args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], Store]:
    port, object_port = free_port(), free_port()
    env = {"CUMULO_SERVICES": "identity,object", "CUMULO_OBJECT__PORT": str(object_port),
           "CUMULO_OBJECT__S3_PORT": "0", "CUMULO_API__WORKERS": "1",
           "CUMULO_OBJECT__ENCRYPTION": "true" if args.encryption else "false",
           "CUMULO_OBJECT__REPLICATOR_INTERVAL": "3600", "CUMULO_OBJECT__EXPIRER_INTERVAL": "3600",
           "CUMULO_METRICS__PORT": str(free_port())}
    if args.db_url:
        env["CUMULO_DATABASE__URL"] = args.db_url
    proc, ep = start_cumulo(work, 4, port, env)
    headers, project = admin_session(ep)
    url = f"http://127.0.0.1:{object_port}/v1/AUTH_{project}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.head(url, headers={"X-Auth-Token": headers["X-Auth-Token"]}, timeout=2).status_code < 300:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"Cumulo's object API did not answer; see {work}/cumulo.log")
        time.sleep(0.3)
    return proc, Store("cumulo", url, headers["X-Auth-Token"])


async def run(stores: list[Store], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {s.name: {} for s in stores}
    for s in stores:
        s.open()
        # warm-up: first requests pay for imports, connections and account creation
        (await s.client.put(f"{s.url}/bench-warm")).raise_for_status()
        for i in range(20):
            await s.client.put(f"{s.url}/bench-warm/w{i}", content=b"x" * KIB4)
            await s.client.get(f"{s.url}/bench-warm/w{i}")
    try:
        for c in args.clients:
            for s in stores:
                progress(f"{s.name}: 4 KiB PUT then GET, {c} client(s), {args.duration:g} s each")
                r = await small_objects(s, c, args.duration, args.max_requests)
                out[s.name][f"4k_c{c}"] = r
                progress(f"  put {r['put']['req_s']} req/s, get {r.get('get', {}).get('req_s')} req/s")
        for size, count in ((MIB, args.mib_count), (args.big_mib * MIB, args.big_count)):
            if count <= 0:
                continue
            for s in stores:
                progress(f"{s.name}: {size // MIB} MiB PUT/GET x {count}")
                r = await throughput(s, size, count)
                out[s.name][f"bulk_{size // MIB}m"] = r
                progress(f"  put {r['put_MB_s']} MB/s, get {r['get_MB_s']} MB/s")
        if args.listing_objects > 0:
            for s in stores:
                progress(f"{s.name}: filling a container with {args.listing_objects} zero-byte objects "
                         f"({args.fill_clients} clients, at most {args.fill_timeout:g} s)")
                r = await fill(s, args.listing_objects, args.fill_clients, args.fill_timeout)
                out[s.name]["fill"] = r
                progress(f"  {r['objects']} in {r['seconds']} s: {r['put_s']}/s "
                         f"(first 10% {r['first_10pct_put_s']}/s, last 10% {r['last_10pct_put_s']}/s)")
                progress(f"{s.name}: {args.listings} listings of 1,000 at random markers")
                lr = await listing(s, r["objects"], args.listings, random.Random(7))
                out[s.name]["listing"] = lr
                progress(f"  p50 {lr['p50_ms']} ms, p99 {lr['p99_ms']} ms")
    finally:
        for s in stores:
            await s.client.aclose()
    return out


def table(res: dict[str, Any], names: list[str]) -> list[str]:
    lines = [f"{'measurement':<30} " + " ".join(f"{n:>28}" for n in names) + "   ratio"]

    def add(label: str, cells: list[str], vals: list[float], higher_better: bool = True) -> None:
        ratio = ""
        if len(vals) == 2 and all(v == v and v > 0 for v in vals):
            ratio = f"{vals[0] / vals[1]:.2f}x" if higher_better else f"{vals[1] / vals[0]:.2f}x"
        lines.append(f"{label:<30} " + " ".join(f"{c:>28}" for c in cells) + f"   {ratio}")

    keys = [k for k in res[names[0]] if k.startswith("4k_c")]
    for k in keys:
        for op in ("put", "get"):
            got = [res[n].get(k, {}).get(op) for n in names]
            if not all(got):
                continue
            add(f"4 KiB {op.upper()} c={k[4:]} req/s (p50/p99 ms)",
                [f"{g['req_s']:.0f} ({g['p50_ms']:.1f}/{g['p99_ms']:.1f}){'!' if g['errors'] else ''}" for g in got],
                [g["req_s"] for g in got])
    for k in [k for k in res[names[0]] if k.startswith("bulk_")]:
        got = [res[n][k] for n in names]
        for op in ("put", "get"):
            add(f"{k[5:-1]} MiB {op.upper()} MB/s (x{got[0]['count']})",
                [f"{g[op + '_MB_s']:.1f}{'!' if g['errors'] else ''}" for g in got], [g[op + "_MB_s"] for g in got])
    if "fill" in res[names[0]]:
        got = [res[n]["fill"] for n in names]
        add(f"fill {got[0]['wanted']:,} x 0 B PUT/s", [f"{g['put_s']:.0f} ({g['objects']:,} in {g['seconds']:.0f} s)"
                                                     for g in got], [g["put_s"] for g in got])
        add("  first 10% -> last 10% PUT/s", [f"{g['first_10pct_put_s']:.0f} -> {g['last_10pct_put_s']:.0f}"
                                              for g in got], [g["last_10pct_put_s"] for g in got])
        got = [res[n]["listing"] for n in names]
        add("list 1,000 p50/p99 ms", [f"{g['p50_ms']:.1f}/{g['p99_ms']:.1f}{'!' if g['errors'] else ''}"
                                      for g in got], [g["p50_ms"] for g in got], higher_better=False)
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10, help="seconds per 4 KiB point (default 10)")
    ap.add_argument("--clients", default="1,4,8", help="concurrent clients of the 4 KiB points (default 1,4,8)")
    ap.add_argument("--max-requests", type=int, default=100_000, help="requests per 4 KiB point at most")
    ap.add_argument("--mib-count", type=int, default=20, help="1 MiB objects put and got (default 20; 0: skip)")
    ap.add_argument("--big-mib", type=int, default=100, help="size of the large objects in MiB (default 100)")
    ap.add_argument("--big-count", type=int, default=3, help="large objects put and got (default 3; 0: skip)")
    ap.add_argument("--listing-objects", type=int, default=100_000,
                    help="objects in the listing container (default 100,000; the issue's 1,000,000 "
                         "takes ~30-60 min per store to fill; 0: skip)")
    ap.add_argument("--fill-clients", type=int, default=32, help="concurrent PUTs of the fill (default 32)")
    ap.add_argument("--fill-timeout", type=float, default=1800, help="seconds a fill may take per store "
                    "(default 1800; the listing then runs over what was filled)")
    ap.add_argument("--listings", type=int, default=100, help="listing requests timed (default 100)")
    ap.add_argument("--only", choices=("cumulo", "swift"), help="run one store only")
    ap.add_argument("--db-url", default="", help="Cumulo's database (default: SQLite in the work directory; "
                    "e.g. postgresql://postgres@127.0.0.1:5432/<a fresh database>)")
    ap.add_argument("--encryption", action="store_true",
                    help="Cumulo's at-rest encryption on (off by default: Swift's pipeline here has none)")
    ap.add_argument("--workdir", type=Path, help="where the stores keep their data (default: a new directory "
                    "under $TMPDIR; it must take user xattrs for Swift); removed at the end")
    ap.add_argument("--json", type=Path, help="write the figures here (default: print them after the table)")
    args = ap.parse_args()
    args.clients = [int(c) for c in args.clients.split(",") if c.strip()]
    if any(c < 1 or c > 256 for c in args.clients) or not 1 <= args.fill_clients <= 256:
        ap.error("clients must be 1..256")
    if args.listing_objects > 10_000_000 or args.big_mib > 5 * 1024 or args.listings > 100_000:
        ap.error("--listing-objects <= 10,000,000, --big-mib <= 5120, --listings <= 100,000")
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cumulo-bench-object-", dir=args.workdir))
    # SIGTERM ends the run as Ctrl-C does: the finally below stops what was started
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    cumulo_proc = None
    swift_procs: list[subprocess.Popen[bytes]] = []
    stores: list[Store] = []
    begun = time.perf_counter()
    try:
        if args.only != "swift":
            progress("starting Cumulo (identity,object; one process)")
            cumulo_proc, store = start_cumulo_store(work, args)
            stores.append(store)
        if args.only != "cumulo":
            progress(f"starting Swift (installing {swift_peer.SWIFT_SPEC} first if {swift_peer.VENV} is empty)")
            ports = {k: free_port() for k in ("proxy", "account", "container", "object", "memcached")}
            swift_procs, url, token = swift_peer.start(work / "swift", ports)
            stores.append(Store("swift", url, token))
        res = asyncio.run(run(stores, args))
    except KeyboardInterrupt:
        progress("interrupted: stopping the stores")
        return 130
    finally:
        if cumulo_proc is not None:
            stop(cumulo_proc)
        swift_peer.stop(swift_procs)
        if "res" not in locals():
            shutil.rmtree(work, ignore_errors=True)
    try:
        report(res, stores, args, begun)
    finally:
        progress(f"removing {work} (3 replicas of every object: this can take a while)")
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any(v.get("errors") for r in res.values() for p in r.values()
                    for v in (p.values() if "put" in p else [p]) if isinstance(v, dict)) else 0


def report(res: dict[str, Any], stores: list[Store], args: argparse.Namespace, begun: float) -> None:
    names = [s.name for s in stores]
    meta = {"swift_version": swift_peer.version() if "swift" in names else None, "cores": os.cpu_count(),
            "loadavg_at_end": os.getloadavg(), "args": {k: (str(v) if isinstance(v, Path) else v)
                                                         for k, v in vars(args).items()},
            "cumulo_db": args.db_url.split("@")[-1] if args.db_url else "sqlite",
            "cumulo_encryption": args.encryption, "seconds": round(time.perf_counter() - begun, 1)}
    print(f"# object storage, {os.cpu_count()} cores, load average at the end {os.getloadavg()[0]:.1f}; "
          f"Cumulo one process ({meta['cumulo_db']}, encryption {'on' if args.encryption else 'off'}), "
          f"Swift {meta['swift_version']} workers=1 per server; 3 replicas each; '!' = some errors")
    for line in table(res, names):
        print(line)
    doc = {"meta": meta, "results": res}
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"# figures written to {args.json}")
    else:
        print(json.dumps(doc, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
