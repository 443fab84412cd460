"""The remote consoles' table: one row per console URL handed out, until it is used or expires."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from cumulo.core.db import Base, UTCDateTime, utcnow


class ConsoleToken(Base):
    """A console URL's token, kept as its SHA-256 (the token itself is only in the URL), with what
    the proxy needs to reach the guest: the node and the console's socket there."""

    __tablename__ = "compute_console_token"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), index=True)
    console_type: Mapped[str] = mapped_column(String(16))  # serial, novnc
    host: Mapped[str] = mapped_column(String(255))  # the compute node the guest runs on
    path: Mapped[str] = mapped_column(String(255))  # the console's unix socket on that node
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
