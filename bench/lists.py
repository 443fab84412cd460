#!/usr/bin/env python3
"""List calls at scale, and a security group shared by many ports, on SQLite and PostgreSQL.

    .venv/bin/python bench/lists.py                                  # both backends, full size
    .venv/bin/python bench/lists.py --backend sqlite --ports 10000 --images 2000 --requests 20

What it measures, against a throw-away `cumulo up` (identity, image, network; no dataplane):
  * ports  — GET /v2.0/ports?limit=1000 (the first page, then pages at random markers) as a
    member of the project that holds --ports ports (each with one address): p50 and p99 over
    --requests requests;
  * images — GET /v2/images?limit=1000 the same way as that member, with --images images of
    which a tenth are the member's, a fifth public, a tenth shared with it (accepted), a tenth
    community and the rest other projects' private ones (which it must never see);
  * group  — --group-ports ports sharing one security group whose rules admit the group itself:
    a rule is added through the API, then the controller's side of applying it is timed as the
    agent meets it — the desired state (``Topology.state``, what ``network.dataplane_state``
    answers) and the iptables text for IPv4 and IPv6 (``firewall.rules``, which the agent hands
    to iptables-restore); with the number of rule lines, and the longest time the event loop
    was held meanwhile (a ticker every 5 ms notes its lateness).
The fill is written with SQL (the service's tables, in batches, through Cumulo's Database), not
through the API: 100,000 ports made one by one would take longer than the benchmark.

Figures on this 2-core machine shared with other work (2026-12-03; 100,000 ports, 10,000 images,
1,000 ports in the group; p50/p99 in ms; before = the commit before d38f88d, 10 requests):

    backend   ports p50/p99          images p50/p99     group: state + iptables text, lines, loop held
    sqlite    19,010/31,047 -> 51/144  822/1,106 -> 45/137  9,132+3,190 ms, 2,048,030, 3,628 ms
                                                           -> 2,399+147 ms, 54,038, 138 ms
    postgres  500 (too many params)  875/2,431 -> 54/188  3,974+1,576 ms, 2,048,030, 1,907 ms
              -> 124/268                                   -> 2,784+199 ms, 54,038, 235 ms

Run it from a git worktree of another commit to compare (it imports ``cumulo`` from the tree it
lives in): ``git worktree add /tmp/before <commit>`` and copy this file into its bench/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(HERE))

from common import Endpoint, admin_session, stop, wait_up  # noqa: E402


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(workdir: Path, db_url: str | None) -> tuple[subprocess.Popen[bytes], Endpoint, dict[str, str]]:
    state = workdir / "cumulo"
    ports = {name: free_port() for name in ("identity", "image", "network", "metrics", "compute", "placement")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUMULO_", "OS_"))}
    env.update(CUMULO_STATE_DIR=str(state), CUMULO_SERVICES="identity,image,network",
               CUMULO_IDENTITY__PORT=str(ports["identity"]), CUMULO_IMAGE__PORT=str(ports["image"]),
               CUMULO_NETWORK__PORT=str(ports["network"]), CUMULO_METRICS__PORT=str(ports["metrics"]),
               CUMULO_COMPUTE__PORT=str(ports["compute"]), CUMULO_PLACEMENT__PORT=str(ports["placement"]),
               CUMULO_IDENTITY__PASSWORD_HASH_ROUNDS="4", CUMULO_BOOTSTRAP__WRITE_USER_CLOUDS="false",
               CUMULO_LOGGING__LEVEL="WARNING", CUMULO_LOGGING__FILE=str(workdir / "cumulo.log"),
               CUMULO_COMPUTE__LOCAL_NODE="false", CUMULO_NETWORK__DATAPLANE="false",
               CUMULO_NETWORK__BOOTSTRAP="false", CUMULO_API__WORKERS="1",
               CUMULO_IMAGE__UPLOAD_GUEST_IMAGES="false", PYTHONPATH=str(ROOT),
               CUMULO_NETWORK__NAMESPACE_PREFIX=f"cumulo-bench-{os.getpid()}")
    if db_url:
        env["CUMULO_DATABASE__URL"] = db_url
    proc = subprocess.Popen([sys.executable, "-c", "from cumulo.cli.main import main; main()", "up"], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=open(workdir / "cumulo.stderr", "wb"), cwd=str(ROOT))
    url = f"http://127.0.0.1:{ports['identity']}/v3"
    wait_up(url, proc, timeout=180)
    while not (state / "clouds.yaml").exists():
        time.sleep(0.1)
    auth = yaml.safe_load((state / "clouds.yaml").read_text())["clouds"]["cumulo"]["auth"]
    urls = {"image": f"http://127.0.0.1:{ports['image']}", "network": f"http://127.0.0.1:{ports['network']}",
            "db": db_url or f"sqlite:///{state}/cumulo.db"}
    wait_up(urls["image"] + "/versions", proc, timeout=120)
    wait_up(urls["network"] + "/", proc, timeout=120)
    return proc, Endpoint("cumulo", url, auth["username"], auth["password"], auth["project_name"]), urls


def member(ep: Endpoint, admin: dict[str, str]) -> tuple[dict[str, str], str]:
    """A project and a user with the member role in it; headers with the user's token."""
    name = f"bench-{uuid.uuid4().hex[:6]}"
    project = httpx.post(f"{ep.url}/projects", headers=admin, json={"project": {"name": name}}).json()["project"]
    user = httpx.post(f"{ep.url}/users", headers=admin, json={"user": {"name": name, "password": "pw-" + name,
                                                                       "default_project_id": project["id"]}})
    user_id = user.json()["user"]["id"]
    role = httpx.get(f"{ep.url}/roles?name=member", headers=admin).json()["roles"][0]["id"]
    httpx.put(f"{ep.url}/projects/{project['id']}/users/{user_id}/roles/{role}", headers=admin).raise_for_status()
    r = httpx.post(f"{ep.url}/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"id": user_id, "password": "pw-" + name}}},
        "scope": {"project": {"id": project["id"]}}}})
    r.raise_for_status()
    return {"X-Auth-Token": r.headers["x-subject-token"]}, project["id"]


