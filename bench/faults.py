"""Fault matrix: boot and delete servers while the controller, an agent, RabbitMQ or PostgreSQL
dies under them, then let the reconcilers run past their leases and count what was left behind.

    .venv/bin/python bench/faults.py [--seed S] [--fake 200] [--qemu 20] [--rabbit 100] [--postgres 50]
    make faults [FAULTS_SEED=S]

Phases (each is skipped with a count of 0):

fake      ``--fake`` boot/delete cycles on fake nodes (one inside the controller, one a ``cumulo agent``
          process) over PostgreSQL and RabbitMQ, each server on a network of the Network API, with
          ``kill -9`` of the controller (its process group, or its leader process alone, whose
          workers must then stop by themselves) or of the agent at a random moment of the create,
          the build or the delete of some cycles; whatever was killed starts again on its state.
qemu      ``--qemu`` cycles with real QEMU guests (cumulo-tiny) on two nodes of this machine (one in
          the controller, one an agent process) with the Linux dataplane, kills as above.
rabbit    ``--rabbit`` boots in waves; RabbitMQ is restarted (``rabbitmqctl stop_app``/``start_app``:
          every connection drops, non-durable queues go) at a random moment of each wave.
postgres  ``--postgres`` boots in waves; PostgreSQL is restarted (``pg_ctlcluster ... restart``).

After each phase (and again once its servers are deleted) the audit waits, up to a deadline past
the build lease, for the cloud to converge and counts: servers still transitional (BUILD or a
task_state), acknowledged servers lost (not there, or neither ACTIVE nor ERROR with a fault),
deleted servers that came back, compute ports without a live server, placement consumers that are
no live server, instances a node holds for no live server, and with QEMU: QEMU processes naming
this run's state directory, instance directories, taps, namespaces of this run's prefix and
dnsmasq processes that nothing owns.  Any count above 0 is a violation: the exit status is 1.
The seed is printed first; ``--seed`` replays the same kills at the same moments.  The services
are always left running (a ``finally`` starts them again).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
CUMULO = str(ROOT / ".venv" / "bin" / "cumulo")
PG = "postgresql://postgres@127.0.0.1:5432"
RABBIT = "amqp://guest:guest@127.0.0.1:5672/"
LEASE = 6  # [compute] build_timeout for the run: every build's lease
SETTLED = ("ACTIVE", "ERROR", "SHUTOFF")
COUNTS = ("transitional", "lost", "half_made", "rpc", "undeleted", "ports", "allocations", "instances", "qemu",
          "instance_dirs", "taps", "namespaces", "dnsmasq")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Proc:
    """A ``cumulo`` process this run started, killed with SIGKILL and started again on the same state."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logfile: Path) -> None:
        self.name, self.argv, self.env, self.logfile = name, argv, env, logfile
        self.proc: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()
        self.kills = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.logfile, "ab"), start_new_session=True)

    def kill9(self, group: bool = True) -> None:
        """SIGKILL to the process group (the process and its workers), or to the process alone (its
        workers must notice and stop; the restarted one needs their ports)."""
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                if group:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                else:
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.kills += 1
            self.start()

    def stop(self) -> None:
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                return
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


# -- the shared services ----------------------------------------------------------------------------------
def restart_rabbitmq() -> None:
    # The broker here was started outside any init system (no pid file for its init script):
    # stopping and starting the RabbitMQ application drops every connection and every
    # non-durable queue, which is what a broker restart does to its clients.
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True, timeout=60)
    subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True, timeout=120)


def restart_postgres() -> None:
    subprocess.run(["pg_ctlcluster", *pg_cluster(), "restart", "-m", "fast"], check=True, capture_output=True,
                   timeout=120)


def pg_cluster() -> tuple[str, str]:
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, timeout=30).stdout.split()
    return out[0], out[1]


