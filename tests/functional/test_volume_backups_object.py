"""Volume backups go to object storage when the cloud runs it: the backup's manifest and chunks are
objects of the project's ``volumebackups`` container (Cinder's Swift driver, per user), seen over
the Swift API, nothing is written to the backup directory; a restore from them gives the volume's
bytes back and deleting the backup removes its objects."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functional.conftest import Cloud, start_cloud, stop_cloud, unique, wait_for
from tests.functional.test_volume_backups import create, new_volume, raw_sha256, restore, wait_backup, write
from tests.functional.test_volumes import Api


@pytest.fixture(scope="module")
def bcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("backups-object"), "sqlite", {
        "CUMULO_SERVICES": "identity,volume,object", "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false"})
    yield c
    stop_cloud(c)


def listing(cloud: Cloud, token: str, project_id: str, container: str = "volumebackups") -> list[dict]:
    r = httpx.get(f"{cloud.object_url}/v1/AUTH_{project_id}/{container}?format=json",
                  headers={"X-Auth-Token": token}, timeout=30)
    if r.status_code == 404:
        return []
    assert r.status_code == 200, r.text
    return list(r.json())


def test_a_backup_is_objects_of_the_project_and_restores_from_them(bcloud: Cloud, tmp_path: Path) -> None:
    token, body = bcloud.token()
    api = Api(bcloud, token, body["project"]["id"])
    vid = new_volume(api)
    write(bcloud, vid, "write -P 0x5a 0 4M", "write -P 0x33 12M 1M")
    before = raw_sha256(bcloud, vid, tmp_path)
    bid = create(api, vid)
    done = wait_backup(api, bid, timeout=90)
    names = [o["name"] for o in listing(bcloud, token, api.project_id)]
    assert f"{bid}/manifest.json" in names
    chunks = [n for n in names if n.startswith(f"{bid}/chunk-")]
    assert len(chunks) == 2, names  # the two non-zero 4 MiB chunks, not the zero ones
    assert done["object_count"] == len(chunks)
    manifest = httpx.get(f"{bcloud.object_url}/v1/AUTH_{api.project_id}/volumebackups/{bid}/manifest.json",
                         headers={"X-Auth-Token": token}, timeout=30)
    assert manifest.status_code == 200 and json.loads(manifest.content)["backup_id"] == bid
    assert not list((bcloud.state_dir / "backups").rglob(f"*{bid}*"))  # nothing in the directory store

    out = restore(api, bid)
    api.wait_status(out["volume_id"], "available", timeout=90)
    assert raw_sha256(bcloud, out["volume_id"], tmp_path) == before

    r = httpx.delete(f"{bcloud.volume_url}/{api.project_id}/backups/{bid}", headers={"X-Auth-Token": token},
                     timeout=30)
    assert r.status_code == 202, r.text
    wait_for(lambda: not [o for o in listing(bcloud, token, api.project_id) if o["name"].startswith(bid)], 60,
             "the backup's objects to be deleted")


def test_a_record_imported_by_another_project_finds_its_objects(bcloud: Cloud, tmp_path: Path) -> None:
    """As tempest's export/import: a backup made in one project, its record imported (under a new
    id) by an admin of another project, is found in the object storage of the project that made
    it, and restores."""
    token, body = bcloud.token()
    api = Api(bcloud, token, body["project"]["id"])
    vid = new_volume(api)
    write(bcloud, vid, "write -P 0x61 0 4M")
    before = raw_sha256(bcloud, vid, tmp_path)
    bid = create(api, vid)
    wait_backup(api, bid, timeout=90)
    record = api("GET", f"/backups/{bid}/export_record").json()["backup-record"]

    def v3(method: str, path: str, doc: Any = None) -> Any:
        r = httpx.request(method, f"{bcloud.url}{path}", json=doc, headers={"X-Auth-Token": token})
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    other = v3("POST", "/projects", {"project": {"name": unique("importer"), "domain_id": "default"}})["project"]
    admin_role = next(x["id"] for x in v3("GET", "/roles")["roles"] if x["name"] == "admin")
    v3("PUT", f"/projects/{other['id']}/users/{body['user']['id']}/roles/{admin_role}")
    other_token, _ = bcloud.token(project=other["name"])
    importer = Api(bcloud, other_token, other["id"])
    new_id = str(uuid.uuid4())
    doc = json.loads(base64.b64decode(record["backup_url"]))
    url = base64.b64encode(json.dumps({**doc, "id": new_id}).encode()).decode()
    r = importer("POST", "/backups/import_record", {"backup-record": {**record, "backup_url": url}})
    assert r.status_code == 201, r.text
    wait_backup(importer, new_id, timeout=60)
    out = restore(importer, new_id)
    importer.wait_status(out["volume_id"], "available", timeout=90)
    assert raw_sha256(bcloud, out["volume_id"], tmp_path) == before
