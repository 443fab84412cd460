"""Controllers in HA: two ``cumulo up`` on one PostgreSQL database and RabbitMQ, behind Debian's haproxy.

haproxy (started here on free 127.0.0.1 ports, its configuration from ``cumulo.ops.haproxy``)
balances each API over both controllers and checks ``GET /healthcheck`` on every port; the
catalog names the balancer's URLs (``[api] public_endpoints``).  The compute nodes are fake
agents of their own (``cumulo agent --fake``), as on other hosts.

* every API port of both controllers answers ``/healthcheck`` without a token; the drain file
  takes a controller out of the balancer and back;
* a client loop (token, server create / list / delete, network list) through the balancer keeps
  working while the lease holder is killed -9, with at most one retry of a call whose connection
  died; the lease moves to the survivor, where a server created after the kill goes ACTIVE and
  every server that was building ends ACTIVE or ERROR; then the first controller comes back and
  the second is killed the same way;
* 40 concurrent boots through both controllers on a node with room for exactly 20: 20 ACTIVE,
  20 ERROR "No valid host", placement's usage exactly the node's capacity.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from cumulo.ops.haproxy import SERVICES, Balanced, render
from tests.functional.conftest import (
    BIN,
    RABBIT,
    Cloud,
    _create_pg_database,
    _drop_pg_database,
    free_port,
    start_cloud,
    stop_cloud,
    unique,
    wait_for,
)

pytestmark = pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy is missing (scripts/setup-test.sh)")

PATHS = {"identity": "/v3", "compute": "/v2.1", "network": "", "volume": "/v3", "image": "", "placement": ""}
PORT_ENV = {"identity": "CUMULO_IDENTITY__PORT", "compute": "CUMULO_COMPUTE__PORT", "network": "CUMULO_NETWORK__PORT",
            "image": "CUMULO_IMAGE__PORT", "placement": "CUMULO_PLACEMENT__PORT", "volume": "CUMULO_VOLUME__PORT"}
COMPUTE = {"OpenStack-API-Version": "compute 2.53"}
CHECK_MS = 300


def controller_ports(env: dict[str, str] | None = None) -> dict[str, str]:
    """Every port a controller listens on, new ones unless ``env`` holds them."""
    names = [*PORT_ENV.values(), "CUMULO_METRICS__PORT", "CUMULO_OBJECT__PORT", "CUMULO_OBJECT__S3_PORT",
             "CUMULO_COMPUTE__METADATA_PORT", "CUMULO_COMPUTE__SERIAL_PROXY_PORT", "CUMULO_COMPUTE__NOVNC_PROXY_PORT",
             "CUMULO_DASHBOARD__PORT"]
    return {n: (env or {}).get(n) or str(free_port()) for n in names}


@dataclass
class HA:
    root: Path
    db: str
    shared: dict[str, str]
    lb: dict[str, str]  # service -> the balancer's base URL
    stats: Path
    haproxy: subprocess.Popen[bytes]
    envs: dict[str, dict[str, str]]  # controller name -> its environment (ports)
    clouds: dict[str, Cloud] = field(default_factory=dict)
    agents: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str) -> Cloud:
        state = self.root / name
        (state / "status.json").unlink(missing_ok=True)  # a killed controller's is stale
        self.clouds[name] = start_cloud(state, "sqlite", {**self.shared, **self.envs[name]})
        return self.clouds[name]

    def kill(self, name: str) -> None:
        proc = self.clouds[name].proc
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def holder(self) -> str | None:
        held = [n for n, c in self.clouds.items() if c.proc.poll() is None and status(c).get("leader_lease")]
        assert len(held) <= 1, held
        return held[0] if held else None

    def pid(self, name: str) -> int:
        return self.clouds[name].proc.pid

    def token(self) -> tuple[str, dict[str, Any]]:
        r = httpx.post(f"{self.lb['identity']}/v3/auth/tokens", json=password_auth(self.shared), timeout=30)
        assert r.status_code == 201, r.text
        return r.headers["X-Subject-Token"], r.json()["token"]

    def haproxy_servers(self) -> dict[tuple[str, str], str]:
        """(backend, server) -> haproxy's status of it (UP, DOWN, MAINT, ...) from the stats socket."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.stats))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        rows = [line.split(",") for line in data.decode().splitlines() if line and not line.startswith("#")]
        return {(r[0], r[1]): r[17] for r in rows if len(r) > 17 and r[1] not in ("FRONTEND", "BACKEND")}


