"""Volumes in real guests: a blank volume hot-plugged into a running cumulo-tiny server (QEMU
under TCG) shows up in the guest by its serial, the guest writes a known pattern, the volume is
unplugged, plugged into a second server, and the pattern reads back there; it stays attached
across a stop and start; deleting a server gives its volumes back.  Also the faults of
os-volume_attachments and each persona's rights.  Block storage and compute talk only through
VolumeService's attachments.  (Live migration with a volume: test_qemu.py, which has two nodes.)"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functional.conftest import Cloud, personas, start_cloud, stop_cloud, wait_for
from tests.functional.test_qemu import READY, qemu_pids

SERVICES = "identity,image,compute,placement,network,volume"
# user-data: every disk that appears with a serial (a volume) is announced on the console; a blank
# one gets the pattern written to its first bytes, one that holds something has it printed
WATCHER = """#!/bin/sh
(seen=""; sizes=""; while true; do
  now=""; nsizes=""
  for b in /sys/block/vd*; do
    s=$(cat "$b/serial" 2>/dev/null); [ -n "$s" ] || continue
    z=$(cat "$b/size"); now="$now $s"; nsizes="$nsizes $s=$z"; n=${b##*/}
    case " $seen " in *" $s "*)
      case " $sizes " in *" $s=$z "*) ;; *) echo "volume $s size $z" > /dev/console;; esac
      continue;; esac
    head=$(dd if=/dev/$n bs=64 count=1 2>/dev/null | tr -d '\\000\\n')
    if [ -z "$head" ]; then
      echo "PATTERN" | dd of=/dev/$n bs=64 count=1 conv=sync,fsync 2>/dev/null
      echo "volume $s on $n wrote PATTERN" > /dev/console
    else
      echo "volume $s on $n holds $head" > /dev/console
    fi
  done
  for s in $seen; do case " $now " in *" $s "*) ;; *) echo "volume $s gone" > /dev/console;; esac; done
  seen="$now"; sizes="$nsizes"
  sleep 0.2
done) &
"""


@pytest.fixture(scope="module")
def avcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """One QEMU node (this machine) and one volume node (qcow2 files) in one controller."""
    tmp = tmp_path_factory.mktemp("attach-cloud")
    c = start_cloud(tmp, "sqlite", {
        "CUMULO_SERVICES": SERVICES, "CUMULO_COMPUTE__FAKE_NODES": "0", "CUMULO_COMPUTE__LOCAL_NODE": "true",
        "CUMULO_COMPUTE__HOST": "qnode", "CUMULO_COMPUTE__SHUTDOWN_TIMEOUT": "15",
        "CUMULO_COMPUTE__BUILD_TIMEOUT": "120"})
    yield c
    stop_cloud(c)
    for pid in qemu_pids(tmp):  # a failed test must not leave guests running
        os.kill(pid, signal.SIGKILL)


def nova(token: str, version: str = "2.79") -> dict[str, str]:
    return {"X-Auth-Token": token, "OpenStack-API-Version": f"compute {version}"}


class Clients:
    """Plain HTTP to compute and block storage as one user of one project."""

    def __init__(self, cloud: Cloud, token: str, project_id: str) -> None:
        self.cloud, self.token, self.project_id = cloud, token, project_id

    def compute(self, method: str, path: str, body: Any = None, version: str = "2.79") -> httpx.Response:
        return httpx.request(method, f"{self.cloud.compute_url}{path}", json=body, headers=nova(self.token, version),
                             timeout=30)

    def volume(self, method: str, path: str, body: Any = None, version: str = "3.60") -> httpx.Response:
        return httpx.request(method, f"{self.cloud.volume_url}/{self.project_id}{path}", json=body,
                             headers={"X-Auth-Token": self.token, "OpenStack-API-Version": f"volume {version}"},
                             timeout=30)

    def volume_status(self, volume_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            v = self.volume("GET", f"/volumes/{volume_id}").json()["volume"]
            assert v["status"] not in ("error", "error_attaching"), v
            return v if v["status"] == status else None
        return wait_for(check, timeout, f"volume {volume_id} to be {status}")  # type: ignore[return-value]

    def server(self, server_id: str) -> dict[str, Any]:
        return dict(self.compute("GET", f"/servers/{server_id}").json()["server"])

    def server_status(self, server_id: str, status: str, timeout: float = 150) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            s = self.server(server_id)
            assert s["status"] != "ERROR", s.get("fault")
            return s if s["status"] == status and s["OS-EXT-STS:task_state"] is None else None
        return wait_for(check, timeout, f"server {server_id} to be {status}")  # type: ignore[return-value]

    def console(self, server_id: str) -> str:
        r = self.compute("POST", f"/servers/{server_id}/action", {"os-getConsoleOutput": {}})
        return str(r.json()["output"]) if r.status_code == 200 else ""

    def wait_console(self, server_id: str, marker: str, count: int = 1, timeout: float = 150) -> str:
        return wait_for(lambda: (t := self.console(server_id)).count(marker) >= count and t, timeout,  # type: ignore
                        f"{marker!r} x{count} on the console of {server_id}", every=0.3)


@pytest.fixture(scope="module")
def admin(avcloud: Cloud) -> Clients:
    token, body = avcloud.token()
    return Clients(avcloud, token, body["project"]["id"])


@pytest.fixture(scope="module")
def people(avcloud: Cloud) -> dict[str, Clients]:
    return {name: Clients(avcloud, token, project) for name, (token, project) in personas(avcloud, "att").items()}


def boot(c: Clients, name: str) -> str:
    image = httpx.get(f"{c.cloud.image_url}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": c.token}
                      ).json()["images"][0]["id"]
    r = c.compute("POST", "/servers", {"server": {
        "name": name, "flavorRef": "10", "imageRef": image, "networks": "none", "config_drive": True,
        "user_data": base64.b64encode(WATCHER.encode()).decode()}})
    assert r.status_code == 202, r.text
    return str(r.json()["server"]["id"])


def volume_bytes(cloud: Cloud, volume_id: str, tmp: Path) -> bytes:
    """The first 64 bytes of the volume's qcow2 file as the host reads them."""
    path = next((cloud.state_dir / "volumes").glob(f"*/volume-{volume_id}.qcow2"))
    out = tmp / "head.raw"
    subprocess.run(["qemu-img", "dd", "-f", "qcow2", "-O", "raw", "bs=64", "count=1", f"if={path}", f"of={out}"],
                   check=True, capture_output=True)
    return out.read_bytes()


