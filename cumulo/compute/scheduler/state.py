"""What the scheduler knows about a request and about each host."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class HostState:
    host: str
    node: str  # the compute node (and resource provider) uuid
    enabled: bool = True
    up: bool = True
    zone: str = "nova"
    hypervisor_type: str = "fake"
    arch: str = "x86_64"
    aggregate_metadata: dict[str, set[str]] = field(default_factory=dict)
    vcpus: int = 0
    vcpus_free: float = 0
    ram_mb_free: float = 0
    disk_gb_free: float = 0
    instances: set[str] = field(default_factory=set)  # server ids on the host


@dataclass
class RequestSpec:
    vcpus: int
    ram_mb: int
    disk_gb: int
    zone: str | None = None
    flavor_extra_specs: dict[str, str] = field(default_factory=dict)
    image_properties: dict[str, Any] = field(default_factory=dict)
    group_policy: str | None = None  # affinity, anti-affinity, soft-affinity, soft-anti-affinity
    group_members: set[str] = field(default_factory=set)
    group_max_per_host: int = 1
    ignore_hosts: set[str] = field(default_factory=set)
    force_hosts: set[str] = field(default_factory=set)
