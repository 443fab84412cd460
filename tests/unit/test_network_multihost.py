"""Several hosts without a cloud: ``for_host`` gives a host only the networks of its ports and of
the DHCP and routers scheduled there, with the other hosts' tunnel addresses for VXLAN; and
``schedule`` puts a network's DHCP and a router on one live tunnelled agent (the least loaded)
and moves them off an agent that is not alive."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from cumulo.core.db import Database
from cumulo.network.agents import DHCP, L3, Registry, schedule, tunnel_hosts
from cumulo.network.models import Router, Subnet
from cumulo.network.rbac_models import NetworkAgent
from cumulo.network.topology import for_host


def net(nid: str, vni: int | None, kind: str = "vxlan") -> dict[str, Any]:
    return {"id": nid, "mtu": 1450, "segment_id": vni, "network_type": kind, "external": kind == "flat",
            "subnets": [{"id": f"s-{nid}", "enable_dhcp": True}], "dhcp_port": {"id": f"d-{nid}", "network_id": nid}}


def port(pid: str, nid: str, host: str, groups: list[str] | None = None) -> dict[str, Any]:
    return {"id": pid, "network_id": nid, "host": host, "device_owner": "compute:nova", "security_groups": groups or []}


def test_a_host_gets_its_networks_with_the_peers_that_share_them() -> None:
    state = {"networks": [net("n1", 101), net("n2", 102), net("n3", 103), net("ext", None, "flat")],
             "ports": [port("a1", "n1", "hA", ["g1"]), port("b1", "n1", "hB"), port("b2", "n2", "hB"),
                       port("c3", "n3", "hC")],
             "routers": [{"id": "r1", "interfaces": [{"network_id": "n3"}], "gateway": {"network_id": "ext"}}],
             "security_groups": {"g1": {"rules": [{"remote_group_id": "g2"}]}, "g2": {"rules": []},
                                 "g3": {"rules": []}}}
    tunnels = {"hA": "10.0.0.1", "hB": "10.0.0.2", "hC": "10.0.0.3"}
    placed = {DHCP: {"n1": {"hA"}, "n2": {"hA"}, "n3": {"hC"}}, L3: {"r1": {"hA"}}}
    a = for_host(state, "hA", tunnels, placed)
    nets = {n["id"]: n for n in a["networks"]}
    assert set(nets) == {"n1", "n2", "n3", "ext"}  # n2 for its DHCP, n3 and ext for the router
    assert nets["n1"]["tunnel"] == {"vni": 101, "local": "10.0.0.1", "peers": ["10.0.0.2"]}
    assert nets["n3"]["tunnel"]["peers"] == ["10.0.0.3"] and nets["n3"]["dhcp_port"] is None
    assert "tunnel" not in nets["ext"]  # flat: not tunnelled
    assert [r["id"] for r in a["routers"]] == ["r1"]
    assert set(a["security_groups"]) == {"g1", "g2"}
    b = for_host(state, "hB", tunnels, placed)
    assert {n["id"] for n in b["networks"]} == {"n1", "n2"} and not b["routers"]
    assert all(n["dhcp_port"] is None for n in b["networks"])
    assert {p["id"] for p in b["ports"]} == {"a1", "b1", "b2"}
    assert {n["id"]: n["tunnel"]["peers"] for n in b["networks"]} == {"n1": ["10.0.0.1"], "n2": ["10.0.0.1"]}


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    database = Database(f"sqlite:///{tmp_path / 'cumulo.db'}")
    await database.migrate()
    yield database
    await database.close()


async def beat(db: Database, host: str, address: str) -> None:
    await Registry(db).report({"host": host, "started_at": time.time(), "report_interval": 30.0,
                               "namespace_prefix": host, "tunnel_address": address})


async def test_dhcp_and_routers_go_to_one_live_agent_and_move_off_a_dead_one(db: Database) -> None:
    await beat(db, "hA", "10.0.0.1")
    await beat(db, "hB", "10.0.0.2")
    assert await tunnel_hosts(db) == {"hA": "10.0.0.1", "hB": "10.0.0.2"}
    async with db.session() as s:
        for i in range(4):
            s.add(Subnet(id=f"s{i}", network_id=f"n{i}", project_id="p", ip_version=4, cidr=f"10.{i}.0.0/24"))
        s.add(Router(id="r1", project_id="p"))
    placed = await schedule(db, await tunnel_hosts(db))
    hosts = [next(iter(placed[DHCP][f"n{i}"])) for i in range(4)]
    assert all(len(placed[DHCP][f"n{i}"]) == 1 for i in range(4))
    assert sorted(hosts) == ["hA", "hA", "hB", "hB"]  # the least loaded each time
    assert len(placed[L3]["r1"]) == 1
    assert await schedule(db, await tunnel_hosts(db)) == placed  # stable
    # host B's agents stop beating
    long_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=600)
    async with db.session() as s:
        await s.execute(update(NetworkAgent).where(NetworkAgent.host == "hB").values(heartbeat_at=long_ago))
    again = await schedule(db, await tunnel_hosts(db))
    assert all(again[DHCP][f"n{i}"] == {"hA"} for i in range(4)) and again[L3]["r1"] == {"hA"}
