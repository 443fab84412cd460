"""Tracing one request through the cloud's logs: a server boot's request id is on the lines of the
API, the scheduler, the bus hops, the conductor and a compute agent in a process of its own (the
id crossed RabbitMQ in the RPC envelope), and `cumulo trace` puts them in time order; a volume's
create reaches the volume node the same way; `cumulo logs --service` filters; the cloud's JSON
log parses line by line.

One cloud (PostgreSQL and RabbitMQ, so the bus crosses processes; JSON logs; two fake compute
nodes and the file volume node in process) plus one `cumulo agent --fake` process with a text log.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functional.conftest import (
    BIN,
    BLOCK_STORAGE_SERVICES,
    Cloud,
    _drop_pg_database,
    start_cloud,
    stop_cloud,
    unique,
    wait_for,
)

pytestmark = pytest.mark.functional
REQUEST_ID = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("trace"), "postgres", {
        "CUMULO_SERVICES": BLOCK_STORAGE_SERVICES, "CUMULO_LOGGING__FORMAT": "json"})
    yield c
    stop_cloud(c)
    _drop_pg_database(c.env["CUMULO_DATABASE__URL"].rsplit("/", 1)[1])


@pytest.fixture(scope="module")
def agent(cloud: Cloud) -> Iterator[tuple[str, Path]]:
    """A compute agent in a process of its own, logging text to a file of its own."""
    host, log = unique("tracenode"), cloud.state_dir / "agent.log"
    env = {**cloud.env, "CUMULO_LOGGING__FILE": str(log), "CUMULO_LOGGING__FORMAT": "text"}
    proc = subprocess.Popen([str(BIN / "cumulo"), "agent", "--host", host, "--fake"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    token = cloud.token()[0]

    def up() -> bool:
        r = httpx.get(f"{cloud.compute_url}/os-services?binary=nova-compute", headers={"X-Auth-Token": token})
        return any(s["host"] == host and s["state"] == "up" for s in r.json()["services"])

    try:
        wait_for(up, 30, f"agent {host} to register")
        wait_for(lambda: httpx.get(f"{cloud.placement_url}/resource_providers?name={host}", headers={
            "X-Auth-Token": token, "OpenStack-API-Version": "placement 1.20"}).json()["resource_providers"], 15,
            f"{host} in placement")
        yield host, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def cumulo(cloud: Cloud, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(BIN / "cumulo"), *args], env=cloud.env, capture_output=True, text=True, timeout=60)
    if check:
        assert out.returncode == 0, out.stderr + out.stdout
    return out


def trace_json(cloud: Cloud, rid: str, *extra: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in cumulo(cloud, "trace", rid, "--json", *extra).stdout.splitlines()]


@pytest.fixture(scope="module")
def boot(cloud: Cloud, agent: tuple[str, Path]) -> tuple[str, str]:
    """A server booted on the separate agent's node; the request id the API answered with."""
    token = cloud.token()[0]
    image = httpx.get(f"{cloud.image_url}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": token}).json()
    caller_id = f"req-{uuid.uuid4()}"  # a caller's own (global) id is kept beside the one the cloud gives
    r = httpx.post(f"{cloud.compute_url}/servers", headers={
        "X-Auth-Token": token, "OpenStack-API-Version": "compute 2.47", "X-OpenStack-Request-ID": caller_id},
        json={"server": {"name": unique("traced"), "flavorRef": "10", "imageRef": image["images"][0]["id"],
                         "networks": "none", "availability_zone": f"nova:{agent[0]}"}})
    assert r.status_code == 202, r.text
    rid = r.headers["x-openstack-request-id"]
    assert REQUEST_ID.match(rid) and rid != caller_id and r.headers["x-compute-request-id"] == rid
    server_id = r.json()["server"]["id"]

    def active() -> bool:
        s = httpx.get(f"{cloud.compute_url}/servers/{server_id}", headers={"X-Auth-Token": token}).json()
        assert s["server"]["status"] != "ERROR", s
        return bool(s["server"]["status"] == "ACTIVE")

    wait_for(active, 30, f"server {server_id} to be ACTIVE")
    time.sleep(0.5)  # the conductor's last line follows the ACTIVE state
    return rid, server_id


def test_a_boot_is_traced_across_api_scheduler_bus_conductor_and_a_remote_agent(
        cloud: Cloud, agent: tuple[str, Path], boot: tuple[str, str]) -> None:
    rid, server_id = boot
    host, agent_log = agent
    lines = trace_json(cloud, rid, "--log-file", str(agent_log))
    said = [(x["component"], x["message"]) for x in lines]
    times = [x["since_start"] for x in lines]
    assert times == sorted(times) and times[0] == 0

    def first(component: str, text: str) -> int:
        found = [i for i, (c, m) in enumerate(said) if c == component and text in m]
        assert found, (component, text, said)
        return found[0]

    came_in = first("compute-api", '"POST /v2.1/servers" received')
    answered = first("compute-api", '"POST /v2.1/servers" 202')
    scheduled = first("scheduler", f"scheduled server {server_id} to {host}")
    received = first("bus", f"cast spawn received by compute.{host}")
    started = first("compute-agent", f"spawn of server {server_id} on {host}: started")
    done = first("compute-agent", f"spawn of server {server_id} on {host}: done in")
    reported = first("bus", "cast server_update received by conductor")
    assert came_in == 0 and came_in < scheduled < received < started < done < reported
    assert answered < received  # the API answered 202 before the agent got the work
    # the agent's lines came from the other process's own (text) log, through RabbitMQ
    agent_text = agent_log.read_text()
    assert f"[{rid} - -] spawn of server {server_id} on {host}: started" in agent_text
    # without the agent's log the cloud's own file has no agent line (the work ran elsewhere)
    local = trace_json(cloud, rid)
    assert not any(x["component"] == "compute-agent" for x in local)
    assert any(x["component"] == "scheduler" for x in local)
    text = cumulo(cloud, "trace", rid, "--log-file", str(agent_log)).stdout
    assert text.startswith(f"{rid}: {len(lines)} lines")
    summary = text.split("\n\n", 1)[1]
    assert all(name in summary for name in ("compute-api", "scheduler", "bus", "compute-agent"))


