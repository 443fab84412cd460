"""Where image data lives.  A store keeps whole images by id and a staging area for imports.

The interface is small so that the object store can back images later: ``write`` consumes an
async stream of chunks (hashing as it goes) and only makes the data visible when it is complete;
``open`` hands back an async iterator over a byte range; ``delete`` is idempotent.  ``promote``
moves staged data into the store, showing each block to a ``Watcher`` on the way (hashing and
inspection share the one pass).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class Written:
    size: int
    md5: str
    sha512: str
    path: str  # a local path for qemu-img inspection ("" when the store has none)


class StoreFull(Exception):
    """The data went over the byte limit the caller set (quota)."""


class Watcher(Protocol):
    """Sees every block of data in order (a format inspection); raising stops the write."""

    def feed(self, chunk: bytes) -> Any: ...

    def finish(self) -> Any: ...


class Store(Protocol):
    name: str

    async def write(self, key: str, chunks: AsyncIterator[bytes], limit: int | None = None,
                    staging: bool = False) -> Written: ...

    async def promote(self, key: str, watcher: Watcher | None = None) -> Written: ...

    def size(self, key: str, staging: bool = False) -> int | None: ...

    def open(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]: ...

    async def delete(self, key: str, staging: bool = False) -> None: ...

    def keys(self, staging: bool = False) -> set[str]: ...
