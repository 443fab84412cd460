"""The interoperable image import beyond glance-direct, the stores and the image cache, on a cloud
with two filesystem stores ("file", the default, and "cheap"), web-download allowed from one
loopback HTTP server this module runs, a 16 MiB image size cap and qcow2 converted to raw on
import: web-download (with openstacksdk) and its progress in the task, the allow-list, the size
bound, copy-image and DELETE /v2/stores, imports into a chosen store, GET /v2/tasks (and
`openstack image task list`), metadef tags with X-OpenStack-Append, the /v2/cache API and
the conversion."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functional.conftest import Cloud, free_port, personas, start_cloud, stop_cloud, unique, wait_for
from tests.unit.test_image_formats import needs_tools, sample

CAP = 16 << 20
MIB = 1 << 20
FILES: dict[str, bytes] = {}  # what the loopback server serves, by path


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.startswith("/redirect-out"):  # to a host that is not allowed
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.2:{self.server.server_port}/small.raw")
            self.end_headers()
            return
        if self.path.startswith("/redirect-in"):
            self.send_response(302)
            self.send_header("Location", "/small.raw")
            self.end_headers()
            return
        data = FILES.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        slow = self.path.startswith("/slow")
        for i in range(0, len(data), MIB):  # the slow file: 1 MiB every 0.5 s (progress shows)
            self.wfile.write(data[i:i + MIB])
            self.wfile.flush()
            if slow:
                time.sleep(0.5)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, server: str) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("image-import"), "sqlite", {
        "CUMULO_SERVICES": "identity,image", "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false",
        "CUMULO_IMAGE__STORES": "file,cheap", "CUMULO_IMAGE__WEB_DOWNLOAD_ALLOWED": f"{server}/",
        "CUMULO_IMAGE__IMAGE_SIZE_CAP": str(CAP), "CUMULO_IMAGE__IMPORT_CONVERT_TO": "raw"})
    yield c
    stop_cloud(c)


@pytest.fixture(scope="module")
def admin(cloud: Cloud) -> str:
    return cloud.token()[0]


@pytest.fixture(scope="module")
def people(cloud: Cloud) -> dict[str, tuple[str, str]]:
    return personas(cloud, "imgimport")


def h(token: str, **extra: str) -> dict[str, str]:
    return {"X-Auth-Token": token, **extra}


def create(cloud: Cloud, token: str, **attrs: object) -> dict:
    body = {"name": unique("imp"), "disk_format": "raw", "container_format": "bare", **attrs}
    r = httpx.post(f"{cloud.image_url}/v2/images", headers=h(token), json=body)
    assert r.status_code == 201, r.text
    return r.json()


def show(cloud: Cloud, token: str, image_id: str) -> dict:
    return httpx.get(f"{cloud.image_url}/v2/images/{image_id}", headers=h(token)).json()


def do_import(cloud: Cloud, token: str, image_id: str, body: dict, **headers: str) -> httpx.Response:
    return httpx.post(f"{cloud.image_url}/v2/images/{image_id}/import", headers=h(token, **headers), json=body)


def tasks_of(cloud: Cloud, token: str, image_id: str) -> list[dict]:
    return httpx.get(f"{cloud.image_url}/v2/images/{image_id}/tasks", headers=h(token)).json()["tasks"]


def ended(cloud: Cloud, token: str, image_id: str) -> dict:
    """The image's last task, once it has ended."""
    return wait_for(lambda: next((t for t in tasks_of(cloud, token, image_id)[-1:]
                                  if t["status"] in ("success", "failure")), None), 30, "the import task to end")


def active_image(cloud: Cloud, token: str, data: bytes, **attrs: object) -> dict:
    img = create(cloud, token, **attrs)
    r = httpx.put(f"{cloud.image_url}/v2/images/{img['id']}/file", content=data,
                  headers=h(token, **{"Content-Type": "application/octet-stream"}))
    assert r.status_code == 204, r.text
    return show(cloud, token, img["id"])


def in_store(cloud: Cloud, store: str, image_id: str) -> bool:
    folder = cloud.state_dir / ("images" if store == "file" else f"images-{store}")
    return (folder / image_id).is_file()


