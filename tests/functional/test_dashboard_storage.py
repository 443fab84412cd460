"""The dashboard's storage and access pages against one real cloud (SQLite, fake nodes): volumes,
snapshots and backups; images with a streamed upload; key pairs, clouds.yaml, openrc and
application credentials; object containers with folders, paging, streamed upload and download and
the public toggle.  Every form's effect is read back through the APIs with the user's own token;
bad input comes back as the API's words beside the field (400); a reader sees and cannot write
(the API's 403 in words), another project's member sees nothing of this project's resources."""

from __future__ import annotations

import hashlib
import html
import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.functional.conftest import Cloud, Persona, make_people, start_cloud, stop_cloud, unique, wait_for
from tests.functional.dashboard_helpers import Browser

SERVICES = "identity,image,compute,placement,network,volume,object,dashboard"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def scloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("dash-storage"), "sqlite", {
        "CUMULO_SERVICES": SERVICES, "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false"})
    yield c
    stop_cloud(c)


class Apis:
    """One persona's plain HTTP to each service (a 5xx fails the test where it happens)."""

    def __init__(self, cloud: Cloud, p: Persona) -> None:
        self.cloud, self.p = cloud, p
        self.http = httpx.Client(timeout=60, headers={"X-Auth-Token": p.token})
        self.bases = {"volume": cloud.volume_url, "image": cloud.image_url, "compute": cloud.compute_url,
                      "identity": cloud.url, "object": f"{cloud.object_url}/v1/AUTH_{p.project_id}"}

    def __call__(self, method: str, service: str, path: str, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", {})
        if service == "volume":
            headers.setdefault("OpenStack-API-Version", "volume 3.60")
        if service == "compute":
            headers.setdefault("OpenStack-API-Version", "compute 2.79")
        r = self.http.request(method, self.bases[service] + path, headers=headers, **kw)
        assert r.status_code < 500, (method, path, r.status_code, r.text)
        return r

    def volume(self, volume_id: str) -> dict[str, Any]:
        return self("GET", "volume", f"/volumes/{volume_id}").json()["volume"]  # type: ignore[no-any-return]

    def wait(self, kind: str, item_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
        def check() -> Any:
            r = self("GET", "volume", f"/{kind}s/{item_id}")
            item = r.json()[kind] if r.status_code == 200 else {}
            assert item.get("status") != "error", item
            return item if item.get("status") == status else None
        return wait_for(check, timeout, f"{kind} {item_id} to be {status}")  # type: ignore[return-value]

    def gone(self, service: str, path: str, timeout: float = 30) -> None:
        wait_for(lambda: self("GET", service, path).status_code == 404, timeout, f"{path} to be gone")


@pytest.fixture(scope="module")
def people(scloud: Cloud) -> dict[str, Persona]:
    """P's member and reader, Q's member; P may have 50 volumes of 60 GiB in all (the paging test's 21)."""
    out = make_people(scloud, "dsto")
    r = httpx.put(f"{scloud.volume_url}/os-quota-sets/{out['member'].project_id}", headers={
        "X-Auth-Token": scloud.token()[0]}, json={"quota_set": {"volumes": 50, "gigabytes": 60}})
    assert r.status_code == 200, r.text
    return out


@pytest.fixture(scope="module")
def apis(scloud: Cloud, people: dict[str, Persona]) -> dict[str, Apis]:
    return {name: Apis(scloud, p) for name, p in people.items()}


@pytest.fixture(scope="module")
def browsers(scloud: Cloud, people: dict[str, Persona]) -> Iterator[dict[str, Browser]]:
    out = {}
    for name, p in people.items():
        b = Browser(scloud)
        b.login(p.user_name, p.password, p.project_name)
        out[name] = b
    yield out
    for b in out.values():
        b.close()


def field_error(page: str, field: str) -> str:
    m = re.search(rf'class="field-error" data-field="{field}"[^>]*>(.*?)</span>', page, re.S)
    return html.unescape(m.group(1).strip()) if m else ""


def api_words(r: httpx.Response) -> str:
    """The message of a fault, as the dashboard's client reads it."""
    from cumulo.dashboard.client import fault_message

    return fault_message(r.status_code, r.content)


def post_raw(b: Browser, path: str, data: bytes, **headers: str) -> httpx.Response:
    return b.http.post(path, content=data, headers={"X-CSRF-Token": b.csrf, "X-Requested-With": "cumulo",
                                                    "Content-Type": "application/octet-stream", **headers})


def active_image(api: Apis, data: bytes, **body: Any) -> str:
    r = api("POST", "image", "/v2/images", json={"name": unique("img"), "disk_format": "raw",
                                                 "container_format": "bare", **body})
    assert r.status_code == 201, r.text
    image_id = r.json()["id"]
    r = api("PUT", "image", f"/v2/images/{image_id}/file", content=data,
            headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    wait_for(lambda: api("GET", "image", f"/v2/images/{image_id}").json()["status"] == "active", 30, "image active")
    return str(image_id)


# volumes, snapshots, backups

def test_a_member_creates_extends_edits_snapshots_backs_up_restores_and_deletes_a_volume(
        browsers: dict[str, Browser], apis: dict[str, Apis]) -> None:
    b, api = browsers["member"], apis["member"]
    page = b.page("/project/volumes/create")
    assert page.status_code == 200 and 'name="size"' in page.text and "__DEFAULT__" in page.text  # the types
    name = unique("vol")
    r = b.post("/project/volumes/create", {"name": name, "description": "first", "size": "1", "source": "empty"})
    assert b.flash(r).startswith(f"Creating volume {name}")
    vol = [v for v in api("GET", "volume", "/volumes/detail").json()["volumes"] if v["name"] == name][0]
    api.wait("volume", vol["id"], "available")
    listing = b.page("/project/volumes")
    assert f'id="row-volume-{vol["id"]}"' in listing.text and name in listing.text
    assert 'data-fragment-template="/project/volumes/{id}/row"' in listing.text
    row = b.page(f"/project/volumes/{vol['id']}/row")
    assert row.status_code == 200 and "available" in row.text and row.text.lstrip().startswith("<tr")

    here = f"/project/volumes/{vol['id']}"
    assert b.page(here).status_code == 200
    renamed = unique("renamed")
    assert b.flash(b.post(f"{here}/edit", {"name": renamed, "description": "second"})).startswith("Saved")
    assert (api.volume(vol["id"])["name"], api.volume(vol["id"])["description"]) == (renamed, "second")
    assert "Extending" in b.flash(b.post(f"{here}/extend", {"new_size": "2"}))
    wait_for(lambda: api.volume(vol["id"])["size"] == 2 and api.volume(vol["id"])["status"] == "available", 30,
             "the volume extended")

    snap_name = unique("snap")
    assert "snapshot" in b.flash(b.post(f"{here}/snapshot", {"name": snap_name}))
    snap = [s for s in api("GET", "volume", "/snapshots/detail").json()["snapshots"] if s["name"] == snap_name][0]
    api.wait("snapshot", snap["id"], "available")
    snaps = b.page("/project/volumes/snapshots")
    assert snap_name in snaps.text and f'id="row-snapshot-{snap["id"]}"' in snaps.text
    assert snap_name in b.page(here).text

    from_snap = unique("fromsnap")
    r = b.post("/project/volumes/create", {"name": from_snap, "source": "snapshot", "snapshot_id": snap["id"]})
    assert b.flash(r).startswith("Creating volume")
    made = [v for v in api("GET", "volume", "/volumes/detail").json()["volumes"] if v["name"] == from_snap][0]
    assert made["snapshot_id"] == snap["id"] and made["size"] == 2

    backup_name = unique("bk")
    assert "Backing" in b.flash(b.post(f"{here}/backup", {"name": backup_name}))
    backup = [x for x in api("GET", "volume", "/backups/detail").json()["backups"] if x["name"] == backup_name][0]
    api.wait("backup", backup["id"], "available", 60)
    backups = b.page("/project/volumes/backups")
    assert backup_name in backups.text
    assert f'data-fragment="/project/volumes/backups/{backup["id"]}/row"' in backups.text
    restored = unique("restored")
    assert "Restoring into volume" in b.flash(b.post(f"/project/volumes/backups/{backup['id']}/restore",
                                                     {"name": restored}))
    new = [v for v in api("GET", "volume", "/volumes/detail").json()["volumes"] if v["name"] == restored][0]
    api.wait("volume", new["id"], "available", 60)
    api.wait("backup", backup["id"], "available", 60)

    assert "Deleting" in b.flash(b.post(f"/project/volumes/backups/{backup['id']}/delete"))
    api.gone("volume", f"/backups/{backup['id']}", 60)
    assert b.page(f"/project/volumes/backups/{backup['id']}/row").status_code == 404
    api.wait("volume", made["id"], "available")
    for v in (made["id"], new["id"]):
        b.post(f"/project/volumes/{v}/delete")
        api.gone("volume", f"/volumes/{v}")
    assert "Deleting" in b.flash(b.post(f"/project/volumes/snapshots/{snap['id']}/delete"))
    api.gone("volume", f"/snapshots/{snap['id']}")
    assert "Deleting" in b.flash(b.post(f"{here}/delete"))
    api.gone("volume", f"/volumes/{vol['id']}")
    assert b.page(f"/project/volumes/{vol['id']}/row").status_code == 404


def test_a_volume_from_an_image_and_the_list_pages(browsers: dict[str, Browser], apis: dict[str, Apis]) -> None:
    b, api = browsers["member"], apis["member"]
    image_id = active_image(api, os.urandom(MiB))
    assert image_id in b.page("/project/volumes/create").text
    names = [unique("paged") for _ in range(21)]
    for n in names[:20]:
        assert api("POST", "volume", "/volumes", json={"volume": {"name": n, "size": 1}}).status_code == 202
    r = b.post("/project/volumes/create", {"name": names[20], "size": "1", "source": "image", "image_id": image_id})
    assert b.flash(r).startswith("Creating volume")
    vol = [v for v in api("GET", "volume", "/volumes/detail").json()["volumes"] if v["name"] == names[20]][0]
    api.wait("volume", vol["id"], "available", 60)
    assert api.volume(vol["id"])["bootable"] == "true"
    first = b.page("/project/volumes")
    shown = [n for n in names if n in first.text]
    assert len(shown) == 20 and names[20] in shown  # newest first, 20 a page
    m = re.search(r'href="/project/volumes\?limit=20&marker=([0-9a-f-]+)">Next page', first.text)
    assert m, "no next page link"
    second = b.page("/project/volumes", limit="20", marker=m.group(1))
    assert [n for n in names if n in second.text] == [names[0]]


def test_bad_volume_input_shows_the_apis_words_beside_the_field(browsers: dict[str, Browser],
                                                                 apis: dict[str, Apis]) -> None:
    b, api = browsers["member"], apis["member"]
    b.page("/project/volumes/create")
    r = b.post("/project/volumes/create", {"name": "zero", "size": "0", "source": "empty"})
    direct = api("POST", "volume", "/volumes", json={"volume": {"name": "zero", "size": 0}})
    assert r.status_code == 400 and direct.status_code == 400
    assert field_error(r.text, "size") == api_words(direct)
    # over the project's quota of gigabytes (60)
    r = b.post("/project/volumes/create", {"name": "huge", "size": "500", "source": "empty"})
    direct = api("POST", "volume", "/volumes", json={"volume": {"name": "huge", "size": 500}})
    assert r.status_code == 400 and direct.status_code == 413
    assert field_error(r.text, "size") == api_words(direct) and "quota" in api_words(direct).lower()
    assert 'value="huge"' in r.text  # the form keeps what was typed
    r = b.post("/project/volumes/create", {"name": "x", "size": "one", "source": "empty"})
    assert r.status_code == 400 and field_error(r.text, "size")
    assert not [v for v in api("GET", "volume", "/volumes/detail").json()["volumes"] if v["name"] in ("zero", "huge")]


def test_a_reader_sees_volumes_without_forms_and_a_forced_post_gets_the_apis_403(
        browsers: dict[str, Browser], apis: dict[str, Apis]) -> None:
    member, reader = apis["member"], apis["reader"]
    name = unique("shown")
    vol = member("POST", "volume", "/volumes", json={"volume": {"name": name, "size": 1}}).json()["volume"]
    member.wait("volume", vol["id"], "available")
    rb = browsers["reader"]
    listing = rb.page("/project/volumes")
    assert listing.status_code == 200 and name in listing.text and "/project/volumes/create" not in listing.text
    detail = rb.page(f"/project/volumes/{vol['id']}")
    assert detail.status_code == 200 and name in detail.text and f"/project/volumes/{vol['id']}/edit" not in detail.text
    r = rb.post("/project/volumes/create", {"name": "nope", "size": "1", "source": "empty"})
    direct = reader("POST", "volume", "/volumes", json={"volume": {"name": "nope", "size": 1}})
    assert r.status_code == direct.status_code == 403
    assert api_words(direct) in html.unescape(r.text)
    r = rb.post(f"/project/volumes/{vol['id']}/delete")
    assert r.status_code == 403 and member.volume(vol["id"])["status"] == "available"
    snap = member("POST", "volume", "/snapshots", json={"snapshot": {"volume_id": vol["id"], "name": unique("rs")}})
    snap_id = snap.json()["snapshot"]["id"]
    member.wait("snapshot", snap_id, "available")
    page = rb.page("/project/volumes/snapshots")
    assert snap.json()["snapshot"]["name"] in page.text
    assert f"/project/volumes/snapshots/{snap_id}/delete" not in page.text
    r = rb.post(f"/project/volumes/snapshots/{snap_id}/delete")
    direct = reader("DELETE", "volume", f"/snapshots/{snap_id}")
    assert r.status_code == direct.status_code == 403 and api_words(direct) in html.unescape(r.text)
    member.wait("snapshot", snap_id, "available")
    assert browsers["other"].page(f"/project/volumes/snapshots/{snap_id}/row").status_code == 404
    assert snap.json()["snapshot"]["name"] not in browsers["other"].page("/project/volumes/snapshots").text


def test_another_projects_member_gets_nothing_of_this_projects_volumes(
        browsers: dict[str, Browser], apis: dict[str, Apis]) -> None:
    member = apis["member"]
    name = unique("mine")
    vol = member("POST", "volume", "/volumes", json={"volume": {"name": name, "size": 1}}).json()["volume"]
    member.wait("volume", vol["id"], "available")
    ob = browsers["other"]
    assert name not in ob.page("/project/volumes").text
    assert ob.page(f"/project/volumes/{vol['id']}").status_code == 404
    assert ob.page(f"/project/volumes/{vol['id']}/row").status_code == 404
    r = ob.post(f"/project/volumes/{vol['id']}/delete")
    assert r.status_code == 404 and member.volume(vol["id"])["status"] == "available"


# images

def test_an_image_upload_streams_the_file_and_the_image_becomes_active_with_its_checksum(
        browsers: dict[str, Browser], apis: dict[str, Apis]) -> None:
    b, api = browsers["member"], apis["member"]
    page = b.page("/project/images/create")
    assert page.status_code == 200 and "/static/images.js" in page.text and "data-upload-progress" in page.text
    name = unique("upload")
    r = b.http.post("/project/images/create", data={"name": name, "disk_format": "raw", "container_format": "bare",
                                                    "visibility": "private"},
                    headers={"X-CSRF-Token": b.csrf, "X-Requested-With": "cumulo"})
    assert r.status_code == 201, r.text
    image_id = r.json()["id"]
    assert r.json()["upload"] == f"/project/images/{image_id}/upload"
    data = os.urandom(5 * MiB + 123)

    def chunks() -> Iterator[bytes]:
        """The rest is sent only once Glance is taking the data: a dashboard that held the whole
        body before passing it on would never see the rest (and the wait would time out)."""
        yield data[:MiB]
        wait_for(lambda: api("GET", "image", f"/v2/images/{image_id}").json()["status"] == "saving", 20,
                 "Glance to be receiving the data while the browser still sends it")
        for i in range(MiB, len(data), 256 * 1024):
            yield data[i:i + 256 * 1024]

    r = b.http.post(r.json()["upload"], content=chunks(), headers={
        "X-CSRF-Token": b.csrf, "X-Requested-With": "cumulo", "Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    image = wait_for(lambda: (i := api("GET", "image", f"/v2/images/{image_id}").json())["status"] == "active" and i,
                     30, "the image to be active")
    assert image["checksum"] == hashlib.md5(data).hexdigest() and image["size"] == len(data)  # type: ignore[index]
    assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()  # type: ignore[index]
    detail = b.page(f"/project/images/{image_id}")
    assert name in detail.text and hashlib.md5(data).hexdigest() in detail.text and "active" in detail.text
    listing = b.page("/project/images")
    assert f'id="row-image-{image_id}"' in listing.text and name in listing.text
    assert b.page(f"/project/images/{image_id}/row").status_code == 200
    # a second upload into an active image: Glance's refusal, in words
    r = post_raw(b, f"/project/images/{image_id}/upload", b"again")
    assert r.status_code in (400, 409) and r.json()["error"]


def test_a_member_edits_shares_and_deletes_an_image(browsers: dict[str, Browser], apis: dict[str, Apis],
                                                     people: dict[str, Persona]) -> None:
    b, api = browsers["member"], apis["member"]
    r = b.post("/project/images/create", {"name": unique("rec"), "disk_format": "qcow2", "container_format": "bare",
                                          "visibility": "private"})
    assert r.status_code == 303 and "upload its data" in b.flash(r)
    image_id = r.headers["location"].rsplit("/", 1)[1]
    here = f"/project/images/{image_id}"
    assert 'data-upload-url="' in b.page(here).text  # queued: the page offers the upload
    new_name = unique("edited")
    r = b.post(f"{here}/edit", {"name": new_name, "visibility": "shared", "min_disk": "2", "min_ram": "64"})
    assert b.flash(r) == "Saved the image."
    image = api("GET", "image", f"/v2/images/{image_id}").json()
    assert (image["name"], image["visibility"], image["min_disk"], image["min_ram"], image["protected"]) == (
        new_name, "shared", 2, 64, False)
    other_project = people["other"].project_id
    assert other_project in b.flash(b.post(f"{here}/share", {"member": other_project}))
    members = api("GET", "image", f"/v2/images/{image_id}/members").json()["members"]
    assert [m["member_id"] for m in members] == [other_project]
    assert other_project in b.page(here).text
    r = b.post(f"{here}/share", {"member": other_project})  # already a member: Glance's 409 beside the form
    assert r.status_code == 400 and field_error(r.text, "share")
    b.post(f"{here}/unshare", {"member": other_project})
    assert api("GET", "image", f"/v2/images/{image_id}/members").json()["members"] == []
    r = b.post(f"{here}/edit", {"name": new_name, "min_disk": "many"})
    assert r.status_code == 400 and field_error(r.text, "edit")
    assert b.flash(b.post(f"{here}/delete")) == "Deleted the image."
    assert api("GET", "image", f"/v2/images/{image_id}").status_code == 404


def test_image_pages_for_the_reader_and_another_project(browsers: dict[str, Browser], apis: dict[str, Apis]) -> None:
    member, reader = apis["member"], apis["reader"]
    image_id = active_image(member, b"x" * 1000)
    name = member("GET", "image", f"/v2/images/{image_id}").json()["name"]
    rb, ob = browsers["reader"], browsers["other"]
    page = rb.page(f"/project/images/{image_id}")
    assert page.status_code == 200 and name in page.text and f"/project/images/{image_id}/delete" not in page.text
    assert name in rb.page("/project/images").text and "/project/images/create" not in rb.page("/project/images").text
    r = rb.post("/project/images/create", {"name": "nope", "disk_format": "raw", "container_format": "bare"})
    direct = reader("POST", "image", "/v2/images", json={"name": "nope", "disk_format": "raw",
                                                         "container_format": "bare"})
    assert r.status_code == direct.status_code == 403
    assert api_words(direct) in html.unescape(r.text)
    assert post_raw(rb, f"/project/images/{image_id}/upload", b"x").status_code == 403
    assert ob.page(f"/project/images/{image_id}").status_code == 404
    assert ob.page(f"/project/images/{image_id}/row").status_code == 404
    assert name not in ob.page("/project/images").text
    assert ob.post(f"/project/images/{image_id}/delete").status_code == 404
    assert member("GET", "image", f"/v2/images/{image_id}").status_code == 200


# key pairs and API access

def test_key_pairs_created_imported_refused_and_deleted(browsers: dict[str, Browser], apis: dict[str, Apis]) -> None:
    b, api = browsers["member"], apis["member"]
    assert b.page("/project/access/keypairs").status_code == 200
    name = unique("kp")
    r = b.post("/project/access/keypairs/create", {"name": name, "key_type": "ssh"})
    assert r.status_code == 200 and r.headers["content-disposition"] == f'attachment; filename="{name}.pem"'
    assert "PRIVATE KEY" in r.text
    kp = api("GET", "compute", f"/os-keypairs/{name}").json()["keypair"]
    page = b.page("/project/access/keypairs")
    assert name in page.text and kp["fingerprint"] in page.text and "PRIVATE KEY" not in page.text
    r = b.post("/project/access/keypairs/create", {"name": name, "key_type": "ssh"})
    direct = api("POST", "compute", "/os-keypairs", json={"keypair": {"name": name}})
    assert r.status_code == 400 and direct.status_code == 409 and field_error(r.text, "name") == api_words(direct)
    public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() + " me@here"
    imported = unique("imp")
    r = b.post("/project/access/keypairs/create", {"name": imported, "public_key": public})
    assert b.flash(r) == f"Imported key pair {imported}."
    assert api("GET", "compute", f"/os-keypairs/{imported}").json()["keypair"]["public_key"] == public
    assert public in b.page(f"/project/access/keypairs/{imported}").text
    r = b.post("/project/access/keypairs/create", {"name": unique("bad"), "public_key": "ssh-rsa notakey"})
    assert r.status_code == 400 and field_error(r.text, "public_key")
    for n in (name, imported):
        assert b.flash(b.post(f"/project/access/keypairs/{n}/delete")) == f"Deleted key pair {n}."
        assert api("GET", "compute", f"/os-keypairs/{n}").status_code == 404
    # key pairs are the user's: another user sees none of them
    assert imported not in browsers["other"].page("/project/access/keypairs").text
    assert browsers["reader"].page("/project/access/keypairs").status_code == 200
    assert 'action="/project/access/keypairs/create"' not in browsers["reader"].page("/project/access/keypairs").text


def test_clouds_yaml_and_openrc_name_this_user_and_project_and_hold_no_password(
        scloud: Cloud, browsers: dict[str, Browser], people: dict[str, Persona]) -> None:
    b, p = browsers["member"], people["member"]
    page = b.page("/project/access/api")
    assert page.status_code == 200 and scloud.volume_url in page.text and "object-store" in page.text
    r = b.page("/project/access/api/clouds.yaml")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    clouds = yaml.safe_load(r.text)["clouds"]
    (cloud,) = clouds.values()
    assert cloud["auth"]["auth_url"] == scloud.url and cloud["auth"]["username"] == p.user_name
    assert cloud["auth"]["project_id"] == p.project_id and "password" not in cloud["auth"]
    assert p.password not in r.text
    r = b.page("/project/access/api/openrc")
    assert r.status_code == 200 and f"export OS_AUTH_URL={scloud.url}" in r.text
    assert f"export OS_PROJECT_ID={p.project_id}" in r.text and "read -sr OS_PASSWORD_INPUT" in r.text
    assert p.password not in r.text
    assert b.page("/project/access/api/other").status_code == 404


def test_application_credentials_created_shown_once_and_deleted(
        scloud: Cloud, browsers: dict[str, Browser], apis: dict[str, Apis], people: dict[str, Persona]) -> None:
    b, api, p = browsers["member"], apis["member"], people["member"]
    b.page("/project/access/api")
    name = unique("ac")
    r = b.post("/project/access/credentials/create", {"name": name, "description": "for ci"})
    assert r.status_code == 201, r.text
    secret = html.unescape(re.search(r'<code class="secret">(.*?)</code>', r.text).group(1))  # type: ignore[union-attr]
    creds = api("GET", "identity", f"/users/{p.user_id}/application_credentials").json()["application_credentials"]
    (cred,) = [c for c in creds if c["name"] == name]
    token = httpx.post(f"{scloud.url}/auth/tokens", json={"auth": {"identity": {
        "methods": ["application_credential"], "application_credential": {"id": cred["id"], "secret": secret}}}})
    assert token.status_code == 201 and token.json()["token"]["project"]["id"] == p.project_id
    page = b.page("/project/access/api")
    assert name in page.text and secret not in page.text
    r = b.post("/project/access/credentials/create", {"name": name})
    direct = api("POST", "identity", f"/users/{p.user_id}/application_credentials",
                 json={"application_credential": {"name": name}})
    assert r.status_code == 400 and direct.status_code == 409 and api_words(direct) in html.unescape(r.text)
    r = b.post("/project/access/credentials/create", {"name": unique("ac"), "expires_at": "not a date"})
    assert r.status_code == 400 and field_error(r.text, "expires_at")
    assert b.flash(b.post(f"/project/access/credentials/{cred['id']}/delete")) == "Deleted the application credential."
    assert api("GET", "identity", f"/users/{p.user_id}/application_credentials/{cred['id']}").status_code == 404
    assert name not in browsers["other"].page("/project/access/api").text


# object containers

def test_containers_folders_paging_upload_download_public_and_delete(
        scloud: Cloud, browsers: dict[str, Browser], apis: dict[str, Apis]) -> None:
    b, api = browsers["member"], apis["member"]
    assert b.page("/project/containers").status_code == 200
    name = unique("box")
    r = b.post("/project/containers/create", {"name": name})
    assert b.flash(r) == f"Created container {name}."
    assert api("HEAD", "object", f"/{name}").status_code == 204
    assert name in b.page("/project/containers").text
    data = os.urandom(3 * MiB + 7)
    r = b.http.post(f"/project/containers/{name}/upload", params={"name": "docs/report.bin"},
                    content=iter([data[:MiB], data[MiB:]]), headers={
                        "X-CSRF-Token": b.csrf, "X-Requested-With": "cumulo", "Content-Type": "application/x-test"})
    assert r.status_code == 201 and r.json()["etag"] == hashlib.md5(data).hexdigest()
    assert r.json()["done"] == f"/project/containers/{name}?prefix=docs/"
    head = api("HEAD", "object", f"/{name}/docs/report.bin")
    assert head.headers["content-length"] == str(len(data)) and head.headers["content-type"] == "application/x-test"
    for i in range(21):
        api("PUT", "object", f"/{name}/f{i:02d}.txt", content=f"file {i}".encode())
    top = b.page(f"/project/containers/{name}")
    assert f'href="/project/containers/{name}?prefix=docs/">docs/</a>' in top.text  # the folder
    assert "report.bin" not in top.text and "f18.txt" in top.text and "f19.txt" not in top.text
    m = re.search(r'marker=([^"&]+)">Next page', top.text)
    assert m and m.group(1) == "f18.txt"
    second = b.page(f"/project/containers/{name}", marker="f18.txt", limit="20")
    assert "f19.txt" in second.text and "f20.txt" in second.text and "f17.txt" not in second.text
    folder = b.page(f"/project/containers/{name}", prefix="docs/")
    assert "report.bin" in folder.text and "f01.txt" not in folder.text
    got = b.http.get(f"/project/containers/{name}/object/docs/report.bin")
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-disposition"] == 'attachment; filename="report.bin"'
    assert got.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert b.http.get(f"/project/containers/{name}/object/missing").status_code == 404

    assert "private" in top.text and "Make public" in top.text
    assert "is public now" in b.flash(b.post(f"/project/containers/{name}/public", {"public": "on"}))
    assert api("HEAD", "object", f"/{name}").headers["x-container-read"] == ".r:*,.rlistings"
    page = b.page(f"/project/containers/{name}")
    public_url = f"{scloud.object_url}/v1/AUTH_{api.p.project_id}/{name}"
    assert f'<code>{public_url}</code>' in page.text
    assert httpx.get(f"{public_url}/docs/report.bin").content == data  # anyone, without a token
    assert "is private now" in b.flash(b.post(f"/project/containers/{name}/public", {}))
    assert "x-container-read" not in api("HEAD", "object", f"/{name}").headers
    assert httpx.get(f"{public_url}/docs/report.bin").status_code in (401, 403)

    r = b.post(f"/project/containers/{name}/delete")
    assert r.status_code == 303 and "holds no objects" in b.flash(r)  # Swift's 409, in words
    assert "Deleted docs/report.bin." == b.flash(b.post(f"/project/containers/{name}/delete-object",
                                                        {"name": "docs/report.bin", "prefix": "docs/"}))
    assert api("HEAD", "object", f"/{name}/docs/report.bin").status_code == 404
    for i in range(21):
        api("DELETE", "object", f"/{name}/f{i:02d}.txt")
    assert b.flash(b.post(f"/project/containers/{name}/delete")) == f"Deleted container {name}."
    assert api("HEAD", "object", f"/{name}").status_code == 404


def test_container_pages_for_the_reader_and_another_project(browsers: dict[str, Browser],
                                                            apis: dict[str, Apis]) -> None:
    member = apis["member"]
    name = unique("shared-box")
    assert member("PUT", "object", f"/{name}").status_code == 201
    member("PUT", "object", f"/{name}/secret.txt", content=b"only P")
    rb, ob = browsers["reader"], browsers["other"]
    page = rb.page(f"/project/containers/{name}")
    assert page.status_code == 200 and "secret.txt" in page.text and "Make public" not in page.text
    assert rb.http.get(f"/project/containers/{name}/object/secret.txt").content == b"only P"
    assert 'action="/project/containers/create"' not in rb.page("/project/containers").text
    r = rb.post("/project/containers/create", {"name": unique("nope")})
    direct = apis["reader"]("PUT", "object", f"/{unique('nope')}")
    assert r.status_code == direct.status_code == 403
    assert api_words(direct) in html.unescape(r.text)
    r = rb.post(f"/project/containers/{name}/delete-object", {"name": "secret.txt"})
    assert r.status_code == 403 and member("HEAD", "object", f"/{name}/secret.txt").status_code == 200
    assert name not in ob.page("/project/containers").text
    assert ob.page(f"/project/containers/{name}").status_code == 404
    assert ob.http.get(f"/project/containers/{name}/object/secret.txt").status_code == 404
    bad = browsers["member"].post("/project/containers/create", {"name": "a/b"})
    assert bad.status_code == 400 and field_error(bad.text, "name")


def test_a_form_without_the_csrf_token_changes_nothing(browsers: dict[str, Browser], apis: dict[str, Apis]) -> None:
    b = browsers["member"]
    name = unique("nocsrf")
    r = b.post("/project/containers/create", {"name": name}, csrf=False)
    assert r.status_code == 403 and apis["member"]("HEAD", "object", f"/{name}").status_code == 404
    r = b.http.post("/project/images/create", data={"name": name})
    assert r.status_code == 403


def test_each_session_sees_its_own_projects_object_store_account(
        scloud: Cloud, browsers: dict[str, Browser], people: dict[str, Persona]) -> None:
    """The catalog is cached per process; Swift's URL names a project: each session gets its own."""
    for name in ("member", "other", "member"):
        page = browsers[name].page("/project/access/api").text
        assert f"{scloud.object_url}/v1/AUTH_{people[name].project_id}" in page


def test_the_clouds_admin_opens_every_storage_page_of_its_project(scloud: Cloud) -> None:
    b = Browser(scloud)
    try:
        b.login("admin", scloud.admin_password, "admin")
        for path, words in (("/project/volumes", "Create volume"), ("/project/volumes/snapshots", "Volume snapshots"),
                            ("/project/volumes/backups", "Volume backups"), ("/project/images", "Create image"),
                            ("/project/access/keypairs", "Create key pair"), ("/project/access/api", "clouds.yaml"),
                            ("/project/containers", "Create a container")):
            r = b.page(path)
            assert r.status_code == 200 and words in r.text, path
    finally:
        b.close()


def test_a_volume_row_links_to_the_instance_it_is_attached_to(browsers: dict[str, Browser],
                                                              apis: dict[str, Apis]) -> None:
    b, api = browsers["member"], apis["member"]
    flavors = api("GET", "compute", "/flavors/detail").json()["flavors"]
    flavor = min(flavors, key=lambda f: (f["ram"], f["disk"]))["id"]
    r = api("POST", "compute", "/servers", json={"server": {
        "name": unique("vm"), "flavorRef": flavor, "imageRef": active_image(api, b"\0" * 4096), "networks": "none"}})
    assert r.status_code == 202, r.text
    server_id = r.json()["server"]["id"]
    wait_for(lambda: api("GET", "compute", f"/servers/{server_id}").json()["server"]["status"] == "ACTIVE", 60,
             "the server active")
    vol = api("POST", "volume", "/volumes", json={"volume": {"name": unique("att"), "size": 1}}).json()["volume"]
    api.wait("volume", vol["id"], "available")
    r = api("POST", "compute", f"/servers/{server_id}/os-volume_attachments",
            json={"volumeAttachment": {"volumeId": vol["id"]}})
    assert r.status_code == 200, r.text
    api.wait("volume", vol["id"], "in-use", 60)
    row = b.page(f"/project/volumes/{vol['id']}/row").text
    assert f'href="/project/instances/{server_id}"' in row
    assert f'href="/project/instances/{server_id}"' in b.page(f"/project/volumes/{vol['id']}").text
    assert f'href="/project/instances/{server_id}"' in b.page("/project/volumes").text
    api("DELETE", "compute", f"/servers/{server_id}")
    api.wait("volume", vol["id"], "available", 60)
    assert "/project/instances/" not in b.page(f"/project/volumes/{vol['id']}/row").text


def test_the_image_list_pages_by_marker(browsers: dict[str, Browser], apis: dict[str, Apis]) -> None:
    b, api = browsers["member"], apis["member"]
    names = [unique("pg") for _ in range(21)]
    ids = [api("POST", "image", "/v2/images", json={"name": n, "disk_format": "raw", "container_format": "bare"}
               ).json()["id"] for n in names]
    first = b.page("/project/images")  # Glance's default visibility: shared
    assert [n for n in names if n in first.text] == names[1:]  # newest first, 20 a page
    m = re.search(r'visibility=&marker=([0-9a-f-]+)">Next page', first.text)
    assert m and m.group(1) == ids[1]
    second = b.page("/project/images", marker=m.group(1))
    assert names[0] in second.text and not [n for n in names[1:] if n in second.text]
    for image_id in ids:
        api("DELETE", "image", f"/v2/images/{image_id}")