def status(cloud: Cloud) -> dict[str, Any]:
    try:
        return dict(json.loads((cloud.state_dir / "status.json").read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def password_auth(shared: dict[str, str]) -> dict[str, Any]:
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "Default"}, "password": shared["CUMULO_BOOTSTRAP__ADMIN_PASSWORD"]}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}


def fake_agent(root: Path, shared: dict[str, str], host: str, disk_gb: int) -> subprocess.Popen[bytes]:
    """A compute node of its own (as on another host), reporting over RabbitMQ."""
    state = root / host
    state.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUMULO_", "OS_"))}
    env.update({"CUMULO_STATE_DIR": str(state), "CUMULO_BUS__URL": shared["CUMULO_BUS__URL"],
                "CUMULO_BUS__PREFIX": shared["CUMULO_BUS__PREFIX"], "CUMULO_COMPUTE__REPORT_INTERVAL": "1"})
    return subprocess.Popen([str(BIN / "cumulo"), "agent", "--fake", "--host", host, "--vcpus", "64",
                             "--memory-mb", "65536", "--disk-gb", str(disk_gb)], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(state / "stderr.log", "wb"), start_new_session=True)


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HA]:
    root = tmp_path_factory.mktemp("ha")
    db = _create_pg_database()
    keys = root / "fernet-keys"  # one key repository for both (an operator's shared or synced directory)
    shared = {
        "CUMULO_DATABASE__URL": f"postgresql://postgres@127.0.0.1:5432/{db}", "CUMULO_BUS__URL": RABBIT,
        "CUMULO_BUS__PREFIX": f"cumulo-test-{unique('ha')}", "CUMULO_API__WORKERS": "1",
        "CUMULO_SERVICES": "identity,image,compute,placement,network,volume",
        "CUMULO_COMPUTE__FAKE_NODES": "0", "CUMULO_VOLUME__LOCAL_NODE": "false",
        "CUMULO_IDENTITY__KEY_REPOSITORY": str(keys), "CUMULO_COMPUTE__METADATA_SECRET": unique("meta"),
        "CUMULO_BOOTSTRAP__ADMIN_PASSWORD": unique("admin"), "CUMULO_BOOTSTRAP__DEMO_PASSWORD": unique("demo"),
        "CUMULO_COMPUTE__BUILD_TIMEOUT": "20"}
    lb_ports = {name: free_port() for name in SERVICES}
    lb = {name: f"http://127.0.0.1:{port}" for name, port in lb_ports.items()}
    shared["CUMULO_API__PUBLIC_ENDPOINTS"] = ",".join(f"{name}={url}" for name, url in lb.items())
    envs = {name: controller_ports() for name in ("c1", "c2")}
    for name in envs:  # the drain file of each (oslo.middleware's disable_by_file)
        envs[name]["CUMULO_METRICS__DISABLE_BY_FILE_PATH"] = str(root / f"{name}.drain")
    envs["c2"]["CUMULO_IMAGE__UPLOAD_GUEST_IMAGES"] = "false"  # c1 uploads cumulo-tiny once
    (root / "c1" / "images").mkdir(parents=True)
    (root / "c2").mkdir()
    (root / "c2" / "images").symlink_to(root / "c1" / "images")  # image data on storage both reach
    cfg = root / "haproxy.cfg"
    stats = root / "haproxy.sock"
    cfg.write_text(render([Balanced(name, f"127.0.0.1:{lb_ports[name]}",
                                    [(c, f"127.0.0.1:{envs[c][PORT_ENV[name]]}") for c in envs])
                           for name in SERVICES], check_interval_ms=CHECK_MS, stats_socket=str(stats),
                          log_stdout=True))
    proxy = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=open(root / "haproxy.log", "wb"),
                             stderr=subprocess.STDOUT, start_new_session=True)
    h = HA(root, db, shared, lb, stats, proxy, envs)
    try:
        wait_for(stats.exists, 10, "haproxy's stats socket")
        h.start("c1")
        h.start("c2")
        h.agents.append(fake_agent(root, shared, "ha-node-a", 1000))
        token, body = h.token()  # the admin project boots more than Nova's default 10 servers here
        assert httpx.put(f"{lb['compute']}/v2.1/os-quota-sets/{body['project']['id']}", json={"quota_set": {
            "instances": -1, "cores": -1, "ram": -1}}, headers={"X-Auth-Token": token}).status_code == 200
        yield h
    finally:
        for a in h.agents:
            if a.poll() is None:
                a.send_signal(signal.SIGTERM)
                try:
                    a.wait(10)
                except subprocess.TimeoutExpired:
                    a.kill()
                    a.wait()
        for c in h.clouds.values():
            stop_cloud(c)
        proxy.terminate()
        try:
            proxy.wait(10)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait()
        _drop_pg_database(db)