def test_a_volume_moves_between_guests_with_its_data(admin: Clients, people: dict[str, Clients],
                                                     tmp_path: Path) -> None:
    member = people["member"]
    a, b = boot(member, "vol-a"), boot(member, "vol-b")  # they boot side by side
    r = member.volume("POST", "/volumes", {"volume": {"size": 1, "name": "data"}})
    assert r.status_code == 202, r.text
    vid = r.json()["volume"]["id"]
    member.volume_status(vid, "available")
    serial = vid[:20]  # virtio-blk shows the first 20 characters of the serial
    member.server_status(a, "ACTIVE")
    member.wait_console(a, READY)

    # attach to A: the guest sees the disk and writes the pattern
    started = time.monotonic()
    r = member.compute("POST", f"/servers/{a}/os-volume_attachments", {"volumeAttachment": {"volumeId": vid}})
    assert r.status_code == 200, r.text
    att = r.json()["volumeAttachment"]
    assert att["volumeId"] == vid and att["serverId"] == a and att["id"] == vid
    assert att["device"].startswith("/dev/vd") and att["delete_on_termination"] is False
    member.wait_console(a, f"volume {serial} on vd")
    print(f"attach -> visible in the guest: {time.monotonic() - started:.2f} s")
    vol = member.volume_status(vid, "in-use")
    assert [x["server_id"] for x in vol["attachments"]] == [a]
    assert f"volume {serial}" in member.console(a) and "wrote PATTERN" in member.console(a)
    listed = member.compute("GET", f"/servers/{a}/os-volume_attachments", version="2.89").json()
    assert [(x["volumeId"], "id" in x, bool(x["attachment_id"])) for x in listed["volumeAttachments"]] == [
        (vid, False, True)]
    assert member.server(a)["os-extended-volumes:volumes_attached"] == [{"id": vid, "delete_on_termination": False}]

    # in use, it cannot be deleted, attached again, or attached elsewhere
    assert member.volume("DELETE", f"/volumes/{vid}").status_code == 400
    again = member.compute("POST", f"/servers/{a}/os-volume_attachments", {"volumeAttachment": {"volumeId": vid}})
    assert again.status_code == 400, again.text
    member.server_status(b, "ACTIVE")
    member.wait_console(b, READY)
    elsewhere = member.compute("POST", f"/servers/{b}/os-volume_attachments", {"volumeAttachment": {"volumeId": vid}})
    assert elsewhere.status_code == 400, elsewhere.text

    # detach from A: gone in the guest, available again, and the file holds what the guest wrote
    started = time.monotonic()
    r = member.compute("DELETE", f"/servers/{a}/os-volume_attachments/{vid}")
    assert r.status_code == 202, r.text
    member.wait_console(a, f"volume {serial} gone")
    print(f"detach -> gone from the guest: {time.monotonic() - started:.2f} s")
    vol = member.volume_status(vid, "available")
    assert vol["attachments"] == []
    assert member.compute("GET", f"/servers/{a}/os-volume_attachments").json()["volumeAttachments"] == []
    assert volume_bytes(admin.cloud, vid, tmp_path).rstrip(b"\0") == b"PATTERN\n"

    # attach to B: the pattern reads back there; it stays across a stop and a start of B
    r = member.compute("POST", f"/servers/{b}/os-volume_attachments", {"volumeAttachment": {"volumeId": vid}})
    assert r.status_code == 200, r.text
    member.wait_console(b, f"volume {serial} on vd")
    member.volume_status(vid, "in-use")
    assert f"volume {serial}" in member.console(b) and "holds PATTERN" in member.console(b)
    # extended while in use (3.42): QEMU grows it and the running guest sees 2 GiB
    r = member.volume("POST", f"/volumes/{vid}/action", {"os-extend": {"new_size": 2}}, version="3.42")
    assert r.status_code == 202, r.text
    member.wait_console(b, f"volume {serial} size {2 * 1024**3 // 512}")
    vol = member.volume_status(vid, "in-use")
    assert vol["size"] == 2
    actions = member.compute("GET", f"/servers/{b}/os-instance-actions").json()["instanceActions"]
    assert "extend_volume" in [a["action"] for a in actions]  # as Nova's external event records it
    # an in-use snapshot (force), copied by B's QEMU while B runs: a volume made from it holds the pattern
    r = member.volume("POST", "/snapshots", {"snapshot": {"volume_id": vid, "force": True}})
    assert r.status_code == 202, r.text
    snap = r.json()["snapshot"]["id"]
    wait_for(lambda: member.volume("GET", f"/snapshots/{snap}").json()["snapshot"]["status"] == "available", 60,
             "the in-use snapshot")
    r = member.volume("POST", "/volumes", {"volume": {"snapshot_id": snap, "size": 2}})
    assert r.status_code == 202, r.text
    copy = r.json()["volume"]["id"]
    member.volume_status(copy, "available")
    assert volume_bytes(admin.cloud, copy, tmp_path).rstrip(b"\0") == b"PATTERN\n"
    assert "cumulo-guest" in member.console(b) and member.server(b)["status"] == "ACTIVE"
    assert member.compute("POST", f"/servers/{b}/action", {"os-stop": None}).status_code == 202
    member.server_status(b, "SHUTOFF")
    assert member.compute("POST", f"/servers/{b}/action", {"os-start": None}).status_code == 202
    member.server_status(b, "ACTIVE")
    member.wait_console(b, "holds PATTERN", count=2)
    # a detach asked while the guest is still booting (its ACPI not up yet) is asked again until it lands
    assert member.compute("POST", f"/servers/{b}/action", {"os-stop": None}).status_code == 202
    member.server_status(b, "SHUTOFF")
    assert member.compute("POST", f"/servers/{b}/action", {"os-start": None}).status_code == 202
    member.server_status(b, "ACTIVE")
    assert member.compute("DELETE", f"/servers/{b}/os-volume_attachments/{vid}").status_code == 202
    member.volume_status(vid, "available", timeout=90)
    assert member.compute("POST", f"/servers/{b}/os-volume_attachments",
                          {"volumeAttachment": {"volumeId": vid}}).status_code == 200
    member.volume_status(vid, "in-use")

    # deleting B gives the volume back; A and B leave no QEMU behind
    for server in (a, b):
        assert member.compute("DELETE", f"/servers/{server}").status_code == 204
    member.volume_status(vid, "available")
    wait_for(lambda: not qemu_pids(admin.cloud.state_dir / "instances"), 30, "the guests to be gone")
    assert member.volume("DELETE", f"/volumes/{copy}").status_code == 202
    assert member.volume("DELETE", f"/snapshots/{snap}").status_code == 202
    wait_for(lambda: member.volume("DELETE", f"/volumes/{vid}").status_code == 202, 30, "the volume to be deletable")


