"""Volume backups against a real cloud (SQLite and PostgreSQL): a volume holding known data is backed
up into ``<state>/backups/volumebackups/<backup id>/`` (only its non-zero chunks stored),
incrementally after more writes (only the changed chunks), restored into a new and into an
existing volume whose raw bytes match the original's; a corrupted chunk fails a restore in words;
the parent of an incremental stays; quotas, personas and bad bodies answer as Cinder does.  The
``openstack volume backup`` commands are used where a user would."""

from __future__ import annotations

import base64
import hashlib
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
from tests.functional.test_volumes import Api, cli_json, people  # noqa: F401  (a fixture)

MiB = 1024**2


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def vcloud(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    yield from block_storage_cloud(request, tmp_path_factory, "backups")


@pytest.fixture(scope="module")
def admin_api(vcloud: Cloud) -> Api:
    token, body = vcloud.token()
    api = Api(vcloud, token, body["project"]["id"])
    r = api("PUT", f"/os-quota-sets/{api.project_id}", {"quota_set": {"volumes": 100, "gigabytes": -1,
                                                                     "backups": 100}})
    assert r.status_code == 200, r.text
    return api


def volume_file(cloud: Cloud, volume_id: str) -> Path:
    (path,) = (cloud.state_dir / "volumes").rglob(f"volume-{volume_id}.qcow2")
    return path


def backup_dir(cloud: Cloud, backup_id: str, container: str = "volumebackups") -> Path:
    return cloud.state_dir / "backups" / container / backup_id


def chunk_files(cloud: Cloud, backup_id: str) -> list[str]:
    return sorted(p.name for p in backup_dir(cloud, backup_id).glob("chunk-*.zst"))


def write(cloud: Cloud, volume_id: str, *commands: str) -> None:
    args = [a for c in commands for a in ("-c", c)]
    subprocess.run(["qemu-io", "-f", "qcow2", *args, str(volume_file(cloud, volume_id))], check=True,
                   capture_output=True)


def raw_sha256(cloud: Cloud, volume_id: str, tmp: Path) -> str:
    raw = tmp / f"{volume_id}.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(volume_file(cloud, volume_id)), str(raw)],
                   check=True)
    digest = hashlib.sha256()
    with open(raw, "rb") as fh:
        while block := fh.read(8 * MiB):
            digest.update(block)
    raw.unlink()
    return digest.hexdigest()


def new_volume(api: Api, size: int = 1) -> str:
    r = api("POST", "/volumes", {"volume": {"size": size, "name": unique("bk")}})
    assert r.status_code == 202, r.text
    api.wait_status(r.json()["volume"]["id"], "available")
    return str(r.json()["volume"]["id"])


def show(api: Api, backup_id: str, version: str = "") -> dict[str, Any]:
    r = api("GET", f"/backups/{backup_id}", version=version)
    assert r.status_code == 200, r.text
    return r.json()["backup"]  # type: ignore[no-any-return]


def wait_backup(api: Api, backup_id: str, status: str = "available", timeout: float = 60) -> dict[str, Any]:
    return wait_for(lambda: (b := show(api, backup_id))["status"] == status and b, timeout,  # type: ignore
                    f"backup {backup_id} to be {status}")


def create(api: Api, volume_id: str, **extra: Any) -> str:
    r = api("POST", "/backups", {"backup": {"volume_id": volume_id, "name": unique("b"), **extra}})
    assert r.status_code == 202, r.text
    assert set(r.json()["backup"]) == {"id", "links", "name"}
    return str(r.json()["backup"]["id"])


def restore(api: Api, backup_id: str, **body: Any) -> dict[str, Any]:
    r = api("POST", f"/backups/{backup_id}/restore", {"restore": body})
    assert r.status_code == 202, r.text
    return r.json()["restore"]  # type: ignore[no-any-return]


