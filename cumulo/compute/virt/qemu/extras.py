"""The QEMU driver's NIC hot-plug, rescue and diagnostics (mixed into ``QemuDriver``).

NICs sit on PCIe root ports of their own (``np0``..), so each can be hot-plugged and
hot-unplugged; a port keeps its root port (``slot``) in ``instance.json`` from its attach on.
A hot-plugged NIC's tap is made by the network dataplane (``Vifs.plug``) and its descriptor passed
to QEMU over the monitor (``getfd``, SCM_RIGHTS), then ``netdev_add`` and ``device_add``; a detach
is ``device_del`` until the guest lets go (``DEVICE_DELETED``), then ``netdev_del`` (QEMU closes
the tap, which goes with it).

Rescue boots a disk made from the rescue image (``disk.rescue``, an overlay of its cached base):
classic rescue puts it first and the server's own root disk second; stable-device rescue keeps
every disk where it was and adds the rescue disk last, booted first.  Unrescue drops it and
starts the server from its own disks again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from cumulo.compute.virt.qemu.images import run_helper
from cumulo.compute.virt.qemu.qmp import QMP, QMPError
from cumulo.core.format_inspector import qemu_format

LOG = logging.getLogger(__name__)
NIC_PORTS = 8  # PCIe root ports kept for NICs (np0..np7): the most a server hot-plugs
UNPLUG_TIMEOUT = 60.0
UNPLUG_RETRY = 5.0
STATES = {1: "running", 3: "paused", 4: "shutdown", 7: "suspended", 0: "pending"}


def nic_ports() -> list[str]:
    """The command-line arguments of the root ports NICs are plugged into (no I/O window: virtio
    on PCIe needs none, and the firmware has only 64 KiB of it to share)."""
    out = []
    for n in range(NIC_PORTS):
        out += ["-device", f"pcie-root-port,id=np{n},bus=pcie.0,chassis={20 + n},slot={20 + n},io-reserve=0"]
    return out


def nic_slots(ports: list[dict[str, Any]]) -> list[int | None]:
    """The root port of each port: the one it holds, else the lowest free one (None past the
    last: such a NIC sits on the root bus and cannot be unplugged while the guest runs)."""
    taken: set[int] = set()
    out: list[int | None] = []
    for port in ports:
        slot = port.get("slot")
        if isinstance(slot, int) and 0 <= slot < NIC_PORTS and slot not in taken:
            taken.add(slot)
            out.append(slot)
        else:
            out.append(None)
    for n, slot in enumerate(out):
        if slot is None and "slot" not in ports[n]:
            free = next((s for s in range(NIC_PORTS) if s not in taken), None)
            if free is not None:
                taken.add(free)
                out[n] = free
    return out


def keep_slots(ports: list[dict[str, Any]], source: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A live migration's destination: each port on the root port it has on the source (the
    guest's devices may not move), whatever order the controller lists them in."""
    slots = {p["id"]: p.get("slot") for p in source or []}
    return [{**p, "slot": slots[p["id"]]} if p["id"] in slots else dict(p) for p in ports]


def nic_args(port: dict[str, Any], fd: int, slot: int | None) -> list[str]:
    bus = f",bus=np{slot}" if slot is not None else ""
    return ["-netdev", f"tap,id=net-{port['id']},fd={fd},vhost=off",
            "-device", f"virtio-net-pci,netdev=net-{port['id']},mac={port['mac_address']},id=nic-{port['id']}{bus}"]


def stable_rescue_args(path: Path, bus: str | None, device: str | None) -> list[str]:
    """A stable-device rescue's disk: on a root port of its own, last (so the guest finds every
    other disk where it was), on the bus the image asks for: virtio (also for ide and sata, which
    q35 here does not offer), scsi (a virtio-scsi controller) or usb (an xHCI controller)."""
    cdrom = device == "cdrom"
    out = ["-device", "pcie-root-port,id=rescue-port,bus=pcie.0,chassis=40,slot=40,io-reserve=0",
           "-drive", f"file={path},if=none,id=rescue,format=qcow2,cache=writeback" + (",readonly=on" if cdrom else "")]
    if bus == "scsi":
        return out + ["-device", "virtio-scsi-pci,id=rescue-scsi,bus=rescue-port",
                      "-device", f"scsi-{'cd' if cdrom else 'hd'},drive=rescue,bus=rescue-scsi.0,bootindex=1"]
    if bus == "usb":
        return out + ["-device", "qemu-xhci,id=rescue-usb,bus=rescue-port",
                      "-device", "usb-storage,drive=rescue,bus=rescue-usb.0,bootindex=1"]
    return out + ["-device", "virtio-blk-pci,drive=rescue,bus=rescue-port,bootindex=1"]


