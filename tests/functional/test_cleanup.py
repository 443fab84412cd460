"""A server's delete that cannot release what the server held leaves nothing behind for good.

The cloud's own SQLite database is made to refuse one kind of write for a while (a trigger
raising an error, as a failing database would): the server's delete still wins at once, the
failure is logged with its cause (not as "already gone"), and once the database takes writes
again the reconciler finishes the cleanup: the port, or the shelved image, is gone."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.functional.conftest import Cloud, start_cloud, stop_cloud, unique, wait_for


@pytest.fixture
def own(tmp_path: Path) -> Iterator[Cloud]:
    cloud = start_cloud(tmp_path, "sqlite")
    yield cloud
    stop_cloud(cloud)


def h(token: str) -> dict[str, str]:
    return {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.47"}


def sql(cloud: Cloud, statement: str) -> None:
    with sqlite3.connect(cloud.state_dir / "cumulo.db", timeout=30) as db:
        db.execute(statement)


def status(cloud: Cloud, token: str, server_id: str) -> str:
    r = httpx.get(f"{cloud.compute_url}/servers/{server_id}", headers=h(token))
    return "gone" if r.status_code == 404 else str(r.json()["server"]["status"])


def boot(cloud: Cloud, token: str, **server: object) -> str:
    image = httpx.get(f"{cloud.image_url}/v2/images?name=cumulo-tiny", headers=h(token)).json()["images"][0]["id"]
    r = httpx.post(f"{cloud.compute_url}/servers", headers=h(token), json={"server": {
        "name": unique("vm"), "flavorRef": "10", "imageRef": image, **server}})
    assert r.status_code == 202, r.text
    server_id = str(r.json()["server"]["id"])
    wait_for(lambda: status(cloud, token, server_id) == "ACTIVE", 30, "the server ACTIVE")
    return server_id


def test_port_a_failed_delete_left_is_removed_by_the_reconciler(own: Cloud) -> None:
    token = own.token()[0]
    nh = {"X-Auth-Token": token}
    net = httpx.post(f"{own.network_url}/networks", headers=nh, json={"network": {"name": unique("n")}}
                     ).json()["network"]
    assert httpx.post(f"{own.network_url}/subnets", headers=nh, json={"subnet": {
        "network_id": net["id"], "ip_version": 4, "cidr": "10.71.0.0/24"}}).status_code == 201
    server_id = boot(own, token, networks=[{"uuid": net["id"]}])
    ports = httpx.get(f"{own.network_url}/ports?device_id={server_id}", headers=nh).json()["ports"]
    assert len(ports) == 1
    port = f"{own.network_url}/ports/{ports[0]['id']}"
    sql(own, "CREATE TRIGGER cumulo_test_refuse BEFORE DELETE ON network_port "
             "BEGIN SELECT RAISE(ABORT, 'injected: ports cannot be deleted now'); END")
    assert httpx.delete(f"{own.compute_url}/servers/{server_id}", headers=h(token)).status_code == 204
    wait_for(lambda: status(own, token, server_id) == "gone", 10, "the server gone (delete wins)")
    assert httpx.get(port, headers=nh).status_code == 200  # the database refused: the port is still there
    sql(own, "DROP TRIGGER cumulo_test_refuse")
    wait_for(lambda: httpx.get(port, headers=nh).status_code == 404, 30, "the reconciler to delete the port")
    log = (own.state_dir / "cumulo.log").read_text()
    assert f"releasing ports of server {server_id} failed" in log and "injected" in log
    assert f"port {ports[0]['id']} was already gone" not in log
    # and the subnet's address is free again: the network can go
    assert httpx.delete(f"{own.network_url}/networks/{net['id']}", headers=nh).status_code == 204


def test_shelved_image_a_failed_delete_left_is_removed_by_the_reconciler(own: Cloud) -> None:
    token = own.token()[0]
    server_id = boot(own, token, networks="none")
    own.cli("server", "shelve", "--wait", server_id)
    wait_for(lambda: status(own, token, server_id) == "SHELVED_OFFLOADED", 30, "the server SHELVED_OFFLOADED")
    images = httpx.get(f"{own.image_url}/v2/images", headers=h(token)).json()["images"]
    shelved = [i for i in images if i["name"].endswith("-shelved")]
    assert len(shelved) == 1
    image = f"{own.image_url}/v2/images/{shelved[0]['id']}"
    sql(own, "CREATE TRIGGER cumulo_test_refuse BEFORE UPDATE OF status ON image_image WHEN NEW.status = 'deleted' "
             "BEGIN SELECT RAISE(ABORT, 'injected: images cannot be deleted now'); END")
    assert httpx.delete(f"{own.compute_url}/servers/{server_id}", headers=h(token)).status_code == 204
    wait_for(lambda: status(own, token, server_id) == "gone", 10, "the server gone (delete wins)")
    assert httpx.get(image, headers=h(token)).json()["status"] == "active"
    sql(own, "DROP TRIGGER cumulo_test_refuse")
    wait_for(lambda: httpx.get(image, headers=h(token)).status_code == 404, 30, "the reconciler to delete the image")
    log = (own.state_dir / "cumulo.log").read_text()
    assert f"releasing image of server {server_id} failed" in log and "injected" in log
    assert f"image {shelved[0]['id']} was already gone" not in log