# -- the data path ---------------------------------------------------------------------------------
def test_backup_skips_zero_chunks_incremental_stores_only_changes_and_restore_gives_the_same_bytes(
        vcloud: Cloud, admin_api: Api, tmp_path: Path) -> None:
    vid = new_volume(admin_api)
    write(vcloud, vid, "write -P 0xab 0 8M", "write -P 0x5a 512M 4M")
    # the CLI a user runs: openstack volume backup create
    made = cli_json(vcloud, "volume", "backup", "create", "--name", unique("full"), vid)
    assert admin_api.volume(vid)["status"] in ("backing-up", "available")
    full = wait_backup(admin_api, made["id"])
    assert admin_api.wait_status(vid, "available")
    # 1 GiB in 4 MiB chunks: 3 hold data, 253 are zeros and are not stored
    assert chunk_files(vcloud, full["id"]) == ["chunk-00000000.zst", "chunk-00000001.zst", "chunk-00000128.zst"]
    assert full["object_count"] == 3 and full["size"] == 1 and full["is_incremental"] is False
    assert full["container"] == "volumebackups" and full["fail_reason"] is None
    manifest = json.loads((backup_dir(vcloud, full["id"]) / "manifest.json").read_text())
    assert manifest["chunks"][2] == "zero" and len(manifest["chunks"]) == 256
    assert manifest["chunks"][0]["sha256"] == hashlib.sha256(b"\xab" * (4 * MiB)).hexdigest()

    write(vcloud, vid, "write -P 0xcd 4M 1M")  # changes chunk 1 only
    inc_id = create(admin_api, vid, incremental=True)
    inc = wait_backup(admin_api, inc_id)
    assert inc["is_incremental"] is True and inc["object_count"] == 1
    assert chunk_files(vcloud, inc_id) == ["chunk-00000001.zst"]
    inc_manifest = json.loads((backup_dir(vcloud, inc_id) / "manifest.json").read_text())
    assert inc_manifest["chunks"][0]["object"] == f"volumebackups/{full['id']}/chunk-00000000.zst"
    assert show(admin_api, full["id"])["has_dependent_backups"] is True
    original = raw_sha256(vcloud, vid, tmp_path)

    # the parent of an incremental stays
    r = admin_api("DELETE", f"/backups/{full['id']}")
    assert r.status_code == 400 and "Incremental backups exist for this backup" in r.text

    # the volume goes; the incremental backup brings it back, byte for byte (openstack volume backup restore)
    assert admin_api("DELETE", f"/volumes/{vid}").status_code == 202
    wait_for(lambda: admin_api("GET", f"/volumes/{vid}").status_code == 404, 30, "the volume deleted")
    name = unique("restored")
    out = cli_json(vcloud, "volume", "backup", "restore", inc_id, name)
    assert out["volume_name"] == name
    restored = admin_api.wait_status(out["volume_id"], "available", timeout=60)
    assert restored["size"] == 1 and restored["name"] == name
    assert raw_sha256(vcloud, out["volume_id"], tmp_path) == original
    assert wait_backup(admin_api, inc_id)["fail_reason"] is None

    # into an existing, larger volume: the data, then zeros
    target = new_volume(admin_api, size=2)
    write(vcloud, target, "write -P 0x77 1500M 1M")
    answer = restore(admin_api, full["id"], volume_id=target)
    assert answer["volume_id"] == target
    vol = admin_api.wait_status(target, "available", timeout=60)
    assert vol["size"] == 2
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(volume_file(vcloud, target))],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["virtual-size"] == 2 * 1024 * MiB
    check = subprocess.run(["qemu-io", "-f", "qcow2", "-c", "read -P 0xab 0 8M", "-c", "read -P 0 8M 4M",
                            "-c", "read -P 0x5a 512M 4M", "-c", "read -P 0 1500M 1M", str(volume_file(vcloud, target))],
                           capture_output=True, text=True, check=True).stdout
    assert "Pattern verification failed" not in check

    # the CLI lists them and deletes the incremental, then the full one may go, and its files with it
    listed = {b["ID"] for b in cli_json(vcloud, "volume", "backup", "list")}
    assert {full["id"], inc_id} <= listed
    vcloud.cli("volume", "backup", "delete", inc_id)
    wait_for(lambda: admin_api("GET", f"/backups/{inc_id}").status_code == 404, 30, "the incremental deleted")
    assert not backup_dir(vcloud, inc_id).exists()
    assert admin_api("DELETE", f"/backups/{full['id']}").status_code == 202
    wait_for(lambda: not backup_dir(vcloud, full["id"]).exists(), 30, "the full backup's files removed")


