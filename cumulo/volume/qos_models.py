"""Block storage's QoS specs (Cinder's quality_of_service_specs): a named set of limits and who
applies them.  A volume type points at one (``volume_type.qos_specs_id``).  Private to the volume
service."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from cumulo.core.db import Base, JSONText, UTCDateTime, utcnow


class QosSpecs(Base):
    """One QoS specs: its keys as strings (as Cinder keeps them), and its consumer: ``front-end``
    (the compute node's QEMU throttles the volume), ``back-end`` (the storage would; the file
    driver has nothing to apply) or ``both``."""

    __tablename__ = "volume_qos_specs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    consumer: Mapped[str] = mapped_column(String(16), default="back-end")
    specs: Mapped[dict[str, str]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
