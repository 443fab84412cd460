"""The cumulo-tiny-fast guest: the cumulo-tiny initramfs (without modules) on the small kernel that
guest/build-kernel.sh builds from Debian's linux-source, booted by the QEMU driver straight into its
PVH entry.  Through the APIs of a cloud with a QEMU node, the network dataplane and block storage: the
guest gets its address by DHCP, reads its config drive, says it is ready, sees a hot-plugged volume
and powers off on the ACPI button (os-stop)."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functional.conftest import BIN, ROOT, Cloud, start_cloud, stop_cloud, wait_for
from tests.functional.test_qemu import READY, qemu_pids

OUT = ROOT / "guest" / "out"
SERVICES = "identity,image,compute,placement,network,volume"
# user-data: the kernel and modules the guest runs on, then every disk with a serial (a volume) as
# it appears
PROBE = """#!/bin/sh
echo "probe kernel $(uname -r) $(uname -v | cut -c1-40)" > /dev/console
echo "probe modules $(ls /lib/modules 2>/dev/null | wc -l)" > /dev/console
(seen=""; while true; do
  for b in /sys/block/vd*; do
    s=$(cat "$b/serial" 2>/dev/null); [ -n "$s" ] || continue
    case " $seen " in *" $s "*) continue;; esac
    seen="$seen $s"; echo "probe volume $s on ${b##*/}" > /dev/console
  done
  sleep 0.2
done) &
"""


@pytest.fixture(scope="module")
def fcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    assert (OUT / "vmlinux-small").exists(), "no small kernel: `make test` builds it (guest/build-kernel.sh)"
    tmp = tmp_path_factory.mktemp("fast")
    c = start_cloud(tmp, "sqlite", {
        "CUMULO_SERVICES": SERVICES, "CUMULO_COMPUTE__FAKE_NODES": "0", "CUMULO_COMPUTE__LOCAL_NODE": "true",
        "CUMULO_COMPUTE__HOST": "fnode", "CUMULO_COMPUTE__SHUTDOWN_TIMEOUT": "30",
        "CUMULO_COMPUTE__BUILD_TIMEOUT": "120", "CUMULO_NETWORK__DATAPLANE": "true",
        "CUMULO_NETWORK__RECONCILE_INTERVAL": "5"})
    yield c
    stop_cloud(c)
    for pid in qemu_pids(tmp):  # a failed test must not leave guests running
        os.kill(pid, signal.SIGKILL)
    # whatever a failed test left: the namespaces and dnsmasq of this cloud's prefix
    subprocess.run([str(BIN / "cumulo"), "network", "cleanup", "--yes"], env=c.env, capture_output=True, timeout=60)


class Api:
    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.token, body = cloud.token()
        self.project = body["project"]["id"]

    def __call__(self, method: str, url: str, body: Any = None, version: str = "2.79") -> httpx.Response:
        return httpx.request(method, url, json=body, timeout=30, headers={
            "X-Auth-Token": self.token, "OpenStack-API-Version": f"compute {version}, volume 3.60"})

    def server(self, sid: str) -> dict[str, Any]:
        return dict(self("GET", f"{self.cloud.compute_url}/servers/{sid}").json()["server"])

    def wait_status(self, sid: str, status: str, timeout: float = 120) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            s = self.server(sid)
            assert s["status"] != "ERROR", s.get("fault")
            return s if s["status"] == status and s["OS-EXT-STS:task_state"] is None else None
        return wait_for(check, timeout, f"server {sid} to be {status}")  # type: ignore[return-value]

    def console(self, sid: str) -> str:
        r = self("POST", f"{self.cloud.compute_url}/servers/{sid}/action", {"os-getConsoleOutput": {}})
        return str(r.json()["output"]) if r.status_code == 200 else ""

    def wait_console(self, sid: str, marker: str, timeout: float = 120) -> str:
        return wait_for(lambda: marker in (t := self.console(sid)) and t, timeout,  # type: ignore
                        f"{marker!r} on the console of {sid}", every=0.1)


def image(api: Api, name: str) -> dict[str, Any]:
    found = api("GET", f"{api.cloud.image_url}/v2/images?name={name}").json()["images"]
    assert len(found) == 1, found
    return dict(found[0])


def qemu_kernel(cloud: Cloud, sid: str) -> Path:
    """The -kernel file of the server's QEMU process."""
    for pid in qemu_pids(cloud.state_dir):
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        if sid in args:
            return Path(args[args.index("-kernel") + 1])
    raise AssertionError(f"no QEMU process for {sid}")


