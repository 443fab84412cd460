"""The table of volume backups (migration ``0019``).  Private to the volume service, as
``models.py`` is; the backup's data lives in the backup store, this row says what and where."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cumulo.core.db import Base, JSONText, UTCDateTime, utcnow

ID = String(64)


class Backup(Base):
    """A backup of a volume: ``creating`` (the agent reads the volume) -> ``available``;
    ``restoring`` while a volume is written from it; ``deleting`` -> deleted; ``error`` with its
    ``fail_reason``.  An incremental one names its ``parent_id``, whose chunks it uses."""

    __tablename__ = "volume_backup"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(String(36), index=True)
    project_id: Mapped[str] = mapped_column(ID, index=True)
    user_id: Mapped[str] = mapped_column(ID)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    container: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), default="creating", index=True)
    size: Mapped[int] = mapped_column(Integer)  # GiB, the volume's at the time
    object_count: Mapped[int] = mapped_column(Integer, default=0)
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    parent_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    # the backup whose objects hold this one's data: an imported record's original (Cinder's
    # service_metadata); None: its own, under <container>/<id>
    data_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    snapshot_id: Mapped[str | None] = mapped_column(String(36), nullable=True)  # backed up from a snapshot
    # the volume's metadata and bootable flag at the backup, given to the volume a restore writes
    volume_meta: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    availability_zone: Mapped[str | None] = mapped_column(String(255), nullable=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)  # the agent that made it
    meta: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    fail_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the running transition's own data, for the report and for the reconciler when the lease
    # ends: the volume being backed up and its status before, or the volume being restored
    task: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(ID, nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    data_timestamp: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
