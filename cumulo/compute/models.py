"""The compute tables: flavors, key pairs, server groups, services and nodes, aggregates, servers and
what hangs off a server (tags, instance actions and their events, migrations)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Float, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from cumulo.core.db import Base, JSONText, UTCDateTime, utcnow

ID = String(64)


class Flavor(Base):
    __tablename__ = "compute_flavor"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # Nova's flavorid: any string
    name: Mapped[str] = mapped_column(String(255), unique=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    ram: Mapped[int] = mapped_column(Integer)  # MiB
    disk: Mapped[int] = mapped_column(Integer, default=0)  # GiB
    ephemeral: Mapped[int] = mapped_column(Integer, default=0)  # GiB
    swap: Mapped[int] = mapped_column(Integer, default=0)  # MiB
    rxtx_factor: Mapped[float] = mapped_column(Float, default=1.0)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    extra_specs: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class FlavorAccess(Base):
    __tablename__ = "compute_flavor_access"
    flavor_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    project_id: Mapped[str] = mapped_column(ID, primary_key=True)


class KeyPair(Base):
    __tablename__ = "compute_keypair"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ID, index=True)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(8), default="ssh")
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ServerGroup(Base):
    __tablename__ = "compute_server_group"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    policy: Mapped[str] = mapped_column(String(32))
    rules: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    project_id: Mapped[str] = mapped_column(ID, index=True)
    user_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ServerGroupMember(Base):
    __tablename__ = "compute_server_group_member"
    group_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    server_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)


class ServiceRecord(Base):
    """A compute agent (binary nova-compute) as os-services shows it; up while it heartbeats."""

    __tablename__ = "compute_service"
    __table_args__ = (UniqueConstraint("host", "binary"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    binary: Mapped[str] = mapped_column(String(64), default="nova-compute")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    forced_down: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # the code version the agent last reported (None: an agent from before versioned reports) (0032)
    version: Mapped[str | None] = mapped_column(String(32), nullable=True)


class ComputeNode(Base):
    """What a node offers; its id is also its resource provider's uuid in placement."""

    __tablename__ = "compute_node"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    hypervisor_hostname: Mapped[str] = mapped_column(String(255), unique=True)
    hypervisor_type: Mapped[str] = mapped_column(String(32))
    hypervisor_version: Mapped[int] = mapped_column(Integer)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    local_gb: Mapped[int] = mapped_column(Integer)
    host_ip: Mapped[str] = mapped_column(String(64), default="127.0.0.1")
    cpu_info: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Aggregate(Base):
    """A host aggregate; metadata availability_zone makes it an availability zone."""

    __tablename__ = "compute_aggregate"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AggregateHost(Base):
    __tablename__ = "compute_aggregate_host"
    aggregate_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)


class Server(Base):
    """A server: what the user asked for, and what was last observed (Nova's vm/task/power states)."""

    __tablename__ = "compute_server"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(ID, index=True)
    user_id: Mapped[str] = mapped_column(ID)
    flavor: Mapped[dict[str, Any]] = mapped_column(JSONText)  # a snapshot of the flavor at boot
    flavor_id: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    image_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    key_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    vm_state: Mapped[str] = mapped_column(String(32), default="building", index=True)
    task_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    power_state: Mapped[int] = mapped_column(Integer, default=0)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    node: Mapped[str | None] = mapped_column(String(36), nullable=True)
    availability_zone: Mapped[str | None] = mapped_column(String(255), nullable=True)
    fault: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    locked_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    hostname: Mapped[str | None] = mapped_column(String(255), nullable=True)
    user_data: Mapped[str | None] = mapped_column(Text, nullable=True)  # base64, as given
    config_drive: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    access_ipv4: Mapped[str | None] = mapped_column(String(64), nullable=True)
    access_ipv6: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # what the create asked for that the scheduler and agents need later: hints, group, networks,
    # block devices, image properties
    request: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict, server_default="{}")
    # Nova's system metadata: old/new flavor and vm_state during a resize, the shelved image, ...
    system_meta: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict, server_default="{}")
    # the worker that owns the current transition, and until when (renewed while it works)
    lease_owner: Mapped[str | None] = mapped_column(ID, nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, index=True)
    launched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    terminated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ServerTag(Base):
    __tablename__ = "compute_server_tag"
    server_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tag: Mapped[str] = mapped_column(String(80), primary_key=True, index=True)


class InstanceAction(Base):
    """One user-visible action on a server (os-instance-actions), with the request that asked for it."""

    __tablename__ = "compute_instance_action"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    server_id: Mapped[str] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    project_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    user_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    message: Mapped[str | None] = mapped_column(String(255), nullable=True)
    start_time: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class InstanceActionEvent(Base):
    __tablename__ = "compute_instance_action_event"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(Integer, index=True)
    event: Mapped[str] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    result: Mapped[str | None] = mapped_column(String(16), nullable=True)  # Success, Error
    details: Mapped[str | None] = mapped_column(Text, nullable=True)
    start_time: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Migration(Base):
    """A move of a server between hosts: resize, cold migration, live migration, evacuation."""

    __tablename__ = "compute_migration"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    server_id: Mapped[str] = mapped_column(String(36), index=True)
    project_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    user_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    migration_type: Mapped[str] = mapped_column(String(16))  # resize, migration, live-migration, evacuation
    status: Mapped[str] = mapped_column(String(16))
    source_compute: Mapped[str | None] = mapped_column(String(255), nullable=True)
    source_node: Mapped[str | None] = mapped_column(String(255), nullable=True)
    dest_compute: Mapped[str | None] = mapped_column(String(255), nullable=True)
    dest_node: Mapped[str | None] = mapped_column(String(255), nullable=True)
    old_flavor_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    new_flavor_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class BlockDeviceMapping(Base):
    """A volume of a server (Nova's block device mapping, volumes only so far): the attachment in
    block storage that backs it, the device name Nova reports, and the attach or detach under way
    (``status`` attaching, attached, detaching, with a lease like a server's transitions)."""

    __tablename__ = "compute_block_device_mapping"
    __table_args__ = (UniqueConstraint("server_id", "volume_id"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the attachment id Nova shows (2.89)
    server_id: Mapped[str] = mapped_column(String(36), index=True)
    volume_id: Mapped[str] = mapped_column(String(36), index=True)
    attachment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)  # block storage's
    device_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    boot_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source_type: Mapped[str] = mapped_column(String(16), default="volume")
    destination_type: Mapped[str] = mapped_column(String(16), default="volume")
    delete_on_termination: Mapped[bool] = mapped_column(Boolean, default=False)
    tag: Mapped[str | None] = mapped_column(String(60), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="attaching")
    connection_info: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(ID, nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