def _exchange(f: Any, s: socket.socket, msg: dict[str, Any], fds: list[int] | None = None) -> Any:
    data = json.dumps(msg).encode() + b"\n"
    if fds:
        socket.send_fds(s, [data], fds)
    else:
        s.sendall(data)
    while True:
        line = f.readline()
        if not line:
            raise QMPError("QEMU closed the monitor connection")
        reply = json.loads(line)
        if "event" in reply:
            continue
        if "error" in reply:
            raise QMPError(f"{msg['execute']}: {reply['error'].get('desc', reply['error'])}")
        return reply.get("return")


def hotplug_nic(path: str, port: dict[str, Any], fd: int, slot: int | None) -> None:
    """Hand the tap's descriptor to QEMU and plug a virtio NIC on it, on one monitor connection
    (a passed descriptor belongs to the connection that received it until a netdev takes it)."""
    fdname = f"tap-{port['id'][:8]}"
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(path)
        f = s.makefile("rb")
        f.readline()  # the greeting
        _exchange(f, s, {"execute": "qmp_capabilities"})
        _exchange(f, s, {"execute": "getfd", "arguments": {"fdname": fdname}}, [fd])
        try:
            _exchange(f, s, {"execute": "netdev_add", "arguments": {
                "type": "tap", "id": f"net-{port['id']}", "fd": fdname, "vhost": False}})
        except QMPError:
            _exchange(f, s, {"execute": "closefd", "arguments": {"fdname": fdname}})
            raise
        device = {"driver": "virtio-net-pci", "netdev": f"net-{port['id']}", "mac": port["mac_address"],
                  "id": f"nic-{port['id']}"}
        if slot is not None:
            device["bus"] = f"np{slot}"
        try:
            _exchange(f, s, {"execute": "device_add", "arguments": device})
        except QMPError:
            _exchange(f, s, {"execute": "netdev_del", "arguments": {"id": f"net-{port['id']}"}})
            raise


def _proc_stat(path: str) -> list[str]:
    text = Path(path).read_text()
    return text[text.rindex(")") + 2:].split()  # the fields after the command name


