"""`cumulo backup` on a running cloud and `cumulo restore` into a wiped state directory: every
resource comes back as the APIs showed it (ids and fields), a token issued before the backup still
validates, image, volume and object bytes are identical; a damaged backup file is refused by name,
a restore onto a running cloud is refused, and a second backup copies only what changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functional.conftest import BIN, BLOCK_STORAGE_SERVICES, Cloud, start_cloud, stop_cloud, unique, wait_for

IMAGE_BYTES = os.urandom(512 * 1024 + 17)
OBJECT_BYTES = os.urandom(70 * 1024)


class World:
    """The cloud, what was made in it, and the backups taken of it."""

    def __init__(self, cloud: Cloud, tmp: Path) -> None:
        self.cloud, self.tmp = cloud, tmp
        self.backups = tmp / "backups"
        self.key_file = tmp / "backup.key"
        self.token = ""
        self.ids: dict[str, str] = {}
        self.before: dict[str, dict[str, Any]] = {}
        self.volume_sha = ""
        self.churned: set[str] = set()
        self.first: Path | None = None

    def h(self, version: str = "") -> dict[str, str]:
        out = {"X-Auth-Token": self.token}
        if version:
            out["OpenStack-API-Version"] = version
        return out

    def cumulo(self, *args: str, state_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(self.cloud.env)
        if state_dir is not None:
            env["CUMULO_STATE_DIR"] = str(state_dir)
            env.pop("CUMULO_LOGGING__FILE", None)
        return subprocess.run([str(BIN / "cumulo"), *args], env=env, capture_output=True, text=True, timeout=120)


def api_state(cloud: Cloud, token: str, project_id: str) -> dict[str, dict[str, Any]]:
    """Every resource the APIs show an admin, by kind and id."""
    h = {"X-Auth-Token": token}
    nova = {**h, "OpenStack-API-Version": "compute 2.79"}

    def get(url: str, key: str, headers: dict[str, str] = h) -> dict[str, Any]:
        r = httpx.get(url, headers=headers, timeout=30)
        assert r.status_code == 200, (url, r.text)
        return {str(item.get("id") or item.get("name") or item.get("keypair", {}).get("name")): item
                for item in r.json()[key]}

    out = {
        "projects": get(f"{cloud.url}/projects", "projects"),
        "users": get(f"{cloud.url}/users", "users"),
        "roles": get(f"{cloud.url}/roles", "roles"),
        "role_assignments": {json.dumps(a, sort_keys=True): a for a in
                             httpx.get(f"{cloud.url}/role_assignments", headers=h).json()["role_assignments"]},
        "images": get(f"{cloud.image_url}/v2/images", "images"),
        "flavors": get(f"{cloud.compute_url}/flavors/detail?is_public=None", "flavors", nova),
        "keypairs": get(f"{cloud.compute_url}/os-keypairs", "keypairs", nova),
        "servers": get(f"{cloud.compute_url}/servers/detail?all_tenants=1", "servers", nova),
        "networks": get(f"{cloud.network_url}/networks", "networks"),
        "subnets": get(f"{cloud.network_url}/subnets", "subnets"),
        "ports": get(f"{cloud.network_url}/ports", "ports"),
        "routers": get(f"{cloud.network_url}/routers", "routers"),
        "security_groups": get(f"{cloud.network_url}/security-groups", "security_groups"),
        "volumes": get(f"{cloud.volume_url}/{project_id}/volumes/detail?all_tenants=1", "volumes"),
        "containers": {c["name"]: c for c in httpx.get(
            f"{cloud.object_url}/v1/AUTH_{project_id}?format=json", headers=h).json()},
    }
    for server in out["servers"].values():
        server.pop("updated", None)  # the fake node's agent reports its power state again after a start
    return out


def volume_file(cloud: Cloud, volume_id: str) -> Path:
    found = list((cloud.state_dir / "volumes").glob(f"*/volume-{volume_id}.qcow2"))
    assert found, f"no file of volume {volume_id}"
    return found[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("backup")
    state = tmp / "state"
    state.mkdir()
    cloud = start_cloud(state, "sqlite", {"CUMULO_SERVICES": BLOCK_STORAGE_SERVICES + ",object",
                                          "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false"})
    w = World(cloud, tmp)
    try:
        populate(w)
        yield w
    finally:
        stop_cloud(w.cloud)


def populate(w: World) -> None:
    cloud = w.cloud
    w.token, body = cloud.token()
    admin_project = body["project"]["id"]
    w.ids["admin_project"] = admin_project
    h = w.h()
    project = httpx.post(f"{cloud.url}/projects", headers=h, json={"project": {"name": unique("bk-proj")}}).json()
    user = httpx.post(f"{cloud.url}/users", headers=h, json={"user": {
        "name": unique("bk-user"), "password": "s3cret-pass", "default_project_id": project["project"]["id"]}}).json()
    role = httpx.get(f"{cloud.url}/roles?name=member", headers=h).json()["roles"][0]["id"]
    assert httpx.put(f"{cloud.url}/projects/{project['project']['id']}/users/{user['user']['id']}/roles/{role}",
                     headers=h).status_code == 204
    image = httpx.post(f"{cloud.image_url}/v2/images", headers=h, json={
        "name": unique("bk-img"), "disk_format": "raw", "container_format": "bare"}).json()
    assert httpx.put(f"{cloud.image_url}/v2/images/{image['id']}/file", content=IMAGE_BYTES,
                     headers={**h, "Content-Type": "application/octet-stream"}).status_code == 204
    w.ids["image"] = image["id"]
    nova = w.h("compute 2.79")
    flavor = httpx.post(f"{cloud.compute_url}/flavors", headers=nova, json={"flavor": {
        "name": unique("bk-flavor"), "ram": 64, "vcpus": 1, "disk": 1}}).json()["flavor"]
    assert httpx.post(f"{cloud.compute_url}/os-keypairs", headers=nova, json={"keypair": {
        "name": unique("bk-key")}}).status_code in (200, 201)
    net = httpx.post(f"{cloud.network_url}/networks", headers=h, json={"network": {"name": unique("bk-net")}}
                     ).json()["network"]
    w.ids["network"] = net["id"]
    httpx.post(f"{cloud.network_url}/subnets", headers=h, json={"subnet": {
        "network_id": net["id"], "cidr": "10.77.0.0/24", "ip_version": 4}}).raise_for_status()
    httpx.post(f"{cloud.network_url}/routers", headers=h, json={"router": {"name": unique("bk-router")}}
               ).raise_for_status()
    server = httpx.post(f"{cloud.compute_url}/servers", headers=nova, json={"server": {
        "name": unique("bk-srv"), "flavorRef": flavor["id"], "imageRef": image["id"],
        "networks": [{"uuid": net["id"]}]}}).json()["server"]
    volume = httpx.post(f"{cloud.volume_url}/{admin_project}/volumes", headers=h, json={"volume": {
        "size": 1, "name": unique("bk-vol"), "imageRef": image["id"]}}).json()["volume"]
    obj = f"{cloud.object_url}/v1/AUTH_{admin_project}/bk-container"
    assert httpx.put(obj, headers=h).status_code in (201, 202)
    assert httpx.put(f"{obj}/blob", headers=h, content=OBJECT_BYTES).status_code == 201

    def ready() -> bool:
        s = httpx.get(f"{cloud.compute_url}/servers/{server['id']}", headers=nova).json()["server"]["status"]
        v = httpx.get(f"{cloud.volume_url}/{admin_project}/volumes/{volume['id']}", headers=h).json()
        return s == "ACTIVE" and v["volume"]["status"] == "available"

    wait_for(ready, 60, "the server ACTIVE and the volume available")
    w.ids["volume"] = volume["id"]
    w.volume_sha = hashlib.sha256(volume_file(cloud, volume["id"]).read_bytes()).hexdigest()
    w.before = api_state(cloud, w.token, admin_project)
    assert all(w.before[kind] for kind in w.before), [kind for kind in w.before if not w.before[kind]]


def test_backup_of_a_running_cloud_while_ports_come_and_go(world: World) -> None:
    w = world
    stop = threading.Event()
    errors: list[str] = []

    def churn() -> None:  # bounded: at most 60 ports, until the backup is done
        for i in range(60):
            if stop.is_set():
                return
            r = httpx.post(f"{w.cloud.network_url}/ports", headers=w.h(), json={"port": {
                "network_id": w.ids["network"], "name": f"churn-{i}"}}, timeout=30)
            if r.status_code != 201:
                errors.append(r.text)
                return
            port = r.json()["port"]["id"]
            w.churned.add(port)
            if i % 2:  # every other one stays until the end
                assert httpx.delete(f"{w.cloud.network_url}/ports/{port}", headers=w.h()).status_code == 204

    thread = threading.Thread(target=churn)
    thread.start()
    wait_for(lambda: len(w.churned) >= 3, 20, "ports being made")
    proc = w.cumulo("backup", "--to", str(w.backups), "--key-file", str(w.key_file), "--include",
                    "images,volumes,objects")
    stop.set()
    thread.join(60)
    assert proc.returncode == 0, proc.stderr
    assert not errors, errors
    assert "made a new backup key" in proc.stderr and w.key_file.stat().st_mode & 0o077 == 0
    (w.first,) = sorted(w.backups.glob("cumulo-backup-*"))
    manifest = json.loads((w.first / "manifest.json").read_text())
    assert manifest["incremental"] is False and manifest["base"] is None
    assert manifest["schema_revision"] and manifest["cumulo_version"] and manifest["created"]
    kinds = {f["kind"] for f in manifest["files"]}
    assert {"database", "keys", "secrets", "images", "volumes", "objects", "rings"} <= kinds, kinds
    for f in manifest["files"]:
        path = w.first / f["path"]
        assert path.stat().st_size == f["size"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == f["sha256"], f["path"]
        if f["kind"] in ("keys", "secrets"):  # never in the clear
            assert f["encrypted"] and b"gAAAA" == path.read_bytes()[:5]
    assert manifest["resources"]["images"] == [w.ids["image"]]
    assert w.ids["volume"] in manifest["resources"]["volumes"]
    assert w.first.stat().st_mode & 0o077 == 0


def test_restore_onto_the_running_cloud_is_refused(world: World) -> None:
    proc = world.cumulo("restore", str(world.backups), "--key-file", str(world.key_file), "--force")
    assert proc.returncode != 0 and "running" in proc.stderr, proc.stderr
    assert world.cloud.proc.poll() is None


def test_a_damaged_file_is_refused_by_name(world: World, tmp_path: Path) -> None:
    assert world.first is not None
    copy = tmp_path / world.first.name
    shutil.copytree(world.first, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    image_file = next(f for f in manifest["files"] if f["kind"] == "images" and world.ids["image"] in f["target"])
    damaged = copy / image_file["path"]
    os.chmod(damaged, 0o600)
    data = bytearray(damaged.read_bytes())
    data[1000] ^= 0xFF
    damaged.write_bytes(bytes(data))
    scratch = tmp_path / "scratch"
    proc = world.cumulo("restore", str(copy), "--key-file", str(world.key_file), state_dir=scratch)
    assert proc.returncode != 0 and str(damaged) in proc.stderr and "corrupted" in proc.stderr, proc.stderr
    assert not (scratch / "cumulo.db").exists()  # nothing written
    proc = world.cumulo("backup", "verify", "--checksums-only", str(copy), "-q")
    assert proc.returncode == 1 and str(damaged) in proc.stderr


def test_a_second_backup_copies_only_what_changed(world: World) -> None:
    w = world
    proc = w.cumulo("backup", "--to", str(w.backups), "--key-file", str(w.key_file), "--include",
                    "images,volumes,objects", "--quiet")
    assert proc.returncode == 0, proc.stderr
    first, second = sorted(w.backups.glob("cumulo-backup-*"))
    manifest = json.loads((second / "manifest.json").read_text())
    assert manifest["incremental"] is True and manifest["base"] == first.name
    by_kind: dict[str, set[bool]] = {}
    for f in manifest["files"]:
        by_kind.setdefault(f["kind"], set()).add(f["from"] is not None)
    assert by_kind["images"] == {True} and by_kind["objects"] == {True}  # unchanged: linked, not copied
    assert by_kind["database"] == {False} and by_kind["keys"] == {False}  # the database moved; secrets re-encrypted
    image = next(f for f in manifest["files"] if f["kind"] == "images" and w.ids["image"] in f["target"])
    assert os.path.samefile(first / image["path"], second / image["path"])
    assert manifest["linked"]["bytes"] >= len(IMAGE_BYTES) + len(OBJECT_BYTES)
    assert manifest["copied"]["files"] < len(manifest["files"])
    proc = w.cumulo("backup", "verify", "--checksums-only", str(w.backups), "-q")
    assert proc.returncode == 0 and second.name in proc.stdout, proc.stderr


def test_backup_verify_restores_into_scratch_and_compares_through_the_apis(world: World) -> None:
    assert world.first is not None
    proc = world.cumulo("backup", "verify", "--key-file", str(world.key_file), "--json", "-q", str(world.first))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["identical"] and not Path(report["scratch"]).exists()
    resources = report["resources"]
    for kind in ("projects", "users", "images", "flavors", "servers", "networks", "ports", "volumes"):
        assert resources[kind]["restored"] == resources[kind]["backup"] > 0, (kind, resources[kind])
    assert world.cloud.proc.poll() is None  # the live cloud ran on, untouched


def test_backups_in_a_container_of_the_clouds_object_storage(world: World, tmp_path: Path) -> None:
    """--to-container: the backup's objects in the cloud's own object storage (clouds.yaml entry
    `cumulo`), the second one's unchanged files copied inside the store; verify and restore read
    them back."""
    w = world
    clouds = {"OS_CLIENT_CONFIG_FILE": str(w.cloud.state_dir / "clouds.yaml")}

    def run(*args: str, state_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {**w.cloud.env, **clouds}
        if state_dir is not None:
            env["CUMULO_STATE_DIR"] = str(state_dir)
            env.pop("CUMULO_LOGGING__FILE", None)
        return subprocess.run([str(BIN / "cumulo"), *args], env=env, capture_output=True, text=True, timeout=180)

    local = tmp_path / "local"
    first = run("backup", "--to", str(local), "--to-container", "bk-remote", "--key-file", str(w.key_file), "-q")
    assert first.returncode == 0, first.stderr
    assert "container bk-remote (cumulo): " in first.stdout and "copied in the store 0 " in first.stdout, first.stdout
    second = run("backup", "--to", str(local), "--to-container", "bk-remote", "--key-file", str(w.key_file),
                 "-q", "--keep", "1")
    assert second.returncode == 0, second.stderr
    inside = second.stdout.split("copied in the store ", 1)[1]
    assert int(inside.split()[0]) > 0, second.stdout  # the unchanged files never crossed the network again
    older, newer = Path(first.stdout.split()[1]).name, Path(second.stdout.split()[1]).name
    assert [p.name for p in local.glob("cumulo-backup-*")] == [newer]  # --keep 1 here and in the container
    assert f"removed {older}" in second.stdout
    listing = httpx.get(f"{w.cloud.object_url}/v1/AUTH_{w.ids['admin_project']}/bk-remote?format=json",
                        headers=w.h()).json()
    names = {o["name"] for o in listing}
    assert f"{newer}/manifest.json" in names and not any(n.startswith(older) for n in names)
    manifest = json.loads((local / newer / "manifest.json").read_text())
    assert {f"{newer}/{f['path']}" for f in manifest["files"]} <= names
    proc = run("backup", "verify", "--from-container", "bk-remote", "--checksums-only", "-q")
    assert proc.returncode == 0 and newer in proc.stdout, proc.stdout + proc.stderr
    scratch = tmp_path / "scratch"
    proc = run("restore", "--from-container", "bk-remote", "--key-file", str(w.key_file), "-q", state_dir=scratch)
    assert proc.returncode == 0, proc.stderr
    assert (scratch / "cumulo.db").exists() and not (scratch / ".restore-incomplete").exists()
    image = next(f for f in manifest["files"] if f["kind"] == "images" and w.ids["image"] in f["target"])
    assert hashlib.sha256((scratch / image["target"]).read_bytes()).hexdigest() == image["sha256"]
    proc = run("restore", "--from-container", "no-such-container", "-q", state_dir=tmp_path / "other")
    assert proc.returncode != 0 and "no complete backup in container no-such-container" in proc.stderr, proc.stderr
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("cumulo-download-*/" + newer))  # scratch removed


def test_restore_into_a_wiped_state_dir_brings_everything_back(world: World) -> None:
    w = world
    assert w.first is not None
    stop_cloud(w.cloud)
    state = w.cloud.state_dir
    for entry in state.iterdir():
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    proc = w.cumulo("restore", str(w.first), "--key-file", str(w.backups.parent / "nope.key"))
    assert proc.returncode != 0 and "encrypted" in proc.stderr, proc.stderr
    proc = w.cumulo("restore", str(w.first), "--key-file", str(w.key_file))
    assert proc.returncode == 0, proc.stderr
    assert (state / "cumulo.db").exists() and not (state / "status.json").exists()
    w.cloud = start_cloud(state, "sqlite", {k: v for k, v in w.cloud.env.items() if k.startswith("CUMULO_")})
    r = httpx.get(f"{w.cloud.url}/auth/tokens", headers={"X-Auth-Token": w.token, "X-Subject-Token": w.token})
    assert r.status_code == 200, r.text  # issued before the backup, validated by the restored keys
    after = api_state(w.cloud, w.token, w.ids["admin_project"])
    ports_before = {k: v for k, v in w.before["ports"].items()}
    ports_after = {k: v for k, v in after["ports"].items() if k not in w.churned}
    assert set(after["ports"]) - set(ports_before) <= w.churned  # ports made while the backup ran, or none
    for kind in w.before:
        want, got = (ports_before, ports_after) if kind == "ports" else (w.before[kind], after[kind])
        assert set(got) == set(want), kind
        for rid in want:
            assert got[rid] == want[rid], (kind, rid)
    print(f"churned {len(w.churned)} ports, {len(set(after['ports']) & w.churned)} in the backup; "
          + ", ".join(f"{kind} {len(w.before[kind])}" for kind in w.before))
    for port in set(after["ports"]) & w.churned:  # a port the snapshot caught is whole
        assert after["ports"][port]["fixed_ips"], after["ports"][port]
    data = httpx.get(f"{w.cloud.image_url}/v2/images/{w.ids['image']}/file", headers=w.h())
    assert data.status_code == 200 and data.content == IMAGE_BYTES
    obj = httpx.get(f"{w.cloud.object_url}/v1/AUTH_{w.ids['admin_project']}/bk-container/blob", headers=w.h())
    assert obj.status_code == 200 and obj.content == OBJECT_BYTES
    assert hashlib.sha256(volume_file(w.cloud, w.ids["volume"]).read_bytes()).hexdigest() == w.volume_sha
    # and the restored cloud works on: a new server boots
    nova = w.h("compute 2.79")
    flavor = next(iter(f for f in after["flavors"].values() if f["name"].startswith("bk-flavor")))
    server = httpx.post(f"{w.cloud.compute_url}/servers", headers=nova, json={"server": {
        "name": unique("bk-after"), "flavorRef": flavor["id"], "imageRef": w.ids["image"], "networks": "none"}})
    assert server.status_code == 202, server.text
    sid = server.json()["server"]["id"]
    wait_for(lambda: httpx.get(f"{w.cloud.compute_url}/servers/{sid}", headers=nova).json()["server"]["status"]
             == "ACTIVE", 30, "a server on the restored cloud")


def test_postgresql_backup_and_restore_through_pg_dump(tmp_path: Path) -> None:
    from tests.functional.conftest import _drop_pg_database

    state = tmp_path / "state"
    state.mkdir()
    cloud = start_cloud(state, "postgres", {"CUMULO_SERVICES": "identity,image,compute,placement,network",
                                            "CUMULO_IMAGE__UPLOAD_GUEST_IMAGES": "false"})
    database = cloud.env["CUMULO_DATABASE__URL"].rsplit("/", 1)[1]
    w = World(cloud, tmp_path)
    try:
        w.token, body = cloud.token()
        project = httpx.post(f"{cloud.url}/projects", headers=w.h(), json={"project": {"name": unique("pg-proj")}})
        assert project.status_code == 201
        image = httpx.post(f"{cloud.image_url}/v2/images", headers=w.h(), json={
            "name": unique("pg-img"), "disk_format": "raw", "container_format": "bare"}).json()
        assert httpx.put(f"{cloud.image_url}/v2/images/{image['id']}/file", content=IMAGE_BYTES,
                         headers={**w.h(), "Content-Type": "application/octet-stream"}).status_code == 204
        net = httpx.post(f"{cloud.network_url}/networks", headers=w.h(), json={"network": {"name": unique("pg")}})
        assert net.status_code == 201
        before = {kind: httpx.get(url, headers=w.h()).json()[kind] for kind, url in (
            ("projects", f"{cloud.url}/projects"), ("images", f"{cloud.image_url}/v2/images"),
            ("networks", f"{cloud.network_url}/networks"))}
        proc = w.cumulo("backup", "--to", str(w.backups), "--key-file", str(w.key_file), "-q")
        assert proc.returncode == 0, proc.stderr
        (backup,) = w.backups.glob("cumulo-backup-*")
        manifest = json.loads((backup / "manifest.json").read_text())
        assert manifest["database"]["backend"] == "postgresql" and manifest["schema_revision"]
        assert any(f["target"] == "cumulo.pgdump" for f in manifest["files"])
        proc = w.cumulo("restore", str(backup), "--key-file", str(w.key_file), "--force")
        assert proc.returncode != 0 and "running" in proc.stderr, proc.stderr
        stop_cloud(cloud)
        shutil.rmtree(state)
        state.mkdir()
        proc = w.cumulo("restore", str(backup), "--key-file", str(w.key_file))  # the database still holds it
        assert proc.returncode != 0 and f"PostgreSQL database {database}" in proc.stderr, proc.stderr
        proc = w.cumulo("restore", str(backup), "--key-file", str(w.key_file), "--force")
        assert proc.returncode == 0, proc.stderr
        cloud = w.cloud = start_cloud(state, "postgres", {k: v for k, v in cloud.env.items()
                                                          if k.startswith("CUMULO_")})
        r = httpx.get(f"{cloud.url}/auth/tokens", headers={"X-Auth-Token": w.token, "X-Subject-Token": w.token})
        assert r.status_code == 200, r.text
        after = {kind: httpx.get(url, headers=w.h()).json()[kind] for kind, url in (
            ("projects", f"{cloud.url}/projects"), ("images", f"{cloud.image_url}/v2/images"),
            ("networks", f"{cloud.network_url}/networks"))}
        assert after == before
        data = httpx.get(f"{cloud.image_url}/v2/images/{image['id']}/file", headers=w.h())
        assert data.content == IMAGE_BYTES
    finally:
        stop_cloud(w.cloud)
        _drop_pg_database(database)


@pytest.mark.skipif(not shutil.which("qemu-storage-daemon"), reason="needs qemu-storage-daemon")
def test_a_volume_file_a_process_writes_is_read_through_qemu_img(tmp_path: Path) -> None:
    from cumulo.ops.backup import Progress, Source, Writer

    volume = tmp_path / "volume-x.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(volume), "64M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 1M", str(volume)], check=True,
                   capture_output=True)
    daemon = subprocess.Popen(["qemu-storage-daemon", "--nbd-server", f"addr.type=unix,addr.path={tmp_path}/nbd.sock",
                               "--blockdev", f"driver=file,node-name=f,filename={volume}",
                               "--blockdev", "driver=qcow2,node-name=q,file=f",
                               "--export", "type=nbd,id=e,node-name=q,writable=on"], stderr=subprocess.PIPE)
    try:
        wait_for(lambda: (tmp_path / "nbd.sock").exists(), 10, "the storage daemon")
        writer = Writer(tmp_path / "backup", None, {}, None, Progress())
        writer.add(Source(volume, "volumes", "host/volume-x.qcow2", "volumes"))
    finally:
        daemon.terminate()
        daemon.wait(10)
    (entry,) = writer.files
    assert entry["method"].startswith("qemu-img convert -U")  # a plain copy of a file being written could tear
    compared = subprocess.run(["qemu-img", "compare", str(volume), str(tmp_path / "backup" / entry["path"])],
                              capture_output=True, text=True)
    assert compared.returncode == 0, compared.stdout + compared.stderr


# counts on the guest's disk: the first boot writes a mark in the disk's last sector (past the root
# partition), each boot after it prints the mark it finds there
DISK_MARK = """#!/bin/sh
last=$(( $(cat /sys/block/vda/size) - 1 ))
m=$(dd if=/dev/vda bs=512 skip=$last count=1 2>/dev/null | tr -dc 'a-z0-9-')
if [ -z "$m" ]; then
  m="mark-$(cat /proc/sys/kernel/random/uuid)"
  echo "$m" | dd of=/dev/vda bs=512 seek=$last conv=fsync 2>/dev/null
  echo "disk-mark written: $m" > /dev/console
