"""The image tables: images (with their properties, tags and the stores holding their data), image
members, import tasks, the image cache's entries and the metadata definitions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cumulo.core.db import Base, JSONText, UTCDateTime, utcnow

ID = String(64)


class Image(Base):
    __tablename__ = "image_image"
    __table_args__ = (Index("ix_image_image_owner_status", "owner", "status"),
                      Index("ix_image_image_created_at_id", "created_at", "id"),
                      Index("ix_image_image_visibility", "visibility"), Index("ix_image_image_name", "name"))
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # queued, saving, uploading, importing, active, deactivated, killed, deleted
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    visibility: Mapped[str] = mapped_column(String(16), default="shared")
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    os_hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    owner: Mapped[str | None] = mapped_column(ID, nullable=True)
    disk_format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    container_format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    min_disk: Mapped[int] = mapped_column(Integer, default=0)
    min_ram: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    virtual_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    checksum: Mapped[str | None] = mapped_column(String(32), nullable=True)
    os_hash_algo: Mapped[str | None] = mapped_column(String(64), nullable=True)
    os_hash_value: Mapped[str | None] = mapped_column(String(128), nullable=True)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSONText, default=list)
    # the stores holding the data, comma-separated and sorted (Glance's "stores" field); NULL for
    # an image whose data predates stores: it is in the default store
    stores: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # bytes waiting in the staging area (glance-direct import)
    staged_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # who is writing data now, and until when that claim holds (renewed while it works)
    lease_owner: Mapped[str | None] = mapped_column(ID, nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ImageMember(Base):
    __tablename__ = "image_member"
    image_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True, index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ImageTask(Base):
    """Import tasks, listed by /v2/images/{id}/tasks and /v2/tasks."""

    __tablename__ = "image_task"
    __table_args__ = (Index("ix_image_task_owner_created_at", "owner", "created_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    image_id: Mapped[str] = mapped_column(String(36), index=True)
    type: Mapped[str] = mapped_column(String(32), default="api_image_import")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    owner: Mapped[str | None] = mapped_column(ID, nullable=True)
    input: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    message: Mapped[str] = mapped_column(String(1024), default="")
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ImageCacheEntry(Base):
    """An image in the image cache (a copy of its data in ``<state_dir>/image-cache``) or queued
    for it (Glance's cache API: cached_images and queued_images)."""

    __tablename__ = "image_cache_entry"
    image_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued, caching, cached
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    last_accessed: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_modified: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MetadefNamespace(Base):
    """A metadata-definitions namespace (Glance's metadefs catalog)."""

    __tablename__ = "image_metadef_namespace"
    namespace: Mapped[str] = mapped_column(String(80), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(80), nullable=True)
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    owner: Mapped[str | None] = mapped_column(ID, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class MetadefItem(Base):
    """An object, property, tag or resource-type association inside a namespace."""

    __tablename__ = "image_metadef_item"
    namespace: Mapped[str] = mapped_column(String(80), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # object, property, tag, resource_type
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