def test_the_small_kernel_guest_boots_by_pvh_gets_dhcp_sees_a_volume_and_powers_off(fcloud: Cloud) -> None:
    api = Api(fcloud)
    fast, tiny = image(api, "cumulo-tiny-fast"), image(api, "cumulo-tiny")
    kernel = api("GET", f"{fcloud.image_url}/v2/images/{fast['kernel_id']}").json()
    ramdisk = api("GET", f"{fcloud.image_url}/v2/images/{fast['ramdisk_id']}").json()
    assert (kernel["name"], kernel["disk_format"], kernel["size"]) == (
        "cumulo-tiny-fast-kernel", "aki", (OUT / "vmlinux-small").stat().st_size)
    assert (ramdisk["name"], ramdisk["disk_format"]) == ("cumulo-tiny-fast-ramdisk", "ari")
    # the fallback stays as it was: the Debian cloud kernel and its modules
    assert fast["kernel_id"] != tiny["kernel_id"] and fast["checksum"] == tiny["checksum"]
    assert ramdisk["size"] > 0 and fast["min_ram"] <= tiny["min_ram"]

    net = api("POST", f"{fcloud.network_url}/networks", {"network": {"name": "fast-net"}}).json()["network"]
    api("POST", f"{fcloud.network_url}/subnets", {"subnet": {
        "network_id": net["id"], "cidr": "10.30.0.0/24", "ip_version": 4}}).raise_for_status()
    started = time.monotonic()
    r = api("POST", f"{fcloud.compute_url}/servers", {"server": {
        "name": "fast-one", "flavorRef": "10", "imageRef": fast["id"], "networks": [{"uuid": net["id"]}],
        "config_drive": True, "user_data": base64.b64encode(PROBE.encode()).decode()}})
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    server = api.wait_status(sid, "ACTIVE")
    console = api.wait_console(sid, READY)
    ready = time.monotonic() - started
    fixed = server["addresses"]["fast-net"][0]["addr"]
    assert f"{READY} ip={fixed} hostname=fast-one" in console, console[-2000:]
    assert "metadata from config-drive" in console and "user-data exited 0" in console, console[-2000:]

    # the small kernel (ours, no modules: everything built in), entered by PVH: QEMU takes an ELF
    # kernel only through its PVH note
    path = qemu_kernel(fcloud, sid)
    assert path.read_bytes()[:4] == b"\x7fELF" and path.stat().st_size == kernel["size"]
    release = re.search(r"probe kernel (\S+)", console)
    debian = (OUT / "kernel-version").read_text().strip()
    assert release and release.group(1) != debian and release.group(1).startswith("6.1."), console[-2000:]
    assert "probe modules 0" in console

    # a hot-plugged volume shows up (PCIe hot-plug built in)
    r = api("POST", f"{fcloud.volume_url}/{api.project}/volumes", {"volume": {"size": 1, "name": "fast-data"}})
    assert r.status_code == 202, r.text
    vid = r.json()["volume"]["id"]
    wait_for(lambda: api("GET", f"{fcloud.volume_url}/{api.project}/volumes/{vid}").json()["volume"]["status"]
             == "available", 30, "the volume")
    r = api("POST", f"{fcloud.compute_url}/servers/{sid}/os-volume_attachments",
            {"volumeAttachment": {"volumeId": vid}})
    assert r.status_code == 200, r.text
    api.wait_console(sid, f"probe volume {vid[:20]} on vd", timeout=60)

    # os-stop: the ACPI power button, and the guest powers itself off (not the hard stop)
    stop_started = time.monotonic()
    api("POST", f"{fcloud.compute_url}/servers/{sid}/action", {"os-stop": None}).raise_for_status()
    api.wait_status(sid, "SHUTOFF", timeout=60)
    stopped = time.monotonic() - stop_started
    assert "ACPI power button: shutting down" in api.console(sid)
    assert "cumulo-guest powering off" in api.console(sid)
    assert stopped < 30, f"the guest took {stopped:.1f} s: stopped hard after the shutdown timeout?"
    api("DELETE", f"{fcloud.compute_url}/servers/{sid}").raise_for_status()
    print(f"cumulo-tiny-fast: POST -> ready {ready:.2f} s, os-stop -> SHUTOFF {stopped:.2f} s")
