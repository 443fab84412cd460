"""Placement's tables: resource providers, their inventories, traits and aggregates, consumers and
their allocations, and the custom resource classes and traits operators define."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cumulo.core.db import Base, UTCDateTime, utcnow

UUID = String(36)


class ResourceProvider(Base):
    __tablename__ = "placement_provider"
    uuid: Mapped[str] = mapped_column(UUID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    parent_uuid: Mapped[str | None] = mapped_column(UUID, nullable=True, index=True)
    root_uuid: Mapped[str] = mapped_column(UUID, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Inventory(Base):
    __tablename__ = "placement_inventory"
    provider_uuid: Mapped[str] = mapped_column(UUID, ForeignKey("placement_provider.uuid", ondelete="CASCADE"),
                                               primary_key=True)
    resource_class: Mapped[str] = mapped_column(String(255), primary_key=True)
    total: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    min_unit: Mapped[int] = mapped_column(Integer, default=1)
    max_unit: Mapped[int] = mapped_column(Integer)
    step_size: Mapped[int] = mapped_column(Integer, default=1)
    allocation_ratio: Mapped[float] = mapped_column(Float, default=1.0)


class Consumer(Base):
    __tablename__ = "placement_consumer"
    uuid: Mapped[str] = mapped_column(UUID, primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    user_id: Mapped[str] = mapped_column(String(255))
    consumer_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)


class Allocation(Base):
    __tablename__ = "placement_allocation"
    __table_args__ = (Index("ix_placement_allocation_provider_class", "provider_uuid", "resource_class"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider_uuid: Mapped[str] = mapped_column(UUID)
    consumer_uuid: Mapped[str] = mapped_column(UUID, index=True)
    resource_class: Mapped[str] = mapped_column(String(255))
    used: Mapped[int] = mapped_column(Integer)


class ProviderTrait(Base):
    __tablename__ = "placement_provider_trait"
    provider_uuid: Mapped[str] = mapped_column(UUID, primary_key=True)
    trait: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)


class ProviderAggregate(Base):
    __tablename__ = "placement_provider_aggregate"
    provider_uuid: Mapped[str] = mapped_column(UUID, primary_key=True)
    aggregate_uuid: Mapped[str] = mapped_column(UUID, primary_key=True, index=True)


class CustomName(Base):
    """Custom resource classes (kind "class") and traits (kind "trait"), CUSTOM_*."""

    __tablename__ = "placement_custom_name"
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