def test_attachment_faults_and_personas(admin: Clients, people: dict[str, Clients], tmp_path: Path) -> None:
    member, reader, other = people["member"], people["reader"], people["other"]
    sid = boot(member, "vol-faults")
    vid = member.volume("POST", "/volumes", {"volume": {"size": 1}}).json()["volume"]["id"]
    theirs = other.volume("POST", "/volumes", {"volume": {"size": 1}}).json()["volume"]["id"]
    member.volume_status(vid, "available")
    other.volume_status(theirs, "available")
    member.server_status(sid, "ACTIVE")
    path = f"/servers/{sid}/os-volume_attachments"

    def attach(c: Clients, volume_id: Any, version: str = "2.79", **extra: Any) -> httpx.Response:
        return c.compute("POST", path, {"volumeAttachment": {"volumeId": volume_id, **extra}}, version=version)

    # bad input: 400 or 404 in Nova's words, never a 500
    assert attach(member, str(uuid.uuid4())).status_code == 404
    assert attach(member, theirs).status_code == 404  # another project's volume is not there for them
    assert attach(member, 12).status_code == 400
    assert member.compute("POST", path, {"volumeAttachment": {}}).status_code == 400
    assert member.compute("POST", path, {"volume": {"volumeId": vid}}).status_code == 400
    assert attach(member, vid, version="2.48", tag="t").status_code == 400
    assert attach(member, vid, version="2.78", delete_on_termination=True).status_code == 400
    assert attach(member, vid, device="not a device").status_code == 400
    assert member.compute("DELETE", f"{path}/{vid}").status_code == 404
    assert member.compute("GET", f"{path}/{vid}").status_code == 404

    # personas: the reader reads but cannot attach; another project sees no server
    assert attach(reader, vid).status_code == 403
    assert reader.compute("GET", path).status_code == 200
    assert attach(other, theirs).status_code == 404
    assert other.compute("GET", path).status_code == 404

    r = attach(member, vid, delete_on_termination=True, tag="data")
    assert r.status_code == 200, r.text
    assert r.json()["volumeAttachment"]["tag"] is None or r.json()["volumeAttachment"]["tag"] == "data"
    member.volume_status(vid, "in-use")
    shown = member.compute("GET", f"{path}/{vid}", version="2.89").json()["volumeAttachment"]
    assert shown["tag"] == "data" and shown["delete_on_termination"] is True and shown["bdm_uuid"]
    assert reader.compute("DELETE", f"{path}/{vid}").status_code == 403
    assert other.compute("DELETE", f"{path}/{vid}").status_code == 404

    # swap (another volumeId): a service's (admin's) call, taken only while the old volume migrates;
    # the running guest's disk is copied onto the new volume and pivoted there
    member.wait_console(sid, f"volume {vid[:20]} on vd")  # the guest wrote the pattern to it
    new = member.volume("POST", "/volumes", {"volume": {"size": 1, "name": "swap-target"}}).json()["volume"]["id"]
    member.volume_status(new, "available")

    def swap(c: Clients, old: str, to: str) -> httpx.Response:
        return c.compute("PUT", f"{path}/{old}", {"volumeAttachment": {"volumeId": to}}, version="2.85")

    assert swap(member, vid, new).status_code == 403
    r = swap(admin, vid, new)
    assert r.status_code == 409 and "not migrating" in r.text, r.text
    assert swap(admin, str(uuid.uuid4()), new).status_code == 404
    r = admin.volume("POST", f"/volumes/{vid}/action", {"os-reset_status": {"migration_status": "migrating"}})
    assert r.status_code == 202, r.text
    assert swap(admin, vid, str(uuid.uuid4())).status_code == 400
    r = swap(admin, vid, new)
    assert r.status_code == 202, r.text
    wait_for(lambda: [a["volumeId"] for a in member.compute("GET", path).json()["volumeAttachments"]] == [new], 60,
             "the swap to land")
    member.volume_status(new, "in-use")
    member.volume_status(vid, "available")
    shown = member.compute("GET", f"{path}/{new}", version="2.89").json()["volumeAttachment"]
    assert shown["tag"] == "data" and shown["delete_on_termination"] is True, shown
    # the guest's device (still showing the first volume's serial) is the new volume's: detached with it
    assert member.compute("DELETE", f"{path}/{new}").status_code == 202
    member.wait_console(sid, f"volume {vid[:20]} gone")
    member.volume_status(new, "available")
    assert volume_bytes(admin.cloud, new, tmp_path).rstrip(b"\0") == b"PATTERN\n"
    r = attach(member, new, delete_on_termination=True)
    assert r.status_code == 200, r.text
    member.wait_console(sid, f"volume {new[:20]} on vd")
    assert f"volume {new[:20]} on vd" in member.console(sid) and "holds PATTERN" in member.console(sid)
    member.volume_status(new, "in-use")

    # delete_on_termination: the server's delete takes the volume with it
    assert member.compute("DELETE", f"/servers/{sid}").status_code == 204
    wait_for(lambda: member.volume("GET", f"/volumes/{new}").status_code == 404, 30, "the volume to be deleted")
    assert admin.volume("POST", f"/volumes/{vid}/action", {"os-reset_status": {"migration_status": "none"}}
                        ).status_code == 202
    assert member.volume("DELETE", f"/volumes/{vid}").status_code == 202
    assert other.volume("DELETE", f"/volumes/{theirs}").status_code == 202


def cli_json(cloud: Cloud, *args: str) -> Any:
    return json.loads(cloud.cli(*args, "-f", "json").stdout)


