"""What each piece of the dataplane is called, so the agent, the compute driver and ``cumulo
network trace`` find the same things (Linux limits interface names to 15 characters).

    <prefix>-dp              the machine's bridges and server taps, security groups
    <prefix>-ext             the "outside" of external networks (the upstream gateway)
    <prefix>-dhcp-<net>      dnsmasq and the metadata proxy of one network
    <prefix>-router-<router> one router: its interfaces, routes and NAT
    brq<net:11>              the network's bridge (in -dp)
    tap<port:10><0|1>        a server's port (two names, so a live migration on one machine can
                             hold the old and the new tap at once)
    ve<port:11>              bridge end of a DHCP or router port's veth; ns-/qr-/qg-<port:11>
                             is the other end, in the DHCP or router namespace
    vx<net:11>, ex-<net:11>  an external network's link to the outside namespace
    vxlan-<vni>              a VXLAN network's tunnel to the other hosts (in -dp, on its bridge;
                             Neutron's linuxbridge agent's name)
"""

from __future__ import annotations

# how <prefix>-dp is set up, by the network agent or by a compute host plugging a port first
DP_SYSCTLS = {"net.bridge.bridge-nf-call-iptables": "1", "net.bridge.bridge-nf-call-ip6tables": "1",
              "net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}


class Names:
    def __init__(self, prefix: str = "cumulo") -> None:
        self.prefix = prefix

    @property
    def dp(self) -> str:
        return f"{self.prefix}-dp"

    @property
    def ext(self) -> str:
        return f"{self.prefix}-ext"

    def dhcp(self, network_id: str) -> str:
        return f"{self.prefix}-dhcp-{network_id}"

    def router(self, router_id: str) -> str:
        return f"{self.prefix}-router-{router_id}"


def bridge(network_id: str) -> str:
    return f"brq{network_id[:11]}"


def vxlan(vni: int) -> str:
    return f"vxlan-{vni}"


def taps(port_id: str) -> tuple[str, str]:
    return f"tap{port_id[:10]}0", f"tap{port_id[:10]}1"


def tap_prefix(port_id: str) -> str:
    """The iptables interface pattern matching either tap of the port."""
    return f"tap{port_id[:10]}+"


def bridge_end(port_id: str) -> str:
    return f"ve{port_id[:11]}"


def dhcp_end(port_id: str) -> str:
    return f"ns-{port_id[:11]}"


def router_end(port_id: str, gateway: bool = False) -> str:
    return f"{'qg' if gateway else 'qr'}-{port_id[:11]}"


def ext_ends(network_id: str) -> tuple[str, str]:
    """(bridge end in -dp, outside end in -ext)."""
    return f"vx{network_id[:11]}", f"ex-{network_id[:11]}"


def port_chains(port_id: str) -> tuple[str, str, str]:
    """iptables chains of a server port: into it, out of it, its source (anti-spoofing) check."""
    return f"ci-{port_id[:10]}", f"co-{port_id[:10]}", f"cs-{port_id[:10]}"
