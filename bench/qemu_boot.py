"""Real guests: boot times and density of the QEMU driver with the cumulo-tiny guest (direct
kernel boot), on this machine (TCG here, KVM where usable).

    .venv/bin/python bench/qemu_boot.py [--single 5] [--batch 20]

(a) one server at a time, ``--single`` times: POST /servers -> ACTIVE, and -> the guest's ready
    marker on its console ("cumulo-guest ready").  Anchor: Rally's mean boot at 1000 nodes was
    13.1 s; the goal here is <= 2.5 s to ready under TCG.
(b) ``--batch`` servers requested at once: time until all are ready, and the slowest.
(c) live migration between two QEMU nodes of this machine (block migration over loopback): time
    from the request until the server is ACTIVE on the other node, and QEMU's own total time and
    downtime.
(d) idle guests per GiB: the resident memory of the batch's QEMU processes once they idle.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import admin_session, start_cumulo, stop  # noqa: E402

READY = "cumulo-guest ready"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--single", type=int, default=5)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--port", type=int, default=5022)
    ap.add_argument("--image", action="append", metavar="NAME",
                    help="(a) with this image (again for more, each in turn; default cumulo-tiny, and "
                         "cumulo-tiny-fast is the small kernel); the rest always use cumulo-tiny")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cumulo-bench-qemu-"))
    compute_port, image_port = args.port + 1, args.port + 3
    env = {"CUMULO_COMPUTE__LOCAL_NODE": "true", "CUMULO_COMPUTE__FAKE_NODES": "0",
           "CUMULO_COMPUTE__HOST": "bench-node", "CUMULO_COMPUTE__PORT": str(compute_port),
           "CUMULO_PLACEMENT__PORT": str(args.port + 2), "CUMULO_IMAGE__PORT": str(image_port),
           "CUMULO_COMPUTE__METADATA_PORT": str(args.port + 4),
           "CUMULO_COMPUTE__BUILD_TIMEOUT": "600", "CUMULO_COMPUTE__REPORT_INTERVAL": "5",
           "CUMULO_COMPUTE__LOCAL_NODES": "2", "CUMULO_LOGGING__LEVEL": "INFO"}
    proc, ep = start_cumulo(work, 4, args.port, env)
    compute = f"http://127.0.0.1:{compute_port}/v2.1"
    try:
        headers, project = admin_session(ep)
        for name in ("instances", "cores", "ram"):
            httpx.put(f"{compute}/os-quota-sets/{project}", headers=headers, json={"quota_set": {name: -1}})
        image = httpx.get(f"http://127.0.0.1:{image_port}/v2/images?name=cumulo-tiny",
                          headers=headers).json()["images"][0]["id"]
        deadline = time.monotonic() + 30
        while not httpx.get(f"{compute}/os-hypervisors/detail", headers=headers).json()["hypervisors"]:
            assert time.monotonic() < deadline, "the QEMU node did not register"
            time.sleep(0.3)
        hv = httpx.get(f"{compute}/os-hypervisors/detail", headers=headers).json()["hypervisors"][0]

        def boot(name: str, zone: str | None = None, ref: str | None = None) -> tuple[str, float, float]:
            with httpx.Client(timeout=60) as c:
                t0 = time.perf_counter()
                r = c.post(f"{compute}/servers", headers=headers, json={"server": {
                    "name": name, "flavorRef": "10", "imageRef": ref or image, "networks": "none",
                    **({"availability_zone": zone} if zone else {})}})
                r.raise_for_status()
                sid = r.json()["server"]["id"]
                active = None
                while True:
                    if active is None:
                        s = c.get(f"{compute}/servers/{sid}", headers=headers).json()["server"]
                        if s["status"] == "ERROR":
                            raise SystemExit(f"{name}: {s.get('fault')}")
                        if s["status"] == "ACTIVE":
                            active = time.perf_counter() - t0
                    if active is not None:
                        out = c.post(f"{compute}/servers/{sid}/action", headers=headers,
                                     json={"os-getConsoleOutput": {}})
                        if out.status_code == 200 and READY in out.json()["output"]:
                            return sid, active, time.perf_counter() - t0
                    time.sleep(0.05)

        def delete_all() -> None:
            for s in httpx.get(f"{compute}/servers", headers=headers).json()["servers"]:
                httpx.delete(f"{compute}/servers/{s['id']}", headers=headers)
            time.sleep(1)

        def resident_mib() -> float:
            """The resident memory of this run's QEMU processes."""
            kib = 0
            for entry in Path("/proc").iterdir():
                try:
                    if entry.name.isdigit() and str(work).encode() in (entry / "cmdline").read_bytes():
                        kib += next(int(x.split()[1]) for x in (entry / "status").read_text().splitlines()
                                    if x.startswith("VmRSS:"))
                except (OSError, StopIteration):
                    continue
            return kib / 1024

        for name in args.image or ["cumulo-tiny"]:  # one after the other, each left running
            ref = httpx.get(f"http://127.0.0.1:{image_port}/v2/images?name={name}",
                            headers=headers).json()["images"][0]["id"]
            singles = [boot(f"single-{i}", ref=ref) for i in range(args.single)]
            time.sleep(5)  # idle
            rss = resident_mib() / len(singles)
            delete_all()
            actives, readies = [x[1] for x in singles], [x[2] for x in singles]
            print(f"(a) {name}, {hv['hypervisor_type']}: POST -> ACTIVE mean {statistics.mean(actives):.2f} s "
                  f"(min {min(actives):.2f}); POST -> ready mean {statistics.mean(readies):.2f} s "
                  f"(min {min(readies):.2f}, max {max(readies):.2f}) over {len(singles)}; "
                  f"{rss:.0f} MiB resident per idle guest", flush=True)
        sid = boot("mover", "nova:bench-node")[0]
        t0 = time.perf_counter()
        httpx.post(f"{compute}/servers/{sid}/action", headers=headers, json={
            "os-migrateLive": {"host": None, "block_migration": "auto"}}).raise_for_status()
        while True:
            s = httpx.get(f"{compute}/servers/{sid}", headers=headers).json()["server"]
            if s["OS-EXT-SRV-ATTR:host"] != "bench-node" and s["OS-EXT-STS:task_state"] is None:
                break
            if time.perf_counter() - t0 > 120:
                raise SystemExit(f"live migration did not finish: {s['status']} {s.get('fault')}")
            time.sleep(0.05)
        api_total = time.perf_counter() - t0
        import re

        figures = re.findall(r"live migration of \S+: (\d+) ms in all, (\d+) ms downtime",
                             (work / "cumulo.log").read_text())
        total_ms, down_ms = figures[-1] if figures else ("?", "?")
        print(f"(c) live migration: ACTIVE on the other node {api_total:.2f} s after the request; QEMU: "
              f"{total_ms} ms in all, {down_ms} ms downtime", flush=True)
        delete_all()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.batch) as pool:
            batch = list(pool.map(boot, [f"batch-{i}" for i in range(args.batch)]))
        wall = time.perf_counter() - t0
        slowest, fastest = max(b[2] for b in batch), min(b[2] for b in batch)
        print(f"(b) {args.batch} servers at once: all ready after {wall:.1f} s, slowest {slowest:.1f} s, "
              f"fastest {fastest:.1f} s", flush=True)
        time.sleep(5)  # idle
        rss_kb = 0
        instances = work / "cumulo" / "instances" / "bench-node"
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if str(instances).encode() not in (entry / "cmdline").read_bytes():
                    continue
                for line in (entry / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        rss_kb += int(line.split()[1])
            except OSError:
                continue
        gib = rss_kb / (1 << 20)
        each = rss_kb / 1024 / args.batch
        print(f"(d) {args.batch} idle guests (128 MiB flavor, TCG tb-size 32 MiB): {each:.0f} MiB resident each, "
              f"{args.batch / gib:.1f} guests per GiB", flush=True)
        delete_all()
    finally:
        stop(proc)
        for entry in Path("/proc").iterdir():  # guests of an interrupted run: ours, by their paths
            try:
                if entry.name.isdigit() and str(work).encode() in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                continue
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
