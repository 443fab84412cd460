"""Real clouds for the functional tests.

``cloud`` starts ``cumulo up`` as a subprocess on free ports, once per backend:

* ``sqlite``   — SQLite in a temporary state directory and the in-process bus;
* ``postgres`` — a fresh PostgreSQL database on 127.0.0.1:5432 and RabbitMQ on 127.0.0.1:5672;
* ``mariadb``  — a fresh MariaDB database on 127.0.0.1:3306 and the in-process bus.

Every test that takes ``cloud`` runs against all three.  Modules that need a cloud configured
their own way (network, dataplane, QEMU, compute security groups) start one on SQLite; the races
that only PostgreSQL and MariaDB can show (addresses, quotas) run on all three in test_races.py.
The tests drive the cloud with openstacksdk, the ``openstack`` CLI and plain HTTP, exactly as a
user would; ``wait_for`` waits on state with a deadline (never a fixed sleep).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
RABBIT = "amqp://guest:guest@127.0.0.1:5672/"


# Listening ports come from below the kernel's ephemeral range (32768-60999), where no outgoing
# connection can take one between this choice and the cloud's bind, and each xdist worker has a
# slice of its own, so two workers starting clouds at once never pick the same one.
PORT_SLICE = 3000
_next_port: list[int] = []


def free_port() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) % 4 if worker[2:].isdigit() else 0
    low = 20000 + index * PORT_SLICE
    if not _next_port:  # a random start: separate test runs side by side rarely meet
        _next_port.append(low + random.randrange(PORT_SLICE))
    for _ in range(PORT_SLICE):
        port = _next_port[0]
        _next_port[0] = low + (port + 1 - low) % PORT_SLICE
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or lingering): the next one
            return port
    raise RuntimeError(f"no free port in {low}-{low + PORT_SLICE - 1}")


@dataclass
class Cloud:
    backend: str
    state_dir: Path
    url: str  # identity v3
    admin_password: str
    demo_password: str
    clouds_yaml: Path
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    metrics_port: int
    image_url: str = ""
    compute_url: str = ""
    placement_url: str = ""
    metadata_url: str = ""
    network_url: str = ""
    volume_url: str = ""  # block storage v3, when a test's cloud runs "volume" (CUMULO_SERVICES)
    object_url: str = ""  # the Swift v1 API's root (append /v1/AUTH_<project_id>), when it runs "object"
    s3_url: str = ""  # the S3 API's root (path-style), when it runs "object"

    def token(self, user: str = "admin", password: str | None = None, project: str | None = "admin",
              domain: str = "Default") -> tuple[str, dict]:
        body: dict = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": domain},
            "password": password if password is not None else self.admin_password}}}}}
        if project:
            body["auth"]["scope"] = {"project": {"name": project, "domain": {"name": domain}}}
        else:
            body["auth"]["scope"] = "unscoped"
        r = httpx.post(f"{self.url}/auth/tokens", json=body)
        assert r.status_code == 201, r.text
        return r.headers["X-Subject-Token"], r.json()["token"]

    def cli(self, *args: str, cloud: str = "cumulo", check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml), "OS_CLOUD": cloud}
        for key in list(env):
            if key.startswith("OS_") and key not in ("OS_CLIENT_CONFIG_FILE", "OS_CLOUD"):
                env.pop(key)
        proc = subprocess.run([str(BIN / "openstack"), *args], capture_output=True, text=True, env=env,
                              timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"openstack {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    def sdk(self, cloud: str = "cumulo"):  # type: ignore[no-untyped-def]
        import openstack.config

        config = openstack.config.OpenStackConfig(config_files=[str(self.clouds_yaml)])
        return openstack.connection.Connection(config=config.get_one(cloud=cloud))


def _create_pg_database() -> str:
    name = f"cumulo_test_{uuid.uuid4().hex[:10]}"
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc",
                    f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return name


def _create_mariadb_database() -> str:
    name = f"cumulo_test_{uuid.uuid4().hex[:10]}"
    subprocess.run(["mariadb", "-h", "127.0.0.1", "-u", "root", "-e", f"CREATE DATABASE {name}"], check=True,
                   capture_output=True)
    return name


def _drop_mariadb_database(name: str) -> None:
    subprocess.run(["mariadb", "-h", "127.0.0.1", "-u", "root", "-e", f"DROP DATABASE IF EXISTS {name}"],
                   check=False, capture_output=True)


def _drop_pg_database(name: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc",
                    f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False, capture_output=True)


def start_cloud(tmp: Path, backend: str, extra_env: dict[str, str] | None = None) -> Cloud:
    port, metrics_port, image_port, compute_port = free_port(), free_port(), free_port(), free_port()
    placement_port, metadata_port, network_port = free_port(), free_port(), free_port()
    volume_port, object_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUMULO_", "OS_"))}
    env.update({
        "CUMULO_STATE_DIR": str(tmp),
        "CUMULO_IDENTITY__PORT": str(port),
        "CUMULO_METRICS__PORT": str(metrics_port),
        "CUMULO_IMAGE__PORT": str(image_port),
        "CUMULO_COMPUTE__PORT": str(compute_port),
        "CUMULO_PLACEMENT__PORT": str(placement_port),
        "CUMULO_COMPUTE__METADATA_PORT": str(metadata_port),
        "CUMULO_COMPUTE__SERIAL_PROXY_PORT": str(free_port()),  # the console proxies (6083, 6080 by default)
        "CUMULO_COMPUTE__NOVNC_PROXY_PORT": str(free_port()),
        "CUMULO_NETWORK__PORT": str(network_port),
        "CUMULO_VOLUME__PORT": str(volume_port),  # used only where a test adds "volume" to the services
        "CUMULO_VOLUME__REPORT_INTERVAL": "1",
        "CUMULO_OBJECT__PORT": str(object_port),  # used only where a test adds "object" to the services
        "CUMULO_OBJECT__S3_PORT": str(free_port()),
        "CUMULO_DASHBOARD__PORT": str(free_port()),
        "CUMULO_IMAGE__UPLOAD_LEASE": "2",
        "CUMULO_IDENTITY__PASSWORD_HASH_ROUNDS": "4",
        "CUMULO_BOOTSTRAP__WRITE_USER_CLOUDS": "false",
        "CUMULO_IDENTITY__SECURITY_COMPLIANCE__LOCKOUT_FAILURE_ATTEMPTS": "3",
        "CUMULO_IDENTITY__SECURITY_COMPLIANCE__LOCKOUT_DURATION": "3",
        "CUMULO_IDENTITY__SECURITY_COMPLIANCE__UNIQUE_LAST_PASSWORD_COUNT": "2",
        "CUMULO_LOGGING__FILE": str(tmp / "cumulo.log"),
        "CUMULO_COMPUTE__FAKE_NODES": "2",
        "CUMULO_COMPUTE__LOCAL_NODE": "false",  # QEMU nodes only where a test asks for one
        "CUMULO_COMPUTE__REPORT_INTERVAL": "1",
        "CUMULO_COMPUTE__SERVICE_DOWN_TIME": "8",
        "CUMULO_COMPUTE__BUILD_TIMEOUT": "6",
        # the dataplane (namespaces, dnsmasq) only where a test asks for it, with a prefix of its own
        "CUMULO_NETWORK__DATAPLANE": "false",
        "CUMULO_NETWORK__BOOTSTRAP": "false",
        "CUMULO_NETWORK__NAMESPACE_PREFIX": f"cumulo-test-{uuid.uuid4().hex[:6]}",
        # one process serves these clouds (their tests read the leader's metrics and logs);
        # tests/functional/test_workers.py starts clouds with API workers
        "CUMULO_API__WORKERS": "1",
    })
    # a new database unless the caller names one (a restart passes its cloud's); dropped again if
    # the cloud does not come up (otherwise its fixture's teardown drops it)
    made: Callable[[], None] = lambda: None  # noqa: E731
    fresh = "CUMULO_DATABASE__URL" not in (extra_env or {})
    if backend == "postgres":
        if fresh:
            name = _create_pg_database()
            env["CUMULO_DATABASE__URL"] = f"postgresql://postgres@127.0.0.1:5432/{name}"
            made = lambda: _drop_pg_database(name)  # noqa: E731
        env["CUMULO_BUS__URL"] = RABBIT
        env["CUMULO_BUS__PREFIX"] = f"cumulo-test-{uuid.uuid4().hex[:8]}"  # clouds share the broker
    elif backend == "mariadb" and fresh:
        name = _create_mariadb_database()
        env["CUMULO_DATABASE__URL"] = f"mysql://root@127.0.0.1:3306/{name}"
        made = lambda: _drop_mariadb_database(name)  # noqa: E731
    env.update(extra_env or {})
    # a restart passes its cloud's ports: the addresses are the environment's
    port, metrics_port, image_port, compute_port, placement_port, metadata_port, network_port, volume_port, \
        object_port = (int(env[f"CUMULO_{name}PORT"]) for name in (
            "IDENTITY__", "METRICS__", "IMAGE__", "COMPUTE__", "PLACEMENT__", "COMPUTE__METADATA_", "NETWORK__",
            "VOLUME__", "OBJECT__"))
    proc = subprocess.Popen([str(BIN / "cumulo"), "up"], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(tmp / "stderr.log", "wb"), start_new_session=True)
    url = f"http://127.0.0.1:{port}/v3"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            made()
            raise RuntimeError(f"cumulo up exited {proc.returncode}:\n{(tmp / 'stderr.log').read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200 and (tmp / "status.json").exists():
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            made()
            raise RuntimeError(f"cumulo up did not answer in 60 s:\n{(tmp / 'stderr.log').read_text()}")
        time.sleep(0.1)
    clouds_yaml = tmp / "clouds.yaml"
    data = yaml.safe_load(clouds_yaml.read_text())["clouds"]
    return Cloud(backend, tmp, url, data["cumulo"]["auth"]["password"],
                 data["cumulo-demo"]["auth"]["password"], clouds_yaml, proc, env, metrics_port,
                 f"http://127.0.0.1:{image_port}", f"http://127.0.0.1:{compute_port}/v2.1",
                 f"http://127.0.0.1:{placement_port}", f"http://127.0.0.1:{metadata_port}",
                 f"http://127.0.0.1:{network_port}/v2.0", f"http://127.0.0.1:{volume_port}/v3",
                 f"http://127.0.0.1:{object_port}", f"http://127.0.0.1:{env['CUMULO_OBJECT__S3_PORT']}")


def stop_cloud(cloud: Cloud, timeout: float = 15) -> int:
    if cloud.proc.poll() is None:
        cloud.proc.send_signal(signal.SIGINT)
        try:
            cloud.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            cloud.proc.kill()
            cloud.proc.wait()
    return cloud.proc.returncode


@pytest.fixture(scope="session", params=["sqlite", "postgres", "mariadb"])
def cloud(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    tmp = tmp_path_factory.mktemp(f"cloud-{request.param}")
    c = start_cloud(tmp, request.param)
    yield c
    stop_cloud(c)
    if request.param == "postgres":
        _drop_pg_database(c.env["CUMULO_DATABASE__URL"].rsplit("/", 1)[1])
    elif request.param == "mariadb":
        _drop_mariadb_database(c.env["CUMULO_DATABASE__URL"].rsplit("/", 1)[1])


BLOCK_STORAGE_SERVICES = "identity,image,compute,placement,network,volume"


def block_storage_cloud(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                        name: str) -> Iterator[Cloud]:
    """For a module's fixture parametrized by backend (sqlite, postgres): a cloud with block
    storage and no guest image upload; its PostgreSQL database is dropped after."""
    c = start_cloud(tmp_path_factory.mktemp(f"{name}-{request.param}"), request.param, {
        "CUMULO_SERVICES": BLOCK_STORAGE_SERVICES, "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false"})
    yield c
    stop_cloud(c)
    if request.param == "postgres":
        _drop_pg_database(c.env["CUMULO_DATABASE__URL"].rsplit("/", 1)[1])


@pytest.fixture
def admin(cloud: Cloud) -> tuple[str, dict]:
    return cloud.token()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(check: Callable[[], object], timeout: float, what: str, every: float = 0.2) -> object:
    """Poll ``check`` until it returns something true and return that; fail after ``timeout`` s
    saying ``what`` was awaited (synchronization on state, never on a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(every)


def identity_admin(cloud: Cloud) -> Callable[..., Any]:
    """``v3(method, path, body=None)``: the cloud's identity API as its admin; a failure fails the test."""
    h = {"X-Auth-Token": cloud.token()[0]}

    def v3(method: str, path: str, body: Any = None) -> Any:
        r = httpx.request(method, f"{cloud.url}{path}", json=body, headers=h)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None
    return v3


@dataclass
class Persona:
    token: str
    project_id: str
    user_id: str
    project_name: str
    user_name: str = ""  # and the password: what a login form takes (the dashboard's tests)
    password: str = ""


def make_project_member(cloud: Cloud, prefix: str, role: str = "member", project: dict[str, Any] | None = None,
                        v3: Callable[..., Any] | None = None) -> Persona:
    """A new user with ``role`` on ``project`` (a new project when none is given), with its token."""
    v3 = v3 or identity_admin(cloud)
    if project is None:
        project = v3("POST", "/projects", {"project": {"name": unique(prefix), "domain_id": "default"}})["project"]
    role_id = [x["id"] for x in v3("GET", f"/roles?name={role}")["roles"]][0]
    user_name, password = unique(f"{prefix}-{role}"), uuid.uuid4().hex
    user = v3("POST", "/users", {"user": {"name": user_name, "password": password, "domain_id": "default"}})["user"]
    v3("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{role_id}")
    return Persona(cloud.token(user_name, password, project["name"])[0], project["id"], user["id"], project["name"],
                   user_name, password)


def make_people(cloud: Cloud, prefix: str) -> dict[str, Persona]:
    """A new project P with a ``member`` and a ``reader``, and the ``other``, a member of a new
    project Q, made by the cloud's admin."""
    v3 = identity_admin(cloud)
    projects = {key: v3("POST", "/projects", {"project": {"name": unique(f"{prefix}-{key}"), "domain_id": "default"}})[
        "project"] for key in ("P", "Q")}
    return {name: make_project_member(cloud, prefix, role, projects[key], v3)
            for name, key, role in (("member", "P", "member"), ("reader", "P", "reader"), ("other", "Q", "member"))}


def personas(cloud: Cloud, prefix: str) -> dict[str, tuple[str, str]]:
    """``make_people``, as each persona's (token, project id)."""
    return {name: (p.token, p.project_id) for name, p in make_people(cloud, prefix).items()}
