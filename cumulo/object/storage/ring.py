"""The ring: which devices hold which partition of the object namespace (Swift's model).

An object's path hashes to a partition (the top ``part_power`` bits of the md5); the ring maps
each partition to ``replicas`` devices.  ``RingBuilder`` makes and changes that map; ``Ring`` is
the read-only view the store consults on every request.  Both live in one JSON file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MAX_PART_POWER = 20  # 1M partitions: the assignment table stays a few MB of JSON
MAX_REPLICAS = 8
MAX_DEVICES = 4096


class RingError(ValueError):
    """A ring that cannot be built or read as asked."""


@dataclass(frozen=True)
class Device:
    id: int
    name: str  # the device's directory under the store's root
    region: int = 1
    zone: int = 1
    weight: float = 100.0
    address: str = ""  # "ip:port" of the node serving it; empty means this node (single-node today)

    @property
    def active(self) -> bool:
        return self.weight > 0


def hash_path(prefix: bytes, suffix: bytes, account: str, container: str, obj: str) -> str:
    """The md5 hex of ``/account/container/object`` between the cluster's secret prefix and suffix."""
    path = f"/{account}/{container}/{obj}".encode()
    return hashlib.md5(prefix + path + suffix, usedforsecurity=False).hexdigest()


@dataclass
class _RingData:
    part_power: int
    replicas: int
    devices: dict[int, Device]
    assignment: list[list[int]]  # replica -> partition -> device id (-1: unassigned)
    hash_prefix: str = field(default_factory=lambda: secrets.token_hex(8))
    hash_suffix: str = field(default_factory=lambda: secrets.token_hex(8))

    def to_json(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, "part_power": self.part_power, "replicas": self.replicas,
                "hash_path_prefix": self.hash_prefix, "hash_path_suffix": self.hash_suffix,
                "devices": [asdict(d) for d in sorted(self.devices.values(), key=lambda d: d.id)],
                "assignment": self.assignment}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _RingData:
        try:
            if data.get("version") != FORMAT_VERSION:
                raise RingError(f"ring format version {data.get('version')!r} is not {FORMAT_VERSION}")
            devices = {int(d["id"]): Device(**d) for d in data["devices"]}
            ring = cls(int(data["part_power"]), int(data["replicas"]), devices,
                       [list(map(int, row)) for row in data["assignment"]],
                       str(data["hash_path_prefix"]), str(data["hash_path_suffix"]))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, RingError):
                raise
            raise RingError(f"ring file is malformed: {exc}") from None
        _check_shape(ring.part_power, ring.replicas)
        return ring


def _check_shape(part_power: int, replicas: int) -> None:
    if not 0 <= part_power <= MAX_PART_POWER:
        raise RingError(f"part_power must be 0..{MAX_PART_POWER}")
    if not 1 <= replicas <= MAX_REPLICAS:
        raise RingError(f"replicas must be 1..{MAX_REPLICAS}")


def _read(path: Path) -> _RingData:
    try:
        return _RingData.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise RingError(f"no ring at {path}") from None
    except json.JSONDecodeError as exc:
        raise RingError(f"ring file {path} is not JSON: {exc}") from None


