"""Object storage's storage layer on real files: quorum writes, handoffs, replication, auditing."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cumulo.object.storage import EtagMismatch, ObjectStore, QuorumError, RingBuilder, ShortBody, TooLarge
from cumulo.object.storage.auditor import Auditor
from cumulo.object.storage.node import ObjectNode
from cumulo.object.storage.replicator import Replicator

MB = 1 << 20


async def body(*chunks: bytes) -> AsyncIterator[bytes]:
    for c in chunks:
        yield c


def make_store(tmp_path: Path, devices: int = 3, replicas: int = 3) -> ObjectStore:
    builder = RingBuilder(4, replicas)
    for i in range(1, devices + 1):
        builder.add_device(f"d{i}", zone=i)
    builder.rebalance()
    root = tmp_path / "devices"
    for i in range(1, devices + 1):
        (root / f"d{i}").mkdir(parents=True)
    return ObjectStore(root, builder.get_ring(), fsync=False)


async def read(store: ObjectStore, name: str, start: int = 0, end: int | None = None) -> bytes | None:
    reader = await store.get("AUTH_a", "c", name)
    if reader is None:
        return None
    try:
        return b"".join([c async for c in reader.iter_range(start, end, chunk=7)])
    finally:
        reader.close()


def copies(store: ObjectStore, name: str) -> dict[str, list[str]]:
    """Device name -> the files of the object's directory there (every device, primary or not)."""
    hash_hex, part, _ = store.locate("AUTH_a", "c", name)
    found = {}
    for dev in store.ring.devices.values():
        d = store.hash_dir(dev, part, hash_hex)
        if d.is_dir() and os.listdir(d):
            found[dev.name] = sorted(os.listdir(d))
    return found


def leftovers(store: ObjectStore) -> list[str]:
    """Every file under the devices' objects and tmp directories."""
    return [str(p) for p in store.root.rglob("*") if p.is_file()]


def break_device(store: ObjectStore, name: str) -> None:
    """Make a device unwritable even for root: its objects directory becomes a file."""
    objects = store.root / name / "objects"
    shutil.rmtree(objects, ignore_errors=True)
    objects.write_text("not a directory")


async def put(store: ObjectStore, name: str, data: bytes, ts: str = "1700000000.00000", **kw) -> None:
    await store.put("AUTH_a", "c", name, body(data), timestamp=ts, metadata={"Color": "blue"},
                    max_size=kw.pop("max_size", MB), **kw)


