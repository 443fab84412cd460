"""DHCP for one network: a dnsmasq inside the network's DHCP namespace, answering only the ports
of the network (static hosts: a MAC gets its port's address and nothing else) and serving their
names under ``openstacklocal`` with no upstream DNS (``--no-resolv``).

Guests also learn a route to the metadata proxy (169.254.169.254 via the DHCP port, classless
static routes with the default route repeated, as RFC 3442 asks) and the network's MTU.

Files live in ``<state>/network/dhcp/<network>/``: hosts, opts, addn-hosts, leases, pid.  A
change of ports or subnets rewrites them and restarts dnsmasq.  dnsmasq runs on
its own, so it outlives an agent restart; the agent finds it again by its pid file.

Leases: the leases file outlives dnsmasq restarts, so a lease of a port that is gone (or whose
MAC changed) would keep its address from the next port given it for the lease time: dnsmasq
answers that port with nothing ("not using configured address ... because it is leased to" the
old MAC).  Every reconcile drops the leases no port of the network owns (its MAC with its
address), see ``stale_leases``.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import os
import re
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from cumulo.network.dataplane.linux import pid_alive, pids_in, run

LOG = logging.getLogger(__name__)

METADATA_IP = "169.254.169.254"
LEASE = "86400s"


# what may go into dnsmasq's files from a tenant's port: one line per entry and comma-separated
# fields, so a name or option with a newline or a comma could write another port's entry
# (another MAC given a victim's address); anything else is left out, with a warning
LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
OPTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
MAC = re.compile(r"^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$")


def hostname(port: dict[str, Any], ip: str) -> str:
    name = str(port.get("dns_name") or "").rstrip(".").split(".")[0]
    if name and not LABEL.match(name):
        LOG.warning("port %s: dns_name %r is not a host name; DHCP names it by its address", port.get("id"),
                    port.get("dns_name"))
        name = ""
    return name or "host-" + ip.replace(".", "-").replace(":", "-")


def option_line(port: dict[str, Any], opt: dict[str, Any]) -> str | None:
    """The dhcp-optsfile line of one of the port's extra DHCP options, None when it cannot be one."""
    name, value = str(opt.get("opt_name", "")), opt.get("opt_value")
    if value is None or opt.get("ip_version", 4) != 4:
        return None
    text = str(value)
    if not OPTION_NAME.match(name) or any(c in text for c in "\r\n\0"):
        LOG.warning("port %s: extra DHCP option %r is not one dnsmasq can take; left out", port.get("id"), name)
        return None
    return f"tag:p-{port['id'][:8]},option:{name},{text}"


def files(network: dict[str, Any], ports: list[dict[str, Any]], dhcp_ips: dict[str, str]) -> dict[str, str]:
    """The contents of the hosts, opts and addn-hosts files for the network's dnsmasq.
    ``dhcp_ips`` is the DHCP port's address on each subnet."""
    subnets = {s["id"]: s for s in network["subnets"] if s.get("enable_dhcp")}
    hosts, names, opts = [], [], []
    for port in sorted(ports, key=lambda p: p["id"]):
        if port.get("device_owner") == "network:dhcp":
            continue
        if not MAC.match(str(port.get("mac", ""))):
            LOG.warning("port %s: MAC %r is not one; DHCP leaves the port out", port.get("id"), port.get("mac"))
            continue
        for ip in port.get("ips", []):
            if ip["subnet_id"] not in subnets:
                continue
            name = hostname(port, ip["ip_address"])
            addr = ip["ip_address"] if ":" not in ip["ip_address"] else f"[{ip['ip_address']}]"
            hosts.append(f"{port['mac']},set:p-{port['id'][:8]},{name},{addr}")
            names.append(f"{ip['ip_address']}\t{name}.openstacklocal {name}")
        for opt in port.get("extra_dhcp_opts") or []:
            line = option_line(port, opt) if isinstance(opt, dict) else None
            if line is not None:
                opts.append(line)
    for sub in subnets.values():
        tag = f"tag:s-{sub['id'][:8]}"
        if sub["ip_version"] != 4:
            continue
        gw = sub.get("gateway_ip")
        opts.append(f"{tag},option:router" + (f",{gw}" if gw else ""))
        routes = []
        if sub["id"] in dhcp_ips:
            routes.append(f"{METADATA_IP}/32,{dhcp_ips[sub['id']]}")
        routes += [f"{r['destination']},{r['nexthop']}" for r in sub.get("host_routes") or []]
        if gw:
            routes.append(f"0.0.0.0/0,{gw}")
        if routes:
            opts.append(f"{tag},option:classless-static-route," + ",".join(routes))
        servers = sub.get("dns_nameservers") or ([dhcp_ips[sub["id"]]] if sub["id"] in dhcp_ips else [])
        opts.append(f"{tag},option:dns-server" + ("," + ",".join(servers) if servers else ""))
        opts.append(f"{tag},option:mtu,{network.get('mtu') or 1500}")
    return {"hosts": "\n".join(hosts) + "\n", "opts": "\n".join(opts) + "\n", "addn-hosts": "\n".join(names) + "\n"}


