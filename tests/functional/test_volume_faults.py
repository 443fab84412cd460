"""Nothing of an attach, a detach, a volume create or a volume delete stays stuck when an agent
goes away in the middle.  The compute agent (fake driver) and the volume agent (`cumulo volume
agent`, qcow2 files) run as processes of their own over RabbitMQ and are frozen with SIGSTOP
while the work is on their queues.  At the lease's end the reconcilers end each transition (an
attach rolled back, a detach back to attached, a create in error with a fault, a delete sent
again); when the agent wakes up and does the work late, the record follows what is really there."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.functional.conftest import BIN, RABBIT, Cloud, start_cloud, stop_cloud, wait_for
from tests.functional.test_volume_attach import Clients

SERVICES = "identity,image,compute,placement,network,volume"


@pytest.fixture(scope="module")
def fcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cloud, subprocess.Popen[bytes],
                                                                        subprocess.Popen[bytes]]]:
    tmp = tmp_path_factory.mktemp("volume-faults")
    c = start_cloud(tmp, "sqlite", {
        "CUMULO_SERVICES": SERVICES, "CUMULO_COMPUTE__FAKE_NODES": "0", "CUMULO_BUS__URL": RABBIT,
        "CUMULO_BUS__PREFIX": f"cumulo-test-{uuid.uuid4().hex[:8]}", "CUMULO_COMPUTE__BUILD_TIMEOUT": "4",
        "CUMULO_VOLUME__LOCAL_NODE": "false", "CUMULO_VOLUME__OPERATION_TIMEOUT": "4"})
    agents = [subprocess.Popen([str(BIN / "cumulo"), *args], env=c.env, stdout=subprocess.DEVNULL,
                               stderr=open(tmp / f"{args[-1]}.log", "wb"), start_new_session=True)
              for args in (("agent", "--fake", "--host", "frozen"), ("volume", "agent", "--host", "vnode"))]
    wait_for(lambda: "volume pool vnode registered" in (tmp / "cumulo.log").read_text(), 30,
             f"the volume agent to report its pool: {(tmp / 'vnode.log').read_text()}")
    yield c, agents[0], agents[1]
    for agent in agents:
        agent.send_signal(signal.SIGCONT)
        agent.send_signal(signal.SIGINT)
        try:
            agent.wait(15)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
    stop_cloud(c)


def instance_volumes(c: Cloud, server_id: str) -> Any:
    """What the agent says the instance has, asked over the bus like the reconciler does."""
    out = subprocess.run([str(BIN / "python"), "-c", f"""
import asyncio, json, os
from cumulo.core.bus import connect
async def main():
    bus = connect(os.environ["CUMULO_BUS__URL"], prefix=os.environ["CUMULO_BUS__PREFIX"])
    await bus.start()
    print(json.dumps(await bus.call("compute.frozen", "instance_volumes", {{"server_id": "{server_id}"}}, timeout=10)))
    await bus.stop()