def ensure_services() -> None:
    """Both services answer again (other tests and sessions share them)."""
    if subprocess.run(["rabbitmqctl", "-q", "await_startup", "--timeout", "5"], capture_output=True,
                      timeout=60).returncode != 0:
        subprocess.run(["rabbitmqctl", "-q", "start_app"], capture_output=True, timeout=120)
    version, name = pg_cluster()
    if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-t", "5"], capture_output=True, timeout=30).returncode != 0:
        subprocess.run(["pg_ctlcluster", version, name, "start"], capture_output=True, timeout=120)


# -- a cloud of this run --------------------------------------------------------------------------------------
@dataclass
class Cloud:
    root: Path
    env: dict[str, str]
    controller: Proc
    agents: dict[str, Proc] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    database: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    project: str = ""

    def url(self, service: str) -> str:
        suffix = {"identity": "/v3", "compute": "/v2.1", "network": "/v2.0"}.get(service, "")
        return f"http://127.0.0.1:{self.ports[service]}{suffix}"

    @property
    def prefix(self) -> str:
        return self.env["CUMULO_NETWORK__NAMESPACE_PREFIX"]

    def wait_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.controller.proc
            if proc is not None and proc.poll() is not None and not self.controller.lock.locked():
                raise RuntimeError(f"the controller exited with {proc.returncode} (see {self.controller.logfile})")
            try:
                # the status file names this controller (the workers of a killed leader may still be
                # answering for a moment before they stop)
                status = json.loads((self.root / "status.json").read_text())
                if proc is not None and status.get("pid") == proc.pid and \
                        httpx.get(self.url("compute") + "/", timeout=2).status_code < 500:
                    return
            except (httpx.HTTPError, OSError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the controller did not answer in {timeout:.0f} s (see {self.controller.logfile})")

    def login(self) -> None:
        auth = yaml.safe_load((self.root / "clouds.yaml").read_text())["clouds"]["cumulo"]["auth"]
        r = httpx.post(self.url("identity") + "/auth/tokens", json={"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": auth["username"], "domain": {"id": "default"}, "password": auth["password"]}}},
            "scope": {"project": {"name": auth["project_name"], "domain": {"id": "default"}}}}}, timeout=30)
        r.raise_for_status()
        self.headers = {"X-Auth-Token": r.headers["x-subject-token"], "OpenStack-API-Version": "compute 2.47"}
        self.project = str(r.json()["token"]["project"]["id"])

    def call(self, method: str, url: str, body: Any = None, retry_for: float = 60.0,
             retry_5xx: bool = True) -> httpx.Response | None:
        """One request as a patient user makes it: a refused connection (a controller being restarted)
        or a 5xx (its database restarting) is tried again until ``retry_for`` has passed."""
        deadline = time.monotonic() + retry_for
        while True:
            try:
                r = httpx.request(method, url, json=body, headers=self.headers, timeout=30)
                if r.status_code < 500 or not retry_5xx:
                    return r
            except httpx.HTTPError:
                r = None
            if time.monotonic() > deadline:
                return r
            time.sleep(0.3)

    def stop(self) -> None:
        for agent in self.agents.values():
            agent.stop()
        self.controller.stop()
        if self.database:
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc",
                            f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)"], capture_output=True, timeout=60)