def test_discovery_lists_the_methods_and_the_two_stores(cloud: Cloud, admin: str, people) -> None:  # type: ignore[no-untyped-def]
    for token in (admin, people["reader"][0], people["other"][0]):
        r = httpx.get(f"{cloud.image_url}/v2/info/import", headers=h(token))
        assert r.json()["import-methods"]["value"] == ["glance-direct", "web-download", "copy-image"]
        stores = httpx.get(f"{cloud.image_url}/v2/info/stores", headers=h(token)).json()["stores"]
        assert [(s["id"], s.get("default")) for s in stores] == [("file", "true"), ("cheap", None)]
    r = httpx.post(f"{cloud.image_url}/v2/images", headers=h(people["member"][0]), json={"name": "x"})
    assert r.headers["OpenStack-image-import-methods"] == "glance-direct,web-download,copy-image"
    assert r.headers["OpenStack-image-store-ids"] == "file,cheap"
    detail = httpx.get(f"{cloud.image_url}/v2/info/stores/detail", headers=h(admin))
    assert detail.status_code == 200 and {s["type"] for s in detail.json()["stores"]} == {"file"}
    assert httpx.get(f"{cloud.image_url}/v2/info/stores/detail", headers=h(people["member"][0])).status_code == 403


def test_web_download_with_the_sdk_shows_progress_and_lands_in_the_default_store(cloud: Cloud, server: str,
                                                                                  people) -> None:  # type: ignore[no-untyped-def]
    token, _ = people["member"]
    data = os.urandom(3 * MIB + 12345)
    FILES["/slow.raw"] = data
    img = create(cloud, token)
    conn = cloud.sdk()
    conn.image.import_image(conn.image.get_image(img["id"]), method="web-download",
                            uri=f"{server}/slow.raw")  # as the admin
    seen: list[str] = []

    def done() -> bool:
        task = tasks_of(cloud, token, img["id"])[-1]
        if task["status"] == "processing":
            seen.append(task["message"])
        return task["status"] in ("success", "failure")

    wait_for(done, 30, "the web-download")
    task = tasks_of(cloud, token, img["id"])[-1]
    assert task["status"] == "success", task
    assert any(m.startswith("Copied ") and m != "Copied 0 MiB" for m in seen), seen  # progress while it ran
    assert task["input"]["import_req"]["method"] == {"name": "web-download", "uri": f"{server}/slow.raw"}
    after = show(cloud, token, img["id"])
    assert after["status"] == "active" and after["stores"] == "file" and after["size"] == len(data)
    assert after["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert after["os_glance_importing_to_stores"] == "" and after["os_glance_failed_import"] == ""
    got = httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/file", headers=h(token))
    assert got.content == data
    # a redirect to an allowed URL is followed
    FILES["/small.raw"] = b"s" * 4096
    other = create(cloud, token)
    assert do_import(cloud, token, other["id"], {"method": {"name": "web-download",
                                                            "uri": f"{server}/redirect-in"}}).status_code == 202
    assert ended(cloud, token, other["id"])["status"] == "success"
    assert httpx.get(f"{cloud.image_url}/v2/images/{other['id']}/file", headers=h(token)).content == b"s" * 4096


def test_web_download_only_from_allowed_urls_and_within_the_size_cap(cloud: Cloud, server: str,
                                                                     people) -> None:  # type: ignore[no-untyped-def]
    token, _ = people["member"]
    img = create(cloud, token)
    port = server.rsplit(":", 1)[1]
    for uri in (f"http://127.0.0.2:{port}/small.raw", "file:///etc/passwd", f"{server}.example.org/x",
                "http://127.0.0.1:1/small.raw", f"ftp://127.0.0.1:{port}/small.raw"):
        r = do_import(cloud, token, img["id"], {"method": {"name": "web-download", "uri": uri}})
        assert r.status_code == 400 and "does not pass filtering" in r.text, (uri, r.text)
    assert show(cloud, token, img["id"])["status"] == "queued" and tasks_of(cloud, token, img["id"]) == []
    # a redirect out of the allowed URLs fails the task; the image is queued again
    assert do_import(cloud, token, img["id"], {"method": {"name": "web-download",
                                                          "uri": f"{server}/redirect-out"}}).status_code == 202
    task = ended(cloud, token, img["id"])
    assert task["status"] == "failure" and "not an allowed URL" in task["message"]
    after = show(cloud, token, img["id"])
    assert after["status"] == "queued" and after["os_glance_failed_import"] == "file"
    # more than the image size cap: cut off, nothing kept
    FILES["/big.raw"] = b"\0" * (CAP + MIB)
    assert do_import(cloud, token, img["id"], {"method": {"name": "web-download",
                                                          "uri": f"{server}/big.raw"}}).status_code == 202
    task = wait_for(lambda: next((t for t in tasks_of(cloud, token, img["id"])[1:]
                                  if t["status"] != "processing"), None), 30, "the second task")
    assert task["status"] == "failure" and f"larger than the {CAP} bytes" in task["message"]
    assert show(cloud, token, img["id"])["status"] == "queued"
    assert not any(p.name == img["id"] for p in (cloud.state_dir / "images").rglob("*"))
    # web-download needs a queued image, a uri, and the image's owner
    assert do_import(cloud, token, img["id"], {"method": {"name": "web-download"}}).status_code == 400
    active = active_image(cloud, token, b"a" * 1024)
    r = do_import(cloud, token, active["id"], {"method": {"name": "web-download", "uri": f"{server}/small.raw"}})
    assert r.status_code == 409
    r = do_import(cloud, people["reader"][0], img["id"], {"method": {"name": "web-download",
                                                                    "uri": f"{server}/small.raw"}})
    assert r.status_code == 403
    r = do_import(cloud, people["other"][0], img["id"], {"method": {"name": "web-download",
                                                                   "uri": f"{server}/small.raw"}})
    assert r.status_code == 404  # another project's private image


def test_copy_image_into_the_second_store_and_delete_one_copy(cloud: Cloud, admin: str, people) -> None:  # type: ignore[no-untyped-def]
    member = people["member"][0]
    data = os.urandom(300_000)
    img = active_image(cloud, member, data)
    assert img["stores"] == "file" and in_store(cloud, "file", img["id"])
    copy = {"method": {"name": "copy-image"}, "stores": ["cheap"]}
    for persona in ("member", "reader"):  # copy_image is an admin's (Glance's default)
        assert do_import(cloud, people[persona][0], img["id"], copy).status_code == 403
    assert do_import(cloud, people["other"][0], img["id"], copy).status_code == 404
    r = do_import(cloud, admin, img["id"], {"method": {"name": "copy-image"}, "stores": ["nowhere"]})
    assert r.status_code == 409 and "nowhere" in r.text
    assert do_import(cloud, admin, img["id"], copy).status_code == 202
    wait_for(lambda: show(cloud, admin, img["id"]).get("os_glance_importing_to_stores") == "", 30, "the copy")
    after = show(cloud, member, img["id"])
    assert after["stores"] == "cheap,file" and after["os_glance_failed_import"] == "" and after["status"] == "active"
    assert in_store(cloud, "cheap", img["id"])
    assert (cloud.state_dir / "images-cheap" / img["id"]).read_bytes() == data
    r = do_import(cloud, admin, img["id"], copy)
    assert r.status_code == 400 and "already present at store 'cheap'" in r.text
    # all_stores: nothing left to copy, so nothing is done
    assert do_import(cloud, admin, img["id"], {"method": {"name": "copy-image"}, "all_stores": True}).status_code == 202
    # DELETE /v2/stores/{store}/{image}: an admin's; never the last copy
    url = f"{cloud.image_url}/v2/stores/cheap/{img['id']}"
    for persona in ("member", "reader"):
        assert httpx.delete(url, headers=h(people[persona][0])).status_code == 403
    assert httpx.delete(url, headers=h(people["other"][0])).status_code == 404
    assert httpx.delete(f"{cloud.image_url}/v2/stores/nowhere/{img['id']}", headers=h(admin)).status_code == 409
    assert httpx.delete(url, headers=h(admin)).status_code == 204
    assert show(cloud, admin, img["id"])["stores"] == "file" and not in_store(cloud, "cheap", img["id"])
    assert httpx.delete(url, headers=h(admin)).status_code == 404
    r = httpx.delete(f"{cloud.image_url}/v2/stores/file/{img['id']}", headers=h(admin))
    assert r.status_code == 403 and "only store" in r.text
    assert httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/file", headers=h(member)).content == data
    # a queued image cannot be copied
    queued = create(cloud, member)
    assert do_import(cloud, admin, queued["id"], copy).status_code == 409


def test_glance_direct_into_a_chosen_store(cloud: Cloud, people) -> None:  # type: ignore[no-untyped-def]
    token = people["member"][0]
    for how, body, headers, stores in (
            ("header", {"method": {"name": "glance-direct"}}, {"X-Image-Meta-Store": "cheap"}, "cheap"),
            ("all", {"method": {"name": "glance-direct"}, "all_stores": True}, {}, "cheap,file")):
        img = create(cloud, token)
        data = how.encode() * 5000
        r = httpx.put(f"{cloud.image_url}/v2/images/{img['id']}/stage", content=data,
                      headers=h(token, **{"Content-Type": "application/octet-stream"}))
        assert r.status_code == 204
        bad = do_import(cloud, token, img["id"], {**body, "stores": ["file"]}, **headers)
        assert bad.status_code == 400  # stores with the header or all_stores
        assert do_import(cloud, token, img["id"], body, **headers).status_code == 202
        assert ended(cloud, token, img["id"])["status"] == "success"
        after = show(cloud, token, img["id"])
        assert after["stores"] == stores and after["status"] == "active"
        assert all(in_store(cloud, s, img["id"]) for s in stores.split(","))
        assert httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/file", headers=h(token)).content == data
    # a plain upload goes to the store X-Image-Meta-Store names (a store that does not exist: 400)
    img = create(cloud, token)
    upload = {"Content-Type": "application/octet-stream"}
    r = httpx.put(f"{cloud.image_url}/v2/images/{img['id']}/file", content=b"u" * 999,
                  headers=h(token, **upload, **{"X-Image-Meta-Store": "nowhere"}))
    assert r.status_code == 400 and show(cloud, token, img["id"])["status"] == "queued"
    r = httpx.put(f"{cloud.image_url}/v2/images/{img['id']}/file", content=b"u" * 999,
                  headers=h(token, **upload, **{"X-Image-Meta-Store": "cheap"}))
    assert r.status_code == 204 and show(cloud, token, img["id"])["stores"] == "cheap"
    assert in_store(cloud, "cheap", img["id"]) and not in_store(cloud, "file", img["id"])
    assert httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/file", headers=h(token)).content == b"u" * 999


def test_tasks_list_for_admins_with_filters_paging_and_the_cli(cloud: Cloud, admin: str, people) -> None:  # type: ignore[no-untyped-def]
    token = people["member"][0]
    for _ in range(2):  # two tasks at least, for the paging
        img = create(cloud, token)
        httpx.put(f"{cloud.image_url}/v2/images/{img['id']}/stage", content=b"t" * 1000,
                  headers=h(token, **{"Content-Type": "application/octet-stream"}))
        assert do_import(cloud, token, img["id"], {"method": {"name": "glance-direct"}}).status_code == 202
        task = ended(cloud, token, img["id"])
    base = f"{cloud.image_url}/v2/tasks"
    r = httpx.get(base, headers=h(admin))
    assert r.status_code == 200 and r.json()["schema"] == "/v2/schemas/tasks"
    listed = r.json()["tasks"]
    assert task["id"] in [t["id"] for t in listed]
    assert set(listed[0]) == {"id", "type", "status", "owner", "created_at", "updated_at", "self", "schema"}
    shown = httpx.get(f"{base}/{task['id']}", headers=h(admin)).json()
    assert shown["image_id"] == img["id"] and shown["result"] == {"image_id": img["id"]}
    assert shown["type"] == "api_image_import" and shown["status"] == "success"
    ok = httpx.get(base, headers=h(admin), params={"status": "success"}).json()["tasks"]
    assert ok and all(t["status"] == "success" for t in ok)
    failed = httpx.get(base, headers=h(admin), params={"status": "failure"}).json()["tasks"]
    assert task["id"] not in [t["id"] for t in failed]
    page = httpx.get(base, headers=h(admin), params={"limit": 1, "sort_dir": "asc"}).json()
    assert len(page["tasks"]) == 1 and "marker=" in page["next"]
    second = httpx.get(f"{cloud.image_url}{page['next']}", headers=h(admin)).json()["tasks"]
    assert second and second[0]["id"] != page["tasks"][0]["id"]
    for params in ({"sort_key": "bogus"}, {"sort_dir": "up"}, {"status": "done"}, {"limit": "x"},
                   {"marker": "not-a-uuid"}, {"owner": "x"}):
        assert httpx.get(base, headers=h(admin), params=params).status_code == 400, params
    for persona in ("member", "reader", "other"):  # tasks_api_access: an admin's
        assert httpx.get(base, headers=h(people[persona][0])).status_code == 403
        assert httpx.get(f"{base}/{task['id']}", headers=h(people[persona][0])).status_code == 403
    out = json.loads(cloud.cli("image", "task", "list", "-f", "json").stdout)
    assert task["id"] in [t["ID"] for t in out]
    one = json.loads(cloud.cli("image", "task", "show", task["id"], "-f", "json").stdout)
    assert one["status"] == "success"


def test_metadef_tags_replace_or_append(cloud: Cloud, admin: str, people) -> None:  # type: ignore[no-untyped-def]
    ns = unique("ns")
    assert httpx.post(f"{cloud.image_url}/v2/metadefs/namespaces", headers=h(admin),
                      json={"namespace": ns, "visibility": "public"}).status_code == 201
    url = f"{cloud.image_url}/v2/metadefs/namespaces/{ns}/tags"

    def names() -> list[str]:
        return sorted(t["name"] for t in httpx.get(url, headers=h(people["reader"][0])).json()["tags"])

    assert httpx.post(url, headers=h(admin), json={"tags": [{"name": "a"}, {"name": "b"}]}).status_code == 201
    assert httpx.post(url, headers=h(admin), json={"tags": [{"name": "c"}]}).status_code == 201
    assert names() == ["c"]  # replaced
    r = httpx.post(url, headers=h(admin, **{"X-OpenStack-Append": "True"}), json={"tags": [{"name": "d"}]})
    assert r.status_code == 201 and [t["name"] for t in r.json()["tags"]] == ["d"]
    assert names() == ["c", "d"]  # appended
    r = httpx.post(url, headers=h(admin, **{"X-OpenStack-Append": "true"}), json={"tags": [{"name": "c"}]})
    assert r.status_code == 409 and names() == ["c", "d"]
    r = httpx.post(url, headers=h(admin), json={"tags": "nope"})
    assert r.status_code == 400 and names() == ["c", "d"]  # a bad body replaces nothing
    for persona in ("member", "reader", "other"):
        r = httpx.post(url, headers=h(people[persona][0], **{"X-OpenStack-Append": "true"}),
                       json={"tags": [{"name": "e"}]})
        assert r.status_code == 403
    assert names() == ["c", "d"]


def test_cache_api_queues_caches_serves_and_clears(cloud: Cloud, admin: str, people) -> None:  # type: ignore[no-untyped-def]
    member = people["member"][0]
    data = os.urandom(200_000)
    img = active_image(cloud, member, data)
    base = f"{cloud.image_url}/v2/cache"
    for persona in ("member", "reader", "other"):  # the cache is an admin's
        t = people[persona][0]
        assert httpx.get(base, headers=h(t)).status_code == 403
        assert httpx.put(f"{base}/{img['id']}", headers=h(t)).status_code in (403, 404)
        assert httpx.delete(f"{base}/{img['id']}", headers=h(t)).status_code in (403, 404)
        assert httpx.delete(base, headers=h(t)).status_code == 403
    assert httpx.put(f"{base}/{unique('none')}", headers=h(admin)).status_code == 404
    assert httpx.put(f"{base}/{create(cloud, member)['id']}", headers=h(admin)).status_code == 400  # queued
    assert httpx.put(f"{base}/{img['id']}", headers=h(admin)).status_code == 202

    def cached() -> dict | None:
        return next((e for e in httpx.get(base, headers=h(admin)).json()["cached_images"]
                     if e["image_id"] == img["id"]), None)

    entry = wait_for(cached, 20, "the image to be cached")
    assert entry["size"] == len(data) and entry["hits"] == 0
    assert (cloud.state_dir / "image-cache" / img["id"]).read_bytes() == data
    assert httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/file", headers=h(member)).content == data
    assert cached()["hits"] == 1  # served from the cache
    assert httpx.delete(base, headers=h(admin, **{"x-image-cache-clear-target": "bogus"})).status_code == 400
    assert httpx.delete(f"{base}/{img['id']}", headers=h(admin)).status_code == 204
    assert cached() is None and not (cloud.state_dir / "image-cache" / img["id"]).exists()
    assert httpx.delete(f"{base}/{unique('none')}", headers=h(admin)).status_code == 404
    assert httpx.put(f"{base}/{img['id']}", headers=h(admin)).status_code == 202
    wait_for(cached, 20, "the image to be cached again")
    assert httpx.delete(base, headers=h(admin)).status_code == 204
    body = httpx.get(base, headers=h(admin)).json()
    assert body == {"cached_images": [], "queued_images": []}
    assert httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/file", headers=h(member)).content == data


@needs_tools
def test_qcow2_is_converted_to_raw_on_import(cloud: Cloud, people, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    token = people["member"][0]
    path, disk_format = sample("standard-qcow2v3.qcow2", tmp_path)
    assert disk_format == "qcow2"
    img = create(cloud, token, disk_format="qcow2")
    r = httpx.put(f"{cloud.image_url}/v2/images/{img['id']}/stage", content=path.read_bytes(),
                  headers=h(token, **{"Content-Type": "application/octet-stream"}))
    assert r.status_code == 204
    assert do_import(cloud, token, img["id"], {"method": {"name": "glance-direct"}}).status_code == 202
    assert ended(cloud, token, img["id"])["status"] == "success"
    after = show(cloud, token, img["id"])
    assert after["disk_format"] == "raw" and after["size"] == 10 * MIB and after["virtual_size"] == 10 * MIB
    data = httpx.get(f"{cloud.image_url}/v2/images/{img['id']}/file", headers=h(token)).content
    assert len(data) == 10 * MIB and not data.startswith(b"QFI\xfb")
    # unsafe qcow2 is refused before qemu-img ever reads it
    bad, _ = sample("qcow-with-backing.qcow2", tmp_path / "bad")
    img = create(cloud, token, disk_format="qcow2")
    httpx.put(f"{cloud.image_url}/v2/images/{img['id']}/stage", content=bad.read_bytes(),
              headers=h(token, **{"Content-Type": "application/octet-stream"}))
    assert do_import(cloud, token, img["id"], {"method": {"name": "glance-direct"}}).status_code == 202
    assert ended(cloud, token, img["id"])["status"] == "failure"
    assert show(cloud, token, img["id"])["status"] == "queued"


def test_the_cli_imports_copies_and_manages_the_cache(cloud: Cloud, tmp_path: Path) -> None:
    stores = json.loads(cloud.cli("image", "stores", "list", "-f", "json").stdout)
    assert sorted(s["ID"] for s in stores) == ["cheap", "file"]
    data = os.urandom(150_000)
    src = tmp_path / "cli.raw"
    src.write_bytes(data)
    name = unique("cli-import")
    cloud.cli("image", "create", "--import", "--file", str(src), "--disk-format", "raw", "--container-format",
              "bare", name)
    token = cloud.token()[0]
    image_id = httpx.get(f"{cloud.image_url}/v2/images", headers=h(token), params={"name": name}).json()[
        "images"][0]["id"]
    wait_for(lambda: show(cloud, token, image_id)["status"] == "active", 30, "the glance-direct import")
    assert tasks_of(cloud, token, image_id)[-1]["input"]["import_req"]["method"]["name"] == "glance-direct"
    cloud.cli("image", "import", name, "--method", "copy-image", "--store", "cheap")
    wait_for(lambda: show(cloud, token, image_id).get("stores") == "cheap,file", 30, "the copy")
    assert (cloud.state_dir / "images-cheap" / image_id).read_bytes() == data
    cloud.cli("cached", "image", "queue", image_id)

    def cache() -> dict:
        return httpx.get(f"{cloud.image_url}/v2/cache", headers=h(token)).json()

    wait_for(lambda: image_id in [e["image_id"] for e in cache()["cached_images"]], 20, "the cached image")
    cloud.cli("cached", "image", "delete", image_id)
    assert cache()["cached_images"] == []
    httpx.put(f"{cloud.image_url}/v2/cache/{image_id}", headers=h(token))
    wait_for(lambda: cache()["cached_images"], 20, "cached again")
    cloud.cli("cached", "image", "clear")
    assert cache() == {"cached_images": [], "queued_images": []}