def test_a_corrupted_chunk_fails_the_restore_in_words_and_the_backup_stays(vcloud: Cloud, admin_api: Api) -> None:
    vid = new_volume(admin_api)
    write(vcloud, vid, "write -P 0x42 0 4M")
    bid = create(admin_api, vid)
    wait_backup(admin_api, bid)
    chunk = backup_dir(vcloud, bid) / "chunk-00000000.zst"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    out = restore(admin_api, bid)
    vol = admin_api.wait_status(out["volume_id"], "error_restoring", timeout=60)
    assert vol["name"] == f"restore_backup_{bid}"
    b = wait_backup(admin_api, bid)
    assert "chunk 0 of backup" in b["fail_reason"] and ("corrupt" in b["fail_reason"] or
                                                        "checksum" in b["fail_reason"])
    assert not list(volume_file(vcloud, vid).parent.glob(f".volume-{out['volume_id']}*"))  # no leftovers


def test_an_in_use_volume_needs_force_and_goes_back_to_in_use(vcloud: Cloud, admin_api: Api) -> None:
    vid = new_volume(admin_api)
    r = admin_api("POST", f"/volumes/{vid}/action", {"os-attach": {"instance_uuid": str(uuid.uuid4()),
                                                                   "mountpoint": "/dev/vdb"}})
    assert r.status_code == 202, r.text
    admin_api.wait_status(vid, "in-use")
    r = admin_api("POST", "/backups", {"backup": {"volume_id": vid}})
    assert r.status_code == 400 and "in-use" in r.text
    bid = create(admin_api, vid, force=True)
    assert wait_backup(admin_api, bid)["object_count"] == 0  # nothing written: all zeros
    admin_api.wait_status(vid, "in-use")


# -- quotas, personas, bad input ---------------------------------------------------------------------
def test_the_backups_quota_refuses_the_second_backup(vcloud: Cloud, admin_api: Api,
                                                     people: dict[str, Api]) -> None:  # noqa: F811
    member = people["member"]
    r = admin_api("PUT", f"/os-quota-sets/{member.project_id}", {"quota_set": {"backups": 1}})
    assert r.status_code == 200, r.text
    try:
        vid = new_volume(member)
        first = create(member, vid)
        wait_backup(member, first)
        r = member("POST", "/backups", {"backup": {"volume_id": vid}})
        assert r.status_code == 413 and "Maximum number of backups allowed (1) exceeded" in r.text
        r = admin_api("PUT", f"/os-quota-sets/{member.project_id}", {"quota_set": {"backups": 10,
                                                                                   "backup_gigabytes": 1}})
        r = member("POST", "/backups", {"backup": {"volume_id": vid}})
        assert r.status_code == 413 and "Backup gigabytes quota" in r.text
    finally:
        admin_api("PUT", f"/os-quota-sets/{member.project_id}", {"quota_set": {"backups": 10,
                                                                               "backup_gigabytes": 1000}})


