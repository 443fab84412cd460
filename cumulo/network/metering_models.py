"""The tables of L3 metering (Neutron's ``metering`` extension): labels of a project and the rules
of a label, each rule matching traffic by a remote prefix (the old way) or by a source and/or a
destination prefix, in one direction, counted or excluded."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from cumulo.core.db import Base, UTCDateTime, utcnow
from cumulo.network.models import ID


class MeteringLabel(Base):
    __tablename__ = "network_metering_label"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    project_id: Mapped[str] = mapped_column(ID, index=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MeteringLabelRule(Base):
    __tablename__ = "network_metering_label_rule"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    label_id: Mapped[str] = mapped_column(String(36), index=True)
    direction: Mapped[str] = mapped_column(String(8))
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    remote_ip_prefix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source_ip_prefix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    destination_ip_prefix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
