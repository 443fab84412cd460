"""The Image v2 API with the `openstack` CLI, openstacksdk and raw HTTP: data, visibility, members,
and bad input that must leave no partial file and no image stuck in saving."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.functional.conftest import Cloud, start_cloud, stop_cloud, unique
from tests.unit.test_image_formats import BAD, needs_tools, qemu_virtual_size, sample


def h(token: str, **extra: str) -> dict[str, str]:
    return {"X-Auth-Token": token, **extra}


def demo_token(cloud: Cloud) -> tuple[str, str]:
    token, body = cloud.token("demo", cloud.demo_password, "demo")
    return token, body["project"]["id"]


def create(cloud: Cloud, token: str, **attrs: object) -> dict:
    body = {"name": unique("img"), "disk_format": "raw", "container_format": "bare", **attrs}
    r = httpx.post(f"{cloud.image_url}/v2/images", headers=h(token), json=body)
    assert r.status_code == 201, r.text
    return r.json()


def upload(cloud: Cloud, token: str, image_id: str, data: bytes) -> httpx.Response:
    return httpx.put(f"{cloud.image_url}/v2/images/{image_id}/file", content=data,
                     headers=h(token, **{"Content-Type": "application/octet-stream"}))


def store_files(cloud: Cloud) -> set[str]:
    root = cloud.state_dir / "images"
    return {p.name for p in root.rglob("*") if p.is_file()}


def test_cli_create_save_set_property_and_delete(cloud: Cloud, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    src, out = tmp_path / "src.raw", tmp_path / "out.raw"
    src.write_bytes(data)
    name = unique("cli-img")
    img = json.loads(cloud.cli("image", "create", "--file", str(src), "--disk-format", "raw",
                               "--container-format", "bare", name, "-f", "json").stdout)
    assert img["status"] == "active" and img["size"] == len(data)
    cloud.cli("image", "save", "--file", str(out), name)
    assert out.read_bytes() == data
    cloud.cli("image", "set", "--property", "os_distro=cumulo", "--min-ram", "64", name)
    shown = json.loads(cloud.cli("image", "show", name, "-f", "json").stdout)
    assert shown["properties"]["os_distro"] == "cumulo" and shown["min_ram"] == 64
    import hashlib

    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["properties"]["os_hash_value"] == hashlib.sha512(data).hexdigest()
    cloud.cli("image", "delete", name)
    assert cloud.cli("image", "show", name, check=False).returncode != 0
    assert img["id"] not in store_files(cloud)


def test_ranged_download_and_empty_image(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    img = create(cloud, token)
    r = httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/file", headers=h(token))
    assert r.status_code == 204
    data = bytes(range(256)) * 40
    assert upload(cloud, token, img["id"], data).status_code == 204
    r = httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/file", headers=h(token, Range="bytes=100-199"))
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    r = httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/file", headers=h(token, Range="bytes=999999-"))
    assert r.status_code == 416


def test_sdk_visibility_between_two_projects(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    admin_token = admin[0]
    demo, demo_project = demo_token(cloud)
    private = create(cloud, admin_token, visibility="private")
    shared = create(cloud, admin_token, visibility="shared")
    community = create(cloud, admin_token, visibility="community")
    public = create(cloud, admin_token, visibility="public")

    def listed(token: str, **params: str) -> set[str]:
        r = httpx.get(f"{cloud.image_url}/v2/images", headers=h(token), params={"limit": "1000", **params})
        return {i["id"] for i in r.json()["images"]}

    seen = listed(demo)
    assert public["id"] in seen and private["id"] not in seen and shared["id"] not in seen
    assert community["id"] not in seen and community["id"] in listed(demo, visibility="community")
    get = lambda i: httpx.get(f"{cloud.image_url}/v2/images/{i['id']}", headers=h(demo)).status_code  # noqa: E731
    assert get(private) == 404 and get(shared) == 404 and get(community) == 200
    # share it: the consumer sees it once it is a member, lists it once it accepts
    conn = cloud.sdk()
    conn.image.add_member(shared["id"], member_id=demo_project)
    assert get(shared) == 200 and shared["id"] not in listed(demo)
    assert shared["id"] in listed(demo, member_status="pending")
    demo_conn = cloud.sdk("cumulo-demo")
    demo_conn.image.update_member(demo_project, shared["id"], status="accepted")
    assert shared["id"] in listed(demo)
    # only the member decides (a non-admin owner cannot accept for it); private images have no members
    own = create(cloud, demo, visibility="shared")
    admin_project = admin[1]["project"]["id"]
    r = httpx.post(f"{cloud.image_url}/v2/images/{own['id']}/members", headers=h(demo), json={"member": admin_project})
    assert r.status_code == 200 and r.json()["status"] == "pending"
    r = httpx.put(f"{cloud.image_url}/v2/images/{own['id']}/members/{admin_project}", headers=h(demo),
                  json={"status": "accepted"})
    assert r.status_code == 403
    r = httpx.post(f"{cloud.image_url}/v2/images/{private['id']}/members", headers=h(admin_token),
                   json={"member": demo_project})
    assert r.status_code == 403
    # a member role user cannot publish
    r = httpx.post(f"{cloud.image_url}/v2/images", headers=h(demo), json={"name": "x", "visibility": "public"})
    assert r.status_code == 403


def test_cli_image_add_project_and_member_accept(cloud: Cloud, tmp_path: Path) -> None:
    src = tmp_path / "a.raw"
    src.write_bytes(b"x" * 1000)
    name = unique("shared")
    cloud.cli("image", "create", "--file", str(src), "--disk-format", "raw", "--container-format", "bare",
              "--shared", name)
    cloud.cli("image", "add", "project", name, "demo")
    image_id = json.loads(cloud.cli("image", "show", name, "-f", "json").stdout)["id"]
    cloud.cli("image", "set", "--accept", image_id, cloud="cumulo-demo")
    listed = json.loads(cloud.cli("image", "list", "-f", "json", cloud="cumulo-demo").stdout)
    assert image_id in [i["ID"] for i in listed]
    members = json.loads(cloud.cli("image", "member", "list", name, "-f", "json").stdout)
    assert [m["Status"] for m in members] == ["accepted"]


def test_deactivate_hides_data_until_reactivated(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    demo, demo_project = demo_token(cloud)
    img = create(cloud, demo)
    assert upload(cloud, demo, img["id"], b"data" * 100).status_code == 204
    r = httpx.post(f"{cloud.image_url}/v2/images/{img['id']}/actions/deactivate", headers=h(token))
    assert r.status_code == 204
    assert httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/file", headers=h(demo)).status_code == 403
    assert httpx.get(f"{cloud.image_url}/v2/images/{img['id']}", headers=h(demo)).json()["status"] == "deactivated"
    httpx.post(f"{cloud.image_url}/v2/images/{img['id']}/actions/reactivate", headers=h(token))
    assert httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/file", headers=h(demo)).content == b"data" * 100


@pytest.mark.parametrize("body,ctype,status", [
    ([{"op": "replace", "path": "/name", "value": "x"}], "application/json", 415),
    ({"op": "replace"}, "application/openstack-images-v2.1-json-patch", 400),
    ([{"op": "move", "path": "/name"}], "application/openstack-images-v2.1-json-patch", 400),
    ([{"op": "replace", "path": "/status", "value": "active"}], "application/openstack-images-v2.1-json-patch", 403),
    ([{"op": "remove", "path": "/nope"}], "application/openstack-images-v2.1-json-patch", 409),
    ([{"op": "add", "path": "/min_ram", "value": "lots"}], "application/openstack-images-v2.1-json-patch", 400),
])
def test_bad_patches(cloud: Cloud, admin, body: object, ctype: str, status: int) -> None:  # type: ignore[no-untyped-def]
    img = create(cloud, admin[0])
    r = httpx.patch(f"{cloud.image_url}/v2/images/{img['id']}", content=json.dumps(body),
                    headers=h(admin[0], **{"Content-Type": ctype}))
    assert r.status_code == status, r.text


def test_bad_uploads_leave_nothing_behind(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    img = create(cloud, token)
    r = httpx.put(f"{cloud.image_url}/v2/images/{img['id']}/file", content=b"abc",
                  headers=h(token, **{"Content-Type": "text/plain"}))
    assert r.status_code == 415
    assert upload(cloud, token, img["id"], b"first").status_code == 204
    r = upload(cloud, token, img["id"], b"second")
    assert r.status_code == 409
    r = httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/file", headers=h(token))
    assert r.content == b"first"
    r = httpx.post(f"{cloud.image_url}/v2/images", headers=h(token), json={"name": "x", "disk_format": "floppy"})
    assert r.status_code == 400


def test_truncated_upload_returns_the_image_to_queued(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    img = create(cloud, token)
    port = int(cloud.image_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall((f"PUT /v2/images/{img['id']}/file HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\n"
                   "Content-Type: application/octet-stream\r\nContent-Length: 10000000\r\n\r\n").encode())
        s.sendall(b"z" * 200_000)
        time.sleep(0.5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = httpx.get(f"{cloud.image_url}/v2/images/{img['id']}", headers=h(token)).json()["status"]
        if status == "queued":
            break
        time.sleep(0.2)
    assert status == "queued"
    assert img["id"] not in store_files(cloud) and not any(n.startswith(".tmp") for n in store_files(cloud))
    assert upload(cloud, token, img["id"], b"complete").status_code == 204


def test_upload_over_quota_is_413_and_keeps_nothing(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    project_name = unique("quota")
    project = httpx.post(f"{cloud.url}/projects", headers=h(token), json={"project": {"name": project_name}})
    project_id = project.json()["project"]["id"]
    admin_user = admin[1]["user"]["id"]
    member = httpx.get(f"{cloud.url}/roles?name=member", headers=h(token)).json()["roles"][0]["id"]
    httpx.put(f"{cloud.url}/projects/{project_id}/users/{admin_user}/roles/{member}", headers=h(token))
    service = [s for s in httpx.get(f"{cloud.url}/services", headers=h(token)).json()["services"]
               if s["type"] == "image"][0]
    r = httpx.post(f"{cloud.url}/limits", headers=h(token), json={"limits": [{
        "service_id": service["id"], "project_id": project_id, "region_id": "RegionOne",
        "resource_name": "image_size_total", "resource_limit": 1}]})
    assert r.status_code == 201, r.text
    scoped, _ = cloud.token(project=project_name)
    img = create(cloud, scoped)
    r = upload(cloud, scoped, img["id"], b"q" * (2 << 20))
    assert r.status_code == 413
    shown = httpx.get(f"{cloud.image_url}/v2/images/{img['id']}", headers=h(scoped)).json()
    assert shown["status"] == "queued" and img["id"] not in store_files(cloud)
    assert upload(cloud, scoped, img["id"], b"q" * (512 << 10)).status_code == 204


def test_killed_writer_is_reconciled_after_restart(tmp_path: Path) -> None:
    """kill -9 mid-upload: after a restart the lease expires and the image is queued, file gone."""
    cloud = start_cloud(tmp_path, "sqlite")
    try:
        token, _ = cloud.token()
        img = create(cloud, token)
        port = int(cloud.image_url.rsplit(":", 1)[1])
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall((f"PUT /v2/images/{img['id']}/file HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\n"
                   "Content-Type: application/octet-stream\r\nContent-Length: 50000000\r\n\r\n").encode())
        s.sendall(b"k" * 300_000)
        deadline = time.monotonic() + 5
        while httpx.get(f"{cloud.image_url}/v2/images/{img['id']}", headers=h(token)).json()["status"] != "saving":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        os.killpg(cloud.proc.pid, signal.SIGKILL)
        cloud.proc.wait()
        s.close()
        cloud = start_cloud(tmp_path, "sqlite")
        deadline = time.monotonic() + 15
        while True:
            status = httpx.get(f"{cloud.image_url}/v2/images/{img['id']}", headers=h(token)).json()["status"]
            if status == "queued" or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert status == "queued"
        left = {p.name for p in (cloud.state_dir / "images").rglob("*") if p.is_file()}
        assert img["id"] not in left and not any(n.startswith(".tmp") for n in left)
    finally:
        stop_cloud(cloud)


def test_metadefs_namespace_lifecycle_and_protection(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    base = f"{cloud.image_url}/v2/metadefs/namespaces"
    name = unique("ns")
    r = httpx.post(base, headers=h(token), json={"namespace": name, "visibility": "public", "protected": True,
                                                 "resource_type_associations": [{"name": "OS::Glance::Image"}]})
    assert r.status_code == 201, r.text
    assert httpx.post(f"{base}/{name}/properties", headers=h(token), json={
        "name": "hw_disk_bus", "title": "Disk bus", "type": "string", "enum": ["virtio", "scsi"]}).status_code == 201
    assert httpx.post(f"{base}/{name}/tags", headers=h(token),
                      json={"tags": [{"name": "a"}, {"name": "b"}]}).status_code == 201
    shown = httpx.get(f"{base}/{name}", headers=h(token)).json()
    assert shown["properties"]["hw_disk_bus"]["title"] == "Disk bus" and len(shown["tags"]) == 2
    demo, _ = demo_token(cloud)
    assert httpx.get(f"{base}/{name}", headers=h(demo)).status_code == 200  # public: readable by members
    assert httpx.post(base, headers=h(demo), json={"namespace": unique("x")}).status_code == 403
    assert httpx.delete(f"{base}/{name}", headers=h(token)).status_code == 403  # protected
    r = httpx.put(f"{base}/{name}", headers=h(token), json={"namespace": name, "protected": False})
    assert r.status_code == 200 and r.json()["visibility"] == "private"
    assert httpx.delete(f"{base}/{name}", headers=h(token)).status_code == 204
    assert httpx.get(f"{base}/{name}", headers=h(token)).status_code == 404


def test_glance_direct_import_and_url_tasks_refused(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    img = create(cloud, token)
    r = httpx.put(f"{cloud.image_url}/v2/images/{img['id']}/stage", content=b"staged" * 1000,
                  headers=h(token, **{"Content-Type": "application/octet-stream"}))
    assert r.status_code == 204
    assert httpx.get(f"{cloud.image_url}/v2/images/{img['id']}", headers=h(token)).json()["status"] == "uploading"
    r = httpx.post(f"{cloud.image_url}/v2/images/{img['id']}/import", headers=h(token),
                   json={"method": {"name": "web-download", "uri": "http://example.invalid/x"}})
    assert r.status_code == 400
    r = httpx.post(f"{cloud.image_url}/v2/images/{img['id']}/import", headers=h(token),
                   json={"method": {"name": "glance-direct"}})
    assert r.status_code == 202
    deadline = time.monotonic() + 10
    while httpx.get(f"{cloud.image_url}/v2/images/{img['id']}", headers=h(token)).json()["status"] != "active":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/file", headers=h(token)).content == b"staged" * 1000
    tasks = httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/tasks", headers=h(token)).json()["tasks"]
    assert [t["status"] for t in tasks] == ["success"]
    r = httpx.post(f"{cloud.image_url}/v2/tasks", headers=h(token), json={
        "type": "import", "input": {"import_from": "http://example.invalid/x.qcow2"}})
    assert r.status_code == 400


# -- format safety: data must be its disk_format and must not make QEMU open other files -----------
UNSAFE = ["qcow-with-backing.qcow2", "qcow-with-datafile.qcow2", "vmdk-monolithicFlat-leak.vmdk",
          "vmdk-sparse-with-url-backing.vmdk", "iso-with-qcow2-in-system.iso", "raw-claimed-qcow2.qcow2",
          "qcow2-claimed-raw.raw"]
USABLE = ["standard-qcow2v3.qcow2", "raw-blank.raw", "vmdk-monolithicSparse.vmdk", "vmdk-streamOptimized.vmdk",
          "vmdk-sparse-with-footer.vmdk", "standard-iso9660.iso", "standard.vhd", "standard.vhdx", "standard.vdi"]


def shown(cloud: Cloud, token: str, image_id: str) -> dict:
    return dict(httpx.get(f"{cloud.image_url}/v2/images/{image_id}", headers=h(token)).json())


@needs_tools
@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_or_mismatched_upload_is_400_and_the_image_stays_queued(cloud: Cloud, admin, name: str,
                                                                       tmp_path: Path) -> None:
    token = admin[0]
    path, disk_format = sample(name, tmp_path)
    img = create(cloud, token, disk_format=disk_format)
    r = upload(cloud, token, img["id"], path.read_bytes())
    assert r.status_code == 400, r.text
    assert BAD[name][2] in r.json()["message"]
    after = shown(cloud, token, img["id"])
    assert after["status"] == "queued" and after["size"] is None and after["checksum"] is None
    assert img["id"] not in store_files(cloud) and not any(n.startswith(".tmp") for n in store_files(cloud))
    assert httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/file", headers=h(token)).status_code == 204
    if disk_format in ("qcow2", "raw"):  # the refused image takes good data afterwards
        good, _ = sample("standard-qcow2v3.qcow2" if disk_format == "qcow2" else "raw-blank.raw", tmp_path / "ok")
        assert upload(cloud, token, img["id"], good.read_bytes()).status_code == 204
        assert shown(cloud, token, img["id"])["status"] == "active"


@needs_tools
@pytest.mark.parametrize("name", USABLE)
def test_usable_images_of_each_format_are_accepted_with_their_virtual_size(cloud: Cloud, admin, name: str,
                                                                          tmp_path: Path) -> None:
    token = admin[0]
    path, disk_format = sample(name, tmp_path)
    img = create(cloud, token, disk_format=disk_format)
    assert upload(cloud, token, img["id"], path.read_bytes()).status_code == 204
    after = shown(cloud, token, img["id"])
    assert after["status"] == "active" and after["size"] == path.stat().st_size
    expected = path.stat().st_size if disk_format in ("raw", "iso") else qemu_virtual_size(path, disk_format)
    assert after["virtual_size"] == expected
    assert httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/file", headers=h(token)).content == path.read_bytes()


@needs_tools
def test_refusal_mid_stream_keeps_nothing_and_the_client_reads_its_400(cloud: Cloud, admin, tmp_path: Path) -> None:
    """A poisoned header followed by 40 MiB: refused from the first chunk, nothing of it stored."""
    token = admin[0]
    path, _ = sample("qcow-with-backing.qcow2", tmp_path)
    img = create(cloud, token, disk_format="qcow2")

    def body():  # type: ignore[no-untyped-def]
        yield path.read_bytes()
        for _ in range(40):
            yield bytes(1 << 20)

    started = time.monotonic()
    r = httpx.put(f"{cloud.image_url}/v2/images/{img['id']}/file", content=body(), timeout=60,
                  headers=h(token, **{"Content-Type": "application/octet-stream"}))
    assert r.status_code == 400 and "backing file ('/etc/hosts')" in r.json()["message"]
    assert time.monotonic() - started < 30
    assert shown(cloud, token, img["id"])["status"] == "queued"
    assert img["id"] not in store_files(cloud) and not any(n.startswith(".tmp") for n in store_files(cloud))


@needs_tools
def test_cli_image_create_refuses_a_qcow2_with_a_backing_file(cloud: Cloud, tmp_path: Path) -> None:
    """The openstack CLI shows the service's reason."""
    path, _ = sample("qcow-with-backing.qcow2", tmp_path)
    name = unique("poisoned")
    proc = cloud.cli("image", "create", "--file", str(path), "--disk-format", "qcow2", "--container-format",
                     "bare", name, check=False)
    assert proc.returncode != 0 and "backing file" in proc.stderr + proc.stdout
    listed = json.loads(cloud.cli("image", "list", "--name", name, "--long", "-f", "json").stdout)
    assert listed == []  # openstacksdk deletes the image it made when its upload is refused


