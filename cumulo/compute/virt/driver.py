"""The interface every compute driver implements (fake now, QEMU next): what the node offers, and
the lifecycle operations on instances the agent asks it for.  An ``instance`` is the dict the
controller sends (id, name, flavor, image_id, user_data, metadata, ...)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class NodeInfo:
    hypervisor_hostname: str
    hypervisor_type: str
    hypervisor_version: int
    vcpus: int
    memory_mb: int
    local_gb: int
    host_ip: str = "127.0.0.1"
    cpu_info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Snapshot:
    disk_format: str
    chunks: AsyncIterator[bytes]


class Driver(Protocol):
    def node_info(self) -> NodeInfo: ...

    async def instances(self) -> dict[str, int]:
        """Every instance on the node and its power state (Nova's numbers: 1 running, 3 paused,
        4 shut down, 7 suspended)."""
        ...

    async def spawn(self, instance: dict[str, Any]) -> None: ...

    async def destroy(self, instance_id: str) -> None:
        """Remove the instance and everything it has on the node; unknown ids are fine."""
        ...

    async def power(self, instance_id: str, action: str, instance: dict[str, Any]) -> None:
        """stop, start, reboot-soft, reboot-hard, pause, unpause, suspend, resume."""
        ...

    async def rebuild(self, instance: dict[str, Any]) -> None:
        """Recreate the root disk from instance["image_id"], keeping the instance's identity."""
        ...

    async def migrate_disk_and_power_off(self, instance: dict[str, Any], dest: str) -> dict[str, Any]:
        """Source side of a move to another node: stop the guest; returns where the destination
        finds the disk."""
        ...

    async def finish_migration(self, instance: dict[str, Any], same_host: bool,
                               disk: dict[str, Any] | None = None) -> None:
        """Destination side of a resize or cold migration: run the instance here with
        instance["flavor"], powered on if instance["power_on"]; keep what a revert needs.
        ``disk`` is what the source's migrate_disk_and_power_off returned."""
        ...

    async def confirm_migration(self, instance_id: str, same_host: bool) -> None:
        """Source side after a confirmed move: drop the old copy (on the same host, the backup)."""
        ...

    async def finish_revert_migration(self, instance: dict[str, Any], same_host: bool) -> None:
        """Source side of a revert: bring the old copy back with instance["flavor"]."""
        ...

    async def pre_live_migration(self, instance: dict[str, Any]) -> dict[str, Any]:
        """Destination side: get ready to receive; returns where the source should send to."""
        ...

    async def migration_source_info(self, instance_id: str) -> dict[str, Any]:
        """Source side, before a live migration: what the destination must match (disk size)."""
        ...

    async def live_migrate(self, instance_id: str, target: dict[str, Any]) -> dict[str, Any]:
        """Source side: move the running instance to ``target``; afterwards it is gone here.
        Returns figures of the move (total time, downtime)."""
        ...

    async def post_live_migration(self, instance_id: str) -> None:
        """Destination side, once the instance runs here: drop what only its arrival needed."""
        ...

    async def attach_volume(self, instance_id: str, volume: dict[str, Any]) -> dict[str, Any]:
        """Give the instance ``volume`` ({volume_id, connection_info, device_name}): hot-plugged
        into a running guest, else from its next start.  Idempotent."""
        ...

    async def detach_volume(self, instance_id: str, volume_id: str) -> None:
        """Take the volume from the instance once the guest released it.  Idempotent."""
        ...

    async def extend_volume(self, instance_id: str, volume_id: str, size: int) -> None:
        """Grow an attached volume to ``size`` bytes, so the guest sees it."""
        ...

    async def swap_volume(self, instance_id: str, old_volume_id: str, new_volume: dict[str, Any]) -> None:
        """Copy the attached volume into ``new_volume`` while the guest runs and put it in its
        place (the guest keeps its disk).  Idempotent."""
        ...

    async def snapshot_volume(self, instance_id: str, volume_id: str, snapshot_id: str, overlay: str) -> bool:
        """Block storage froze the attached volume's active image: the running guest goes on in
        the qcow2 ``overlay`` (backed by that image) as of one instant.  False when the instance
        does not run (nothing writes the volume then).  Idempotent."""
        ...

    async def merge_volume(self, instance_id: str, volume_id: str, chain: list[str], base: str | None) -> bool:
        """Stream every image of the attached volume's ``chain`` (file names, active first) above
        ``base`` (one of them, or None: all) into the active image while the guest runs, so those
        images leave the guest's chain.  False when the instance does not run.  Idempotent."""
        ...

    async def instance_volumes(self, instance_id: str) -> list[str] | None:
        """The ids of the volumes the instance really has; None if it is not on this node."""
        ...

    async def attach_interface(self, instance_id: str, port: dict[str, Any]) -> dict[str, Any]:
        """Give the instance a NIC on ``port`` (id, mac_address, network_id, mtu): hot-plugged into
        a running guest, else from its next start.  Idempotent."""
        ...

    async def detach_interface(self, instance_id: str, port_id: str) -> None:
        """Take the port's NIC from the instance once the guest released it.  Idempotent."""
        ...

    async def rescue(self, instance: dict[str, Any], image_id: str, properties: dict[str, Any],
                     stable: bool) -> None:
        """Start the instance from a disk made of ``image_id`` (its own disks kept attached)."""
        ...

    async def unrescue(self, instance_id: str) -> None:
        """Start the instance from its own disks again."""
        ...

    async def diagnostics(self, instance_id: str) -> dict[str, Any]:
        """``{"standard": Nova's 2.48 diagnostics, "flat": the older form}``."""
        ...

    async def snapshot(self, instance_id: str) -> Snapshot: ...

    async def console_output(self, instance_id: str) -> str: ...
