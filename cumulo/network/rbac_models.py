"""The tables of the Network API's sharing and inventory: RBAC policies (who else may use a
network), address scopes (which subnet pools' addresses may be routed to each other without NAT),
and the network agents with what each one hosts, as their heartbeats report it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cumulo.core.db import Base, JSONText, UTCDateTime, utcnow

ID = String(64)


class RBACPolicy(Base):
    """``project_id`` lets ``target_project`` (a project id or ``*``) use object ``object_id``
    as ``action`` says (``access_as_shared``: see it and put ports on it; ``access_as_external``:
    see it and take floating IPs and router gateways from it)."""

    __tablename__ = "network_rbac_policy"
    __table_args__ = (UniqueConstraint("object_type", "object_id", "action", "target_project",
                                       name="uq_network_rbac_policy_entry"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(ID, index=True)
    object_type: Mapped[str] = mapped_column(String(32), default="network")
    object_id: Mapped[str] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(32))
    target_project: Mapped[str] = mapped_column(String(255), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AddressScope(Base):
    __tablename__ = "network_address_scope"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = mapped_column(ID, index=True)
    ip_version: Mapped[int] = mapped_column(Integer)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class NetworkAgent(Base):
    """One of the functions a machine's network agent performs (DHCP, L3, metadata, the bridges),
    listed as Neutron lists its separate agents; ``heartbeat_at`` is the last report."""

    __tablename__ = "network_agent"
    __table_args__ = (UniqueConstraint("agent_type", "host", name="uq_network_agent_type_host"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agent_type: Mapped[str] = mapped_column(String(64))
    binary: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255), index=True)
    availability_zone: Mapped[str | None] = mapped_column(String(255), nullable=True)
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    configurations: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the code version the agent last reported (None: an agent from before versioned reports) (0032)
    version: Mapped[str | None] = mapped_column(String(32), nullable=True)


class AgentBinding(Base):
    """A network a DHCP agent hosts, or a router an L3 agent hosts (one row each): as its
    heartbeat reported, or (``manual``) as an admin scheduled it."""

    __tablename__ = "network_agent_binding"
    agent_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
