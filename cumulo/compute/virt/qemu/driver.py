"""The QEMU driver: one QEMU process per server, controlled over QMP, no libvirt.

Each instance lives in ``<instances_path>/<uuid>/``:

    instance.json   what the controller sent (flavor, image, name, ...): enough to start it again
    disk            qcow2 overlay on the node's cached base image, grown to the flavor's size
    disk.config     the config drive (ISO 9660, label config-2), when asked for
    disk.backup     the pre-resize disk until the resize is confirmed or reverted
    state.save      the saved machine state of a suspended instance (no process meanwhile)
    console.log     the serial console, appended across restarts
    tty.sock        the serial console live (QEMU writes console.log too), for the console proxy
    vnc.sock        the VNC server of the guest's display, for the noVNC proxy
    qmp.sock, qemu.pid  (the sockets' names are of one length: a unix socket's path is limited)

QEMU runs daemonized in its own session, so it outlives the agent; a restarted agent finds its
instances by their directories and their processes by pid file (checked against the uuid on the
command line).  KVM is used when the host has usable hardware virtualization, TCG otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from cumulo.compute.metadata import config_drive_files
from cumulo.compute.virt.driver import NodeInfo, Snapshot
from cumulo.compute.virt.qemu.admission import BootGate
from cumulo.compute.virt.qemu.extras import ExtraOps, keep_slots, nic_args, nic_ports, nic_slots, stable_rescue_args
from cumulo.compute.virt.qemu.images import ImageCache, run_helper
from cumulo.compute.virt.qemu.qmp import QMP, QMPError, qmp
from cumulo.compute.virt.qemu.swap import SwapOps
from cumulo.compute.virt.qemu.volumes import VolumeOps, _quietly, boot_volume, root_ports, volume_args, with_slots
from cumulo.core.format_inspector import qemu_format

LOG = logging.getLogger(__name__)
POWERDOWN_RETRY = 5.0  # seconds between presses of the ACPI power button of a guest that is still up
COPY_TIMEOUT = 3600.0  # whole-disk copies (snapshots, cold moves) of large disks take a while
NOSTATE, RUNNING, PAUSED, SHUTDOWN, SUSPENDED = 0, 1, 3, 4, 7
# The machine a guest gets (its devices and firmware: what a saved state or a live migration must
# find again).  1: SeaBIOS always.  2: qboot (a firmware that only loads the kernel, 0.3-0.4 CPU-s
# less per boot under TCG than SeaBIOS) when the kernel boots directly, and a virtio-balloon with
# free page reporting, through which an idle guest hands its free memory back to the host
# (when its kernel has the driver and reports pages of a small enough order).
PROFILE = 2
QBOOT = "/usr/share/qemu/qboot.rom"


def free_port() -> int:
    """A loopback port nothing listens on now (QEMU binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bzimage(path: str) -> bool:
    """A Linux bzImage (its setup header's magic), which qboot loads itself."""
    try:
        with open(path, "rb") as f:
            f.seek(0x202)
            return f.read(4) == b"HdrS"
    except OSError:
        return False


def kvm_usable() -> bool:
    """Hardware virtualization that runs stock kernels: vmx/svm, a usable /dev/kvm, and not the
    paravirtual kvm_pvm variant some cloud VMs expose."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return (bool(re.search(r"\b(vmx|svm)\b", flags)) and os.access("/dev/kvm", os.R_OK | os.W_OK)
            and not Path("/sys/module/kvm_pvm").exists())


async def run(*cmd: str, check: bool = True, timeout: float = 120.0) -> str:
    """Run a helper (qemu-img, cp, genisoimage) to its end, killing it past ``timeout`` seconds."""
    try:
        returncode, out, err = await run_helper(list(cmd), timeout)
    except TimeoutError:
        raise RuntimeError(f"{' '.join(cmd[:2])} did not finish within {timeout:g} s") from None
    if check and returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({returncode}): {err.decode(errors='replace').strip()[-500:]}")
    return out.decode(errors="replace")


class QemuDriver(VolumeOps, SwapOps, ExtraOps):
    def __init__(self, hostname: str, instances_path: str | Path, *, shutdown_timeout: float = 60.0,
                 max_concurrent_builds: int = 0, tb_size: int = 32, binary: str = "qemu-system-x86_64",
                 vifs: Any = None) -> None:
        self.hostname = hostname
        self.vifs = vifs  # plugs ports into the network dataplane (cumulo.network.dataplane.vif)
        self.root = Path(instances_path)
        longest = len(str(self.root.absolute())) + len("/00000000-0000-0000-0000-000000000000/qmp.sock")
        if longest > 107:  # sun_path holds 108 bytes: QEMU cannot bind its monitor socket past that
            raise ValueError(f"instances path {self.root} is too long for QEMU's monitor sockets ({longest} > 107 "
                             "bytes): set a shorter [compute] instances_path")
        self.root.mkdir(parents=True, exist_ok=True)
        self.images = ImageCache(self.root / "_base")
        self.shutdown_timeout = shutdown_timeout
        self.kvm = kvm_usable()
        self.tb_size = tb_size
        self.binary = binary
        # guests booting at once on this machine (the nodes of one process share them): one per
        # core and one more, so a core is not left idle while a boot's last moments settle
        self.boot_slots = max_concurrent_builds or (os.cpu_count() or 1) + 1
        self.qboot = Path(QBOOT).is_file()
        self._locks: dict[str, asyncio.Lock] = {}
        self.version = self._version()

    def _version(self) -> int:
        try:
            out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return 0
        m = re.search(r"version (\d+)\.(\d+)\.(\d+)", out)
        return int(m.group(1)) * 1_000_000 + int(m.group(2)) * 1_000 + int(m.group(3)) if m else 0

    # -- the node -----------------------------------------------------------------------------------
    def node_info(self) -> NodeInfo:
        mem_kb = 0
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
        disk = os.statvfs(self.root)
        return NodeInfo(hypervisor_hostname=self.hostname, hypervisor_type="KVM" if self.kvm else "QEMU",
                        hypervisor_version=self.version, vcpus=os.cpu_count() or 1, memory_mb=mem_kb // 1024,
                        local_gb=disk.f_blocks * disk.f_frsize // (1 << 30),
                        cpu_info={"arch": "x86_64", "model": "host" if self.kvm else "qemu64 (TCG)",
                                  "vendor": "cumulo", "topology": {"sockets": 1, "cores": os.cpu_count() or 1,
                                                                   "threads": 1}})

    def dir(self, instance_id: str) -> Path:
        if not re.fullmatch(r"[0-9a-f-]{36}", instance_id):
            raise ValueError(f"not an instance id: {instance_id!r}")
        return self.root / instance_id

    def lock(self, instance_id: str) -> asyncio.Lock:
        return self._locks.setdefault(instance_id, asyncio.Lock())

    def pid(self, instance_id: str) -> int | None:
        """The QEMU process of the instance, if it runs (the pid file checked against /proc)."""
        try:
            pid = int((self.dir(instance_id) / "qemu.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if instance_id.encode() in cmdline else None

    async def instances(self) -> dict[str, int]:
        out = {}
        for d in self.root.iterdir():
            if d.name.startswith("_") or not (d / "instance.json").exists():
                continue
            out[d.name] = await self.power_state(d.name)
        return out

    async def power_state(self, instance_id: str) -> int:
        if self.pid(instance_id) is None:
            return SUSPENDED if (self.dir(instance_id) / "state.save").exists() else SHUTDOWN
        try:
            status = (await qmp(str(self.dir(instance_id) / "qmp.sock"), "query-status", timeout=5))["status"]
        except (TimeoutError, OSError, QMPError):
            return NOSTATE
        return RUNNING if status == "running" else PAUSED

    # -- building the pieces --------------------------------------------------------------------------
    async def _prepare_disks(self, instance: dict[str, Any], d: Path, size: int | None = None) -> None:
        """The overlay on the cached base (``size`` bytes when a migration names it, else grown to
        the flavor), the kernel and ramdisk for direct boot, and the config drive.  A server that
        boots from a volume has no root disk here: its bootloader is on the volume."""
        if boot_volume(instance):
            instance["boot"] = {}
            await self._extra_disks(instance, d)
            if instance.get("config_drive"):
                await self._config_drive(instance, d)
            return
        base, fmt, meta = await self._fetch_boot(instance)
        tmp = d / "disk.part"
        await run("qemu-img", "create", "-q", "-f", "qcow2", "-F", fmt, "-b", str(base), str(tmp))
        size_gb = instance["flavor"].get("disk") or 0
        if size:
            await run("qemu-img", "resize", "-q", str(tmp), str(size))
        elif size_gb and size_gb * (1 << 30) > (meta.get("virtual_size") or meta.get("size") or 0):
            await run("qemu-img", "resize", "-q", str(tmp), f"{size_gb}G")
        os.replace(tmp, d / "disk")
        await self._extra_disks(instance, d)
        if instance.get("config_drive"):
            await self._config_drive(instance, d)

    async def _extra_disks(self, instance: dict[str, Any], d: Path) -> None:
        """The flavor's ephemeral disk (GiB, blank) and swap disk (MiB, blank), as sparse qcow2."""
        flavor = instance["flavor"]
        for name, size in (("disk.eph0", f"{flavor.get('ephemeral') or 0}G"),
                           ("disk.swap", f"{flavor.get('swap') or 0}M")):
            if size[:-1] != "0" and not (d / name).exists():
                await run("qemu-img", "create", "-q", "-f", "qcow2", str(d / name), size)

    async def _fetch_boot(self, instance: dict[str, Any]) -> tuple[Path, str, dict[str, Any]]:
        image_url, token = instance.get("image_url", ""), instance.get("token", "")
        base, meta = await self.images.fetch(instance["image_id"], image_url, token)
        fmt = qemu_format(meta.get("disk_format"))  # as checked in the cache: QEMU never probes
        props = {**(meta.get("properties") or {}), **(instance.get("image_properties") or {})}
        instance["boot"] = await self._image_boot(instance["image_id"], props, image_url, token)
        return base, fmt, meta

    async def _image_boot(self, image_id: str, props: dict[str, Any], image_url: str, token: str) -> dict[str, Any]:
        """How an image boots: its kernel and ramdisk (fetched) for direct boot, else its own disk."""
        boot: dict[str, Any] = {}
        if props.get("kernel_id"):
            kernel, _ = await self.images.fetch(props["kernel_id"], image_url, token)
            boot["kernel"] = str(kernel)
            if props.get("ramdisk_id"):
                ramdisk, _ = await self.images.fetch(props["ramdisk_id"], image_url, token)
                boot["initrd"] = str(ramdisk)
            boot["append"] = props.get("kernel_args") or "console=ttyS0 root=/dev/vda1 panic=5"
        boot["base_images"] = [x for x in (image_id, props.get("kernel_id"), props.get("ramdisk_id")) if x]
        return boot

    async def _config_drive(self, instance: dict[str, Any], d: Path) -> None:
        """ISO 9660 labelled config-2, in the layout cloud-init's OpenStack datasource reads."""
        with tempfile.TemporaryDirectory(dir=d) as tmp:
            for rel, content in config_drive_files(instance).items():
                path = Path(tmp) / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
            await run("genisoimage", "-quiet", "-o", str(d / "disk.config"), "-V", "config-2", "-r", "-J", tmp)

    def _command(self, instance: dict[str, Any], d: Path, incoming: bool | str = False,
                 taps: list[int] | None = None) -> list[str]:
        flavor = instance["flavor"]
        accel = ["-accel", "kvm", "-cpu", "host"] if self.kvm else ["-accel", f"tcg,tb-size={self.tb_size}"]
        cmd = [self.binary, "-name", f"guest=instance-{instance['id'][:8]}", "-uuid", instance["id"],
               "-nodefaults", "-no-user-config", "-machine", "q35", *accel,
               "-m", str(flavor["ram"]), "-smp", str(flavor["vcpus"]), "-display", "none",
               # the serial console on a socket the console proxy connects to; what the guest writes
               # goes to console.log as well, connected or not (the console-log API reads it)
               "-chardev", f"socket,id=console,path={d / 'tty.sock'},server=on,wait=off,"
                           f"logfile={d / 'console.log'},logappend=on", "-serial", "chardev:console",
               "-vnc", f"unix:{d / 'vnc.sock'}",
               "-qmp", f"unix:{d / 'qmp.sock'},server=on,wait=off", "-pidfile", str(d / "qemu.pid"), "-daemonize",
               "-device", "pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1",
               "-device", "pcie-root-port,id=rp2,bus=pcie.0,chassis=2,slot=2",
               "-device", "virtio-rng-pci", *root_ports(), *nic_ports()]
        rescue = instance.get("rescue")
        # a rescue disk boots first (the root's boot index moves to 2): classic rescue puts it first
        # among the disks too, stable-device rescue after every disk the server has
        root_boot = "bootindex=2" if rescue else "bootindex=1"
        rescue_disk = ["-drive", f"file={d / 'disk.rescue'},if=none,id=rescue,format=qcow2,cache=writeback",
                       "-device", "virtio-blk-pci,drive=rescue,bootindex=1"] if rescue else []
        if rescue and not rescue.get("stable"):
            cmd += rescue_disk
        if not boot_volume(instance):
            cmd += ["-drive", f"file={d / 'disk'},if=none,id=root,format=qcow2,cache=writeback,discard=unmap",
                    "-device", f"virtio-blk-pci,drive=root,{root_boot}"]
        for name in ("disk.eph0", "disk.swap"):
            if (d / name).exists():
                cmd += ["-drive", f"file={d / name},if=none,id={name[5:]},format=qcow2,cache=writeback",
                        "-device", f"virtio-blk-pci,drive={name[5:]}"]
        if (d / "disk.config").exists():
            cmd += ["-drive", f"file={d / 'disk.config'},if=none,id=config,format=raw,readonly=on",
                    "-device", "virtio-blk-pci,drive=config"]
        cmd += [a.replace("bootindex=1", root_boot) for a in volume_args(instance.get("volumes") or [])]
        ports = instance.get("ports") or []
        for port, fd, slot in zip(ports, taps or [], nic_slots(ports), strict=False):
            cmd += nic_args(port, fd, slot)
        if rescue and rescue.get("stable"):
            cmd += stable_rescue_args(d / "disk.rescue", rescue.get("bus"), rescue.get("device"))
        boot = (rescue["boot"] if rescue else instance.get("boot")) or {}
        profile = instance.get("profile") or 1
        if boot.get("kernel"):
            if profile >= 2 and self.qboot and bzimage(boot["kernel"]):  # an ELF boots by PVH: SeaBIOS's ROM
                cmd += ["-bios", QBOOT]
            cmd += ["-kernel", boot["kernel"], "-append", boot.get("append", "console=ttyS0")]
            if boot.get("initrd"):
                cmd += ["-initrd", boot["initrd"]]
        if profile >= 2:
            cmd += ["-device", "virtio-balloon-pci,id=balloon,free-page-reporting=on"]
        if incoming is True:
            cmd += ["-S", "-incoming", "defer"]
        elif incoming:
            cmd += ["-incoming", str(incoming)]
        return cmd

    async def _launch(self, instance: dict[str, Any], d: Path, incoming: bool | str = False) -> None:
        (d / "qmp.sock").unlink(missing_ok=True)
        log = d / "qemu.log"
        gate = None
        if not incoming:  # a guest that boots (an incoming one arrives booted): this machine's profile
            if (instance.get("profile") or 1) != PROFILE:
                instance["profile"] = PROFILE
                if (d / "instance.json").exists():
                    self._save(instance, d)
            gate = BootGate.shared(self.boot_slots)
            await gate.enter()
        try:
            taps = await self._plug(instance)
            try:
                # the daemonized QEMU keeps its stdio: a file, not a pipe we would wait on forever
                with open(log, "ab") as err:
                    proc = await asyncio.create_subprocess_exec(*self._command(instance, d, incoming, taps),
                                                                stdin=asyncio.subprocess.DEVNULL,
                                                                stdout=asyncio.subprocess.DEVNULL, stderr=err,
                                                                pass_fds=taps)
                    try:  # the daemonizing parent returns once the guest is set up
                        code = await asyncio.wait_for(proc.wait(), 120)
                    except TimeoutError:
                        proc.kill()
                        await proc.wait()
                        raise RuntimeError("QEMU did not finish starting within 120 s") from None
            finally:
                for fd in taps:  # QEMU holds its own copies now: the taps live as long as it does
                    os.close(fd)
            if code != 0:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"QEMU did not start ({code}): {' '.join(tail)}")
        except BaseException:
            if gate is not None:
                gate.leave()
            raise
        if gate is not None:  # the slot goes back once this guest's boot has settled
            gate.booted(self.pid(instance["id"]))
        deadline = time.monotonic() + 30
        while not (d / "qmp.sock").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("QEMU started but its monitor never appeared")
            await asyncio.sleep(0.02)

    async def _plug(self, instance: dict[str, Any]) -> list[int]:
        """A tap on its network's bridge for each of the instance's ports, as open descriptors."""
        ports = instance.get("ports") or []
        if ports and self.vifs is None:
            LOG.warning("instance %s has ports but node %s has no network dataplane: it starts without NICs",
                        instance["id"], self.hostname)
            return []
        fds: list[int] = []
        try:
            for port in ports:
                fd, _ = await self.vifs.plug(port)
                fds.append(fd)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return fds

    def _save(self, instance: dict[str, Any], d: Path) -> None:
        keep = {k: v for k, v in instance.items() if k not in ("token", "ctx")}
        tmp = d / "instance.json.part"
        tmp.write_text(json.dumps(keep))
        os.replace(tmp, d / "instance.json")

    def _load(self, instance_id: str) -> dict[str, Any]:
        try:
            return json.loads((self.dir(instance_id) / "instance.json").read_text())  # type: ignore[no-any-return]
        except OSError:
            raise LookupError(f"instance {instance_id} is not on node {self.hostname}") from None

    # -- lifecycle --------------------------------------------------------------------------------------
    async def spawn(self, instance: dict[str, Any]) -> None:
        d = self.dir(instance["id"])
        async with self.lock(instance["id"]):
            if self.pid(instance["id"]) is not None:
                return  # already running: a repeated request
            d.mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            try:
                instance["volumes"] = with_slots(instance.get("volumes") or [])
                await self._prepare_disks(instance, d)
                LOG.info("instance %s: disks ready in %.0f ms", instance["id"], (time.monotonic() - started) * 1000)
                self._save(instance, d)
                await self._launch(instance, d)
                LOG.info("instance %s: QEMU running (pid %s, %s), %.0f ms after the spawn began", instance["id"],
                         self.pid(instance["id"]), "kvm" if self.kvm else "tcg", (time.monotonic() - started) * 1000)
            except BaseException:
                await self._kill(instance["id"])
                shutil.rmtree(d, ignore_errors=True)
                raise

    async def _kill(self, instance_id: str) -> None:
        pid = self.pid(instance_id)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        for _ in range(200):
            if self.pid(instance_id) is None:
                return
            await asyncio.sleep(0.01)

    async def _shutdown(self, instance_id: str, timeout: float | None = None) -> None:
        """ACPI power button, pressed again every POWERDOWN_RETRY seconds (a guest still booting
        misses it, as Nova's libvirt driver knows), then the process is killed if the guest has not
        stopped in time."""
        if self.pid(instance_id) is None:
            return
        deadline = time.monotonic() + (self.shutdown_timeout if timeout is None else timeout)
        press = 0.0
        while time.monotonic() < deadline:
            if self.pid(instance_id) is None:
                return
            if time.monotonic() >= press:
                try:
                    await qmp(str(self.dir(instance_id) / "qmp.sock"), "system_powerdown", timeout=5)
                except (TimeoutError, OSError, QMPError):
                    pass
                press = time.monotonic() + POWERDOWN_RETRY
            await asyncio.sleep(0.1)
        LOG.info("instance %s did not power off in time: stopping it hard", instance_id)
        await self._kill(instance_id)

    async def destroy(self, instance_id: str) -> None:
        async with self.lock(instance_id):
            await self._kill(instance_id)
            shutil.rmtree(self.dir(instance_id), ignore_errors=True)
        self._locks.pop(instance_id, None)

    async def power(self, instance_id: str, action: str, instance: dict[str, Any]) -> None:
        d = self.dir(instance_id)
        async with self.lock(instance_id):
            stored = self._load(instance_id)
            sock = str(d / "qmp.sock")
            if action == "stop":
                await self._shutdown(instance_id)
            elif action == "start":
                if self.pid(instance_id) is None:
                    await self._launch(stored, d)
            elif action == "reboot-soft":
                await self._shutdown(instance_id)
                await self._launch(stored, d)
            elif action == "reboot-hard":
                await self._kill(instance_id)
                (d / "state.save").unlink(missing_ok=True)
                await self._launch(stored, d)
            elif action == "pause":
                await qmp(sock, "stop")
            elif action == "unpause":
                await qmp(sock, "cont")
            elif action == "suspend":
                await self._save_state(instance_id)
            elif action == "resume":
                await self._restore_state(stored, d)
            else:
                raise ValueError(f"unknown power action {action}")

    async def _save_state(self, instance_id: str) -> None:
        """Suspend: the machine state goes to state.save and the process ends."""
        d = self.dir(instance_id)
        async with QMP(str(d / "qmp.sock"), timeout=30) as q:
            await q.execute("stop")
            await q.execute("migrate", uri=f"exec:cat > {d / 'state.save.part'}")
            while True:
                status = (await q.execute("query-migrate")).get("status")
                if status == "completed":
                    break
                if status in ("failed", "cancelled"):
                    raise RuntimeError(f"saving the state of {instance_id} {status}")
                await asyncio.sleep(0.05)
            os.replace(d / "state.save.part", d / "state.save")
            try:
                await q.execute("quit")
            except (QMPError, ConnectionError, OSError):
                pass
        for _ in range(300):
            if self.pid(instance_id) is None:
                return
            await asyncio.sleep(0.01)
        await self._kill(instance_id)

    async def _restore_state(self, instance: dict[str, Any], d: Path) -> None:
        state = d / "state.save"
        if not state.exists():
            if self.pid(instance["id"]) is None:
                await self._launch(instance, d)
            return
        await self._launch(instance, d, incoming=True)
        async with QMP(str(d / "qmp.sock"), timeout=30) as q:
            await q.execute("migrate-incoming", uri=f"exec:cat {state}")
            while (await q.execute("query-status"))["status"] not in ("paused", "postmigrate", "running"):
                await asyncio.sleep(0.05)
            while (await q.execute("query-migrate")).get("status") not in ("completed", None):
                await asyncio.sleep(0.05)
            await q.execute("cont")
        state.unlink(missing_ok=True)

    async def rebuild(self, instance: dict[str, Any]) -> None:
        d = self.dir(instance["id"])
        async with self.lock(instance["id"]):
            previous = self._load(instance["id"]).get("volumes") if (d / "instance.json").exists() else None
            instance["volumes"] = with_slots(instance.get("volumes") or [], previous)
            await self._kill(instance["id"])
            for name in ("disk", "disk.config", "state.save", "disk.backup", "disk.eph0", "disk.swap", "disk.rescue"):
                (d / name).unlink(missing_ok=True)
            await self._prepare_disks(instance, d)
            self._save(instance, d)
            await self._launch(instance, d)

    # -- resize (same host; moves between nodes need the migration work) ------------------------------
    async def migrate_disk_and_power_off(self, instance: dict[str, Any], dest: str) -> dict[str, Any]:
        async with self.lock(instance["id"]):
            self._load(instance["id"])
            await self._shutdown(instance["id"])
        return {"path": str(self.dir(instance["id"]) / "disk"), "host": self.hostname}

    async def _take_disk(self, instance: dict[str, Any], disk: dict[str, Any]) -> None:
        """Destination of a cold move: copy the source's overlay and put it on this node's cached
        copy of the same base (nodes of one machine, or sharing the instances filesystem)."""
        d = self.dir(instance["id"])
        if boot_volume(instance):  # the root disk is the volume: only the blank local disks are made again
            d.mkdir(parents=True, exist_ok=True)
            await self._prepare_disks(instance, d)
            return
        source = Path(disk.get("path") or "")
        if not source.is_file():
            raise RuntimeError(f"the source's disk {source} is not reachable from node {self.hostname}: moving "
                               "between nodes needs them to share the instances filesystem")
        d = self.dir(instance["id"])
        d.mkdir(parents=True, exist_ok=True)
        base, fmt, _ = await self._fetch_boot(instance)
        tmp = d / "disk.part"
        await run("cp", "--sparse=always", str(source), str(tmp), timeout=COPY_TIMEOUT)
        await run("qemu-img", "rebase", "-q", "-u", "-F", fmt, "-b", str(base), str(tmp))
        os.replace(tmp, d / "disk")
        await self._extra_disks(instance, d)  # blank again on the destination
        if instance.get("config_drive"):
            await self._config_drive(instance, d)

    async def finish_migration(self, instance: dict[str, Any], same_host: bool,
                               disk: dict[str, Any] | None = None) -> None:
        d = self.dir(instance["id"])
        if not same_host:
            async with self.lock(instance["id"]):
                try:
                    instance["volumes"] = with_slots(instance.get("volumes") or [])
                    await self._take_disk(instance, disk or {})
                    size_gb = instance["flavor"].get("disk") or 0
                    if not boot_volume(instance):
                        info = json.loads(await run("qemu-img", "info", "--output=json", str(d / "disk")))
                        if size_gb and size_gb * (1 << 30) > info.get("virtual-size", 0):
                            await run("qemu-img", "resize", "-q", str(d / "disk"), f"{size_gb}G")
                    self._save(instance, d)
                    if instance.get("power_on", True):
                        await self._launch(instance, d)
                except BaseException:
                    await self._kill(instance["id"])
                    shutil.rmtree(d, ignore_errors=True)
                    raise
            return
        async with self.lock(instance["id"]):
            stored = self._load(instance["id"])
            await self._shutdown(instance["id"])
            stored["old_flavor"] = stored["flavor"]
            stored["flavor"] = instance["flavor"]
            if not boot_volume(stored):  # a volume-backed server's root stays in its volume as it is
                await run("cp", "--reflink=auto", "--sparse=always", str(d / "disk"), str(d / "disk.backup"),
                          timeout=COPY_TIMEOUT)
                size_gb = instance["flavor"].get("disk") or 0
                info = json.loads(await run("qemu-img", "info", "-U", "--output=json", str(d / "disk")))
                if size_gb and size_gb * (1 << 30) > info.get("virtual-size", 0):
                    await run("qemu-img", "resize", "-q", str(d / "disk"), f"{size_gb}G")
            self._save(stored, d)
            if instance.get("power_on", True):
                await self._launch(stored, d)

    async def confirm_migration(self, instance_id: str, same_host: bool) -> None:
        if not same_host:
            await self.destroy(instance_id)
            return
        d = self.dir(instance_id)
        async with self.lock(instance_id):
            (d / "disk.backup").unlink(missing_ok=True)

    async def finish_revert_migration(self, instance: dict[str, Any], same_host: bool) -> None:
        d = self.dir(instance["id"])
        async with self.lock(instance["id"]):
            stored = self._load(instance["id"])
            await self._kill(instance["id"])
            if (d / "disk.backup").exists():
                os.replace(d / "disk.backup", d / "disk")
            stored["flavor"] = instance["flavor"]
            stored.pop("old_flavor", None)
            self._save(stored, d)
            if instance.get("power_on", True):
                await self._launch(stored, d)

    async def migration_source_info(self, instance_id: str) -> dict[str, Any]:
        """What the destination must match: the root disk's size (none when the server boots from
        a volume) and the volumes with the root ports they sit on (a device may not move)."""
        d = self.dir(instance_id)
        stored = self._load(instance_id)
        ports = stored.get("ports") or []
        out: dict[str, Any] = {"profile": stored.get("profile") or 1, "source_volumes": stored.get("volumes") or [],
                               "source_ports": [{"id": p["id"], "slot": s} for p, s in zip(ports, nic_slots(ports),
                                                                                         strict=True)]}
        if (d / "disk").exists():
            info = json.loads(await run("qemu-img", "info", "-U", "--output=json", str(d / "disk")))
            out["disk_size"] = info["virtual-size"]
        return out

    async def pre_live_migration(self, instance: dict[str, Any]) -> dict[str, Any]:
        """Destination: empty local disks (the root an overlay of the same size on the same base)
        exported over NBD on loopback for the source to mirror into, and a QEMU waiting for the
        source's state on another port.  The volumes are shared storage: this QEMU opens them
        from the connection info made for this host (inactive until the state arrives, so the
        source's image locks permit it), on the ports they had on the source."""
        d = self.dir(instance["id"])
        async with self.lock(instance["id"]):
            d.mkdir(parents=True, exist_ok=True)
            try:
                instance["volumes"] = with_slots(instance.get("volumes") or [], instance.pop("source_volumes", None))
                instance["ports"] = keep_slots(instance.get("ports") or [], instance.pop("source_ports", None))
                await self._prepare_disks(instance, d, size=instance.get("disk_size"))
                self._save(instance, d)
                port, nbd_port = free_port(), free_port()
                while nbd_port == port:  # the kernel may hand the same free port out twice
                    nbd_port = free_port()
                await self._launch(instance, d, incoming=f"tcp:127.0.0.1:{port}")
                exports = self._local_drives(instance, d)
                if exports:
                    async with QMP(str(d / "qmp.sock"), timeout=30) as q:
                        await q.execute("nbd-server-start", addr={"type": "inet", "data": {
                            "host": "127.0.0.1", "port": str(nbd_port)}})
                        for name in exports:
                            await q.execute("nbd-server-add", device=name, writable=True)
            except BaseException:
                await self._kill(instance["id"])
                shutil.rmtree(d, ignore_errors=True)
                raise
        return {"uri": f"tcp:127.0.0.1:{port}", "host": self.hostname,
                "nbd": {"host": "127.0.0.1", "port": nbd_port, "exports": exports}}

    def _local_drives(self, instance: dict[str, Any], d: Path) -> list[str]:
        """The writable disks of this node's own (their ``-drive`` ids): what a live migration
        copies.  The config drive is made again on the destination, the volumes are shared."""
        names = [] if boot_volume(instance) else ["root"]
        return names + [name[5:] for name in ("disk.eph0", "disk.swap") if (d / name).exists()]

    async def post_live_migration(self, instance_id: str) -> None:
        """Destination, once the guest runs here: the NBD server the source mirrored into stops."""
        try:
            await qmp(str(self.dir(instance_id) / "qmp.sock"), "nbd-server-stop", timeout=10)
        except (QMPError, OSError, TimeoutError) as exc:
            if "not running" not in str(exc):  # none was started: the server has no local disk
                LOG.warning("stopping the migration's NBD server of %s: %s", instance_id, exc)

    async def live_migrate(self, instance_id: str, target: dict[str, Any]) -> dict[str, Any]:
        """Source: the local disks are mirrored into the destination's NBD exports (only the
        overlay's own data, the base is on both nodes) until both sides agree, the writes then
        reaching both before they complete (write-blocking); then QEMU's migration moves the
        memory and devices.  The volumes are never copied: both QEMUs open the same storage.
        When it completes the source stops and its files go; if it fails the mirrors are
        cancelled and the guest runs on here, untouched."""
        d = self.dir(instance_id)
        async with self.lock(instance_id):
            async with QMP(str(d / "qmp.sock"), timeout=30) as q:
                nbd = target.get("nbd") or {}
                try:
                    await self._mirror_to(q, nbd)
                    await q.execute("migrate", uri=target["uri"])
                    while True:
                        info = await q.execute("query-migrate")
                        status = info.get("status")
                        if status == "completed":
                            break
                        if status in ("failed", "cancelled"):
                            raise RuntimeError(f"live migration {status}: {info.get('error-desc', '')}")
                        await asyncio.sleep(0.05)
                except BaseException:
                    for name in nbd.get("exports") or []:
                        await _quietly(q, "block-job-cancel", device=f"mig-{name}", force=True)
                        await _quietly(q, "blockdev-del", **{"node-name": f"mig-{name}"})
                    raise
                try:
                    await q.execute("quit")
                except (QMPError, ConnectionError, OSError):
                    pass
            for _ in range(300):
                if self.pid(instance_id) is None:
                    break
                await asyncio.sleep(0.01)
            await self._kill(instance_id)
            shutil.rmtree(d, ignore_errors=True)
        LOG.info("live migration of %s: %s ms in all, %s ms downtime", instance_id, info.get("total-time"),
                 info.get("downtime"))
        return {"total_ms": info.get("total-time"), "downtime_ms": info.get("downtime")}

    @staticmethod
    async def _mirror_to(q: QMP, nbd: dict[str, Any]) -> None:
        """A ``blockdev-mirror`` of each local disk into its NBD export on the destination,
        waited on until every one is ready (in sync)."""
        jobs = []
        for name in nbd.get("exports") or []:
            node = f"mig-{name}"
            await q.execute("blockdev-add", **{"driver": "nbd", "node-name": node, "export": name, "server": {
                "type": "inet", "host": nbd["host"], "port": str(nbd["port"])}})
            await q.execute("blockdev-mirror", **{"job-id": node, "device": name, "target": node, "sync": "top",
                                                  "copy-mode": "write-blocking"})
            jobs.append(node)
        deadline = time.monotonic() + COPY_TIMEOUT
        while jobs:
            running = {j["device"]: j for j in await q.execute("query-block-jobs") or []}
            gone = [j for j in jobs if j not in running]
            if gone:
                done = next((e for e in q.events if e["event"] == "BLOCK_JOB_COMPLETED"
                             and (e.get("data") or {}).get("device") in gone), {})
                raise RuntimeError(f"copying disk {gone[0][4:]} to the destination failed: "
                                   f"{(done.get('data') or {}).get('error', 'the copy stopped')}")
            if all(running[j].get("ready") for j in jobs):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the disks did not reach the destination within {COPY_TIMEOUT:g} s")
            await asyncio.sleep(0.05)

    # -- snapshots and the console ------------------------------------------------------------------------
    async def snapshot(self, instance_id: str) -> Snapshot:
        """A consistent copy of the root disk: the guest is paused (QEMU flushes its caches when it
        stops) while qemu-img copies the disk with its backing chain into one qcow2, then resumed."""
        d = self.dir(instance_id)
        out = d / f"snapshot-{int(time.time() * 1000)}.qcow2"
        async with self.lock(instance_id):
            running = await self.power_state(instance_id) == RUNNING
            sock = str(d / "qmp.sock")
            if running:
                await qmp(sock, "stop")
            try:
                await run("qemu-img", "convert", "-U", "-O", "qcow2", str(d / "disk"), str(out), timeout=COPY_TIMEOUT)
            finally:
                if running:
                    await qmp(sock, "cont")

        async def chunks() -> AsyncIterator[bytes]:
            try:
                with open(out, "rb") as f:
                    while chunk := await asyncio.to_thread(f.read, 4 << 20):
                        yield chunk
            finally:
                out.unlink(missing_ok=True)

        return Snapshot("qcow2", chunks())

    async def console_output(self, instance_id: str) -> str:
        log = self.dir(instance_id) / "console.log"
        if not (self.dir(instance_id) / "instance.json").exists():
            raise LookupError(f"instance {instance_id} is not on node {self.hostname}")
        try:
            with open(log, "rb") as f:
                f.seek(max(0, log.stat().st_size - (1 << 20)))
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    async def console_endpoint(self, instance_id: str, kind: str) -> dict[str, Any]:
        """Where the console proxy reaches the running guest's ``serial`` console or ``vnc``
        server: its unix socket on this node (``available`` false for a guest started without one)."""
        name = {"serial": "tty.sock", "vnc": "vnc.sock"}[kind]
        if not (self.dir(instance_id) / "instance.json").exists():
            raise LookupError(f"instance {instance_id} is not on node {self.hostname}")
        if self.pid(instance_id) is None:
            raise LookupError(f"instance {instance_id} is not running on node {self.hostname}")
        path = self.dir(instance_id) / name
        return {"available": path.exists(), "path": str(path)}

    def clean_orphans(self) -> list[int]:
        """QEMU processes of this node (their command line names its instances path) that no
        instance directory owns any more are stopped."""
        killed = []
        marker = f"{self.root}/".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if not args or b"qemu-system" not in args[0] or not any(marker in a for a in args):
                continue
            uuid = args[args.index(b"-uuid") + 1].decode() if b"-uuid" in args else ""
            if uuid and (self.root / uuid / "instance.json").exists():
                continue
            LOG.warning("stopping QEMU process %s on %s: no instance owns it (uuid %s)", entry.name, self.hostname,
                        uuid or "none")
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except ProcessLookupError:
                pass
        return killed

    def clean_images(self, max_age: float) -> list[str]:
        in_use: set[str] = set()
        for d in self.root.iterdir():
            try:
                stored = json.loads((d / "instance.json").read_text())
            except (OSError, ValueError):
                continue
            in_use.update((stored.get("boot") or {}).get("base_images") or [])
        return self.images.clean(in_use, max_age)