async def fill(db_url: str, project: str, network: dict[str, Any], n_ports: int, n_images: int,
               group_ports: int, group_id: str) -> None:
    from sqlalchemy import insert

    from cumulo.core.db import Database
    from cumulo.image.models import Image, ImageMember
    from cumulo.network.models import IPAllocation, Port

    db = Database(db_url)
    now = dt.datetime.now(dt.UTC)
    subnet = network["subnet"]
    batch = 2000
    for start in range(0, n_ports, batch):
        ports, ips = [], []
        for n in range(start, min(start + batch, n_ports)):
            pid = str(uuid.uuid4())
            in_group = n < group_ports
            ports.append({"id": pid, "network_id": network["id"], "name": f"p{n}", "project_id": project,
                          "mac_address": f"fa:16:{n >> 24 & 255:02x}:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:"
                                         f"{n & 255:02x}",
                          "device_owner": "compute:nova" if in_group else "", "device_id": f"srv-{n}",
                          "security_groups": [group_id] if in_group else [],
                          "created_at": now + dt.timedelta(microseconds=n), "updated_at": now, "tags": [],
                          "description": "", "revision_number": 0, "admin_state_up": True, "status": "DOWN",
                          "binding_host_id": "", "port_security_enabled": True, "allowed_address_pairs": [],
                          "extra_dhcp_opts": [], "dns_name": ""})
            ips.append({"subnet_id": subnet, "ip_address": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}",
                        "port_id": pid, "network_id": network["id"]})
        async with db.session() as s:
            await s.execute(insert(Port), ports)
            await s.execute(insert(IPAllocation), ips)
    others = [str(uuid.uuid4()) for _ in range(20)]
    for start in range(0, n_images, batch):
        images, members = [], []
        for n in range(start, min(start + batch, n_images)):
            kind = n % 10
            visibility, owner = {0: ("shared", project), 1: ("public", others[0]), 2: ("public", others[1]),
                                 3: ("shared", others[2]), 4: ("community", others[3])}.get(
                kind, ("private", others[n % 20]))
            iid = str(uuid.uuid4())
            images.append({"id": iid, "name": f"img-{n}", "status": "active", "visibility": visibility,
                           "owner": owner, "disk_format": "raw", "container_format": "bare", "size": n,
                           "protected": False, "os_hidden": False, "min_disk": 0, "min_ram": 0,
                           "properties": {}, "tags": [], "created_at": now + dt.timedelta(microseconds=n),
                           "updated_at": now})
            if kind == 3:
                members.append({"image_id": iid, "member_id": project, "status": "accepted",
                                "created_at": now, "updated_at": now})
        async with db.session() as s:
            await s.execute(insert(Image), images)
            if members:
                await s.execute(insert(ImageMember), members)
    await db.close()


def timed(url: str, headers: dict[str, str], n: int, key: str, collection: str) -> dict[str, Any]:
    """p50/p99 of n GETs of ``url`` (the first, then at random markers taken from the first page)."""
    times: list[float] = []
    markers: list[str] = []
    with httpx.Client(timeout=600) as client:
        for i in range(n):
            target = url if i == 0 or not markers else f"{url}&marker={random.choice(markers)}"
            started = time.perf_counter()
            r = client.get(target, headers=headers)
            times.append(time.perf_counter() - started)
            r.raise_for_status()
            items = r.json()[collection]
            if i == 0:
                markers = [x[key] for x in items[: len(items) // 2]]
                count = len(items)
    times.sort()
    return {"requests": n, "first_page": count, "p50_ms": round(statistics.median(times) * 1000, 1),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))] * 1000, 1)}