def make_cloud(root: Path, postgres: bool, extra: dict[str, str], agents: dict[str, bool]) -> Cloud:
    """``cumulo up`` on free ports over ``root``, and an agent process per entry of ``agents``
    (host -> fake driver), all on one RabbitMQ prefix of their own."""
    root.mkdir(parents=True, exist_ok=True)
    names = ("identity", "metrics", "image", "compute", "placement", "metadata", "network")
    ports = {n: free_port() for n in names}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUMULO_", "OS_"))}
    tag = uuid.uuid4().hex[:6]
    env.update({
        "CUMULO_STATE_DIR": str(root), "CUMULO_IDENTITY__PORT": str(ports["identity"]),
        "CUMULO_METRICS__PORT": str(ports["metrics"]), "CUMULO_IMAGE__PORT": str(ports["image"]),
        "CUMULO_COMPUTE__PORT": str(ports["compute"]), "CUMULO_PLACEMENT__PORT": str(ports["placement"]),
        "CUMULO_COMPUTE__METADATA_PORT": str(ports["metadata"]), "CUMULO_NETWORK__PORT": str(ports["network"]),
        "CUMULO_IDENTITY__PASSWORD_HASH_ROUNDS": "4", "CUMULO_BOOTSTRAP__WRITE_USER_CLOUDS": "false",
        "CUMULO_LOGGING__FILE": str(root / "cumulo.log"), "CUMULO_COMPUTE__REPORT_INTERVAL": "1",
        "CUMULO_COMPUTE__SERVICE_DOWN_TIME": "8", "CUMULO_COMPUTE__BUILD_TIMEOUT": str(LEASE),
        "CUMULO_COMPUTE__FAKE_NODES": "0", "CUMULO_COMPUTE__LOCAL_NODE": "false",
        "CUMULO_NETWORK__DATAPLANE": "false", "CUMULO_NETWORK__BOOTSTRAP": "false",
        "CUMULO_NETWORK__NAMESPACE_PREFIX": f"cumulo-test-f{tag}", "CUMULO_BUS__URL": RABBIT,
        "CUMULO_BUS__PREFIX": f"cumulo-test-faults-{tag}", "CUMULO_BUS__RPC_TIMEOUT": "10",
    })
    database = ""
    if postgres:
        database = f"cumulo_faults_{tag}"
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {database}"],
                       check=True, capture_output=True, timeout=60)
        env["CUMULO_DATABASE__URL"] = f"{PG}/{database}"
    env.update(extra)
    cloud = Cloud(root, env, Proc("controller", [CUMULO, "up"], env, root / "controller.log"), database=database,
                  ports=ports)
    for host, fake in agents.items():
        cloud.agents[host] = Proc(host, [CUMULO, "agent", "--host", host, *(["--fake"] if fake else [])], env,
                                  root / f"agent-{host}.log")
    cloud.controller.start()
    try:
        cloud.wait_up()
        cloud.login()
    except BaseException:
        cloud.stop()  # and its database: a cloud that never came up leaves nothing either
        raise
    # the kept servers of a long run add up: the admin project's quotas do not limit the run
    r = cloud.call("PUT", f"{cloud.url('compute')}/os-quota-sets/{cloud.project}", {"quota_set": {
        "instances": -1, "cores": -1, "ram": -1}})
    assert r is not None and r.status_code == 200, r.text if r is not None else "no answer"
    for resource in ("port", "network", "subnet"):
        r = cloud.call("PUT", f"{cloud.url('network')}/quotas/{cloud.project}", {"quota": {resource: -1}})
        assert r is not None and r.status_code == 200, r.text if r is not None else "no answer"
    for agent in cloud.agents.values():
        agent.start()
    return cloud


def wait_hosts(cloud: Cloud, hosts: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        r = cloud.call("GET", cloud.url("compute") + "/os-services?binary=nova-compute")
        up = {s["host"] for s in r.json()["services"] if s["state"] == "up"} if r is not None and r.status_code == 200 \
            else set()
        if set(hosts) <= up:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"compute hosts {sorted(set(hosts) - up)} did not come up")
        time.sleep(0.5)


# -- what a run does and counts ---------------------------------------------------------------------------------
@dataclass
class Ledger:
    """What the API acknowledged: servers created (202), servers deleted (204 or 404 after a 204
    that may have been lost with its controller)."""
    acked: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    kills: list[str] = field(default_factory=list)
    outcome: dict[str, str] = field(default_factory=dict)  # the status each build settled in
    refused: int = 0  # creates with no answer (a controller being killed)
    errors: int = 0  # creates answered 5xx (its database restarting)
    failed: set[str] = field(default_factory=set)  # names of the creates answered 5xx


def image_id(cloud: Cloud) -> str:
    r = cloud.call("GET", cloud.url("image") + "/v2/images?name=cumulo-tiny")
    assert r is not None
    return str(r.json()["images"][0]["id"])