def test_boot_from_volume_with_the_openstack_cli(admin: Clients) -> None:
    """The issue's own commands: a volume from the cumulo-tiny image, a server that boots from it,
    a second volume added and removed, and the volume free again once the server is gone."""
    cloud = admin.cloud
    root = cli_json(cloud, "volume", "create", "--size", "1", "--image", "cumulo-tiny", "bfv-root")
    admin.volume_status(root["id"], "available", timeout=60)
    assert admin.volume("GET", f"/volumes/{root['id']}").json()["volume"]["bootable"] == "true"
    user_data = Path(cloud.state_dir / "watcher.sh")
    user_data.write_text(WATCHER)
    server = cli_json(cloud, "server", "create", "--volume", root["id"], "--flavor", "cumulo.nano", "--nic", "none",
                      "--config-drive", "true", "--user-data", str(user_data), "--wait", "bfv-server")
    sid = server["id"]
    admin.wait_console(sid, READY)
    shown = admin.server(sid)
    assert shown["image"] == "" and shown["os-extended-volumes:volumes_attached"] == [
        {"id": root["id"], "delete_on_termination": False}]
    vol = admin.volume_status(root["id"], "in-use")
    assert vol["attachments"][0]["device"] == "/dev/vda" and vol["attachments"][0]["server_id"] == sid
    inst = cloud.state_dir / "instances" / "qnode" / sid
    assert not (inst / "disk").exists()  # no local root disk: it runs from the volume's file
    # what a volume-backed server cannot do yet says so
    r = admin.compute("POST", f"/servers/{sid}/action", {"evacuate": {}})
    assert r.status_code == 400 and "volume" in r.text, r.text

    extra = cli_json(cloud, "volume", "create", "--size", "1", "bfv-extra")
    admin.volume_status(extra["id"], "available")
    cloud.cli("server", "add", "volume", sid, extra["id"])
    admin.volume_status(extra["id"], "in-use")
    admin.wait_console(sid, f"volume {extra['id'][:20]} on vd")
    cloud.cli("server", "remove", "volume", sid, extra["id"])
    admin.volume_status(extra["id"], "available")
    admin.wait_console(sid, f"volume {extra['id'][:20]} gone")

    cloud.cli("server", "delete", "--wait", sid)
    admin.volume_status(root["id"], "available")
    for vid in (root["id"], extra["id"]):
        cloud.cli("volume", "delete", vid)


def test_boot_from_a_new_volume_made_from_the_image(admin: Clients, people: dict[str, Clients]) -> None:
    """block_device_mapping_v2 image -> volume with delete_on_termination: compute makes the volume
    as the member (their quota), boots from it, and deletes it with the server."""
    member = people["member"]
    image = httpx.get(f"{member.cloud.image_url}/v2/images?name=cumulo-tiny",
                      headers={"X-Auth-Token": member.token}).json()["images"][0]["id"]

    def create(**bdm: Any) -> httpx.Response:
        return member.compute("POST", "/servers", {"server": {
            "name": "bfv-new", "flavorRef": "10", "networks": "none",
            "block_device_mapping_v2": [{"boot_index": 0, "destination_type": "volume", **bdm}]}})

    # what Nova refuses before anything is built
    assert create(source_type="image", uuid=image).status_code == 400  # no volume_size
    assert create(source_type="volume", uuid=str(uuid.uuid4())).status_code == 400
    assert create(source_type="image", uuid=str(uuid.uuid4()), volume_size=1).status_code == 400
    assert create(source_type="tape", uuid=image, volume_size=1).status_code == 400
    assert create(source_type="blank", volume_size=0).status_code == 400

    r = create(source_type="image", uuid=image, volume_size=1, delete_on_termination=True)
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    member.server_status(sid, "ACTIVE")
    member.wait_console(sid, READY)
    attached = member.server(sid)["os-extended-volumes:volumes_attached"]
    assert len(attached) == 1 and attached[0]["delete_on_termination"] is True
    vid = attached[0]["id"]
    vol = member.volume_status(vid, "in-use")
    assert vol["size"] == 1 and vol["bootable"] == "true" and vol["user_id"] == member.server(sid)["user_id"]
    assert member.compute("DELETE", f"/servers/{sid}").status_code == 204
    wait_for(lambda: member.volume("GET", f"/volumes/{vid}").status_code == 404, 30, "the root volume to go")


def test_the_os_volumes_proxy_up_to_2_35(admin: Clients, people: dict[str, Clients]) -> None:
    member, reader = people["member"], people["reader"]
    r = member.compute("POST", "/os-volumes", {"volume": {"size": 1, "display_name": "proxied"}}, version="2.35")
    assert r.status_code == 200, r.text
    vol = r.json()["volume"]
    assert vol["displayName"] == "proxied" and vol["size"] == 1 and vol["attachments"] == [{}]
    member.volume_status(vol["id"], "available")
    listed = member.compute("GET", "/os-volumes/detail", version="2.35").json()["volumes"]
    assert vol["id"] in [v["id"] for v in listed]
    assert reader.compute("GET", f"/os-volumes/{vol['id']}", version="2.35").json()["volume"]["status"] == "available"
    assert reader.compute("POST", "/os-volumes", {"volume": {"size": 1}}, version="2.35").status_code == 403
    assert member.compute("GET", "/os-volumes", version="2.36").status_code == 404
    assert member.compute("POST", "/os-volumes", {"volume": {"size": 0}}, version="2.35").status_code == 400
    assert member.compute("POST", "/os-volumes", {"volume": "x"}, version="2.35").status_code == 400
    assert people["other"].compute("GET", f"/os-volumes/{vol['id']}", version="2.35").status_code == 404
    # a path with no id names nothing (not the list it would redirect to)
    assert member.compute("GET", "/os-volumes/", version="2.35").status_code == 404
    assert member.compute("DELETE", "/os-snapshots/", version="2.35").status_code == 404

    r = member.compute("POST", "/os-snapshots", {"snapshot": {"volume_id": vol["id"], "display_name": "s"}},
                       version="2.35")
    assert r.status_code == 200, r.text
    snap = r.json()["snapshot"]
    assert snap["volumeId"] == vol["id"] and snap["displayName"] == "s"
    wait_for(lambda: member.compute("GET", f"/os-snapshots/{snap['id']}", version="2.35").json()["snapshot"][
        "status"] == "available", 30, "the snapshot to be available")
    assert snap["id"] in [s["id"] for s in member.compute("GET", "/os-snapshots/detail", version="2.35").json()[
        "snapshots"]]
    assert member.compute("DELETE", f"/os-snapshots/{snap['id']}", version="2.35").status_code == 202
    wait_for(lambda: member.compute("GET", f"/os-snapshots/{snap['id']}", version="2.35").status_code == 404, 30,
             "the snapshot to go")
    assert member.compute("DELETE", f"/os-volumes/{vol['id']}", version="2.35").status_code == 202