def test_readers_read_other_projects_see_nothing_admins_see_the_project(
        vcloud: Cloud, admin_api: Api, people: dict[str, Api]) -> None:  # noqa: F811
    member, reader, other = people["member"], people["reader"], people["other"]
    vid = new_volume(member)
    bid = create(member, vid, description="d")
    wait_backup(member, bid)
    assert show(reader, bid)["id"] == bid
    assert bid in {b["id"] for b in reader("GET", "/backups").json()["backups"]}
    r = reader("POST", "/backups", {"backup": {"volume_id": vid}})
    assert r.status_code == 403 and "backup:create" in r.text
    assert reader("DELETE", f"/backups/{bid}").status_code == 403
    assert other("GET", f"/backups/{bid}").status_code == 404
    assert bid not in {b["id"] for b in other("GET", "/backups/detail?all_tenants=1").json()["backups"]}
    assert other("POST", f"/backups/{bid}/restore", {"restore": {}}).status_code == 404
    # the project attribute is the admin's (3.18); metadata 3.43, user_id 3.56, encryption_key_id 3.64
    assert "os-backup-project-attr:project_id" not in show(member, bid, "3.71")
    seen = show(admin_api, bid, "3.71")
    assert seen["os-backup-project-attr:project_id"] == member.project_id
    assert {"metadata", "user_id", "encryption_key_id"} <= set(seen)
    assert set(show(member, bid)) == {
        "id", "name", "description", "status", "size", "object_count", "availability_zone", "container",
        "created_at", "updated_at", "fail_reason", "volume_id", "links", "is_incremental",
        "has_dependent_backups", "snapshot_id", "data_timestamp"}
    detail = admin_api("GET", f"/backups/detail?all_tenants=1&project_id={member.project_id}",
                       version="3.18").json()["backups"]
    assert bid in {b["id"] for b in detail}
    assert {b["os-backup-project-attr:project_id"] for b in detail} == {member.project_id}
    # update (3.9), metadata (3.43)
    r = member("PUT", f"/backups/{bid}", {"backup": {"name": "renamed", "metadata": {"k": "v"}}}, version="3.43")
    assert r.status_code == 200 and r.json()["backup"]["name"] == "renamed"
    assert show(member, bid, "3.43")["metadata"] == {"k": "v"}
    assert member("PUT", f"/backups/{bid}", {"backup": {"name": "x"}}).status_code == 404  # 3.0: no update
    # the admin's actions
    r = member("POST", f"/backups/{bid}/action", {"os-reset_status": {"status": "error"}})
    assert r.status_code == 403
    assert admin_api("POST", f"/backups/{bid}/action", {"os-reset_status": {"status": "error"}}).status_code == 202
    assert show(member, bid)["status"] == "error"
    r = admin_api("POST", f"/backups/{bid}/action", {"os-reset_status": {"status": "available"}})
    assert r.status_code == 202
    exported = admin_api("GET", f"/backups/{bid}/export_record")
    assert exported.status_code == 200 and set(exported.json()["backup-record"]) == {"backup_service", "backup_url"}
    assert member("GET", f"/backups/{bid}/export_record").status_code == 403
    r = admin_api("POST", "/backups/import_record", {"backup-record": exported.json()["backup-record"]})
    assert r.status_code == 400 and "already exists" in r.text
    assert admin_api("POST", f"/backups/{bid}/action", {"os-force_delete": {}}).status_code == 202
    wait_for(lambda: member("GET", f"/backups/{bid}").status_code == 404, 30, "the backup force-deleted")
    # the record brings it back (its objects are gone: the import ends in error, in words)
    r = admin_api("POST", "/backups/import_record", {"backup-record": exported.json()["backup-record"]})
    assert r.status_code == 201, r.text
    assert "not in the backup store" in wait_backup(admin_api, bid, "error")["fail_reason"]


def test_an_exported_record_imported_under_a_new_id_shares_the_data(vcloud: Cloud, admin_api: Api) -> None:
    """As tempest's export/import test: the record, its id changed, is a second backup of the same
    objects; deleting either leaves the data the other needs."""
    vid = new_volume(admin_api)
    write(vcloud, vid, "write -P 0x61 0 4M")
    bid = create(admin_api, vid)
    wait_backup(admin_api, bid)
    record = admin_api("GET", f"/backups/{bid}/export_record").json()["backup-record"]
    assert record["backup_service"].startswith("cinder.backup.drivers")
    doc = json.loads(base64.b64decode(record["backup_url"]))
    new_id = str(uuid.uuid4())
    url = base64.b64encode(json.dumps({**doc, "id": new_id}).encode()).decode()
    r = admin_api("POST", "/backups/import_record", {"backup-record": {**record, "backup_url": url}})
    assert r.status_code == 201 and r.json()["backup"]["id"] == new_id
    wait_backup(admin_api, new_id)
    assert admin_api("DELETE", f"/backups/{bid}").status_code == 202
    wait_for(lambda: admin_api("GET", f"/backups/{bid}").status_code == 404, 30, "the original deleted")
    assert chunk_files(vcloud, bid) == ["chunk-00000000.zst"]  # the imported one still needs them
    out = restore(admin_api, new_id)
    admin_api.wait_status(out["volume_id"], "available", timeout=60)
    check = subprocess.run(["qemu-io", "-f", "qcow2", "-c", "read -P 0x61 0 4M",
                            str(volume_file(vcloud, out["volume_id"]))], capture_output=True, text=True, check=True)
    assert "Pattern verification failed" not in check.stdout
    wait_backup(admin_api, new_id)
    assert admin_api("DELETE", f"/backups/{new_id}").status_code == 202
    wait_for(lambda: not backup_dir(vcloud, bid).exists(), 30, "the shared objects removed with the last backup")


