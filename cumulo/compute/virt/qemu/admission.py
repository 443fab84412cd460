"""Boot admission: how many guests boot at once on this machine.

Under TCG a guest's boot is CPU-bound for seconds after its QEMU has started (the kernel's own
start), so what has to be limited is not how many QEMUs *start* at once but how many guests are
*booting*: twenty boots sharing two cores all finish at the very end (each gets a tenth of a
core, and the twenty translation caches compete for the CPU's caches), while two at a time finish
one pair after another, the first in a single boot's time, and the last no later.

A slot is taken just before a QEMU starts and given back once that guest's boot has settled: its
QEMU's threads together want less than ``IDLE_DEMAND`` of a core (running or waiting to run,
from ``/proc/<pid>/task/*/schedstat``, so a guest starved by the machine's other work still counts
as busy), or the process has gone, or ``hold_max`` seconds have passed (a guest that computes
from its first second on, or a settle this check misses, must not hold the gate).  The gate is
one per event loop and slot count, so the QEMU nodes one ``cumulo up`` runs on this machine share it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from pathlib import Path

LOG = logging.getLogger(__name__)
IDLE_DEMAND = 0.3  # of one core: below this a guest no longer boots
SAMPLE = 0.1  # seconds between two looks at the process
CALM_SAMPLES = 2  # this many quiet samples in a row: the boot has settled


def demand_ns(pid: int) -> int | None:
    """Nanoseconds the process's threads have run or waited to run, or None once it is gone."""
    total, seen = 0, False
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
            total += int(fields[0]) + int(fields[1])
            seen = True
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return total if seen else None


class BootGate:
    _gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, BootGate]] = weakref.WeakKeyDictionary()

    def __init__(self, slots: int, hold_max: float = 5.0) -> None:
        self.slots = max(1, slots)
        self.hold_max = hold_max
        self._free = asyncio.Semaphore(self.slots)
        self.booting = 0
        self._watchers: set[asyncio.Task[None]] = set()

    @classmethod
    def shared(cls, slots: int) -> BootGate:
        """The gate of this event loop with this many slots (made on first use)."""
        per_loop = cls._gates.setdefault(asyncio.get_running_loop(), {})
        if slots not in per_loop:
            per_loop[slots] = cls(slots)
        return per_loop[slots]

    async def enter(self) -> None:
        """Wait for a free slot: call just before the QEMU starts, then ``booted`` or ``leave``."""
        waited = time.monotonic()
        await self._free.acquire()
        self.booting += 1
        if time.monotonic() - waited > 0.5:
            LOG.info("boot admitted after %.1f s in the queue (%d of %d slots booting)",
                     time.monotonic() - waited, self.booting, self.slots)

    def leave(self) -> None:
        """Give the slot back at once (the QEMU did not start)."""
        self.booting -= 1
        self._free.release()

    def booted(self, pid: int | None) -> None:
        """The guest of ``pid`` runs: its slot goes back once its boot has settled."""
        if pid is None:
            self.leave()
            return
        task = asyncio.get_running_loop().create_task(self._settle(pid))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _settle(self, pid: int) -> None:
        started = time.monotonic()
        try:
            last, at = demand_ns(pid), time.monotonic()
            calm = 0
            while last is not None and time.monotonic() - started < self.hold_max:
                await asyncio.sleep(SAMPLE)
                now_ns, now = demand_ns(pid), time.monotonic()
                if now_ns is None:
                    break
                calm = calm + 1 if (now_ns - last) / ((now - at) * 1e9) < IDLE_DEMAND else 0
                last, at = now_ns, now
                if calm >= CALM_SAMPLES:
                    break
        finally:
            self.leave()
        LOG.debug("guest of QEMU %s settled %.1f s after it started", pid, time.monotonic() - started)
