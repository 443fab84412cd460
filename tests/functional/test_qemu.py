"""Real instances: the QEMU driver under TCG (or KVM where it is usable) with the cumulo-tiny
guest, driven through the Compute API of a cloud whose only node is this machine.  After the
tests no QEMU process, disk or socket of theirs is left."""

from __future__ import annotations

import base64
import datetime as dt
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.functional.conftest import BIN, RABBIT, Cloud, start_cloud, stop_cloud, unique, wait_for

READY = "cumulo-guest ready"
# user-data that counts on the console every half second from boot (its "tick 1" comes before the
# ready marker): a guest that resumes goes on counting, one that booted again starts at 1
TICKER = "#!/bin/sh\n(i=0; while true; do i=$((i+1)); echo tick $i > /dev/console; sleep 0.5; done) &\n"


def ticks(console: bytes) -> list[int]:
    """The ticker's counts on (a part of) a console log, in order."""
    return [int(line.split()[1]) for line in console.decode(errors="replace").splitlines()
            if line.startswith("tick ") and line[5:].strip().isdigit()]


def since(path: Path, offset: int) -> bytes | None:
    """What a console log holds past ``offset`` once it shows a tick, else None (to wait on)."""
    text = path.read_bytes()[offset:]
    return text if ticks(text) else None


