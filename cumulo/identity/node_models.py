"""The join tokens of ``cumulo node join`` (migration 0033): only a hash of each token's secret
part is kept, with the roles it allows, its expiry and, once used, when and by which host."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from cumulo.core.db import Base, UTCDateTime, utcnow


class NodeJoinToken(Base):
    __tablename__ = "identity_node_join_token"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    roles: Mapped[str] = mapped_column(String(255))  # comma-separated
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    used_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
