"""OS-DCF:diskConfig kept as asked across update, rebuild and resize; personality files (up to
2.56) held to the injected_files quotas and served in the metadata; injectNetworkInfo.  Fake
nodes: none of it needs a guest (the QEMU module reads a personality file inside one)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cumulo.core import instance_signature
from tests.functional.conftest import Cloud, make_people, start_cloud, stop_cloud

SECRET = "disk-config-metadata-secret"


@pytest.fixture(scope="module")
def dcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("dcfg"), "sqlite", {"CUMULO_COMPUTE__METADATA_SECRET": SECRET})
    yield c
    stop_cloud(c)


class C:
    def __init__(self, cloud: Cloud, token: str | None = None) -> None:
        self.cloud, self.token = cloud, token or cloud.token()[0]

    def __call__(self, method: str, path: str, body: Any = None, version: str = "2.47",
                 ok: tuple[int, ...] = (200, 202, 204)) -> Any:
        r = httpx.request(method, f"{self.cloud.compute_url}{path}", json=body, timeout=30, headers={
            "X-Auth-Token": self.token, "OpenStack-API-Version": f"compute {version}"})
        assert r.status_code in ok, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def wait(self, server_id: str, status: str) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while True:
            s: dict[str, Any] = self("GET", f"/servers/{server_id}")["server"]
            if s["status"] == status and s["OS-EXT-STS:task_state"] is None:
                return s
            assert time.monotonic() < deadline, s["status"]
            time.sleep(0.2)

    def image(self) -> str:
        r = httpx.get(f"{self.cloud.image_url}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": self.token})
        return str(r.json()["images"][0]["id"])

    def boot(self, version: str = "2.47", ok: tuple[int, ...] = (202,), **extra: Any) -> Any:
        return self("POST", "/servers", {"server": {"name": "dc", "flavorRef": "10", "imageRef": self.image(),
                                                    "networks": "none", **extra}}, version=version, ok=ok)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_disk_config_is_kept_across_update_rebuild_and_resize(dcloud: Cloud) -> None:
    api = C(dcloud)
    made = api.boot(**{"OS-DCF:diskConfig": "AUTO"})["server"]
    assert made["OS-DCF:diskConfig"] == "AUTO"
    sid = made["id"]
    assert api.wait(sid, "ACTIVE")["OS-DCF:diskConfig"] == "AUTO"
    api.boot(ok=(400,), **{"OS-DCF:diskConfig": "SOMETIMES"})
    assert api("PUT", f"/servers/{sid}", {"server": {"OS-DCF:diskConfig": "MANUAL"}})[
        "server"]["OS-DCF:diskConfig"] == "MANUAL"
    rebuilt = api("POST", f"/servers/{sid}/action", {"rebuild": {"imageRef": api.image(),
                                                                 "OS-DCF:diskConfig": "AUTO"}})["server"]
    assert rebuilt["OS-DCF:diskConfig"] == "AUTO"
    assert api.wait(sid, "ACTIVE")["OS-DCF:diskConfig"] == "AUTO"
    api("POST", f"/servers/{sid}/action", {"rebuild": {"imageRef": api.image()}})  # not named: kept
    assert api.wait(sid, "ACTIVE")["OS-DCF:diskConfig"] == "AUTO"
    api("POST", f"/servers/{sid}/action", {"resize": {"flavorRef": "11", "OS-DCF:diskConfig": "MANUAL"}})
    assert api.wait(sid, "VERIFY_RESIZE")["OS-DCF:diskConfig"] == "MANUAL"
    api("POST", f"/servers/{sid}/action", {"confirmResize": None})
    assert api.wait(sid, "ACTIVE")["OS-DCF:diskConfig"] == "MANUAL"
    api("DELETE", f"/servers/{sid}")


def test_personality_files_within_the_quota_reach_the_metadata(dcloud: Cloud) -> None:
    api = C(dcloud)
    one = [{"path": "/etc/motd", "contents": b64(b"hello from personality\n")}]
    api.boot(version="2.57", ok=(400,), personality=one)  # removed in 2.57
    api.boot(version="2.56", ok=(403,), personality=one * 6)  # 5 files by default
    api.boot(version="2.56", ok=(403,), personality=[{"path": "/" + "p" * 300, "contents": b64(b"x")}])
    api.boot(version="2.56", ok=(403,), personality=[{"path": "/big", "contents": b64(b"x" * 10241)}])
    api.boot(version="2.56", ok=(400,), personality=[{"path": "/bad", "contents": "not base64!"}])
    sid = api.boot(version="2.56", personality=one)["server"]["id"]
    api.wait(sid, "ACTIVE")
    signed = {"X-Instance-ID": sid, "X-Instance-ID-Signature": instance_signature.sign(SECRET, sid)}
    meta = httpx.get(f"{dcloud.metadata_url}/openstack/latest/meta_data.json", headers=signed).json()
    assert meta["files"] == [{"path": "/etc/motd", "content_path": "/content/0000"}]
    r = httpx.get(f"{dcloud.metadata_url}/openstack/content/0000", headers=signed)
    assert r.status_code == 200 and r.content == b"hello from personality\n"
    assert httpx.get(f"{dcloud.metadata_url}/openstack/content/0001", headers=signed).status_code == 404
    # a rebuild (up to 2.56) replaces the files
    api("POST", f"/servers/{sid}/action", {"rebuild": {"imageRef": api.image(), "personality": [
        {"path": "/etc/issue", "contents": b64(b"again")}]}}, version="2.56")
    api.wait(sid, "ACTIVE")
    meta = httpx.get(f"{dcloud.metadata_url}/openstack/latest/meta_data.json", headers=signed).json()
    assert meta["files"] == [{"path": "/etc/issue", "content_path": "/content/0000"}]
    api("DELETE", f"/servers/{sid}")


def test_inject_network_info_is_an_admin_action(dcloud: Cloud) -> None:
    people = make_people(dcloud, "inj")
    member = C(dcloud, people["member"].token)
    sid = member.boot()["server"]["id"]
    member.wait(sid, "ACTIVE")
    member("POST", f"/servers/{sid}/action", {"injectNetworkInfo": None}, ok=(403,))
    C(dcloud)("POST", f"/servers/{sid}/action", {"injectNetworkInfo": None}, ok=(202,))
    actions = C(dcloud)("GET", f"/servers/{sid}/os-instance-actions")["instanceActions"]
    assert "injectNetworkInfo" in [a["action"] for a in actions]
    member("DELETE", f"/servers/{sid}")


def test_device_tags_reach_the_metadata_devices(dcloud: Cloud) -> None:
    api = C(dcloud)
    net_headers = {"X-Auth-Token": api.token}
    net = httpx.post(f"{dcloud.network_url}/networks", json={"network": {"name": "tagged"}},
                     headers=net_headers).json()["network"]
    httpx.post(f"{dcloud.network_url}/subnets", headers=net_headers, json={"subnet": {
        "network_id": net["id"], "cidr": "10.77.0.0/24", "ip_version": 4}}).raise_for_status()
    tagged = [{"uuid": net["id"], "tag": "data-nic"}]
    api.boot(version="2.37", ok=(400,), networks=tagged)  # 2.33-2.41 have no device tags
    api.boot(version="2.42", ok=(400,), networks=[{"uuid": net["id"], "tag": "a/b"}])
    sid = api.boot(version="2.42", networks=tagged)["server"]["id"]
    api.wait(sid, "ACTIVE")
    # an interface attached with a tag (2.49) is listed too
    added = api("POST", f"/servers/{sid}/os-interface", {"interfaceAttachment": {"net_id": net["id"],
                                                                                 "tag": "late"}},
                version="2.49")["interfaceAttachment"]
    signed = {"X-Instance-ID": sid, "X-Instance-ID-Signature": instance_signature.sign(SECRET, sid)}
    devices = httpx.get(f"{dcloud.metadata_url}/openstack/latest/meta_data.json", headers=signed).json()["devices"]
    macs = {i["port_id"]: i["mac_addr"] for i in api("GET", f"/servers/{sid}/os-interface")["interfaceAttachments"]}
    first = next(p for p in macs if p != added["port_id"])
    assert sorted(devices, key=lambda d: d["tags"]) == [
        {"type": "nic", "bus": "pci", "mac": macs[first], "tags": ["data-nic"]},
        {"type": "nic", "bus": "pci", "mac": macs[added["port_id"]], "tags": ["late"]}]
    api("DELETE", f"/servers/{sid}")


def test_add_and_remove_fixed_ip_up_to_2_43(dcloud: Cloud) -> None:
    api = C(dcloud)
    headers = {"X-Auth-Token": api.token}
    net = httpx.post(f"{dcloud.network_url}/networks", json={"network": {"name": "multinic"}},
                     headers=headers).json()["network"]
    httpx.post(f"{dcloud.network_url}/subnets", headers=headers, json={"subnet": {
        "network_id": net["id"], "cidr": "10.78.0.0/24", "ip_version": 4}}).raise_for_status()
    sid = api.boot(networks=[{"uuid": net["id"]}])["server"]["id"]
    api.wait(sid, "ACTIVE")

    def ips() -> list[str]:
        return [a["addr"] for a in api("GET", f"/servers/{sid}/ips")["addresses"]["multinic"]]

    first = ips()
    assert len(first) == 1
    api("POST", f"/servers/{sid}/action", {"addFixedIp": {"networkId": net["id"]}}, version="2.43")
    added = [ip for ip in ips() if ip not in first]
    assert len(added) == 1 and added[0].startswith("10.78.0.")
    api("POST", f"/servers/{sid}/action", {"addFixedIp": {"networkId": net["id"]}}, version="2.44", ok=(400,))
    api("POST", f"/servers/{sid}/action", {"removeFixedIp": {"address": "10.9.9.9"}}, version="2.43", ok=(400,))
    api("POST", f"/servers/{sid}/action", {"removeFixedIp": {"address": added[0]}}, version="2.43")
    assert ips() == first
    api("DELETE", f"/servers/{sid}")