else
  echo "disk-mark found: $m" > /dev/console
fi
"""


def guest_pids(root: Path) -> list[int]:
    """QEMU processes whose command line names a path under ``root``."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu-system" in cmdline and str(root).encode() in cmdline:
                found.append(int(proc.name))
    return found


@pytest.mark.skipif(not shutil.which("qemu-system-x86_64") or not (Path(__file__).parents[2] / "guest" / "out" /
                    "cumulo-tiny.qcow2").exists(), reason="needs QEMU and the cumulo-tiny guest (guest/build.sh)")
def test_a_running_guest_is_backed_up_and_boots_from_its_restored_disk(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    import base64
    import signal

    tmp_path = tmp_path_factory.mktemp("qbk")  # short: QEMU's socket paths are limited to 107 bytes
    state = tmp_path / "s"
    state.mkdir()
    env = {"CUMULO_SERVICES": "identity,image,compute,placement,network", "CUMULO_COMPUTE__FAKE_NODES": "0",
           "CUMULO_COMPUTE__LOCAL_NODE": "true", "CUMULO_COMPUTE__HOST": "bknode",
           "CUMULO_COMPUTE__SHUTDOWN_TIMEOUT": "10", "CUMULO_COMPUTE__BUILD_TIMEOUT": "120"}
    cloud = start_cloud(state, "sqlite", env)
    w = World(cloud, tmp_path)
    try:
        w.token = cloud.token()[0]
        nova = w.h("compute 2.79")

        def tiny() -> str | None:
            images = httpx.get(f"{cloud.image_url}/v2/images?name=cumulo-tiny", headers=w.h()).json()["images"]
            return images[0]["id"] if images and images[0]["status"] == "active" else None

        image = wait_for(tiny, 60, "the cumulo-tiny image")
        r = httpx.post(f"{cloud.compute_url}/servers", headers=nova, json={"server": {
            "name": unique("bk-guest"), "flavorRef": "10", "imageRef": image, "networks": "none",
            "config_drive": True, "user_data": base64.b64encode(DISK_MARK.encode()).decode()}})
        assert r.status_code == 202, r.text
        sid = r.json()["server"]["id"]

        def console(c: Cloud) -> str:
            r = httpx.post(f"{c.compute_url}/servers/{sid}/action", headers=nova, json={"os-getConsoleOutput": {}})
            return str(r.json().get("output", "")) if r.status_code == 200 else ""

        written = wait_for(lambda: [line for line in console(cloud).splitlines() if "disk-mark written:" in line],
                           180, "the guest writing its disk mark")
        mark = written[0].split("disk-mark written: ", 1)[1].strip()  # type: ignore[index]
        assert mark.startswith("mark-"), written
        before = httpx.get(f"{cloud.compute_url}/servers/{sid}", headers=nova).json()["server"]
        assert before["status"] == "ACTIVE" and len(guest_pids(state)) == 1
        proc = w.cumulo("backup", "--to", str(w.backups), "--key-file", str(w.key_file), "-q")
        assert proc.returncode == 0, proc.stderr
        (backup,) = w.backups.glob("cumulo-backup-*")
        manifest = json.loads((backup / "manifest.json").read_text())
        held = {f["target"]: f for f in manifest["files"] if f["kind"] == "instances"}
        disk = held[f"bknode/{sid}/disk"]
        assert disk["method"].startswith("qemu-img convert -U"), disk  # the guest was writing it
        assert f"bknode/{sid}/instance.json" in held and f"bknode/{sid}/disk.config" in held
        assert any("/_base/" in target for target in held)  # the base the overlay sits on
        assert disk["size"] < 32 << 20  # the overlay's own clusters, not the whole image again
        stop_cloud(cloud)
        proc = w.cumulo("restore", str(backup), "--key-file", str(w.key_file), "--force")
        assert proc.returncode != 0 and "still run" in proc.stderr and sid in proc.stderr, proc.stderr
        for pid in guest_pids(state):  # the machine is lost: its guest with it
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not guest_pids(state), 20, "the guest gone")
        for entry in state.iterdir():
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        proc = w.cumulo("restore", str(backup), "--key-file", str(w.key_file))
        assert proc.returncode == 0, proc.stderr
        again = {k: v for k, v in cloud.env.items() if k.startswith("CUMULO_")}
        assert (state / ".resume-guests").exists()  # the guest that ran starts again: no option needed
        cloud = w.cloud = start_cloud(state, "sqlite", again)
        found = wait_for(lambda: [line for line in console(cloud).splitlines() if "disk-mark found:" in line],
                         180, "the restored guest booting from its restored disk")
        assert found[0].split("disk-mark found: ", 1)[1].strip() == mark  # type: ignore[index]
        after = httpx.get(f"{cloud.compute_url}/servers/{sid}", headers=nova).json()["server"]
        assert after["status"] == "ACTIVE" and len(guest_pids(state)) == 1
        assert not (state / ".resume-guests").exists()  # taken once: a later agent restart resumes nothing
        assert {k: after[k] for k in ("id", "name", "flavor", "image", "metadata", "OS-EXT-SRV-ATTR:host")} == \
            {k: before[k] for k in ("id", "name", "flavor", "image", "metadata", "OS-EXT-SRV-ATTR:host")}
    finally:
        stop_cloud(w.cloud)
        for pid in guest_pids(state):
            os.kill(pid, signal.SIGKILL)
