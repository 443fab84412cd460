"""The Network API's tables: networks, subnets, ports and the IP allocations that tie ports to
subnets (one row per address: the primary key makes handing an address out twice impossible),
security groups, routers, floating IPs, subnet pools and per-project quota limits."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cumulo.core.db import Base, JSONText, UTCDateTime, utcnow

ID = String(64)


class Standard:
    """Neutron's standard attributes."""

    description: Mapped[str] = mapped_column(String(255), default="")
    tags: Mapped[list[str]] = mapped_column(JSONText, default=list)
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Network(Standard, Base):
    __tablename__ = "network_network"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = mapped_column(ID, index=True)
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    external: Mapped[bool] = mapped_column(Boolean, default=False)
    mtu: Mapped[int] = mapped_column(Integer, default=1450)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    network_type: Mapped[str] = mapped_column(String(16), default="vxlan")
    physical_network: Mapped[str | None] = mapped_column(String(64), nullable=True)
    segment_id: Mapped[int | None] = mapped_column(Integer, unique=True, nullable=True)
    availability_zone_hints: Mapped[list[str]] = mapped_column(JSONText, default=list)


class Subnet(Standard, Base):
    __tablename__ = "network_subnet"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = mapped_column(ID, index=True)
    ip_version: Mapped[int] = mapped_column(Integer)
    cidr: Mapped[str] = mapped_column(String(64))
    gateway_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enable_dhcp: Mapped[bool] = mapped_column(Boolean, default=True)
    allocation_pools: Mapped[list[dict[str, str]]] = mapped_column(JSONText, default=list)
    dns_nameservers: Mapped[list[str]] = mapped_column(JSONText, default=list)
    host_routes: Mapped[list[dict[str, str]]] = mapped_column(JSONText, default=list)
    ipv6_ra_mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ipv6_address_mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    subnetpool_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)


class Port(Standard, Base):
    __tablename__ = "network_port"
    __table_args__ = (Index("ix_network_port_project_created", "project_id", "created_at", "id"),
                      Index("ix_network_port_created_at_id", "created_at", "id"),
                      Index("ix_network_port_device_owner", "device_owner"))
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = mapped_column(ID, index=True)
    mac_address: Mapped[str] = mapped_column(String(32), unique=True)
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    device_owner: Mapped[str] = mapped_column(String(255), default="")
    device_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    binding_host_id: Mapped[str] = mapped_column(String(255), default="")
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    security_groups: Mapped[list[str]] = mapped_column(JSONText, default=list)
    allowed_address_pairs: Mapped[list[dict[str, str]]] = mapped_column(JSONText, default=list)
    extra_dhcp_opts: Mapped[list[dict[str, Any]]] = mapped_column(JSONText, default=list)
    dns_name: Mapped[str] = mapped_column(Text, default="")


class IPAllocation(Base):
    __tablename__ = "network_ip_allocation"
    subnet_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ip_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    port_id: Mapped[str] = mapped_column(String(36), index=True)
    network_id: Mapped[str] = mapped_column(String(36), index=True)


class SecurityGroup(Standard, Base):
    __tablename__ = "network_security_group"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = mapped_column(ID, index=True)
    stateful: Mapped[bool] = mapped_column(Boolean, default=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class DefaultSecurityGroup(Base):
    """One row per project: the primary key makes creating two default groups impossible."""

    __tablename__ = "network_default_security_group"
    project_id: Mapped[str] = mapped_column(ID, primary_key=True)
    group_id: Mapped[str] = mapped_column(String(36))


class SecurityGroupRule(Standard, Base):
    __tablename__ = "network_security_group_rule"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(36), index=True)
    project_id: Mapped[str] = mapped_column(ID, index=True)
    direction: Mapped[str] = mapped_column(String(8))
    ethertype: Mapped[str] = mapped_column(String(8), default="IPv4")
    protocol: Mapped[str | None] = mapped_column(String(16), nullable=True)
    port_range_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    port_range_max: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remote_ip_prefix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    remote_group_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)


class Router(Standard, Base):
    __tablename__ = "network_router"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = mapped_column(ID, index=True)
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    gateway_network_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    gateway_port_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    enable_snat: Mapped[bool] = mapped_column(Boolean, default=True)
    routes: Mapped[list[dict[str, str]]] = mapped_column(JSONText, default=list)


class FloatingIP(Standard, Base):
    __tablename__ = "network_floating_ip"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ID, index=True)
    floating_network_id: Mapped[str] = mapped_column(String(36), index=True)
    floating_ip_address: Mapped[str] = mapped_column(String(64))
    floating_port_id: Mapped[str] = mapped_column(String(36))
    port_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    fixed_ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    router_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class SubnetPool(Standard, Base):
    __tablename__ = "network_subnet_pool"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = mapped_column(ID, index=True)
    ip_version: Mapped[int] = mapped_column(Integer)
    prefixes: Mapped[list[str]] = mapped_column(JSONText, default=list)
    default_prefixlen: Mapped[int] = mapped_column(Integer)
    min_prefixlen: Mapped[int] = mapped_column(Integer)
    max_prefixlen: Mapped[int] = mapped_column(Integer)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    default_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)
    address_scope_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)


class Quota(Base):
    """One row per project and resource whose limit differs from the default (-1: unlimited)."""

    __tablename__ = "network_quota"
    project_id: Mapped[str] = mapped_column(ID, primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    quota_limit: Mapped[int] = mapped_column(Integer)