def qemu_pids(root: Path) -> list[int]:
    """QEMU processes whose command line names a path under ``root`` (ours only)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"qemu-system" in cmd and str(root).encode() in cmd:
            out.append(int(entry.name))
    return out


@pytest.fixture(scope="module")
def qcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """A cloud whose compute nodes are this machine twice: ``qnode`` inside the controller and
    ``qnode-2`` as an agent process of its own, over RabbitMQ, each with its own instances."""
    tmp = tmp_path_factory.mktemp("qemu-cloud")
    env = {"CUMULO_COMPUTE__FAKE_NODES": "0", "CUMULO_COMPUTE__LOCAL_NODE": "true",
           "CUMULO_COMPUTE__HOST": "qnode", "CUMULO_COMPUTE__SHUTDOWN_TIMEOUT": "15",
           "CUMULO_COMPUTE__BUILD_TIMEOUT": "120", "CUMULO_BUS__URL": RABBIT,
           "CUMULO_BUS__PREFIX": f"cumulo-test-{uuid.uuid4().hex[:8]}"}
    c = start_cloud(tmp, "sqlite", env)
    agent = subprocess.Popen([str(BIN / "cumulo"), "agent", "--host", "qnode-2"], env=c.env,
                             stdout=subprocess.DEVNULL, stderr=open(tmp / "agent.log", "wb"), start_new_session=True)
    token = c.token()[0]
    deadline = time.monotonic() + 30
    while len(httpx.get(f"{c.compute_url}/os-hypervisors", headers=h(token)).json()["hypervisors"]) < 2:
        assert time.monotonic() < deadline, (tmp / "agent.log").read_text()
        time.sleep(0.3)
    yield c
    stop_cloud(c)
    agent.send_signal(signal.SIGINT)
    try:
        agent.wait(15)
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait()
    for pid in qemu_pids(tmp):  # a failed test must not leave guests running
        os.kill(pid, signal.SIGKILL)


def restart(cloud: Cloud) -> Cloud:
    """Start the (killed) controller of ``cloud`` again on its state and its ports (as an operator's
    restart does: the agents' requests in flight name those addresses); ``cloud`` follows it."""
    keep = {k: v for k, v in cloud.env.items() if k.startswith(("CUMULO_COMPUTE__", "CUMULO_BUS__"))
            or (k.startswith("CUMULO_") and k.endswith("PORT"))}
    again = start_cloud(cloud.state_dir, "sqlite", keep)
    cloud.proc, cloud.env = again.proc, again.env
    for name, value in vars(again).items():
        if name == "url" or name.endswith("_url"):
            setattr(cloud, name, value)
    return again


def h(token: str, version: str = "2.47") -> dict[str, str]:
    return {"X-Auth-Token": token, "OpenStack-API-Version": f"compute {version}"}


class Api:
    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.token = cloud.token()[0]

    def get(self, server_id: str) -> dict:
        return dict(httpx.get(f"{self.cloud.compute_url}/servers/{server_id}", headers=h(self.token)).json()["server"])

    def act(self, server_id: str, body: dict, version: str = "2.47") -> httpx.Response:
        r = httpx.post(f"{self.cloud.compute_url}/servers/{server_id}/action", headers=h(self.token, version),
                       json=body)
        assert r.status_code in (200, 202, 204), (body, r.text)
        return r

    def wait(self, server_id: str, status: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            s = self.get(server_id)
            if s["status"] == status and s["OS-EXT-STS:task_state"] is None:
                return s
            assert s["status"] != "ERROR" or status == "ERROR", s.get("fault")
            assert time.monotonic() < deadline, f"still {s['status']}/{s['OS-EXT-STS:task_state']}, not {status}"
            time.sleep(0.2)

    def console(self, server_id: str) -> str:
        r = httpx.post(f"{self.cloud.compute_url}/servers/{server_id}/action", headers=h(self.token),
                       json={"os-getConsoleOutput": {}})
        return str(r.json()["output"]) if r.status_code == 200 else ""

    def wait_console(self, server_id: str, marker: str, count: int = 1, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.console(server_id)
            if text.count(marker) >= count:
                return text
            assert time.monotonic() < deadline, f"{marker!r} x{count} not on the console:\n{text[-3000:]}"
            time.sleep(0.3)


def instance_dir(cloud: Cloud, server_id: str, host: str = "qnode") -> Path:
    return cloud.state_dir / "instances" / host / server_id


def where(api: Api, server_id: str) -> Path:
    return instance_dir(api.cloud, server_id, api.get(server_id)["OS-EXT-SRV-ATTR:host"])


def leftovers(cloud: Cloud) -> list[Path]:
    return [p for node in (cloud.state_dir / "instances").iterdir() for p in node.iterdir() if p.name != "_base"]


@pytest.fixture(autouse=True)
def tidy(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that fails midway leaves its servers behind: they go after it, so that the tests
    after it (which check that nothing is left on the nodes) start clean and fail only on their own."""
    yield
    if "qcloud" not in request.fixturenames:
        return
    cloud = request.getfixturevalue("qcloud")
    token = cloud.token()[0]
    left = httpx.get(f"{cloud.compute_url}/servers?all_tenants=1", headers=h(token)).json().get("servers", [])
    for server in left:
        httpx.delete(f"{cloud.compute_url}/servers/{server['id']}", headers=h(token))
    deadline = time.monotonic() + 60
    while left and (qemu_pids(cloud.state_dir / "instances") or leftovers(cloud)) and time.monotonic() < deadline:
        time.sleep(0.2)


def panic(text: str) -> str:
    """What a failed check shows of a console: a kernel's report from its first line, and the end."""
    starts = [i for i in (text.find(w) for w in ("Kernel panic", "BUG:", "Oops", "general protection")) if i >= 0]
    report = text[max(0, min(starts) - 1500):min(starts) + 3000] + "\n[...]\n" if starts else ""
    return report + text[-2000:]


def test_qemu_node_registers_with_its_hypervisor_type(qcloud: Cloud) -> None:
    api = Api(qcloud)
    deadline = time.monotonic() + 30
    while True:
        hypervisors = httpx.get(f"{qcloud.compute_url}/os-hypervisors/detail", headers=h(api.token, "2.53")).json()
        if hypervisors["hypervisors"] or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert sorted(x["hypervisor_hostname"] for x in hypervisors["hypervisors"]) == ["qnode", "qnode-2"]
    node = hypervisors["hypervisors"][0]
    kvm = Path("/sys/module/kvm_pvm").exists() is False and os.access("/dev/kvm", os.W_OK) and \
        any(flag in Path("/proc/cpuinfo").read_text().split() for flag in ("vmx", "svm"))
    assert node["hypervisor_type"] == ("KVM" if kvm else "QEMU")


def test_boot_power_cycle_snapshot_resize_shelve_delete(qcloud: Cloud) -> None:
    api = Api(qcloud)
    token = api.token
    image = httpx.get(f"{qcloud.image_url}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": token}
                      ).json()["images"][0]["id"]
    key = httpx.post(f"{qcloud.compute_url}/os-keypairs", headers=h(token), json={"keypair": {
        "name": unique("k")}}).json()["keypair"]
    user_data = base64.b64encode(f"{TICKER}echo hello-from-user-data > /dev/console\n".encode()).decode()
    started = time.monotonic()
    r = httpx.post(f"{qcloud.compute_url}/servers", headers=h(token), json={"server": {
        "name": "tiny-vm", "flavorRef": "10", "imageRef": image, "networks": "none", "config_drive": True,
        "key_name": key["name"], "user_data": user_data}})
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    api.wait(sid, "ACTIVE")
    active = time.monotonic() - started
    console = api.wait_console(sid, READY)
    ready = time.monotonic() - started
    print(f"POST -> ACTIVE {active:.1f} s, -> ready marker {ready:.1f} s")
    assert "metadata from config-drive" in console and "hostname=tiny-vm" in console
    assert "hello-from-user-data" in console
    d = where(api, sid)
    assert (d / "disk").exists() and (d / "disk.config").exists() and len(qemu_pids(d)) == 1
    # length keeps the last pieces of the text split at newlines, as Nova (and tempest) count them:
    # when the console ends in a newline the last piece is empty, so splitlines() would count one less
    r = httpx.post(f"{qcloud.compute_url}/servers/{sid}/action", headers=h(token),
                   json={"os-getConsoleOutput": {"length": 2}})
    assert len(r.json()["output"].split("\n")) == 2

    # stop: ACPI power button, the guest powers itself off, no process remains; start boots again
    api.act(sid, {"os-stop": None})
    api.wait(sid, "SHUTOFF")
    assert qemu_pids(d) == [] and "ACPI power button" in api.console(sid)
    api.act(sid, {"os-start": None})
    api.wait(sid, "ACTIVE")
    api.wait_console(sid, READY, 2)

    # pause/unpause keep the process; suspend saves the state and ends it, resume continues
    pid = qemu_pids(d)
    api.act(sid, {"pause": None})
    assert api.wait(sid, "PAUSED")["OS-EXT-STS:power_state"] == 3 and qemu_pids(d) == pid
    api.act(sid, {"unpause": None})
    api.wait(sid, "ACTIVE")
    api.act(sid, {"suspend": None})
    api.wait(sid, "SUSPENDED")
    assert qemu_pids(d) == [] and (d / "state.save").exists()
    saved = (d / "console.log").read_bytes()
    api.act(sid, {"resume": None})
    api.wait(sid, "ACTIVE")
    assert not (d / "state.save").exists() and len(qemu_pids(d)) == 1
    # resumed, not booted again: the first tick after the resume goes on from the last one saved
    # (this boot's ticker had counted at least to 1 before its ready marker); a guest that booted
    # again would start at tick 1 and show a new ready marker
    assert saved.count(READY.encode()) == 2 and ticks(saved)[-1] >= 1
    after = wait_for(lambda: since(d / "console.log", len(saved)), 60, "a tick of the resumed guest")
    assert isinstance(after, bytes) and ticks(after)[0] > ticks(saved)[-1], (ticks(saved)[-3:], after[-500:])
    assert READY.encode() not in after, after[-2000:]
    api.act(sid, {"reboot": {"type": "HARD"}})
    api.wait(sid, "ACTIVE")
    api.wait_console(sid, READY, 3)

    # a snapshot of the running guest is an image that boots
    r = api.act(sid, {"createImage": {"name": unique("snap")}}, "2.45")
    snap = r.json()["image_id"]
    deadline = time.monotonic() + 60
    while (img := httpx.get(f"{qcloud.image_url}/v2/images/{snap}", headers={"X-Auth-Token": token}).json())[
            "status"] != "active":
        assert time.monotonic() < deadline, img
        time.sleep(0.5)
    assert img["disk_format"] == "qcow2" and img["size"] > 0 and img["kernel_id"]
    api.wait(sid, "ACTIVE")

    # resize on this one node: VERIFY_RESIZE with the new memory, revert restores the old disk
    api.act(sid, {"resize": {"flavorRef": "11"}})
    api.wait(sid, "VERIFY_RESIZE")
    resized = where(api, sid)
    assert "-m 256" in " ".join(open(f"/proc/{qemu_pids(resized)[0]}/cmdline").read().split("\0"))
    api.act(sid, {"revertResize": None})
    assert api.wait(sid, "ACTIVE")["flavor"]["ram"] == 128
    assert where(api, sid) == d and not (d / "disk.backup").exists() and len(qemu_pids(d)) == 1
    if resized != d:  # the resize went to the other node: its copy is gone with the revert
        deadline = time.monotonic() + 15
        while resized.exists() or qemu_pids(resized):
            assert time.monotonic() < deadline
            time.sleep(0.2)

    # shelve frees the node (no process, no files), unshelve boots it from the shelved image
    api.act(sid, {"shelve": None})
    api.wait(sid, "SHELVED_OFFLOADED")
    assert not d.exists() and qemu_pids(d) == []
    api.act(sid, {"unshelve": None})
    api.wait(sid, "ACTIVE")
    api.wait_console(sid, READY)

    # a second server from the snapshot
    r = httpx.post(f"{qcloud.compute_url}/servers", headers=h(token), json={"server": {
        "name": "from-snap", "flavorRef": "10", "imageRef": snap, "networks": "none"}})
    sid2 = r.json()["server"]["id"]
    api.wait(sid2, "ACTIVE")
    api.wait_console(sid2, READY)

    for server_id in (sid, sid2):
        assert httpx.delete(f"{qcloud.compute_url}/servers/{server_id}", headers=h(token)).status_code == 204
    deadline = time.monotonic() + 30
    while qemu_pids(qcloud.state_dir / "instances") or leftovers(qcloud):
        assert time.monotonic() < deadline, "QEMU processes or instance files were left behind"
        time.sleep(0.2)
    httpx.delete(f"{qcloud.image_url}/v2/images/{snap}", headers={"X-Auth-Token": token})


def test_guests_outlive_a_controller_restart(qcloud: Cloud, tmp_path: Path) -> None:
    """The controller (and its in-process agent) is killed -9: the guest keeps running, and the
    restarted agent takes it up again; then delete leaves nothing."""
    api = Api(qcloud)
    image = httpx.get(f"{qcloud.image_url}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": api.token}
                      ).json()["images"][0]["id"]
    r = httpx.post(f"{qcloud.compute_url}/servers", headers=h(api.token), json={"server": {
        "name": "survivor", "flavorRef": "10", "imageRef": image, "networks": "none"}})
    sid = r.json()["server"]["id"]
    api.wait(sid, "ACTIVE")
    api.wait_console(sid, READY)
    d = where(api, sid)
    pids = qemu_pids(d)
    os.killpg(qcloud.proc.pid, signal.SIGKILL)
    qcloud.proc.wait()
    assert qemu_pids(d) == pids  # the guest did not notice
    again = restart(qcloud)
    api = Api(again)
    # the node reconcile must keep the running guest: wait until the restarted agent has reported
    # (and the controller reconciled) several times, the last of them 2 s past the restart
    restarted = dt.datetime.now(dt.UTC).replace(tzinfo=None)

    def reported_since() -> bool:
        services = httpx.get(f"{again.compute_url}/os-services?host=qnode&binary=nova-compute",
                             headers=h(api.token, "2.53")).json()["services"]
        return bool(services) and dt.datetime.fromisoformat(services[0]["updated_at"]) > \
            restarted + dt.timedelta(seconds=3)

    wait_for(reported_since, 30, "heartbeats of the restarted qnode agent")
    server = api.get(sid)
    assert server["status"] == "ACTIVE" and qemu_pids(d) == pids
    assert READY in api.console(sid)
    assert httpx.delete(f"{again.compute_url}/servers/{sid}", headers=h(api.token)).status_code == 204
    deadline = time.monotonic() + 20
    while qemu_pids(d) or d.exists():
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_live_migration_keeps_the_guest_running_and_cold_migration_moves_it(qcloud: Cloud) -> None:
    import base64

    api = Api(qcloud)
    image = httpx.get(f"{qcloud.image_url}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": api.token}
                      ).json()["images"][0]["id"]
    loop = "#!/bin/sh\n(i=0; while true; do i=$((i+1)); echo tick $i > /dev/console; sleep 0.3; done) &\n"
    r = httpx.post(f"{qcloud.compute_url}/servers", headers=h(api.token), json={"server": {
        "name": "mover", "flavorRef": "10", "imageRef": image, "networks": "none", "config_drive": True,
        "user_data": base64.b64encode(loop.encode()).decode(), "availability_zone": "nova:qnode"}})
    sid = r.json()["server"]["id"]
    api.wait(sid, "ACTIVE")
    api.wait_console(sid, "tick 3")
    source = where(api, sid)
    api.act(sid, {"os-migrateLive": {"host": None, "block_migration": "auto"}}, "2.30")
    deadline = time.monotonic() + 120
    while api.get(sid)["OS-EXT-SRV-ATTR:host"] == "qnode":
        assert time.monotonic() < deadline, api.get(sid)
        time.sleep(0.2)
    moved = api.wait(sid, "ACTIVE")
    assert moved["OS-EXT-SRV-ATTR:host"] == "qnode-2"
    before = max(int(x.split()[1]) for x in (source / "console.log").read_text(errors="replace").split("\n")
                 if x.startswith("tick ") and x.split()[1].isdigit()) if source.exists() else 0
    text = api.wait_console(sid, "tick ")
    ticks = [int(x.split()[1]) for x in text.splitlines() if x.startswith("tick ") and x.split()[1].isdigit()]
    assert ticks and max(ticks) > 3 and READY not in text, panic(text)  # counting on, never booted again
    assert before == 0  # the source's files are gone
    deadline = time.monotonic() + 15
    while qemu_pids(source):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    migration = httpx.get(f"{qcloud.compute_url}/os-migrations?instance_uuid={sid}", headers=h(api.token)
                          ).json()["migrations"][0]
    assert migration["status"] == "completed"
    # cold migration back to the first node: the guest reboots there
    api.act(sid, {"migrate": None})
    assert api.wait(sid, "VERIFY_RESIZE")["OS-EXT-SRV-ATTR:host"] == "qnode"
    api.act(sid, {"confirmResize": None})
    api.wait(sid, "ACTIVE")
    api.wait_console(sid, READY)
    deadline = time.monotonic() + 15
    while instance_dir(qcloud, sid, "qnode-2").exists():
        assert time.monotonic() < deadline, "the confirmed migration left the old copy"
        time.sleep(0.2)
    assert httpx.delete(f"{qcloud.compute_url}/servers/{sid}", headers=h(api.token)).status_code == 204
    deadline = time.monotonic() + 20
    while qemu_pids(qcloud.state_dir / "instances") or leftovers(qcloud):
        assert time.monotonic() < deadline
        time.sleep(0.2)


# user-data: every half second the guest reads the head of each volume (its cache dropped, so the
# read reaches the disk), writes the pattern there if it is blank, writes its round at 4 KiB, and
# says both on the console
VOLUME_PROBE = """#!/bin/sh
(i=0; while true; do i=$((i+1))
  for b in /sys/block/vd*; do
    s=$(cat "$b/serial" 2>/dev/null); [ -n "$s" ] || continue
    n=${b##*/}; sync; echo 3 > /proc/sys/vm/drop_caches
    head=$(dd if=/dev/$n bs=64 count=1 2>/dev/null | tr -d '\\000\\n')
    [ -n "$head" ] || { echo PATTERN | dd of=/dev/$n bs=64 count=1 conv=sync,fsync 2>/dev/null; head=new; }
    echo "round $i" | dd of=/dev/$n bs=64 seek=64 count=1 conv=sync,fsync 2>/dev/null
    echo "volume $s holds $head at $i" > /dev/console
  done
  sleep 0.5
done) &
"""


def rounds(console: str, head: str) -> list[int]:
    """The probe's rounds that read ``head`` from the volume, in order."""
    return [int(line.rsplit(" ", 1)[1]) for line in console.splitlines()
            if line.startswith("volume ") and f" holds {head} at " in line and line.rsplit(" ", 1)[1].isdigit()]


def test_live_migration_of_a_server_with_a_volume_moves_its_attachment(qcloud: Cloud, tmp_path: Path) -> None:
    """A server with a volume live-migrates: its local disk is mirrored, the volume is opened on
    the destination where it is (not copied); the guest runs on, still reads what it wrote and
    goes on writing; block storage's attachment is the destination's, the source's is gone.  A
    move the destination cannot take leaves it all on the source.  A volume-backed server
    live-migrates too."""
    api = Api(qcloud)
    project = qcloud.token()[1]["project"]["id"]

    def volume(method: str, path: str, body: dict | None = None) -> httpx.Response:
        return httpx.request(method, f"{qcloud.volume_url}/{project}{path}", json=body, timeout=30,
                             headers={"X-Auth-Token": api.token, "OpenStack-API-Version": "volume 3.60"})

    image = httpx.get(f"{qcloud.image_url}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": api.token}
                      ).json()["images"][0]["id"]
    r = httpx.post(f"{qcloud.compute_url}/servers", headers=h(api.token), json={"server": {
        "name": "vol-mover", "flavorRef": "10", "imageRef": image, "networks": "none", "config_drive": True,
        "user_data": base64.b64encode(VOLUME_PROBE.encode()).decode(), "availability_zone": "nova:qnode"}})
    sid = r.json()["server"]["id"]
    vid = volume("POST", "/volumes", {"volume": {"size": 1, "name": "moving-data"}}).json()["volume"]["id"]
    wait_for(lambda: volume("GET", f"/volumes/{vid}").json()["volume"]["status"] == "available", 30, "the volume")
    api.wait(sid, "ACTIVE")
    api.wait_console(sid, READY)
    r = httpx.post(f"{qcloud.compute_url}/servers/{sid}/os-volume_attachments", headers=h(api.token),
                   json={"volumeAttachment": {"volumeId": vid}})
    assert r.status_code == 200, r.text
    api.wait_console(sid, "holds PATTERN at", 3)
    (old,) = volume("GET", f"/volumes/{vid}").json()["volume"]["attachments"]
    assert old["host_name"] == "qnode"
    source = where(api, sid)

    # a destination that cannot take it (its disk cannot be made there): the server stays on its
    # source with its volume attached as it was, and the destination's attachment is gone
    (instance_dir(qcloud, sid, "qnode-2") / "disk.part").mkdir(parents=True)
    api.act(sid, {"os-migrateLive": {"host": None, "block_migration": "auto"}}, "2.30")
    wait_for(lambda: httpx.get(f"{qcloud.compute_url}/os-migrations?instance_uuid={sid}", headers=h(api.token)
                               ).json()["migrations"][0]["status"] == "error", 60, "the migration to fail")
    assert api.wait(sid, "ACTIVE")["OS-EXT-SRV-ATTR:host"] == "qnode"
    assert volume("GET", f"/volumes/{vid}").json()["volume"]["attachments"] == [old]
    assert [a["id"] for a in volume("GET", f"/attachments?volume_id={vid}").json()["attachments"]] == [
        old["attachment_id"]]
    seen = len(rounds(api.console(sid), "PATTERN"))
    api.wait_console(sid, "holds PATTERN at", seen + 2)  # the guest runs on, reading its volume
    assert not instance_dir(qcloud, sid, "qnode-2").exists()

    api.act(sid, {"os-migrateLive": {"host": None, "block_migration": "auto"}}, "2.30")
    deadline = time.monotonic() + 180
    while api.get(sid)["OS-EXT-SRV-ATTR:host"] == "qnode":
        assert time.monotonic() < deadline, api.get(sid)
        time.sleep(0.2)
    moved = api.wait(sid, "ACTIVE")
    assert moved["OS-EXT-SRV-ATTR:host"] == "qnode-2"
    text = api.wait_console(sid, "holds PATTERN at", 3)  # the destination's console: only rounds since
    after = rounds(text, "PATTERN")
    assert READY not in text and after[0] > 3 and rounds(text, "new") == [], panic(text)
    vol = volume("GET", f"/volumes/{vid}").json()["volume"]
    (new,) = vol["attachments"]
    assert vol["status"] == "in-use" and new["host_name"] == "qnode-2" and new["server_id"] == sid
    assert new["attachment_id"] != old["attachment_id"]
    assert volume("GET", f"/attachments/{old['attachment_id']}").status_code == 404
    listed = httpx.get(f"{qcloud.compute_url}/servers/{sid}/os-volume_attachments", headers=h(api.token, "2.89")
                       ).json()["volumeAttachments"]
    assert [(x["volumeId"], x["attachment_id"]) for x in listed] == [(vid, new["attachment_id"])]
    deadline = time.monotonic() + 15
    while qemu_pids(source) or source.exists():
        assert time.monotonic() < deadline, "the source's guest or files are left"
        time.sleep(0.2)
    migration = httpx.get(f"{qcloud.compute_url}/os-migrations?instance_uuid={sid}", headers=h(api.token)
                          ).json()["migrations"][0]
    assert migration["status"] == "completed"

    # a server that boots from its volume moves the same way (nothing local but its config drive)
    r = httpx.post(f"{qcloud.compute_url}/servers", headers=h(api.token), json={"server": {
        "name": "bfv-mover", "flavorRef": "10", "networks": "none", "availability_zone": "nova:qnode",
        "user_data": base64.b64encode(TICKER.encode()).decode(), "config_drive": True,
        "block_device_mapping_v2": [{"boot_index": 0, "source_type": "image", "uuid": image,
                                     "destination_type": "volume", "volume_size": 1,
                                     "delete_on_termination": True}]}})
    bfv = r.json()["server"]["id"]
    api.wait(bfv, "ACTIVE")
    api.wait_console(bfv, READY)
    api.act(bfv, {"os-migrateLive": {"host": None, "block_migration": "auto"}}, "2.30")
    deadline = time.monotonic() + 180
    while api.get(bfv)["OS-EXT-SRV-ATTR:host"] == "qnode":
        assert time.monotonic() < deadline, api.get(bfv)
        time.sleep(0.2)
    assert api.wait(bfv, "ACTIVE")["OS-EXT-SRV-ATTR:host"] == "qnode-2"
    text = api.wait_console(bfv, "tick ")
    assert READY not in text and min(ticks(text.encode())) > 1, panic(text)  # counting on, not booted again
    (root,) = api.get(bfv)["os-extended-volumes:volumes_attached"]
    (attachment,) = volume("GET", f"/volumes/{root['id']}").json()["volume"]["attachments"]
    assert attachment["host_name"] == "qnode-2"
    assert httpx.delete(f"{qcloud.compute_url}/servers/{bfv}", headers=h(api.token)).status_code == 204

    # detached from its new host: the volume's file holds a round the guest wrote after the move
    r = httpx.delete(f"{qcloud.compute_url}/servers/{sid}/os-volume_attachments/{vid}", headers=h(api.token))
    assert r.status_code == 202, r.text
    wait_for(lambda: volume("GET", f"/volumes/{vid}").json()["volume"]["status"] == "available", 90, "the detach")
    path = next((qcloud.state_dir / "volumes").glob(f"*/volume-{vid}.qcow2"))
    out = tmp_path / "round.raw"
    subprocess.run(["qemu-img", "dd", "-f", "qcow2", "-O", "raw", "bs=64", "count=65", f"if={path}", f"of={out}"],
                   check=True, capture_output=True)
    data = out.read_bytes()
    assert data[:8] == b"PATTERN\n" and int(data[4096:].rstrip(b"\0").split()[1]) >= after[0], data[4096:]
    assert httpx.delete(f"{qcloud.compute_url}/servers/{sid}", headers=h(api.token)).status_code == 204
    wait_for(lambda: volume("DELETE", f"/volumes/{vid}").status_code == 202, 30, "the volume to be deletable")
    deadline = time.monotonic() + 20
    while qemu_pids(qcloud.state_dir / "instances") or leftovers(qcloud):
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_crashed_guest_shows_shutoff_and_a_build_cut_short_completes(qcloud: Cloud) -> None:
    """A QEMU killed behind the agent's back is shown SHUTOFF by the node sync (and starts again);
    a controller killed -9 in the middle of a boot: after the restart the server ends ACTIVE (the
    node runs it) and nothing is left once it is deleted."""
    api = Api(qcloud)
    image = httpx.get(f"{qcloud.image_url}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": api.token}
                      ).json()["images"][0]["id"]
    r = httpx.post(f"{qcloud.compute_url}/servers", headers=h(api.token), json={"server": {
        "name": "crashy", "flavorRef": "10", "imageRef": image, "networks": "none"}})
    sid = r.json()["server"]["id"]
    api.wait(sid, "ACTIVE")
    api.wait_console(sid, READY)
    d = where(api, sid)
    for pid in qemu_pids(d):
        os.kill(pid, signal.SIGKILL)
    shown = api.wait(sid, "SHUTOFF", timeout=30)
    assert shown["OS-EXT-STS:power_state"] == 4
    api.act(sid, {"os-start": None})
    api.wait(sid, "ACTIVE")
    api.wait_console(sid, READY, 2)

    # kill the controller while a second server boots
    r = httpx.post(f"{qcloud.compute_url}/servers", headers=h(api.token), json={"server": {
        "name": "cut-short", "flavorRef": "10", "imageRef": image, "networks": "none"}})
    cut = r.json()["server"]["id"]
    deadline = time.monotonic() + 30
    while api.get(cut)["OS-EXT-STS:task_state"] != "spawning":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(qcloud.proc.pid, signal.SIGKILL)
    qcloud.proc.wait()
    again = restart(qcloud)
    api = Api(again)
    final = api.get(cut)
    deadline = time.monotonic() + 60
    while final["status"] not in ("ACTIVE", "ERROR") or final["OS-EXT-STS:task_state"] is not None:
        assert time.monotonic() < deadline, final
        time.sleep(0.3)
        final = api.get(cut)
    # the spawn had reached the node: the build completes (the node waits for the image service
    # and its report waits in the broker for the new controller); or the kill came before the spawn
    # was sent: ERROR once the short hand-off lease runs out, not the whole build lease
    # (an admin is shown the fault's details as its message, as Nova does)
    assert final["status"] == "ACTIVE" or "did not finish in time" in final["fault"]["message"], final
    for server_id in (sid, cut):
        assert httpx.delete(f"{again.compute_url}/servers/{server_id}", headers=h(api.token)).status_code == 204
    deadline = time.monotonic() + 20
    while qemu_pids(qcloud.state_dir / "instances") or leftovers(qcloud):
        assert time.monotonic() < deadline, leftovers(qcloud)
        time.sleep(0.2)


