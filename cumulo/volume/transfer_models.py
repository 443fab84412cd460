"""The table of volume transfers (migration ``0021``).  Private to the volume service, as
``models.py`` is.  A transfer holds no auth key: only a salt and the key's scrypt digest, so a
database dump does not let anyone accept it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from cumulo.core.db import Base, UTCDateTime, utcnow

ID = String(64)


class VolumeTransfer(Base):
    """A volume offered to whoever presents its auth key: pending while not ``deleted``; an
    accepted one is ``deleted`` and ``accepted`` with its ``destination_project_id`` (Cinder's
    3.57 history), a cancelled one only ``deleted``."""

    __tablename__ = "volume_transfer"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    salt: Mapped[str] = mapped_column(String(64))  # hex
    crypt_hash: Mapped[str] = mapped_column(String(128))  # "scrypt$<hex digest>"
    no_snapshots: Mapped[bool] = mapped_column(Boolean, default=False)
    source_project_id: Mapped[str] = mapped_column(ID, index=True)
    destination_project_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    accepted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
