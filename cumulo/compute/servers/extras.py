"""Interfaces attached and detached on a running server, rescue and unrescue, backups with
rotation, and diagnostics, as Nova does them."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update

from cumulo.compute.models import BlockDeviceMapping, Server
from cumulo.compute.servers.base import RUNNING, SNAPSHOT_STATES
from cumulo.core import context
from cumulo.core.http.faults import BadRequest, Conflict, Fault, Forbidden, NotFound
from cumulo.image.service import Caller
from cumulo.network.service import OverQuota

LOG = logging.getLogger(__name__)
INTERFACE_STATES = ("active", "paused", "stopped")


class Extras:
    # -- interfaces ---------------------------------------------------------------------------------
    async def _user(self, server: Server) -> str | None:
        ctx = context.current.get()
        return ctx.auth.user_id if ctx and ctx.auth else server.user_id

    def _interface_state(self, server: Server, action: str) -> None:
        if server.vm_state not in INTERFACE_STATES or server.task_state:
            raise Conflict(f"Cannot '{action}' instance {server.id} while it is in vm_state {server.vm_state}"
                           + (f" and task_state {server.task_state}" if server.task_state else ""))

    async def attach_interface(self, server: Server, net_id: str | None, port_id: str | None,
                               fixed_ip: str | None, admin: bool) -> dict[str, Any]:
        """A port on ``net_id`` made for the server (or the given ``port_id``), bound to its host and
        plugged into the guest before this returns; undone when the guest cannot take it."""
        if self.network is None:
            raise BadRequest("This cloud runs no network service: there is nothing to attach.")
        self._interface_state(server, "attach_interface")
        if port_id:
            port = await self.network.port(port_id, server.project_id, admin)  # 404 PortNotFound
            if port.device_id:
                raise Conflict(f"Port {port.id} is still in use.")
            entry: dict[str, Any] = {"port": port.id}
        else:
            if not net_id:
                choice = await self.network.auto_network_candidates(server.project_id)
                if len(choice) > 1:
                    raise BadRequest("Multiple possible networks found, use a Network ID to be more specific.")
                if not choice:
                    raise BadRequest("No specific network was requested and none are available for project "
                                     f"'{server.project_id}'.")
                net_id = choice[0]
            net = await self.network.network(net_id, server.project_id, admin)  # 404 NetworkNotFound
            if net.external and not admin:
                raise Forbidden(f"Network {net.id} is external: only an admin attaches servers to it.")
            entry = {"uuid": net.id, **({"fixed_ip": fixed_ip} if fixed_ip else {})}
        action_id = await self.record(server.id, "attach_interface", server.project_id, await self._user(server))
        request = dict(server.request or {})
        try:
            claim = await self.network.allocate_ports(server.id, server.project_id, server.availability_zone,
                                                      [entry], request.get("security_groups") or ["default"])
        except OverQuota:
            raise Forbidden("Maximum number of ports exceeded.") from None
        new_id = claim.ports[0]
        try:
            await self.network.bind_ports(server.id, server.host)
            port_info = next(p for p in await self.network.ports_for_server(server.id) if p["id"] == new_id)
            if server.host:
                await self.bus.call(f"compute.{server.host}", "attach_interface",
                                    {"server_id": server.id, "port": port_info}, timeout=90)
        except Exception as exc:
            await self.event(action_id, "compute_attach_interface", server.host, None, str(exc) or type(exc).__name__)
            await self.network.detach_port(server.id, new_id, keep=bool(port_id))
            if isinstance(exc, Fault):
                raise
            LOG.warning("attaching port %s to %s failed: %s", new_id, server.id, exc)
            raise Fault(f"Failed to attach network adapter device to {server.id}", code=500) from None
        await self.event(action_id, "compute_attach_interface", server.host, None)
        request["ports"] = [*request.get("ports", []), new_id]
        if port_id:  # handed back, not deleted, when the server goes (as a port given at boot is)
            request["networks"] = [*(request.get("networks") or []), {"port": new_id}] \
                if isinstance(request.get("networks"), list) else [{"port": new_id}]
        await self._set_request(server.id, request)
        return port_info

    async def _set_request(self, server_id: str, request: dict[str, Any]) -> None:
        async with self.db.session() as s:
            await s.execute(update(Server).where(Server.id == server_id).values(request=request))

    @staticmethod
    def _given(server: Server, port_id: str) -> bool:
        wanted = (server.request or {}).get("networks")
        return isinstance(wanted, list) and any(isinstance(e, dict) and e.get("port") == port_id for e in wanted)

    async def detach_interface(self, server: Server, port_id: str) -> None:
        """The NIC leaves the guest (asynchronously, as in Nova: 202), then the port is deleted or,
        if the server was given it, handed back."""
        self._interface_state(server, "detach_interface")
        if not any(p["id"] == port_id for p in await self.ports_of(server.id)):
            raise NotFound(f"Port {port_id} is not attached")
        action_id = await self.record(server.id, "detach_interface", server.project_id, await self._user(server))
        if not server.host:
            await self._interface_gone(server.id, port_id)
            return
        await self.cast(server.host, "detach_interface", {"server_id": server.id, "port_id": port_id},
                        "detach_interface", server.id, action_id, port_id=port_id)

    async def _done_detach_interface(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                                     error: str | None) -> None:
        if error:
            LOG.warning("detaching port %s from %s failed: %s", ctx.get("port_id"), server_id, error)
            return
        await self._interface_gone(server_id, ctx["port_id"])

    async def _interface_gone(self, server_id: str, port_id: str) -> None:
        server = await self.get(server_id)
        if server is None or self.network is None:
            return
        given = self._given(server, port_id)
        await self.network.detach_port(server_id, port_id, keep=given)
        request = dict(server.request or {})
        request["ports"] = [p for p in request.get("ports") or [] if p != port_id]
        if isinstance(request.get("networks"), list):
            request["networks"] = [e for e in request["networks"] if not (isinstance(e, dict)
                                                                          and e.get("port") == port_id)]
        await self._set_request(server_id, request)

    # -- rescue -------------------------------------------------------------------------------------
    async def rescue(self, server: Server, image_id: str, properties: dict[str, Any], stable: bool) -> None:
        if not server.host:
            raise Conflict(f"Cannot 'rescue' instance {server.id}: it runs on no host.")
        action_id = await self.begin(server, "rescue", ("active", "stopped", "error"), "rescuing")
        await self.cast(server.host, "rescue", {"server": await self.payload(server.id), "image_id": image_id,
                                                "properties": properties, "stable": stable},
                        "rescue", server.id, action_id)

    async def _done_rescue(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                           error: str | None) -> None:
        if error:
            await self.fail(server_id, error, "Instance rescue failed.", None, "compute_rescue_instance")
            return
        await self.settle(server_id, vm_state="rescued", power_state=RUNNING)

    async def unrescue(self, server: Server) -> None:
        action_id = await self.begin(server, "unrescue", ("rescued",), "unrescuing")
        await self.cast(server.host or "", "unrescue", {"server_id": server.id}, "unrescue", server.id, action_id)

    async def _done_unrescue(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                             error: str | None) -> None:
        if error:
            await self.fail(server_id, error, "Instance unrescue failed.", None, "compute_unrescue_instance")
            return
        await self.settle(server_id, vm_state="active", power_state=RUNNING)

    # -- backups ------------------------------------------------------------------------------------
    async def backup(self, server: Server, image_id: str, token: str, backup_type: str, rotation: int) -> None:
        """createBackup: a snapshot into ``image_id``; once it is uploaded the server's backups of
        ``backup_type`` beyond the newest ``rotation`` are deleted."""
        action_id = await self.begin(server, "createBackup", SNAPSHOT_STATES, "image_backup")
        await self.cast(server.host or "", "snapshot", {"server_id": server.id, "image_id": image_id,
                                                         "image_url": self.image_url, "token": token},
                        "backup", server.id, action_id, image_id=image_id, backup_type=backup_type,
                        rotation=rotation)

    async def _done_backup(self, server_id: str, ctx: dict[str, Any], args: dict[str, Any],
                           error: str | None) -> None:
        if error:
            await self.settle(server_id)
            if ctx.get("image_id"):
                await self._drop_image(ctx["image_id"], server_id)
            return
        try:  # rotated before the server is idle again, so whoever waits for that sees the result
            await self.rotate_backups(server_id, str(ctx.get("backup_type")), int(ctx.get("rotation") or 0))
        finally:
            await self.settle(server_id)

    async def rotate_backups(self, server_id: str, backup_type: str, rotation: int) -> None:
        if self.images is None:
            return
        backups = await self.images.image_infos(Caller(None, True, ""), {"properties": {
            "instance_uuid": server_id, "image_type": "backup", "backup_type": backup_type}})
        backups.sort(key=lambda i: (i.created_at, i.id), reverse=True)
        for old in backups[rotation:]:
            LOG.info("backup %s of server %s rotated out (%s, rotation %d)", old.id, server_id, backup_type,
                     rotation)
            await self._drop_image(old.id)

    # -- diagnostics --------------------------------------------------------------------------------
    async def diagnostics(self, server: Server) -> dict[str, Any]:
        if not server.host or server.vm_state in ("building", "shelved_offloaded"):
            raise Conflict(f"Instance {server.id} is not ready yet: it has no diagnostics.")
        try:
            out: dict[str, Any] = await self.bus.call(f"compute.{server.host}", "diagnostics",
                                                      {"server_id": server.id}, timeout=30)
        except Exception as exc:
            raise Conflict(f"The compute host {server.host} did not return the diagnostics: {exc}") from None
        return out

    # -- the request's settings -----------------------------------------------------------------------
    async def set_request(self, server_id: str, **values: Any) -> None:
        """Keep settings the server was asked for (OS-DCF:diskConfig, ...) in its request."""
        server = await self.get(server_id)
        if server is not None:
            await self._set_request(server_id, {**(server.request or {}), **values})

    # -- device tags ----------------------------------------------------------------------------------
    async def device_metadata(self, server: Server) -> list[dict[str, Any]]:
        """The metadata's ``devices``: each tagged NIC (tagged in the create's networks, 2.32/2.42,
        or in an interface attach, 2.49) and each tagged volume, as Nova lists them.  The PCI
        address Nova adds is left out: the guest's firmware numbers the buses behind the root ports."""
        request = server.request or {}
        tags = {**(request.get("port_tags") or {}), **((server.system_meta or {}).get("interface_tags") or {})}
        out: list[dict[str, Any]] = []
        if tags:
            for port in await self.ports_of(server.id):
                if tags.get(port["id"]):
                    out.append({"type": "nic", "bus": "pci", "mac": port["mac_address"], "tags": [tags[port["id"]]]})
        async with self.db.session() as s:
            rows = (await s.execute(select(BlockDeviceMapping).where(
                BlockDeviceMapping.server_id == server.id, BlockDeviceMapping.tag.is_not(None),
                BlockDeviceMapping.status == "attached"))).scalars()
            for row in rows:
                out.append({"type": "disk", "bus": "virtio", "serial": row.volume_id, "path": row.device_name,
                            "tags": [row.tag]})
        return out

    # -- multinic (up to 2.43) ------------------------------------------------------------------------
    async def add_fixed_ip(self, server: Server, network_id: str) -> None:
        if self.network is None:
            raise BadRequest("This cloud runs no network service.")
        await self.record(server.id, "addFixedIp", server.project_id, await self._user(server))
        if await self.network.add_fixed_ip(server.id, network_id) is None:
            raise BadRequest(f"No fixed IP addresses available for network: {network_id}")

    async def remove_fixed_ip(self, server: Server, address: str) -> None:
        if self.network is None:
            raise BadRequest("This cloud runs no network service.")
        await self.record(server.id, "removeFixedIp", server.project_id, await self._user(server))
        if not await self.network.remove_fixed_ip(server.id, address):
            raise BadRequest(f"Instance {server.id} does not have fixed IP '{address}'.")
