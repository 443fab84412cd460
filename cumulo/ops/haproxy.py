"""An haproxy configuration that balances several controllers' APIs (docs/operations.md, "Controllers in HA").

Each API gets a frontend on the balancer's address and a backend of every controller's port for
it, checked with ``option httpchk GET /healthcheck`` (``cumulo.core.http.healthcheck``: 200 ``OK``,
503 when the controller drains, is disabled by file or has lost its database).  A controller
that stops answering is out within ``fall`` checks; a request whose connection is refused or
reset is sent again to another controller (``retries`` with ``option redispatch``), and a GET or
HEAD whose controller died before answering is retried there too (``retry-on empty-response``);
other methods are never sent twice by the balancer (a POST may have been done: the client decides).

``render`` returns the text; tests/functional/test_ha_controllers.py runs haproxy with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# the APIs a load balancer fronts, with the path their catalog entries add
SERVICES = ("identity", "compute", "network", "image", "placement", "volume")


@dataclass
class Balanced:
    name: str  # the API: identity, compute, ...
    bind: str  # where the balancer listens, "HOST:PORT"
    servers: Sequence[tuple[str, str]] = field(default_factory=list)  # (controller name, "HOST:PORT")


def render(balanced: Sequence[Balanced], *, check_interval_ms: int = 1000, fall: int = 2, rise: int = 2,
           stats_socket: str = "", log_stdout: bool = False, timeout_s: int = 120) -> str:
    """haproxy.cfg for ``balanced``; ``stats_socket`` adds an admin socket (``show stat``)."""
    glob = ["global", "    maxconn 4096"]
    if stats_socket:
        glob.append(f"    stats socket {stats_socket} mode 600 level admin")
    if log_stdout:
        glob.append("    log stdout format raw local0 info")
    defaults = [
        "defaults",
        "    mode http",
        *(["    log global", "    option httplog"] if log_stdout else []),
        "    option http-keep-alive",
        "    timeout connect 2s",
        f"    timeout client {timeout_s}s",
        f"    timeout server {timeout_s}s",
        "    timeout http-request 10s",
        "    timeout check 3s",  # /healthcheck gives the database 2 s
        "    retries 3",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response",
    ]
    out = ["\n".join(glob), "\n".join(defaults)]
    for b in balanced:
        lines = [f"frontend {b.name}", f"    bind {b.bind}", f"    default_backend {b.name}-controllers", "",
                 f"backend {b.name}-controllers",
                 "    balance roundrobin",
                 "    option httpchk GET /healthcheck",
                 "    http-check expect status 200",
                 # a request whose controller died after it was sent is retried elsewhere only when
                 # it changes nothing; refused connections are retried whatever the method
                 "    http-request disable-l7-retry unless METH_GET || METH_HEAD",
                 f"    default-server inter {check_interval_ms}ms fastinter {max(100, check_interval_ms // 2)}ms "
                 f"downinter {check_interval_ms}ms fall {fall} rise {rise}"]
        lines += [f"    server {name} {address} check" for name, address in b.servers]
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"
