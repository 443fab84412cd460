#!/usr/bin/env python3
"""Image upload and download throughput against the disk's own speed, with the server's memory.

    .venv/bin/python bench/image_transfer.py            # 1 GiB
    .venv/bin/python bench/image_transfer.py --size-mib 256

In one run, on the filesystem that holds the image store: `dd` writes SIZE with fdatasync and reads
it back (the disk's speed, page cache as it comes), then a client streams an image of SIZE to
`PUT /v2/images/{id}/file` (the server hashes MD5 + SHA-512, writes, fsyncs and renames) and
downloads it with `GET .../file`.  The server's RSS is sampled every 20 ms throughout: "flat memory"
means the peak stays near the idle figure whatever SIZE is.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import start_cumulo, stop  # noqa: E402

BLOCK = 4 << 20


def rss_mib(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except (OSError, AttributeError):
                return
            time.sleep(0.02)


def dd(args: list[str]) -> float:
    """MB/s as dd reports it."""
    out = subprocess.run(["dd", *args], capture_output=True, text=True, check=True).stderr
    value, unit = re.search(r"([\d.,]+) ([kMG]?B)/s", out).groups()  # type: ignore[union-attr]
    return float(value.replace(",", ".")) * {"kB": 0.001, "MB": 1, "GB": 1000, "B": 1e-6}[unit]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    args = ap.parse_args()
    size = args.size_mib << 20
    workdir = Path(tempfile.mkdtemp(prefix="cumulo-bench-image-"))
    probe = workdir / "dd.bin"
    count = size // BLOCK
    disk_write = dd(["if=/dev/zero", f"of={probe}", f"bs={BLOCK}", f"count={count}", "conv=fdatasync"])
    disk_read = dd([f"if={probe}", "of=/dev/null", f"bs={BLOCK}", "iflag=direct"])  # the disk, not the cache
    probe.unlink()
    proc, ep = start_cumulo(workdir, rounds=4, port=5003, extra_env={
        "CUMULO_IMAGE__PORT": "9293", "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false"})
    try:
        token = httpx.post(f"{ep.url}/auth/tokens", json={"auth": {"identity": {"methods": ["password"], "password": {
            "user": {"name": ep.user, "domain": {"id": "default"}, "password": ep.password}}},
            "scope": {"project": {"name": ep.project, "domain": {"id": "default"}}}}}).headers["X-Subject-Token"]
        headers = {"X-Auth-Token": token}
        image = httpx.post("http://127.0.0.1:9293/v2/images", headers=headers, json={
            "name": "bench", "disk_format": "raw", "container_format": "bare"}).json()
        idle = rss_mib(proc.pid)
        sampler = Sampler(proc.pid)
        sampler.start()
        # curl is the client (C, not the bottleneck); the data comes from memory (/dev/shm)
        source = Path("/dev/shm") / f"cumulo-bench-{os.getpid()}.bin"
        block = os.urandom(BLOCK)
        with open(source, "wb") as fh:
            for _ in range(count):
                fh.write(block)
        url = f"http://127.0.0.1:9293/v2/images/{image['id']}/file"
        started = time.perf_counter()
        code = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-T", str(source),
                               "-H", f"X-Auth-Token: {token}", "-H", "Content-Type: application/octet-stream",
                               url], capture_output=True, text=True, check=True).stdout
        upload = size / (time.perf_counter() - started) / 1e6
        source.unlink()
        assert code == "204", code
        # read from the disk as dd did: drop the page cache (root only; otherwise the figure is cached reads)
        cold = subprocess.run(["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], check=False).returncode == 0
        started = time.perf_counter()
        got = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", "-H", f"X-Auth-Token: {token}",
                              url], capture_output=True, text=True, check=True).stdout
        download = size / (time.perf_counter() - started) / 1e6
        assert int(got) == size, got
        sampler.done.set()
        sampler.join()
    finally:
        stop(proc)
    print(f"# {args.size_mib} MiB image, store on {workdir} ({os.cpu_count()} cores)")
    print(f"disk write (dd, fdatasync) {disk_write:8.1f} MB/s")
    print(f"upload     (PUT .../file)  {upload:8.1f} MB/s  = {upload / disk_write:5.0%} of disk write")
    print(f"disk read  (dd, direct)    {disk_read:8.1f} MB/s")
    print(f"download   (GET .../file)  {download:8.1f} MB/s  = {download / disk_read:5.0%} of disk read"
          f"{'' if cold else ' (page cache not dropped: not root?)'}")
    print(f"server RSS idle {idle:.0f} MiB, peak during transfers {sampler.peak:.0f} MiB")
    subprocess.run(["rm", "-rf", str(workdir)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