def all_up(ha: HA, names: set[str]) -> bool:
    servers = ha.haproxy_servers()
    return all(servers.get((f"{svc}-controllers", n)) == "UP" for svc in SERVICES for n in names)


def test_every_api_port_of_both_controllers_answers_healthcheck_without_a_token(ha: HA) -> None:
    for name in ("c1", "c2"):
        for svc, env in PORT_ENV.items():
            url = f"http://127.0.0.1:{ha.envs[name][env]}/healthcheck"
            r = httpx.get(url)
            assert (r.status_code, r.text, r.headers["content-type"].split(";")[0]) == (200, "OK", "text/plain"), \
                (name, svc, r.status_code, r.text)
            head = httpx.head(url)
            assert head.status_code == 200 and head.content == b""
    wait_for(lambda: all_up(ha, {"c1", "c2"}), 15, "haproxy to see both controllers UP on every API")


def test_the_catalog_names_the_load_balancer(ha: HA) -> None:
    _, token = ha.token()
    urls = {e["type"]: {x["url"] for x in e["endpoints"]} for e in token["catalog"]}
    for svc in SERVICES:
        kind = "block-storage" if svc == "volume" else svc
        assert urls[kind] == {ha.lb[svc] + PATHS[svc]}, (svc, urls.get(kind))
    clouds = (ha.root / "c2" / "clouds.yaml").read_text()
    assert f"auth_url: {ha.lb['identity']}/v3" in clouds


def test_the_drain_file_takes_a_controller_out_of_the_balancer_and_back(ha: HA) -> None:
    drain = Path(ha.envs["c1"]["CUMULO_METRICS__DISABLE_BY_FILE_PATH"])
    drain.touch()
    try:
        r = httpx.get(f"http://127.0.0.1:{ha.envs['c1']['CUMULO_COMPUTE__PORT']}/healthcheck")
        assert (r.status_code, r.text) == (503, "DISABLED BY FILE")
        wait_for(lambda: all(ha.haproxy_servers()[(f"{s}-controllers", "c1")] == "DOWN" for s in SERVICES), 10,
                 "haproxy to take c1 out")
        served = set()
        with httpx.Client() as client:
            for _ in range(10):
                served.add(client.get(ha.lb["identity"] + "/v3").headers["x-cumulo-worker"].split(":")[1])
        assert served == {str(ha.pid("c2"))}
    finally:
        drain.unlink()
    wait_for(lambda: all_up(ha, {"c1", "c2"}), 10, "haproxy to take c1 back")


@dataclass
class Calls:
    """What the client loop did: each call's outcome, and the calls it had to send twice."""

    done: list[tuple[float, str, int]] = field(default_factory=list)
    retried: list[tuple[float, str, str]] = field(default_factory=list)
    failed: list[tuple[float, str, str]] = field(default_factory=list)
    servers: list[tuple[float, str]] = field(default_factory=list)  # (created at, id)

    def between(self, t0: float, t1: float) -> list[tuple[float, str, int]]:
        return [c for c in self.done if t0 <= c[0] <= t1]


