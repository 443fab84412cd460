"""Scheduler filters: each removes the hosts a request cannot use.  Names follow Nova's."""

from __future__ import annotations

from typing import ClassVar

from cumulo.compute.scheduler.state import HostState, RequestSpec


class Filter:
    name: ClassVar[str]

    def passes(self, host: HostState, spec: RequestSpec) -> bool:
        raise NotImplementedError


class ComputeFilter(Filter):
    """The host's compute service is enabled and up."""

    name = "ComputeFilter"

    def passes(self, host: HostState, spec: RequestSpec) -> bool:
        return host.enabled and host.up


class AvailabilityZoneFilter(Filter):
    name = "AvailabilityZoneFilter"

    def passes(self, host: HostState, spec: RequestSpec) -> bool:
        return spec.zone is None or host.zone == spec.zone


class ImagePropertiesFilter(Filter):
    """The image's hw_architecture and img_hv_type (hypervisor_type) match the host."""

    name = "ImagePropertiesFilter"

    def passes(self, host: HostState, spec: RequestSpec) -> bool:
        arch = spec.image_properties.get("hw_architecture") or spec.image_properties.get("architecture")
        hv = spec.image_properties.get("img_hv_type") or spec.image_properties.get("hypervisor_type")
        if arch and arch != host.arch:
            return False
        return not (hv and hv.lower() not in (host.hypervisor_type.lower(), "qemu" if host.hypervisor_type == "kvm"
                                              else host.hypervisor_type.lower()))


class AggregateInstanceExtraSpecsFilter(Filter):
    """Flavor extra specs scoped ``aggregate_instance_extra_specs:KEY`` (or unscoped keys without a
    colon) must be found in the metadata of an aggregate the host belongs to."""

    name = "AggregateInstanceExtraSpecsFilter"
    SCOPE = "aggregate_instance_extra_specs:"

    def passes(self, host: HostState, spec: RequestSpec) -> bool:
        for key, wanted in spec.flavor_extra_specs.items():
            if key.startswith(self.SCOPE):
                key = key[len(self.SCOPE):]
            elif ":" in key:
                continue
            values = host.aggregate_metadata.get(key)
            if values is None or str(wanted) not in values:
                return False
        return True


class ServerGroupAffinityFilter(Filter):
    name = "ServerGroupAffinityFilter"

    def passes(self, host: HostState, spec: RequestSpec) -> bool:
        if spec.group_policy != "affinity" or not spec.group_members:
            return True
        return bool(host.instances & spec.group_members)


class ServerGroupAntiAffinityFilter(Filter):
    name = "ServerGroupAntiAffinityFilter"

    def passes(self, host: HostState, spec: RequestSpec) -> bool:
        if spec.group_policy != "anti-affinity":
            return True
        return len(host.instances & spec.group_members) < spec.group_max_per_host


class RamFilter(Filter):
    name = "RamFilter"

    def passes(self, host: HostState, spec: RequestSpec) -> bool:
        return host.ram_mb_free >= spec.ram_mb


class CoreFilter(Filter):
    name = "CoreFilter"

    def passes(self, host: HostState, spec: RequestSpec) -> bool:
        return host.vcpus_free >= spec.vcpus


class DiskFilter(Filter):
    name = "DiskFilter"

    def passes(self, host: HostState, spec: RequestSpec) -> bool:
        return host.disk_gb_free >= spec.disk_gb


ALL: dict[str, type[Filter]] = {f.name: f for f in (
    ComputeFilter, AvailabilityZoneFilter, ImagePropertiesFilter, AggregateInstanceExtraSpecsFilter,
    ServerGroupAffinityFilter, ServerGroupAntiAffinityFilter, RamFilter, CoreFilter, DiskFilter)}
DEFAULT = ["AvailabilityZoneFilter", "ComputeFilter", "ImagePropertiesFilter", "AggregateInstanceExtraSpecsFilter",
           "ServerGroupAffinityFilter", "ServerGroupAntiAffinityFilter", "RamFilter", "CoreFilter", "DiskFilter"]