def test_a_snapshot_is_backed_up_from_its_own_file_and_a_restore_carries_the_volume_metadata(
        vcloud: Cloud, admin_api: Api) -> None:
    r = admin_api("POST", "/volumes", {"volume": {"size": 1, "metadata": {"role": "db", "tier": "gold"}}})
    vid = r.json()["volume"]["id"]
    admin_api.wait_status(vid, "available")
    write(vcloud, vid, "write -P 0x71 0 4M")
    r = admin_api("POST", "/snapshots", {"snapshot": {"volume_id": vid}})
    sid = r.json()["snapshot"]["id"]
    wait_for(lambda: admin_api("GET", f"/snapshots/{sid}").json()["snapshot"]["status"] == "available", 30,
             "the snapshot available")
    write(vcloud, vid, "write -P 0x72 0 4M")  # after the snapshot: not in its backup
    other = new_volume(admin_api)
    r = admin_api("POST", "/backups", {"backup": {"volume_id": other, "snapshot_id": sid}})
    assert r.status_code == 400 and "is not of volume" in r.text
    r = admin_api("POST", "/backups", {"backup": {"volume_id": vid, "snapshot_id": str(uuid.uuid4())}})
    assert r.status_code == 404
    bid = create(admin_api, vid, snapshot_id=sid)
    assert admin_api.volume(vid)["status"] == "available"  # the volume is not held for a snapshot's backup
    b = wait_backup(admin_api, bid)
    assert b["snapshot_id"] == sid and b["volume_id"] == vid
    out = restore(admin_api, bid)
    restored = admin_api.wait_status(out["volume_id"], "available", timeout=60)
    assert {"role": "db", "tier": "gold"}.items() <= restored["metadata"].items()
    check = subprocess.run(["qemu-io", "-f", "qcow2", "-c", "read -P 0x71 0 4M",
                            str(volume_file(vcloud, out["volume_id"]))], capture_output=True, text=True, check=True)
    assert "Pattern verification failed" not in check.stdout


def test_paging_and_filters(vcloud: Cloud, admin_api: Api) -> None:
    vid = new_volume(admin_api)
    ids = [create(admin_api, vid) for _ in range(1)]
    wait_backup(admin_api, ids[0])
    ids.append(create(admin_api, vid, incremental=True))
    wait_backup(admin_api, ids[1])
    page = admin_api("GET", f"/backups?volume_id={vid}&limit=1&sort=created_at:asc").json()
    assert [b["id"] for b in page["backups"]] == ids[:1] and page["backups_links"][0]["rel"] == "next"
    rest = admin_api("GET", f"/backups?volume_id={vid}&limit=1&sort=created_at:asc&marker={ids[0]}").json()
    assert [b["id"] for b in rest["backups"]] == ids[1:]
    counted = admin_api("GET", f"/backups?volume_id={vid}&with_count=true", version="3.45").json()
    assert counted["count"] == 2
    assert admin_api("GET", "/backups?status=nonesuch").json()["backups"] == []
    assert admin_api("GET", "/backups?sort=bogus").status_code == 400
    assert admin_api("GET", "/backups?marker=nonesuch").status_code == 404  # Cinder's MarkerNotFound


@pytest.mark.parametrize("body", [
    {}, {"backup": {}}, {"backup": {"volume_id": "not-a-uuid"}}, {"backup": None},
    {"backup": {"volume_id": "00000000-0000-0000-0000-000000000000", "container": "../etc"}},
    {"backup": {"volume_id": "00000000-0000-0000-0000-000000000000", "incremental": "maybe"}},
    {"backup": {"volume_id": "00000000-0000-0000-0000-000000000000", "name": 5}},
    {"backup": {"volume_id": "00000000-0000-0000-0000-000000000000", "snapshot_id": 5}},
    {"backup": {"volume_id": "00000000-0000-0000-0000-000000000000", "metadata": {"k": "v"}}},  # 3.0
    {"backup": {"volume_id": "00000000-0000-0000-0000-000000000000", "bogus": 1}},
])
def test_bad_create_bodies_are_400s(admin_api: Api, body: Any) -> None:
    r = admin_api("POST", "/backups", body)
    assert r.status_code == 400, r.text


