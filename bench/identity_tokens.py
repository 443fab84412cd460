#!/usr/bin/env python3
"""Token issue and validate: Cumulo side by side with Keystone, on this machine, in one run.

    .venv/bin/python bench/identity_tokens.py                      # both, 10 s per figure
    .venv/bin/python bench/identity_tokens.py --target cumulo --duration 5
    .venv/bin/python bench/identity_tokens.py --url http://127.0.0.1:5000/v3 --user admin --password X

What it measures, with wrk (Debian's, a C load generator that is not the bottleneck):
  * issue    — POST /v3/auth/tokens, password method, project scope;
  * validate — GET /v3/auth/tokens with X-Subject-Token (an admin validating a user's token);
each at 1 and 4 concurrent connections: requests/s, p50 and p99 latency, and non-2xx answers.

Fairness: both use bcrypt with the same cost (--bcrypt-rounds, default 4: the cheapest, so the
service rather than the KDF is measured; run with 12 for Keystone's default cost), SQLite, Fernet
tokens, and log at warning level.  Keystone (pip `keystone`, see bench/keystone_peer.py) runs under
gunicorn with one sync worker per core and its in-memory cache on; Cumulo runs as `cumulo up`
with its API workers (--workers, default 0: one process per core, as Keystone; 1 for the single
process).  Keystone listens on 127.0.0.1:5001, Cumulo on 127.0.0.1:5002.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import keystone_peer  # noqa: E402
from common import Endpoint, start_cumulo, stop, wait_up  # noqa: E402


@dataclass
class Figure:
    target: str
    operation: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def token(ep: Endpoint) -> str:
    r = httpx.post(f"{ep.url}/auth/tokens", json=issue_body(ep), timeout=30)
    r.raise_for_status()
    return r.headers["X-Subject-Token"]


def issue_body(ep: Endpoint) -> dict[str, object]:
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": ep.user, "domain": {"id": "default"}, "password": ep.password}}},
        "scope": {"project": {"name": ep.project, "domain": {"id": "default"}}}}}


def parse_wrk(out: str) -> tuple[float, float, float, int]:
    def ms(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    count = int(errors.group(1)) if errors else 0
    if socket_errors:
        count += sum(int(x) for x in socket_errors.groups())
    return rps, p50, p99, count


def wrk(url: str, concurrency: int, duration: float, headers: dict[str, str], script: Path | None) -> str:
    cmd = ["wrk", f"-t{min(concurrency, 2)}", f"-c{concurrency}", f"-d{duration:.0f}s", "--latency",
           "--timeout", "30s"]
    for key, value in headers.items():
        cmd += ["-H", f"{key}: {value}"]
    if script is not None:
        cmd += ["-s", str(script)]
    return subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout


def measure(ep: Endpoint, duration: float, workdir: Path) -> list[Figure]:
    figures = []
    body = json.dumps(issue_body(ep)).replace("\\", "\\\\").replace("'", "\\'")
    script = workdir / f"issue-{ep.name}.lua"
    script.write_text(f"wrk.method = 'POST'\nwrk.body = '{body}'\n"
                      "wrk.headers['Content-Type'] = 'application/json'\n")
    admin, subject = token(ep), token(ep)
    for concurrency in (1, 4):
        out = wrk(f"{ep.url}/auth/tokens", concurrency, duration, {}, script)
        figures.append(Figure(ep.name, "issue", concurrency, *parse_wrk(out)))
        out = wrk(f"{ep.url}/auth/tokens", concurrency, duration,
                  {"X-Auth-Token": admin, "X-Subject-Token": subject}, None)
        figures.append(Figure(ep.name, "validate", concurrency, *parse_wrk(out)))
    return figures


def report(figures: list[Figure], rounds: int) -> None:
    print(f"\n# bcrypt cost {rounds}; wrk on 127.0.0.1; {os.cpu_count()} cores")
    print(f"{'target':9s} {'operation':9s} {'conc':>4s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} "
          f"{'errors':>6s} {'vs keystone':>11s}")
    base = {(f.operation, f.concurrency): f for f in figures if f.target == "keystone"}
    for f in figures:
        peer = base.get((f.operation, f.concurrency))
        ratio = f"{f.rps / peer.rps:.1f}x" if peer and f.target != "keystone" and peer.rps else ""
        print(f"{f.target:9s} {f.operation:9s} {f.concurrency:4d} {f.rps:9.1f} {f.p50_ms:8.2f} {f.p99_ms:8.2f} "
              f"{f.errors:6d} {ratio:>11s}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", choices=["both", "cumulo", "keystone"], default="both")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per figure (default 10)")
    ap.add_argument("--bcrypt-rounds", type=int, default=4)
    ap.add_argument("--keystone-workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--workers", type=int, default=0, help="Cumulo's [api] workers (0: one per core)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--url", help="measure an already running cloud instead (its /v3 URL)")
    ap.add_argument("--user", default="admin")
    ap.add_argument("--password")
    ap.add_argument("--project", default="admin")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="cumulo-bench-"))
    figures: list[Figure] = []
    if args.url:
        figures += measure(Endpoint("given", args.url, args.user, args.password or "", args.project),
                           args.duration, workdir)
    else:
        if args.target in ("both", "keystone"):
            print("# starting Keystone (first run installs it into its own venv)", flush=True)
            proc, ep = keystone_peer.start(workdir / "keystone", args.bcrypt_rounds, args.keystone_workers)
            try:
                wait_up(ep["url"], proc)
                figures += measure(Endpoint("keystone", **ep), args.duration, workdir)
            finally:
                stop(proc)
        if args.target in ("both", "cumulo"):
            print("# starting Cumulo", flush=True)
            proc, cep = start_cumulo(workdir, args.bcrypt_rounds, extra_env={"CUMULO_API__WORKERS": str(args.workers)})
            try:
                status = workdir / "cumulo" / "status.json"  # written once every API worker serves
                deadline = time.monotonic() + 60
                while not status.exists() and time.monotonic() < deadline:
                    time.sleep(0.1)
                print(f"# Cumulo serves from {1 + len(json.loads(status.read_text()).get('workers', {}))} "
                      "process(es)", flush=True)
                figures += measure(cep, args.duration, workdir)
            finally:
                stop(proc)
    report(figures, args.bcrypt_rounds)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(f) for f in figures], indent=2))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
