"""The message bus between controllers and agents: RPC ("do this now") and events ("this happened").

Two implementations share one interface and one test-suite:

* ``memory://`` — in-process asyncio, for the single-process default cloud;
* ``amqp://...`` — RabbitMQ through aio-pika, for controllers and agents on many processes/nodes;
* ``unix:///path/bus.sock`` — a worker process's connection to its leader's hub (``local.py``):
  the embedded in-process bus, spanning the API workers of one ``cumulo up``.

Topics are dotted names (``identity.revoked``); subscribers may use ``*`` (one word) and ``#``
(any words) as in AMQP topic exchanges.  RPC targets are names (``compute.node-1``); a call
waits for one server's reply and raises ``RPCError`` with the remote error, or ``RPCTimeout``.
Payloads are JSON-serialisable dicts.
"""

from __future__ import annotations

from cumulo.core.bus.interface import (
    BUS_VERSION,
    Bus,
    EventHandler,
    IncompatibleMessage,
    RPCError,
    RPCHandler,
    RPCTimeout,
    TopicPattern,
)
from cumulo.core.bus.local import SocketBus
from cumulo.core.bus.memory import MemoryBus

__all__ = ["BUS_VERSION", "Bus", "EventHandler", "IncompatibleMessage", "RPCError",
           "RPCHandler", "RPCTimeout", "TopicPattern", "connect"]


def connect(url: str, rpc_timeout: float = 30.0, prefix: str = "cumulo") -> Bus:
    if url.startswith("memory:"):
        return MemoryBus(rpc_timeout)
    if url.startswith(("amqp:", "amqps:")):
        # aio-pika takes 0.2-0.3 s to import, and only a RabbitMQ bus needs it
        from cumulo.core.bus.rabbit import RabbitBus

        return RabbitBus(url, rpc_timeout, prefix)
    if url.startswith("unix:"):
        return SocketBus(url[len("unix://"):] if url.startswith("unix://") else url[len("unix:"):], rpc_timeout)
    raise ValueError(f"unsupported bus URL {url!r}: use memory:// or amqp://user:pass@host:5672/")
