"""Volume backups in object storage, when it runs in this cloud: the backup engine's objects
(``<container>/<backup id>/<chunk or manifest>``) become objects of the backup's project, in its
account ``AUTH_<project_id>`` and container (``volumebackups`` unless the backup names another),
as Cinder's Swift driver with ``backup_swift_auth = per_user`` keeps them.  The project sees them
(``openstack container list``, ``openstack object list volumebackups``) and they count in its
object-storage usage; they are replicated and audited like every object.  Deleting them by hand
breaks the backups that use them, as in Cinder.

The engine runs in threads; each call here is one coroutine of the object service run on the
agent's event loop and waited for (bounded by ``TIMEOUT``).  Reads fall back to the directory
store, so backups made before object storage was turned on still restore and delete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from cumulo.object.service import Listing, NotFound
from cumulo.volume.drivers.backup import BackupError, BackupStore

TIMEOUT = 300.0  # seconds one object's write or read may take
PAGE = 1000


class ObjectBackupStore:
    """The ``BackupStore`` of one project over the object service (``cumulo.object.service``)."""

    def __init__(self, objects: Any, loop: asyncio.AbstractEventLoop, project_id: str) -> None:
        self.objects, self.loop, self.account = objects, loop, f"AUTH_{project_id}"
        self._containers: dict[str, Any] = {}

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT)

    @staticmethod
    def _split(key: str) -> tuple[str, str]:
        container, _, name = key.partition("/")
        if not container or not name:
            raise ValueError(f"not a backup object key: {key!r}")
        return container, name

    async def _container(self, name: str, create: bool) -> Any:
        info = await self.objects.container(self.account, name)
        if info is None and create:
            await self.objects.put_container(self.account, name, {}, None, None)
            info = await self.objects.container(self.account, name)
        return info

    def put(self, key: str, data: bytes) -> None:
        container, name = self._split(key)

        async def put() -> None:
            info = await self._container(container, create=True)

            async def body() -> AsyncIterator[bytes]:
                yield data

            await self.objects.put_object(info, name, body(), content_type="application/octet-stream", meta={},
                                          expected_etag=None, content_length=len(data))

        self._run(put())

    def get(self, key: str) -> bytes:
        container, name = self._split(key)

        async def get() -> bytes | None:
            info = await self._container(container, create=False)
            opened = None if info is None else await self.objects.open_object(info, name)
            if opened is None:
                return None
            meta, reader = opened
            try:
                return b"".join([chunk async for chunk in reader.iter_range(0, meta.size)])
            finally:
                reader.close()

        data = self._run(get())
        if data is None:
            raise BackupError(f"the backup object {key} is missing from object storage (account {self.account})")
        return bytes(data)

    def exists(self, key: str) -> bool:
        container, name = self._split(key)

        async def exists() -> bool:
            info = await self._container(container, create=False)
            return info is not None and await self.objects.object(info, name) is not None

        return bool(self._run(exists()))

    def keys(self, prefix: str) -> list[str]:
        container, name = self._split(prefix)
        return [f"{container}/{n}" for n in self._run(self._names(container, name + "/"))]

    async def _names(self, container: str, prefix: str) -> list[str]:
        info = await self._container(container, create=False)
        if info is None:
            return []
        names: list[str] = []
        marker = ""
        while True:
            page = await self.objects.objects(info, Listing(prefix=prefix, marker=marker, limit=PAGE))
            names += [entry["name"] for entry in page]
            if len(page) < PAGE:
                return names
            marker = page[-1]["name"]

    def delete_prefix(self, prefix: str) -> int:
        container, name = self._split(prefix)

        async def delete() -> int:
            info = await self._container(container, create=False)
            count = 0
            for object_name in await self._names(container, name + "/"):
                try:
                    await self.objects.delete_object(info, object_name)
                    count += 1
                except NotFound:  # deleted meanwhile
                    pass
            return count

        return int(self._run(delete()))


class FallbackStore:
    """Writes go to ``primary``; reads find an object in ``primary``, else in ``legacy`` (the
    backups made before); deletes remove it from both."""

    def __init__(self, primary: BackupStore, legacy: BackupStore) -> None:
        self.primary, self.legacy = primary, legacy

    def put(self, key: str, data: bytes) -> None:
        self.primary.put(key, data)

    def get(self, key: str) -> bytes:
        try:
            return self.primary.get(key)
        except BackupError:
            if not self.legacy.exists(key):
                raise
        return self.legacy.get(key)

    def exists(self, key: str) -> bool:
        return self.primary.exists(key) or self.legacy.exists(key)

    def keys(self, prefix: str) -> list[str]:
        return sorted(set(self.primary.keys(prefix)) | set(self.legacy.keys(prefix)))

    def delete_prefix(self, prefix: str) -> int:
        return self.primary.delete_prefix(prefix) + self.legacy.delete_prefix(prefix)