def test_flavor_ephemeral_and_swap_disks(qcloud: Cloud) -> None:
    api = Api(qcloud)
    flavor = httpx.post(f"{qcloud.compute_url}/flavors", headers=h(api.token), json={"flavor": {
        "name": unique("eph"), "ram": 128, "vcpus": 1, "disk": 1, "OS-FLV-EXT-DATA:ephemeral": 1,
        "swap": 64}}).json()["flavor"]
    image = httpx.get(f"{qcloud.image_url}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": api.token}
                      ).json()["images"][0]["id"]
    r = httpx.post(f"{qcloud.compute_url}/servers", headers=h(api.token), json={"server": {
        "name": "disks", "flavorRef": flavor["id"], "imageRef": image, "networks": "none"}})
    sid = r.json()["server"]["id"]
    api.wait(sid, "ACTIVE")
    d = where(api, sid)
    cmdline = Path(f"/proc/{qemu_pids(d)[0]}/cmdline").read_bytes().decode().split("\0")
    assert any("disk.eph0" in a for a in cmdline) and any("disk.swap" in a for a in cmdline)
    assert (d / "disk.eph0").stat().st_size > 0 and (d / "disk.swap").exists()
    httpx.delete(f"{qcloud.compute_url}/servers/{sid}", headers=h(api.token))
    deadline = time.monotonic() + 20
    while d.exists() or qemu_pids(d):
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_rebuild_evacuate_and_a_delete_cut_short(qcloud: Cloud) -> None:
    api = Api(qcloud)
    image = httpx.get(f"{qcloud.image_url}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": api.token}
                      ).json()["images"][0]["id"]
    r = httpx.post(f"{qcloud.compute_url}/servers", headers=h(api.token), json={"server": {
        "name": "phoenix", "flavorRef": "10", "imageRef": image, "networks": "none",
        "availability_zone": "nova:qnode"}})
    sid = r.json()["server"]["id"]
    api.wait(sid, "ACTIVE")
    api.wait_console(sid, READY)
    # rebuild: a new root disk from the image, booted again
    api.act(sid, {"rebuild": {"imageRef": image, "name": "phoenix-2"}})
    api.wait(sid, "ACTIVE")
    api.wait_console(sid, READY, 2)
    # evacuate from a host forced down: rebuilt on the other node; the old copy goes when the
    # forced-down node's agent reports it again
    service = httpx.get(f"{qcloud.compute_url}/os-services?host=qnode", headers=h(api.token, "2.53")
                        ).json()["services"][0]
    url = f"{qcloud.compute_url}/os-services/{service['id']}"
    assert httpx.put(url, headers=h(api.token, "2.53"), json={"forced_down": True}).status_code == 200
    try:
        api.act(sid, {"evacuate": {}}, "2.29")
        deadline = time.monotonic() + 60
        while (s := api.get(sid))["OS-EXT-SRV-ATTR:host"] != "qnode-2" or s["OS-EXT-STS:task_state"]:
            assert time.monotonic() < deadline, s
            time.sleep(0.2)
        assert s["status"] == "ACTIVE"
        api.wait_console(sid, READY)
    finally:
        httpx.put(url, headers=h(api.token, "2.53"), json={"forced_down": False})
    old = instance_dir(qcloud, sid, "qnode")
    deadline = time.monotonic() + 20
    while old.exists() or qemu_pids(old):
        assert time.monotonic() < deadline, "the evacuated server's old copy was not removed"
        time.sleep(0.2)
    # a delete whose controller dies at once: the restarted node agent removes what is left
    r = httpx.post(f"{qcloud.compute_url}/servers", headers=h(api.token), json={"server": {
        "name": "doomed", "flavorRef": "10", "imageRef": image, "networks": "none",
        "availability_zone": "nova:qnode"}})
    doomed = r.json()["server"]["id"]
    api.wait(doomed, "ACTIVE")
    d = where(api, doomed)
    # and a QEMU of this node that no instance owns at all (its directory is gone)
    stray = instance_dir(qcloud, str(uuid.uuid4()), "qnode")
    subprocess.run(["qemu-system-x86_64", "-nodefaults", "-display", "none", "-S", "-uuid", stray.name,
                    "-chardev", f"file,id=c,path={stray}.log", "-serial", "chardev:c", "-daemonize"], check=True)
    assert len(qemu_pids(stray)) == 1
    assert httpx.delete(f"{qcloud.compute_url}/servers/{doomed}", headers=h(api.token)).status_code == 204
    os.killpg(qcloud.proc.pid, signal.SIGKILL)
    qcloud.proc.wait()
    again = restart(qcloud)
    api = Api(again)
    deadline = time.monotonic() + 30
    while d.exists() or qemu_pids(d) or qemu_pids(stray):
        assert time.monotonic() < deadline, "the deleted server's guest or the stray QEMU survived the restart"
        time.sleep(0.2)
    Path(f"{stray}.log").unlink(missing_ok=True)
    assert httpx.delete(f"{again.compute_url}/servers/{sid}", headers=h(api.token)).status_code == 204
    deadline = time.monotonic() + 20
    while qemu_pids(qcloud.state_dir / "instances") or leftovers(qcloud):
        assert time.monotonic() < deadline, leftovers(qcloud)
        time.sleep(0.2)


