"""The interface every compute driver implements (fake now, QEMU next): what the node offers, and
the lifecycle operations on instances the agent asks it for."""

from __future__ import annotations

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


class Driver(Protocol):
    def node_info(self) -> NodeInfo: ...

    async def list_instances(self) -> list[str]: ...

    async def spawn(self, instance: dict[str, Any]) -> None: ...

    async def destroy(self, instance_id: str) -> None: ...

    async def power(self, instance_id: str, action: str) -> None:
        """stop, start, reboot-soft, reboot-hard, pause, unpause, suspend, resume."""
        ...
