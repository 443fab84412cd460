"""Backup and restore of a cloud with many rows: `cumulo backup`, an incremental one, `cumulo restore`.

    .venv/bin/python bench/backup.py [--servers 1000] [--nodes 10] [--images 20] [--image-mb 8]
        [--volumes 10] [--concurrency 10]

A cloud on SQLite with ``--servers`` servers on fake nodes, ``--images`` images of ``--image-mb``
MiB of random data and ``--volumes`` 1 GiB volumes made from them (qcow2 files holding the image's
bytes); then, each timed as the operator runs it:
(a) the first backup (full): wall time, files, bytes stored;
(b) after a few changes (one image, ten servers, one volume): a second backup, which copies only
    what changed: wall time, bytes copied and linked, the growth of the backup directory on disk;
(c) the cloud stopped and its state directory wiped: `cumulo restore`, then `cumulo up` until the
    APIs answer (the control plane back), and the number of servers the API lists afterwards.
The issue's goal: a restore of the control plane in under 60 s, backups that grow with what
changed, not with what exists.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, start_cumulo, stop  # noqa: E402
from bench.compute_scale import boot, token  # noqa: E402

CUMULO = str(ROOT / ".venv" / "bin" / "cumulo")


def disk_usage(path: Path) -> int:
    """Bytes on disk, each hard-linked file counted once (as du does)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def mib(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


def run(env: dict[str, str], *args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([CUMULO, *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"cumulo {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0, proc.stdout.strip()


def wait(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--image-mb", type=int, default=8)
    ap.add_argument("--volumes", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--port", type=int, default=5112)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cumulo-bench-backup-"))
    state, backups, key = work / "cumulo", work / "backups", work / "backup.key"
    p = args.port
    env = {"CUMULO_COMPUTE__FAKE_NODES": str(args.nodes), "CUMULO_COMPUTE__PORT": str(p + 1),
           "CUMULO_PLACEMENT__PORT": str(p + 2), "CUMULO_IMAGE__PORT": str(p + 3),
           "CUMULO_COMPUTE__METADATA_PORT": str(p + 4), "CUMULO_NETWORK__PORT": str(p + 5),
           "CUMULO_VOLUME__PORT": str(p + 6), "CUMULO_COMPUTE__SERIAL_PROXY_PORT": str(p + 7),
           "CUMULO_COMPUTE__NOVNC_PROXY_PORT": str(p + 8), "CUMULO_API__WORKERS": "1",
           "CUMULO_SERVICES": "identity,image,compute,placement,network,volume",
           "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false", "CUMULO_COMPUTE__BUILD_TIMEOUT": "600"}
    cli_env = {**{k: v for k, v in os.environ.items() if not k.startswith(("CUMULO_", "OS_"))}, **env,
               "CUMULO_STATE_DIR": str(state)}
    compute, image_url = f"http://127.0.0.1:{p + 1}/v2.1", f"http://127.0.0.1:{p + 3}"
    volume_url = f"http://127.0.0.1:{p + 6}/v3"
    proc, ep = start_cumulo(work, 4, p, env)
    try:
        tok = token(ep.url, ep.user, ep.password, ep.project)
        h = {"X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.47"}
        project = httpx.get(f"{ep.url}/auth/tokens", headers={"X-Auth-Token": tok, "X-Subject-Token": tok}
                            ).json()["token"]["project"]["id"]
        for name in ("instances", "cores", "ram"):
            httpx.put(f"{compute}/os-quota-sets/{project}", headers=h, json={"quota_set": {name: -1}}
                      ).raise_for_status()
        httpx.put(f"{volume_url}/{project}/os-quota-sets/{project}", headers=h,
                  json={"quota_set": {"volumes": -1, "gigabytes": -1}}).raise_for_status()

        def upload(i: int) -> str:
            img = httpx.post(f"{image_url}/v2/images", headers=h, json={
                "name": f"bench-img-{i}", "disk_format": "raw", "container_format": "bare"}).json()
            httpx.put(f"{image_url}/v2/images/{img['id']}/file", content=os.urandom(args.image_mb << 20),
                      headers={**h, "Content-Type": "application/octet-stream"}, timeout=120).raise_for_status()
            return str(img["id"])

        def volume(image: str) -> str:
            r = httpx.post(f"{volume_url}/{project}/volumes", headers=h, json={"volume": {
                "size": 1, "imageRef": image}})
            r.raise_for_status()
            return str(r.json()["volume"]["id"])

        def volumes_available() -> bool:
            vols = httpx.get(f"{volume_url}/{project}/volumes/detail?limit=1000", headers=h).json()["volumes"]
            bad = [v for v in vols if v["status"] == "error"]
            if bad:
                raise SystemExit(f"volume in error: {bad[0]['id']}")
            return all(v["status"] == "available" for v in vols)

        t0 = time.perf_counter()
        images = [upload(i) for i in range(args.images)]
        vols = [volume(images[i % len(images)]) for i in range(args.volumes)] if images else []
        wall, _lat = asyncio.run(boot(compute, h, images[0] if images else "", args.servers, args.concurrency))
        wait(volumes_available, 300, "the volumes")
        print(f"cloud: {args.servers} servers on {args.nodes} fake nodes, {args.images} images x {args.image_mb} MiB, "
              f"{len(vols)} volumes from them (made in {time.perf_counter() - t0:.0f} s); state "
              f"{mib(disk_usage(state))}", flush=True)

        seconds, out = run(cli_env, "backup", "--to", str(backups), "--key-file", str(key), "--quiet")
        (first,) = backups.glob("cumulo-backup-*")
        m1 = json.loads((first / "manifest.json").read_text())
        db = next(f for f in m1["files"] if f["kind"] == "database")
        print(f"(a) first backup (full, on the running cloud): {seconds:.1f} s, {len(m1['files'])} files, "
              f"{mib(m1['copied']['bytes'])} stored (database {mib(db['size'])}, "
              f"{m1['tables'].get('compute_server', 0)} server rows)", flush=True)

        upload(args.images)
        asyncio.run(boot(compute, h, images[0], 10, 5))
        if images:
            volume(images[0])
            wait(volumes_available, 120, "the new volume")
        before = disk_usage(backups)
        seconds, out = run(cli_env, "backup", "--to", str(backups), "--key-file", str(key), "--quiet")
        second = sorted(backups.glob("cumulo-backup-*"))[-1]
        m2 = json.loads((second / "manifest.json").read_text())
        print(f"(b) second backup after 1 image, 10 servers, 1 volume more: {seconds:.1f} s, copied "
              f"{m2['copied']['files']} files ({mib(m2['copied']['bytes'])}), linked {m2['linked']['files']} "
              f"({mib(m2['linked']['bytes'])}); the backup directory grew by {mib(disk_usage(backups) - before)}",
              flush=True)
        servers_before = m2["tables"].get("compute_server", 0)
    finally:
        stop(proc)
    shutil.rmtree(state)
    seconds, _ = run(cli_env, "restore", str(backups), "--key-file", str(key), "--quiet")
    t0 = time.perf_counter()
    proc, ep = start_cumulo(work, 4, p, env)
    up = time.perf_counter() - t0
    try:
        tok = token(ep.url, ep.user, ep.password, ep.project)
        h = {"X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.47"}
        listed, url = 0, f"{compute}/servers?all_tenants=1&limit=1000"
        while url:
            body = httpx.get(url, headers=h, timeout=60).json()
            listed += len(body["servers"])
            url = next((link["href"] for link in body.get("servers_links", []) if link["rel"] == "next"), "")
        print(f"(c) restore into a wiped state directory: {seconds:.1f} s, then `cumulo up` answering in {up:.1f} s: "
              f"control plane back in {seconds + up:.1f} s; {listed} servers listed ({servers_before} in the backup)",
              flush=True)
    finally:
        stop(proc)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
