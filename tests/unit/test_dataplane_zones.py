"""Conntrack zones allocated by the network agent: unique per live network, kept across agent
restarts (by its file, or taken back from the kernel's rules), freed when a network goes and
given again, bounded, and a clear answer when all are held."""

from __future__ import annotations

import json
import logging
import stat
import uuid
from pathlib import Path

import pytest

from cumulo.network.dataplane import firewall
from cumulo.network.dataplane.names import bridge
from cumulo.network.dataplane.zones import FIRST, LAST, ConntrackZones, from_rules


def ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def loaded(path: Path, **kw: int) -> ConntrackZones:
    z = ConntrackZones(path, **kw)
    z.load()
    return z


def test_segment_ids_that_collided_under_the_old_modulo_get_different_zones(tmp_path: Path) -> None:
    # the old rule: segment_id % 65000 + 1 -- these two shared zone 8
    nets = [{"id": "a" * 36, "segment_id": 7}, {"id": "b" * 36, "segment_id": 65007}]
    zones, _, _ = loaded(tmp_path / "z.json").sync(n["id"] for n in nets)
    assert zones["a" * 36] != zones["b" * 36]
    text = firewall.rules({"networks": [{**n, "subnets": []} for n in nets]}, 4, zones)
    found = from_rules(text)
    assert set(found) == {bridge(n["id"]) for n in nets} and len(set(found.values())) == 2


def test_hundreds_of_networks_each_get_a_zone_of_their_own(tmp_path: Path) -> None:
    nets = ids(500)
    zones, freed, unplaced = loaded(tmp_path / "z.json").sync(nets)
    assert set(zones) == set(nets) and not freed and not unplaced
    assert len(set(zones.values())) == 500 and all(FIRST <= z <= LAST for z in zones.values())


def test_zones_survive_an_agent_restart_and_new_networks_take_other_ones(tmp_path: Path) -> None:
    path = tmp_path / "network" / "conntrack-zones.json"
    first = ids(250)
    before, _, _ = loaded(path).sync(first)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # a new agent process: the same networks keep their zones, whatever their order or company
    more = ids(30)
    after, freed, _ = loaded(path).sync(sorted(more + first, reverse=True))
    assert {n: after[n] for n in first} == before and not freed
    assert len(set(after.values())) == 280


def test_zones_are_taken_back_from_the_kernel_rules_when_the_file_is_lost(tmp_path: Path) -> None:
    nets = ids(40)
    path = tmp_path / "z.json"
    zones, _, _ = loaded(path).sync(nets)
    text = firewall.rules({"networks": [{"id": n, "subnets": []} for n in nets]}, 4, zones)
    path.unlink()
    again = ConntrackZones(path)
    again.load(text)
    newcomer = str(uuid.uuid4())
    back, _, _ = again.sync([*nets, newcomer])
    assert {n: back[n] for n in nets} == zones
    assert back[newcomer] not in zones.values()
    assert json.loads(path.read_text())["zones"] == back


def test_a_freed_zone_is_given_again_only_after_the_others(tmp_path: Path) -> None:
    z = loaded(tmp_path / "z.json", first=1, last=5)
    nets = ids(3)
    zones, _, _ = z.sync(nets)
    assert sorted(zones.values()) == [1, 2, 3]
    zones2, freed, _ = z.sync(nets[1:])
    assert freed == {nets[0]: zones[nets[0]]}
    newcomer = str(uuid.uuid4())
    zones3, _, _ = z.sync([*nets[1:], newcomer])
    assert zones3[newcomer] == 4  # next-fit: not the zone just freed, whose entries may linger


def test_zones_are_bounded_and_reused_after_free_when_exhausted(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    z = loaded(tmp_path / "z.json")
    nets = ids(LAST)
    zones, _, unplaced = z.sync(nets)
    assert not unplaced and sorted(zones.values()) == list(range(FIRST, LAST + 1))
    late = str(uuid.uuid4())
    with caplog.at_level(logging.ERROR):
        zones, _, unplaced = z.sync([*nets, late])
    assert unplaced == [late] and late not in zones
    assert "conntrack zones exhausted" in caplog.text
    assert "-A PREROUTING -i " + bridge(late) + " -j DROP" in firewall.rules(
        {"networks": [{"id": late, "subnets": []}]}, 4, zones)
    gone = nets[1234]
    zones, freed, unplaced = z.sync([n for n in nets if n != gone] + [late])
    assert not unplaced and zones[late] == freed[gone]
    assert len(set(zones.values())) == LAST


def test_a_file_giving_one_zone_to_two_networks_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "z.json"
    path.write_text(json.dumps({"zones": {"a": 3, "b": 3}}))
    with pytest.raises(RuntimeError, match="one zone to two networks"):
        ConntrackZones(path).load()


def test_clear_forgets_every_zone(tmp_path: Path) -> None:
    path = tmp_path / "z.json"
    z = loaded(path)
    z.sync(ids(3))
    z.clear()
    assert not path.exists()
    zones, _, _ = z.sync(["x"])
    assert zones == {"x": 1}
