"""A request traced through the default embedded cloud with API workers: the worker process that
served a boot sent the build over the local socket bus to the leader's fake node, and the agent's
lines in the leader carry the worker's request id; `cumulo trace` reads both processes' lines from
the one log they share.

One cloud: SQLite, the in-process bus spanning the leader and one worker, two fake nodes, JSON logs
(their process ids show which process wrote what).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.functional.conftest import BIN, Cloud, start_cloud, stop_cloud, unique, wait_for
from tests.functional.test_workers import pinned, served_by, status

pytestmark = pytest.mark.functional


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("trace-workers"), "sqlite", {"CUMULO_API__WORKERS": "2",
                                                                           "CUMULO_LOGGING__FORMAT": "json"})
    wait_for(lambda: status(c).get("workers"), 60, "the API worker to serve")
    yield c
    stop_cloud(c)


def test_a_boot_through_a_worker_is_traced_to_the_leaders_agent(cloud: Cloud) -> None:
    token = cloud.token()[0]
    headers = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.47"}
    image = httpx.get(f"{cloud.image_url}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": token}).json()
    via_worker = pinned(cloud.compute_url, 1)
    try:
        r = via_worker.post(f"{cloud.compute_url}/servers", headers=headers, json={"server": {
            "name": unique("wtrace"), "flavorRef": "10", "imageRef": image["images"][0]["id"], "networks": "none"}})
    finally:
        via_worker.close()
    assert r.status_code == 202, r.text
    worker_pid = served_by(r)[1]
    rid, server_id = r.headers["x-openstack-request-id"], r.json()["server"]["id"]
    wait_for(lambda: httpx.get(f"{cloud.compute_url}/servers/{server_id}", headers=headers)
             .json()["server"]["status"] == "ACTIVE", 30, "the server to be ACTIVE")
    time.sleep(0.5)
    out = subprocess.run([str(BIN / "cumulo"), "trace", rid, "--json"], env=cloud.env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    said = [(x["component"], x["message"]) for x in lines]
    assert said[0] == ("compute-api", 'compute "POST /v2.1/servers" received'), said
    assert any(c == "scheduler" and f"scheduled server {server_id}" in m for c, m in said), said
    assert any(c == "bus" and m.startswith("cast spawn received by compute.fake-") for c, m in said), said
    agent = [m for c, m in said if c == "compute-agent"]
    assert any(m.startswith(f"spawn of server {server_id} on fake-") and m.endswith(": started") for m in agent)
    assert any(" done in " in m for m in agent), said
    assert any(c == "bus" and m.startswith("cast server_update received by conductor") for c, m in said), said
    # two processes wrote them: the worker took the request and scheduled it, the leader's agent spawned
    by_component = {x["component"]: x["process"] for x in lines if not x["derived"]}
    assert by_component["compute-api"] == by_component["scheduler"] == worker_pid
    assert by_component["compute-agent"] == cloud.proc.pid != worker_pid
