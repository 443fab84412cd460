"""Hosts join the cloud: ``cumulo node token create`` on the controller, ``cumulo node join`` on the
host (here a process of its own with its own state directory), ``cumulo node list`` and
``cumulo node remove``.

One cloud on SQLite and RabbitMQ (a bus prefix of its own), no fake nodes of its own: the joined
hosts are the compute nodes.  A token joins once; reused, expired, garbage or asking for roles it
does not allow it is refused with the reason; the joined host shows in os-services,
os-hypervisors, the volume services and ``node list``, takes a server, and ``node remove``
refuses while the server is there or its agents report, then removes it everywhere.  Neither the
join's output nor the controller's log holds the bus password, the metadata secret or the token.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.functional.conftest import BIN, RABBIT, Cloud, make_people, start_cloud, stop_cloud, unique, wait_for


@pytest.fixture(scope="module")
def ncloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("ctl"), "sqlite", {
        "CUMULO_BUS__URL": RABBIT, "CUMULO_BUS__PREFIX": f"cumulo-test-{unique('join')}",
        "CUMULO_COMPUTE__FAKE_NODES": "0", "CUMULO_COMPUTE__METADATA_SECRET": f"mdsecret-{unique('x')}",
        "CUMULO_SERVICES": "identity,image,compute,placement,network,volume",
        "CUMULO_VOLUME__LOCAL_NODE": "false", "CUMULO_COMPUTE__BUILD_TIMEOUT": "120",
        "CUMULO_VOLUME__SERVICE_DOWN_TIME": "8"})
    yield c
    stop_cloud(c)


class Node:
    """A `cumulo node join` process with its own state directory."""

    def __init__(self, state: Path, run: int = 1) -> None:
        self.state, self.proc, self.out = state, None, state.with_name(f"{state.name}-{run}.out")

    def start(self, *args: str) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CUMULO_", "OS_"))}
        self.proc = subprocess.Popen([str(BIN / "cumulo"), "--state-dir", str(self.state), "node", "join", *args],
                                     env=env, stdout=open(self.out, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def output(self) -> str:
        return self.out.read_text() if self.out.exists() else ""

    def wait_up(self, timeout: float = 60) -> None:
        wait_for(lambda: " runs " in self.output() or self.proc.poll() is not None, timeout, "the node's agents")
        assert self.proc.poll() is None, self.output()

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[Node]]:
    made: list[Node] = []
    yield made
    for node in made:
        node.stop()


def ctl(cloud: Cloud, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A `cumulo` command on the controller (its state directory and database)."""
    proc = subprocess.run([str(BIN / "cumulo"), *args], env=cloud.env, capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def join_once(cloud: Cloud, state: Path, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A join that is refused ends at once: run it to its end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUMULO_", "OS_"))}
    return subprocess.run([str(BIN / "cumulo"), "--state-dir", str(state), "node", "join", "--controller",
                           cloud.url.removesuffix("/v3"), "--token", token, *args],
                          env=env, capture_output=True, text=True, timeout=60)


def admin_get(cloud: Cloud, url: str, version: str = "compute 2.53") -> dict:
    r = httpx.get(url, headers={"X-Auth-Token": cloud.token()[0], "OpenStack-API-Version": version}, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def compute_services(cloud: Cloud) -> dict[str, dict]:
    return {s["host"]: s for s in admin_get(cloud, f"{cloud.compute_url}/os-services")["services"]}


def hypervisors(cloud: Cloud) -> list[str]:
    return [x["hypervisor_hostname"] for x in admin_get(cloud, f"{cloud.compute_url}/os-hypervisors")["hypervisors"]]


def volume_services(cloud: Cloud) -> list[str]:
    r = httpx.get(f"{cloud.volume_url}/os-services", headers={"X-Auth-Token": cloud.token()[0]}, timeout=30)
    assert r.status_code == 200, r.text
    return [s["host"] for s in r.json()["services"] if s["binary"] == "cinder-volume"]


def token(cloud: Cloud, *args: str) -> str:
    out = ctl(cloud, "node", "token", "create", *args)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and "." in lines[0], out.stdout
    assert "cumulo node join --controller" in out.stderr and lines[0] not in out.stderr  # the secret is shown once
    return lines[0]


def boot(cloud: Cloud, host: str, image: str | None = None, flavor: str = "10") -> str:
    admin = cloud.token()[0]
    if image is None:
        image = httpx.get(f"{cloud.image_url}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": admin}
                          ).json()["images"][0]["id"]
    r = httpx.post(f"{cloud.compute_url}/servers", headers={"X-Auth-Token": admin, "OpenStack-API-Version":
                                                           "compute 2.47"}, json={"server": {
        "name": unique("onnode"), "flavorRef": flavor, "imageRef": image, "networks": "none",
        "availability_zone": f"nova:{host}"}}, timeout=30)
    assert r.status_code == 202, r.text
    return str(r.json()["server"]["id"])


def server(cloud: Cloud, sid: str) -> dict:
    r = httpx.get(f"{cloud.compute_url}/servers/{sid}", headers={"X-Auth-Token": cloud.token()[0],
                                                                 "OpenStack-API-Version": "compute 2.47"}, timeout=30)
    return dict(r.json()["server"]) if r.status_code == 200 else {"status": f"gone ({r.status_code})"}


def wait_status(cloud: Cloud, sid: str, status: str, timeout: float = 90) -> dict:
    wait_for(lambda: server(cloud, sid)["status"] in (status, "ERROR"), timeout, f"server {sid} {status}")
    s = server(cloud, sid)
    assert s["status"] == status, s
    return s


def delete_server(cloud: Cloud, sid: str) -> None:
    httpx.delete(f"{cloud.compute_url}/servers/{sid}", headers={"X-Auth-Token": cloud.token()[0]}, timeout=30)
    wait_for(lambda: server(cloud, sid)["status"].startswith("gone"), 60, f"server {sid} deleted")


def test_join_run_list_remove(ncloud: Cloud, nodes: list[Node], tmp_path: Path) -> None:
    host = unique("node")
    node = Node(tmp_path / "n1")
    nodes.append(node)
    t = token(ncloud, "--ttl", "600", "--roles", "compute,volume")
    node.start("--controller", ncloud.url.removesuffix("/v3"), "--token", t, "--role", "compute,volume",
               "--host", host, "--management-address", "127.0.0.1", "--fake")
    node.wait_up()
    out = node.output()
    # one line a step, no secret: not the bus password, the metadata secret, nor the token's secret
    assert f"asking {ncloud.url.removesuffix('/v3')} to join as {host} (roles compute,volume)" in out
    assert "wrote" in out and "amqp://guest:***@" in out and "compute agent" in out and "volume agent" in out
    assert "guest:guest@" not in out and ncloud.env["CUMULO_COMPUTE__METADATA_SECRET"] not in out
    assert t.split(".")[1] not in out
    assert all(line.startswith("cumulo node: ") for line in out.strip().splitlines()), out
    toml = (node.state / "cumulo.toml").read_text()
    assert stat.S_IMODE((node.state / "cumulo.toml").stat().st_mode) == 0o600
    assert ncloud.env["CUMULO_COMPUTE__METADATA_SECRET"] in toml and ncloud.env["CUMULO_BUS__PREFIX"] in toml
    assert 'tunnel_address = "127.0.0.1"' in toml and t not in toml

    # the host is a compute service, a hypervisor, a volume service and a node of `node list`
    wait_for(lambda: compute_services(ncloud).get(host, {}).get("state") == "up", 30, "the compute service up")
    assert host in hypervisors(ncloud)
    wait_for(lambda: f"{host}@file" in volume_services(ncloud), 30, "the volume service")
    listing = ctl(ncloud, "node", "list").stdout
    line = next(x for x in listing.splitlines() if x.startswith(host))
    assert "compute,volume" in line and "nova-compute" in line and " up" in line, listing
    assert "cinder-volume" in listing

    # a server scheduled to it goes ACTIVE there
    sid = boot(ncloud, host)
    s = wait_status(ncloud, sid, "ACTIVE")
    assert s["OS-EXT-SRV-ATTR:host"] == host

    # remove refuses while the server is on it, and while its agents report
    refused = ctl(ncloud, "node", "remove", host, check=False)
    assert refused.returncode == 1 and f"host {host} still holds servers" in refused.stderr
    assert "openstack server migrate" in refused.stderr and "--force" in refused.stderr
    delete_server(ncloud, sid)
    refused = ctl(ncloud, "node", "remove", host, check=False)
    assert refused.returncode == 1 and "stop `cumulo node join`" in refused.stderr, refused.stderr

    # join run again with the same state directory reuses the saved configuration (no token)
    assert node.stop() == 0
    assert "stopping the agents" in node.output()
    before = (node.state / "cumulo.toml").read_bytes()
    again = Node(tmp_path / "n1", run=2)
    nodes.append(again)
    again.start()
    again.wait_up()
    assert f"reusing {node.state / 'cumulo.toml'}: {host}, roles compute,volume" in again.output()
    assert (node.state / "cumulo.toml").read_bytes() == before
    assert again.stop() == 0

    # stopped: once its services are down, remove deletes them everywhere
    def removed() -> bool:
        return ctl(ncloud, "node", "remove", host, check=False).returncode == 0

    wait_for(removed, 30, "node remove to succeed once the agents are silent", every=1)
    assert host not in compute_services(ncloud) and host not in hypervisors(ncloud)
    assert f"{host}@file" not in volume_services(ncloud)
    assert host not in ctl(ncloud, "node", "list").stdout
    gone = ctl(ncloud, "node", "remove", host, check=False)
    assert gone.returncode == 1 and f"no host {host!r}" in gone.stderr

    # the controller's log has neither the token's secret nor the metadata secret
    log = (ncloud.state_dir / "cumulo.log").read_text()
    assert f"host {host} joined with join token {t.split('.')[0]}" in log
    assert t.split(".")[1] not in log and ncloud.env["CUMULO_COMPUTE__METADATA_SECRET"] not in log


def test_tokens_refused(ncloud: Cloud, tmp_path: Path, nodes: list[Node]) -> None:
    url = ncloud.url.removesuffix("/v3")
    # garbage, a wrong secret for a real id, too long: 401 / 400, with what to do
    t = token(ncloud, "--roles", "compute")
    for bad in ("garbage", t.split(".")[0] + "." + "A" * 43, "x" * 5000):
        r = httpx.post(f"{url}/v3/OS-CUMULO/nodes/join",
                       json={"join": {"token": bad, "host": "h1", "roles": ["compute"]}})
        assert r.status_code == (400 if len(bad) > 128 else 401), r.text
    garbage = join_once(ncloud, tmp_path / "g", "not-a-token", "--role", "compute", "--fake")
    assert garbage.returncode == 1 and "refused the join (401): The join token is not valid" in garbage.stderr
    # roles the token does not allow: 403, and the token stays usable
    wrong = join_once(ncloud, tmp_path / "w", t, "--role", "volume")
    assert wrong.returncode == 1 and "(403)" in wrong.stderr and "allows the roles compute, not volume" in wrong.stderr
    # used once, then refused (403) naming the host that used it
    host = unique("once")
    first = Node(tmp_path / "first")
    nodes.append(first)
    first.start("--controller", url, "--token", t, "--role", "compute", "--host", host, "--fake")
    first.wait_up()
    reused = join_once(ncloud, tmp_path / "r", t, "--role", "compute", "--fake")
    assert reused.returncode == 1 and f"was used already (by host {host}" in reused.stderr
    assert "cumulo node token create" in reused.stderr
    first.stop()
    ctl(ncloud, "node", "remove", host, "--force")
    # expired: 403
    old = token(ncloud)
    db = sqlite3.connect(ncloud.state_dir / "cumulo.db")
    db.execute("UPDATE identity_node_join_token SET expires_at = '2020-01-01 00:00:00.000000' WHERE id = ?",
               (old.split(".")[0],))
    db.commit()
    db.close()
    expired = join_once(ncloud, tmp_path / "e", old, "--role", "compute", "--fake")
    assert expired.returncode == 1 and "(403)" in expired.stderr and "expired at 2020-01-01" in expired.stderr
    # no token and nothing saved: told what to give
    bare = subprocess.run([str(BIN / "cumulo"), "--state-dir", str(tmp_path / "none"), "node", "join"],
                          capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2 and "give --controller URL and --token" in bare.stderr
    # token create checks its options
    assert "between 60 and" in ctl(ncloud, "node", "token", "create", "--ttl", "5", check=False).stderr


def test_join_route_takes_no_keystone_token(ncloud: Cloud) -> None:
    """The join route's credential is the join token: no persona's Keystone token opens it (nor is one needed)."""
    people = make_people(ncloud, "join")
    url = f"{ncloud.url}/OS-CUMULO/nodes/join"
    body = {"join": {"token": "0123456789abcdef." + "B" * 43, "host": "h2", "roles": ["compute"]}}
    for name, tok in (("admin", ncloud.token()[0]), ("member", people["member"].token),
                      ("reader", people["reader"].token), ("none", "")):
        r = httpx.post(url, json=body, headers={"X-Auth-Token": tok} if tok else {})
        assert r.status_code == 401, (name, r.text)
    # and the CLI that makes tokens is the controller's (its database), not an API: nothing to ask as a persona
    r = httpx.post(url, json={"join": {"token": "x", "host": "bad host!", "roles": ["compute"]}})
    assert r.status_code == 400 and "host" in r.text
    r = httpx.post(url, json={"join": {"token": "x", "host": "h3", "roles": ["object"]}})
    assert r.status_code == 400 and "unknown role" in r.text


@pytest.mark.skipif(not shutil.which("qemu-system-x86_64") or not (Path(__file__).parents[2] / "guest/out").exists(),
                    reason="needs QEMU and the cumulo-tiny guest (guest/build.sh)")
def test_qemu_node_boots_a_guest(ncloud: Cloud, nodes: list[Node]) -> None:
    host = unique("q")
    short = Path(tempfile.mkdtemp(prefix="cj", dir="/tmp"))  # QEMU's monitor sockets: paths under 107 bytes
    node = Node(short / "q")
    nodes.append(node)
    sid = ""
    try:
        node.start("--controller", ncloud.url.removesuffix("/v3"), "--token", token(ncloud, "--roles", "compute"),
                   "--role", "compute", "--host", host)
        node.wait_up()
        assert "QEMU driver" in node.output()
        wait_for(lambda: compute_services(ncloud).get(host, {}).get("state") == "up", 30, "the QEMU node up")
        sid = boot(ncloud, host)
        s = wait_status(ncloud, sid, "ACTIVE", timeout=180)
        assert s["OS-EXT-SRV-ATTR:host"] == host
        assert list((node.state / "instances" / host / sid).glob("*")), "the instance's files on the node"
    finally:
        if sid:  # its QEMU goes with it (a stopped agent would leave the guest running)
            delete_server(ncloud, sid)
        node.stop()
        ctl(ncloud, "node", "remove", host, "--force", check=False)
        shutil.rmtree(short, ignore_errors=True)


def network_agents(cloud: Cloud) -> list[dict]:
    r = httpx.get(f"{cloud.network_url}/agents", headers={"X-Auth-Token": cloud.token()[0]}, timeout=30)
    assert r.status_code == 200, r.text
    return list(r.json()["agents"])


def _no_dataplane() -> list[str]:
    from cumulo.network.dataplane.linux import missing_tools

    return missing_tools()


@pytest.mark.skipif(bool(_no_dataplane()), reason="the network role needs the dataplane (root, iproute2, dnsmasq)")
def test_network_role(ncloud: Cloud, nodes: list[Node], tmp_path: Path) -> None:
    """A host joined with the network role runs the network agent: its agents in GET /v2.0/agents
    and `node list`, gone from both after `node remove`."""
    host = unique("net")
    node = Node(tmp_path / "net")
    nodes.append(node)
    try:
        node.start("--controller", ncloud.url.removesuffix("/v3"), "--token", token(ncloud), "--role",
                   "compute,network", "--host", host, "--management-address", "127.0.0.1", "--fake")
        node.wait_up()
        assert "network agent of" in node.output() and "tunnels on 127.0.0.1" in node.output()
        wait_for(lambda: {a["agent_type"] for a in network_agents(ncloud) if a["host"] == host and a["alive"]}
                 >= {"DHCP agent", "L3 agent", "Linux bridge agent"}, 60, "the host's network agents")
        line = next(x for x in ctl(ncloud, "node", "list").stdout.splitlines() if x.startswith(host))
        assert "compute,network" in line
        refused = ctl(ncloud, "node", "remove", host, check=False)
        assert refused.returncode == 1 and "still report" in refused.stderr
        assert node.stop() == 0
        assert "network agents" in ctl(ncloud, "node", "remove", host, "--force").stdout
        assert not [a for a in network_agents(ncloud) if a["host"] == host]
        assert host not in compute_services(ncloud)
    finally:
        node.stop()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CUMULO_", "OS_"))}
        subprocess.run([str(BIN / "cumulo"), "--state-dir", str(node.state), "network", "cleanup", "--yes"],
                       env=env, capture_output=True, timeout=120)
