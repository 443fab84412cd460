"""Compute control plane at scale, on fake nodes (the fake driver answers at once, so what is
measured is the API, the database, the scheduler, placement and the bus).

    .venv/bin/python bench/compute_scale.py [--servers 1000] [--nodes 10] [--concurrency 10]
        [--list-rows 10000] [--database-url postgresql://...] [--bus-url amqp://...]

(a) boot: ``--servers`` creates (one POST each, ``--concurrency`` at a time) on ``--nodes`` fake
    nodes; wall time from the first POST until every server is ACTIVE, and the POST latencies.
(b) list: ``--list-rows`` servers in the database (the booted ones plus rows written straight
    into the table, the way a large cloud's history looks), then GET /servers/detail?limit=1000
    repeated: p50/p99.  Nova's anchor: ~11 s for this at 10 cells x 10k; the goal is < 0.3 s.
(c) scheduling: decisions per second of the filter/weigher pipeline alone, in this process, on
    10, 100 and 1000 hosts; and end to end (host view + placement claim) from (a).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import start_cumulo, stop  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def token(url: str, user: str, password: str, project: str) -> str:
    r = httpx.post(f"{url}/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}})
    r.raise_for_status()
    return r.headers["x-subject-token"]


async def boot(compute: str, headers: dict[str, str], image: str, count: int, concurrency: int
               ) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:
        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                t0 = time.perf_counter()
                r = await client.post(f"{compute}/servers", headers=headers, json={"server": {
                    "name": f"bench-{i}", "flavorRef": "10", "imageRef": image, "networks": "none"}})
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 202:
                    raise SystemExit(f"create failed: {r.status_code} {r.text[:300]}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        while True:
            r = await client.get(f"{compute}/servers/detail?limit=1000&status=BUILD", headers=headers)
            building = len(r.json()["servers"])
            r = await client.get(f"{compute}/servers/detail?limit=1000&status=ERROR", headers=headers)
            if r.json()["servers"]:
                raise SystemExit(f"servers in ERROR: {r.json()['servers'][0].get('fault')}")
            if building == 0:
                break
            await asyncio.sleep(0.2)
        return time.perf_counter() - start, latencies


async def fill(db_url: str, rows: int, project: str, user: str, image: str) -> None:
    """Write ``rows`` ACTIVE servers straight into the table, spread over time."""
    import datetime as dt

    from sqlalchemy import insert
    from sqlalchemy.ext.asyncio import create_async_engine

    from cumulo.compute.models import Server
    from cumulo.core.db import async_url

    engine = create_async_engine(async_url(db_url))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    flavor = {"id": "10", "name": "cumulo.nano", "vcpus": 1, "ram": 128, "disk": 1, "ephemeral": 0, "swap": 0,
              "extra_specs": {}}
    batch: list[dict[str, object]] = []
    async with engine.begin() as conn:
        for i in range(rows):
            when = now - dt.timedelta(seconds=rows - i)
            batch.append({"id": str(uuid.uuid4()), "name": f"history-{i}", "project_id": project, "user_id": user,
                          "flavor": flavor, "flavor_id": "10", "image_id": image, "meta": {"n": str(i)},
                          "vm_state": "active", "power_state": 1, "host": f"fake-{i % 10}",
                          "availability_zone": "nova", "created_at": when, "updated_at": when, "launched_at": when,
                          "locked": False, "config_drive": False, "request": {}, "system_meta": {}})
            if len(batch) == 1000:
                await conn.execute(insert(Server), batch)
                batch = []
        if batch:
            await conn.execute(insert(Server), batch)
    await engine.dispose()


def scheduler_rate() -> dict[int, float]:
    from cumulo.compute.scheduler.scheduler import Scheduler
    from cumulo.compute.scheduler.state import HostState, RequestSpec

    out = {}
    sched = Scheduler()
    for n in (10, 100, 1000):
        hosts = [HostState(host=f"h{i}", node=str(i), vcpus=16, vcpus_free=256 - i % 7, ram_mb_free=49152 - i * 3,
                           disk_gb_free=500, aggregate_metadata={"ssd": {"true"}} if i % 2 else {}) for i in range(n)]
        spec = RequestSpec(vcpus=1, ram_mb=128, disk_gb=1, zone="nova")
        rounds = max(20, 20000 // n)
        t0 = time.perf_counter()
        for _ in range(rounds):
            sched.select(hosts, spec)
        out[n] = rounds / (time.perf_counter() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--list-rows", type=int, default=10000)
    ap.add_argument("--list-requests", type=int, default=30)
    ap.add_argument("--database-url", default="", help="default: SQLite in the work directory")
    ap.add_argument("--bus-url", default="", help="default: the in-process bus")
    ap.add_argument("--port", type=int, default=5012)
    args = ap.parse_args()

    rates = scheduler_rate()
    print("(c) scheduler pipeline alone: " + ", ".join(f"{n} hosts {r:,.0f} decisions/s" for n, r in rates.items()),
          flush=True)

    work = Path(tempfile.mkdtemp(prefix="cumulo-bench-compute-"))
    compute_port, placement_port, image_port = args.port + 1, args.port + 2, args.port + 3
    db_url = args.database_url or f"sqlite:///{work}/cumulo/cumulo.db"
    env = {"CUMULO_COMPUTE__FAKE_NODES": str(args.nodes), "CUMULO_COMPUTE__PORT": str(compute_port),
           "CUMULO_PLACEMENT__PORT": str(placement_port), "CUMULO_IMAGE__PORT": str(image_port),
           "CUMULO_COMPUTE__METADATA_PORT": str(args.port + 4),
           "CUMULO_COMPUTE__REPORT_INTERVAL": "10", "CUMULO_COMPUTE__BUILD_TIMEOUT": "600",
           "CUMULO_COMPUTE__LOCAL_NODE": "false"}
    if args.database_url:
        env["CUMULO_DATABASE__URL"] = args.database_url
    if args.bus_url:
        env["CUMULO_BUS__URL"] = args.bus_url
    proc, ep = start_cumulo(work, 4, args.port, env)
    try:
        tok = token(ep.url, ep.user, ep.password, ep.project)
        headers = {"X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.47"}
        compute = f"http://127.0.0.1:{compute_port}/v2.1"
        project = httpx.get(f"{ep.url}/auth/tokens", headers={"X-Auth-Token": tok, "X-Subject-Token": tok}
                            ).json()["token"]
        for name in ("instances", "cores", "ram"):
            r = httpx.put(f"{compute}/os-quota-sets/{project['project']['id']}", headers=headers,
                          json={"quota_set": {name: -1}})
            r.raise_for_status()
        deadline = time.monotonic() + 60
        while len(httpx.get(f"{compute}/os-hypervisors", headers=headers).json()["hypervisors"]) < args.nodes:
            if time.monotonic() > deadline:
                raise SystemExit("the fake nodes did not register")
            time.sleep(0.5)
        image = httpx.get(f"http://127.0.0.1:{image_port}/v2/images?name=cumulo-tiny",
                          headers={"X-Auth-Token": tok}).json()["images"]
        image_id = image[0]["id"] if image else str(uuid.uuid4())
        wall, lat = asyncio.run(boot(compute, headers, image_id, args.servers, args.concurrency))
        print(f"(a) {args.servers} servers on {args.nodes} fake nodes: all ACTIVE after {wall:.1f} s "
              f"({args.servers / wall:.0f} servers/s end to end); POST /servers p50 {pct(lat, 50) * 1000:.1f} ms "
              f"p99 {pct(lat, 99) * 1000:.1f} ms (concurrency {args.concurrency})", flush=True)
        extra = max(0, args.list_rows - args.servers)
        asyncio.run(fill(db_url, extra, project["project"]["id"], project["user"]["id"], image_id))
        times = []
        with httpx.Client(timeout=60) as client:
            for _ in range(args.list_requests):
                t0 = time.perf_counter()
                r = client.get(f"{compute}/servers/detail?limit=1000", headers=headers)
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200 and len(r.json()["servers"]) == 1000, r.text[:300]
        print(f"(b) GET /servers/detail?limit=1000 with {args.servers + extra} servers: p50 "
              f"{pct(times, 50) * 1000:.0f} ms p99 {pct(times, 99) * 1000:.0f} ms "
              f"(mean {statistics.mean(times) * 1000:.0f} ms over {len(times)})", flush=True)
        print(f"(c) end to end (host view + placement claim + agent round trip): {args.servers / wall:.0f} "
              "servers scheduled and built per second", flush=True)
    finally:
        stop(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