@needs_tools
@pytest.mark.parametrize("name", ["qcow-with-backing.qcow2", "vmdk-monolithicFlat.vmdk", "qcow2-claimed-raw.raw"])
def test_glance_direct_import_of_unsafe_data_fails_and_returns_to_queued(cloud: Cloud, admin, name: str,
                                                                         tmp_path: Path) -> None:
    token = admin[0]
    path, disk_format = sample(name, tmp_path)
    img = create(cloud, token, disk_format=disk_format)
    r = httpx.put(f"{cloud.image_url}/v2/images/{img['id']}/stage", content=path.read_bytes(),
                  headers=h(token, **{"Content-Type": "application/octet-stream"}))
    assert r.status_code == 204
    r = httpx.post(f"{cloud.image_url}/v2/images/{img['id']}/import", headers=h(token),
                   json={"method": {"name": "glance-direct"}})
    assert r.status_code == 202
    deadline = time.monotonic() + 15
    while (tasks := httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/tasks", headers=h(token)).json()["tasks"])[
            0]["status"] == "processing":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert tasks[0]["status"] == "failure" and BAD[name][2] in tasks[0]["message"]
    after = shown(cloud, token, img["id"])
    assert after["status"] == "queued" and after["size"] is None
    assert img["id"] not in store_files(cloud)  # neither in the store nor staged
    # stage good data and import again: it becomes active
    good, _ = sample("standard-qcow2v3.qcow2" if disk_format == "qcow2" else
                     "vmdk-monolithicSparse.vmdk" if disk_format == "vmdk" else "raw-blank.raw", tmp_path / "good")
    httpx.put(f"{cloud.image_url}/v2/images/{img['id']}/stage", content=good.read_bytes(),
              headers=h(token, **{"Content-Type": "application/octet-stream"}))
    assert httpx.post(f"{cloud.image_url}/v2/images/{img['id']}/import", headers=h(token),
                      json={"method": {"name": "glance-direct"}}).status_code == 202
    deadline = time.monotonic() + 15
    while shown(cloud, token, img["id"])["status"] != "active":
        assert time.monotonic() < deadline
        time.sleep(0.1)