async def test_put_then_get_returns_body_metadata_and_ranges(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    data = os.urandom(5000)
    stored = await store.put("AUTH_a", "c", "dir/obj", body(data[:100], data[100:]), timestamp="1700000000.00000",
                             metadata={"Color": "blue"}, max_size=MB, content_length=5000)
    assert stored.etag == hashlib.md5(data).hexdigest() and stored.size == 5000
    reader = await store.get("AUTH_a", "c", "dir/obj")
    assert reader is not None
    assert (reader.etag, reader.size, reader.timestamp, reader.metadata) == (
        stored.etag, 5000, "1700000000.00000", {"Color": "blue"})
    reader.close()
    assert await read(store, "dir/obj") == data
    assert await read(store, "dir/obj", 10, 20) == data[10:20]
    assert await read(store, "dir/obj", 4990) == data[4990:]
    assert len(copies(store, "dir/obj")) == 3
    assert await store.get("AUTH_a", "c", "missing") is None


async def test_an_empty_object_is_stored(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    stored = await store.put("AUTH_a", "c", "e", body(), timestamp="1700000000.00000", metadata={}, max_size=MB)
    assert stored.etag == hashlib.md5(b"").hexdigest()
    assert await read(store, "e") == b""


async def test_overwrite_keeps_only_the_newest_and_delete_leaves_a_tombstone(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    await put(store, "o", b"old", "1700000000.00000")
    await put(store, "o", b"new", "1700000001.00000")
    assert await read(store, "o") == b"new"
    assert set(map(tuple, copies(store, "o").values())) == {("1700000001.00000.data",)}
    await store.delete("AUTH_a", "c", "o", timestamp="1700000002.00000")
    assert await store.get("AUTH_a", "c", "o") is None
    assert set(map(tuple, copies(store, "o").values())) == {("1700000002.00000.ts",)}
    # an older write arriving late does not bring the object back
    await put(store, "o", b"late", "1700000001.50000")
    assert await store.get("AUTH_a", "c", "o") is None


async def test_etag_mismatch_too_large_and_short_body_leave_no_copy(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    with pytest.raises(EtagMismatch):
        await put(store, "o", b"abc", expected_etag="0" * 32)
    with pytest.raises(TooLarge):
        await put(store, "o", b"x" * 101, max_size=100)
    with pytest.raises(ShortBody):
        await put(store, "o", b"abc", content_length=4)
    with pytest.raises(ShortBody):
        await put(store, "o", b"abcde", content_length=4)
    await put(store, "o", b"abc", expected_etag=hashlib.md5(b"abc").hexdigest().upper())
    assert [f for f in leftovers(store) if "/tmp/" in f.removeprefix(str(store.root))] == []
    assert len(leftovers(store)) == 3  # only the good write's three copies


async def test_one_primary_down_writes_a_handoff_that_the_replicator_moves_home(tmp_path: Path) -> None:
    store = make_store(tmp_path, devices=4)
    _, part, primaries = store.locate("AUTH_a", "c", "o")
    broken = primaries[0].name
    saved = store.root / broken / "objects"
    break_device(store, broken)
    await put(store, "o", b"payload")
    handoff = next(store.ring.get_more_nodes(part)).name
    assert set(copies(store, "o")) == {d.name for d in primaries[1:]} | {handoff}
    assert await read(store, "o") == b"payload"

    saved.unlink()  # the device is repaired (empty)
    result = Replicator(store).run_once()
    assert result.copied == 1 and result.removed == 1
    assert set(copies(store, "o")) == {d.name for d in primaries}
    assert await read(store, "o") == b"payload"
    again = Replicator(store).run_once()
    assert (again.copied, again.removed) == (0, 0)


async def test_two_devices_down_is_a_quorum_error_and_nothing_is_left(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    break_device(store, "d1")
    break_device(store, "d2")
    with pytest.raises(QuorumError):
        await put(store, "o", b"payload")
    with pytest.raises(QuorumError):
        await store.delete("AUTH_a", "c", "o", timestamp="1700000001.00000")
    assert [f for f in leftovers(store) if not f.endswith("/objects")] == []


async def test_one_device_down_of_three_still_has_a_quorum(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    break_device(store, "d3")
    await put(store, "o", b"payload")
    assert set(copies(store, "o")) == {"d1", "d2"}
    assert await read(store, "o") == b"payload"


async def test_a_wiped_device_is_restored_by_the_replicator(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    names = [f"obj-{i}" for i in range(40)]
    for n in names:
        await put(store, n, n.encode())
    await store.delete("AUTH_a", "c", "obj-0", timestamp="1700000001.00000")
    shutil.rmtree(store.root / "d2")
    (store.root / "d2").mkdir()
    result = Replicator(store).run_once()
    assert result.copied == len(names) and result.complete
    for n in names:
        assert "d2" in copies(store, n)
    assert copies(store, "obj-0")["d2"] == ["1700000001.00000.ts"]
    assert await read(store, "obj-7") == b"obj-7"


async def test_a_flipped_byte_is_never_served_is_quarantined_and_restored(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    data = os.urandom(3000)
    await put(store, "o", data)
    hash_hex, part, primaries = store.locate("AUTH_a", "c", "o")
    victim = store.hash_dir(primaries[0], part, hash_hex) / "1700000000.00000.data"
    raw = bytearray(victim.read_bytes())
    raw[1234] ^= 0x01
    victim.write_bytes(bytes(raw))
    # the auditor finds it
    audit = Auditor(store).run_once()
    assert audit.checked == 3 and audit.quarantined == 1
    assert (store.root / primaries[0].name / "quarantined" / "objects" / hash_hex).is_dir()
    assert primaries[0].name not in copies(store, "o")
    assert Replicator(store).run_once().copied == 1
    assert (store.hash_dir(primaries[0], part, hash_hex) / "1700000000.00000.data").read_bytes()[:3000] == data

    # a damaged copy met by get is quarantined there and the next replica is served
    victim2 = store.hash_dir(primaries[0], part, hash_hex) / "1700000000.00000.data"
    raw = bytearray(victim2.read_bytes())
    raw[5] ^= 0xFF
    victim2.write_bytes(bytes(raw))
    for _ in range(3):
        assert await read(store, "o") == data
    assert primaries[0].name not in copies(store, "o")
    assert store.usage()["devices"][primaries[0].name]["quarantined"] == 2


async def test_a_damaged_copy_is_not_spread_by_the_replicator(tmp_path: Path) -> None:
    store = make_store(tmp_path, devices=3)
    await put(store, "o", b"x" * 100)
    hash_hex, part, primaries = store.locate("AUTH_a", "c", "o")
    good, bad, wiped = primaries
    path = store.hash_dir(bad, part, hash_hex) / "1700000000.00000.data"
    raw = bytearray(path.read_bytes())
    raw[0] ^= 1
    path.write_bytes(bytes(raw))
    shutil.rmtree(store.hash_dir(wiped, part, hash_hex))
    Replicator(store).run_once()
    Auditor(store).run_once()
    Replicator(store).run_once()
    assert await read(store, "o") == b"x" * 100
    for dev in primaries:  # three sound copies again, the bad one quarantined on the way
        f = store.hash_dir(dev, part, hash_hex) / "1700000000.00000.data"
        assert f.read_bytes()[:100] == b"x" * 100
    assert sum(d["quarantined"] for d in store.usage()["devices"].values()) == 1


async def test_large_object_damage_found_while_streaming_cuts_the_stream(tmp_path: Path) -> None:
    from cumulo.object.storage import ChecksumError

    store = make_store(tmp_path)
    data = os.urandom(MB + 10)
    await put(store, "big", data, max_size=2 * MB)
    hash_hex, part, primaries = store.locate("AUTH_a", "c", "big")
    for dev in primaries:  # every copy bad: the whole read must fail
        path = store.hash_dir(dev, part, hash_hex) / "1700000000.00000.data"
        raw = bytearray(path.read_bytes())
        raw[MB] ^= 1
        path.write_bytes(bytes(raw))
    reader = await store.get("AUTH_a", "c", "big")
    assert reader is not None
    with pytest.raises(ChecksumError):
        async for _ in reader.iter_range():
            pass
    reader.close()


async def test_open_makes_a_default_ring_once_and_usage_counts(tmp_path: Path) -> None:
    store = ObjectStore.open(tmp_path, part_power=4)
    assert (tmp_path / "object" / "object.ring.json").exists()
    assert sorted(d.name for d in store.ring.devices.values()) == ["d1", "d2", "d3"]
    await store.put("AUTH_a", "c", "o", body(b"abc"), timestamp="1700000000.00000", metadata={}, max_size=10)
    again = ObjectStore.open(tmp_path, part_power=8)  # the saved ring wins
    assert again.ring.part_power == 4 and again.ring.hash_prefix == store.ring.hash_prefix
    usage = again.usage()
    assert all(d["objects"] == 1 and d["bytes_used"] > 3 for d in usage["devices"].values())


async def test_object_node_runs_passes_and_stops(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    await put(store, "o", b"abc")
    shutil.rmtree(store.root / "d1")
    node = ObjectNode(store, interval=0.01)
    await node.start()
    import asyncio

    for _ in range(200):
        await asyncio.sleep(0.01)
        if node.last_audit is not None:
            break
    await node.stop()
    assert "d1" in copies(store, "o")


async def test_a_timestamp_not_in_swifts_form_is_refused_before_any_file(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    for bad in ("../../x", "1700000000", "1700000000.1234/", ""):
        with pytest.raises(ValueError):
            await put(store, "o", b"abc", bad)
        with pytest.raises(ValueError):
            await store.delete("AUTH_a", "c", "o", timestamp=bad)
    assert leftovers(store) == []


async def test_concurrent_writes_of_one_object_leave_the_newest_everywhere(tmp_path: Path) -> None:
    import asyncio

    store = make_store(tmp_path)
    await asyncio.gather(*(put(store, "o", f"v{i}".encode(), f"17000000{i:02d}.00000") for i in range(20)))
    assert await read(store, "o") == b"v19"
    assert set(map(tuple, copies(store, "o").values())) == {("1700000019.00000.data",)}


async def test_after_a_rebalance_the_replicator_moves_objects_to_their_new_primaries(tmp_path: Path) -> None:
    builder = RingBuilder(4, 3)
    for i in range(1, 4):
        builder.add_device(f"d{i}", zone=i)
    builder.rebalance()
    root = tmp_path / "devices"
    store = ObjectStore(root, builder.get_ring(), fsync=False)
    names = [f"o{i}" for i in range(30)]
    for n in names:
        await put(store, n, n.encode())
    builder.add_device("d4", zone=4)
    builder.rebalance()
    moved = ObjectStore(root, builder.get_ring(), fsync=False)
    stale = root / "d1" / "tmp" / "leftover"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half a write")
    os.utime(stale, (1, 1))
    result = Replicator(moved).run_once()
    assert result.copied > 0 and result.removed == result.copied and result.removed_tmp == 1
    for n in names:
        _, _, primaries = moved.locate("AUTH_a", "c", n)
        assert set(copies(moved, n)) == {d.name for d in primaries}
        assert await read(moved, n) == n.encode()
