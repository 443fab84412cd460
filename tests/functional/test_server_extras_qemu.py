"""Interfaces hot-plugged into a running QEMU guest and taken out again, diagnostics from QMP and
the taps, rescue (classic and stable-device) and createBackup with rotation, on one cloud whose
only node is this machine with the real network dataplane.  The guest reports what it sees on its
console: its disks' sizes at each boot and its NICs (/sys/class/net) whenever they change."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cumulo.core import instance_signature
from tests.functional.conftest import BIN, Cloud, start_cloud, stop_cloud
from tests.functional.test_qemu import Api, h, qemu_pids

SECRET = "extras-metadata-secret"
REPORT = """#!/bin/sh
echo "personality: $(cat /mnt/config/openstack/content/0000)" > /dev/console
echo "disks: $(cd /sys/block && for b in vd*; do printf '%s=%s ' $b $(cat $b/size); done)" > /dev/console
(last=""; while true; do n=$(ls /sys/class/net | tr '\\n' ' ')
 [ "$n" != "$last" ] && echo "nics: $n" > /dev/console; last=$n; sleep 1; done) &
"""


@pytest.fixture(scope="module")
def xcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    tmp = tmp_path_factory.mktemp("xq")  # short: QEMU's monitor socket paths are limited to 107 bytes
    env = {"CUMULO_COMPUTE__FAKE_NODES": "0", "CUMULO_COMPUTE__LOCAL_NODE": "true", "CUMULO_COMPUTE__HOST": "xnode",
           "CUMULO_COMPUTE__SHUTDOWN_TIMEOUT": "5", "CUMULO_COMPUTE__BUILD_TIMEOUT": "120",
           "CUMULO_NETWORK__DATAPLANE": "true", "CUMULO_COMPUTE__METADATA_SECRET": SECRET}
    c = start_cloud(tmp, "sqlite", env)
    yield c
    stop_cloud(c)
    for pid in qemu_pids(tmp):
        os.kill(pid, signal.SIGKILL)
    subprocess.run([str(BIN / "cumulo"), "network", "cleanup", "--yes"], env=c.env, capture_output=True, timeout=60)


class X(Api):
    def call(self, method: str, url: str, body: Any = None, version: str = "2.47",
             ok: tuple[int, ...] = (200, 202, 204), token: str | None = None) -> httpx.Response:
        r = httpx.request(method, url, json=body, headers=h(token or self.token, version), timeout=120)
        assert r.status_code in ok, f"{method} {url}: {r.status_code} {r.text}"
        return r

    def compute(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        r = self.call(method, f"{self.cloud.compute_url}{path}", body, **kw)
        return r.json() if r.content else None

    def net(self, method: str, path: str, body: Any = None) -> Any:
        r = self.call(method, f"{self.cloud.network_url}{path}", body, ok=(200, 201, 204))
        return r.json() if r.content else None

    def image(self, name: str, size: str, props: dict[str, str]) -> str:
        """A blank qcow2 of ``size`` that boots the cumulo-tiny kernel and ramdisk: a rescue image
        the guest tells apart by its disk's size."""
        path = Path(self.cloud.state_dir) / f"{name}.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
        tiny = self.call("GET", f"{self.cloud.image_url}/v2/images?name=cumulo-tiny").json()["images"][0]
        r = self.call("POST", f"{self.cloud.image_url}/v2/images", {
            "name": name, "disk_format": "qcow2", "container_format": "bare", "visibility": "public",
            "kernel_id": tiny["kernel_id"], "ramdisk_id": tiny["ramdisk_id"], **props}, ok=(201,))
        image_id = str(r.json()["id"])
        r = httpx.put(f"{self.cloud.image_url}/v2/images/{image_id}/file", content=path.read_bytes(),
                      headers={"X-Auth-Token": self.token, "Content-Type": "application/octet-stream"}, timeout=60)
        assert r.status_code == 204, r.text
        return image_id

    def console_lines(self, server_id: str, head: str) -> list[str]:
        # (a line may follow the shell's prompt on the console)
        return [line[line.index(head):] for line in self.console(server_id).splitlines() if head in line]

    def wait_line(self, server_id: str, head: str, want: Any, timeout: float = 90) -> str:
        """The newest console line starting with ``head`` once ``want(line)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.console_lines(server_id, head)
            if lines and want(lines[-1]):
                return lines[-1]
            assert time.monotonic() < deadline, f"{head} not as wanted: {lines[-3:]}\n" + "\n".join(
                self.console(server_id).splitlines()[-40:])
            time.sleep(0.5)


def disks(line: str) -> dict[str, int]:
    return {k: int(v) for k, v in (item.split("=") for item in line.split(":", 1)[1].split())}


def qmp(sock: Path, command: str, **arguments: Any) -> Any:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock))
        f = s.makefile("rw")
        f.readline()
        out = None
        for cmd in ({"execute": "qmp_capabilities"}, {"execute": command, "arguments": arguments}):
            f.write(json.dumps(cmd) + "\n")
            f.flush()
            while True:
                reply = json.loads(f.readline())
                if "event" not in reply:
                    break
            assert "error" not in reply, reply
            out = reply.get("return")
        return out


def ports_mac(api: X, port_id: str) -> str:
    return str(api.net("GET", f"/ports/{port_id}")["port"]["mac_address"])


def pci_nics(path: Path) -> list[str]:
    """The MAC-bearing virtio NICs QEMU has: their device ids, from the QOM tree."""
    return sorted(p["name"] for p in qmp(path, "qom-list", path="/machine/peripheral")
                  if p["name"].startswith("nic-"))


@pytest.fixture(scope="module")
def guest(xcloud: Cloud) -> Iterator[tuple[X, dict[str, Any]]]:
    """One running server (config drive, one port on net1) and a second network with a port."""
    api = X(xcloud)
    net1 = api.net("POST", "/networks", {"network": {"name": "xnet1"}})["network"]
    api.net("POST", "/subnets", {"subnet": {"network_id": net1["id"], "cidr": "10.31.1.0/24", "ip_version": 4}})
    net2 = api.net("POST", "/networks", {"network": {"name": "xnet2"}})["network"]
    sub2 = api.net("POST", "/subnets", {"subnet": {"network_id": net2["id"], "cidr": "10.31.2.0/24",
                                                   "ip_version": 4}})["subnet"]
    image = api.call("GET", f"{xcloud.image_url}/v2/images?name=cumulo-tiny").json()["images"][0]["id"]
    server = api.compute("POST", "/servers", {"server": {
        "name": "xguest", "flavorRef": "10", "imageRef": image, "networks": [{"uuid": net1["id"]}],
        "config_drive": True, "user_data": base64.b64encode(REPORT.encode()).decode(),
        "personality": [{"path": "/etc/motd", "contents": base64.b64encode(b"hello-from-personality").decode()}]}},
        version="2.56")["server"]
    api.wait(server["id"], "ACTIVE")
    api.wait_console(server["id"], "cumulo-guest ready")
    boot_port = api.net("GET", f"/ports?device_id={server['id']}")["ports"][0]["id"]
    # the personality file is on the config drive the guest mounted
    assert api.console_lines(server["id"], "personality:")[-1] == "personality: hello-from-personality"
    yield api, {"server": server["id"], "net1": net1["id"], "net2": net2["id"], "sub2": sub2["id"],
                "image": image, "boot_port": boot_port}
    api.compute("DELETE", f"/servers/{server['id']}")


def test_interfaces_hot_plug_into_the_running_guest_and_out_again(guest: tuple[X, dict[str, Any]]) -> None:
    api, g = guest
    sid = g["server"]
    qmp_sock = Path(api.cloud.state_dir) / "instances" / "xnode" / sid / "qmp.sock"
    assert api.wait_line(sid, "nics:", lambda line: "eth0" in line).split()[1:] == ["eth0", "lo"]
    assert len(pci_nics(qmp_sock)) == 1
    given = api.net("POST", "/ports", {"port": {"network_id": g["net2"], "name": "given"}})["port"]
    # the CLI's attach: the port is bound to this host, the guest gets a second virtio NIC
    api.cloud.cli("server", "add", "port", sid, given["id"])
    ifaces = api.compute("GET", f"/servers/{sid}/os-interface")["interfaceAttachments"]
    assert {i["port_id"] for i in ifaces} >= {given["id"]} and len(ifaces) == 2
    mine = next(i for i in ifaces if i["port_id"] == given["id"])
    assert mine["net_id"] == g["net2"] and mine["mac_addr"] == given["mac_address"]
    assert mine["fixed_ips"][0]["subnet_id"] == g["sub2"] and mine["port_state"] == "ACTIVE"
    port = api.net("GET", f"/ports/{given['id']}")["port"]
    assert port["device_id"] == sid and port["binding:host_id"] == "xnode" and port["status"] == "ACTIVE"
    assert f"nic-{given['id']}" in pci_nics(qmp_sock)
    assert api.wait_line(sid, "nics:", lambda line: "eth1" in line).split()[1:] == ["eth0", "eth1", "lo"]
    # the metadata service's network_data names the new port
    sig = instance_signature.sign(SECRET, sid)
    meta = httpx.get(f"{api.cloud.metadata_url}/openstack/latest/network_data.json",
                     headers={"X-Instance-ID": sid, "X-Instance-ID-Signature": sig}).json()
    assert given["id"] in {link["vif_id"] for link in meta["links"]}
    show = api.compute("GET", f"/servers/{sid}/os-interface/{given['id']}", version="2.70")["interfaceAttachment"]
    assert show["port_id"] == given["id"] and show["tag"] is None
    # errors as Nova words them
    api.compute("POST", f"/servers/{sid}/os-interface", {"interfaceAttachment": {"port_id": given["id"]}},
                ok=(409,))
    api.compute("POST", f"/servers/{sid}/os-interface", {"interfaceAttachment": {
        "port_id": given["id"], "net_id": g["net2"]}}, ok=(400,))
    api.compute("POST", f"/servers/{sid}/os-interface", {"interfaceAttachment": {"net_id": str(uuid.uuid4())}},
                ok=(404,))
    api.compute("GET", f"/servers/{sid}/os-interface/{uuid.uuid4()}", ok=(404,))

    # detach (the CLI): the guest lets go of it (DEVICE_DELETED), the given port is handed back
    api.cloud.cli("server", "remove", "port", sid, given["id"])
    deadline = time.monotonic() + 60
    while api.net("GET", f"/ports/{given['id']}")["port"]["device_id"]:
        assert time.monotonic() < deadline, "the port was not handed back"
        time.sleep(0.3)
    assert f"nic-{given['id']}" not in pci_nics(qmp_sock)
    assert api.wait_line(sid, "nics:", lambda line: "eth1" not in line).split()[1:] == ["eth0", "lo"]

    # by network with a fixed address (2.49's tag shown at 2.70): a port is made for the server ...
    made = api.compute("POST", f"/servers/{sid}/os-interface", {"interfaceAttachment": {
        "net_id": g["net2"], "fixed_ips": [{"ip_address": "10.31.2.77"}], "tag": "data"}},
        version="2.70")["interfaceAttachment"]
    assert made["fixed_ips"][0]["ip_address"] == "10.31.2.77" and made["tag"] == "data"
    assert api.wait_line(sid, "nics:", lambda line: "eth1" in line)
    # ... and deleted with its detach
    api.compute("DELETE", f"/servers/{sid}/os-interface/{made['port_id']}")
    deadline = time.monotonic() + 60
    while api.call("GET", f"{api.cloud.network_url}/ports/{made['port_id']}", ok=(200, 404)).status_code != 404:
        assert time.monotonic() < deadline, "the port made for the server was not deleted"
        time.sleep(0.3)
    assert len(api.compute("GET", f"/servers/{sid}/os-interface")["interfaceAttachments"]) == 1

    # attached while the server is stopped: on its command line from the next start
    api.act(sid, {"os-stop": None})
    api.wait(sid, "SHUTOFF")
    later = api.compute("POST", f"/servers/{sid}/os-interface", {"interfaceAttachment": {
        "net_id": g["net2"]}})["interfaceAttachment"]
    boots = len(api.console_lines(sid, "cumulo-guest ready"))
    api.act(sid, {"os-start": None})
    api.wait(sid, "ACTIVE")
    api.wait_console(sid, "cumulo-guest ready", boots + 1)
    assert api.wait_line(sid, "nics:", lambda line: "eth1" in line).split()[1:] == ["eth0", "eth1", "lo"]
    assert f"nic-{later['port_id']}" in pci_nics(qmp_sock)


def test_diagnostics_from_qmp_and_the_tap(guest: tuple[X, dict[str, Any]]) -> None:
    api, g = guest
    sid = g["server"]
    d = api.compute("GET", f"/servers/{sid}/diagnostics", version="2.48")
    assert set(d) == {"state", "driver", "hypervisor", "hypervisor_os", "uptime", "config_drive", "num_cpus",
                      "num_nics", "num_disks", "memory_details", "cpu_details", "nic_details", "disk_details"}
    ports = api.net("GET", f"/ports?device_id={sid}")["ports"]
    assert d["state"] == "running" and d["config_drive"] is True and d["num_cpus"] == 1
    assert d["num_nics"] == len(ports) == 2  # the boot port and the one attached while stopped
    assert d["uptime"] > 0 and d["memory_details"]["maximum"] == 128
    assert d["cpu_details"][0]["id"] == 0 and d["cpu_details"][0]["time"] > 0
    assert d["num_disks"] == len(d["disk_details"]) >= 2 and d["disk_details"][0]["read_bytes"] > 0
    assert {n["mac_address"] for n in d["nic_details"]} == {p["mac_address"] for p in ports}
    assert all(isinstance(n[k], int) for n in d["nic_details"] for k in ("rx_octets", "tx_octets", "rx_drop"))
    boot = next(n for n in d["nic_details"] if n["mac_address"] == ports_mac(api, g["boot_port"]))
    assert boot["rx_packets"] > 0 and boot["tx_packets"] > 0  # its DHCP went both ways (the guest up only eth0)
    flat = api.compute("GET", f"/servers/{sid}/diagnostics", version="2.47")
    assert flat["cpu0_time"] > 0 and flat["vda_read"] > 0 and flat["memory"] == 128 * 1024
    assert any(k.endswith("_rx_packets") for k in flat)


def test_rescue_classic_and_stable_device_then_unrescue(guest: tuple[X, dict[str, Any]]) -> None:
    api, g = guest
    sid = g["server"]
    before = disks(api.wait_line(sid, "disks:", lambda line: True))
    root = before["vda"]
    classic = api.image("xrescue", "32M", {})
    stable = api.image("xrescue-stable", "64M", {"hw_rescue_device": "disk", "hw_rescue_bus": "virtio"})
    boots = len(api.console_lines(sid, "cumulo-guest ready"))
    body = api.compute("POST", f"/servers/{sid}/action", {"rescue": {"rescue_image_ref": classic}})
    assert set(body) == {"adminPass"} and body["adminPass"]
    api.wait(sid, "RESCUE")
    api.wait_console(sid, "cumulo-guest ready", boots + 1)
    seen = disks(api.console_lines(sid, "disks:")[-1])
    # classic: the rescue disk first (32 MiB), the server's own disk second
    assert seen["vda"] == 32 << 11 and seen["vdb"] == root, seen
    api.compute("POST", f"/servers/{sid}/action", {"rescue": None}, ok=(409,))  # already rescued
    api.cloud.cli("server", "unrescue", sid)
    api.wait(sid, "ACTIVE")
    api.wait_console(sid, "cumulo-guest ready", boots + 2)
    assert disks(api.console_lines(sid, "disks:")[-1]) == before
    # stable-device rescue (asked by the image): every disk where it was, the rescue disk added last
    api.cloud.cli("server", "rescue", "--image", stable, sid)
    api.wait(sid, "RESCUE")
    api.wait_console(sid, "cumulo-guest ready", boots + 3)
    seen = disks(api.console_lines(sid, "disks:")[-1])
    last = sorted(seen)[-1]
    assert {k: v for k, v in seen.items() if k != last} == before and seen[last] == 64 << 11, seen
    api.act(sid, {"unrescue": None})
    api.wait(sid, "ACTIVE")
    api.wait_console(sid, "cumulo-guest ready", boots + 4)
    assert not (Path(api.cloud.state_dir) / "instances" / "xnode" / sid / "disk.rescue").exists()
    # the bus the image asks for: scsi puts the rescue disk behind a virtio-scsi controller (the
    # guest's virtio disks are as they were)
    scsi = api.image("xrescue-scsi", "16M", {"hw_rescue_device": "disk", "hw_rescue_bus": "scsi"})
    api.compute("POST", f"/servers/{sid}/action", {"rescue": {"rescue_image_ref": scsi}})
    api.wait(sid, "RESCUE")
    api.wait_console(sid, "cumulo-guest ready", boots + 5)
    assert disks(api.console_lines(sid, "disks:")[-1]) == before
    qmp_sock = Path(api.cloud.state_dir) / "instances" / "xnode" / sid / "qmp.sock"
    devices = {p["name"] for p in qmp(qmp_sock, "qom-list", path="/machine/peripheral")}
    assert {"rescue-port", "rescue-scsi"} <= devices
    api.act(sid, {"unrescue": None})
    api.wait(sid, "ACTIVE")
    api.wait_console(sid, "cumulo-guest ready", boots + 6)


def test_create_backup_rotates_the_oldest_out(guest: tuple[X, dict[str, Any]]) -> None:
    api, g = guest
    sid = g["server"]

    def backups() -> list[dict[str, Any]]:
        images = api.call("GET", f"{api.cloud.image_url}/v2/images?image_type=backup").json()["images"]
        return sorted((i for i in images if i.get("instance_uuid") == sid), key=lambda i: i["created_at"])

    def ids() -> set[str]:  # the API's created_at is in seconds: two backups of one second tie
        return {b["id"] for b in backups()}

    made: list[str] = []
    for n in range(2):
        api.cloud.cli("server", "backup", "create", "--name", f"b{n}", "--type", "daily", "--rotate", "2", sid)
        api.wait(sid, "ACTIVE")
        [new] = ids() - set(made)
        made.append(new)
    assert ids() == set(made)
    assert all(b["status"] == "active" and b["backup_type"] == "daily" for b in backups())
    # 2.45: the image's id in the body; the third daily backup pushes the first out
    r = api.call("POST", f"{api.cloud.compute_url}/servers/{sid}/action", {"createBackup": {
        "name": "b2", "backup_type": "daily", "rotation": 2}}, version="2.45")
    assert r.status_code == 202 and set(r.json()) == {"image_id"}
    api.wait(sid, "ACTIVE")
    assert ids() == {made[1], r.json()["image_id"]}  # the first (oldest) went
    # before 2.45: a Location header; rotation 1 keeps only the newest
    r = api.call("POST", f"{api.cloud.compute_url}/servers/{sid}/action", {"createBackup": {
        "name": "b3", "backup_type": "daily", "rotation": "1"}}, version="2.44")
    assert r.status_code == 202 and not r.content and "/v2/images/" in r.headers["Location"]
    api.wait(sid, "ACTIVE")
    left = backups()
    assert len(left) == 1 and r.headers["Location"].endswith(left[0]["id"])
    for bad in ({"name": "x", "backup_type": "daily"}, {"name": "x", "backup_type": "daily", "rotation": -1},
                {"name": "x", "backup_type": "daily", "rotation": 1, "extra": 1}):
        api.call("POST", f"{api.cloud.compute_url}/servers/{sid}/action", {"createBackup": bad}, ok=(400,))


def test_a_volume_backed_server_is_rescued_on_its_stable_devices_from_2_87(guest: tuple[X, dict[str, Any]]) -> None:
    api, g = guest
    r = api.compute("POST", "/servers", {"server": {
        "name": "xbfv", "flavorRef": "10", "networks": "none", "config_drive": True,
        "user_data": base64.b64encode(REPORT.encode()).decode(),
        "block_device_mapping_v2": [{"boot_index": 0, "source_type": "image", "uuid": g["image"],
                                     "destination_type": "volume", "volume_size": 1,
                                     "delete_on_termination": True}]}})
    sid = r["server"]["id"]
    api.wait(sid, "ACTIVE")
    api.wait_console(sid, "cumulo-guest ready")
    before = disks(api.console_lines(sid, "disks:")[-1])
    stable = next(i["id"] for i in api.call("GET", f"{api.cloud.image_url}/v2/images?name=xrescue-stable").json()[
        "images"])
    classic = next(i["id"] for i in api.call("GET", f"{api.cloud.image_url}/v2/images?name=xrescue").json()["images"])
    rescue = f"/servers/{sid}/action"
    api.compute("POST", rescue, {"rescue": {"rescue_image_ref": stable}}, version="2.86", ok=(400,))
    api.compute("POST", rescue, {"rescue": {"rescue_image_ref": classic}}, version="2.87", ok=(400,))
    api.compute("POST", rescue, {"rescue": {"rescue_image_ref": stable}}, version="2.87")
    api.wait(sid, "RESCUE")
    api.wait_console(sid, "cumulo-guest ready", 2)
    seen = disks(api.console_lines(sid, "disks:")[-1])
    last = sorted(seen)[-1]
    assert {k: v for k, v in seen.items() if k != last} == before and seen[last] == 64 << 11, seen
    api.act(sid, {"unrescue": None})
    api.wait(sid, "ACTIVE")
    api.wait_console(sid, "cumulo-guest ready", 3)
    assert disks(api.console_lines(sid, "disks:")[-1]) == before
    api.compute("DELETE", f"/servers/{sid}")