async def group_apply(db_url: str, network_url: str, headers: dict[str, str], group_id: str) -> dict[str, Any]:
    """Add a rule to the shared group through the API, then time the controller's part of applying it."""
    from cumulo.core.db import Database
    from cumulo.network.dataplane import firewall
    from cumulo.network.ipam import Ipam
    from cumulo.network.topology import Topology

    late = [0.0]

    async def ticker() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            late[0] = max(late[0], time.perf_counter() - before - 0.005)

    db = Database(db_url)
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120) as client:
        r = await client.post(f"{network_url}/v2.0/security-group-rules", headers=headers, json={
            "security_group_rule": {"security_group_id": group_id, "direction": "ingress", "protocol": "tcp",
                                    "port_range_min": 22, "port_range_max": 22, "remote_group_id": group_id}})
        r.raise_for_status()
    api = time.perf_counter() - started
    tick = asyncio.get_running_loop().create_task(ticker())
    await asyncio.sleep(0.02)
    late[0] = 0.0
    t0 = time.perf_counter()
    state = await Topology(db, Ipam(db)).state(ensure=False)
    t1 = time.perf_counter()
    zones = {n["id"]: 100 + i for i, n in enumerate(state["networks"])}
    agent_like = getattr(firewall, "MEMBER", None) is not None  # the agent computes rules in a thread there
    lines = 0
    for version in (4, 6):
        if agent_like:
            text = await asyncio.to_thread(firewall.rules, state, version, zones)
        else:
            text = firewall.rules(state, version, zones)
        lines += text.count("\n")
    t2 = time.perf_counter()
    tick.cancel()
    await db.close()
    return {"ports_in_group": sum(1 for p in state["ports"] if group_id in p["security_groups"]),
            "rule_api_ms": round(api * 1000, 1), "desired_state_ms": round((t1 - t0) * 1000, 1),
            "iptables_text_ms": round((t2 - t1) * 1000, 1), "end_to_end_ms": round((api + t2 - t0) * 1000, 1),
            "rule_lines": lines, "loop_held_max_ms": round(late[0] * 1000, 1)}


def run(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="cumulo-bench-lists-"))
    db_name = None
    db_url = None
    if backend == "postgres":
        db_name = f"bench_lists_{uuid.uuid4().hex[:8]}"
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {db_name}"], check=True)
        db_url = f"postgresql://postgres@127.0.0.1:5432/{db_name}"
    proc = None
    try:
        proc, ep, urls = start(work, db_url)
        admin, _ = admin_session(ep)
        headers, project = member(ep, admin)
        net = httpx.post(f"{urls['network']}/v2.0/networks", headers=headers,
                         json={"network": {"name": "bench"}}).json()["network"]
        sub = httpx.post(f"{urls['network']}/v2.0/subnets", headers=headers, json={"subnet": {
            "network_id": net["id"], "cidr": "10.0.0.0/8", "ip_version": 4, "enable_dhcp": False}}).json()["subnet"]
        group = httpx.post(f"{urls['network']}/v2.0/security-groups", headers=headers, json={
            "security_group": {"name": "shared"}}).json()["security_group"]
        httpx.post(f"{urls['network']}/v2.0/security-group-rules", headers=headers, json={"security_group_rule": {
            "security_group_id": group["id"], "direction": "ingress", "remote_group_id": group["id"]}}
        ).raise_for_status()
        t = time.perf_counter()
        asyncio.run(fill(urls["db"], project, {"id": net["id"], "subnet": sub["id"]}, args.ports, args.images,
                         args.group_ports, group["id"]))
        fill_s = round(time.perf_counter() - t, 1)
        out: dict[str, Any] = {"backend": backend, "fill_seconds": fill_s, "ports_total": args.ports,
                               "images_total": args.images}
        for kind, url in (("ports", f"{urls['network']}/v2.0/ports?limit=1000"),
                          ("images", f"{urls['image']}/v2/images?limit=1000")):
            try:
                out[kind] = timed(url, headers, args.requests, "id", kind)
            except httpx.HTTPError as exc:  # what a listing that breaks at this size answers
                status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else None
                out[kind] = {"failed": f"{type(exc).__name__} {status or exc}"}
        out["group"] = asyncio.run(group_apply(urls["db"], urls["network"], headers, group["id"]))
        return out
    finally:
        if proc is not None:
            stop(proc)
        if db_name:
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {db_name}"])
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--ports", type=int, default=100_000)
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--group-ports", type=int, default=1000)
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--json", type=Path, help="write the figures here too")
    args = p.parse_args()
    results = [run(b, args) for b in (["sqlite", "postgres"] if args.backend == "both" else [args.backend])]
    for r in results:
        print(f"{r['backend']}: fill {r['fill_seconds']} s; ports {r['ports']}; images {r['images']}; "
              f"group {r['group']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