def client_loop(ha: HA, image: str, stop: threading.Event, calls: Calls) -> None:
    """Token, server create, server list, network list, delete of the server before the last, over
    and over through the balancer, one new connection per call as a client on another machine.  A
    call whose connection failed or that the balancer answered 502/503/504 is sent once more; a
    create is sent again only if no server of its name exists (it may have been made)."""
    def call(what: str, method: str, url: str, ok: set[int], again: Callable[[], httpx.Response | None] | None = None,
             **kw: Any) -> httpx.Response | None:
        for attempt in (0, 1):
            t = time.monotonic()
            try:
                if attempt and again is not None:
                    r = again()
                    if r is not None:
                        calls.done.append((t, what, r.status_code))
                        return r
                r = httpx.request(method, url, timeout=30, **kw)
                if r.status_code in ok:
                    calls.done.append((t, what, r.status_code))
                    return r
                problem = f"{r.status_code} {r.text[:200]}"
                if r.status_code not in (502, 503, 504):
                    break
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt == 0:
                calls.retried.append((t, what, problem))
        calls.failed.append((time.monotonic(), what, problem))
        return None

    pending: list[str] = []
    while not stop.is_set():
        r = call("token", "POST", f"{ha.lb['identity']}/v3/auth/tokens", {201}, json=password_auth(ha.shared))
        if r is None:
            continue
        token = r.headers["X-Subject-Token"]
        catalog = {e["type"]: e["endpoints"][0]["url"] for e in r.json()["token"]["catalog"]}
        h = {"X-Auth-Token": token, **COMPUTE}
        name = unique("ha-loop")

        def created(url: str = f"{catalog['compute']}/servers?name={name}", h: dict[str, str] = h
                    ) -> httpx.Response | None:
            found = httpx.get(url, headers=h, timeout=30)
            return found if found.status_code == 200 and found.json()["servers"] else None

        r = call("create", "POST", f"{catalog['compute']}/servers", {202}, created, headers=h, json={"server": {
            "name": name, "flavorRef": "10", "imageRef": image, "networks": "none"}})
        if r is not None:
            body = r.json()
            server_id = body["server"]["id"] if "server" in body else body["servers"][0]["id"]
            calls.servers.append((time.monotonic(), server_id))
            pending.append(server_id)
        call("list", "GET", f"{catalog['compute']}/servers/detail", {200}, headers=h)
        call("networks", "GET", f"{catalog['network']}/v2.0/networks", {200}, headers={"X-Auth-Token": token})
        if len(pending) > 2:
            victim = pending.pop(0)
            call("delete", "DELETE", f"{catalog['compute']}/servers/{victim}", {204, 404}, headers=h)


def server_states(ha: HA, ids: list[str], compute: str = "") -> dict[str, str]:
    token, _ = ha.token()
    out = {}
    for sid in ids:
        r = httpx.get(f"{compute or ha.lb['compute'] + '/v2.1'}/servers/{sid}",
                      headers={"X-Auth-Token": token, **COMPUTE})
        out[sid] = "DELETED" if r.status_code == 404 else r.json()["server"]["status"]
    return out


