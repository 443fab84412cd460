"""cumulo.core.watch: a committed write of a watched model, however written, is one resource event."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import String, delete, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cumulo.core.db import Database
from cumulo.core.watch import watch


class Base(DeclarativeBase):
    pass


class Gadget(Base):
    __tablename__ = "watch_gadget"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="building")
    name: Mapped[str] = mapped_column(String(64), default="")


class Bus:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        self.events.append((topic, event))


class BrokenBus:
    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        raise ConnectionError("the broker is away")


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    d = Database(f"sqlite:///{tmp_path / 'watch.db'}")
    async with d.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield d
    await d.close()


async def settled(bus: Bus, n: int) -> list[tuple[str, dict[str, Any]]]:
    for _ in range(100):
        if len(bus.events) >= n:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    return bus.events


def upper(row: Any) -> str:
    return str(row["status"]).upper()


async def test_add_update_by_id_and_delete_each_publish_one_event_in_order(db: Database) -> None:
    bus = Bus()
    watch(db, bus, Gadget, "gadget", upper, gone=lambda row: row.get("status") == "gone")
    async with db.session() as s:
        s.add(Gadget(id="g1", project_id="p1"))
    async with db.session() as s:
        await s.execute(update(Gadget).where(Gadget.id == "g1").values(status="active"))
    async with db.session() as s:
        await s.execute(update(Gadget).where(Gadget.id == "g1").values(name="renamed"))  # its status stays
    async with db.session() as s:
        await s.execute(delete(Gadget).where(Gadget.id == "g1"))
    events = await settled(bus, 4)
    assert [t for t, _ in events] == ["resource.gadget.create", "resource.gadget.update", "resource.gadget.update",
                                      "resource.gadget.delete"]
    assert [e["status"] for _, e in events] == ["BUILDING", "ACTIVE", "ACTIVE", "ACTIVE"]
    assert {e["project_id"] for _, e in events} == {"p1"} and {e["id"] for _, e in events} == {"g1"}


async def test_a_soft_delete_is_a_delete_and_an_in_list_names_each_row(db: Database) -> None:
    bus = Bus()
    watch(db, bus, Gadget, "gadget", upper, gone=lambda row: row.get("status") == "gone")
    async with db.session() as s:
        s.add_all([Gadget(id="a", project_id="p"), Gadget(id="b", project_id="q")])
    async with db.session() as s:
        await s.execute(update(Gadget).where(Gadget.id.in_(["a", "b"])).values(status="gone"))
    events = (await settled(bus, 4))[2:]
    assert sorted((e["id"], e["project_id"], e["action"], e["status"]) for _, e in events) == [
        ("a", "p", "delete", "GONE"), ("b", "q", "delete", "GONE")]


async def test_a_row_this_process_never_saw_is_read_back_for_its_project(db: Database) -> None:
    async with db.session() as s:  # written before anyone watched
        s.add(Gadget(id="old", project_id="p9"))
    bus = Bus()
    w = watch(db, bus, Gadget, "gadget", upper)
    assert w is not None
    w.seen.clear()
    async with db.session() as s:
        await s.execute(update(Gadget).where(Gadget.id == "old").values(status="error"))
    (_, e), = await settled(bus, 1)
    assert (e["project_id"], e["status"]) == ("p9", "ERROR")


async def test_a_rollback_publishes_nothing_and_a_broken_bus_fails_no_write(db: Database) -> None:
    bus = Bus()
    watch(db, bus, Gadget, "gadget", upper)
    with pytest.raises(RuntimeError):
        async with db.session() as s:
            s.add(Gadget(id="x", project_id="p"))
            await s.flush()
            raise RuntimeError("changed my mind")
    assert await settled(bus, 1) == []
    watch(db, BrokenBus(), Gadget, "gadget", upper)
    async with db.session() as s:
        s.add(Gadget(id="y", project_id="p"))
    await asyncio.sleep(0.05)
    async with db.reader() as s:
        assert (await s.get(Gadget, "y")) is not None


async def test_one_soft_delete_in_a_flush_leaves_the_other_rows_updates(db: Database) -> None:
    bus = Bus()
    watch(db, bus, Gadget, "gadget", upper, gone=lambda row: row.get("status") == "gone")
    async with db.session() as s:
        s.add_all([Gadget(id=f"r{i}", project_id="p") for i in range(4)])
    await settled(bus, 4)
    bus.events.clear()
    async with db.session() as s:
        rows = {g.id: g for g in [await s.get(Gadget, f"r{i}") for i in range(4)] if g is not None}
        rows["r0"].status = "gone"
        for i in (1, 2, 3):
            rows[f"r{i}"].status = "stopped"
    events = await settled(bus, 4)
    assert sorted((e["id"], e["action"], e["status"]) for _, e in events) == [
        ("r0", "delete", "GONE"), ("r1", "update", "STOPPED"), ("r2", "update", "STOPPED"),
        ("r3", "update", "STOPPED")]