def make_network(cloud: Cloud, cidr: str) -> str:
    r = cloud.call("POST", cloud.url("network") + "/networks", {"network": {"name": "faults"}})
    assert r is not None and r.status_code == 201, r.text if r is not None else "no answer"
    net = r.json()["network"]["id"]
    r = cloud.call("POST", cloud.url("network") + "/subnets", {"subnet": {
        "network_id": net, "cidr": cidr, "ip_version": 4, "name": "faults"}})
    assert r is not None and r.status_code == 201, r.text
    return str(net)


def create(cloud: Cloud, ledger: Ledger, name: str, image: str, host: str | None, network: str | None) -> str | None:
    body: dict[str, Any] = {"name": name, "flavorRef": "10", "imageRef": image,
                            "networks": [{"uuid": network}] if network else "none"}
    if host:
        body["availability_zone"] = f"nova:{host}"
    # a create is never retried: without an answer the user cannot know whether it was taken
    r = cloud.call("POST", cloud.url("compute") + "/servers", {"server": body}, retry_for=0, retry_5xx=False)
    if r is not None and r.status_code == 202:
        sid = str(r.json()["server"]["id"])
        ledger.acked.add(sid)
        return sid
    if r is not None and r.status_code >= 500:
        ledger.errors += 1
        ledger.failed.add(name)
    elif r is None:
        ledger.refused += 1
    else:
        raise RuntimeError(f"create answered {r.status_code}: {r.text[:300]}")
    return None


def wait_settled(cloud: Cloud, sid: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    status = "?"
    while time.monotonic() < deadline:
        r = cloud.call("GET", f"{cloud.url('compute')}/servers/{sid}", retry_for=timeout)
        if r is not None and r.status_code == 404:
            return "gone"
        if r is not None and r.status_code == 200:
            server = r.json()["server"]
            status = server["status"]
            if status in SETTLED and not server.get("OS-EXT-STS:task_state"):
                return str(status)
        time.sleep(0.2)
    return status


def delete(cloud: Cloud, ledger: Ledger, sid: str, timeout: float = 60) -> bool:
    """Delete as a user does: again after no answer, until a 204 (or the 404 of a delete that was done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = cloud.call("DELETE", f"{cloud.url('compute')}/servers/{sid}", retry_for=timeout)
        if r is not None and r.status_code in (204, 404):
            ledger.deleted.add(sid)
            break
        time.sleep(0.5)  # 409 (locked in a task) or a 5xx: the user tries again
    else:
        return False
    while time.monotonic() < deadline:
        r = cloud.call("GET", f"{cloud.url('compute')}/servers/{sid}", retry_for=timeout)
        if r is not None and r.status_code == 404:
            return True
        time.sleep(0.2)
    return False


def listing(cloud: Cloud, url: str, key: str) -> list[dict[str, Any]]:
    r = cloud.call("GET", url, retry_for=60)
    if r is None or r.status_code != 200:
        raise RuntimeError(f"GET {url}: {r.status_code if r is not None else 'no answer'}")
    return list(r.json()[key])


def servers(cloud: Cloud) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    marker = None
    while True:
        page = listing(cloud, f"{cloud.url('compute')}/servers/detail?all_tenants=1&limit=500"
                       + (f"&marker={marker}" if marker else ""), "servers")
        out += page
        if len(page) < 500:
            return out
        marker = page[-1]["id"]


def qemu_cmdlines(root: Path) -> dict[int, str]:
    """QEMU processes whose command line names this run's state directory (started by this run)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "qemu-system" in cmd and str(root) in cmd:
                out[int(entry.name)] = cmd
    return out


def dnsmasq_pids(root: Path) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"dnsmasq") and str(root).encode() in cmd:
                out.append(int(entry.name))
    return out


def namespaces(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix + "-")]


def taps(prefix: str) -> list[str]:
    ns = f"{prefix}-dp"
    if ns not in namespaces(prefix):
        return []
    out = subprocess.run(["ip", "-n", ns, "-o", "link"], capture_output=True, text=True, timeout=30).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
            if line.split(":")[1].strip().startswith("tap")]


