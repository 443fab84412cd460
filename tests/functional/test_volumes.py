"""Block storage, the first slice: volumes, types, snapshots and quotas through the ``openstack`` CLI,
openstacksdk and plain HTTP, against one cloud per backend (SQLite + in-process bus, PostgreSQL +
RabbitMQ) that runs the volume service and its embedded agent.  A volume is a real qcow2 file of
its size under ``<state>/volumes/<host>/``; deleting it removes the file."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functional.conftest import (
    Cloud,
    block_storage_cloud,
    unique,
    wait_for,
)

GiB = 1024**3


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def vcloud(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    yield from block_storage_cloud(request, tmp_path_factory, "volumes")


class Api:
    """Plain HTTP to the Block Storage API as one user."""

    def __init__(self, cloud: Cloud, token: str, project_id: str) -> None:
        self.cloud, self.token, self.project_id = cloud, token, project_id

    def __call__(self, method: str, path: str, body: Any = None, version: str = "") -> httpx.Response:
        headers = {"X-Auth-Token": self.token}
        if version:
            headers["OpenStack-API-Version"] = f"volume {version}"
        return httpx.request(method, f"{self.cloud.volume_url}/{self.project_id}{path}", json=body,
                             headers=headers, timeout=30)

    def volume(self, volume_id: str) -> dict[str, Any]:
        r = self("GET", f"/volumes/{volume_id}")
        assert r.status_code == 200, r.text
        return r.json()["volume"]

    def wait_status(self, volume_id: str, status: str, timeout: float = 20) -> dict[str, Any]:
        return wait_for(lambda: (v := self.volume(volume_id))["status"] == status and v, timeout,  # type: ignore
                        f"volume {volume_id} to be {status}")


@pytest.fixture(scope="module")
def admin_api(vcloud: Cloud) -> Api:
    token, body = vcloud.token()
    return Api(vcloud, token, body["project"]["id"])


@pytest.fixture(scope="module")
def people(vcloud: Cloud) -> dict[str, Api]:
    """A new project P with a member and a reader, and a member of another project Q."""
    token, _ = vcloud.token()
    h = {"X-Auth-Token": token}

    def v3(method: str, path: str, body: Any = None) -> Any:
        r = httpx.request(method, f"{vcloud.url}{path}", json=body, headers=h)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    roles = {x["name"]: x["id"] for x in v3("GET", "/roles")["roles"]}
    projects = {key: v3("POST", "/projects", {"project": {"name": unique(f"vol-{key}"), "domain_id": "default"}})[
        "project"] for key in ("P", "Q")}
    out = {}
    for name, key, role in (("member", "P", "member"), ("reader", "P", "reader"), ("other", "Q", "member")):
        user_name, password = unique(f"vol-{name}"), uuid.uuid4().hex
        user = v3("POST", "/users", {"user": {"name": user_name, "password": password, "domain_id": "default"}})["user"]
        v3("PUT", f"/projects/{projects[key]['id']}/users/{user['id']}/roles/{roles[role]}")
        tok, _ = vcloud.token(user_name, password, projects[key]["name"])
        out[name] = Api(vcloud, tok, projects[key]["id"])
    return out


def volume_files(cloud: Cloud) -> dict[str, Path]:
    return {p.name: p for p in (cloud.state_dir / "volumes").rglob("*.qcow2")}


def qemu_info(path: Path) -> dict[str, Any]:
    out = subprocess.run(["qemu-img", "info", "--output", "json", str(path)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def cli_json(cloud: Cloud, *args: str, cloud_name: str = "cumulo") -> Any:
    return json.loads(cloud.cli(*args, "-f", "json", cloud=cloud_name).stdout)


# -- discovery -----------------------------------------------------------------------------------
def test_version_documents_advertise_3_0_to_3_71(vcloud: Cloud) -> None:
    root = vcloud.volume_url.rsplit("/v3", 1)[0]
    r = httpx.get(root + "/")
    assert r.status_code == 300
    (doc,) = r.json()["versions"]
    assert (doc["id"], doc["min_version"], doc["version"]) == ("v3.0", "3.0", "3.71")
    assert httpx.get(root + "/v3/").json()["versions"][0]["version"] == "3.71"


def test_microversions_are_negotiated_with_the_volume_header(admin_api: Api) -> None:
    r = admin_api("GET", "/types", version="3.63")
    assert r.status_code == 200 and r.headers["OpenStack-API-Version"] == "volume 3.63"
    r = admin_api("GET", "/types", version="3.72")
    assert r.status_code == 406
    assert admin_api("GET", "/types", version="latest").headers["OpenStack-API-Version"] == "volume 3.71"


def test_the_catalog_lists_block_storage_and_the_volumev3_alias(vcloud: Cloud) -> None:
    _, body = vcloud.token()
    kinds = {(e["type"], e["name"]) for e in body["catalog"]}
    assert {("block-storage", "cinder"), ("volumev3", "cinderv3")} <= kinds


# -- volumes -------------------------------------------------------------------------------------
def test_volume_create_becomes_available_as_a_qcow2_file_of_its_size(vcloud: Cloud, admin_api: Api) -> None:
    name = unique("v1")
    made = cli_json(vcloud, "volume", "create", "--size", "1", name)
    vol = admin_api.wait_status(made["id"], "available")
    assert vol["size"] == 1 and vol["bootable"] == "false" and vol["volume_type"] == "__DEFAULT__"
    path = volume_files(vcloud)[f"volume-{made['id']}.qcow2"]
    info = qemu_info(path)
    assert info["format"] == "qcow2" and info["virtual-size"] == GiB


def test_list_show_set_and_delete_through_the_cli(vcloud: Cloud, admin_api: Api) -> None:
    name = unique("vol")
    vid = cli_json(vcloud, "volume", "create", "--size", "2", "--property", "tier=gold", name)["id"]
    admin_api.wait_status(vid, "available")
    assert name in {v["Name"] for v in cli_json(vcloud, "volume", "list")}
    vcloud.cli("volume", "set", "--name", f"{name}-renamed", "--description", "renamed", "--property", "k=v", vid)
    shown = cli_json(vcloud, "volume", "show", vid)
    assert shown["name"] == f"{name}-renamed" and shown["description"] == "renamed"
    assert admin_api("GET", f"/volumes/{vid}/metadata").json()["metadata"] == {"tier": "gold", "k": "v"}
    assert f"volume-{vid}.qcow2" in volume_files(vcloud)
    vcloud.cli("volume", "delete", vid)
    wait_for(lambda: admin_api("GET", f"/volumes/{vid}").status_code == 404, 20, "the volume to be gone")
    assert f"volume-{vid}.qcow2" not in volume_files(vcloud)


def test_sdk_creates_and_deletes_a_volume(vcloud: Cloud) -> None:
    conn = vcloud.sdk()
    vol = conn.block_storage.create_volume(size=1, name=unique("sdk"))
    vol = conn.block_storage.wait_for_status(vol, "available", wait=30, interval=0.2)
    assert vol.size == 1
    conn.block_storage.delete_volume(vol)
    conn.block_storage.wait_for_delete(vol, wait=30, interval=0.2)


def test_lists_page_with_limit_marker_and_sort(admin_api: Api) -> None:
    tag = unique("page")
    ids = [admin_api("POST", "/volumes", {"volume": {"size": 1, "name": f"{tag}-{i}",
                                                     "metadata": {"page": tag}}}).json()["volume"]["id"]
           for i in range(3)]
    for vid in ids:
        admin_api.wait_status(vid, "available")
    query = f'metadata={{"page": "{tag}"}}&sort=name:asc'
    first = admin_api("GET", f"/volumes/detail?{query}&limit=2").json()
    assert [v["name"] for v in first["volumes"]] == [f"{tag}-0", f"{tag}-1"]
    assert first["volumes_links"][0]["rel"] == "next"
    rest = admin_api("GET", f"/volumes?{query}&limit=2&marker={first['volumes'][-1]['id']}").json()
    assert [v["name"] for v in rest["volumes"]] == [f"{tag}-2"] and "volumes_links" not in rest
    assert admin_api("GET", "/volumes?sort=nope:asc").status_code == 400
    for vid in ids:
        assert admin_api("DELETE", f"/volumes/{vid}").status_code == 202


def test_project_less_paths_serve_the_same_volumes(admin_api: Api) -> None:
    created = admin_api("POST", "/volumes", {"volume": {"size": 1}}).json()["volume"]
    vid = created["id"]
    r = httpx.get(f"{admin_api.cloud.volume_url}/volumes/{vid}", headers={"X-Auth-Token": admin_api.token})
    assert r.status_code == 200 and r.json()["volume"]["id"] == vid
    admin_api.wait_status(vid, "available")
    # the admin's show has the host (host@backend#pool) and project; a create's answer never does
    shown = admin_api.volume(vid)
    assert shown["os-vol-host-attr:host"].count("@") == 1 and "#" in shown["os-vol-host-attr:host"]
    assert shown["os-vol-tenant-attr:tenant_id"] == admin_api.project_id
    assert "os-vol-host-attr:host" not in created and "os-vol-tenant-attr:tenant_id" not in created
    at_3_0 = set(shown) - {"os-vol-host-attr:host", "os-vol-tenant-attr:tenant_id", "os-vol-mig-status-attr:migstat",
                           "os-vol-mig-status-attr:name_id"}
    latest = admin_api("GET", f"/volumes/{vid}", version="3.71").json()["volume"]
    assert set(latest) - set(shown) == {"group_id", "provider_id", "shared_targets", "service_uuid",
                                        "volume_type_id", "consumes_quota"}
    assert "volume_type_id" not in at_3_0 and "group_id" not in at_3_0
    assert admin_api("DELETE", f"/volumes/{vid}").status_code == 202


# -- bad input -----------------------------------------------------------------------------------
def test_size_zero_is_a_400_that_names_the_size(admin_api: Api) -> None:
    r = admin_api("POST", "/volumes", {"volume": {"size": 0, "name": "zero"}})
    assert r.status_code == 400, r.text
    assert "size" in r.json()["badRequest"]["message"]


def test_an_unknown_volume_type_is_a_404(admin_api: Api) -> None:
    r = admin_api("POST", "/volumes", {"volume": {"size": 1, "volume_type": "no-such-type"}})
    assert r.status_code == 404 and "no-such-type" in r.json()["itemNotFound"]["message"]


def test_an_unknown_volume_is_item_not_found(admin_api: Api) -> None:
    r = admin_api("GET", f"/volumes/{uuid.uuid4()}")
    assert r.status_code == 404 and r.json()["itemNotFound"]["code"] == 404


# -- types ---------------------------------------------------------------------------------------
def test_types_include_the_default_and_an_admin_makes_more(vcloud: Cloud, admin_api: Api) -> None:
    assert "__DEFAULT__" in {t["Name"] for t in cli_json(vcloud, "volume", "type", "list")}
    name = unique("gold")
    made = cli_json(vcloud, "volume", "type", "create", "--property", "tier=gold", name)
    shown = admin_api("GET", f"/types/{made['id']}").json()["volume_type"]
    assert shown["name"] == name and shown["extra_specs"] == {"tier": "gold"} and shown["is_public"] is True
    vid = admin_api("POST", "/volumes", {"volume": {"size": 1, "volume_type": name}}).json()["volume"]["id"]
    assert admin_api.wait_status(vid, "available")["volume_type"] == name
    r = admin_api("DELETE", f"/types/{made['id']}")
    assert r.status_code == 400 and "in use" in r.json()["badRequest"]["message"]
    admin_api("DELETE", f"/volumes/{vid}")
    wait_for(lambda: admin_api("GET", f"/volumes/{vid}").status_code == 404, 20, "the volume to be gone")
    assert admin_api("DELETE", f"/types/{made['id']}").status_code == 202
    default = admin_api("GET", "/types/__DEFAULT__").json()["volume_type"]
    assert admin_api("DELETE", f"/types/{default['id']}").status_code == 400


# -- quotas --------------------------------------------------------------------------------------
def test_quota_exceeded_is_a_413_and_writes_nothing(admin_api: Api, people: dict[str, Api]) -> None:
    member = people["member"]
    r = admin_api("PUT", f"/os-quota-sets/{member.project_id}", {"quota_set": {"volumes": 2, "gigabytes": 3}})
    assert r.status_code == 200 and r.json()["quota_set"]["volumes"] == 2
    shown = member("GET", f"/os-quota-sets/{member.project_id}?usage=true").json()["quota_set"]
    assert shown["volumes"]["limit"] == 2
    first = member("POST", "/volumes", {"volume": {"size": 1, "name": "q1"}})
    assert first.status_code == 202, first.text
    before = member("GET", "/volumes").json()["volumes"]
    too_big = member("POST", "/volumes", {"volume": {"size": 3, "name": "q-big"}})
    assert too_big.status_code == 413 and "gigabytes" in too_big.json()["overLimit"]["message"]
    assert member("POST", "/volumes", {"volume": {"size": 1, "name": "q2"}}).status_code == 202
    over = member("POST", "/volumes", {"volume": {"size": 1, "name": "q3"}})
    assert over.status_code == 413 and "'volumes'" in over.json()["overLimit"]["message"]
    names = {v["name"] for v in member("GET", "/volumes").json()["volumes"]}
    assert names == {v["name"] for v in before} | {"q2"}
    limits = member("GET", "/limits").json()["limits"]["absolute"]
    assert (limits["maxTotalVolumes"], limits["totalVolumesUsed"], limits["totalGigabytesUsed"]) == (2, 2, 2)
    defaults = member("GET", f"/os-quota-sets/{member.project_id}/defaults").json()["quota_set"]
    assert (defaults["volumes"], defaults["snapshots"], defaults["gigabytes"], defaults["backups"],
            defaults["backup_gigabytes"]) == (10, 10, 1000, 10, 1000)
    assert member("PUT", f"/os-quota-sets/{member.project_id}", {"quota_set": {"volumes": 50}}).status_code == 403
    assert admin_api("PUT", f"/os-quota-sets/{member.project_id}", {"quota_set": {"bogus": 1}}).status_code == 400


def test_a_volume_types_own_quotas_are_enforced(admin_api: Api, people: dict[str, Api]) -> None:
    """Cinder's per-type quotas (volumes_<type>, gigabytes_<type>, snapshots_<type>): shown for
    every type, settable per project and in the default class, and counted per type."""
    other = people["other"]
    tname = unique("qtype")
    tid = admin_api("POST", "/types", {"volume_type": {"name": tname}}).json()["volume_type"]["id"]
    shown = admin_api("GET", f"/os-quota-sets/{other.project_id}").json()["quota_set"]
    assert (shown[f"volumes_{tname}"], shown[f"gigabytes_{tname}"], shown[f"snapshots_{tname}"]) == (-1, -1, -1)
    r = admin_api("PUT", f"/os-quota-sets/{other.project_id}", {"quota_set": {f"volumes_{tname}": 1}})
    assert r.status_code == 200 and r.json()["quota_set"][f"volumes_{tname}"] == 1
    first = other("POST", "/volumes", {"volume": {"size": 1, "volume_type": tname}}).json()["volume"]["id"]
    over = other("POST", "/volumes", {"volume": {"size": 1, "volume_type": tname}})
    assert over.status_code == 413 and f"volumes_{tname}" in over.json()["overLimit"]["message"]
    plain = other("POST", "/volumes", {"volume": {"size": 1}})  # the default type is not limited by it
    assert plain.status_code == 202, plain.text
    usage = other("GET", f"/os-quota-sets/{other.project_id}?usage=true").json()["quota_set"]
    assert usage[f"volumes_{tname}"] == {"limit": 1, "in_use": 1, "reserved": 0, "allocated": 0}
    r = admin_api("PUT", "/os-quota-class-sets/default", {"quota_class_set": {f"gigabytes_{tname}": 500}})
    assert r.status_code == 200 and r.json()["quota_class_set"][f"gigabytes_{tname}"] == 500
    r = admin_api("PUT", "/os-quota-class-sets/default", {"quota_class_set": {"gigabytes_nonesuch-type": 5}})
    assert r.status_code == 400 and "gigabytes_nonesuch-type" in r.json()["badRequest"]["message"]
    admin_api("PUT", "/os-quota-class-sets/default", {"quota_class_set": {f"gigabytes_{tname}": -1}})
    admin_api("DELETE", f"/os-quota-sets/{other.project_id}")
    for vid in (first, plain.json()["volume"]["id"]):
        other.wait_status(vid, "available")
        assert other("DELETE", f"/volumes/{vid}").status_code == 202
    wait_for(lambda: admin_api("DELETE", f"/types/{tid}").status_code == 202, 20, "the type to be unused")


# -- who may do what ----------------------------------------------------------------------------------
def test_a_reader_cannot_create_and_another_project_cannot_see(people: dict[str, Api]) -> None:
    member, reader, other = people["member"], people["reader"], people["other"]
    r = reader("POST", "/volumes", {"volume": {"size": 1}})
    assert r.status_code == 403 and "volume:create" in r.json()["forbidden"]["message"]
    vid = member("POST", "/volumes", {"volume": {"size": 1, "name": "mine"}})
    if vid.status_code == 413:  # the quota test above may have filled the project
        admin_token, body = member.cloud.token()
        Api(member.cloud, admin_token, body["project"]["id"])(
            "PUT", f"/os-quota-sets/{member.project_id}", {"quota_set": {"volumes": 10, "gigabytes": 100}})
        vid = member("POST", "/volumes", {"volume": {"size": 1, "name": "mine"}})
    assert vid.status_code == 202, vid.text
    volume_id = vid.json()["volume"]["id"]
    assert reader("GET", f"/volumes/{volume_id}").status_code == 200
    assert "os-vol-host-attr:host" not in reader.volume(volume_id)
    r = other("GET", f"/volumes/{volume_id}")
    assert r.status_code == 404 and "itemNotFound" in r.json()
    assert volume_id not in {v["id"] for v in other("GET", "/volumes").json()["volumes"]}
    assert other("DELETE", f"/volumes/{volume_id}").status_code == 404
    assert reader("DELETE", f"/volumes/{volume_id}").status_code == 403


# -- snapshots ---------------------------------------------------------------------------------------
def test_snapshot_is_a_file_and_a_new_volume_comes_from_it(vcloud: Cloud, admin_api: Api) -> None:
    vid = admin_api("POST", "/volumes", {"volume": {"size": 1, "name": unique("src")}}).json()["volume"]["id"]
    admin_api.wait_status(vid, "available")
    snap = cli_json(vcloud, "volume", "snapshot", "create", "--volume", vid, unique("snap"))
    wait_for(lambda: admin_api("GET", f"/snapshots/{snap['id']}").json()["snapshot"]["status"] == "available", 20,
             "the snapshot to be available")
    assert f"snapshot-{snap['id']}.qcow2" in volume_files(vcloud)
    r = admin_api("DELETE", f"/volumes/{vid}")
    assert r.status_code == 400 and "snapshots" in r.json()["badRequest"]["message"]
    copy = admin_api("POST", "/volumes", {"volume": {"size": 2, "snapshot_id": snap["id"]}}).json()["volume"]
    assert admin_api.wait_status(copy["id"], "available")["snapshot_id"] == snap["id"]
    assert qemu_info(volume_files(vcloud)[f"volume-{copy['id']}.qcow2"])["virtual-size"] == 2 * GiB
    assert snap["id"] in {s["ID"] for s in cli_json(vcloud, "volume", "snapshot", "list")}
    vcloud.cli("volume", "snapshot", "delete", snap["id"])
    wait_for(lambda: admin_api("GET", f"/snapshots/{snap['id']}").status_code == 404, 20, "the snapshot to go")
    assert f"snapshot-{snap['id']}.qcow2" not in volume_files(vcloud)
    for volume_id in (vid, copy["id"]):
        assert admin_api("DELETE", f"/volumes/{volume_id}").status_code == 202


def test_availability_zones_and_the_pool(admin_api: Api) -> None:
    zones = admin_api("GET", "/os-availability-zone").json()["availabilityZoneInfo"]
    assert zones == [{"zoneName": "nova", "zoneState": {"available": True}}]


def test_bootable_and_readonly_flags_are_set_by_actions(vcloud: Cloud, admin_api: Api) -> None:
    vid = admin_api("POST", "/volumes", {"volume": {"size": 1}}).json()["volume"]["id"]
    admin_api.wait_status(vid, "available")
    assert admin_api("POST", f"/volumes/{vid}/action", {"os-set_bootable": {"bootable": True}}).status_code == 200
    assert admin_api.volume(vid)["bootable"] == "true"
    clone = admin_api("POST", "/volumes", {"volume": {"source_volid": vid}}).json()["volume"]["id"]
    assert admin_api.wait_status(clone, "available")
    assert admin_api.volume(clone)["bootable"] == "true"  # a clone of a bootable volume boots too
    assert admin_api("DELETE", f"/volumes/{clone}").status_code == 202
    vcloud.cli("volume", "set", "--non-bootable", vid)
    assert admin_api.volume(vid)["bootable"] == "false"
    r = admin_api("POST", f"/volumes/{vid}/action", {"os-update_readonly_flag": {"readonly": True}})
    assert r.status_code == 202 and admin_api.volume(vid)["metadata"]["readonly"] == "True"
    r = admin_api("POST", f"/volumes/{vid}/action", {"os-no-such-action": {}})
    assert r.status_code == 400 and "no such action" in r.json()["badRequest"]["message"]
    assert admin_api("GET", "/volumes/").status_code == 404  # no volume id: nothing is redirected
    assert admin_api("DELETE", f"/volumes/{vid}").status_code == 202


def upload_image(cloud: Cloud, tmp: Path, virtual: str) -> str:
    """A qcow2 image of ``virtual`` size in the admin's project, uploaded through the Image API."""
    path = tmp / f"img-{virtual}.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), virtual], check=True)
    token, _ = cloud.token()
    h = {"X-Auth-Token": token}
    image = httpx.post(f"{cloud.image_url}/v2/images", headers=h, json={
        "name": unique("volimg"), "disk_format": "qcow2", "container_format": "bare"}).json()
    r = httpx.put(f"{cloud.image_url}/v2/images/{image['id']}/file", content=path.read_bytes(),
                  headers={**h, "Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    wait_for(lambda: httpx.get(f"{cloud.image_url}/v2/images/{image['id']}", headers=h).json()["status"] == "active",
             20, "the image to be active")
    return str(image["id"])


def test_a_volume_from_an_image_is_bootable_and_holds_the_image(vcloud: Cloud, admin_api: Api,
                                                                 tmp_path: Path) -> None:
    image_id = upload_image(vcloud, tmp_path, "64M")
    made = cli_json(vcloud, "volume", "create", "--size", "1", "--image", image_id, unique("fromimg"))
    vol = admin_api.wait_status(made["id"], "available")
    assert vol["bootable"] == "true"
    path = volume_files(vcloud)[f"volume-{made['id']}.qcow2"]
    assert qemu_info(path)["virtual-size"] == GiB
    # an image whose disk is larger than the volume asked for: the agent refuses, the volume says why
    big = upload_image(vcloud, tmp_path, "2G")
    vid = admin_api("POST", "/volumes", {"volume": {"size": 1, "imageRef": big}}).json()["volume"]["id"]
    assert admin_api.wait_status(vid, "error")
    assert f"volume-{vid}.qcow2" not in volume_files(vcloud)
    missing = admin_api("POST", "/volumes", {"volume": {"size": 1, "imageRef": str(uuid.uuid4())}})
    assert missing.status_code == 404
    for volume_id in (made["id"], vid):
        assert admin_api("DELETE", f"/volumes/{volume_id}").status_code == 202


# -- attachments ---------------------------------------------------------------------------------
ATT = "3.44"  # attachments (3.27) and os-complete (3.44)


def new_volume(api: Api, **extra: Any) -> str:
    vid = api("POST", "/volumes", {"volume": {"size": 1, **extra}}).json()["volume"]["id"]
    api.wait_status(vid, "available")
    return str(vid)


def attach(api: Api, volume_id: str, server: str, connector: dict[str, Any] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"volume_uuid": volume_id, "instance_uuid": server}
    if connector is not None:
        body["connector"] = connector
    return api("POST", "/attachments", {"attachment": body}, version=ATT)


def test_an_attachment_reserves_connects_completes_and_detaches(admin_api: Api) -> None:
    vid, server = new_volume(admin_api), str(uuid.uuid4())
    r = attach(admin_api, vid, server)
    assert r.status_code == 200, r.text
    att = r.json()["attachment"]
    assert (att["status"], att["instance"], att["volume_id"], att["connection_info"], att["attach_mode"]) == (
        "reserved", server, vid, None, "rw")
    assert admin_api.volume(vid)["status"] == "reserved"
    r = admin_api("PUT", f"/attachments/{att['id']}",
                  {"attachment": {"connector": {"host": "cn-1", "mountpoint": "/dev/vdb", "ip": "127.0.0.1"}}},
                  version=ATT)
    assert r.status_code == 200, r.text
    info = r.json()["attachment"]["connection_info"]
    path = Path(info["data"]["path"])
    assert info["driver_volume_type"] == "file" and info["data"]["format"] == "qcow2" and path.is_absolute()
    assert path.is_file() and path.name == f"volume-{vid}.qcow2" and info["data"]["access_mode"] == "rw"
    assert admin_api.volume(vid)["status"] == "attaching"
    r = admin_api("POST", f"/attachments/{att['id']}/action", {"os-complete": None}, version=ATT)
    assert r.status_code == 204, r.text
    vol = admin_api.volume(vid)
    assert vol["status"] == "in-use" and "attach_status" not in vol
    (shown,) = vol["attachments"]
    assert shown["attached_at"] and shown == {
        "id": vid, "attachment_id": att["id"], "volume_id": vid, "server_id": server, "host_name": "cn-1",
        "device": "/dev/vdb", "attached_at": shown["attached_at"]}
    listed = admin_api("GET", f"/attachments?volume_id={vid}", version=ATT).json()["attachments"]
    assert listed == [{"id": att["id"], "status": "attached", "instance": server, "volume_id": vid}]
    (detail,) = admin_api("GET", f"/attachments/detail?instance_id={server}", version=ATT).json()["attachments"]
    assert detail["attached_at"] and detail["detached_at"] == "" and detail["connection_info"] == info
    assert admin_api("GET", f"/attachments/{att['id']}", version=ATT).json()["attachment"]["status"] == "attached"
    # an attached volume is not deleted, and its snapshot needs force (a copy made with qemu-img -U)
    r = admin_api("DELETE", f"/volumes/{vid}?cascade=true")
    assert r.status_code == 400 and "Volume status must be available" in r.json()["badRequest"]["message"]
    r = admin_api("POST", "/snapshots", {"snapshot": {"volume_id": vid}})
    assert r.status_code == 400 and "in-use" in r.json()["badRequest"]["message"]
    snap = admin_api("POST", "/snapshots", {"snapshot": {"volume_id": vid, "force": True}})
    assert snap.status_code == 202, snap.text
    sid = snap.json()["snapshot"]["id"]
    wait_for(lambda: admin_api("GET", f"/snapshots/{sid}").json()["snapshot"]["status"] == "available", 20,
             "the forced snapshot to be available")
    r = admin_api("DELETE", f"/attachments/{att['id']}", version=ATT)
    assert r.status_code == 200 and r.json() == {"attachments": []}
    vol = admin_api.volume(vid)
    assert vol["status"] == "available" and vol["attachments"] == []
    assert admin_api("GET", f"/attachments/{att['id']}", version=ATT).status_code == 404
    assert admin_api("DELETE", f"/attachments/{att['id']}", version=ATT).status_code == 404
    assert admin_api("DELETE", f"/volumes/{vid}?cascade=true").status_code == 202


def test_a_second_attachment_needs_a_multiattach_volume(admin_api: Api) -> None:
    single = new_volume(admin_api)
    first = attach(admin_api, single, str(uuid.uuid4()))
    assert first.status_code == 200
    r = attach(admin_api, single, str(uuid.uuid4()))
    assert r.status_code == 400 and "Invalid volume" in r.json()["badRequest"]["message"]
    assert admin_api("DELETE", f"/attachments/{first.json()['attachment']['id']}", version=ATT).status_code == 200
    multi = new_volume(admin_api, multiattach=True)
    made = []
    for _ in range(2):
        r = attach(admin_api, multi, str(uuid.uuid4()), {"host": "cn-1"})
        assert r.status_code == 200 and r.json()["attachment"]["status"] == "attaching", r.text
        made.append(r.json()["attachment"]["id"])
        assert admin_api("POST", f"/attachments/{made[-1]}/action", {"os-complete": {}}, version=ATT).status_code \
            == 204
    vol = admin_api.volume(multi)
    assert vol["status"] == "in-use" and {a["attachment_id"] for a in vol["attachments"]} == set(made)
    r = admin_api("DELETE", f"/attachments/{made[0]}", version=ATT)
    assert [a["id"] for a in r.json()["attachments"]] == [made[1]]
    assert admin_api.volume(multi)["status"] == "in-use"
    admin_api("DELETE", f"/attachments/{made[1]}", version=ATT)
    assert admin_api.volume(multi)["status"] == "available"
    for vid in (single, multi):
        assert admin_api("DELETE", f"/volumes/{vid}").status_code == 202


def test_the_legacy_attach_actions_walk_the_volume_through_its_states(admin_api: Api) -> None:
    vid, server = new_volume(admin_api), str(uuid.uuid4())

    def act(body: dict[str, Any], status: int = 202) -> httpx.Response:
        r = admin_api("POST", f"/volumes/{vid}/action", body)
        assert r.status_code == status, (body, r.text)
        return r

    act({"os-reserve": None})
    assert admin_api.volume(vid)["status"] == "attaching"
    r = act({"os-reserve": None}, 400)  # reserved already
    assert "attaching" in r.json()["badRequest"]["message"]
    act({"os-unreserve": {}})
    assert admin_api.volume(vid)["status"] == "available"
    info = act({"os-initialize_connection": {"connector": {"host": "cn-1"}}}, 200).json()["connection_info"]
    assert info["driver_volume_type"] == "file" and Path(info["data"]["path"]).is_file()
    assert admin_api.volume(vid)["status"] == "available"  # a connection alone attaches nothing
    act({"os-reserve": {}})
    act({"os-attach": {"instance_uuid": server, "mountpoint": "/dev/vdc", "mode": "rw"}})
    vol = admin_api.volume(vid)
    assert vol["status"] == "in-use" and vol["attachments"][0]["server_id"] == server
    assert vol["attachments"][0]["device"] == "/dev/vdc"
    act({"os-begin_detaching": {}})
    assert admin_api.volume(vid)["status"] == "detaching"
    act({"os-roll_detaching": {}})
    assert admin_api.volume(vid)["status"] == "in-use"
    act({"os-begin_detaching": {}})
    act({"os-detach": {"attachment_id": vol["attachments"][0]["attachment_id"]}})
    vol = admin_api.volume(vid)
    assert vol["status"] == "available" and vol["attachments"] == []
    act({"os-terminate_connection": {"connector": {"host": "cn-1"}}})
    r = act({"os-begin_detaching": {}}, 400)  # nothing is attached
    assert "in-use" in r.json()["badRequest"]["message"]
    act({"os-attach": {"host_name": "cn-2", "mountpoint": "/dev/vdd"}})
    assert admin_api.volume(vid)["status"] == "in-use"
    act({"os-attach": {"instance_uuid": str(uuid.uuid4()), "mountpoint": "/dev/vde"}}, 400)  # not multiattach
    act({"os-force_detach": {}})
    assert admin_api.volume(vid)["status"] == "available"
    assert admin_api("DELETE", f"/volumes/{vid}").status_code == 202


def test_attachments_are_the_projects_and_a_reader_only_reads(admin_api: Api, people: dict[str, Api]) -> None:
    member, reader, other = people["member"], people["reader"], people["other"]
    admin_api("PUT", f"/os-quota-sets/{member.project_id}", {"quota_set": {"volumes": 20, "gigabytes": 100}})
    vid = new_volume(member)
    r = attach(member, vid, str(uuid.uuid4()))
    assert r.status_code == 200, r.text
    aid = r.json()["attachment"]["id"]
    assert reader("GET", f"/attachments/{aid}", version=ATT).status_code == 200
    assert aid in {a["id"] for a in reader("GET", "/attachments", version=ATT).json()["attachments"]}
    r = attach(reader, vid, str(uuid.uuid4()))
    assert r.status_code == 403 and "volume:attachment_create" in r.json()["forbidden"]["message"]
    assert reader("DELETE", f"/attachments/{aid}", version=ATT).status_code == 403
    assert reader("POST", f"/volumes/{vid}/action", {"os-reserve": None}).status_code == 403
    assert other("GET", f"/attachments/{aid}", version=ATT).status_code == 404
    assert aid not in {a["id"] for a in other("GET", "/attachments", version=ATT).json()["attachments"]}
    assert attach(other, vid, str(uuid.uuid4())).status_code == 404
    assert other("DELETE", f"/attachments/{aid}", version=ATT).status_code == 404
    r = other("PUT", f"/attachments/{aid}", {"attachment": {"connector": {"host": "x"}}}, version=ATT)
    assert r.status_code == 404
    assert member("POST", f"/volumes/{vid}/action", {"os-force_detach": {}}).status_code == 403
    # a reserved attachment has no connection to complete yet
    assert member("POST", f"/attachments/{aid}/action", {"os-complete": None}, version=ATT).status_code == 400
    r = member("PUT", f"/attachments/{aid}", {"attachment": {"connector": {"host": "cn-1"}}}, version=ATT)
    assert r.status_code == 200, r.text
    assert member("POST", f"/attachments/{aid}/action", {"os-complete": None}, version=ATT).status_code == 204
    # the compute host's name is an admin's to see
    assert member.volume(vid)["attachments"][0]["host_name"] is None
    assert admin_api.volume(vid)["attachments"][0]["host_name"] == "cn-1"
    assert member("DELETE", f"/volumes/{vid}").status_code == 400
    assert member("DELETE", f"/attachments/{aid}", version=ATT).status_code == 200
    assert member("DELETE", f"/volumes/{vid}").status_code == 202


def test_bad_attachment_bodies_are_400s_and_old_versions_404s(admin_api: Api) -> None:
    vid = new_volume(admin_api)
    for body in ({"attachment": {"instance_uuid": str(uuid.uuid4())}},  # no volume_uuid
                 {"attachment": {"volume_uuid": vid, "connector": "host-1"}},
                 {"attachment": {"volume_uuid": vid, "connector": ["x"]}},
                 {"attachment": {"volume_uuid": vid, "instance_uuid": 7}},
                 {"attachment": "x"}, {}, []):
        r = admin_api("POST", "/attachments", body, version=ATT)
        assert r.status_code == 400, (body, r.status_code, r.text)
    r = admin_api("POST", "/attachments", {"attachment": {"volume_uuid": vid, "mode": "rx"}}, version="3.54")
    assert r.status_code == 400
    r = admin_api("POST", "/attachments", {"attachment": {"volume_uuid": vid, "mode": "ro"}}, version=ATT)
    assert r.status_code == 400 and "3.54" in r.json()["badRequest"]["message"]
    assert admin_api("POST", "/attachments", {"attachment": {"volume_uuid": str(uuid.uuid4())}},
                     version=ATT).status_code == 404
    r = admin_api("POST", "/attachments", {"attachment": {"volume_uuid": vid, "mode": "ro"}}, version="3.54")
    assert r.status_code == 200 and r.json()["attachment"]["attach_mode"] == "ro"
    aid = r.json()["attachment"]["id"]
    for body in ({"attachment": {}}, {"attachment": {"connector": "x"}}, {"connector": {}}):
        assert admin_api("PUT", f"/attachments/{aid}", body, version=ATT).status_code == 400, body
    assert admin_api("POST", f"/attachments/{aid}/action", {"os-nope": None}, version=ATT).status_code == 400
    assert admin_api("POST", f"/attachments/{aid}/action", {"os-complete": None}, version="3.43").status_code == 404
    for action in ({"os-attach": {"instance_uuid": str(uuid.uuid4())}},  # no mountpoint
                   {"os-attach": {"mountpoint": "/dev/vdb"}},  # no server nor host
                   {"os-attach": {"instance_uuid": str(uuid.uuid4()), "mountpoint": "/dev/vdb", "mode": "rx"}},
                   {"os-initialize_connection": {"connector": ["x"]}}, {"os-initialize_connection": {}},
                   {"os-terminate_connection": {"connector": "x"}}, {"os-detach": {"attachment_id": 5}}):
        r = admin_api("POST", f"/volumes/{vid}/action", action)
        assert r.status_code == 400, (action, r.status_code, r.text)
    for action in ({"os-attach": None}, {"os-initialize_connection": {"connector": {"host": 5}}}):
        assert admin_api("POST", f"/volumes/{vid}/action", action).status_code == 400, action
    for query in ("limit=x", "sort=nope:asc", "sort=created_at:sideways"):
        assert admin_api("GET", f"/attachments?{query}", version=ATT).status_code == 400, query
    for path in ("/attachments", "/volumes", "/snapshots/detail"):  # Cinder's MarkerNotFound
        assert admin_api("GET", f"{path}?marker={uuid.uuid4()}", version=ATT).status_code == 404, path
    other = admin_api("POST", "/attachments", {"attachment": {"volume_uuid": new_volume(admin_api, multiattach=True)}},
                      version=ATT).json()["attachment"]
    page = admin_api("GET", "/attachments?limit=1&sort=created_at:asc", version=ATT).json()
    assert len(page["attachments"]) == 1 and page["attachments_links"][0]["rel"] == "next"
    admin_api("DELETE", f"/attachments/{other['id']}", version=ATT)
    admin_api("DELETE", f"/volumes/{other['volume_id']}")
    r = admin_api("POST", "/attachments", {"attachment": {"volume_uuid": vid}}, version="3.26")
    assert r.status_code == 404
    assert admin_api("GET", "/attachments", version="3.26").status_code == 404
    assert admin_api("GET", f"/attachments/{uuid.uuid4()}", version=ATT).status_code == 404
    assert admin_api("DELETE", f"/attachments/{aid}", version=ATT).status_code == 200
    assert admin_api("DELETE", f"/volumes/{vid}").status_code == 202


def test_racing_attachment_creates_reserve_a_volume_once(admin_api: Api) -> None:
    from concurrent.futures import ThreadPoolExecutor

    vid = new_volume(admin_api)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: attach(admin_api, vid, str(uuid.uuid4())), range(6)))
    assert sorted(r.status_code for r in answers) == [200] + [400] * 5, [r.text for r in answers]
    (att,) = admin_api("GET", f"/attachments?volume_id={vid}", version=ATT).json()["attachments"]
    assert admin_api("DELETE", f"/attachments/{att['id']}", version=ATT).status_code == 200
    # a multiattach volume takes them all, and is free again once they are gone
    multi = new_volume(admin_api, multiattach=True)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: attach(admin_api, multi, str(uuid.uuid4()), {"host": "cn-1"}), range(6)))
    assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
    with ThreadPoolExecutor(6) as pool:
        gone = list(pool.map(lambda r: admin_api("DELETE", f"/attachments/{r.json()['attachment']['id']}",
                                                 version=ATT), answers))
    assert [r.status_code for r in gone] == [200] * 6
    assert admin_api.volume(multi)["status"] == "available"
    for volume_id in (vid, multi):
        assert admin_api("DELETE", f"/volumes/{volume_id}").status_code == 202