class ExtraOps:
    """NIC hot-plug, rescue and diagnostics of the QEMU driver."""

    # -- NICs -------------------------------------------------------------------------------------
    async def attach_interface(self, instance_id: str, port: dict[str, Any]) -> dict[str, Any]:
        """Plug ``port`` (as ports_for_server describes it) into the instance: hot-plugged when the
        guest runs, on its command line from the next start otherwise."""
        d = self.dir(instance_id)  # type: ignore[attr-defined]
        async with self.lock(instance_id):  # type: ignore[attr-defined]
            stored = self._load(instance_id)  # type: ignore[attr-defined]
            if (d / "state.save").exists():
                raise RuntimeError("the server is suspended: resume it before attaching an interface")
            ports = [dict(p) for p in stored.get("ports") or []]
            for p, slot in zip(ports, nic_slots(ports), strict=True):
                p["slot"] = slot  # written down: the guest's NICs keep their root ports
            if any(p["id"] == port["id"] for p in ports):
                return next(p for p in ports if p["id"] == port["id"])
            used = {p["slot"] for p in ports}
            slot = next((s for s in range(NIC_PORTS) if s not in used), None)
            if slot is None:
                raise RuntimeError(f"the server has {NIC_PORTS} hot-pluggable interfaces, the most it can")
            mine = {**port, "slot": slot}
            if self.pid(instance_id) is not None:  # type: ignore[attr-defined]
                if self.vifs is None:  # type: ignore[attr-defined]
                    raise RuntimeError("this node has no network dataplane: it cannot plug a port")
                fd, _ = await self.vifs.plug(mine)  # type: ignore[attr-defined]
                try:
                    await asyncio.to_thread(hotplug_nic, str(d / "qmp.sock"), mine, fd, slot)
                finally:
                    os.close(fd)  # QEMU holds its own copy
            stored["ports"] = [*ports, mine]
            self._save(stored, d)  # type: ignore[attr-defined]
        return mine

    async def detach_interface(self, instance_id: str, port_id: str) -> None:
        """Unplug the port's NIC once the guest lets go of it (asked again every UNPLUG_RETRY
        seconds, as a guest still booting misses the request); an unknown port is fine."""
        d = self.dir(instance_id)  # type: ignore[attr-defined]
        async with self.lock(instance_id):  # type: ignore[attr-defined]
            try:
                stored = self._load(instance_id)  # type: ignore[attr-defined]
            except LookupError:
                return
            ports = [dict(p) for p in stored.get("ports") or []]
            for p, slot in zip(ports, nic_slots(ports), strict=True):
                p["slot"] = slot
            if self.pid(instance_id) is not None:  # type: ignore[attr-defined]
                async with QMP(str(d / "qmp.sock"), timeout=UNPLUG_TIMEOUT + 5) as q:
                    if await self._nic_present(q, port_id):
                        await self._unplug_nic(q, port_id)
                    try:
                        await q.execute("netdev_del", id=f"net-{port_id}")
                    except QMPError as exc:
                        if "not found" not in str(exc).lower():
                            raise
            stored["ports"] = [p for p in ports if p["id"] != port_id]
            self._save(stored, d)  # type: ignore[attr-defined]

    @staticmethod
    async def _nic_present(q: QMP, port_id: str) -> bool:
        try:
            await q.execute("qom-get", path=f"/machine/peripheral/nic-{port_id}", property="type")
        except QMPError:
            return False
        return True

    @staticmethod
    async def _unplug_nic(q: QMP, port_id: str) -> None:
        dev = f"nic-{port_id}"
        if (await q.execute("query-status"))["status"] != "running":
            raise RuntimeError("the guest is not running (paused?), so it cannot release the interface")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + UNPLUG_TIMEOUT
        while True:
            try:
                await q.execute("device_del", id=dev)
            except QMPError as exc:
                if "in the process" not in str(exc):
                    raise RuntimeError(f"QEMU refused to unplug the interface: {exc}") from None
            try:
                await q.wait_event("DEVICE_DELETED", min(UNPLUG_RETRY, max(0.1, deadline - loop.time())), device=dev)
                return
            except TimeoutError:
                if loop.time() >= deadline:
                    raise RuntimeError(f"the guest did not release the interface within {UNPLUG_TIMEOUT:g} s") \
                        from None

    # -- rescue -----------------------------------------------------------------------------------
    async def rescue(self, instance: dict[str, Any], image_id: str, properties: dict[str, Any],
                     stable: bool) -> None:
        """Stop the guest and start it from a disk made of ``image_id`` (see the module's text)."""
        d = self.dir(instance["id"])  # type: ignore[attr-defined]
        async with self.lock(instance["id"]):  # type: ignore[attr-defined]
            stored = self._load(instance["id"])  # type: ignore[attr-defined]
            url, token = instance.get("image_url", ""), instance.get("token", "")
            base, meta = await self.images.fetch(image_id, url, token)  # type: ignore[attr-defined]
            props = {**(meta.get("properties") or {}), **properties}
            boot = await self._image_boot(image_id, props, url, token)  # type: ignore[attr-defined]
            await self._shutdown(instance["id"])  # type: ignore[attr-defined]
            tmp = d / "disk.rescue.part"
            code, _, err = await run_helper(["qemu-img", "create", "-q", "-f", "qcow2", "-F",
                                             qemu_format(meta.get("disk_format")), "-b", str(base), str(tmp)], 120)
            if code != 0:
                raise RuntimeError(f"qemu-img failed ({code}): {err.decode(errors='replace').strip()[-300:]}")
            os.replace(tmp, d / "disk.rescue")
            stored["rescue"] = {"image_id": image_id, "stable": stable, "boot": boot,
                                "bus": props.get("hw_rescue_bus"), "device": props.get("hw_rescue_device")}
            self._save(stored, d)  # type: ignore[attr-defined]
            await self._launch(stored, d)  # type: ignore[attr-defined]

    async def unrescue(self, instance_id: str) -> None:
        d = self.dir(instance_id)  # type: ignore[attr-defined]
        async with self.lock(instance_id):  # type: ignore[attr-defined]
            stored = self._load(instance_id)  # type: ignore[attr-defined]
            await self._kill(instance_id)  # type: ignore[attr-defined]
            stored.pop("rescue", None)
            self._save(stored, d)  # type: ignore[attr-defined]
            (d / "disk.rescue").unlink(missing_ok=True)
            await self._launch(stored, d)  # type: ignore[attr-defined]

    # -- diagnostics ------------------------------------------------------------------------------
    async def diagnostics(self, instance_id: str) -> dict[str, Any]:
        """What the guest uses, from QEMU (its vCPU threads' CPU time, block statistics, balloon)
        and the taps' counters: Nova's standard form (2.48) and the older flat one."""
        d = self.dir(instance_id)  # type: ignore[attr-defined]
        stored = self._load(instance_id)  # type: ignore[attr-defined]
        state = STATES.get(await self.power_state(instance_id), "pending")  # type: ignore[attr-defined]
        pid = self.pid(instance_id)  # type: ignore[attr-defined]
        ram = int(stored["flavor"]["ram"])
        cpus: list[dict[str, Any]] = []
        disks: list[dict[str, Any]] = []
        used = ram
        uptime = None
        tick = os.sysconf("SC_CLK_TCK")
        if pid is not None:
            async with QMP(str(d / "qmp.sock"), timeout=10) as q:
                threads = await q.execute("query-cpus-fast")
                stats = await q.execute("query-blockstats")
                try:
                    used = int((await q.execute("query-balloon"))["actual"]) >> 20
                except QMPError:  # no balloon device: the guest has all of its flavor's memory
                    pass
            for cpu in threads:
                try:
                    fields = _proc_stat(f"/proc/{pid}/task/{cpu['thread-id']}/stat")
                    ns = (int(fields[11]) + int(fields[12])) * 1_000_000_000 // tick
                except (OSError, ValueError, IndexError):
                    ns = None
                cpus.append({"id": cpu["cpu-index"], "time": ns, "utilisation": None})
            for entry in stats:
                s = entry.get("stats") or {}
                disks.append({"read_bytes": s.get("rd_bytes"), "read_requests": s.get("rd_operations"),
                              "write_bytes": s.get("wr_bytes"), "write_requests": s.get("wr_operations"),
                              "errors_count": (s.get("failed_rd_operations") or 0)
                              + (s.get("failed_wr_operations") or 0)})
            try:
                started = int(_proc_stat(f"/proc/{pid}/stat")[19]) / tick
                uptime = int(float(Path("/proc/uptime").read_text().split()[0]) - started)
            except (OSError, ValueError, IndexError):
                uptime = None
        nics = []
        for port in stored.get("ports") or []:
            counters = await self.vifs.counters(port["id"]) if self.vifs is not None and pid else None  # type: ignore[attr-defined]
            c = counters or {}
            # the tap's transmit is the guest's receive
            nics.append({"mac_address": port.get("mac_address"), "rx_octets": c.get("tx_bytes"),
                         "rx_errors": c.get("tx_errors"), "rx_drop": c.get("tx_dropped"),
                         "rx_packets": c.get("tx_packets"), "rx_rate": None, "tx_octets": c.get("rx_bytes"),
                         "tx_errors": c.get("rx_errors"), "tx_drop": c.get("rx_dropped"),
                         "tx_packets": c.get("rx_packets"), "tx_rate": None, "tap": c.get("name")})
        standard = {"state": state, "driver": "libvirt", "hypervisor": "kvm" if self.kvm else "qemu",  # type: ignore[attr-defined]
                    "hypervisor_os": "linux", "uptime": uptime, "config_drive": (d / "disk.config").exists(),
                    "num_cpus": int(stored["flavor"]["vcpus"]), "num_nics": len(nics), "num_disks": len(disks),
                    "memory_details": {"maximum": ram, "used": used}, "cpu_details": cpus,
                    "disk_details": disks, "nic_details": [{k: v for k, v in n.items() if k != "tap"} for n in nics]}
        flat: dict[str, Any] = {f"cpu{c['id']}_time": c["time"] for c in cpus}
        flat.update({"memory": ram * 1024, "memory-actual": used * 1024})
        for n, disk in enumerate(disks):
            dev = f"vd{chr(ord('a') + n)}" if n < 26 else f"disk{n}"
            flat.update({f"{dev}_read": disk["read_bytes"], f"{dev}_read_req": disk["read_requests"],
                         f"{dev}_write": disk["write_bytes"], f"{dev}_write_req": disk["write_requests"],
                         f"{dev}_errors": disk["errors_count"]})
        for nic, port in zip(nics, stored.get("ports") or [], strict=True):
            tap = nic["tap"] or f"tap{port['id'][:11]}"
            flat.update({f"{tap}_rx": nic["rx_octets"], f"{tap}_rx_packets": nic["rx_packets"],
                         f"{tap}_rx_errors": nic["rx_errors"], f"{tap}_rx_drop": nic["rx_drop"],
                         f"{tap}_tx": nic["tx_octets"], f"{tap}_tx_packets": nic["tx_packets"],
                         f"{tap}_tx_errors": nic["tx_errors"], f"{tap}_tx_drop": nic["tx_drop"]})
        return {"standard": standard, "flat": flat}
