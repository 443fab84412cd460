"""A running ObjectStore follows its ring file: a rebalanced ring is taken without a restart, one
that would place objects elsewhere (another partition power) or cannot be read is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cumulo.object.storage import ObjectStore, RingBuilder
from cumulo.object.storage import store as store_mod


@pytest.fixture(autouse=True)
def no_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "RING_CHECK_SECONDS", 0.0)


def _touch_later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_a_rebalanced_ring_file_is_taken_and_its_new_device_made(tmp_path: Path) -> None:
    store = ObjectStore.open(tmp_path, part_power=4)
    assert sorted(d.name for d in store.ring.devices.values()) == ["d1", "d2", "d3"]
    ring_file = tmp_path / "object" / "object.ring.json"
    builder = RingBuilder.load(ring_file)
    builder.add_device("d4", zone=4)
    builder.set_weight(builder.find("d1").id, 0)
    builder.rebalance()
    builder.save(ring_file)
    _touch_later(ring_file)
    assert sorted(d.name for d in store.ring.devices.values() if d.weight) == ["d2", "d3", "d4"]
    assert (tmp_path / "object" / "devices" / "d4").is_dir()
    assert not store.reload_ring()  # unchanged since: nothing to do


def test_a_ring_of_another_partition_power_or_not_json_is_refused(tmp_path: Path) -> None:
    store = ObjectStore.open(tmp_path, part_power=4)
    ring_file = tmp_path / "object" / "object.ring.json"
    before = store.ring
    other = RingBuilder(5, 3)
    for i in range(1, 4):
        other.add_device(f"d{i}", zone=i)
    other.rebalance()
    other.save(ring_file)
    _touch_later(ring_file)
    assert store.ring is before
    ring_file.write_text("{not json")
    _touch_later(ring_file)
    assert store.ring is before