# -- the compute node checks images again before QEMU opens them ------------------------------------
LEGACY = {"qcow-with-backing.qcow2": "backing file ('/etc/hosts')",
          "qcow-with-datafile.qcow2": "external data file",
          "raw-claimed-qcow2.qcow2": "disk_format is qcow2 but its data matches no known disk format",
          "vmdk-sparse-with-url-backing.vmdk": "extent in another file"}


def plant_legacy_image(cloud: Cloud, token: str, path: Path, disk_format: str, tmp: Path) -> str:
    """An image whose data was stored before uploads were inspected (what an older release let in):
    a good upload whose stored file and recorded size and hashes are then replaced by ``path``."""
    import hashlib
    import sqlite3

    from tests.unit.test_image_formats import sample

    r = httpx.post(f"{cloud.image_url}/v2/images", headers={"X-Auth-Token": token}, json={
        "name": unique("legacy"), "disk_format": disk_format, "container_format": "bare"})
    image_id = r.json()["id"]
    good, _ = sample("standard-qcow2v3.qcow2" if disk_format == "qcow2" else "vmdk-monolithicSparse.vmdk", tmp)
    assert httpx.put(f"{cloud.image_url}/v2/images/{image_id}/file", content=good.read_bytes(), headers={
        "X-Auth-Token": token, "Content-Type": "application/octet-stream"}).status_code == 204
    data = path.read_bytes()
    (cloud.state_dir / "images" / image_id).write_bytes(data)
    with sqlite3.connect(cloud.state_dir / "cumulo.db") as db:
        db.execute("UPDATE image_image SET size = ?, checksum = ?, os_hash_value = ? WHERE id = ?",
                   (len(data), hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest(), image_id))
    return str(image_id)


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_a_poisoned_base_image_is_refused_before_qemu_starts(qcloud: Cloud, name: str, tmp_path: Path) -> None:
    from tests.unit.test_image_formats import sample

    api = Api(qcloud)
    path, disk_format = sample(name, tmp_path / "bad")
    image = plant_legacy_image(qcloud, api.token, path, disk_format, tmp_path / "good")
    r = httpx.post(f"{qcloud.compute_url}/servers", headers=h(api.token), json={"server": {
        "name": unique("poisoned"), "flavorRef": "10", "imageRef": image, "networks": "none",
        "availability_zone": "nova:qnode"}})
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    server = api.wait(sid, "ERROR", timeout=60)
    assert f"Image {image} is not acceptable" in server["fault"]["message"], server["fault"]
    assert LEGACY[name] in server["fault"]["message"], server["fault"]
    d = instance_dir(qcloud, sid)
    assert not d.exists() and not qemu_pids(d)  # QEMU never started; nothing of the build is left
    base = qcloud.state_dir / "instances" / "qnode" / "_base" / image
    assert not base.exists() and not base.with_suffix(".part").exists() and not base.with_suffix(".json").exists()
    assert httpx.delete(f"{qcloud.compute_url}/servers/{sid}", headers=h(api.token)).status_code == 204