def write_private(path: Path, text: str) -> None:
    """``path`` holds ``text`` (mode 0600), replaced atomically."""
    tmp = path.with_suffix(".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def owners(ports: list[dict[str, Any]]) -> dict[str, str]:
    """Address -> the MAC of the port that holds it (the ports of one network)."""
    return {ip["ip_address"]: str(port["mac"]).lower() for port in ports
            if port.get("device_owner") != "network:dhcp" for ip in port.get("ips", [])}


def hosts_owners(text: str) -> dict[str, str]:
    """Address -> MAC, as a hosts file written by ``files`` says."""
    out = {}
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) >= 4:
            out[parts[-1].strip("[]")] = parts[0].lower()
    return out


def stale_leases(text: str, owner_of: dict[str, str], moved: set[str] | frozenset[str] = frozenset()
                 ) -> tuple[str, list[str]]:
    """The leases file ``text`` without the leases no port owns, and the lines dropped.

    An IPv4 lease (``expiry MAC address name client-id``) is owned when a port holds its
    address with its MAC.  After the ``duid`` line come the IPv6 leases (``expiry IAID address
    name client-DUID``), which name no MAC (a DUID may carry the MAC of the guest's other NIC):
    owned when a port holds the address and the address has not ``moved`` to another port."""
    kept, dropped = [], []
    v6 = False
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] == ["duid"]:
            v6 = True
            kept.append(line)
            continue
        if len(parts) < 3:
            dropped.append(line)
            continue
        address = parts[2].strip("[]")
        mac = owner_of.get(address)
        if v6:
            owned = mac is not None and address not in moved
        else:
            owned = mac is not None and parts[1].lower() == mac
        (kept if owned else dropped).append(line)
    if kept == [line for line in kept if line.startswith("duid ")]:
        kept = []  # only the server's DUID: nothing to keep
    return "".join(f"{line}\n" for line in kept), dropped


def arguments(network: dict[str, Any], interface: str, d: Path) -> list[str]:
    args = ["dnsmasq", "--no-hosts", "--no-resolv", "--conf-file=/dev/null", "--strict-order",
            "--except-interface=lo", f"--interface={interface}", "--bind-interfaces",
            f"--pid-file={d / 'pid'}", f"--dhcp-hostsfile={d / 'hosts'}", f"--dhcp-optsfile={d / 'opts'}",
            f"--addn-hosts={d / 'addn-hosts'}", f"--dhcp-leasefile={d / 'leases'}", "--dhcp-authoritative",
            "--domain=openstacklocal", "--local=/openstacklocal/", "--user=root", "--group=root",
            "--dhcp-no-override", "--log-facility=" + str(d / "dnsmasq.log")]
    count = 0
    for sub in network["subnets"]:
        if not sub.get("enable_dhcp"):
            continue
        net = ipaddress.ip_network(sub["cidr"])
        tag = f"set:s-{sub['id'][:8]}"
        if net.version == 4:
            args.append(f"--dhcp-range={tag},{net.network_address},static,{net.netmask},{LEASE}")
        elif sub.get("ipv6_address_mode") == "dhcpv6-stateful":
            args.append(f"--dhcp-range={tag},{net.network_address},static,{net.prefixlen},{LEASE}")
        elif sub.get("ipv6_address_mode") == "dhcpv6-stateless":
            args.append(f"--dhcp-range={tag},{net.network_address},ra-stateless,{net.prefixlen}")
        count += min(net.num_addresses, 1 << 16)
    args.append(f"--dhcp-lease-max={max(count, 16)}")
    return args


