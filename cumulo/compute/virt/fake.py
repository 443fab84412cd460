"""The fake driver: answers at once and keeps instances in memory (and, if given a state file, on
disk, so a restarted agent finds them again).  One agent process can host many fake nodes, which
is how the control plane is tested at scale; it is never the only proof that a feature works on
real guests."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from cumulo.compute.virt.driver import NodeInfo, Snapshot

POWER = {"stop": 4, "start": 1, "reboot-soft": 1, "reboot-hard": 1, "pause": 3, "unpause": 1, "suspend": 7,
         "resume": 1}


class FakeDriver:
    def __init__(self, hostname: str, vcpus: int = 16, memory_mb: int = 32768, local_gb: int = 500,
                 state_file: str | Path | None = None) -> None:
        self.hostname, self.vcpus, self.memory_mb, self.local_gb = hostname, vcpus, memory_mb, local_gb
        self.state_file = Path(state_file) if state_file else None
        self.instances_: dict[str, dict[str, Any]] = {}
        self.backups: dict[str, dict[str, Any]] = {}  # same-host resize: the copy a revert returns to
        if self.state_file and self.state_file.exists():
            saved = json.loads(self.state_file.read_text())
            self.instances_, self.backups = saved.get("instances", {}), saved.get("backups", {})

    def _save(self) -> None:
        if self.state_file:
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"instances": self.instances_, "backups": self.backups}))
            os.replace(tmp, self.state_file)

    def _log(self, instance_id: str, line: str) -> None:
        inst = self.instances_.get(instance_id)
        if inst is not None:
            stamp = dt.datetime.now(dt.UTC).strftime("%H:%M:%S")
            inst.setdefault("console", []).append(f"[{stamp}] {line}")

    def _boot_lines(self, instance: dict[str, Any]) -> None:
        """What a small guest prints on its serial console while it boots (no guest runs here)."""
        flavor = instance.get("flavor") or {}
        for line in (f"fake instance {instance.get('name')} booted from image {instance.get('image_id')}",
                     f"Memory: {flavor.get('ram', 0)} MB, {flavor.get('vcpus', 1)} vCPU(s)",
                     "Mounting the root filesystem",
                     f"Hostname: {instance.get('hostname') or instance.get('name')}",
                     "cumulo-tiny ready"):
            self._log(instance["id"], line)

    def node_info(self) -> NodeInfo:
        return NodeInfo(hypervisor_hostname=self.hostname, hypervisor_type="fake", hypervisor_version=1000,
                        vcpus=self.vcpus, memory_mb=self.memory_mb, local_gb=self.local_gb,
                        cpu_info={"arch": "x86_64", "model": "fake", "vendor": "cumulo",
                                  "topology": {"sockets": 1, "cores": self.vcpus, "threads": 1}})

    async def instances(self) -> dict[str, int]:
        return {k: v.get("power", 1) for k, v in self.instances_.items()}

    def _require(self, instance_id: str) -> dict[str, Any]:
        inst = self.instances_.get(instance_id)
        if inst is None:
            raise LookupError(f"instance {instance_id} is not on node {self.hostname}")
        return inst

    async def spawn(self, instance: dict[str, Any]) -> None:
        if instance.get("flavor", {}).get("extra_specs", {}).get("fake:fail_spawn"):
            raise RuntimeError("the flavor asks the fake driver to fail (fake:fail_spawn)")
        self.instances_[instance["id"]] = {**instance, "power": 1, "console": []}
        self._boot_lines(instance)
        self._save()

    async def destroy(self, instance_id: str) -> None:
        self.instances_.pop(instance_id, None)
        self.backups.pop(instance_id, None)
        self._save()

    async def power(self, instance_id: str, action: str, instance: dict[str, Any]) -> None:
        inst = self.instances_.get(instance_id)
        if inst is None:
            if action not in ("start", "reboot-hard"):
                raise LookupError(f"instance {instance_id} is not on node {self.hostname}")
            inst = self.instances_[instance_id] = {**instance, "console": []}  # started again from its disk
        inst["power"] = POWER[action]
        self._log(instance_id, f"power action {action}")
        if action in ("start", "reboot-soft", "reboot-hard"):  # the guest boots again
            self._boot_lines(inst)
        self._save()

    async def rebuild(self, instance: dict[str, Any]) -> None:
        self._require(instance["id"])
        console = self.instances_[instance["id"]].get("console", [])
        self.instances_[instance["id"]] = {**instance, "power": 1, "console": console}
        self._log(instance["id"], f"rebuilt from image {instance.get('image_id')}")
        self._save()

    async def migrate_disk_and_power_off(self, instance: dict[str, Any], dest: str) -> dict[str, Any]:
        self._require(instance["id"])["power"] = 4
        self._save()
        return {}

    async def finish_migration(self, instance: dict[str, Any], same_host: bool,
                               disk: dict[str, Any] | None = None) -> None:
        if same_host and instance["id"] in self.instances_:
            self.backups[instance["id"]] = dict(self.instances_[instance["id"]])
        console = self.instances_.get(instance["id"], {}).get("console", [])
        self.instances_[instance["id"]] = {**instance, "power": 1 if instance.get("power_on", True) else 4,
                                           "console": console}
        self._log(instance["id"], f"now running with flavor {instance['flavor'].get('name')}")
        self._save()

    async def confirm_migration(self, instance_id: str, same_host: bool) -> None:
        if same_host:
            self.backups.pop(instance_id, None)
        else:
            self.instances_.pop(instance_id, None)
        self._save()

    async def finish_revert_migration(self, instance: dict[str, Any], same_host: bool) -> None:
        old = self.backups.pop(instance["id"], None) if same_host else self.instances_.get(instance["id"])
        base = old or {**instance, "console": []}
        base.update(flavor=instance["flavor"], power=1 if instance.get("power_on", True) else 4)
        self.instances_[instance["id"]] = base
        self._log(instance["id"], "resize reverted")
        self._save()

    async def pre_live_migration(self, instance: dict[str, Any]) -> dict[str, Any]:
        # the incoming instance exists here from now on, as a QEMU started with -incoming would
        self.instances_[instance["id"]] = {**instance, "power": instance.get("power", 1), "console": []}
        self._log(instance["id"], "incoming live migration")
        self._save()
        return {"host": self.hostname}

    async def migration_source_info(self, instance_id: str) -> dict[str, Any]:
        return {}

    async def post_live_migration(self, instance_id: str) -> None:
        return None

    async def live_migrate(self, instance_id: str, target: dict[str, Any]) -> dict[str, Any]:
        self._require(instance_id)
        self.instances_.pop(instance_id)
        self._save()
        return {}

    async def attach_volume(self, instance_id: str, volume: dict[str, Any]) -> dict[str, Any]:
        inst = self._require(instance_id)
        volumes = [v for v in inst.get("volumes") or [] if v["volume_id"] != volume["volume_id"]]
        inst["volumes"] = [*volumes, volume]
        self._log(instance_id, f"volume {volume['volume_id']} attached")
        self._save()
        return volume

    async def detach_volume(self, instance_id: str, volume_id: str) -> None:
        inst = self.instances_.get(instance_id)
        if inst is not None:
            inst["volumes"] = [v for v in inst.get("volumes") or [] if v["volume_id"] != volume_id]
            self._log(instance_id, f"volume {volume_id} detached")
            self._save()

    async def swap_volume(self, instance_id: str, old_volume_id: str, new_volume: dict[str, Any]) -> None:
        inst = self._require(instance_id)
        volumes = inst.get("volumes") or []
        if not any(v["volume_id"] == old_volume_id for v in volumes):
            if any(v["volume_id"] == new_volume["volume_id"] for v in volumes):
                return
            raise LookupError(f"volume {old_volume_id} is not attached to instance {instance_id}")
        inst["volumes"] = [new_volume if v["volume_id"] == old_volume_id else v for v in volumes]
        self._log(instance_id, f"volume {old_volume_id} swapped for {new_volume['volume_id']}")
        self._save()

    async def extend_volume(self, instance_id: str, volume_id: str, size: int) -> None:
        inst = self._require(instance_id)
        if not any(v["volume_id"] == volume_id for v in inst.get("volumes") or []):
            raise LookupError(f"volume {volume_id} is not attached to instance {instance_id}")
        self._log(instance_id, f"volume {volume_id} grew to {size} bytes")

    async def snapshot_volume(self, instance_id: str, volume_id: str, snapshot_id: str, overlay: str) -> bool:
        """No guest writes here: block storage moves the files itself."""
        self._attached(instance_id, volume_id)
        self._log(instance_id, f"volume {volume_id} snapshot {snapshot_id} left to the storage node")
        return False

    async def merge_volume(self, instance_id: str, volume_id: str, chain: list[str], base: str | None) -> bool:
        """No guest holds the chain here: block storage merges the files itself."""
        self._attached(instance_id, volume_id)
        return False

    def _attached(self, instance_id: str, volume_id: str) -> None:
        inst = self._require(instance_id)
        if not any(v["volume_id"] == volume_id for v in inst.get("volumes") or []):
            raise LookupError(f"volume {volume_id} is not attached to instance {instance_id}")

    async def instance_volumes(self, instance_id: str) -> list[str] | None:
        inst = self.instances_.get(instance_id)
        return None if inst is None else [v["volume_id"] for v in inst.get("volumes") or []]

    async def snapshot(self, instance_id: str) -> Snapshot:
        inst = self._require(instance_id)

        async def chunks() -> AsyncIterator[bytes]:
            header = f"fake disk of {instance_id} ({inst.get('name')})\n".encode()
            yield header + b"\0" * (65536 - len(header))

        return Snapshot("raw", chunks())

    async def attach_interface(self, instance_id: str, port: dict[str, Any]) -> dict[str, Any]:
        inst = self._require(instance_id)
        inst["ports"] = [*(p for p in inst.get("ports") or [] if p["id"] != port["id"]), port]
        self._log(instance_id, f"interface {port['id']} attached")
        self._save()
        return port

    async def detach_interface(self, instance_id: str, port_id: str) -> None:
        inst = self.instances_.get(instance_id)
        if inst is not None:
            inst["ports"] = [p for p in inst.get("ports") or [] if p["id"] != port_id]
            self._save()

    async def rescue(self, instance: dict[str, Any], image_id: str, properties: dict[str, Any],
                     stable: bool) -> None:
        self._require(instance["id"])["rescue"] = {"image_id": image_id, "stable": stable}
        self._log(instance["id"], f"rescued from image {image_id}")
        self._save()

    async def unrescue(self, instance_id: str) -> None:
        self._require(instance_id).pop("rescue", None)
        self._save()

    async def diagnostics(self, instance_id: str) -> dict[str, Any]:
        inst = self._require(instance_id)
        flavor = inst.get("flavor") or {}
        cpus = [{"id": n, "time": 0, "utilisation": None} for n in range(int(flavor.get("vcpus", 1)))]
        ram = int(flavor.get("ram", 0))
        standard = {"state": {1: "running", 3: "paused", 4: "shutdown"}.get(inst.get("power", 1), "pending"),
                    "driver": "libvirt", "hypervisor": "fake", "hypervisor_os": "linux", "uptime": 0,
                    "config_drive": bool(inst.get("config_drive")), "num_cpus": len(cpus), "num_nics": 0,
                    "num_disks": 0, "memory_details": {"maximum": ram, "used": ram}, "cpu_details": cpus,
                    "disk_details": [], "nic_details": []}
        return {"standard": standard, "flat": {"memory": ram * 1024, **{f"cpu{c['id']}_time": 0 for c in cpus}}}

    async def console_output(self, instance_id: str) -> str:
        # as a guest's serial log reads: its lines, then the login prompt it waits at (no newline)
        inst = self._require(instance_id)
        prompt = f"{inst.get('hostname') or inst.get('name') or 'guest'} login: " if inst.get("power", 1) == 1 else ""
        return "".join(line + "\n" for line in inst.get("console", [])) + prompt