def count(cloud: Cloud, ledger: Ledger, networks: set[str], qemu: bool) -> dict[str, list[str]]:
    """Every kind of leftover, as lists of what is wrong (empty lists: nothing)."""
    live = {s["id"]: s for s in servers(cloud)}
    bad: dict[str, list[str]] = {k: [] for k in COUNTS}
    for s in live.values():
        if s["status"] == "BUILD" or s.get("OS-EXT-STS:task_state"):
            bad["transitional"].append(f"{s['id']} {s['status']}/{s.get('OS-EXT-STS:task_state')}")
    for sid in ledger.acked - ledger.deleted:
        s = live.get(sid)
        if s is None:
            bad["lost"].append(f"{sid} is gone")
        elif s["status"] not in ("ACTIVE", "ERROR") or (s["status"] == "ERROR" and not s.get("fault")):
            bad["lost"].append(f"{sid} is {s['status']} ({(s.get('fault') or {}).get('message')})")
    bad["undeleted"] = [sid for sid in ledger.deleted if sid in live]
    # a create that failed (5xx) leaves no server behind; one that got no answer may have been taken
    bad["half_made"] = [f"{s['id']} ({s['name']}, {s['status']})" for s in live.values() if s["name"] in ledger.failed]
    for s in [s for s in live.values() if s["status"] == "ACTIVE"][:3]:  # the bus answers calls
        r = cloud.call("POST", f"{cloud.url('compute')}/servers/{s['id']}/action", {"os-getConsoleOutput": {}})
        if r is None or r.status_code != 200:
            bad["rpc"].append(f"console of {s['id']}: {r.status_code if r is not None else 'no answer'}")
    ports = listing(cloud, cloud.url("network") + "/ports", "ports")
    for p in ports:
        if p.get("status") not in ("ACTIVE", "DOWN"):
            bad["transitional"].append(f"port {p['id']} {p.get('status')}")
        owner = p.get("device_owner") or ""
        if owner.startswith("compute:") and p.get("device_id") not in live:
            bad["ports"].append(f"{p['id']} of {p.get('device_id')}")
        elif not owner and p["network_id"] in networks:  # this run makes no port of its own
            bad["ports"].append(f"{p['id']} with no owner")
    for rp in listing(cloud, cloud.url("placement") + "/resource_providers", "resource_providers"):
        allocs = listing(cloud, f"{cloud.url('placement')}/resource_providers/{rp['uuid']}/allocations",
                         "allocations")
        bad["allocations"] += [f"{consumer} on {rp['name']}" for consumer in allocs if consumer not in live]
    held_by: dict[str, set[str]] = {}
    for state in (cloud.root / "fake").glob("*.json"):
        held = json.loads(state.read_text()).get("instances", {})
        held_by[state.stem] = set(held)
        bad["instances"] += [f"{sid} on {state.stem}" for sid in held if sid not in live]
    cmdlines = qemu_cmdlines(cloud.root) if qemu else {}
    for sid, s in live.items():  # an ACTIVE server's guest is where the server says it runs
        host = s.get("OS-EXT-SRV-ATTR:host")
        if s["status"] != "ACTIVE" or sid not in ledger.acked:
            continue
        if host in held_by and sid not in held_by[host]:
            bad["lost"].append(f"{sid} is ACTIVE but {host} holds no instance of it")
        if qemu and not any(sid in cmd for cmd in cmdlines.values()):
            bad["lost"].append(f"{sid} is ACTIVE but no QEMU runs it")
    if qemu:
        wanted = {sid for sid, s in live.items() if s["status"] == "ACTIVE"}
        for pid, cmd in cmdlines.items():
            if not any(sid in cmd for sid in wanted):
                bad["qemu"].append(f"pid {pid}")
        for node in (cloud.root / "instances").glob("*"):
            bad["instance_dirs"] += [str(d) for d in node.iterdir()
                                     if not d.name.startswith("_") and d.name not in live]
        bad["taps"] = [t for t in taps(cloud.prefix) if not any(t[3:13] == p["id"][:10] for p in ports)]
        expected = {f"{cloud.prefix}-dp", f"{cloud.prefix}-ext"} | {f"{cloud.prefix}-dhcp-{n}" for n in networks}
        bad["namespaces"] = [ns for ns in namespaces(cloud.prefix) if ns not in expected]
        pids = dnsmasq_pids(cloud.root)
        if len(pids) > len(networks):
            bad["dnsmasq"] = [f"pid {p}" for p in pids]
    return bad


