"""What crosses ``VolumeService``: who asks, and volumes, types, snapshots and pools as plain data
(frozen dataclasses, so any call could become an RPC without its callers changing).  Import them
from ``cumulo.volume.service``, which re-exports them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Caller:
    """Who asks: their project and user, and whether they are an admin (who sees every project)."""

    project_id: str
    user_id: str
    admin: bool = False


@dataclass(frozen=True)
class VolumeInfo:
    id: str
    name: str | None
    description: str | None
    size: int
    status: str
    attach_status: str
    project_id: str
    user_id: str
    availability_zone: str
    volume_type: str | None  # the type's name
    volume_type_id: str | None
    bootable: bool
    multiattach: bool
    metadata: dict[str, str]
    snapshot_id: str | None
    source_volid: str | None
    image_id: str | None
    host: str | None
    fault: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    # its attachments (any status), oldest first; filled by volume() and volumes()
    attachments: tuple[AttachmentInfo, ...] = ()
    # the image it came from (Cinder's volume_image_metadata: strings), None when none
    image_meta: dict[str, str] | None = None
    migration_status: str | None = None
    group_id: str | None = None  # its generic volume group (3.13)


@dataclass(frozen=True)
class VolumeTypeInfo:
    id: str
    name: str
    description: str | None
    is_public: bool
    extra_specs: dict[str, str]
    qos_specs_id: str | None = None  # the QoS specs associated with it (/qos-specs)
    encrypted: bool = False  # it has an encryption spec (/types/{id}/encryption)


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    volume_id: str
    name: str | None
    description: str | None
    size: int
    status: str
    progress: str
    project_id: str
    user_id: str
    metadata: dict[str, str]
    created_at: dt.datetime
    updated_at: dt.datetime
    group_snapshot_id: str | None = None  # the group snapshot it was taken for (3.14)


@dataclass(frozen=True)
class PoolInfo:
    host: str
    capacity_gb: int
    allocated_gb: int
    free_gb: int
    up: bool
    disabled: bool
    reported_at: dt.datetime
    frozen: bool = False  # os-services/freeze: its volumes refuse management operations
    disabled_reason: str | None = None


@dataclass
class VolumeFilters:
    """A list's filters, Cinder's names: exact matches, and metadata pairs that must all hold."""

    all_projects: bool = False
    project_id: str | None = None
    name: str | None = None
    status: str | None = None
    availability_zone: str | None = None
    bootable: bool | None = None
    volume_id: str | None = None  # snapshots: those of one volume
    group_id: str | None = None  # volumes: those of one group (3.10)
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AttachmentInfo:
    """A volume's attachment to a server: ``status`` reserved, attaching or attached (a detached
    attachment is deleted); ``connection_info`` (once a connector was given) is how the compute
    node reaches the volume: ``{"driver_volume_type": "file", "data": {"path", "format", "name",
    "volume_id", "access_mode"}}`` for the file driver on the same machine."""

    id: str
    volume_id: str
    project_id: str
    instance_uuid: str | None
    status: str
    attach_mode: str
    attached_host: str | None
    mountpoint: str | None
    connector: dict[str, Any] | None
    connection_info: dict[str, Any] | None
    attached_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class MessageInfo:
    """A user message (3.3): what failed, for whom, until when."""

    id: str
    project_id: str
    request_id: str
    resource_type: str
    resource_uuid: str | None
    event_id: str
    message_level: str
    user_message: str
    created_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True)
class ServiceInfo:
    """One of block storage's services as os-services lists it (Cinder's binaries)."""

    binary: str
    host: str
    zone: str
    up: bool
    disabled: bool
    updated_at: dt.datetime | None
    disabled_reason: str | None = None
    frozen: bool = False
