"""A counter shared by the processes of one machine, read in a few hundred nanoseconds.

Caches that must drop at once in every API worker when something changes (the identity
service's validated tokens and role maps, when a token is revoked or a role removed) keep the
value they last saw: a writer bumps the counter after its transaction commits, and before its
answer leaves; every reader compares on its hot path, so the next request any worker serves after
the write sees it.  The bus event and the database generation poll still carry the change to
controllers on other machines.

The counter is 8 bytes of a file in the state directory (mode 0600), mapped into each process;
bumps take an ``flock`` so two writers never lose one.  A reader only compares for inequality,
so it needs no lock.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

COUNTER = struct.Struct("<Q")


class SharedCounter:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < COUNTER.size:
            os.ftruncate(self._fd, COUNTER.size)
        self._map = mmap.mmap(self._fd, COUNTER.size)

    def value(self) -> int:
        return COUNTER.unpack_from(self._map, 0)[0]  # type: ignore[no-any-return]

    def bump(self) -> int:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            value = (self.value() + 1) % (1 << 64)
            COUNTER.pack_into(self._map, 0, value)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        return value

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
