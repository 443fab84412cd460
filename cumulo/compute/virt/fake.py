"""The fake driver: answers at once and keeps instances in memory.  One agent process can host many
fake nodes, which is how the control plane is tested at scale; it is never the only proof that a
feature works on real guests."""

from __future__ import annotations

from typing import Any

from cumulo.compute.virt.driver import NodeInfo


class FakeDriver:
    def __init__(self, hostname: str, vcpus: int = 16, memory_mb: int = 32768, local_gb: int = 500) -> None:
        self.hostname, self.vcpus, self.memory_mb, self.local_gb = hostname, vcpus, memory_mb, local_gb
        self.instances: dict[str, dict[str, Any]] = {}

    def node_info(self) -> NodeInfo:
        return NodeInfo(hypervisor_hostname=self.hostname, hypervisor_type="fake", hypervisor_version=1000,
                        vcpus=self.vcpus, memory_mb=self.memory_mb, local_gb=self.local_gb,
                        cpu_info={"arch": "x86_64", "model": "fake", "vendor": "cumulo",
                                  "topology": {"sockets": 1, "cores": self.vcpus, "threads": 1}})

    async def list_instances(self) -> list[str]:
        return list(self.instances)

    async def spawn(self, instance: dict[str, Any]) -> None:
        self.instances[instance["id"]] = instance

    async def destroy(self, instance_id: str) -> None:
        self.instances.pop(instance_id, None)

    async def power(self, instance_id: str, action: str) -> None:
        if instance_id not in self.instances:
            raise LookupError(f"instance {instance_id} is not on this node")
        self.instances[instance_id]["power"] = action
