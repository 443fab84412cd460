"""The cumulo-tiny guest boots under QEMU (TCG, no compute service yet) and does its job:
DHCP, metadata from a config drive, user-data, an HTTP server answering its hostname, the ready
marker, and a clean power-off on the ACPI power button.  Also: `cumulo up` uploaded it."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.functional.conftest import ROOT, Cloud, free_port

OUT = ROOT / "guest" / "out"


@pytest.fixture(autouse=True)
def built() -> None:
    assert (OUT / "initrd.img").exists(), "the guest is not built: `make test` builds it (guest/build.sh)"


def config_drive(tmp: Path, hostname: str) -> Path:
    latest = tmp / "cd" / "openstack" / "latest"
    latest.mkdir(parents=True)
    (latest / "meta_data.json").write_text(json.dumps({
        "uuid": "0f7c3a9e-test", "hostname": f"{hostname}.novalocal", "name": hostname,
        "public_keys": {"k": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITEST cumulo@test\n"}}))
    (latest / "user_data").write_text("#!/bin/sh\necho ran-user-data > /www/user-data.txt\n")
    iso = tmp / "config.iso"
    subprocess.run(["genisoimage", "-quiet", "-o", str(iso), "-V", "config-2", "-r", "-J", str(tmp / "cd")],
                   check=True)
    return iso


class Guest:
    def __init__(self, tmp: Path, boot: list[str], extra: list[str]) -> None:
        self.console = tmp / "console.log"
        self.qmp_path = tmp / "qmp.sock"
        self.http_port = free_port()
        self.proc = subprocess.Popen(
            ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg,tb-size=32", "-m", "128", "-smp", "1",
             "-display", "none", "-no-reboot", "-monitor", "none", "-serial", f"file:{self.console}",
             "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
             "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.http_port}-:80",
             "-device", "virtio-net-pci,netdev=n0", *boot, *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_for(self, marker: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.console.read_text(errors="replace") if self.console.exists() else ""
            if marker in text:
                return text
            if self.proc.poll() is not None:
                raise AssertionError(f"qemu exited {self.proc.returncode}: {self.proc.stderr.read().decode()}\n{text}")
            time.sleep(0.1)
        raise AssertionError(f"no {marker!r} on the console in {timeout} s:\n{text}")

    def qmp(self, command: str) -> None:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.qmp_path))
            f = s.makefile("rw")
            f.readline()
            for cmd in ({"execute": "qmp_capabilities"}, {"execute": command}):
                f.write(json.dumps(cmd) + "\n")
                f.flush()
                f.readline()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def guest(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    started: list[Guest] = []

    def boot(*args: str, extra: tuple[str, ...] = ()) -> Guest:
        g = Guest(tmp_path, list(args), list(extra))
        started.append(g)
        return g

    yield boot
    for g in started:
        g.stop()


def test_direct_boot_reads_config_drive_serves_hostname_and_powers_off(guest, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert shutil.which("qemu-system-x86_64"), "qemu-system-x86 is installed by scripts/setup.sh"
    iso = config_drive(tmp_path, "tiny-one")
    started = time.monotonic()
    g = guest("-kernel", str(OUT / "vmlinuz"), "-initrd", str(OUT / "initrd.img"),
              "-append", "console=ttyS0 quiet panic=5",
              extra=("-drive", f"file={iso},if=virtio,format=raw,readonly=on"))
    console = g.wait_for("cumulo-guest ready")
    boot_seconds = time.monotonic() - started
    assert "cumulo-guest ready ip=10.0.2.15 hostname=tiny-one" in console, console
    assert "metadata from config-drive" in console and "user-data exited 0" in console
    assert httpx.get(f"http://127.0.0.1:{g.http_port}/", timeout=5).text.strip() == "tiny-one"
    assert httpx.get(f"http://127.0.0.1:{g.http_port}/user-data.txt", timeout=5).text.strip() == "ran-user-data"
    g.qmp("system_powerdown")
    assert g.proc.wait(30) == 0
    assert "ACPI power button" in g.console.read_text(errors="replace")
    print(f"direct boot to ready: {boot_seconds:.1f} s")


def test_disk_image_boots_with_bios_and_extlinux(guest, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    overlay = tmp_path / "root.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(OUT / "cumulo-tiny.qcow2"), "-F", "qcow2",
                    str(overlay)], check=True)
    g = guest("-drive", f"file={overlay},if=virtio,format=qcow2")
    console = g.wait_for("cumulo-guest ready", timeout=90)
    assert "SYSLINUX" in console and "ip=10.0.2.15" in console


def test_cumulo_up_uploads_the_guest_images(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    images = httpx.get(f"{cloud.image_url}/v2/images", headers={"X-Auth-Token": token},
                       params={"name": "cumulo-tiny"}).json()["images"]
    assert len(images) == 1 and images[0]["visibility"] == "public" and images[0]["disk_format"] == "qcow2"
    kernel = httpx.get(f"{cloud.image_url}/v2/images/{images[0]['kernel_id']}", headers={"X-Auth-Token": token})
    ramdisk = httpx.get(f"{cloud.image_url}/v2/images/{images[0]['ramdisk_id']}", headers={"X-Auth-Token": token})
    assert kernel.json()["disk_format"] == "aki" and ramdisk.json()["disk_format"] == "ari"
    assert kernel.json()["size"] == (OUT / "vmlinuz").stat().st_size
