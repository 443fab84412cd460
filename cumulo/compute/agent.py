"""The compute agent: one per node.  It never opens the database; it tells the conductor what its
node offers and runs (a heartbeat on the bus every ``report_interval`` seconds) and serves the RPC
target ``compute.<host>`` for the work the controller sends it.  Every piece of work carries a
``ctx`` that goes back unchanged with the report, so the controller knows what finished."""

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

from cumulo.compute.virt.driver import Driver
from cumulo.compute.virt.qemu.driver import QemuDriver
from cumulo.core.version import code_version
from cumulo.network.dataplane.vif import Vifs, enabled

LOG = logging.getLogger(__name__)


class ComputeAgent:
    def __init__(self, bus: Any, host: str, driver: Driver, report_interval: float = 10.0,
                 image_cache_max_age: float = 86400) -> None:
        self.bus, self.host, self.driver, self.report_interval = bus, host, driver, report_interval
        self.image_cache_max_age = image_cache_max_age
        self._reported = False
        self.started_at = dt.datetime.now(dt.UTC).isoformat()
        self._task: asyncio.Task[None] | None = None
        self._work: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self.maintain()
        await self.bus.serve(f"compute.{self.host}", self.handle)
        await self.report()
        self._task = asyncio.get_running_loop().create_task(self._heartbeat())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def report(self) -> None:
        info = self.driver.node_info()
        taken_at = dt.datetime.now(dt.UTC).isoformat()
        await self.bus.cast("conductor", "report_node", {"host": self.host, "node": asdict(info), "taken_at": taken_at,
                                                          "instances": await self.driver.instances(),
                                                          "first": not self._reported,
                                                          "started_at": self.started_at,
                                                          "version": code_version()})
        self._reported = True

    async def _heartbeat(self) -> None:
        beats = 0
        while True:
            await asyncio.sleep(self.report_interval)
            beats += 1
            try:
                if beats % max(1, int(600 / max(self.report_interval, 0.1))) == 0:
                    self.maintain()
                await self.report()
            except asyncio.CancelledError:
                raise
            except Exception:  # the bus may be down for a while: keep trying
                LOG.warning("heartbeat from %s failed", self.host, exc_info=True)

    def maintain(self) -> None:
        """Node housekeeping, at start and then every ten minutes: hypervisor processes no instance
        owns, cached base images nothing uses any more."""
        orphans = getattr(self.driver, "clean_orphans", None)
        if orphans is not None:
            orphans()
        clean = getattr(self.driver, "clean_images", None)
        if clean is not None:
            removed = clean(self.image_cache_max_age)
            if removed:
                LOG.info("removed %d unused cached images on %s", len(removed), self.host)

    async def _done(self, ctx: dict[str, Any], error: str | None = None, result: Any = None) -> None:
        await self.bus.cast("conductor", "server_update", {"ctx": ctx, "error": error, "result": result})

    async def handle(self, method: str, args: dict[str, Any]) -> Any:
        if method == "ping":
            return {"host": self.host}
        if method == "console":
            return await self.driver.console_output(args["server_id"])
        if method == "console_endpoint":  # where the console proxy reaches a guest's serial port or VNC
            endpoint = getattr(self.driver, "console_endpoint", None)
            if endpoint is None:  # a driver without remote consoles (the fake one)
                return {"available": False}
            return await endpoint(args["server_id"], args["kind"])
        if method == "pre_live_migration":
            return await self.driver.pre_live_migration(args["server"])
        if method == "post_live_migration":
            await self.driver.post_live_migration(args["server_id"])
            return None
        if method == "snapshot_volume":  # block storage's in-use snapshot: the guest goes on in the overlay
            return await self.driver.snapshot_volume(args["server_id"], args["volume_id"], args["snapshot_id"],
                                                     args["overlay"])
        if method == "merge_volume":  # block storage's in-use snapshot delete: answered when merged
            return await self.driver.merge_volume(args["server_id"], args["volume_id"], list(args["chain"]),
                                                  args.get("base"))
        if method == "instance_volumes":
            return await self.driver.instance_volumes(args["server_id"])
        if method == "attach_interface":  # answered once the guest has the NIC (Nova's attach is a call)
            return await self.driver.attach_interface(args["server_id"], args["port"])
        if method == "diagnostics":
            return await self.driver.diagnostics(args["server_id"])
        if method == "destroy":
            await self.driver.destroy(args["server_id"])  # idempotent: unknown ids are fine
            return None
        work = getattr(self, f"_{method}", None)
        if work is None:
            raise ValueError(f"unknown method {method}")
        ctx = args.get("ctx") or {}
        server_id = ctx.get("server_id") or args.get("server_id") or (args.get("server") or {}).get("id")
        LOG.info("%s of server %s on %s: started", method, server_id, self.host)
        started = time.monotonic()
        try:
            result = await work(args)
        except Exception as exc:  # the controller turns this into the server's fault or a rollback
            LOG.warning("%s of %s on %s failed: %s", method, server_id, self.host, exc,
                        exc_info=not isinstance(exc, (LookupError, RuntimeError)))
            await self._done(ctx, str(exc) or type(exc).__name__)
            return None
        LOG.info("%s of server %s on %s: done in %.0f ms", method, server_id, self.host,
                 (time.monotonic() - started) * 1000)
        await self._done(ctx, result=result)
        return None

    async def _spawn(self, args: dict[str, Any]) -> None:
        await self.driver.spawn(args["server"])

    async def _power(self, args: dict[str, Any]) -> None:
        await self.driver.power(args["server_id"], args["action"], args.get("server") or {"id": args["server_id"]})

    async def _rebuild(self, args: dict[str, Any]) -> None:
        await self.driver.rebuild(args["server"])

    async def _migrate_disk_and_power_off(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self.driver.migrate_disk_and_power_off(args["server"], args["dest"])

    async def _finish_migration(self, args: dict[str, Any]) -> None:
        await self.driver.finish_migration(args["server"], args.get("source") == self.host, args.get("disk"))

    async def _confirm_migration(self, args: dict[str, Any]) -> None:
        await self.driver.confirm_migration(args["server_id"], bool(args.get("same_host")))

    async def _finish_revert_migration(self, args: dict[str, Any]) -> None:
        await self.driver.finish_revert_migration(args["server"], bool(args.get("same_host")))

    async def _live_migrate(self, args: dict[str, Any]) -> Any:
        server, dest = args["server"], args["dest"]
        server = {**server, **await self.driver.migration_source_info(server["id"])}
        target = await self.bus.call(f"compute.{dest}", "pre_live_migration", {"server": server}, timeout=120)
        try:
            result = await self.driver.live_migrate(server["id"], target)
        except Exception:
            await self.bus.cast(f"compute.{dest}", "destroy", {"server_id": server["id"]})  # roll back
            raise
        try:  # the guest runs there now: what it needed only to arrive (the disks' NBD server) goes
            await self.bus.call(f"compute.{dest}", "post_live_migration", {"server_id": server["id"]}, timeout=30)
        except Exception as exc:
            LOG.warning("post_live_migration of %s on %s failed: %s", server["id"], dest, exc)
        return result

    async def _attach_volume(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self.driver.attach_volume(args["server_id"], args["volume"])

    async def _extend_volume(self, args: dict[str, Any]) -> None:
        await self.driver.extend_volume(args["server_id"], args["volume_id"], int(args["size"]))

    async def _swap_volume(self, args: dict[str, Any]) -> None:
        await self.driver.swap_volume(args["server_id"], args["old_volume_id"], args["volume"])

    async def _detach_volume(self, args: dict[str, Any]) -> None:
        await self.driver.detach_volume(args["server_id"], args["volume_id"])

    async def _detach_interface(self, args: dict[str, Any]) -> None:
        await self.driver.detach_interface(args["server_id"], args["port_id"])

    async def _rescue(self, args: dict[str, Any]) -> None:
        await self.driver.rescue(args["server"], args["image_id"], args.get("properties") or {},
                                 bool(args.get("stable")))

    async def _unrescue(self, args: dict[str, Any]) -> None:
        await self.driver.unrescue(args["server_id"])

    async def _snapshot(self, args: dict[str, Any]) -> None:
        await self.upload(args)

    async def _shelve(self, args: dict[str, Any]) -> None:
        if args.get("image_id"):
            await self.upload(args)
        elif args["server_id"] in await self.driver.instances():
            # volume-backed: no image; the guest shuts down cleanly so its volumes hold all it wrote
            await self.driver.power(args["server_id"], "stop", {})
        await self.driver.destroy(args["server_id"])

    async def upload(self, args: dict[str, Any]) -> None:
        """Send the instance's disk to the image service as the user who asked (their token), the
        way Nova's compute does."""
        snap = await self.driver.snapshot(args["server_id"])
        url = f"{args['image_url'].rstrip('/')}/v2/images/{args['image_id']}"
        headers = {"X-Auth-Token": args["token"]}
        async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, read=None)) as client:
            r = await client.patch(url, headers={**headers, "Content-Type":
                                                 "application/openstack-images-v2.1-json-patch"},
                                   json=[{"op": "replace", "path": "/disk_format", "value": snap.disk_format},
                                         {"op": "replace", "path": "/container_format", "value": "bare"}])
            r.raise_for_status()
            r = await client.put(f"{url}/file", headers={**headers, "Content-Type": "application/octet-stream"},
                                 content=snap.chunks)
            if r.status_code >= 400:
                raise RuntimeError(f"uploading the snapshot failed: {r.status_code} {r.text[:200]}")


def qemu_agent(cfg: Any, bus: Any, host: str | None = None) -> ComputeAgent:
    """A compute agent for this machine with the QEMU driver, configured from ``[compute]``."""
    c = cfg.compute
    host = host or c.host or socket.gethostname()
    path = Path(c.instances_path or cfg.state_path / "instances") / host
    vifs = None
    if "network" in cfg.services or cfg.network.dataplane.lower() == "true":
        if enabled(cfg.network.dataplane):
            vifs = Vifs(cfg.network.namespace_prefix)
    driver = QemuDriver(host, path, shutdown_timeout=c.shutdown_timeout,
                        max_concurrent_builds=c.max_concurrent_builds, tb_size=c.tcg_tb_size, vifs=vifs)
    return ComputeAgent(bus, host, driver, c.report_interval, c.image_cache_max_age)