def _write(path: Path, data: _RingData) -> None:
    """Atomic: a reader sees the old ring or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data.to_json(), f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Ring:
    """Read-only lookups: partition of a path, its primary devices, its handoffs."""

    def __init__(self, data: _RingData) -> None:
        if any(dev < 0 for row in data.assignment for dev in row):
            raise RingError("the ring has unassigned partitions: rebalance it")
        self.part_power = data.part_power
        self.replicas = data.replicas
        self.partitions = 1 << data.part_power
        self.devices = dict(data.devices)
        self.hash_prefix = bytes.fromhex(data.hash_prefix)
        self.hash_suffix = bytes.fromhex(data.hash_suffix)
        self._shift = 128 - data.part_power
        # partition -> its primaries, precomputed: the lookup on each request is one list index
        self._primaries: list[list[Device]] = [
            [self.devices[data.assignment[r][p]] for r in range(data.replicas)] for p in range(self.partitions)]

    @classmethod
    def load(cls, path: Path) -> Ring:
        return cls(_read(path))

    def hash(self, account: str, container: str, obj: str) -> str:
        return hash_path(self.hash_prefix, self.hash_suffix, account, container, obj)

    def partition_of(self, hash_hex: str) -> int:
        return int(hash_hex, 16) >> self._shift

    def get_nodes(self, account: str, container: str, obj: str) -> tuple[int, list[Device]]:
        part = self.partition_of(self.hash(account, container, obj))
        return part, list(self._primaries[part])

    def get_part_nodes(self, part: int) -> list[Device]:
        return list(self._primaries[part])

    def get_more_nodes(self, part: int) -> Iterator[Device]:
        """Handoffs for ``part``: every other active device, those in zones the primaries do not
        use first, in an order fixed per partition (so every writer picks the same handoffs)."""
        primaries = self._primaries[part]
        used_ids = {d.id for d in primaries}
        used_zones = {(d.region, d.zone) for d in primaries}
        others = [d for d in self.devices.values() if d.active and d.id not in used_ids]
        others.sort(key=lambda d: ((d.region, d.zone) in used_zones,
                                   hashlib.md5(f"{part}/{d.id}".encode(), usedforsecurity=False).digest()))
        yield from others


class RingBuilder:
    """Makes and changes the assignment; ``rebalance()`` then ``save()``."""

    def __init__(self, part_power: int, replicas: int) -> None:
        _check_shape(part_power, replicas)
        self._data = _RingData(part_power, replicas, {}, [[-1] * (1 << part_power) for _ in range(replicas)])

    @classmethod
    def load(cls, path: Path) -> RingBuilder:
        builder = cls.__new__(cls)
        builder._data = _read(path)
        return builder

    def save(self, path: Path) -> None:
        _write(path, self._data)

    @property
    def part_power(self) -> int:
        return self._data.part_power

    @property
    def replicas(self) -> int:
        return self._data.replicas

    @property
    def devices(self) -> dict[int, Device]:
        return dict(self._data.devices)

    def get_ring(self) -> Ring:
        return Ring(self._data)

    def add_device(self, name: str, *, region: int = 1, zone: int = 1, weight: float = 100.0,
                   address: str = "") -> Device:
        if not name or "/" in name or name in (".", ".."):
            raise RingError(f"device name {name!r} must be a plain directory name")
        if any(d.name == name and d.address == address for d in self._data.devices.values()):
            raise RingError(f"device {name!r} is already in the ring")
        if len(self._data.devices) >= MAX_DEVICES:
            raise RingError(f"a ring holds at most {MAX_DEVICES} devices")
        if not (math.isfinite(weight) and weight >= 0):
            raise RingError("weight must be a number >= 0")
        dev = Device(max(self._data.devices, default=0) + 1, name, region, zone, float(weight), address)
        self._data.devices[dev.id] = dev
        return dev

    def find(self, name_or_id: str) -> Device:
        for dev in self._data.devices.values():
            if dev.name == name_or_id or str(dev.id) == name_or_id:
                return dev
        raise RingError(f"no device {name_or_id!r} in the ring")

    def set_weight(self, dev_id: int, weight: float) -> None:
        """Weight 0 marks a device out: the next rebalance moves its partitions elsewhere."""
        if not (math.isfinite(weight) and weight >= 0):
            raise RingError("weight must be a number >= 0")
        self._data.devices[dev_id] = replace(self._data.devices[dev_id], weight=float(weight))

    def remove_device(self, dev_id: int) -> None:
        """Drop a device once it holds no partition (mark it out with weight 0 and rebalance first
        when it does: its data must have a new home before its entry goes)."""
        if any(dev == dev_id for row in self._data.assignment for dev in row):
            self.set_weight(dev_id, 0)
            raise RingError(f"device {dev_id} still holds partitions: it is marked out (weight 0); "
                            "rebalance, let replication move its data, then remove it")
        del self._data.devices[dev_id]

    def rebalance(self) -> int:
        """Assign every partition's replicas to distinct active devices, spread over as many zones
        as there are, in proportion to weight, keeping every assignment that is still fine.

        Returns how many (partition, replica) slots moved.  Swift's min_part_hours (one move per
        partition per N hours) is not kept: a second rebalance right after may move a partition
        again, so let replication settle between changes.
        """
        data = self._data
        active = [d for d in data.devices.values() if d.active]
        if len(active) < data.replicas:
            raise RingError(f"{data.replicas} replicas need at least {data.replicas} devices of weight > 0 "
                            f"(there are {len(active)})")
        parts = 1 << data.part_power
        total_weight = sum(d.weight for d in active)
        want = {d.id: parts * data.replicas * d.weight / total_weight for d in active}
        zone_of = {d.id: (d.region, d.zone) for d in active}
        zones_wanted = min(data.replicas, len(set(zone_of.values())))
        before = [row[:] for row in data.assignment]
        count = dict.fromkeys(want, 0)
        table = data.assignment

        # 1. drop what is no longer fine: devices gone or out, a device twice in a partition,
        #    replicas crowded into a zone while zones stay unused
        for p in range(parts):
            seen: set[int] = set()
            for r in range(data.replicas):
                dev = table[r][p]
                if dev not in want or dev in seen:
                    table[r][p] = -1
                else:
                    seen.add(dev)
            zones = {zone_of[table[r][p]] for r in range(data.replicas) if table[r][p] >= 0}
            if len(zones) < zones_wanted:
                seen_zones: set[tuple[int, int]] = set()
                for r in range(data.replicas):
                    dev = table[r][p]
                    if dev >= 0:
                        if zone_of[dev] in seen_zones:
                            table[r][p] = -1
                        else:
                            seen_zones.add(zone_of[dev])
            for r in range(data.replicas):
                if table[r][p] >= 0:
                    count[table[r][p]] += 1

        # 2. take from devices holding more than their share (rounded up), at most one slot per
        #    partition, so that the devices short of their share (the new ones) fill exactly those
        #    slots: few partitions move
        limit = {dev_id: math.ceil(w) for dev_id, w in want.items()}
        for p in range(parts - 1, -1, -1):  # a stable, arbitrary order
            if any(table[r][p] < 0 for r in range(data.replicas)):
                continue
            for r in range(data.replicas):
                dev = table[r][p]
                if count[dev] > limit[dev]:
                    table[r][p] = -1
                    count[dev] -= 1
                    break

        # 3. fill every empty slot with the device furthest below its share, in a zone the
        #    partition does not use yet when there is one
        for p in range(parts):
            for r in range(data.replicas):
                if table[r][p] >= 0:
                    continue
                holders = {table[x][p] for x in range(data.replicas) if table[x][p] >= 0}
                used = {zone_of[h] for h in holders}
                candidates = [d for d in want if d not in holders]
                fresh = [d for d in candidates if zone_of[d] not in used]
                pool = fresh or candidates
                best = max(pool, key=lambda d: (want[d] - count[d]) / want[d])
                table[r][p] = best
                count[best] += 1
        # what moves is data: a device that holds a partition now and did not before
        return sum(len({table[r][p] for r in range(data.replicas)} - {before[r][p] for r in range(data.replicas)})
                   for p in range(parts))

    def balance(self) -> float:
        """The largest deviation of any active device from its share, in percent."""
        data = self._data
        active = [d for d in data.devices.values() if d.active]
        total = sum(d.weight for d in active)
        if not total:
            return 0.0
        count: dict[int, int] = {}
        for row in data.assignment:
            for dev in row:
                count[dev] = count.get(dev, 0) + 1
        slots = (1 << data.part_power) * data.replicas
        return max(abs(count.get(d.id, 0) - slots * d.weight / total) / (slots * d.weight / total) * 100
                   for d in active)

    def partitions_of(self) -> dict[int, int]:
        """Device id -> how many partition replicas it holds."""
        count = dict.fromkeys(self._data.devices, 0)
        for row in self._data.assignment:
            for dev in row:
                if dev >= 0:
                    count[dev] += 1
        return count
