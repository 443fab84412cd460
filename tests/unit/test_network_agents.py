"""The network agents' registry without a cloud: a heartbeat makes the four agents of its host,
``alive`` follows the last beat, and a beat replaces what the previous one reported while what an
admin scheduled stays."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from cumulo.core.db import Database
from cumulo.network.agent import served
from cumulo.network.agents import AGENT_DOWN_TIME, DHCP, L3, Registry, agent_view
from cumulo.network.rbac_models import AgentBinding, NetworkAgent


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    database = Database(f"sqlite:///{tmp_path / 'cumulo.db'}")
    await database.migrate()
    yield database
    await database.close()


def report(networks: list[str], routers: list[str]) -> dict[str, Any]:
    state = {"networks": [{"id": n, "dhcp_port": {"id": "p"}, "subnets": [{"enable_dhcp": True}]} for n in networks],
             "ports": [], "routers": [{"id": r, "interfaces": [], "floating_ips": []} for r in routers]}
    return {"host": "node-1", "started_at": time.time(), "report_interval": 30.0, "namespace_prefix": "cumulo",
            **served(state)}


async def bindings(db: Database, kind: str) -> dict[str, bool]:
    async with db.session() as s:
        return {r: m for r, m in (await s.execute(select(AgentBinding.resource_id, AgentBinding.manual).join(
            NetworkAgent, NetworkAgent.id == AgentBinding.agent_id).where(NetworkAgent.agent_type == kind))).all()}


async def test_a_heartbeat_makes_the_four_agents_of_its_host_and_what_they_host(db: Database) -> None:
    registry = Registry(db)
    await registry.report(report(["n1", "n2"], ["r1"]))
    async with db.session() as s:
        rows = list((await s.execute(select(NetworkAgent))).scalars())
    assert sorted(a.agent_type for a in rows) == ["DHCP agent", "L3 agent", "Linux bridge agent", "Metadata agent"]
    views = {a.agent_type: agent_view(a) for a in rows}
    assert all(v["alive"] and v["host"] == "node-1" for v in views.values())
    assert views[DHCP]["configurations"]["networks"] == 2 and views[L3]["configurations"]["routers"] == 1
    assert await bindings(db, DHCP) == {"n1": False, "n2": False} and await bindings(db, L3) == {"r1": False}
    # an admin schedules n9 by hand; the next beat drops n2 (no longer served) and keeps n9
    dhcp = next(a for a in rows if a.agent_type == DHCP)
    async with db.session() as s:
        s.add(AgentBinding(agent_id=dhcp.id, resource_id="n9", manual=True))
    await registry.report(report(["n1"], []))
    assert await bindings(db, DHCP) == {"n1": False, "n9": True} and await bindings(db, L3) == {}
    async with db.session() as s:
        assert len(list((await s.execute(select(NetworkAgent))).scalars())) == 4  # the same rows again


async def test_an_agent_is_alive_until_its_beats_stop(db: Database) -> None:
    await Registry(db).report(report([], []))
    late = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=AGENT_DOWN_TIME + 5)
    async with db.session() as s:
        await s.execute(update(NetworkAgent).values(heartbeat_at=late))
    async with db.session() as s:
        assert not any(agent_view(a)["alive"] for a in (await s.execute(select(NetworkAgent))).scalars())
    await Registry(db).report(report([], []))
    async with db.session() as s:
        assert all(agent_view(a)["alive"] for a in (await s.execute(select(NetworkAgent))).scalars())


async def test_a_heartbeat_records_the_agents_code_version(db: Database) -> None:
    await Registry(db).report({**report([], []), "version": "0.1.4"})
    async with db.session() as s:
        assert set((await s.execute(select(NetworkAgent.version))).scalars()) == {"0.1.4"}
    await Registry(db).report(report([], []))  # an agent of a release before versioned reports sends none
    async with db.session() as s:
        assert set((await s.execute(select(NetworkAgent.version))).scalars()) == {None}
