"""What a volume-backed (boot-from-volume) server does differently: its snapshot is a snapshot of
each of its volumes in block storage, recorded in an image that holds no data, and shelving it
makes no image at all (its volumes stay attached while it runs nowhere).

A snapshot image, as Nova makes it: size 0, raw and bare, its properties ``block_device_mapping``
(a JSON list of block device mappings in the v2 form, one per volume, each with ``source_type``
snapshot and the ``snapshot_id`` block storage made), ``bdm_v2`` and ``root_device_name``.  A
server created from such an image gets a new volume from each snapshot (see
``compute.api.block_devices``), and boots from the one with boot index 0.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import select

from cumulo.compute.models import BlockDeviceMapping, Server
from cumulo.compute.servers.base import resources_of
from cumulo.compute.servers.volumes import _caller_for
from cumulo.core.http.faults import BadRequest, Fault, Forbidden, NotFound

LOG = logging.getLogger(__name__)
SNAPSHOT_TIMEOUT = 120.0  # seconds block storage has to finish the snapshots of a createImage
ROOT_DEVICE = "/dev/vda"
# the fields of a block device mapping in an image's block_device_mapping (Nova's v2 fields
# without the connection info and the database's own), each present, None when unset
IMAGE_MAPPING_FIELDS = ("source_type", "destination_type", "guest_format", "device_type", "disk_bus", "boot_index",
                        "device_name", "delete_on_termination", "snapshot_id", "volume_id", "volume_size",
                        "image_id", "no_device", "tag", "volume_type", "encrypted", "encryption_secret_uuid",
                        "encryption_format", "encryption_options")


def image_mapping(row: BlockDeviceMapping, snapshot_id: str, volume_size: int) -> dict[str, Any]:
    """One volume of the server as a snapshot image records it: a new volume from the snapshot,
    of the volume's size, where the volume was, deleted with the server as the volume was."""
    out: dict[str, Any] = dict.fromkeys(IMAGE_MAPPING_FIELDS)
    out.update(source_type="snapshot", destination_type="volume", snapshot_id=snapshot_id, volume_size=volume_size,
               boot_index=row.boot_index, device_name=row.device_name,
               delete_on_termination=bool(row.delete_on_termination), disk_bus="virtio", device_type="disk")
    return out


class VolumeBacked:
    def volume_backed(self, server: Server) -> bool:
        """Whether the server boots from a volume (its root disk is in block storage)."""
        return bool((server.request or {}).get("boot_volume"))

    def _local_resources(self, server: Server, flavor: dict[str, Any]) -> dict[str, int]:
        """What ``flavor`` takes of a host for this server: no root disk when it boots from a volume."""
        return resources_of({**flavor, "disk": 0} if self.volume_backed(server) else flavor)

    async def _server_volumes(self, server_id: str) -> list[BlockDeviceMapping]:
        async with self.db.session() as s:
            return list((await s.execute(select(BlockDeviceMapping).where(
                BlockDeviceMapping.server_id == server_id).order_by(
                BlockDeviceMapping.boot_index.is_(None), BlockDeviceMapping.boot_index,
                BlockDeviceMapping.created_at, BlockDeviceMapping.id))).scalars())

    async def root_image_meta(self, server: Server) -> dict[str, str]:
        """The image metadata of the volume the server boots from (what block storage kept of
        the image it was made from): a volume-backed server's snapshot inherits from it."""
        root = next((r for r in await self._server_volumes(server.id) if r.boot_index == 0), None)
        if root is None or self.volumes is None:
            return {}
        try:
            vol = await self.volumes.volume(root.volume_id, _caller_for(server))
        except NotFound:
            return {}
        return dict(vol.image_meta or {})

    async def check_volume_backed_rebuild(self, server: Server, image_id: str) -> None:
        """A volume-backed server is rebuilt only with the image its root volume was made from
        (400 otherwise, in Nova's words): reimaging the volume (2.93) is not built here."""
        if (await self.root_image_meta(server)).get("image_id") != image_id:
            raise BadRequest(f"Image {image_id} is unacceptable: Unable to rebuild with a different image for a "
                             "volume-backed server (reimaging its root volume is not supported by this cloud).")

    async def snapshot_volumes(self, server: Server, who: Any, name: str) -> list[dict[str, Any]]:
        """Snapshot each of the server's volumes (forced: they are in use) as ``who``, wait until
        block storage has them all, and answer their mappings for the image.  If one fails, the
        snapshots already made are deleted and the fault says why (400, in block storage's words)."""
        block = self._block_storage()
        rows = await self._server_volumes(server.id)
        if any(r.status != "attached" for r in rows):
            raise BadRequest(f"Cannot snapshot server {server.id}: a volume is being attached or detached; try "
                             "again when it is done.")
        made: list[tuple[BlockDeviceMapping, Any, int]] = []
        try:
            for row in rows:
                vol = await block.volume(row.volume_id, who)
                snap = await block.create_snapshot(who, row.volume_id, name=f"snapshot for {name}",
                                                   description=vol.description, force=True)
                made.append((row, snap, vol.size))
            await self._wait_snapshots([snap.id for _, snap, _ in made], who)
        except Exception as exc:
            for _, snap, _ in made:
                try:
                    await block.delete_snapshot(snap.id, who)
                except Exception as undo:  # the snapshot's own error is the one to report
                    LOG.warning("snapshot %s of failed createImage of %s not deleted: %s", snap.id, server.id, undo)
            if isinstance(exc, Fault) and exc.code == 413:  # block storage's quota: Nova's OverQuota is a 403
                raise Forbidden(f"Quota exceeded for resources: ['snapshots']: {exc.message}") from None
            if isinstance(exc, Fault) and exc.code < 500:
                raise
            raise BadRequest(f"Invalid volume: snapshotting the volumes of server {server.id} failed: "
                             f"{getattr(exc, 'message', None) or exc}") from None
        LOG.info("server %s: volume snapshots %s for image %r", server.id, [s.id for _, s, _ in made], name)
        return [image_mapping(row, snap.id, size) for row, snap, size in made]

    async def _wait_snapshots(self, snapshot_ids: list[str], who: Any) -> None:
        deadline = asyncio.get_running_loop().time() + SNAPSHOT_TIMEOUT
        pending = list(snapshot_ids)
        while pending:
            snap = await self._block_storage().snapshot(pending[0], who)
            if snap.status == "available":
                pending.pop(0)
                continue
            if snap.status != "creating":
                raise BadRequest(f"Invalid volume: the snapshot of volume {snap.volume_id} is {snap.status}.")
            if asyncio.get_running_loop().time() > deadline:
                raise BadRequest(f"Invalid volume: the snapshot of volume {snap.volume_id} was not done within "
                                 f"{SNAPSHOT_TIMEOUT:g} s.")
            await asyncio.sleep(0.1)
