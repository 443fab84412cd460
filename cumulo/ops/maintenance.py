"""Planned maintenance of a compute node: ``cumulo node maintenance start|stop HOST``.

It does what an operator does with the ``openstack`` CLI (the Operations Guide's "Planned
maintenance", Nova's ``host-evacuate-live`` and ``host-servers-migrate``), through the Compute API
with a clouds.yaml entry's credentials, so it runs from anywhere and the API's policy decides:

1. disable the host's compute service with a reason (``PUT /os-services/{id}``, 2.53: status
   disabled, disabled_reason), so the scheduler sends nothing new there;
2. move every server on it away, ``--max-servers`` at a time (Nova's
   ``max_concurrent_live_migrations`` is 1 per host): ACTIVE and PAUSED ones live
   (``os-migrateLive``, host chosen by the scheduler, block_migration auto), SHUTOFF ones cold
   (``migrate``, then ``confirmResize`` once VERIFY_RESIZE: they stay SHUTOFF);
3. report each server's outcome, and for the ones that stayed why: the API's refusal (a "No valid
   host" names what each filter eliminated), or the failed event of the move's instance action.

``stop`` enables the service again (disabled_reason cleared); the servers stay where they went.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from cumulo.ops.clouds import fault_text, token_and_endpoint

TIMEOUT = httpx.Timeout(60.0, connect=10.0)
LIVE = ("ACTIVE", "PAUSED")
COLD = ("SHUTOFF",)


class MaintenanceError(Exception):
    """The maintenance could not begin (credentials, no such host): the message says why."""


@dataclasses.dataclass
class Move:
    id: str
    name: str
    status: str  # before the move
    kind: str  # live, cold, none
    moved: bool = False
    dest: str = ""
    reason: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        what = f"{self.name} ({self.id}, {self.status})"
        if self.moved:
            return f"moved  {what} -> {self.dest}, {self.kind} in {self.seconds:.1f} s"
        return f"stayed {what}: {self.reason}"


@dataclasses.dataclass
class Report:
    host: str
    reason: str
    moves: list[Move]
    left: list[dict[str, Any]]  # servers still on the host at the end (ids, names, status)
    seconds: float
    waited: bool = True

    @property
    def empty(self) -> bool:
        return not self.left

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "disabled_reason": self.reason, "empty": self.empty, "waited": self.waited,
                "seconds": round(self.seconds, 2), "servers": [dataclasses.asdict(m) for m in self.moves],
                "left": self.left}


class Compute:
    """The Compute API as one clouds.yaml entry's user (password auth, project scope)."""

    def __init__(self, cloud: dict[str, Any], timeout: float = 300.0) -> None:
        self.http = httpx.Client(timeout=TIMEOUT, verify=cloud.get("verify", True))
        self.timeout = timeout
        self.token, url = token_and_endpoint(self.http, cloud, "compute", MaintenanceError)
        self.url = url.rstrip("/")

    def call(self, method: str, path: str, body: Any = None, version: str = "2.53") -> httpx.Response:
        headers = {"X-Auth-Token": self.token, "OpenStack-API-Version": f"compute {version}",
                   "X-OpenStack-Nova-API-Version": version}
        try:
            return self.http.request(method, self.url + path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise MaintenanceError(f"{method} {self.url}{path}: {type(exc).__name__}: {exc}") from None

    def ok(self, method: str, path: str, body: Any = None, version: str = "2.53") -> Any:
        r = self.call(method, path, body, version)
        if r.status_code >= 400:
            raise MaintenanceError(f"{method} {path}: {r.status_code} {fault_text(r)}")
        return r.json() if r.content else None

    # -- the host --

    def service(self, host: str) -> dict[str, Any]:
        found = self.ok("GET", f"/os-services?host={host}&binary=nova-compute")["services"]
        if not found:
            raise MaintenanceError(f"no compute service on host {host!r} (see `openstack compute service list`)")
        return dict(found[0])

    def set_service(self, host: str, enabled: bool, reason: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "enabled" if enabled else "disabled"}
        if not enabled and reason:
            body["disabled_reason"] = reason
        return dict(self.ok("PUT", f"/os-services/{self.service(host)['id']}", body)["service"])

    def servers_on(self, host: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        marker = ""
        while True:
            page = self.ok("GET", f"/servers/detail?all_tenants=1&host={host}&limit=200"
                           + (f"&marker={marker}" if marker else ""))["servers"]
            out += [s for s in page if s.get("OS-EXT-SRV-ATTR:host") == host]
            if len(page) < 200:
                return out
            marker = page[-1]["id"]

    def server(self, server_id: str) -> dict[str, Any] | None:
        r = self.call("GET", f"/servers/{server_id}")
        return dict(r.json()["server"]) if r.status_code == 200 else None

    # -- one server --

    def wait_settled(self, server_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        deadline = time.monotonic() + self.timeout
        while True:
            s = self.server(server_id)
            if s is None or (s.get("OS-EXT-STS:task_state") is None and done(s)):
                return s
            if time.monotonic() > deadline:
                return s
            time.sleep(0.3)

    def why_failed(self, server_id: str, request_id: str) -> str:
        """The failed event of the move's instance action (or the server's fault)."""
        if request_id:
            r = self.call("GET", f"/servers/{server_id}/os-instance-actions/{request_id}", version="2.84")
            if r.status_code == 200:
                action = r.json()["instanceAction"]
                for ev in action.get("events") or []:
                    if ev.get("result") == "Error":
                        return f"{ev['event']}: {ev.get('details') or ev.get('traceback') or 'Error'}"
                if action.get("message"):
                    return str(action["message"])
        s = self.server(server_id) or {}
        fault = s.get("fault") or {}
        return str(fault.get("message") or "the move did not finish (no fault recorded)")

    def move(self, server: dict[str, Any], host: str, wait: bool) -> Move:
        m = Move(server["id"], server.get("name", ""), server["status"], "none")
        started = time.monotonic()
        if server["status"] in LIVE:
            m.kind = "live"
            r = self.call("POST", f"/servers/{m.id}/action",
                          {"os-migrateLive": {"host": None, "block_migration": "auto"}}, "2.30")
        elif server["status"] in COLD:
            m.kind = "cold"
            r = self.call("POST", f"/servers/{m.id}/action", {"migrate": None}, "2.56")
        else:
            m.reason = (f"it is {server['status']}" + (f" ({server['OS-EXT-STS:task_state']})"
                        if server.get("OS-EXT-STS:task_state") else "")
                        + ": only ACTIVE and PAUSED servers move live, SHUTOFF ones cold")
            return m
        if r.status_code >= 400:
            m.reason = f"{r.status_code} {fault_text(r)}"
            return m
        request_id = r.headers.get("x-openstack-request-id", "")
        if not wait:
            m.reason, m.dest = "accepted (not waited for)", "?"
            return m
        if m.kind == "live":
            after = self.wait_settled(m.id, lambda s: s["status"] != "MIGRATING")
        else:
            after = self.wait_settled(m.id, lambda s: s["status"] in ("VERIFY_RESIZE", "SHUTOFF", "ERROR"))
            if after is not None and after["status"] == "VERIFY_RESIZE":
                c = self.call("POST", f"/servers/{m.id}/action", {"confirmResize": None})
                if c.status_code >= 400:
                    m.reason = f"confirmResize: {c.status_code} {fault_text(c)}"
                    return m
                after = self.wait_settled(m.id, lambda s: s["status"] != "VERIFY_RESIZE")
        m.seconds = time.monotonic() - started
        if after is None:
            m.reason = "it was deleted meanwhile"
            return m
        m.dest = after.get("OS-EXT-SRV-ATTR:host") or ""
        if m.dest and m.dest != host and after.get("OS-EXT-STS:task_state") is None:
            m.moved = True
            if after["status"] != server["status"]:
                m.reason = f"now {after['status']}"
            return m
        if after.get("OS-EXT-STS:task_state") is not None:
            m.reason = f"still {after['status']}/{after['OS-EXT-STS:task_state']} after {self.timeout:.0f} s"
        else:
            m.reason = self.why_failed(m.id, request_id)
        return m


def start(compute: Compute, host: str, reason: str, wait: bool = True, max_servers: int = 1,
          progress: Callable[[Move], None] | None = None) -> Report:
    """Disable ``host`` with ``reason`` and move its servers away (see the module's docstring)."""
    began = time.monotonic()
    compute.set_service(host, False, reason)
    servers = compute.servers_on(host)
    lock = threading.Lock()
    moves: list[Move] = []

    def one(server: dict[str, Any]) -> None:
        m = compute.move(server, host, wait)
        with lock:
            moves.append(m)
            if progress:
                progress(m)

    with ThreadPoolExecutor(max_workers=max(1, max_servers)) as pool:
        list(pool.map(one, servers))
    left = [{"id": s["id"], "name": s.get("name", ""), "status": s["status"]} for s in compute.servers_on(host)]
    return Report(host, reason, moves, left, time.monotonic() - began, wait)


def stop(compute: Compute, host: str) -> dict[str, Any]:
    """Enable ``host``'s compute service again; what is on the host now."""
    service = compute.set_service(host, True)
    return {"host": host, "status": service.get("status"), "servers": len(compute.servers_on(host))}
