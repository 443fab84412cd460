"""Planned maintenance of a compute node and a node's reboot, end to end with real QEMU guests.

The cloud has two compute nodes on this machine: ``mnode`` inside `cumulo up` and ``mnode-2`` a
`cumulo agent` process of its own over RabbitMQ, so that node can "reboot" (its agent killed -9
with every QEMU process of its guests, then started again) while the controller goes on.
`cumulo node maintenance start mnode` empties mnode (running guests live, without a reboot; the
stopped one cold, still SHUTOFF); a node whose servers have nowhere to go reports each with the
scheduler's reason and exits 1; `stop` enables again.  Then mnode-2 reboots: with [compute]
resume_guests_state_on_host_boot its ACTIVE guests come back running and the SHUTOFF one stays
off; without it (Nova's default) they all show SHUTOFF."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.functional.conftest import BIN, RABBIT, Cloud, start_cloud, stop_cloud, wait_for
from tests.functional.test_qemu import READY, TICKER, Api, h, panic, qemu_pids, ticks

NODE, NODE2 = "mnode", "mnode-2"
RESUME = "CUMULO_COMPUTE__RESUME_GUESTS_STATE_ON_HOST_BOOT"


class Node2:
    """The standalone agent of mnode-2: started, and "rebooted" (agent and guests killed -9)."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud, self.proc = cloud, None
        self.log = cloud.state_dir / "agent.log"
        self.instances = cloud.state_dir / "instances" / NODE2

    def start(self) -> None:
        self.proc = subprocess.Popen([str(BIN / "cumulo"), "agent", "--host", NODE2], env=self.cloud.env,
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"), start_new_session=True)

    def kill(self) -> None:
        """The machine loses power: its agent and every guest's QEMU die at once."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for pid in qemu_pids(self.instances):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not qemu_pids(self.instances), 10, "the QEMU processes of mnode-2 to die")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def mcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cloud, Node2]]:
    tmp = tmp_path_factory.mktemp("m")
    env = {"CUMULO_COMPUTE__FAKE_NODES": "0", "CUMULO_COMPUTE__LOCAL_NODE": "true",
           "CUMULO_COMPUTE__HOST": NODE, "CUMULO_COMPUTE__SHUTDOWN_TIMEOUT": "10",
           "CUMULO_COMPUTE__BUILD_TIMEOUT": "120", RESUME: "true", "CUMULO_BUS__URL": RABBIT,
           "CUMULO_BUS__PREFIX": f"cumulo-test-{uuid.uuid4().hex[:8]}"}
    c = start_cloud(tmp, "sqlite", env)
    node2 = Node2(c)
    node2.start()
    token = c.token()[0]
    wait_for(lambda: len(httpx.get(f"{c.compute_url}/os-hypervisors", headers=h(token)).json()["hypervisors"]) == 2,
             30, "both hypervisors")
    yield c, node2
    api = Api(c)
    for s in httpx.get(f"{c.compute_url}/servers?all_tenants=1", headers=h(api.token)).json().get("servers", []):
        httpx.delete(f"{c.compute_url}/servers/{s['id']}", headers=h(api.token))
    deadline = time.monotonic() + 30
    while qemu_pids(tmp / "instances") and time.monotonic() < deadline:
        time.sleep(0.3)
    stop_cloud(c)
    node2.stop()
    for pid in qemu_pids(tmp):  # a failed test must not leave guests running
        os.kill(pid, signal.SIGKILL)


def maintenance(cloud: Cloud, *args: str) -> subprocess.CompletedProcess[str]:
    """`cumulo node maintenance ...` as an operator runs it on the controller (its clouds.yaml)."""
    return subprocess.run([str(BIN / "cumulo"), "node", "maintenance", *args], env=cloud.env, capture_output=True,
                          text=True, timeout=600)


def service(api: Api, host: str) -> dict:
    return dict(httpx.get(f"{api.cloud.compute_url}/os-services?host={host}&binary=nova-compute",
                          headers=h(api.token, "2.53")).json()["services"][0])


def boot(api: Api, name: str, host: str, user_data: str = "") -> str:
    body = {"name": name, "flavorRef": "10", "imageRef": image(api), "networks": "none",
            "availability_zone": f"nova:{host}"}
    if user_data:
        body.update(config_drive=True, user_data=base64.b64encode(user_data.encode()).decode())
    r = httpx.post(f"{api.cloud.compute_url}/servers", headers=h(api.token), json={"server": body})
    assert r.status_code == 202, r.text
    return str(r.json()["server"]["id"])


def image(api: Api) -> str:
    return str(httpx.get(f"{api.cloud.image_url}/v2/images?name=cumulo-tiny",
                         headers={"X-Auth-Token": api.token}).json()["images"][0]["id"])


def by_name(api: Api) -> dict[str, dict]:
    servers = httpx.get(f"{api.cloud.compute_url}/servers/detail?all_tenants=1", headers=h(api.token)).json()
    return {s["name"]: s for s in servers["servers"]}


def guest_runs(cloud: Cloud, host: str, server_id: str) -> bool:
    return bool(qemu_pids(cloud.state_dir / "instances" / host / server_id))


def test_maintenance_start_empties_the_node_and_stop_enables_it(mcloud: tuple[Cloud, Node2]) -> None:
    cloud, _ = mcloud
    api = Api(cloud)
    ids = {"ticker": boot(api, "ticker", NODE, TICKER), "web": boot(api, "web", NODE), "off": boot(api, "off", NODE)}
    for sid in ids.values():
        assert api.wait(sid, "ACTIVE")["OS-EXT-SRV-ATTR:host"] == NODE
    api.act(ids["off"], {"os-stop": None})
    api.wait(ids["off"], "SHUTOFF")
    api.wait_console(ids["ticker"], "tick 3")
    api.wait_console(ids["web"], READY)

    began = time.monotonic()
    run = maintenance(cloud, "start", NODE, "--reason", "DIMM swap, ticket 4711")
    took = time.monotonic() - began
    print(f"\nmaintenance start {NODE}: 3 servers (2 live, 1 cold) in {took:.1f} s\n{run.stdout}")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert sum(line.startswith("moved ") for line in lines) == 3, run.stdout
    assert any("live in" in line and "ticker" in line for line in lines)
    assert any("cold in" in line and "off" in line for line in lines)
    assert "it is empty" in lines[-1]

    now = by_name(api)
    for name in ("ticker", "web", "off"):
        assert now[name]["OS-EXT-SRV-ATTR:host"] == NODE2, now[name]
        assert now[name]["OS-EXT-STS:task_state"] is None
    assert now["ticker"]["status"] == now["web"]["status"] == "ACTIVE"
    assert now["off"]["status"] == "SHUTOFF" and not guest_runs(cloud, NODE2, ids["off"])
    assert guest_runs(cloud, NODE2, ids["ticker"]) and guest_runs(cloud, NODE2, ids["web"])
    assert not [pid for pid in qemu_pids(cloud.state_dir / "instances")
                if f"/instances/{NODE}/".encode() in Path(f"/proc/{pid}/cmdline").read_bytes()]
    # the live-migrated guest never rebooted: its ticker counts on, and it was ready only once
    text = api.wait_console(ids["ticker"], "tick ")
    counts = ticks(text.encode())
    assert counts and counts == sorted(counts) and max(counts) > 3 and READY not in text, panic(text)
    assert api.console(ids["web"]).count(READY) <= 1

    svc = service(api, NODE)
    assert svc["status"] == "disabled" and svc["disabled_reason"] == "DIMM swap, ticket 4711"

    # a node whose servers have nowhere to go (the only other node is in maintenance): each is
    # named with the scheduler's reason, and the exit status is 1
    run = maintenance(cloud, "start", NODE2, "--json", "--reason", "test")
    assert run.returncode == 1, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert not report["empty"] and {s["name"] for s in report["left"]} == {"ticker", "web", "off"}
    assert len(report["servers"]) == 3 and not any(m["moved"] for m in report["servers"])
    for m in report["servers"]:
        assert "No valid host" in m["reason"], m
    print("stayed:", *(f"{m['name']}: {m['reason']}" for m in report["servers"]), sep="\n  ")
    assert service(api, NODE2)["status"] == "disabled"
    assert {s["status"] for s in by_name(api).values()} == {"ACTIVE", "SHUTOFF"}

    for host in (NODE, NODE2):
        run = maintenance(cloud, "stop", host)
        assert run.returncode == 0 and f"{host} is enabled" in run.stdout, run.stdout + run.stderr
        svc = service(api, host)
        assert svc["status"] == "enabled" and svc["disabled_reason"] is None
    # and the scheduler places servers there again
    sid = boot(api, "after", NODE)
    assert api.wait(sid, "ACTIVE")["OS-EXT-SRV-ATTR:host"] == NODE
    assert httpx.delete(f"{cloud.compute_url}/servers/{sid}", headers=h(api.token)).status_code == 204


def wait_states(api: Api, want: dict[str, str], timeout: float = 90) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        now = by_name(api)
        seen = {n: (now[n]["status"], now[n]["OS-EXT-STS:task_state"]) for n in want}
        if all(seen[n] == (status, None) for n, status in want.items()):
            return now
        assert time.monotonic() < deadline, f"{seen}, not {want}"
        time.sleep(0.3)


def test_a_rebooted_node_brings_its_guests_back_as_they_were(mcloud: tuple[Cloud, Node2]) -> None:
    """mnode-2 holds the servers the maintenance moved there: ticker and web ACTIVE, off SHUTOFF."""
    cloud, node2 = mcloud
    api = Api(cloud)
    ids = {n: s["id"] for n, s in by_name(api).items()}
    wait_states(api, {"ticker": "ACTIVE", "web": "ACTIVE", "off": "SHUTOFF"}, 10)
    node2.kill()
    began = time.monotonic()
    node2.start()  # resume_guests_state_on_host_boot = true: the cloud was started with it
    wait_states(api, {"ticker": "ACTIVE", "web": "ACTIVE", "off": "SHUTOFF"})
    wait_for(lambda: guest_runs(cloud, NODE2, ids["ticker"]) and guest_runs(cloud, NODE2, ids["web"]), 60,
             "the ACTIVE guests' QEMU again")
    text = api.wait_console(ids["web"], READY)  # booted again (its disk is the one it had)
    print(f"\nrebooted {NODE2} with resume on: both ACTIVE guests running again, ready in "
          f"{time.monotonic() - began:.1f} s after the agent started")
    assert READY in text
    assert not guest_runs(cloud, NODE2, ids["off"])
    assert by_name(api)["off"]["status"] == "SHUTOFF"

    # Nova's default: a rebooted node's guests are shown as they are, SHUTOFF (the option is the
    # controllers': restart the one controller without it)
    stop_cloud(cloud)
    keep = {k: v for k, v in cloud.env.items() if k.startswith(("CUMULO_COMPUTE__", "CUMULO_BUS__"))
            or (k.startswith("CUMULO_") and k.endswith("PORT"))}
    again = start_cloud(cloud.state_dir, "sqlite", {**keep, RESUME: "false"})
    cloud.proc, cloud.env = again.proc, again.env
    api = Api(cloud)
    wait_states(api, {"ticker": "ACTIVE", "web": "ACTIVE", "off": "SHUTOFF"}, 30)
    node2.kill()
    node2.start()
    wait_states(api, {"ticker": "SHUTOFF", "web": "SHUTOFF", "off": "SHUTOFF"}, 60)
    time.sleep(3)  # several reports later nothing started them
    assert not qemu_pids(node2.instances)
    assert {s["status"] for s in by_name(api).values()} == {"SHUTOFF"}
    # and the operator starts one: it runs on the node again
    api.act(ids["web"], {"os-start": None})
    api.wait(ids["web"], "ACTIVE")
    assert guest_runs(cloud, NODE2, ids["web"])
