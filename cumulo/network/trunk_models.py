"""The tables of trunks (Neutron's ``trunk`` extension): a trunk on its parent port (unique: a port
parents one trunk at most) and its subports (the port is the primary key: a port is a subport of
one trunk at most; a segmentation type and id are unique within a trunk)."""

from __future__ import annotations

from sqlalchemy import Boolean, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cumulo.core.db import Base
from cumulo.network.models import ID, Standard


class Trunk(Standard, Base):
    __tablename__ = "network_trunk"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = mapped_column(ID, index=True)
    port_id: Mapped[str] = mapped_column(String(36), unique=True)
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)


class SubPort(Base):
    __tablename__ = "network_trunk_subport"
    __table_args__ = (UniqueConstraint("trunk_id", "segmentation_type", "segmentation_id",
                                       name="uq_network_trunk_subport_segment"),)
    port_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    trunk_id: Mapped[str] = mapped_column(String(36), index=True)
    segmentation_type: Mapped[str] = mapped_column(String(32))
    segmentation_id: Mapped[int] = mapped_column(Integer)
