"""Conntrack zones of this machine's networks: each network's bridge gets a zone of its own, so
connection-tracking state of overlapping addresses in different networks (two tenants both on
10.0.0.0/24) is never shared.  Zones are a kernel resource of the machine (of its ``-dp``
namespace), so the agent allocates them, not the database: one per live network, unique, in
1..65535.

The map is kept in ``<state>/network/conntrack-zones.json`` (mode 0600) and so survives agent
restarts; when that file is missing it is taken back from the ``CT --zone`` rules the kernel
still holds.  Allocation is next-fit (the zone after the last one given): a freed zone is given
again only once the others have been, so conntrack entries left in it (the agent also flushes
them when it frees a zone) are long gone when another network gets it.  When all 65535 are held,
a new network gets none: the agent logs it and its bridge drops traffic (fail closed) until a
zone is freed.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

from cumulo.network.dataplane.names import bridge

LOG = logging.getLogger(__name__)
FIRST, LAST = 1, 65535
RULE = re.compile(r"^-A PREROUTING -i (\S+) -j CT --zone (\d+)\s*$")


def from_rules(text: str) -> dict[str, int]:
    """Bridge -> zone, read from ``iptables-save -t raw`` output."""
    out = {}
    for line in text.splitlines():
        m = RULE.match(line.strip())
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


class ConntrackZones:
    """Network id -> conntrack zone, unique among the networks it holds."""

    def __init__(self, path: Path, first: int = FIRST, last: int = LAST) -> None:
        self.path, self.first, self.last = Path(path), first, last
        self.zones: dict[str, int] = {}
        self.cursor = first - 1  # the zone given last
        self._adopt: dict[str, int] = {}  # bridge -> zone seen in the kernel, taken by the first sync
        self.loaded = False

    # -- persistence ------------------------------------------------------------------------------
    def load(self, kernel_rules: str = "") -> None:
        """The map from its file; when there is none, what ``kernel_rules`` (the raw table) says."""
        self.loaded = True
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            self._adopt = {br: z for br, z in from_rules(kernel_rules).items() if self.first <= z <= self.last}
            if self._adopt:
                LOG.info("conntrack zones: no %s; taking %d back from the kernel's rules", self.path,
                         len(self._adopt))
            return
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"conntrack zones file {self.path} cannot be read ({exc}): fix or remove it") from exc
        zones = {str(k): int(v) for k, v in (data.get("zones") or {}).items()}
        if len(set(zones.values())) != len(zones):
            raise RuntimeError(f"conntrack zones file {self.path} gives one zone to two networks: fix or remove it")
        self.zones = zones
        self.cursor = int(data.get("last_given", self.first - 1))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"last_given": self.cursor, "zones": dict(sorted(self.zones.items()))}, f, indent=0)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def clear(self) -> None:
        """No network is left on this machine: forget every zone (and the file)."""
        self.zones.clear()
        self._adopt.clear()
        self.cursor = self.first - 1
        self.loaded = True
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    # -- allocation -------------------------------------------------------------------------------
    def sync(self, network_ids: Iterable[str]) -> tuple[dict[str, int], dict[str, int], list[str]]:
        """Zones for exactly ``network_ids``: ``(zones, freed, unplaced)`` -- each network's zone,
        the zones of networks that went (network -> zone), and the networks that got none
        because all zones are held.  The file is written before the caller uses the answer, so a
        rule in the kernel never names a zone the file does not."""
        wanted = set(network_ids)
        before = (dict(self.zones), self.cursor)
        freed = {n: z for n, z in self.zones.items() if n not in wanted}
        for n in freed:
            del self.zones[n]
        if self._adopt:  # the kernel's word for networks the file forgot
            held = set(self.zones.values())
            for n in sorted(wanted - set(self.zones)):
                z = self._adopt.get(bridge(n))
                if z is not None and z not in held:
                    self.zones[n] = z
                    held.add(z)
            self._adopt.clear()
        unplaced = []
        held = set(self.zones.values())
        for n in sorted(wanted - set(self.zones)):
            z = self._next_free(held)
            if z is None:
                unplaced.append(n)
                continue
            self.zones[n] = z
            held.add(z)
            self.cursor = z
        if (self.zones, self.cursor) != before:
            self.save()
        if unplaced:
            LOG.error("conntrack zones exhausted on this machine: all %d held, so %d networks get none and their "
                      "bridges drop traffic until a network goes: %s", self.last - self.first + 1, len(unplaced),
                      ", ".join(unplaced[:5]))
        return dict(self.zones), freed, unplaced

    def _next_free(self, held: set[int]) -> int | None:
        size = self.last - self.first + 1
        if len(held) >= size:
            return None
        z = self.cursor
        for _ in range(size):
            z = z + 1 if z < self.last else self.first
            if z not in held:
                return z
        return None