def kill_under_load(ha: HA, victim: str, survivor: str, image: str) -> dict[str, Any]:
    assert ha.holder() == victim, (ha.holder(), {n: status(c) for n, c in ha.clouds.items()})
    stop, calls = threading.Event(), Calls()
    loop = threading.Thread(target=client_loop, args=(ha, image, stop, calls))
    loop.start()
    try:
        wait_for(lambda: len(calls.servers) >= 3, 60, "the client loop to create servers")
        # builds in the victim's hands when it dies: creates sent to it directly, killed as they answer
        token, _ = ha.token()
        direct = f"http://127.0.0.1:{ha.envs[victim]['CUMULO_COMPUTE__PORT']}/v2.1/servers"

        def create(i: int) -> str:
            r = httpx.post(direct, headers={"X-Auth-Token": token, **COMPUTE}, timeout=30, json={"server": {
                "name": unique(f"ha-inflight-{i}"), "flavorRef": "10", "imageRef": image, "networks": "none"}})
            assert r.status_code == 202, r.text
            return str(r.json()["server"]["id"])

        with ThreadPoolExecutor(8) as pool:
            in_flight = list(pool.map(create, range(8)))
        killed_at = time.monotonic()
        ha.kill(victim)
        seen: dict[str, float] = {}  # when the survivor held the lease, when haproxy had the victim DOWN

        def moved() -> bool:
            now = time.monotonic() - killed_at
            if "lease" not in seen and ha.holder() == survivor:
                seen["lease"] = now
            if "down" not in seen and all(
                    ha.haproxy_servers()[(f"{s}-controllers", victim)] == "DOWN" for s in SERVICES):
                seen["down"] = now
            return len(seen) == 2

        wait_for(moved, 30, f"{survivor} to take the leader lease and haproxy to mark {victim} DOWN", every=0.05)
        lease_moved, down_at = seen["lease"], seen["down"]
        # the loop goes on on the survivor alone for a while: servers created there now must boot
        wait_for(lambda: len([s for t, s in calls.servers if t > killed_at + lease_moved]) >= 3, 60,
                 "servers created after the lease moved")
    finally:
        stop.set()
        loop.join(60)
    window = calls.between(killed_at, killed_at + max(down_at, lease_moved))
    figures = {"victim": victim, "calls": len(calls.done), "calls_until_moved": len(window),
               "retried": len(calls.retried), "failed": len(calls.failed), "lease_moved_s": round(lease_moved, 2),
               "haproxy_down_s": round(down_at, 2), "retries": calls.retried[:5]}
    print(f"kill -9 of {victim}: {figures}")
    assert not calls.failed, calls.failed
    assert len(calls.retried) <= 5, calls.retried  # only the calls the kill caught in flight
    after = [s for t, s in calls.servers if t > killed_at + lease_moved]
    ids = [s for _, s in calls.servers] + in_flight

    def settled() -> dict[str, str] | None:
        states = server_states(ha, ids)
        return None if any(v == "BUILD" for v in states.values()) else states

    states = wait_for(settled, 60, "every server of the loop to leave BUILD (ACTIVE, ERROR or deleted)")
    assert isinstance(states, dict)
    figures["in_flight"] = {k: sum(states[s] == k for s in in_flight) for k in ("ACTIVE", "ERROR", "DELETED")}
    token, _ = ha.token()
    faults = [httpx.get(f"{ha.lb['compute']}/v2.1/servers/{s}", headers={"X-Auth-Token": token, **COMPUTE}
                        ).json()["server"].get("fault", {}).get("message") for s in in_flight if states[s] == "ERROR"]
    print(f"the 8 creates sent to {victim} just before its kill: {figures['in_flight']} {faults}")
    assert all(states[s] == "ACTIVE" for s in after if states[s] != "DELETED"), {s: states[s] for s in after}
    assert set(states.values()) <= {"ACTIVE", "ERROR", "DELETED"}, states
    token, _ = ha.token()
    for sid, state in states.items():
        if state != "DELETED":
            assert httpx.delete(f"{ha.lb['compute']}/v2.1/servers/{sid}",
                                headers={"X-Auth-Token": token, **COMPUTE}).status_code in (204, 404)
    wait_for(lambda: set(server_states(ha, ids).values()) == {"DELETED"}, 60, "the loop's servers to be deleted")
    return figures


def guest_image(ha: HA) -> str:
    token, _ = ha.token()
    r = httpx.get(f"{ha.lb['image']}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": token})
    return str(r.json()["images"][0]["id"])


