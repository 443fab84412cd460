"""The block-storage tables: volumes, volume types (their extra specs and per-project access) and
snapshots.  Private to the volume service; others call ``cumulo.volume.service``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cumulo.core.db import Base, JSONText, UTCDateTime, utcnow

ID = String(64)


class Volume(Base):
    """A volume: what the user asked for, and what the agent last reported (its status)."""

    __tablename__ = "volume_volume"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    size: Mapped[int] = mapped_column(Integer)  # GiB
    status: Mapped[str] = mapped_column(String(32), default="creating", index=True)
    attach_status: Mapped[str] = mapped_column(String(32), default="detached")
    project_id: Mapped[str] = mapped_column(ID, index=True)
    user_id: Mapped[str] = mapped_column(ID)
    availability_zone: Mapped[str] = mapped_column(String(255), default="nova")
    volume_type_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    bootable: Mapped[bool] = mapped_column(Boolean, default=False)
    multiattach: Mapped[bool] = mapped_column(Boolean, default=False)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    snapshot_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    source_volid: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    image_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)  # Cinder's host@backend#pool
    # why the volume is in error, in words a member can read (the user messages API, later)
    fault: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the controller that owns the current transition, and until when
    lease_owner: Mapped[str | None] = mapped_column(ID, nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the image the volume came from, as Cinder's volume_image_metadata shows it (0018); None: none
    image_meta: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    # what an admin's os-reset_status set (Cinder's migration_status; no migrations run here yet)
    migration_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # the running transition's own data, for the reconciler when its lease ends: an upload's image
    # id and the status to go back to, an extend's new size
    task: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    # the generic volume group it belongs to (group_models.Group, 0022)
    group_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)


class VolumeType(Base):
    __tablename__ = "volume_type"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(String(255), nullable=True)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    extra_specs: Mapped[dict[str, str]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # the QoS specs its volumes get (qos_models.QosSpecs, 0020); None: none
    qos_specs_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    # its encryption spec (0023): {encryption_id, provider, cipher, key_size, control_location,
    # created_at, updated_at}; None: its volumes are not encrypted
    encryption: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)


class VolumeTypeAccess(Base):
    """A private volume type's projects (os-volume-type-access)."""

    __tablename__ = "volume_type_access"
    __table_args__ = (UniqueConstraint("volume_type_id", "project_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    volume_type_id: Mapped[str] = mapped_column(String(36), index=True)
    project_id: Mapped[str] = mapped_column(ID)


class Snapshot(Base):
    __tablename__ = "volume_snapshot"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    size: Mapped[int] = mapped_column(Integer)  # GiB, the volume's at the time
    status: Mapped[str] = mapped_column(String(32), default="creating", index=True)
    progress: Mapped[str] = mapped_column(String(8), default="0%")
    project_id: Mapped[str] = mapped_column(ID, index=True)
    user_id: Mapped[str] = mapped_column(ID)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    fault: Mapped[str | None] = mapped_column(Text, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(ID, nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the group snapshot it was taken for (group_models.GroupSnapshot, 0022)
    group_snapshot_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)


class Pool(Base):
    """A volume agent's pool as it last reported it (scheduler-stats/get_pools, os-services)."""

    __tablename__ = "volume_pool"
    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    capacity_gb: Mapped[int] = mapped_column(Integer, default=0)
    allocated_gb: Mapped[int] = mapped_column(Integer, default=0)
    free_gb: Mapped[int] = mapped_column(Integer, default=0)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # why an admin disabled it (os-services/disable-log-reason), and whether it is frozen
    # (os-services/freeze: its volumes refuse management operations) (0021)
    disabled_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    # the code version the agent last reported (None: an agent from before versioned reports) (0032)
    version: Mapped[str | None] = mapped_column(String(32), nullable=True)


class Attachment(Base):
    """A volume's attachment to a server (Cinder's attachments API, 3.27): reserved (no connector
    yet), attaching (the connector given, the connection info made), attached (completed),
    detaching.  A detached attachment is deleted."""

    __tablename__ = "volume_attachment"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(String(36), index=True)
    project_id: Mapped[str] = mapped_column(ID, index=True)  # the volume's project
    instance_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(32), default="reserved")
    attach_mode: Mapped[str] = mapped_column(String(8), default="rw")
    attached_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    mountpoint: Mapped[str | None] = mapped_column(String(255), nullable=True)
    connector: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    connection_info: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    attached_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Message(Base):
    """A user message (Cinder's messages API, 3.3): why an asynchronous request failed, in words a
    member may read; kept until ``expires_at``."""

    __tablename__ = "volume_message"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ID, index=True)
    request_id: Mapped[str] = mapped_column(String(255))
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    event_id: Mapped[str] = mapped_column(String(64))
    message_level: Mapped[str] = mapped_column(String(16), default="ERROR")
    user_message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