def test_a_volume_create_reaches_the_volume_node_with_its_request_id(cloud: Cloud) -> None:
    token, body = cloud.token()
    project = body["project"]["id"]
    r = httpx.post(f"{cloud.volume_url}/{project}/volumes", headers={"X-Auth-Token": token},
                   json={"volume": {"size": 1, "name": unique("traced")}})
    assert r.status_code == 202, r.text
    rid, volume_id = r.headers["x-openstack-request-id"], r.json()["volume"]["id"]
    wait_for(lambda: httpx.get(f"{cloud.volume_url}/{project}/volumes/{volume_id}", headers={
        "X-Auth-Token": token}).json()["volume"]["status"] == "available", 20, "the volume to be available")
    time.sleep(0.3)
    lines = trace_json(cloud, rid)
    components = [x["component"] for x in lines]
    assert components[0] == "block-storage-api", components
    hops = [x["message"] for x in lines if x["component"] == "bus"]
    assert any(m.startswith("cast create_volume received by volume.") for m in hops), hops
    assert any(m.startswith("cast volume_update received by") for m in hops), hops  # the node's report
    node = [x["message"] for x in lines if x["component"] == "volume-agent"]
    assert any(m.startswith(f"create_volume {volume_id} on ") and m.endswith(": started") for m in node), node
    assert any(m.startswith(f"create_volume {volume_id} on ") and " done in " in m for m in node), node
    assert components.index("volume-agent") > components.index("bus")
    # `cumulo logs --service volume` has the API's lines and the node's
    volume = [json.loads(line) for line in cumulo(cloud, "logs", "--raw", "-n", "100000", "--service", "volume",
                                                   "--request", rid).stdout.splitlines()]
    assert {d["logger"] for d in volume} == {"cumulo.access", "cumulo.volume.agent"}


def test_the_json_log_parses_line_by_line(cloud: Cloud, boot: tuple[str, str]) -> None:
    rid, _ = boot
    docs = [json.loads(line) for line in (cloud.state_dir / "cumulo.log").read_text().splitlines()]
    assert len(docs) > 20
    assert all({"time", "level", "logger", "request_id", "message"} <= set(d) for d in docs)
    mine = [d for d in docs if d["request_id"] == rid]
    assert any(d["logger"] == "cumulo.access" and d.get("user_id") for d in mine)


def test_logs_filters_by_service_and_level(cloud: Cloud, boot: tuple[str, str]) -> None:
    rid, server_id = boot

    def logs(*args: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in cumulo(cloud, "logs", "--raw", "-n", "100000", *args).stdout.splitlines()]

    compute = logs("--service", "compute")
    assert compute and all(d["logger"].startswith("cumulo.compute")
                           or (d["logger"] == "cumulo.access" and d["message"].startswith("compute "))
                           for d in compute)
    assert any(f"scheduled server {server_id}" in d["message"] for d in compute)
    assert not any(d["logger"].startswith(("cumulo.identity", "cumulo.bus")) for d in compute)
    bus = logs("--service", "cumulo.bus", "--request", rid)
    assert bus and all(d["logger"] == "cumulo.bus" and d["request_id"] == rid for d in bus)
    assert all(d["level"] in ("WARNING", "ERROR", "CRITICAL") for d in logs("--level", "warning"))
    text = cumulo(cloud, "logs", "-s", "scheduler", "-n", "1").stdout.splitlines()
    assert len(text) == 1 and " INFO cumulo.compute.scheduler [req-" in text[0]


def test_logs_follow_prints_new_lines(cloud: Cloud) -> None:
    proc = subprocess.Popen([str(BIN / "cumulo"), "logs", "-f", "-n", "0", "--service", "identity"], env=cloud.env,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        time.sleep(1.5)  # it has opened the file at its end
        r = httpx.get(f"{cloud.url}/auth/tokens", headers={"X-Auth-Token": "nope", "X-Subject-Token": "nope"})
        rid = r.headers["x-openstack-request-id"]
        assert proc.stdout is not None
        got: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [got.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore
        deadline = time.monotonic() + 15
        while True:
            line = got.get(timeout=max(0.1, deadline - time.monotonic()))
            if rid in line:
                assert "identity" in line
                break
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
