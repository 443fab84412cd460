"""The Network API and its dataplane on this machine (real namespaces, dnsmasq, iptables; a real
QEMU guest for the DHCP figure).

    .venv/bin/python bench/network_dataplane.py [--ports 1000] [--concurrency 10] [--leases 3]

(a) ``--ports`` ports created on one network, ``--concurrency`` clients: POST latency p50/p99
    and the total, with the dataplane running (each change reaches dnsmasq's hosts).
(b) from the POST of a port to its guest holding the DHCP lease (the port is then given to a new
    server; the lease is read from dnsmasq's lease file), ``--leases`` times, with the guest's own
    uptime when it started DHCP (most of the figure is the guest booting under TCG).
(c) a security group with 100 rules put on 10 server ports: from the first PUT until the
    iptables rules of all 10 ports are in the bridge namespace.

Neutron is not run beside it: a working Neutron needs its server, an ML2 agent and a message
queue set up together; there is no one-package peer to install from PyPI for these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import admin_session, start_cumulo, stop  # noqa: E402


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def create_ports(url: str, headers: dict[str, str], network: str, count: int, concurrency: int
                       ) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            t = time.perf_counter()
            r = await client.post(f"{url}/ports", headers=headers, json={"port": {"network_id": network,
                                                                                  "name": f"bench-{i}"}})
            latencies.append(time.perf_counter() - t)
            assert r.status_code == 201, r.text

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ports", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--leases", type=int, default=3)
    ap.add_argument("--port", type=int, default=5032)
    ap.add_argument("--no-dataplane", action="store_true", help="(a) only, with the API alone")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cumulo-bench-net-"))
    prefix = f"cumulo-bench-{int(time.time()) % 100000}"
    compute_port, image_port, network_port = args.port + 1, args.port + 3, args.port + 5
    env = {"CUMULO_COMPUTE__LOCAL_NODE": "true", "CUMULO_COMPUTE__FAKE_NODES": "0",
           "CUMULO_COMPUTE__HOST": "bench-node", "CUMULO_COMPUTE__PORT": str(compute_port),
           "CUMULO_PLACEMENT__PORT": str(args.port + 2), "CUMULO_IMAGE__PORT": str(image_port),
           "CUMULO_COMPUTE__METADATA_PORT": str(args.port + 4), "CUMULO_NETWORK__PORT": str(network_port),
           "CUMULO_COMPUTE__BUILD_TIMEOUT": "600",
           "CUMULO_NETWORK__DATAPLANE": "false" if args.no_dataplane else "true",
           "CUMULO_NETWORK__NAMESPACE_PREFIX": prefix, "CUMULO_LOGGING__LEVEL": "INFO"}
    proc, ep = start_cumulo(work, 4, args.port, env)
    net_url = f"http://127.0.0.1:{network_port}/v2.0"
    compute = f"http://127.0.0.1:{compute_port}/v2.1"
    try:
        headers, project = admin_session(ep)
        httpx.put(f"{net_url}/quotas/{project}", headers=headers, json={"quota": {
            "port": -1, "security_group_rule": -1}})
        net = httpx.post(f"{net_url}/networks", headers=headers, json={"network": {"name": "bench"}}).json()["network"]
        httpx.post(f"{net_url}/subnets", headers=headers, json={"subnet": {
            "network_id": net["id"], "cidr": "10.99.0.0/20", "ip_version": 4}}).raise_for_status()

        # (a)
        total, lat = asyncio.run(create_ports(net_url, headers, net["id"], args.ports, args.concurrency))
        print(f"(a) {args.ports} ports, {args.concurrency} clients: {total:.2f} s in all "
              f"({args.ports / total:.0f}/s), POST p50 {pct(lat, 0.5) * 1000:.1f} ms, "
              f"p99 {pct(lat, 0.99) * 1000:.1f} ms")

        if args.no_dataplane:
            return 0
        # (b)
        image = httpx.get(f"http://127.0.0.1:{image_port}/v2/images?name=cumulo-tiny", headers=headers
                          ).json()["images"][0]["id"]
        leases_file = work / "cumulo" / "network" / "dhcp" / net["id"] / "leases"
        figures = []
        for i in range(args.leases):
            t0 = time.perf_counter()
            port = httpx.post(f"{net_url}/ports", headers=headers, json={"port": {"network_id": net["id"]}}
                              ).json()["port"]
            server = httpx.post(f"{compute}/servers", headers=headers, json={"server": {
                "name": f"lease-{i}", "flavorRef": "10", "imageRef": image, "networks": [{"port": port["id"]}],
                "user_data": base64.b64encode(b"#!/bin/sh\ntrue\n").decode()}}).json()["server"]
            active = None
            while True:
                if active is None and httpx.get(f"{compute}/servers/{server['id']}", headers=headers
                                                ).json()["server"]["status"] == "ACTIVE":
                    active = time.perf_counter() - t0
                if leases_file.exists() and port["mac_address"] in leases_file.read_text():
                    break
                if time.perf_counter() - t0 > 120:
                    raise SystemExit("no lease after 120 s")
                time.sleep(0.05)
            leased = time.perf_counter() - t0
            figures.append(leased)
            asked = ""
            for _ in range(100):  # the guest says when (in its own uptime) it started DHCP
                out = httpx.post(f"{compute}/servers/{server['id']}/action", headers=headers,
                                 json={"os-getConsoleOutput": {}}).json().get("output", "")
                found = re.search(r"dhcp on eth0 at ([\d.]+) s", out)
                if found:
                    asked = f" (the guest asked at {found.group(1)} s of its uptime)"
                    break
                time.sleep(0.1)
            print(f"(b) port create -> ACTIVE {active or 0:.2f} s, -> DHCP lease {leased:.2f} s{asked}")
            httpx.delete(f"{compute}/servers/{server['id']}", headers=headers)
        print(f"(b) port create -> guest's DHCP lease: mean {statistics.mean(figures):.2f} s "
              f"(min {min(figures):.2f}, max {max(figures):.2f})")

        # (c)
        group = httpx.post(f"{net_url}/security-groups", headers=headers, json={"security_group": {
            "name": "hundred"}}).json()["security_group"]
        for n in range(100):
            httpx.post(f"{net_url}/security-group-rules", headers=headers, json={"security_group_rule": {
                "security_group_id": group["id"], "direction": "ingress", "protocol": "tcp",
                "port_range_min": 1000 + n, "port_range_max": 1000 + n}}).raise_for_status()
        ports = [httpx.post(f"{net_url}/ports", headers=headers, json={"port": {
            "network_id": net["id"], "device_owner": "compute:nova", "device_id": f"bench-sg-{i}",
            "binding:host_id": "bench-node"}}).json()["port"] for i in range(10)]
        time.sleep(2)  # the agent has settled
        t0 = time.perf_counter()
        for p in ports:
            httpx.put(f"{net_url}/ports/{p['id']}", headers=headers, json={"port": {
                "security_groups": [group["id"]]}}).raise_for_status()
        put_done = time.perf_counter() - t0
        while True:
            rules = subprocess.run(["ip", "netns", "exec", f"{prefix}-dp", "iptables-save", "-t", "filter"],
                                   capture_output=True, text=True).stdout
            if all(sum(1 for line in rules.splitlines() if line.startswith(f"-A ci-{p['id'][:10]} ")
                       and "--dport 1" in line) >= 100 for p in ports):
                break
            time.sleep(0.02)
        print(f"(c) 100 rules on 10 ports: PUTs done after {put_done:.2f} s, all rules in place "
              f"{time.perf_counter() - t0:.2f} s after the first PUT")
    finally:
        stop(proc)
        subprocess.run([str(Path(sys.executable).parent / "cumulo"), "network", "cleanup", "--yes"],
                       capture_output=True, env={**os.environ, "CUMULO_STATE_DIR": str(work / "cumulo"),
                                                 "CUMULO_NETWORK__NAMESPACE_PREFIX": prefix})
        for entry in Path("/proc").iterdir():  # the guests of this run only
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if entry.name.isdigit() and b"qemu-system" in cmd and str(work).encode() in cmd:
                os.kill(int(entry.name), signal.SIGKILL)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
