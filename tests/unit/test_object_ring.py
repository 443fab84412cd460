"""The object ring: balance, distinct devices and zones, few moves, handoffs, the saved file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from cumulo.object.storage import Ring, RingBuilder, RingError


def builder_with(devices: int, part_power: int = 8, replicas: int = 3, zones: int | None = None) -> RingBuilder:
    b = RingBuilder(part_power, replicas)
    for i in range(devices):
        b.add_device(f"d{i + 1}", zone=(i % zones if zones else i) + 1)
    b.rebalance()
    return b


def assignment(ring: Ring) -> list[list[int]]:
    return [[d.id for d in ring.get_part_nodes(p)] for p in range(ring.partitions)]


def test_every_partition_has_distinct_devices_in_distinct_zones() -> None:
    ring = builder_with(6, zones=3).get_ring()
    for p in range(ring.partitions):
        nodes = ring.get_part_nodes(p)
        assert len({d.id for d in nodes}) == 3
        assert len({d.zone for d in nodes}) == 3


def test_partitions_follow_weight_within_tolerance() -> None:
    b = RingBuilder(10, 3)
    weights = [100, 100, 100, 100, 100, 200]
    for i, w in enumerate(weights):
        b.add_device(f"d{i + 1}", zone=i + 1, weight=w)
    b.rebalance()
    counts = b.partitions_of()
    total = 1024 * 3
    for dev_id, w in zip(sorted(counts), weights, strict=True):
        assert abs(counts[dev_id] - total * w / 700) <= total * w / 700 * 0.02 + 1
    assert builder_with(5, part_power=10).balance() < 1.0


def test_adding_a_device_moves_about_its_share_only() -> None:
    b = builder_with(4, part_power=10)
    before = assignment(b.get_ring())
    b.add_device("d5", zone=5)
    moved = b.rebalance()
    after = assignment(b.get_ring())
    share = 1024 * 3 / 5
    assert moved <= share * 1.05 + 3
    changed = sum(len(set(x) - set(y)) for x, y in zip(before, after, strict=True))
    assert changed == moved
    assert b.balance() < 2.0


def test_marking_a_device_out_moves_its_partitions_and_then_it_can_go() -> None:
    b = builder_with(4, part_power=8)
    dev = b.find("d2")
    with pytest.raises(RingError):
        b.remove_device(dev.id)  # still holding partitions: only marked out
    assert b.devices[dev.id].weight == 0
    b.rebalance()
    assert b.partitions_of()[dev.id] == 0
    b.remove_device(dev.id)
    ring = b.get_ring()
    assert all(dev.id not in ids for ids in assignment(ring))


def test_handoffs_differ_from_primaries_and_prefer_other_zones() -> None:
    ring = builder_with(6, zones=6).get_ring()
    for p in range(0, ring.partitions, 17):
        primaries = ring.get_part_nodes(p)
        handoffs = list(ring.get_more_nodes(p))
        assert len(handoffs) == 3
        assert not {d.id for d in handoffs} & {d.id for d in primaries}
        assert list(ring.get_more_nodes(p)) == handoffs  # the same order for every caller


def test_fewer_devices_than_replicas_is_refused() -> None:
    b = RingBuilder(4, 3)
    b.add_device("d1")
    b.add_device("d2")
    with pytest.raises(RingError):
        b.rebalance()
    with pytest.raises(RingError):
        b.add_device("d1")
    with pytest.raises(RingError):
        b.add_device("../x")


def test_saved_ring_loads_with_the_same_lookups(tmp_path: Path) -> None:
    b = builder_with(3)
    path = tmp_path / "object.ring.json"
    b.save(path)
    ring, loaded = b.get_ring(), Ring.load(path)
    assert assignment(ring) == assignment(loaded)
    assert ring.get_nodes("a", "c", "o")[0] == loaded.get_nodes("a", "c", "o")[0]
    assert Counter(ring.partition_of(ring.hash("a", "c", f"o{i}")) for i in range(3000)).most_common(1)[0][1] < 40
    path.write_text("{")
    with pytest.raises(RingError):
        Ring.load(path)
    with pytest.raises(RingError):
        RingBuilder(4, 3).get_ring()  # nothing assigned yet
