"""The Network API's own store of networks, subnets and ports, with IP address management (used
inside cumulo/network only; other services call cumulo.network.service).

An address belongs to a port through one ``IPAllocation`` row whose primary key is (subnet,
address): two concurrent requests for the same address cannot both succeed, and automatic
allocation simply tries the next free address when it loses such a race.  Each network gets a
segment id (its VXLAN VNI) from a unique column the same way.
"""

from __future__ import annotations

import ipaddress
import random
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update

from cumulo.core.db import Database, IntegrityError, is_duplicate
from cumulo.core.http.faults import BadRequest, Conflict, NotFound
from cumulo.network import access, quotas
from cumulo.network.models import FloatingIP, IPAllocation, Network, Port, Subnet

__all__ = ["Ipam", "pools_of"]
SEGMENT_RANGE = (1, 16_000_000)
CHUNK = 500  # ids per IN list: PostgreSQL takes at most 32,767 parameters in one statement


def many(values: list[str]) -> Any:
    """An IN list of any length: bound parameters for a few values, literals (quoted by
    SQLAlchemy) for many, so no query runs out of parameters."""
    return bindparam(None, list(values), expanding=True, literal_execute=len(values) > CHUNK)


def pools_of(net: ipaddress.IPv4Network | ipaddress.IPv6Network, gateway: str | None) -> list[dict[str, str]]:
    """Neutron's default pool: every host address except the gateway (and, for IPv4, the network
    and broadcast addresses)."""
    hosts = list(_ends(net))
    if not hosts:
        return []
    first, last = hosts
    if gateway and ipaddress.ip_address(gateway) == first:
        first = first + 1
    if gateway and ipaddress.ip_address(gateway) == last:
        last = last - 1
    if first > last:
        return []
    pools = [(first, last)]
    if gateway and first < ipaddress.ip_address(gateway) < last:
        g = ipaddress.ip_address(gateway)
        pools = [(first, g - 1), (g + 1, last)]
    return [{"start": str(a), "end": str(b)} for a, b in pools]