def audit(cloud: Cloud, ledger: Ledger, networks: set[str], qemu: bool, timeout: float) -> dict[str, list[str]]:
    """Let the reconcilers run past the leases, then count; a count that does not reach 0 by the
    deadline is a violation."""
    deadline = time.monotonic() + timeout
    while True:
        bad = count(cloud, ledger, networks, qemu)
        if not any(bad.values()) or time.monotonic() > deadline:
            return bad
        time.sleep(1)


def clean(cloud: Cloud, ledger: Ledger) -> None:
    """Delete every server the phase left (acknowledged or not), as its user would."""
    for s in servers(cloud):
        if s["name"].startswith("faults-"):
            delete(cloud, ledger, s["id"])


@dataclass
class Plan:
    """One cycle's fault, drawn from the run's seeded generator: what dies, in which step, when."""
    target: str | None
    stage: str | None
    delay: float
    label: str


def arm(cloud: Cloud, ledger: Ledger, plan: Plan, now: str) -> threading.Timer | None:
    """The kill of ``plan`` if it falls in the step starting ``now``."""
    if plan.stage != now or plan.target is None:
        return None
    proc = cloud.agents.get(plan.target) or cloud.controller
    ledger.kills.append(f"{plan.label}: kill -9 {plan.target} {plan.delay:.2f}s into the {plan.stage}")
    log(ledger.kills[-1])
    return fault_timer(lambda: proc.kill9(group=plan.target != "controller-leader"), plan.delay)


def fault_timer(target: Callable[[], None], delay: float) -> threading.Timer:
    timer = threading.Timer(delay, target)
    timer.daemon = True
    timer.start()
    return timer


def cycles(cloud: Cloud, ledger: Ledger, rng: random.Random, n: int, hosts: list[str], network: str | None,
           kill_rate: float, keep_rate: float, window: float, settle: float, name: str) -> None:
    """``n`` boot/delete cycles; in some, the controller or an agent is killed -9 at a random moment
    of the create request, of the build after its 202, or of the delete (and started again at once,
    on the same state)."""
    image = image_id(cloud)
    agents = [h for h in hosts if h in cloud.agents]
    for i in range(n):
        host = rng.choice(hosts)
        target = stage = None
        if rng.random() < kill_rate:
            target = rng.choice(["controller", "controller-leader", *agents])
            stage = rng.choice(("create", "build", "delete"))
        delay, keep = rng.uniform(0, window), rng.random() < keep_rate
        if keep and stage == "delete":
            stage = "build"
        plan = Plan(target, stage, delay, f"{name} {i}")
        timer = arm(cloud, ledger, plan, "create")
        sid = create(cloud, ledger, f"faults-{name}-{i}", image, host, network)
        if sid:
            timer = timer or arm(cloud, ledger, plan, "build")
        status = wait_settled(cloud, sid, settle) if sid else "refused"
        if sid:
            ledger.outcome[sid] = status
        if sid and not keep:
            timer = timer or arm(cloud, ledger, plan, "delete")
            if not delete(cloud, ledger, sid):
                log(f"{name} {i}: delete of {sid} did not finish")
        if timer:
            timer.join()
            if target and target.startswith("controller"):
                cloud.wait_up()
        if i % 10 == 0 or timer:
            log(f"{name} {i}/{n}: {sid} {status}{' kept' if keep else ''}")


