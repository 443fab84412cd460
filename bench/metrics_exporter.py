"""The cost of the cloud-level gauges and the per-instance meters (cumulo/ops/exporter.py) at scale.

    .venv/bin/python bench/metrics_exporter.py [--servers 1000] [--nodes 4] [--scrapes 30]

Boots ``--servers`` servers on ``--nodes`` fake nodes (as bench/compute_scale.py does), waits until
the leader's gauges count them, then times ``--scrapes`` GETs of the operator port's /metrics and
reports the leader's own figures: the refresh of the openstack_* gauges (the aggregate queries)
and a round of ceilometer_* meters (one diagnostics call per running server over the bus).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import start_cumulo, stop  # noqa: E402
from bench.compute_scale import boot, pct, token  # noqa: E402


def gauge(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--scrapes", type=int, default=30)
    ap.add_argument("--port", type=int, default=5032)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cumulo-bench-exporter-"))
    compute_port, image_port = args.port + 1, args.port + 3
    env = {"CUMULO_COMPUTE__FAKE_NODES": str(args.nodes), "CUMULO_COMPUTE__PORT": str(compute_port),
           "CUMULO_PLACEMENT__PORT": str(args.port + 2), "CUMULO_IMAGE__PORT": str(image_port),
           "CUMULO_COMPUTE__METADATA_PORT": str(args.port + 5), "CUMULO_COMPUTE__REPORT_INTERVAL": "10",
           "CUMULO_COMPUTE__BUILD_TIMEOUT": "600", "CUMULO_METRICS__CLOUD_INTERVAL": "5",
           "CUMULO_METRICS__METER_INTERVAL": "10", "CUMULO_API__WORKERS": "1"}
    proc, ep = start_cumulo(work, 4, args.port, env)
    metrics = f"http://127.0.0.1:{args.port + 4000}/metrics"
    try:
        tok = token(ep.url, ep.user, ep.password, ep.project)
        headers = {"X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.47"}
        compute = f"http://127.0.0.1:{compute_port}/v2.1"
        project = httpx.get(f"{ep.url}/auth/tokens", headers={"X-Auth-Token": tok, "X-Subject-Token": tok}
                            ).json()["token"]["project"]["id"]
        for name in ("instances", "cores", "ram"):
            httpx.put(f"{compute}/os-quota-sets/{project}", headers=headers,
                      json={"quota_set": {name: -1}}).raise_for_status()
        while len(httpx.get(f"{compute}/os-hypervisors", headers=headers).json()["hypervisors"]) < args.nodes:
            time.sleep(0.5)
        image = httpx.get(f"http://127.0.0.1:{image_port}/v2/images?name=cumulo-tiny",
                          headers={"X-Auth-Token": tok}).json()["images"][0]["id"]
        wall, _ = asyncio.run(boot(compute, headers, image, args.servers, 10))
        print(f"{args.servers} servers ACTIVE on {args.nodes} fake nodes in {wall:.0f} s", flush=True)
        deadline = time.monotonic() + 120
        while True:
            text = httpx.get(metrics, timeout=30).text
            if gauge(text, "openstack_nova_total_vms") == args.servers and gauge(text, "cumulo_exporter_meter_seconds"):
                break
            if time.monotonic() > deadline:
                raise SystemExit("the gauges did not count the servers in 120 s")
            time.sleep(1)
        times = []
        with httpx.Client(timeout=30) as client:
            for _ in range(args.scrapes):
                t0 = time.perf_counter()
                text = client.get(metrics).text
                times.append(time.perf_counter() - t0)
        series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        cloud = sum(1 for line in text.splitlines() if line.startswith(("openstack_", "ceilometer_")))
        print(f"GET /metrics: p50 {pct(times, 50) * 1000:.1f} ms, p99 {pct(times, 99) * 1000:.1f} ms "
              f"({len(text) / 1024:.0f} KiB, {series} samples of which {cloud} openstack_*/ceilometer_*)")
        print(f"leader's refresh of the openstack_* gauges: {gauge(text, 'cumulo_exporter_refresh_seconds') * 1000:.0f}"
              f" ms every 5 s here (30 s by default); a round of ceilometer_* meters: "
              f"{gauge(text, 'cumulo_exporter_meter_seconds') * 1000:.0f} ms ({args.servers} diagnostics calls)")
    finally:
        stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
