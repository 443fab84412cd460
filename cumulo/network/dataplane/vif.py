"""Plugging a server's port: the compute driver asks for a tap on the port's network bridge in
``<prefix>-dp`` and hands the open descriptor to QEMU (``-netdev tap,fd=N``), so the tap lives
exactly as long as that QEMU.  The namespace and the bridge are made here when the network agent
has not made them yet; both sides do it the same idempotent way.

This is the one host-side module of the network that a compute agent uses (as Nova uses os-vif):
``Vifs`` plugs ports, ``enabled`` says whether this machine runs the dataplane at all."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from cumulo.network.dataplane.linux import enabled, ensure_bridge, ensure_ns, links, open_tap, run
from cumulo.network.dataplane.names import DP_SYSCTLS, Names, bridge, taps

__all__ = ["Vifs", "enabled"]


class Vifs:
    def __init__(self, prefix: str = "cumulo") -> None:
        self.names = Names(prefix)

    async def plug(self, port: dict[str, Any]) -> tuple[int, str]:
        """An open tap for ``port`` (id, network_id, mtu), attached to its network's bridge."""
        dp = self.names.dp
        await ensure_ns(dp, DP_SYSCTLS)
        present = {link["name"]: link for link in await links(dp)}
        br = bridge(port["network_id"])
        mtu = str(port.get("mtu") or 1500)
        await ensure_bridge(dp, br, int(mtu), present.get(br))
        # the second name when the first is taken: a live migration on this machine holds both
        name = next((t for t in taps(port["id"]) if t not in present), None)
        if name is None:
            raise RuntimeError(f"port {port['id']} has two taps on this machine already")
        fd = await asyncio.to_thread(open_tap, dp, name)
        try:
            await run("ip", "-n", dp, "-batch", "-", input=f"link set {name} mtu {mtu}\n"
                      f"link set {name} master {br}\nlink set {name} up\n")
        except BaseException:
            os.close(fd)
            raise
        return fd, name

    async def counters(self, port_id: str) -> dict[str, Any] | None:
        """The traffic counters of the port's tap (the host's side: its rx is what the guest
        sent) and the tap's name; None when the port has no tap on this machine."""
        try:
            out = await run("ip", "-n", self.names.dp, "-s", "-j", "link", "show", check=False)
            found = {link.get("ifname"): link for link in json.loads(out or "[]")}
        except ValueError:
            return None
        for name in taps(port_id):
            link = found.get(name)
            if link is not None:
                stats = link.get("stats64") or link.get("stats") or {}
                rx, tx = stats.get("rx") or {}, stats.get("tx") or {}
                return {"name": name, **{f"rx_{k}": rx.get(k) for k in ("bytes", "packets", "errors", "dropped")},
                        **{f"tx_{k}": tx.get(k) for k in ("bytes", "packets", "errors", "dropped")}}
        return None