# user-data for a volume-backed server: the 1 GiB disk (the root volume) has a token written past
# its filesystem, after what that place held is printed (a server made from a snapshot reads it)
ROOT_MARKER = """#!/bin/sh
for b in /sys/block/vd*; do [ "$(cat $b/size)" = 2097152 ] && n=${b##*/}; done
head=$(dd if=/dev/$n bs=512 skip=2000000 count=1 2>/dev/null | tr -d '\\000\\n')
echo "root holds [$head]" > /dev/console
echo "TOKEN" | dd of=/dev/$n bs=512 seek=2000000 count=1 conv=sync,fsync 2>/dev/null && \\
  echo "root wrote TOKEN" > /dev/console
"""


def test_a_volume_backed_server_snapshots_shelves_and_boots_again(admin: Clients, people: dict[str, Clients]) -> None:
    """createImage of a volume-backed server: block storage snapshots its root volume and the image
    (no data) records the snapshot in block_device_mapping; a server made from that image boots
    from a new volume holding what the first server wrote.  Shelving it makes no image (its volume
    stays attached) and unshelve boots it from its volume again, with its data; so do a resize and a
    rebuild (with the image its root volume holds)."""
    member = people["member"]
    token = f"mark-{uuid.uuid4().hex[:12]}"
    user_data = base64.b64encode(ROOT_MARKER.replace("TOKEN", token).encode()).decode()
    image = httpx.get(f"{member.cloud.image_url}/v2/images?name=cumulo-tiny",
                      headers={"X-Auth-Token": member.token}).json()["images"][0]["id"]
    r = member.volume("POST", "/volumes", {"volume": {"size": 1, "imageRef": image, "name": "bfv-snap-root"}})
    assert r.status_code == 202, r.text
    root = r.json()["volume"]["id"]
    member.volume_status(root, "available", timeout=60)
    # a volume that is not bootable (a blank one) cannot be the root (Nova's 400)
    blank = member.volume("POST", "/volumes", {"volume": {"size": 1, "name": "bfv-blank"}}).json()["volume"]["id"]
    member.volume_status(blank, "available")
    r = member.compute("POST", "/servers", {"server": {"name": "bfv-blank", "flavorRef": "10", "networks": "none",
        "block_device_mapping_v2": [{"boot_index": 0, "source_type": "volume", "destination_type": "volume",
                                     "uuid": blank}]}})
    assert r.status_code == 400 and "not bootable" in r.json()["badRequest"]["message"], r.text
    assert member.volume("DELETE", f"/volumes/{blank}").status_code == 202
    r = member.compute("POST", "/servers", {"server": {
        "name": "bfv-snap", "flavorRef": "10", "networks": "none", "config_drive": True, "user_data": user_data,
        "block_device_mapping_v2": [{"boot_index": 0, "source_type": "volume", "destination_type": "volume",
                                     "uuid": root, "delete_on_termination": True}]}})
    assert r.status_code == 202, r.text
    a = r.json()["server"]["id"]
    member.server_status(a, "ACTIVE")
    member.wait_console(a, f"root wrote {token}")
    assert "root holds []" in member.console(a)

    # over the snapshots quota: a 403 (Nova's OverQuota), and nothing is left behind
    quota = f"/os-quota-sets/{member.project_id}"
    was = admin.volume("GET", quota).json()["quota_set"]["snapshots"]
    assert admin.volume("PUT", quota, {"quota_set": {"snapshots": 0}}).status_code == 200
    r = member.compute("POST", f"/servers/{a}/action", {"createImage": {"name": "over"}}, version="2.45")
    assert r.status_code == 403 and "snapshots" in r.text, r.text
    assert admin.volume("PUT", quota, {"quota_set": {"snapshots": was}}).status_code == 200
    assert not httpx.get(f"{member.cloud.image_url}/v2/images?name=over", headers={"X-Auth-Token": member.token}
                         ).json()["images"]

    # createImage: an active image with no data whose properties name the snapshot of the root volume
    r = member.compute("POST", f"/servers/{a}/action", {"createImage": {"name": "bfv-image", "metadata": {"k": "v"}}},
                       version="2.45")
    assert r.status_code == 202, r.text
    image_id = r.json()["image_id"]
    shown = httpx.get(f"{member.cloud.image_url}/v2/images/{image_id}", headers={"X-Auth-Token": member.token}).json()
    assert (shown["status"], shown["size"], shown["container_format"], shown["disk_format"]) == (
        "active", 0, "bare", "raw"), shown
    assert shown["bdm_v2"] == "True" and shown["root_device_name"] == "/dev/vda" and shown["k"] == "v"
    mapping = json.loads(shown["block_device_mapping"])
    assert len(mapping) == 1, mapping
    m = mapping[0]
    assert (m["source_type"], m["destination_type"], m["boot_index"], m["volume_size"], m["delete_on_termination"],
            m["volume_id"]) == ("snapshot", "volume", 0, 1, True, None), m
    snap = member.volume("GET", f"/snapshots/{m['snapshot_id']}").json()["snapshot"]
    assert snap["volume_id"] == root and snap["status"] == "available", snap
    assert member.volume_status(root, "in-use")["attachments"][0]["server_id"] == a
    assert member.server(a)["status"] == "ACTIVE"
    actions = member.compute("GET", f"/servers/{a}/os-instance-actions").json()["instanceActions"]
    assert "createImage" in [x["action"] for x in actions]

    # shelve: no image, the guest gone from its host, the volume still attached
    images_before = {i["id"] for i in httpx.get(f"{member.cloud.image_url}/v2/images",
                                                headers={"X-Auth-Token": member.token}).json()["images"]}
    assert member.compute("POST", f"/servers/{a}/action", {"shelve": None}).status_code == 202
    member.server_status(a, "SHELVED_OFFLOADED")
    wait_for(lambda: not (admin.cloud.state_dir / "instances" / "qnode" / a).exists(), 30, "the instance to go")
    images_after = {i["id"] for i in httpx.get(f"{member.cloud.image_url}/v2/images",
                                               headers={"X-Auth-Token": member.token}).json()["images"]}
    assert images_after == images_before
    assert member.volume_status(root, "in-use")["attachments"][0]["server_id"] == a
    # a shelved server's volumes change from 2.20 (409 before), at once since it runs nowhere
    extra = member.volume("POST", "/volumes", {"volume": {"size": 1}}).json()["volume"]["id"]
    member.volume_status(extra, "available")
    attach = {"volumeAttachment": {"volumeId": extra}}
    assert member.compute("POST", f"/servers/{a}/os-volume_attachments", attach, version="2.19").status_code == 409
    r = member.compute("POST", f"/servers/{a}/os-volume_attachments", attach, version="2.20")
    assert r.status_code == 200, r.text
    member.volume_status(extra, "in-use")
    assert member.compute("DELETE", f"/servers/{a}/os-volume_attachments/{extra}", version="2.19").status_code == 409
    assert member.compute("DELETE", f"/servers/{a}/os-volume_attachments/{extra}", version="2.20").status_code == 202
    member.volume_status(extra, "available")
    assert member.volume("DELETE", f"/volumes/{extra}").status_code == 202

    # a server from the image boots from a new volume made from the snapshot; A is unshelved meanwhile
    r = member.compute("POST", "/servers", {"server": {
        "name": "bfv-from-image", "flavorRef": "10", "networks": "none", "imageRef": image_id, "config_drive": True,
        "user_data": user_data}})
    assert r.status_code == 202, r.text
    b = r.json()["server"]["id"]
    assert member.compute("POST", f"/servers/{a}/action", {"unshelve": None}).status_code == 202
    member.server_status(b, "ACTIVE")
    attached = member.server(b)["os-extended-volumes:volumes_attached"]
    assert len(attached) == 1 and attached[0]["id"] != root and attached[0]["delete_on_termination"] is True
    copy = member.volume_status(attached[0]["id"], "in-use")
    assert copy["snapshot_id"] == snap["id"] and copy["attachments"][0]["server_id"] == b
    member.wait_console(b, f"root holds [{token}]")
    member.server_status(a, "ACTIVE")
    member.wait_console(a, f"root holds [{token}]")
    assert member.volume_status(root, "in-use")["attachments"][0]["server_id"] == a

    # resize: the root disk stays in its volume (no local disk claimed or copied); confirmed, it runs on it
    r = member.compute("POST", f"/servers/{a}/action", {"resize": {"flavorRef": "11"}})
    assert r.status_code == 202, r.text
    member.server_status(a, "VERIFY_RESIZE")
    assert member.compute("POST", f"/servers/{a}/action", {"confirmResize": None}).status_code in (202, 204)
    assert member.server_status(a, "ACTIVE")["flavor"]["original_name"] == "cumulo.micro"
    member.wait_console(a, f"root holds [{token}]", count=2)
    assert member.volume_status(root, "in-use")["attachments"][0]["server_id"] == a

    # rebuild: only with the image its root volume holds (no reimage), and the guest starts again on it
    r = member.compute("POST", f"/servers/{a}/action", {"rebuild": {"imageRef": image_id}})
    assert r.status_code == 400 and "different image" in r.text, r.text
    r = member.compute("POST", f"/servers/{a}/action", {"rebuild": {"imageRef": image, "name": "bfv-rebuilt"}})
    assert r.status_code == 202 and r.json()["server"]["image"] == "", r.text
    assert member.server_status(a, "ACTIVE")["name"] == "bfv-rebuilt"
    member.wait_console(a, f"root holds [{token}]", count=3)
    assert member.volume_status(root, "in-use")["attachments"][0]["server_id"] == a

    # deleting B takes its volume (delete_on_termination); A's root volume has a snapshot, so block
    # storage keeps it (as Cinder does) until the snapshot is gone
    for server in (a, b):
        assert member.compute("DELETE", f"/servers/{server}").status_code == 204
    wait_for(lambda: member.volume("GET", f"/volumes/{copy['id']}").status_code == 404, 60, "B's volume to go")
    member.volume_status(root, "available")
    assert member.volume("DELETE", f"/snapshots/{snap['id']}").status_code == 202
    wait_for(lambda: member.volume("DELETE", f"/volumes/{root}").status_code == 202, 30, "the root to be deletable")
    assert httpx.delete(f"{member.cloud.image_url}/v2/images/{image_id}",
                        headers={"X-Auth-Token": member.token}).status_code == 204