def waves(cloud: Cloud, ledger: Ledger, rng: random.Random, n: int, wave: int, hosts: list[str],
          network: str | None, restart: Callable[[], None], name: str, keep_rate: float = 0.3) -> None:
    """``n`` boots in waves of ``wave``, the service restarted at a random moment of each wave; the
    servers not kept are deleted while it may still be coming back."""
    image = image_id(cloud)
    for w in range(0, n, wave):
        delay = rng.uniform(0, 1.0)
        ledger.kills.append(f"{name} {w}: restart at +{delay:.2f}s")
        log(ledger.kills[-1])
        timer = fault_timer(restart, delay)
        made = [create(cloud, ledger, f"faults-{name}-{w + j}", image, rng.choice(hosts), network)
                for j in range(min(wave, n - w))]
        for sid in made:
            if sid:
                ledger.outcome[sid] = wait_settled(cloud, sid, 60)
        for sid in made:
            if sid and rng.random() >= keep_rate:
                delete(cloud, ledger, sid)
        timer.join()
        log(f"{name} {w + len(made)}/{n}: {sum(1 for x in made if x)} acknowledged")


# -- the phases -------------------------------------------------------------------------------------------------
Row = tuple[str, int, int, dict[str, list[str]]]
INFO = ("active", "error", "no_answer", "5xx")  # how the builds ended and creates were refused: not violations


def phase_fake(root: Path, rng: random.Random, n: int, rabbit: int, postgres: int, wave: int) -> list[Row]:
    """Fake nodes over PostgreSQL and RabbitMQ: the kill cycles, then the broker and database restarts."""
    agent = "faults-agent"
    cloud = make_cloud(root / "fake", True, {"CUMULO_COMPUTE__FAKE_NODES": "1"}, {agent: True})
    rows: list[Row] = []
    try:
        hosts = ["fake-0", agent]
        wait_hosts(cloud, hosts)
        network = make_network(cloud, "10.77.0.0/22")
        steps: list[tuple[str, int, Callable[[Ledger], None]]] = [
            ("fake", n, lambda led: cycles(cloud, led, rng, n, hosts, network, 0.35, 0.15, 1.0, 30, "fake")),
            ("rabbit", rabbit, lambda led: waves(cloud, led, rng, rabbit, wave, hosts, network, restart_rabbitmq,
                                                 "rabbit")),
            ("postgres", postgres, lambda led: waves(cloud, led, rng, postgres, wave, hosts, network,
                                                     restart_postgres, "postgres")),
        ]
        for name, size, run in steps:
            if not size:
                continue
            ledger = Ledger()
            try:
                run(ledger)
            finally:
                ensure_services()
            wait_hosts(cloud, hosts, 120)
            rows += finish(cloud, ledger, name, size, {network}, False)
    finally:
        cloud.stop()
    return rows


def phase_qemu(root: Path, rng: random.Random, n: int) -> list[Row]:
    """Real guests on two QEMU nodes of this machine (one inside the controller, one an agent
    process) with the dataplane; the controller or the agent killed at a random moment."""
    agent = "fq-2"
    cloud = make_cloud(root / "q", False, {"CUMULO_COMPUTE__LOCAL_NODE": "true", "CUMULO_COMPUTE__HOST": "fq",
                                           "CUMULO_COMPUTE__SHUTDOWN_TIMEOUT": "5",
                                           "CUMULO_COMPUTE__BUILD_TIMEOUT": "30",
                                           "CUMULO_NETWORK__DATAPLANE": "true",
                                           "CUMULO_NETWORK__RECONCILE_INTERVAL": "3"}, {agent: False})
    rows: list[Row] = []
    try:
        hosts = ["fq", agent]
        wait_hosts(cloud, hosts, 90)
        network = make_network(cloud, "10.78.0.0/24")
        ledger = Ledger()
        cycles(cloud, ledger, rng, n, hosts, network, 0.6, 0.2, 4.0, 90, "qemu")
        rows += finish(cloud, ledger, "qemu", n, {network}, True, timeout=120)
        r = cloud.call("DELETE", f"{cloud.url('network')}/networks/{network}")
        if r is None or r.status_code != 204:
            log(f"deleting the network: {r.status_code if r is not None else 'no answer'}")
        bad = audit(cloud, Ledger(), set(), True, 60)
        rows.append(("qemu/network deleted", 0, 0, bad))
    finally:
        cloud.stop()
        for pid in qemu_cmdlines(cloud.root):  # whatever the audit counted must not outlive the run
            os.kill(pid, signal.SIGKILL)
        subprocess.run([CUMULO, "network", "cleanup", "--yes"], env=cloud.env, capture_output=True, timeout=120)
    return rows