def test_clients_keep_working_while_each_controller_in_turn_is_killed_9(ha: HA) -> None:
    image = guest_image(ha)
    first = kill_under_load(ha, "c1", "c2", image)
    ha.start("c1")
    wait_for(lambda: all_up(ha, {"c1", "c2"}), 15, "haproxy to see c1 UP again")
    assert ha.holder() == "c2"  # the lease stays where it is
    second = kill_under_load(ha, "c2", "c1", image)
    ha.start("c2")
    wait_for(lambda: all_up(ha, {"c1", "c2"}), 15, "haproxy to see c2 UP again")
    assert first["lease_moved_s"] < 10 and second["lease_moved_s"] < 10


def test_forty_concurrent_boots_through_both_controllers_on_room_for_twenty(ha: HA) -> None:
    token, _ = ha.token()
    h = {"X-Auth-Token": token, **COMPUTE}
    compute = f"{ha.lb['compute']}/v2.1"
    # the loop's node leaves the scheduler; a node with disk for exactly 20 servers of flavor 10 (1 GB) joins
    services = httpx.get(f"{compute}/os-services?binary=nova-compute", headers=h).json()["services"]
    for s in services:
        if s["host"] == "ha-node-a":
            assert httpx.put(f"{compute}/os-services/{s['id']}", headers=h,
                             json={"status": "disabled"}).status_code == 200
    ha.agents.append(fake_agent(ha.root, ha.shared, "ha-node-20", 20))

    def node() -> dict[str, Any] | None:
        r = httpx.get(f"{compute}/os-hypervisors/detail", headers=h).json()["hypervisors"]
        return next((x for x in r if x["hypervisor_hostname"] == "ha-node-20" and x["state"] == "up"), None)

    hv = wait_for(node, 30, "the 20-server node to report")
    assert isinstance(hv, dict)
    image = guest_image(ha)
    prefix = unique("cap")

    def boot(i: int) -> tuple[int, str, str]:
        with httpx.Client(timeout=60) as c:  # a connection each: the balancer spreads them
            r = c.post(f"{compute}/servers", headers=h, json={"server": {
                "name": f"{prefix}-{i}", "flavorRef": "10", "imageRef": image, "networks": "none"}})
            return r.status_code, r.json()["server"]["id"], r.headers["x-cumulo-worker"].split(":")[1]

    with ThreadPoolExecutor(40) as pool:
        results = list(pool.map(boot, range(40)))
    assert {code for code, _, _ in results} == {202}, results
    by_controller = {pid for _, _, pid in results}
    assert by_controller == {str(ha.pid("c1")), str(ha.pid("c2"))}, by_controller
    ids = [sid for _, sid, _ in results]

    def settled() -> list[dict[str, Any]] | None:
        servers = httpx.get(f"{compute}/servers/detail?name={prefix}", headers=h).json()["servers"]
        return servers if len(servers) == 40 and all(s["status"] in ("ACTIVE", "ERROR") for s in servers) else None

    servers = wait_for(settled, 120, "the 40 boots to end ACTIVE or ERROR")
    assert isinstance(servers, list)
    active = [s for s in servers if s["status"] == "ACTIVE"]
    error = [s for s in servers if s["status"] == "ERROR"]
    print(f"40 boots: {len(active)} ACTIVE, {len(error)} ERROR; "
          f"creates served by c1 {sum(p == str(ha.pid('c1')) for _, _, p in results)}, "
          f"c2 {sum(p == str(ha.pid('c2')) for _, _, p in results)}")
    assert len(active) == 20 and len(error) == 20, [(s["status"], s.get("fault")) for s in servers]
    assert all(s["OS-EXT-SRV-ATTR:host"] == "ha-node-20" for s in active)
    assert all("No valid host" in s["fault"]["message"] for s in error), [s["fault"] for s in error]
    usages = httpx.get(f"{ha.lb['placement']}/resource_providers/{hv['id']}/usages",
                       headers={"X-Auth-Token": token}).json()["usages"]
    assert usages["DISK_GB"] == 20, usages
    for sid in ids:
        assert httpx.delete(f"{compute}/servers/{sid}", headers=h).status_code == 204
    wait_for(lambda: not httpx.get(f"{compute}/servers?name={prefix}", headers=h).json()["servers"], 60,
             "the 40 servers to be deleted")