# user-data: for each serial in turn, wait for its disk, time 300 direct (uncached, one at a time)
# 4 KiB writes with the guest's clock, and print the start and end (seconds since boot)
IOPS_PROBE = """#!/bin/sh
(for s in {serials}; do
  n=""; while [ -z "$n" ]; do
    for b in /sys/block/vd*; do [ "$(cat $b/serial 2>/dev/null)" = "$s" ] && n=${{b##*/}}; done; sleep 0.2
  done
  a=$(cut -d' ' -f1 /proc/uptime)
  dd if=/dev/zero of=/dev/$n bs=4k count=300 oflag=direct 2>/dev/null
  z=$(cut -d' ' -f1 /proc/uptime)
  echo "iops-probe $s $a $z" > /dev/console
done) &
"""


def qmp_query(sock: Path, command: str, **arguments: Any) -> Any:
    """One QMP command on a guest's monitor, from the test (the driver connects per operation)."""
    import asyncio

    from cumulo.compute.virt.qemu.qmp import QMP

    async def ask() -> Any:
        async with QMP(str(sock), timeout=10) as q:
            return await q.execute(command, **arguments)
    return asyncio.run(ask())


def test_a_qos_write_iops_limit_throttles_the_guests_writes(admin: Clients, people: dict[str, Clients]) -> None:
    """write_iops_sec=100 (front-end) on the volume's type: the guest's direct 4 KiB writes run at
    about 100 per second on that volume, and unthrottled on a volume of the default type."""
    member = people["member"]
    qos = admin.volume("POST", "/qos-specs", {"qos_specs": {"name": f"iops-{uuid.uuid4().hex[:8]}",
                                                            "consumer": "front-end", "write_iops_sec": "100"}})
    assert qos.status_code == 200, qos.text
    vtype = admin.volume("POST", "/types", {"volume_type": {"name": f"slow-{uuid.uuid4().hex[:8]}"}})
    assert vtype.status_code == 200, vtype.text
    qid, tid = qos.json()["qos_specs"]["id"], vtype.json()["volume_type"]["id"]
    assert admin.volume("GET", f"/qos-specs/{qid}/associate?vol_type_id={tid}").status_code == 202
    slow = member.volume("POST", "/volumes", {"volume": {"size": 1, "volume_type": tid}}).json()["volume"]["id"]
    fast = member.volume("POST", "/volumes", {"volume": {"size": 1}}).json()["volume"]["id"]
    for vid in (slow, fast):
        member.volume_status(vid, "available")
    image = httpx.get(f"{member.cloud.image_url}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": member.token}
                      ).json()["images"][0]["id"]
    probe = IOPS_PROBE.format(serials=f"{slow[:20]} {fast[:20]}")
    r = member.compute("POST", "/servers", {"server": {
        "name": "iops", "flavorRef": "10", "imageRef": image, "networks": "none", "config_drive": True,
        "user_data": base64.b64encode(probe.encode()).decode()}})
    assert r.status_code == 202, r.text
    server = r.json()["server"]["id"]
    member.server_status(server, "ACTIVE")
    member.wait_console(server, READY)

    rates = {}
    for vid in (slow, fast):
        r = member.compute("POST", f"/servers/{server}/os-volume_attachments", {"volumeAttachment": {"volumeId": vid}})
        assert r.status_code == 200, r.text
        probe_line = rf"iops-probe {vid[:20]} ([0-9.]+) ([0-9.]+)"
        found = wait_for(lambda pattern=probe_line: re.search(pattern, member.console(server)), 120,
                         f"the probe of {vid}", every=0.5)
        start, end = float(found.group(1)), float(found.group(2))  # type: ignore[union-attr]
        rates[vid] = 300 / max(end - start, 0.01)
        member.volume_status(vid, "in-use")
    print(f"direct 4 KiB writes: {rates[slow]:.0f}/s throttled at 100, {rates[fast]:.0f}/s unthrottled")
    assert 50 <= rates[slow] <= 150, rates
    assert rates[fast] > 1.5 * rates[slow], rates  # the limit is the throttle's, not the machine's

    # the throttle group is QEMU's while the volume is attached, and goes with it
    sock = admin.cloud.state_dir / "instances" / "qnode" / server / "qmp.sock"
    group = "tg" + slow.replace("-", "")[:28]
    assert qmp_query(sock, "qom-get", path=f"/objects/{group}", property="limits")["iops-write"] == 100
    assert member.compute("DELETE", f"/servers/{server}/os-volume_attachments/{slow}").status_code == 202
    member.volume_status(slow, "available", timeout=90)
    assert group not in [o["name"] for o in qmp_query(sock, "qom-list", path="/objects")]
    nodes = [n["node-name"] for n in qmp_query(sock, "query-named-block-nodes")]
    assert not [n for n in nodes if slow.replace("-", "")[:28] in n], nodes

    assert member.compute("DELETE", f"/servers/{server}").status_code == 204
    member.volume_status(fast, "available")
    for vid in (slow, fast):
        assert member.volume("DELETE", f"/volumes/{vid}").status_code == 202


