"""The volume agent: one per storage node.  It never opens the database; it serves the RPC target
``volume.<host>`` (create, extend, upload to an image and delete volumes, create and delete
snapshots; initialize_connection answers a call
with a volume's connection info: its file, or for a compute node on another machine an NBD export
of qemu-storage-daemon, ``drivers/nbd.py``), reports each piece of work back to
``volume.controller`` with the ``ctx`` it came with, and reports its pool (capacity, allocated,
free) and the volumes and snapshots it holds every ``report_interval`` seconds; the controller
agrees with that (``VolumeService.sync_host``), so a lost report or a file nobody owns is settled
at the next one, and a restarted agent adopts the files it finds.  Snapshots are qcow2 overlays in
a chain (``drivers/file.py``); for an in-use volume the QEMU of its server does the chain's work
(compute's ``snapshot_volume`` and ``merge_volume``, through the conductor), and each report first
finishes a snapshot a crash cut between its steps (``FileDriver.repair``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from cumulo.core.bus import Bus, RPCError, RPCTimeout
from cumulo.core.format_inspector import ImageRefused, inspect_file, qemu_format
from cumulo.core.version import code_version
from cumulo.volume.backup_agent import BackupAgentMixin, backup_engine
from cumulo.volume.drivers.file import FileDriver
from cumulo.volume.drivers.nbd import NBDExports, is_local_address
from cumulo.volume.service import CONTROLLER

LOG = logging.getLogger(__name__)

TRANSPORTS = ("auto", "file", "nbd")  # what a connector's cumulo_transport may ask for
EXPORT_GRACE = 120.0  # seconds an export no attachment holds yet survives the sync (os-initialize_connection)


class VolumeAgent(BackupAgentMixin):
    def __init__(self, bus: Bus, host: str, driver: FileDriver, report_interval: float = 10.0,
                 exports: NBDExports | None = None) -> None:
        self.bus, self.host, self.driver, self.report_interval = bus, host, driver, report_interval
        self.exports = exports or NBDExports(driver.path)
        self.started_at = dt.datetime.now(dt.UTC).isoformat()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.exports.adopt({vid: self.driver.volume_path(vid) for vid in self.driver.volumes()})
        await self.bus.serve(f"volume.{self.host}", self.handle)
        await self.report()
        self._task = asyncio.get_running_loop().create_task(self._heartbeat())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def report(self) -> None:
        for snapshot_id in await self.driver.repair():  # a crash cut a snapshot between its steps
            LOG.warning("snapshot %s on %s was finished after an interruption", snapshot_id, self.host)
        pool = await asyncio.to_thread(self.driver.pool)
        await self.bus.cast(CONTROLLER, "report_pool", {"host": self.host, "pool": asdict(pool),
                                                        "volumes": sorted(self.driver.volumes()),
                                                        "snapshots": self.driver.snapshots(),
                                                        "exports": self.exports.exported(),
                                                        "started_at": self.started_at,
                                                        "version": code_version()})

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.report_interval)
            try:
                await self.report()
            except asyncio.CancelledError:
                raise
            except Exception:  # the bus may be down for a while: keep trying
                LOG.warning("pool report from %s failed", self.host, exc_info=True)

    async def handle(self, method: str, args: dict[str, Any]) -> Any:
        if method == "ping":
            return {"host": self.host}
        if method == "initialize_connection":  # a call: the answer is the connection info itself
            return await self._connect(args["volume_id"], args.get("access_mode") or "rw", args.get("connector"))
        if method == "terminate_connection":  # a file needs nothing; an export goes with its last attachment
            if not args.get("held"):
                await self.exports.stop(args["volume_id"])
            return None
        if method == "sync_exports":  # the controller's answer to a report: the exports attachments hold
            await self.exports.stop_unheld(set(args.get("held") or ()), list(args.get("exported") or ()),
                                           EXPORT_GRACE)
            return None
        work = getattr(self, f"_{method}", None)
        if work is None:
            raise ValueError(f"unknown volume agent method {method}")
        ctx = args.get("ctx") or {}
        what = next((args[k] for k in ("snapshot_id", "backup_id", "volume_id") if args.get(k)), None)
        LOG.info("%s %s on %s: started", method, what, self.host)
        started = time.monotonic()
        try:
            result = await work(args)
        except Exception as exc:  # the controller puts it in the volume's fault
            LOG.warning("%s on %s failed: %s", method, self.host, exc,
                        exc_info=not isinstance(exc, (LookupError, RuntimeError)))
            await self.bus.cast(CONTROLLER, "volume_update", {"ctx": ctx, "error": str(exc) or type(exc).__name__})
            return None
        LOG.info("%s %s on %s: done in %.0f ms", method, what, self.host, (time.monotonic() - started) * 1000)
        await self.bus.cast(CONTROLLER, "volume_update", {"ctx": ctx, "error": None, "result": result})
        return None

    async def _connect(self, volume_id: str, mode: str, connector: dict[str, Any] | None) -> dict[str, Any]:
        """How the connector's node reaches the volume: the file (os-brick's ``file`` shape) or an
        NBD export (``nbd``: host and port, or socket, and the export's name; raw over NBD, the
        qcow2 is read by the daemon)."""
        transport = self._transport(connector or {})
        info = self.driver.connection_info(volume_id, mode)  # LookupError when the file is not here
        if transport == "file":
            return info
        export = await self.exports.export(volume_id, self.driver.volume_path(volume_id), mode)
        return {"driver_volume_type": "nbd",
                "data": {**export.data(), "name": f"volume-{volume_id}", "volume_id": volume_id, "access_mode": mode}}

    @staticmethod
    def _transport(connector: dict[str, Any]) -> str:
        """What the node asks for (``cumulo_transport``, its ``[compute] volume_transport``);
        ``auto`` is the file when the node's address is one of this machine's, else NBD.  A
        connector that says nothing (another client of the attachments API) gets the file."""
        want = connector.get("cumulo_transport") or "file"
        if want not in TRANSPORTS:
            raise ValueError(f"the connector asks for the volume transport {want!r}; auto, file or nbd is known")
        if want == "auto":
            return "file" if is_local_address(connector.get("ip")) else "nbd"
        return str(want)

    async def _create_volume(self, args: dict[str, Any]) -> dict[str, Any] | None:
        source = args.get("source") or {}
        path: Path | None = None
        if source.get("image_url"):
            image = await self._create_from_image(args["volume_id"], int(args["size"]), source["image_url"],
                                                  source["token"])
            return {"image": image}
        if source.get("snapshot_id"):
            path = self.driver.snapshot_path(source["snapshot_id"])
        elif source.get("volume_id"):
            path = self.driver.volume_path(source["volume_id"])
        await self.driver.create_volume(args["volume_id"], int(args["size"]), path)
        return None

    async def _create_from_image(self, volume_id: str, size: int, image_url: str, token: str) -> dict[str, Any]:
        """Download the image as the user who asked (their token, as Cinder's volume service does),
        check that its data is the disk format it claims (``core.format_inspector``), convert it."""
        if self.driver.volume_path(volume_id).exists():
            return {}
        download = self.driver.download_path(volume_id)
        headers = {"X-Auth-Token": token}
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, read=None)) as client:
                r = await client.get(image_url, headers=headers)
                if r.status_code != 200:
                    raise RuntimeError(f"the image could not be read: {r.status_code}")
                image = r.json()
                disk_format = image.get("disk_format")
                with open(download, "wb") as fh:
                    async with client.stream("GET", f"{image_url}/file", headers=headers) as data:
                        if data.status_code != 200:
                            raise RuntimeError(f"the image data could not be read: {data.status_code}")
                        async for chunk in data.aiter_bytes(1 << 20):
                            await asyncio.to_thread(fh.write, chunk)
            try:
                await asyncio.to_thread(inspect_file, download, disk_format)
            except ImageRefused as exc:
                raise RuntimeError(f"the image is not acceptable: {exc}") from None
            await self.driver.create_volume(volume_id, size, download, qemu_format(disk_format))
        finally:
            download.unlink(missing_ok=True)
        return {k: image.get(k) for k in ("checksum", "disk_format", "container_format")}

    async def _extend_volume(self, args: dict[str, Any]) -> None:
        await self.driver.extend_volume(args["volume_id"], int(args["new_size"]))

    async def _upload_volume(self, args: dict[str, Any]) -> None:
        """The volume converted to the image's disk format and sent to the Image API with the
        user's token (PUT /v2/images/{id}/file), as Cinder's volume service does."""
        path = await self.driver.export_volume(args["volume_id"], args["disk_format"], bool(args.get("force_share")))
        try:
            async def chunks() -> Any:
                with open(path, "rb") as fh:
                    while chunk := await asyncio.to_thread(fh.read, 1 << 20):
                        yield chunk
            async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, read=None, write=None)) as client:
                r = await client.put(f"{args['image_url']}/file", content=chunks(), headers={
                    "X-Auth-Token": args["token"], "Content-Type": "application/octet-stream"})
            if r.status_code >= 400:
                raise RuntimeError(f"the image service refused the data: {r.status_code} {r.text[:200]}")
        finally:
            path.unlink(missing_ok=True)

    async def _delete_volume(self, args: dict[str, Any]) -> None:
        await self.exports.stop(args["volume_id"])
        await self.driver.delete_volume(args["volume_id"])

    async def _create_snapshot(self, args: dict[str, Any]) -> None:
        """The volume's active image is frozen as the snapshot and the volume goes on in an overlay
        (``drivers/file.py``).  An in-use volume (force) that a running server of compute has is
        switched onto the overlay by that server's QEMU first (compute's ``snapshot_volume``,
        QMP ``blockdev-snapshot-sync``), as of one instant, while the guest runs.  A volume this
        agent exports over NBD is copied through its export instead (the daemon holds the image
        and the writes of the remote guest; crash-consistent, not point-in-time)."""
        volume_id, snapshot_id = args["volume_id"], args["snapshot_id"]
        if self.exports.get(volume_id) is not None:
            async def copy(tmp: Path) -> None:
                await self.exports.copy(volume_id, tmp)
            await self.driver.create_snapshot(snapshot_id, volume_id, copy=copy)
            return
        switch = None
        if args.get("force_share") and await self._compute_has(volume_id):
            async def switch(overlay: Path) -> bool:
                return bool(await self.bus.call("conductor", "snapshot_volume", {
                    "volume_id": volume_id, "snapshot_id": snapshot_id, "overlay": str(overlay)}, timeout=120))
        await self.driver.create_snapshot(snapshot_id, volume_id, bool(args.get("force_share")), switch=switch)

    async def _compute_has(self, volume_id: str) -> bool:
        """Whether a running server of compute has the volume (its QEMU then does the chain's work)."""
        try:
            return bool(await self.bus.call("conductor", "snapshot_volume", {"volume_id": volume_id, "check": True},
                                            timeout=10))
        except (RPCError, RPCTimeout):
            return False

    async def _delete_snapshot(self, args: dict[str, Any]) -> None:
        """The snapshot's file is merged into the images it backs, then removed; a running guest's
        chain is merged by its QEMU (compute's ``merge_volume``, QMP ``block-stream``).  A volume
        exported over NBD is held by its daemon: a snapshot in its chain waits for the detach."""
        async def merge(volume_id: str, chain: list[str], base: str | None) -> bool:
            if self.exports.get(volume_id) is not None:
                raise RuntimeError(f"volume {volume_id} is exported over NBD, whose daemon holds its snapshots' "
                                   "chain: delete the snapshot once the volume is detached")
            if not await self._compute_has(volume_id):
                return False
            return bool(await self.bus.call("conductor", "merge_volume", {
                "volume_id": volume_id, "chain": chain, "base": base, "timeout": 3600}, timeout=3600))
        await self.driver.delete_snapshot(args["snapshot_id"], merge)


def file_agent(cfg: Any, bus: Bus, host: str | None = None) -> VolumeAgent:
    """A volume agent for this machine with the file driver, configured from ``[volume]``."""
    v = cfg.volume
    host = host or v.host or socket.gethostname()
    path = Path(v.volumes_path or cfg.state_path / "volumes") / host
    agent = VolumeAgent(bus, host, FileDriver(path, v.capacity_gb), v.report_interval,
                        NBDExports(path, v.export_host))
    agent.backups = backup_engine(cfg)
    return agent