class DhcpServer:
    """The dnsmasq of one network."""

    def __init__(self, root: Path, network_id: str, namespace: str) -> None:
        self.network_id, self.namespace = network_id, namespace
        self.dir = root / network_id

    def pid(self) -> int | None:
        """Our dnsmasq: by its pid file, or, when the file is gone or unreadable, by its command
        line among the namespace's processes (one whose pid file was lost is found and stopped,
        not left holding the DHCP port while every new start fails)."""
        pid = pid_alive(self.dir / "pid", str(self.dir))
        if pid is not None:
            return pid
        marker = f"--pid-file={self.dir / 'pid'}".encode()
        for candidate in pids_in(self.namespace):
            try:
                if marker in Path(f"/proc/{candidate}/cmdline").read_bytes().split(b"\0"):
                    return candidate
            except OSError:
                continue
        return None

    async def ensure(self, network: dict[str, Any], ports: list[dict[str, Any]], interface: str,
                     dhcp_ips: dict[str, str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        changed = False
        owner_of = owners(ports)
        # addresses now held by another MAC than the hosts file said: their IPv6 leases (which
        # name no MAC) are the old port's; noted in a file until the leases are pruned, so a
        # restart that fails this round still drops them in the next
        released = self.dir / "released"
        before = hosts_owners((self.dir / "hosts").read_text()) if (self.dir / "hosts").exists() else {}
        moved = {ip for ip, mac in before.items() if ip in owner_of and owner_of[ip] != mac}
        if released.exists():
            moved |= set(released.read_text().split())
        if moved:
            write_private(released, "\n".join(sorted(moved)) + "\n")
        for name, text in files(network, ports, dhcp_ips).items():
            path = self.dir / name
            if not path.exists() or path.read_text() != text:
                tmp = path.with_suffix(".part")
                tmp.write_text(text)
                os.replace(tmp, path)
                changed = True
        args = arguments(network, interface, self.dir)
        digest = hashlib.sha256("\0".join(args).encode()).hexdigest()
        stamp = self.dir / "args"
        _, stale = stale_leases(self._read_leases(), owner_of, moved)
        if stale:
            LOG.info("network %s: dropping %d DHCP leases no port owns (its port is gone or its MAC changed): %s",
                     self.network_id, len(stale), "; ".join(stale[:5]))
            changed = True
        pid = self.pid()
        if pid is not None and pid not in pids_in(self.namespace):
            LOG.warning("dnsmasq %s of network %s runs outside its namespace (it was removed): restarting it",
                        pid, self.network_id)
            changed = True
        if pid is not None and not changed and stamp.exists() and stamp.read_text() == digest:
            if released.exists():  # no lease of the old ports is left: the note is done with
                released.unlink()
            return
        # a change is a restart, not SIGHUP: dnsmasq 2.90 was seen to crash re-reading its files on
        # SIGHUP here; a restart takes milliseconds, keeps the leases file and clients retry.
        # Leases no port owns go from the file while dnsmasq is stopped, rather than by
        # dhcp_release as Neutron does: the restart happens anyway on every change of ports,
        # dnsmasq reads the file afresh when it starts (nothing can race the edit), and
        # dhcp_release is an unacknowledged packet sent from inside the namespace that needs
        # dnsmasq-utils and a running dnsmasq, and is lost when dnsmasq is down at that moment.
        await self.stop()
        kept, _ = stale_leases(self._read_leases(), owner_of, moved)  # what dnsmasq wrote until it stopped
        if kept != self._read_leases():
            write_private(self.dir / "leases", kept)
        if moved:
            released.unlink()
        await run("ip", "netns", "exec", self.namespace, *args)
        stamp.write_text(digest)

    def _read_leases(self) -> str:
        try:
            return (self.dir / "leases").read_text()
        except FileNotFoundError:
            return ""

    async def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self.pid() is None:
                    return
                await asyncio.sleep(0.02)
        raise RuntimeError(f"dnsmasq {pid} of network {self.network_id} is still there after SIGKILL")

    async def remove(self) -> None:
        await self.stop()

        def gone_is_fine(fn: Any, path: str, info: Any) -> None:
            if not isinstance(info[1], FileNotFoundError):  # a real failure leaks the files: say so
                raise info[1]

        shutil.rmtree(self.dir, onerror=gone_is_fine)

    def leases(self) -> list[dict[str, str]]:
        """dnsmasq's lease file: expiry, MAC, address, host name."""
        out = []
        try:
            lines = (self.dir / "leases").read_text().splitlines()
        except OSError:
            return out
        for line in lines:
            parts = line.split()
            if len(parts) >= 4 and not line.startswith("duid"):
                out.append({"expires": parts[0], "mac": parts[1], "ip": parts[2], "hostname": parts[3]})
        return out