# user-data: the guest writes "GEN <n>" to the first bytes of every volume it has, n counting up,
# about three times a second, and says so on its console
COUNTER = """#!/bin/sh
(n=0; while true; do
  for b in /sys/block/vd*; do
    s=$(cat "$b/serial" 2>/dev/null); [ -n "$s" ] || continue
    n=$((n+1)); echo "GEN $n" | dd of=/dev/${b##*/} bs=64 count=1 conv=sync,fsync 2>/dev/null &&
      echo "gen $n" > /dev/console
  done
  sleep 0.3
done) &
"""


def snapshot_gen(cloud: Cloud, path: Path, tmp: Path) -> int:
    """The counter a qcow2 chain (a snapshot's or a volume's file) holds in its first bytes."""
    out = tmp / "gen.raw"
    subprocess.run(["qemu-img", "dd", "-U", "-f", "qcow2", "-O", "raw", "bs=64", "count=1", f"if={path}",
                    f"of={out}"], check=True, capture_output=True)
    found = re.match(rb"GEN (\d+)\n", out.read_bytes())
    assert found, out.read_bytes()
    return int(found.group(1))


def test_in_use_snapshots_chain_and_merge_while_the_guest_writes(admin: Clients, people: dict[str, Clients],
                                                                 tmp_path: Path) -> None:
    """Snapshots of a volume a running guest keeps writing are overlays in a chain: the guest's
    QEMU moves onto a new overlay (blockdev-snapshot-sync), and deleting a snapshot while it runs
    merges it (block-stream); every remaining snapshot and the volume keep their bytes, and the
    chain checks clean.  The volume also detaches and attaches again with its snapshots."""
    in_use_snapshot_chain(admin, people["member"], tmp_path, None)


def test_in_use_snapshots_chain_of_a_throttled_volume(admin: Clients, people: dict[str, Clients],
                                                      tmp_path: Path) -> None:
    """The same under a QoS throttle filter: the snapshot is taken on the format node below it, and
    the filter stays the device's root with the volume's node name."""
    qos = admin.volume("POST", "/qos-specs", {"qos_specs": {"name": f"chain-{uuid.uuid4().hex[:8]}",
                                                            "consumer": "front-end", "write_iops_sec": "5000"}})
    vtype = admin.volume("POST", "/types", {"volume_type": {"name": f"chain-{uuid.uuid4().hex[:8]}"}})
    qid, tid = qos.json()["qos_specs"]["id"], vtype.json()["volume_type"]["id"]
    assert admin.volume("GET", f"/qos-specs/{qid}/associate?vol_type_id={tid}").status_code == 202
    in_use_snapshot_chain(admin, people["member"], tmp_path, tid)