def test_a_base_cached_before_the_checks_is_checked_before_its_first_use(tmp_path: Path) -> None:
    """qemu-img's reading alone also refuses (a second, independent check), and a base that entered
    the cache before inspection existed is inspected before use and removed when it fails."""
    import asyncio
    import json

    from cumulo.compute.virt.qemu.images import ImageCache, ImageUnacceptable, judge_qemu_info, qemu_img_info
    from tests.unit.test_image_formats import sample

    bad, _ = sample("qcow-with-backing.qcow2", tmp_path)
    with pytest.raises(ImageUnacceptable, match="qemu-img finds a backing file"):
        judge_qemu_info(asyncio.run(qemu_img_info(bad, 30)), bad, "qcow2")
    good, _ = sample("standard-qcow2v3.qcow2", tmp_path)
    with pytest.raises(ImageUnacceptable, match="qemu-img reads it as qcow2, but its disk_format raw means raw"):
        judge_qemu_info(asyncio.run(qemu_img_info(good, 30)), good, "raw")
    cache = ImageCache(tmp_path / "_base")
    for image_id, source in (("legacy-bad", bad), ("legacy-good", good)):
        cache.path(image_id).write_bytes(source.read_bytes())
        cache.path(image_id).with_suffix(".json").write_text(json.dumps({"disk_format": "qcow2"}))
    with pytest.raises(ImageUnacceptable, match="Image legacy-bad is not acceptable: .*backing file"):
        asyncio.run(cache.fetch("legacy-bad", "", ""))
    assert not cache.path("legacy-bad").exists() and not cache.path("legacy-bad").with_suffix(".json").exists()
    path, meta = asyncio.run(cache.fetch("legacy-good", "", ""))
    assert path == cache.path("legacy-good") and meta["inspected"] == 1


def test_a_helper_that_hangs_is_killed_at_its_timeout(tmp_path: Path) -> None:
    """Every qemu-img/cp/genisoimage the driver runs has a deadline: past it the process is killed
    and the operation fails with a reason instead of hanging the build."""
    import asyncio

    from cumulo.compute.virt.qemu.driver import run

    nap = f"{30 + os.getpid() % 1000 / 1000:.3f}"  # a sleep of its own, to look for afterwards
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="did not finish within 0.5 s"):
        asyncio.run(run("sh", "-c", f"sleep {nap}; true", timeout=0.5))
    assert time.monotonic() - started < 5

    def cmdlines() -> list[bytes]:
        out = []
        for p in Path("/proc").iterdir():
            try:
                out.append((p / "cmdline").read_bytes().replace(b"\0", b" "))
            except OSError:
                continue
        return out

    assert not [c for c in cmdlines() if f"sleep {nap}".encode() in c]  # the helper's children went too
