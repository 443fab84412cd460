"""The tables of QoS policies (Neutron's ``qos`` extension): policies, their rules (one table for
every rule type; a unique key makes two rules of one type and direction in a policy impossible)
and the bindings of policies to networks and ports."""

from __future__ import annotations

from sqlalchemy import Boolean, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cumulo.core.db import Base
from cumulo.network.models import ID, Standard


class QosPolicy(Standard, Base):
    __tablename__ = "network_qos_policy"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = mapped_column(ID, index=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class QosRule(Base):
    """A rule of a policy: ``kind`` is bandwidth_limit, dscp_marking or minimum_bandwidth;
    ``direction`` is empty for DSCP marking (which has none)."""

    __tablename__ = "network_qos_rule"
    __table_args__ = (UniqueConstraint("policy_id", "kind", "direction", name="uq_network_qos_rule_kind"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    policy_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(8), default="")
    max_kbps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_burst_kbps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    min_kbps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dscp_mark: Mapped[int | None] = mapped_column(Integer, nullable=True)


class QosBinding(Base):
    """A network's or a port's policy (one at most: the primary key)."""

    __tablename__ = "network_qos_binding"
    object_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(16))  # network or port
    policy_id: Mapped[str] = mapped_column(String(36), index=True)