def _ends(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Iterator[Any]:
    if net.version == 4 and net.prefixlen >= 31:
        return iter(())
    first = net.network_address + (1 if net.version == 4 else 1)
    last = net.broadcast_address - (1 if net.version == 4 else 0)
    return iter((first, last))


ROUTER_INTERFACE_OWNERS = ("network:router_interface", "network:router_interface_distributed",
                           "network:ha_router_replicated_interface")


def auto_addressed(subnet: Subnet) -> bool:
    return subnet.ip_version == 6 and subnet.ipv6_address_mode in ("slaac", "dhcpv6-stateless")


def eui64(net: ipaddress.IPv4Network | ipaddress.IPv6Network, mac: str) -> ipaddress.IPv6Address:
    """The address a SLAAC host forms from the /64 prefix and its MAC (RFC 4291, appendix A)."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    iid = int.from_bytes(bytes(octets[:3] + [0xFF, 0xFE] + octets[3:]), "big")
    return ipaddress.IPv6Address(int(net.network_address) | iid)


class Ipam:
    """Networks, subnets and ports as ORM rows, and the addresses of ports."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- lookups --------------------------------------------------------------------------------
    async def network(self, network_id: str, project: str | None, admin: bool) -> Network:
        if not isinstance(network_id, str):
            raise NotFound(f"Network {network_id} could not be found.", kind="NetworkNotFound")
        async with self.db.session() as s:
            row = await s.get(Network, network_id)
        if row is None:
            raise NotFound(f"Network {network_id} could not be found.", kind="NetworkNotFound")
        if not admin and row.project_id != project:
            granted = (await access.grants(self.db, [row.id], project or ""))[row.id]
            if not granted and not row.shared:
                raise NotFound(f"Network {network_id} could not be found.", kind="NetworkNotFound")
            # the network as this project sees it: shared when an RBAC entry shares it with the
            # project (as Neutron computes ``shared`` per caller); the row is detached, never saved
            row.shared = row.shared or access.SHARED in granted
        return row

    async def subnet(self, subnet_id: str, project: str | None, admin: bool) -> Subnet:
        if not isinstance(subnet_id, str):
            raise NotFound(f"Subnet {subnet_id} could not be found.", kind="SubnetNotFound")
        async with self.db.session() as s:
            row = await s.get(Subnet, subnet_id)
        if row is None:
            raise NotFound(f"Subnet {subnet_id} could not be found.", kind="SubnetNotFound")
        await self.network(row.network_id, project, admin)
        return row

    async def port(self, port_id: str, project: str | None, admin: bool) -> Port:
        if not isinstance(port_id, str):
            raise NotFound(f"Port {port_id} could not be found.", kind="PortNotFound")
        async with self.db.session() as s:
            row = await s.get(Port, port_id)
        if row is None or not (admin or row.project_id == project):
            raise NotFound(f"Port {port_id} could not be found.", kind="PortNotFound")
        return row

    async def count(self, model: Any, project: str) -> int:
        async with self.db.session() as s:
            return (await s.execute(select(func.count()).select_from(model).where(
                model.project_id == project))).scalar() or 0

    async def check_quota(self, resource: str, project: str, wanted: int = 1) -> None:
        """409 OverQuota unless ``wanted`` more of ``resource`` fit in the project's limit."""
        await quotas.check(self.db, resource, project, wanted)

    def quota_turn(self, resource: str, project: str) -> Any:
        """Check, create and commit ``resource`` of ``project`` inside this: racing creates take
        turns, so exactly as many succeed as the quota has room for."""
        return quotas.turn(self.db, resource, project)

    # -- networks --------------------------------------------------------------------------------
    async def create_network(self, values: dict[str, Any]) -> Network:
        wanted = values.pop("segment_id", None)
        for _ in range(20):
            row = Network(id=str(uuid.uuid4()), segment_id=wanted or random.randint(*SEGMENT_RANGE), **values)
            try:
                async with self.db.session() as s:
                    s.add(row)
                    await s.flush()
                    s.add_all(access.wildcard_entries(row))  # shared / router:external as RBAC entries
                return row
            except IntegrityError as exc:
                if not is_duplicate(exc):
                    raise
                if wanted:
                    raise Conflict(f"Unable to create the network. The tunnel ID {wanted} is in use.",
                                   kind="TunnelIdInUse") from None
                continue  # that segment id was taken meanwhile: another one
        raise Conflict("No free segment id could be allocated for the network.")

    async def delete_network(self, net: Network) -> None:
        """The network with its subnets and DHCP ports and, on an external network, the floating
        IPs no port uses (as Neutron); a port of any other kind (an associated floating IP's too)
        keeps it: 409 NetworkInUse."""
        async with self.db.session() as s:
            idle = list((await s.execute(select(FloatingIP.id, FloatingIP.floating_port_id).where(
                FloatingIP.floating_network_id == net.id, FloatingIP.port_id.is_(None)))).all())
            idle_ports = [port_id for _, port_id in idle]
            in_use = (await s.execute(select(func.count()).select_from(Port).where(
                Port.network_id == net.id, Port.device_owner != "network:dhcp",
                Port.id.not_in(many(idle_ports))))).scalar()
            if in_use:
                raise Conflict(f"Unable to complete operation on network {net.id}. There are one or more ports "
                               "still in use on the network.", kind="NetworkInUse")
            await s.execute(delete(FloatingIP).where(FloatingIP.id.in_(many([fip_id for fip_id, _ in idle]))))
            ports = list((await s.execute(select(Port.id).where(Port.network_id == net.id))).scalars())
            await s.execute(delete(IPAllocation).where(IPAllocation.network_id == net.id))
            await s.execute(delete(Port).where(Port.id.in_(ports)))
            await s.execute(delete(Subnet).where(Subnet.network_id == net.id))
            await access.forget(s, net.id)
            await s.execute(delete(Network).where(Network.id == net.id))

    # -- subnets -----------------------------------------------------------------------------------
    async def create_subnet(self, net: Network, values: dict[str, Any]) -> Subnet:
        cidr = ipaddress.ip_network(values["cidr"])
        async with self.db.session() as s:
            others = list((await s.execute(select(Subnet).where(Subnet.network_id == net.id))).scalars())
        for other in others:
            if ipaddress.ip_network(other.cidr).version == cidr.version and \
                    ipaddress.ip_network(other.cidr).overlaps(cidr):
                raise BadRequest(f"Invalid input for operation: Requested subnet with cidr: {cidr} for network: "
                                 f"{net.id} overlaps with another subnet.")
        row = Subnet(id=str(uuid.uuid4()), network_id=net.id, **values)
        async with self.db.session() as s:
            s.add(row)
        return row

    async def delete_subnet(self, subnet: Subnet) -> None:
        """The subnet and every address from it, as Neutron: refused (409 SubnetInUse) while a
        router has an interface on it, or while a port other than DHCP's holds an address from it
        -- except on a SLAAC or DHCPv6-stateless subnet, whose addresses the hosts form themselves:
        those ports simply lose that address."""
        async with self.db.session() as s:
            users = select(IPAllocation.port_id).join(Port, Port.id == IPAllocation.port_id).where(
                IPAllocation.subnet_id == subnet.id, Port.device_owner != "network:dhcp")
            if auto_addressed(subnet):
                users = users.where(Port.device_owner.in_(ROUTER_INTERFACE_OWNERS))
            used = (await s.execute(users.limit(1))).first()
            if used:
                raise Conflict(f"Unable to complete operation on subnet {subnet.id}: One or more ports have an IP "
                               "allocation from this subnet.", kind="SubnetInUse")
            await s.execute(delete(IPAllocation).where(IPAllocation.subnet_id == subnet.id))
            await s.execute(delete(Subnet).where(Subnet.id == subnet.id))

    # -- ports and addresses ---------------------------------------------------------------------
    async def allocations(self, port_ids: list[str]) -> dict[str, list[dict[str, str]]]:
        out: dict[str, list[dict[str, str]]] = {p: [] for p in port_ids}
        if not port_ids:
            return out
        async with self.db.session() as s:
            for start in range(0, len(port_ids), CHUNK):  # a bounded number of parameters per query
                rows = (await s.execute(select(IPAllocation).where(
                    IPAllocation.port_id.in_(port_ids[start:start + CHUNK])))).scalars()
                for a in rows:
                    out[a.port_id].append({"subnet_id": a.subnet_id, "ip_address": a.ip_address})
        return out

    async def _take(self, port: Port, subnet: Subnet, address: str | None) -> str:
        """One address of ``subnet`` for ``port``: the one asked for, or the first free one; on
        an IPv6 subnet whose hosts configure themselves (SLAAC), the EUI-64 address of its MAC."""
        net = ipaddress.ip_network(subnet.cidr)
        if address is None and auto_addressed(subnet) and port.device_owner != "network:router_interface":
            address = str(eui64(net, port.mac_address))
        if address is not None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                raise BadRequest(f"Invalid input for operation: '{address}' is not a valid IP address.") from None
            if ip not in net or (net.version == 4 and ip in (net.network_address, net.broadcast_address)):
                raise BadRequest(f"IP address {address} is not a valid IP for the specified subnet.",
                                 kind="InvalidIpForSubnet")
            try:
                async with self.db.session() as s:
                    s.add(IPAllocation(subnet_id=subnet.id, ip_address=str(ip), port_id=port.id,
                                       network_id=port.network_id))
            except IntegrityError as exc:
                if not is_duplicate(exc):
                    raise
                raise Conflict(f"IP address {ip} already allocated in subnet {subnet.id}",
                               kind="IpAddressAlreadyAllocated") from None
            return str(ip)
        async with self.db.session() as s:
            taken = set((await s.execute(select(IPAllocation.ip_address).where(
                IPAllocation.subnet_id == subnet.id))).scalars())
        for pool in subnet.allocation_pools or []:
            ip = ipaddress.ip_address(pool["start"])
            end = ipaddress.ip_address(pool["end"])
            while ip <= end:
                if str(ip) not in taken:
                    try:
                        async with self.db.session() as s:
                            s.add(IPAllocation(subnet_id=subnet.id, ip_address=str(ip), port_id=port.id,
                                               network_id=port.network_id))
                        return str(ip)
                    except IntegrityError as exc:
                        if not is_duplicate(exc):
                            raise
                        # taken by a concurrent request: the next one
                ip += 1
        raise Conflict(f"No more IP addresses available on network {port.network_id}.",
                       kind="IpAddressGenerationFailure")

    async def assign(self, port: Port, fixed_ips: list[dict[str, Any]] | None, project: str | None,
                     admin: bool) -> None:
        """Give the port its addresses: the ones asked for, else one from each IPv4 subnet and
        each IPv6 subnet of the network (Neutron's default).  All or nothing."""
        async with self.db.session() as s:
            subnets = {x.id: x for x in (await s.execute(select(Subnet).where(
                Subnet.network_id == port.network_id).order_by(Subnet.created_at))).scalars()}
        wanted: list[tuple[Subnet, str | None]] = []
        if fixed_ips is None:
            seen_v: set[int] = set()
            for sub in subnets.values():
                if sub.ip_version not in seen_v or sub.ip_version == 6:
                    wanted.append((sub, None))
                    seen_v.add(sub.ip_version)
        else:
            for item in fixed_ips:
                if not isinstance(item, dict):
                    raise BadRequest("Invalid input for fixed_ips: a list of {subnet_id, ip_address}.")
                sub_id, address = item.get("subnet_id"), item.get("ip_address")
                if address is not None:
                    try:
                        ipaddress.ip_address(address if isinstance(address, str) else "-")
                    except ValueError:
                        raise BadRequest(f"Invalid input for fixed_ips. Reason: '{address}' is not a valid IP "
                                         "address.", kind="InvalidInput") from None
                if sub_id is not None and not isinstance(sub_id, str):
                    raise BadRequest(f"Invalid input for fixed_ips. Reason: '{sub_id}' is not a subnet id.",
                                     kind="InvalidInput")
                if sub_id is None and address is not None:
                    sub_id = next((x.id for x in subnets.values() if ipaddress.ip_address(address)
                                   in ipaddress.ip_network(x.cidr)), None)
                    if sub_id is None:
                        raise BadRequest(f"IP address {address} is not a valid IP for any subnet of the network.",
                                         kind="InvalidIpForNetwork")
                if sub_id not in subnets:
                    raise BadRequest(f"Invalid input for operation: subnet {sub_id} is not on network "
                                     f"{port.network_id}.")
                wanted.append((subnets[sub_id], address))
        taken: list[tuple[str, str]] = []
        try:
            for sub, address in wanted:
                taken.append((sub.id, await self._take(port, sub, address)))
        except Exception:
            await self.release(port.id, taken)
            raise

    async def release(self, port_id: str, only: list[tuple[str, str]] | None = None) -> None:
        async with self.db.session() as s:
            if only is None:
                await s.execute(delete(IPAllocation).where(IPAllocation.port_id == port_id))
            for subnet_id, address in only or []:
                await s.execute(delete(IPAllocation).where(IPAllocation.subnet_id == subnet_id,
                                                           IPAllocation.ip_address == address))

    async def create_port(self, values: dict[str, Any], fixed_ips: list[dict[str, Any]] | None, project: str | None,
                          admin: bool) -> Port:
        """The port and its addresses.  The addresses are taken first (an allocation names its port
        by id, no foreign key) and the port row goes in last, so whoever reads the database (an API
        list, a backup's snapshot) sees a port only with its addresses."""
        mac = values.pop("mac_address", None)
        for _ in range(10):
            generated = "fa:16:3e:" + ":".join(f"{random.randint(0, 255):02x}" for _ in range(3))
            port = Port(id=str(uuid.uuid4()), mac_address=mac or generated, **values)
            if mac:
                async with self.db.session() as s:  # a MAC asked for: refused before any address is taken
                    if (await s.execute(select(Port.id).where(Port.mac_address == mac))).first():
                        raise Conflict(f"Unable to complete operation for network {values['network_id']}. The mac "
                                       f"address {mac} is in use.", kind="MacAddressInUse")
            await self.assign(port, fixed_ips, project, admin)
            try:
                async with self.db.session() as s:
                    s.add(port)
                return port
            except IntegrityError as exc:
                await self.release(port.id)
                if not is_duplicate(exc):
                    raise
                if mac:
                    raise Conflict(f"Unable to complete operation for network {values['network_id']}. The mac "
                                   f"address {mac} is in use.", kind="MacAddressInUse") from None
            except BaseException:
                await self.release(port.id)
                raise
        raise Conflict("No free MAC address could be generated.")

    async def delete_port(self, port: Port) -> None:
        async with self.db.session() as s:
            await s.execute(delete(IPAllocation).where(IPAllocation.port_id == port.id))
            await s.execute(delete(Port).where(Port.id == port.id))
        async with self.db.session() as s:  # Neutron disassociates floating IPs from a port that goes away
            await s.execute(update(FloatingIP).where(FloatingIP.port_id == port.id).values(
                port_id=None, fixed_ip_address=None, router_id=None))