asyncio.run(main())
"""], env=c.env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_frozen_compute_agent_leaves_no_attach_or_detach_stuck(fcloud: Any) -> None:
    c, agent, _ = fcloud
    token, body = c.token()
    admin = Clients(c, token, body["project"]["id"])
    wait_for(lambda: httpx.get(f"{c.compute_url}/os-hypervisors", headers={"X-Auth-Token": token}).json()[
        "hypervisors"], 30, "the fake node to register")
    image = httpx.get(f"{c.image_url}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": token}).json()[
        "images"][0]["id"]
    r = admin.compute("POST", "/servers", {"server": {"name": "f", "flavorRef": "10", "imageRef": image,
                                                       "networks": "none"}})
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    admin.server_status(sid, "ACTIVE", timeout=30)
    vid = admin.volume("POST", "/volumes", {"volume": {"size": 1}}).json()["volume"]["id"]
    admin.volume_status(vid, "available")
    path = f"/servers/{sid}/os-volume_attachments"

    # an attach whose agent is frozen: rolled back at the lease's end, undone again when it wakes
    agent.send_signal(signal.SIGSTOP)
    try:
        assert admin.compute("POST", path, {"volumeAttachment": {"volumeId": vid}}).status_code == 200
        assert admin.volume("GET", f"/volumes/{vid}").json()["volume"]["status"] == "attaching"
        admin.volume_status(vid, "available", timeout=40)
        assert admin.compute("GET", path).json()["volumeAttachments"] == []
    finally:
        agent.send_signal(signal.SIGCONT)
    wait_for(lambda: instance_volumes(c, sid) == [], 30, "the late attach to be undone on the node")

    # a detach whose agent is frozen: back to attached at the lease's end (the guest still had it);
    # when the agent wakes and unplugs it, the volume is detached after all
    assert admin.compute("POST", path, {"volumeAttachment": {"volumeId": vid}}).status_code == 200
    admin.volume_status(vid, "in-use")
    assert instance_volumes(c, sid) == [vid]
    agent.send_signal(signal.SIGSTOP)
    try:
        assert admin.compute("DELETE", f"{path}/{vid}").status_code == 202
        wait_for(lambda: f"detach of volume {vid} from server {sid} timed out; the node did not answer: rolled "
                 "back to attached" in (c.state_dir / "cumulo.log").read_text(), 40, "the detach to time out")
        assert [a["volumeId"] for a in admin.compute("GET", path).json()["volumeAttachments"]] == [vid]
        assert admin.volume("GET", f"/volumes/{vid}").json()["volume"]["status"] == "in-use"
    finally:
        agent.send_signal(signal.SIGCONT)
    admin.volume_status(vid, "available", timeout=30)
    assert instance_volumes(c, sid) == []
    assert admin.compute("GET", path).json()["volumeAttachments"] == []
    assert admin.compute("DELETE", f"/servers/{sid}").status_code == 204
    assert admin.volume("DELETE", f"/volumes/{vid}").status_code == 202


def test_a_frozen_volume_agent_leaves_no_create_or_delete_stuck(fcloud: Any) -> None:
    c, _, agent = fcloud
    token, body = c.token()
    admin = Clients(c, token, body["project"]["id"])
    files = c.state_dir / "volumes" / "vnode"
    vid = admin.volume("POST", "/volumes", {"volume": {"size": 1}}).json()["volume"]["id"]
    v = admin.volume_status(vid, "available")
    assert v["os-vol-host-attr:host"].startswith("vnode@") and (files / f"volume-{vid}.qcow2").exists()

    # a create the frozen agent never reports: error at the lease's end, with a fault in words
    agent.send_signal(signal.SIGSTOP)
    try:
        late = admin.volume("POST", "/volumes", {"volume": {"size": 1}}).json()["volume"]["id"]
        wait_for(lambda: admin.volume("GET", f"/volumes/{late}").json()["volume"]["status"] == "error", 40,
                 "the unreported create to end in error")
        # a delete it never does is sent again while it is away, and happens once it wakes
        assert admin.volume("DELETE", f"/volumes/{vid}").status_code == 202
        assert admin.volume("GET", f"/volumes/{vid}").json()["volume"]["status"] == "deleting"
        wait_for(lambda: "did not report the create" in (c.state_dir / "cumulo.log").read_text()
                 or "volume agent vnode" in (c.state_dir / "cumulo.log").read_text(), 10, "the fault to be logged")
    finally:
        agent.send_signal(signal.SIGCONT)
    wait_for(lambda: admin.volume("GET", f"/volumes/{vid}").status_code == 404, 40, "the delete to finish")
    assert not (files / f"volume-{vid}.qcow2").exists()
    assert admin.volume("DELETE", f"/volumes/{late}").status_code == 202
    wait_for(lambda: admin.volume("GET", f"/volumes/{late}").status_code == 404, 40, "the error volume to go")
    wait_for(lambda: not list(files.glob("volume-*.qcow2")), 30, "no volume file to be left")