def in_use_snapshot_chain(admin: Clients, member: Clients, tmp_path: Path, volume_type: str | None) -> None:
    image = httpx.get(f"{member.cloud.image_url}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": member.token}
                      ).json()["images"][0]["id"]
    r = member.compute("POST", "/servers", {"server": {
        "name": "chain", "flavorRef": "10", "imageRef": image, "networks": "none", "config_drive": True,
        "user_data": base64.b64encode(COUNTER.encode()).decode()}})
    assert r.status_code == 202, r.text
    server = r.json()["server"]["id"]
    r = member.volume("POST", "/volumes", {"volume": {"size": 1, "name": "chain", **(
        {"volume_type": volume_type} if volume_type else {})}})
    vid = r.json()["volume"]["id"]
    member.volume_status(vid, "available")
    member.server_status(server, "ACTIVE")
    member.wait_console(server, READY)
    assert member.compute("POST", f"/servers/{server}/os-volume_attachments",
                          {"volumeAttachment": {"volumeId": vid}}).status_code == 200
    member.volume_status(vid, "in-use")
    node = next((admin.cloud.state_dir / "volumes").glob(f"*/volume-{vid}.qcow2")).parent
    active = node / f"volume-{vid}.qcow2"

    def gen_on_console(after: int = 0) -> int:
        def seen() -> int | None:
            found = [int(n) for n in re.findall(r"gen (\d+)", member.console(server))]
            return max(found) if found and max(found) > after else None
        return wait_for(seen, 60, f"the guest to write past {after}", every=0.3)  # type: ignore[return-value]

    def snapshot() -> str:
        r = member.volume("POST", "/snapshots", {"snapshot": {"volume_id": vid, "force": True}})
        assert r.status_code == 202, r.text
        sid = str(r.json()["snapshot"]["id"])
        wait_for(lambda: member.volume("GET", f"/snapshots/{sid}").json()["snapshot"]["status"] == "available",
                 60, "the in-use snapshot")
        return sid

    def delete_snapshot(sid: str) -> None:
        assert member.volume("DELETE", f"/snapshots/{sid}").status_code == 202
        def gone() -> bool:
            r = member.volume("GET", f"/snapshots/{sid}")
            assert r.status_code == 404 or r.json()["snapshot"]["status"] != "error_deleting", r.text
            return r.status_code == 404
        wait_for(gone, 120, f"snapshot {sid} to go")

    def check_chain() -> None:
        for path in [active, *node.glob("snapshot-*.qcow2")]:
            subprocess.run(["qemu-img", "check", "-q", "-U", "-f", "qcow2", str(path)], check=True)

    # two snapshots while the guest writes: each froze the counter of its instant, the volume goes on
    gen_on_console(3)
    s1 = snapshot()
    g1 = snapshot_gen(admin.cloud, node / f"snapshot-{s1}.qcow2", tmp_path)
    gen_on_console(g1 + 3)
    s2 = snapshot()
    g2 = snapshot_gen(admin.cloud, node / f"snapshot-{s2}.qcow2", tmp_path)
    assert 0 < g1 < g2
    sock = admin.cloud.state_dir / "instances" / "qnode" / server / "qmp.sock"
    chain = [(n["node-name"], n["backing_file_depth"]) for n in qmp_query(sock, "query-named-block-nodes")
             if n["drv"] == "qcow2"]
    assert max(depth for _, depth in chain) == 2, chain  # the guest's chain: volume <- s2 <- s1
    root = next(b["inserted"] for b in qmp_query(sock, "query-block") if f"/volume-{vid}/" in b.get("qdev", ""))
    if volume_type:  # the filter stays on top, under the volume's own node name
        assert (root["node-name"], root["drv"]) == ("vol" + vid.replace("-", "")[:28], "throttle"), root
    else:  # the newest overlay is the device's root
        assert root["node-name"].startswith("sn" + vid.replace("-", "")[:14]) and root["drv"] == "qcow2", root
    # grown while in use: QEMU grows the overlay that is the active image now (the snapshots keep 1 GiB)
    r = member.volume("POST", f"/volumes/{vid}/action", {"os-extend": {"new_size": 2}}, version="3.42")
    assert r.status_code == 202, r.text
    wait_for(lambda: member.volume("GET", f"/volumes/{vid}").json()["volume"]["size"] == 2, 60, "the extend")
    member.volume_status(vid, "in-use")
    assert next(b["inserted"]["image"]["virtual-size"] for b in qmp_query(sock, "query-block")
                if f"/volume-{vid}/" in b.get("qdev", "")) == 2 * 1024**3
    r = member.volume("POST", "/volumes", {"volume": {"snapshot_id": s2, "size": 1}})
    before = r.json()["volume"]["id"]
    member.volume_status(before, "available")
    assert snapshot_gen(admin.cloud, node / f"volume-{before}.qcow2", tmp_path) == g2
    check_chain()

    # the older one deleted while the guest runs: merged by its QEMU; s2 and the volume keep their bytes
    delete_snapshot(s1)
    assert not (node / f"snapshot-{s1}.qcow2").exists()
    later = gen_on_console(snapshot_gen(admin.cloud, active, tmp_path) + 2)
    assert snapshot_gen(admin.cloud, active, tmp_path) >= later - 1  # the guest writes on, into the volume
    r = member.volume("POST", "/volumes", {"volume": {"snapshot_id": s2, "size": 1}})
    after = r.json()["volume"]["id"]
    member.volume_status(after, "available")
    compare = subprocess.run(["qemu-img", "compare", "-q", "-f", "qcow2", "-F", "qcow2",
                              str(node / f"volume-{before}.qcow2"), str(node / f"volume-{after}.qcow2")])
    assert compare.returncode == 0  # the same bytes from s2 before and after the merge
    check_chain()

    # a third snapshot, then a detach and an attach again: the guest finds the volume and writes on
    s3 = snapshot()
    g3 = snapshot_gen(admin.cloud, node / f"snapshot-{s3}.qcow2", tmp_path)
    assert g3 > g2
    assert member.compute("DELETE", f"/servers/{server}/os-volume_attachments/{vid}").status_code == 202
    member.volume_status(vid, "available", timeout=90)
    nodes = [n["node-name"] for n in qmp_query(sock, "query-named-block-nodes")]
    assert not [n for n in nodes if vid.replace("-", "")[:14] in n], nodes  # no node of it is left in QEMU
    stopped = snapshot_gen(admin.cloud, active, tmp_path)
    assert stopped >= g3
    assert member.compute("POST", f"/servers/{server}/os-volume_attachments",
                          {"volumeAttachment": {"volumeId": vid}}).status_code == 200
    member.volume_status(vid, "in-use")
    gen_on_console(later + 3)
    delete_snapshot(s3)  # the guest's chain again: merged while it runs
    delete_snapshot(s2)  # out of the guest's chain since s1's merge: a file alone
    check_chain()
    assert sorted(p.name for p in node.glob(f"*{vid}*") if not p.name.startswith(".")) == [f"volume-{vid}.qcow2"]
    # the name QEMU knew the last overlay by stays, as a second name of the volume, until a next freeze
    assert all(os.path.samefile(p, active) for p in node.glob(f".overlay-{vid}.*"))
    assert snapshot_gen(admin.cloud, active, tmp_path) > stopped

    assert member.compute("DELETE", f"/servers/{server}").status_code == 204
    member.volume_status(vid, "available")
    for v in (vid, before, after):
        assert member.volume("DELETE", f"/volumes/{v}").status_code == 202
