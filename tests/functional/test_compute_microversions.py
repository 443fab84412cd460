"""Server views per microversion, on fake nodes: what rebuild answers at 2.53/2.54 (key_name),
2.57 (user_data), 2.71 (server_groups), 2.74/2.75 (every attribute, extended addresses); show's
pinned_availability_zone (2.96), image properties (2.98) and scheduler_hints (2.100); the console
log's tail as Nova cuts it; os-server-password (stored by the guest through the metadata
service) with each persona; a resize's migration row with integer flavor keys; and the usage
route with an empty project id.  Through HTTP, the openstack CLI and openstacksdk."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.functional.conftest import Cloud, personas, start_cloud, stop_cloud, unique, wait_for


@pytest.fixture(scope="module")
def mcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("microversions-cloud"), "sqlite", {
        "CUMULO_SERVICES": "identity,image,compute,placement,network"})
    yield c
    stop_cloud(c)


@pytest.fixture(scope="module")
def admin(mcloud: Cloud) -> str:
    return mcloud.token()[0]


def call(cloud: Cloud, method: str, path: str, token: str, version: str = "2.1", body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{cloud.compute_url}{path}", json=body, timeout=30,
                         headers={"X-Auth-Token": token, "OpenStack-API-Version": f"compute {version}"})


def images(cloud: Cloud, token: str) -> list[dict[str, Any]]:
    return httpx.get(f"{cloud.image_url}/v2/images?status=active", headers={"X-Auth-Token": token}).json()["images"]


def boot(cloud: Cloud, token: str, name: str, **extra: Any) -> dict[str, Any]:
    hints = extra.pop("hints", None)
    body: dict[str, Any] = {"server": {"name": name, "flavorRef": "1", "imageRef": images(cloud, token)[0]["id"],
                                       "networks": "none", **extra}}
    if hints:
        body["os:scheduler_hints"] = hints
    r = call(cloud, "POST", "/servers", token, "2.37", body)
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    return wait_for(lambda: (s := call(cloud, "GET", f"/servers/{sid}", token, "2.47").json()["server"])
                    ["status"] == "ACTIVE" and s, 30, f"server {name} ACTIVE")  # type: ignore[return-value]


def rebuild(cloud: Cloud, token: str, sid: str, version: str, **arg: Any) -> dict[str, Any]:
    r = call(cloud, "POST", f"/servers/{sid}/action", token, version,
             {"rebuild": {"imageRef": images(cloud, token)[0]["id"], **arg}})
    assert r.status_code == 202, r.text
    wait_for(lambda: call(cloud, "GET", f"/servers/{sid}", token).json()["server"]["status"] == "ACTIVE", 30,
             "rebuilt server ACTIVE")
    return r.json()["server"]  # type: ignore[no-any-return]


def test_rebuild_views_per_microversion(mcloud: Cloud, admin: str) -> None:
    group = call(mcloud, "POST", "/os-server-groups", admin, "2.1",
                 {"server_group": {"name": unique("g"), "policies": ["affinity"]}}).json()["server_group"]
    server = boot(mcloud, admin, unique("rb"), hints={"group": group["id"]})
    sid = server["id"]
    key = call(mcloud, "POST", "/os-keypairs", admin, "2.1", {"keypair": {"name": unique("k")}}).json()["keypair"]
    before = rebuild(mcloud, admin, sid, "2.53")
    assert "key_name" not in before and "user_data" not in before and "server_groups" not in before
    at54 = rebuild(mcloud, admin, sid, "2.54", key_name=key["name"])
    assert at54["key_name"] == key["name"] and "user_data" not in at54 and "OS-EXT-STS:vm_state" not in at54
    data = base64.b64encode(b"#!/bin/sh\necho hi\n").decode()
    at57 = rebuild(mcloud, admin, sid, "2.57", user_data=data)
    assert at57["user_data"] == data and at57["key_name"] == key["name"]
    assert "OS-EXT-SRV-ATTR:user_data" not in at57
    at74 = rebuild(mcloud, admin, sid, "2.74")
    assert at74["server_groups"] == [group["id"]] and "OS-EXT-AZ:availability_zone" not in at74
    at75 = rebuild(mcloud, admin, sid, "2.75")
    for field in ("OS-EXT-AZ:availability_zone", "OS-EXT-STS:vm_state", "OS-SRV-USG:launched_at",
                  "config_drive", "os-extended-volumes:volumes_attached", "OS-EXT-SRV-ATTR:host", "host_status"):
        assert field in at75, field
    assert at75["user_data"] == data and "OS-EXT-SRV-ATTR:user_data" not in at75
    at100 = rebuild(mcloud, admin, sid, "2.100")
    assert at100["scheduler_hints"] == {"group": group["id"]} and "properties" in at100["image"]
    assert "pinned_availability_zone" in at100
    # the update's view follows the same rules (2.75: every attribute)
    r = call(mcloud, "PUT", f"/servers/{sid}", admin, "2.74", {"server": {"name": "renamed"}})
    assert r.status_code == 200 and "key_name" not in r.json()["server"], r.text
    r = call(mcloud, "PUT", f"/servers/{sid}", admin, "2.75", {"server": {"name": "renamed"}})
    assert r.json()["server"]["key_name"] == key["name"], r.text
    # the CLI rebuilds at a microversion that shows the key
    text = mcloud.cli("--os-compute-api-version", "2.57", "server", "rebuild", "--image",
                      images(mcloud, admin)[0]["id"], "--wait", sid, "-f", "json").stdout
    out = json.loads(text[text.index("{"):])  # after --wait's "Complete"
    assert out["key_name"] == key["name"], out


def test_show_fields_at_96_98_100(mcloud: Cloud, admin: str) -> None:
    image = images(mcloud, admin)[0]
    httpx.patch(f"{mcloud.image_url}/v2/images/{image['id']}", headers={
        "X-Auth-Token": admin, "Content-Type": "application/openstack-images-v2.1-json-patch"},
        json=[{"op": "add", "path": "/hw_disk_bus", "value": "virtio"},
              {"op": "add", "path": "/custom_thing", "value": "x"}]).raise_for_status()
    server = boot(mcloud, admin, unique("sh"), availability_zone="nova", hints={"same_host": []})
    sid = server["id"]
    at95 = call(mcloud, "GET", f"/servers/{sid}", admin, "2.95").json()["server"]
    assert "pinned_availability_zone" not in at95 and "properties" not in at95["image"]
    at96 = call(mcloud, "GET", f"/servers/{sid}", admin, "2.96").json()["server"]
    assert at96["pinned_availability_zone"] == "nova" and "scheduler_hints" not in at96
    at98 = call(mcloud, "GET", f"/servers/{sid}", admin, "2.98").json()["server"]
    # only the properties Nova's image meta knows: not the custom one
    assert at98["image"]["properties"].get("hw_disk_bus") == "virtio"
    assert "custom_thing" not in at98["image"]["properties"]
    listed = call(mcloud, "GET", "/servers/detail", admin, "2.100").json()["servers"]
    mine = next(s for s in listed if s["id"] == sid)
    assert mine["scheduler_hints"] == {"same_host": []} and "properties" in mine["image"]
    conn = mcloud.sdk()
    conn.compute.default_microversion = "2.100"
    assert conn.compute.get(f"/servers/{sid}", microversion="2.100").json()["server"]["scheduler_hints"] == {
        "same_host": []}
    assert call(mcloud, "GET", "/", admin).json()["version"]["version"] == "2.100"


def test_console_tail_as_nova_cuts_it(mcloud: Cloud, admin: str) -> None:
    sid = boot(mcloud, admin, unique("con"))["id"]
    out = call(mcloud, "POST", f"/servers/{sid}/action", admin, "2.1",
               {"os-getConsoleOutput": {"length": 3}}).json()["output"]
    assert len(out.split("\n")) == 3, out  # the last 3 pieces of the log split at newlines
    full = call(mcloud, "POST", f"/servers/{sid}/action", admin, "2.1",
                {"os-getConsoleOutput": {"length": -1}}).json()["output"]
    assert len(full.split("\n")) > 3 and full.endswith("login: ") and full.endswith(out), full


def test_server_password_personas(mcloud: Cloud, admin: str) -> None:
    who = personas(mcloud, "pw")
    member, reader, other = who["member"][0], who["reader"][0], who["other"][0]
    sid = boot(mcloud, member, unique("pw"))["id"]
    path = f"/servers/{sid}/os-server-password"
    assert call(mcloud, "GET", path, reader).json() == {"password": ""}
    secret = (mcloud.state_dir / "metadata-secret").read_text().strip()
    signed = {"X-Instance-ID": sid,
              "X-Instance-ID-Signature": hmac.new(secret.encode(), sid.encode(), hashlib.sha256).hexdigest()}
    r = httpx.post(f"{mcloud.metadata_url}/openstack/latest/password", headers=signed, content=b"ENCRYPTED==")
    assert r.status_code == 200, r.text
    for token in (admin, member, reader):
        assert call(mcloud, "GET", path, token).json() == {"password": "ENCRYPTED=="}
    assert call(mcloud, "GET", path, other).status_code == 404
    assert call(mcloud, "DELETE", path, reader).status_code == 403
    assert call(mcloud, "DELETE", path, other).status_code == 404
    assert call(mcloud, "GET", path, reader).json() == {"password": "ENCRYPTED=="}
    assert call(mcloud, "DELETE", path, member).status_code == 204
    assert call(mcloud, "GET", path, reader).json() == {"password": ""}
    # cleared, the guest may store a new one
    r = httpx.post(f"{mcloud.metadata_url}/openstack/latest/password", headers=signed, content=b"AGAIN")
    assert r.status_code == 200 and call(mcloud, "GET", path, admin).json() == {"password": "AGAIN"}


def test_resize_migration_and_empty_usage_project(mcloud: Cloud, admin: str) -> None:
    sid = boot(mcloud, admin, unique("mig"))["id"]
    assert call(mcloud, "POST", f"/servers/{sid}/action", admin, "2.1", {"resize": {"flavorRef": "2"}}) \
        .status_code == 202
    wait_for(lambda: call(mcloud, "GET", f"/servers/{sid}", admin).json()["server"]["status"] == "VERIFY_RESIZE",
             30, "VERIFY_RESIZE")
    rows = [m for m in call(mcloud, "GET", "/os-migrations", admin).json()["migrations"] if m["instance_uuid"] == sid]
    assert rows and all(isinstance(rows[0][k], int) for k in ("old_instance_type_id", "new_instance_type_id"))
    assert rows[0]["old_instance_type_id"] != rows[0]["new_instance_type_id"]
    r = httpx.get(f"{mcloud.compute_url}/os-simple-tenant-usage/", headers={"X-Auth-Token": admin},
                  follow_redirects=False)
    assert r.status_code == 404, r.text
    assert "tenant_usages" in call(mcloud, "GET", "/os-simple-tenant-usage", admin).json()