def finish(cloud: Cloud, ledger: Ledger, name: str, size: int, networks: set[str], qemu: bool,
           timeout: float = 3 * LEASE + 30) -> list[Row]:
    if qemu:  # what the checks below look at, so a run shows they see something
        log(f"{name}: before the audit {len(qemu_cmdlines(cloud.root))} QEMU, {len(taps(cloud.prefix))} taps, "
            f"namespaces {namespaces(cloud.prefix)}, {len(dnsmasq_pids(cloud.root))} dnsmasq")
    bad = audit(cloud, ledger, networks, qemu, timeout)
    outcomes = list(ledger.outcome.values())
    info = {"active": outcomes.count("ACTIVE"), "error": outcomes.count("ERROR"), "no_answer": ledger.refused,
            "5xx": ledger.errors}
    log(f"{name}: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    INFOS[name] = info
    rows: list[Row] = [(name, size, len(ledger.kills), bad)]
    clean(cloud, ledger)
    rows.append((f"{name}/deleted", 0, 0, audit(cloud, ledger, networks, qemu, timeout)))
    return rows


INFOS: dict[str, dict[str, int]] = {}


def table(rows: list[Row]) -> str:
    head = ["phase", "cycles", "faults", *INFO, *COUNTS]
    lines = [head] + [[name, str(size), str(kills), *(str(INFOS.get(name, {}).get(k, "")) for k in INFO),
                       *(str(len(bad[k])) for k in COUNTS)] for name, size, kills, bad in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.rjust(w) if j else cell.ljust(w)
                               for j, (cell, w) in enumerate(zip(line, widths, strict=True))) for line in lines)


def run(seed: int, fake: int, qemu: int, rabbit: int, postgres: int, wave: int = 5,
        workdir: Path | None = None) -> tuple[list[Row], int]:
    """The whole matrix; returns its rows and the number of violations."""
    log(f"seed {seed} (replay with --seed {seed})")
    rng = random.Random(seed)
    root = Path(workdir or tempfile.mkdtemp(prefix="cf-", dir="/tmp"))  # short: QEMU's socket paths
    rows: list[Row] = []
    try:
        if fake or rabbit or postgres:
            rows += phase_fake(root, rng, fake, rabbit, postgres, wave)
        if qemu:
            rows += phase_qemu(root, rng, qemu)
    finally:
        ensure_services()
    violations = sum(len(v) for _, _, _, bad in rows for v in bad.values())
    print(table(rows), flush=True)
    for name, _, _, bad in rows:
        for kind, items in bad.items():
            for item in items[:10]:
                print(f"VIOLATION {name} {kind}: {item}", flush=True)
    print(f"seed {seed}: {violations} violations; state in {root}", flush=True)
    return rows, violations


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--fake", type=int, default=200, help="boot/delete cycles on fake nodes")
    ap.add_argument("--qemu", type=int, default=20, help="boot/delete cycles with real guests")
    ap.add_argument("--rabbit", type=int, default=100, help="boots during RabbitMQ restarts")
    ap.add_argument("--postgres", type=int, default=50, help="boots during PostgreSQL restarts")
    ap.add_argument("--wave", type=int, default=5, help="boots per service restart")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    _, violations = run(seed, args.fake, args.qemu, args.rabbit, args.postgres, args.wave)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
