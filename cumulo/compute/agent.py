"""The compute agent: one per node.  It never opens the database; it tells the conductor what its
node offers (a heartbeat on the bus every ``report_interval`` seconds) and serves the RPC target
``compute.<host>`` for the work the controller sends it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import Any

from cumulo.compute.virt.driver import Driver
from cumulo.core.bus import Bus

LOG = logging.getLogger(__name__)
# what each power action leaves: (vm_state, power_state) with Nova's power state numbers
POWER_RESULT = {"stop": ("stopped", 4), "start": ("active", 1), "reboot-soft": ("active", 1),
                "reboot-hard": ("active", 1), "pause": ("paused", 3), "unpause": ("active", 1),
                "suspend": ("suspended", 7), "resume": ("active", 1)}


class ComputeAgent:
    def __init__(self, bus: Bus, host: str, driver: Driver, report_interval: float = 10.0) -> None:
        self.bus, self.host, self.driver, self.report_interval = bus, host, driver, report_interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.bus.serve(f"compute.{self.host}", self.handle)
        await self.report()
        self._task = asyncio.get_running_loop().create_task(self._heartbeat())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def report(self) -> None:
        info = self.driver.node_info()
        await self.bus.cast("conductor", "report_node", {"host": self.host, "node": asdict(info),
                                                          "instances": await self.driver.list_instances()})

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.report_interval)
            try:
                await self.report()
            except asyncio.CancelledError:
                raise
            except Exception:  # the bus may be down for a while: keep trying
                LOG.warning("heartbeat from %s failed", self.host, exc_info=True)

    async def handle(self, method: str, args: dict[str, Any]) -> Any:
        if method == "ping":
            return {"host": self.host}
        if method == "spawn":
            server = args["server"]
            try:
                await self.driver.spawn(server)
            except Exception as exc:  # the controller turns this into the server's fault
                LOG.exception("spawn of %s failed", server["id"])
                await self.bus.cast("conductor", "server_update", {"id": server["id"], "error": str(exc)})
                return None
            await self.bus.cast("conductor", "server_update", {"id": server["id"], "vm_state": "active",
                                                                "power_state": 1})
            return None
        if method == "power":
            server_id, action = args["server_id"], args["action"]
            try:
                await self.driver.power(server_id, action)
            except Exception as exc:
                LOG.warning("%s of %s failed: %s", action, server_id, exc)
                await self.bus.cast("conductor", "server_update", {"id": server_id, "action_failed": str(exc)})
                return None
            vm_state, power_state = POWER_RESULT[action]
            await self.bus.cast("conductor", "server_update", {"id": server_id, "vm_state": vm_state,
                                                                "power_state": power_state})
            return None
        if method == "destroy":
            await self.driver.destroy(args["server_id"])  # idempotent: unknown ids are fine
            return None
        raise ValueError(f"unknown method {method}")
