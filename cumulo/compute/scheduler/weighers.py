"""Scheduler weighers: each scores hosts; the scheduler normalises scores to 0..1 and multiplies
them by the weigher's multiplier.  Positive multipliers spread (most free first), negative pack."""

from __future__ import annotations

from typing import ClassVar

from cumulo.compute.scheduler.state import HostState, RequestSpec


class Weigher:
    name: ClassVar[str]

    def value(self, host: HostState, spec: RequestSpec) -> float:
        raise NotImplementedError


class RAMWeigher(Weigher):
    name = "RAMWeigher"

    def value(self, host: HostState, spec: RequestSpec) -> float:
        return host.ram_mb_free


class CPUWeigher(Weigher):
    name = "CPUWeigher"

    def value(self, host: HostState, spec: RequestSpec) -> float:
        return host.vcpus_free


class DiskWeigher(Weigher):
    name = "DiskWeigher"

    def value(self, host: HostState, spec: RequestSpec) -> float:
        return host.disk_gb_free


class ServerGroupSoftAffinityWeigher(Weigher):
    """More members of a soft-affinity group on the host scores higher."""

    name = "ServerGroupSoftAffinityWeigher"

    def value(self, host: HostState, spec: RequestSpec) -> float:
        return float(len(host.instances & spec.group_members)) if spec.group_policy == "soft-affinity" else 0.0


class ServerGroupSoftAntiAffinityWeigher(Weigher):
    """Fewer members of a soft-anti-affinity group on the host scores higher."""

    name = "ServerGroupSoftAntiAffinityWeigher"

    def value(self, host: HostState, spec: RequestSpec) -> float:
        if spec.group_policy != "soft-anti-affinity":
            return 0.0
        return -float(len(host.instances & spec.group_members))


ALL: dict[str, type[Weigher]] = {w.name: w for w in (
    RAMWeigher, CPUWeigher, DiskWeigher, ServerGroupSoftAffinityWeigher, ServerGroupSoftAntiAffinityWeigher)}
# Nova's default multipliers spread servers; make them negative to pack.
SPREAD = {"RAMWeigher": 1.0, "CPUWeigher": 1.0, "DiskWeigher": 1.0, "ServerGroupSoftAffinityWeigher": 1.0,
          "ServerGroupSoftAntiAffinityWeigher": 1.0}
PACK = {name: -value if name in ("RAMWeigher", "CPUWeigher", "DiskWeigher") else value
        for name, value in SPREAD.items()}
