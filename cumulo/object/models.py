"""The tables of object storage (migrations ``0024``, ``0025``): accounts, containers and the object listing.
Private to the object service.  The data itself lives in ``storage``; a row is written only after
the store's quorum put succeeded, and names the timestamp the store holds.

Listings are one indexed range scan: the object table's primary key is (container_id, name), so
marker/end_marker/prefix/limit walk the index in name order.  A container keeps its object count
and bytes, updated in the same transaction as its object rows, so a HEAD reads one row.
An object's ``delete_at`` (its X-Delete-At, Unix seconds, or NULL) is indexed: the expirer reads
the rows that are due in that order, a bounded batch at a time."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.mysql import VARCHAR as MYSQL_VARCHAR
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from cumulo.core.db import Base, JSONText


class ObjectName(TypeDecorator[str]):
    """An object's name (at most 1,024 bytes of UTF-8).  On MariaDB/MySQL it is VARBINARY: a
    utf8mb4 VARCHAR(1024) in the primary key is over InnoDB's 3,072-byte key limit, and binary
    order is UTF-8 byte order, the order Swift lists in (SQLite's default too)."""

    impl = String(1024)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "mysql":
            return dialect.type_descriptor(MYSQL_VARCHAR(1024, charset="binary"))
        return dialect.type_descriptor(String(1024))

    # bound as text (the connection's utf8mb4 turns into the column's bytes): aiomysql cannot bind bytes
    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, bytes | bytearray):
            return bytes(value).decode("utf-8", "surrogateescape")
        return value


class ObjectAccount(Base):
    """``AUTH_<project_id>``: its metadata (``X-Account-Meta-*``) and when it was made."""

    __tablename__ = "object_account"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    timestamp: Mapped[str] = mapped_column(String(16))


class ObjectContainer(Base):
    __tablename__ = "object_container"
    __table_args__ = (UniqueConstraint("account", "name", name="uq_object_container_account_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(255), ForeignKey("object_account.name"))
    name: Mapped[str] = mapped_column(String(256))
    meta: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)  # X-Container-Meta-*
    read_acl: Mapped[str] = mapped_column(Text, default="")
    write_acl: Mapped[str] = mapped_column(Text, default="")
    object_count: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_used: Mapped[int] = mapped_column(BigInteger, default=0)
    timestamp: Mapped[str] = mapped_column(String(16))


class ObjectEntry(Base):
    """One object of the listing: what GET of the container shows and HEAD of the object answers."""

    __tablename__ = "object_entry"
    container_id: Mapped[int] = mapped_column(Integer, ForeignKey("object_container.id", ondelete="CASCADE"),
                                              primary_key=True)
    name: Mapped[str] = mapped_column(ObjectName(), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str] = mapped_column(String(32))
    content_type: Mapped[str] = mapped_column(String(256))
    timestamp: Mapped[str] = mapped_column(String(16))  # the stored copy's (Swift's X-Timestamp)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)  # X-Object-Meta-* and the like
    delete_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True, default=None, index=True)
