"""DHCP for one network: a dnsmasq inside the network's DHCP namespace, answering only the ports
of the network (static hosts: a MAC gets its port's address and nothing else) and serving their
names under ``openstacklocal`` with no upstream DNS (``--no-resolv``).

Guests also learn a route to the metadata proxy (169.254.169.254 via the DHCP port, classless
static routes with the default route repeated, as RFC 3442 asks) and the network's MTU.

Files live in ``<state>/network/dhcp/<network>/``: hosts, opts, addn-hosts, leases, pid.  A
change of ports or subnets rewrites them and restarts dnsmasq.  dnsmasq runs on
its own, so it outlives an agent restart; the agent finds it again by its pid file.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from cumulo.network.dataplane.linux import pid_alive, pids_in, run

LOG = logging.getLogger(__name__)

METADATA_IP = "169.254.169.254"
LEASE = "86400s"


def hostname(port: dict[str, Any], ip: str) -> str:
    return port.get("dns_name") or "host-" + ip.replace(".", "-").replace(":", "-")


def files(network: dict[str, Any], ports: list[dict[str, Any]], dhcp_ips: dict[str, str]) -> dict[str, str]:
    """The contents of the hosts, opts and addn-hosts files for the network's dnsmasq.
    ``dhcp_ips`` is the DHCP port's address on each subnet."""
    subnets = {s["id"]: s for s in network["subnets"] if s.get("enable_dhcp")}
    hosts, names, opts = [], [], []
    for port in sorted(ports, key=lambda p: p["id"]):
        if port.get("device_owner") == "network:dhcp":
            continue
        for ip in port.get("ips", []):
            if ip["subnet_id"] not in subnets:
                continue
            name = hostname(port, ip["ip_address"])
            addr = ip["ip_address"] if ":" not in ip["ip_address"] else f"[{ip['ip_address']}]"
            hosts.append(f"{port['mac']},set:p-{port['id'][:8]},{name},{addr}")
            names.append(f"{ip['ip_address']}\t{name}.openstacklocal {name}")
        for opt in port.get("extra_dhcp_opts") or []:
            value = opt.get("opt_value")
            if opt.get("ip_version", 4) == 4 and value is not None:
                opts.append(f"tag:p-{port['id'][:8]},option:{opt['opt_name']},{value}")
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
        return pid_alive(self.dir / "pid", str(self.dir))

    async def ensure(self, network: dict[str, Any], ports: list[dict[str, Any]], interface: str,
                     dhcp_ips: dict[str, str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        changed = False
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
        pid = self.pid()
        if pid is not None and pid not in pids_in(self.namespace):
            LOG.warning("dnsmasq %s of network %s runs outside its namespace (it was removed): restarting it",
                        pid, self.network_id)
            changed = True
        if pid is not None and not changed and stamp.exists() and stamp.read_text() == digest:
            return
        # a change is a restart, not SIGHUP: dnsmasq 2.90 was seen to crash re-reading its files on
        # SIGHUP here; a restart takes milliseconds, keeps the leases file and clients retry
        await self.stop()
        await run("ip", "netns", "exec", self.namespace, *args)
        stamp.write_text(digest)

    async def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        import asyncio

        for _ in range(100):
            if self.pid() is None:
                return
            await asyncio.sleep(0.02)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    async def remove(self) -> None:
        await self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

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