def test_bad_requests_on_a_backup_are_400s_or_404s(admin_api: Api) -> None:
    vid = new_volume(admin_api)
    r = admin_api("POST", "/backups", {"backup": {"volume_id": vid, "incremental": True}})
    assert r.status_code == 400 and "No backups available to do an incremental backup" in r.text
    assert admin_api("POST", "/backups", {"backup": {"volume_id": "00000000-0000-0000-0000-000000000000"}}
                     ).status_code == 404
    bid = create(admin_api, vid)
    wait_backup(admin_api, bid)
    for path, body in ((f"/backups/{bid}/restore", {"restore": {"volume_id": "nope"}}),
                       (f"/backups/{bid}/restore", {"restore": {"bogus": 1}}),
                       (f"/backups/{bid}/restore", []),
                       (f"/backups/{bid}/action", {"os-reset_status": {"status": "creating"}}),
                       (f"/backups/{bid}/action", {"os-reset_status": {}}),
                       (f"/backups/{bid}/action", {"os-frobnicate": {}}),
                       (f"/backups/{bid}/action", {}),
                       ("/backups/import_record", {"backup-record": {"backup_service": "x", "backup_url": "y"}}),
                       ("/backups/import_record", {"backup-record": {
                           "backup_service": "cinder.backup.drivers.posix.PosixBackupDriver", "backup_url": "!!"}}),
                       ("/backups/import_record", {"nothing": 1})):
        r = admin_api("POST", path, body)
        assert r.status_code == 400, (path, body, r.text)
    r = admin_api("PUT", f"/backups/{bid}", {"backup": {"bogus": 1}}, version="3.9")
    assert r.status_code == 400
    small = admin_api("POST", "/volumes", {"volume": {"size": 1}}).json()["volume"]["id"]
    admin_api.wait_status(small, "available")
    big = admin_api("POST", "/volumes", {"volume": {"size": 2}}).json()["volume"]["id"]
    admin_api.wait_status(big, "available")
    bigb = create(admin_api, big)
    wait_backup(admin_api, bigb)
    r = admin_api("POST", f"/backups/{bigb}/restore", {"restore": {"volume_id": small}})
    assert r.status_code == 400 and "too small" in r.text
    assert admin_api("GET", "/backups/00000000-0000-0000-0000-000000000000").status_code == 404
    assert admin_api("DELETE", "/backups/nonesuch").status_code == 404
    assert httpx.get(f"{admin_api.cloud.volume_url}/backups", timeout=10).status_code == 401


def test_a_volume_made_from_a_backup_and_the_quota_usage_counts_backups(vcloud: Cloud, admin_api: Api) -> None:
    vid = new_volume(admin_api)
    write(vcloud, vid, "write -P 0x5a 0 4M")
    bid = create(admin_api, vid)
    b = wait_backup(admin_api, bid)
    usage = admin_api("GET", f"/os-quota-sets/{admin_api.project_id}?usage=true").json()["quota_set"]
    assert usage["backups"]["in_use"] >= 1 and usage["backup_gigabytes"]["in_use"] >= b["size"]
    # POST /volumes with backup_id (3.47) restores into a new volume
    assert admin_api("POST", "/volumes", {"volume": {"backup_id": bid}}, version="3.46").status_code == 400
    r = admin_api("POST", "/volumes", {"volume": {"backup_id": bid, "name": "from-backup"}}, version="3.47")
    assert r.status_code == 202, r.text
    made = admin_api.wait_status(r.json()["volume"]["id"], "available", timeout=60)
    assert made["name"] == "from-backup" and made["size"] == b["size"]
    check = subprocess.run(["qemu-io", "-f", "qcow2", "-c", "read -P 0x5a 0 4M", str(volume_file(vcloud, made["id"]))],
                           capture_output=True, text=True, check=True)
    assert "Pattern verification failed" not in check.stdout
    assert admin_api("POST", "/volumes", {"volume": {"backup_id": str(uuid.uuid4())}},
                     version="3.47").status_code == 404
