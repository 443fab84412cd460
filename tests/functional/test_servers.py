"""Servers on fake nodes through the whole control plane: quota, scheduler, placement claim, the
agent over the bus; No valid host that says why; delete frees everything; a dead agent's build
ends in ERROR, never stuck."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import httpx
import pytest

from tests.functional.conftest import BIN, Cloud, unique

# an agent process of its own reaches the controller over RabbitMQ: only the postgres cloud has one
WITH_RABBITMQ = pytest.mark.parametrize("cloud", ["postgres"], indirect=True)


def h(token: str, version: str = "2.47") -> dict[str, str]:
    return {"X-Auth-Token": token, "OpenStack-API-Version": f"compute {version}"}


def image_id(cloud: Cloud, token: str) -> str:
    return str(httpx.get(f"{cloud.image_url}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": token})
               .json()["images"][0]["id"])


def create(cloud: Cloud, token: str, flavor: str = "10", **extra: object) -> httpx.Response:
    return httpx.post(f"{cloud.compute_url}/servers", headers=h(token), json={"server": {
        "name": unique("srv"), "flavorRef": flavor, "imageRef": image_id(cloud, token), "networks": "none",
        **extra}})


def wait_status(cloud: Cloud, token: str, server_id: str, want: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        server = httpx.get(f"{cloud.compute_url}/servers/{server_id}", headers=h(token)).json()["server"]
        if server["status"] == want or time.monotonic() > deadline:
            return dict(server)
        time.sleep(0.2)


def test_sdk_create_active_and_delete_frees_placement(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    conn = cloud.sdk()
    server = conn.compute.create_server(name=unique("sdk"), flavor_id="10", image_id=image_id(cloud, token),
                                        networks="none")
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=30)
    shown = httpx.get(f"{cloud.compute_url}/servers/{server.id}", headers=h(token)).json()["server"]
    assert shown["OS-EXT-SRV-ATTR:host"].startswith("fake-") and shown["flavor"]["ram"] == 128
    alloc = httpx.get(f"{cloud.placement_url}/allocations/{server.id}", headers={"X-Auth-Token": token}).json()
    assert list(alloc["allocations"].values())[0]["resources"] == {"VCPU": 1, "MEMORY_MB": 128, "DISK_GB": 1}
    conn.compute.delete_server(server)
    assert httpx.get(f"{cloud.compute_url}/servers/{server.id}", headers=h(token)).status_code == 404
    alloc = httpx.get(f"{cloud.placement_url}/allocations/{server.id}", headers={"X-Auth-Token": token}).json()
    assert alloc["allocations"] == {}


def test_cli_server_create_list_delete(cloud: Cloud) -> None:
    name = unique("cli")
    out = json.loads(cloud.cli("server", "create", "--flavor", "cumulo.nano", "--image", "cumulo-tiny",
                               "--nic", "none", "--wait", name, "-f", "json").stdout)
    assert out["status"] == "ACTIVE"
    assert name in [s["Name"] for s in json.loads(cloud.cli("server", "list", "-f", "json").stdout)]
    cloud.cli("server", "delete", "--wait", name)
    assert name not in [s["Name"] for s in json.loads(cloud.cli("server", "list", "-f", "json").stdout)]


def test_no_valid_host_says_why_to_admins_only(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    flavor = httpx.post(f"{cloud.compute_url}/flavors", headers=h(token), json={"flavor": {
        "name": unique("huge"), "ram": 900000, "vcpus": 1, "disk": 1}}).json()["flavor"]
    cloud.cli("quota", "set", "--ram", "-1", "admin")
    r = create(cloud, token, flavor=flavor["id"])
    assert r.status_code == 202, r.text
    server = wait_status(cloud, token, r.json()["server"]["id"], "ERROR")
    assert server["status"] == "ERROR"
    assert "No valid host was found." in server["fault"]["message"] and "RamFilter removed" in \
        server["fault"]["message"], server["fault"]
    assert httpx.delete(f"{cloud.compute_url}/servers/{server['id']}", headers=h(token)).status_code == 204
    cloud.cli("quota", "set", "--ram", "51200", "admin")
    # a member learns that there was no host, not the per-filter counts
    demo, _ = cloud.token("demo", cloud.demo_password, "demo")
    assert create(cloud, demo, availability_zone=unique("nowhere")).status_code == 400  # no such zone
    empty_zone = unique("empty")
    cloud.cli("aggregate", "create", "--zone", empty_zone, unique("agg"))  # a zone without hosts
    r = create(cloud, demo, availability_zone=empty_zone)
    assert r.status_code == 202
    server = wait_status(cloud, demo, r.json()["server"]["id"], "ERROR")
    assert server["fault"]["message"] == "No valid host was found." and "details" not in server["fault"]
    httpx.delete(f"{cloud.compute_url}/servers/{server['id']}", headers=h(demo))


def test_quota_and_bad_input(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    demo, _ = cloud.token("demo", cloud.demo_password, "demo")
    r = create(cloud, demo, flavor="5", min_count=3, max_count=3)  # 24 cores > 20
    assert r.status_code == 403 and "Quota exceeded for cores" in r.json()["forbidden"]["message"]
    servers = httpx.get(f"{cloud.compute_url}/servers", headers=h(demo)).json()["servers"]
    assert servers == []  # nothing half-made is left behind
    for body, status in (({"name": "x"}, 400), ({"name": "x", "flavorRef": "nope", "imageRef": "x",
                                                   "networks": "none"}, 400),
                         ({"name": "x", "flavorRef": "10", "imageRef": "no-such-image", "networks": "none"}, 400),
                         ({"name": "x", "flavorRef": "10", "imageRef": image_id(cloud, demo)}, 400)):
        r = httpx.post(f"{cloud.compute_url}/servers", headers=h(demo, "2.47"), json={"server": body})
        assert r.status_code == status, (body, r.text)
    assert httpx.get(f"{cloud.compute_url}/servers/nope", headers=h(demo)).status_code == 404


@WITH_RABBITMQ
def test_build_on_a_dead_agent_ends_in_error(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    host = unique("doomed")
    proc = subprocess.Popen([str(BIN / "cumulo"), "agent", "--host", host, "--fake"], env=cloud.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    zone = unique("dz")
    try:
        deadline = time.monotonic() + 20
        while host not in {s["host"] for s in httpx.get(f"{cloud.compute_url}/os-services",
                                                          headers=h(token, "2.53")).json()["services"]}:
            assert time.monotonic() < deadline
            time.sleep(0.3)
        agg = json.loads(cloud.cli("aggregate", "create", "--zone", zone, unique("agg"), "-f", "json").stdout)
        cloud.cli("aggregate", "add", "host", str(agg["id"]), host)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    r = create(cloud, token, availability_zone=zone)  # scheduled to the dead host while it still looks up
    assert r.status_code == 202
    server = wait_status(cloud, token, r.json()["server"]["id"], "ERROR", timeout=30)
    assert server["status"] == "ERROR" and "did not finish in time" in server["fault"]["message"]
    alloc = httpx.get(f"{cloud.placement_url}/allocations/{server['id']}", headers={"X-Auth-Token": token}).json()
    assert alloc["allocations"] == {}
    httpx.delete(f"{cloud.compute_url}/servers/{server['id']}", headers=h(token))
    cloud.cli("aggregate", "remove", "host", str(agg["id"]), host)
    cloud.cli("aggregate", "delete", str(agg["id"]))


def test_power_actions_lock_and_wrong_state_conflicts(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    demo, _ = cloud.token("demo", cloud.demo_password, "demo")
    r = create(cloud, demo)
    server_id = r.json()["server"]["id"]
    assert wait_status(cloud, demo, server_id, "ACTIVE")["status"] == "ACTIVE"
    url = f"{cloud.compute_url}/servers/{server_id}/action"
    for action, status, power in (({"os-stop": None}, "SHUTOFF", 4), ({"os-start": None}, "ACTIVE", 1),
                                  ({"pause": None}, "PAUSED", 3), ({"unpause": None}, "ACTIVE", 1),
                                  ({"suspend": None}, "SUSPENDED", 7), ({"resume": None}, "ACTIVE", 1),
                                  ({"reboot": {"type": "HARD"}}, "ACTIVE", 1)):
        assert httpx.post(url, headers=h(demo), json=action).status_code == 202, action
        deadline = time.monotonic() + 15
        while True:
            server = httpx.get(f"{cloud.compute_url}/servers/{server_id}", headers=h(demo)).json()["server"]
            if (server["status"], server["OS-EXT-STS:task_state"]) == (status, None) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert server["status"] == status and server["OS-EXT-STS:power_state"] == power, (action, server)
    # the wrong state is a 409, an unknown action a 400
    r = httpx.post(url, headers=h(demo), json={"os-start": None})
    assert r.status_code == 409 and "conflictingRequest" in r.json()
    assert httpx.post(url, headers=h(demo), json={"reboot": {"type": "GENTLE"}}).status_code == 400
    # the CLI drives the same actions; a locked server refuses them to its member owner
    cloud.cli("server", "stop", server_id, cloud="cumulo-demo")
    assert wait_status(cloud, demo, server_id, "SHUTOFF")["status"] == "SHUTOFF"
    assert httpx.post(url, headers=h(demo, "2.73"), json={"lock": {"locked_reason": "audit"}}).status_code == 202
    shown = httpx.get(f"{cloud.compute_url}/servers/{server_id}", headers=h(demo, "2.73")).json()["server"]
    assert shown["locked"] is True and shown["locked_reason"] == "audit"
    assert httpx.post(url, headers=h(demo), json={"os-start": None}).status_code == 409
    assert httpx.post(url, headers=h(demo), json={"unlock": None}).status_code == 202
    assert httpx.post(url, headers=h(demo), json={"os-start": None}).status_code == 202
    assert wait_status(cloud, demo, server_id, "ACTIVE")["status"] == "ACTIVE"
    httpx.delete(f"{cloud.compute_url}/servers/{server_id}", headers=h(demo))


def test_server_metadata_with_cli_and_http(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    r = create(cloud, token, metadata={"role": "web"})
    server_id = r.json()["server"]["id"]
    wait_status(cloud, token, server_id, "ACTIVE")
    cloud.cli("server", "set", "--property", "tier=gold", server_id)
    shown = json.loads(cloud.cli("server", "show", server_id, "-f", "json").stdout)
    assert shown["properties"] == {"role": "web", "tier": "gold"}
    url = f"{cloud.compute_url}/servers/{server_id}/metadata"
    assert httpx.put(f"{url}/tier", headers=h(token), json={"meta": {"tier": "silver"}}).json() == {
        "meta": {"tier": "silver"}}
    assert httpx.put(f"{url}/tier", headers=h(token), json={"meta": {"other": "x"}}).status_code == 400
    assert httpx.delete(f"{url}/role", headers=h(token)).status_code == 204
    assert httpx.get(f"{url}/role", headers=h(token)).status_code == 404
    assert httpx.put(url, headers=h(token), json={"metadata": {"a": "1"}}).json() == {"metadata": {"a": "1"}}
    assert httpx.post(url, headers=h(token), json={"metadata": {"b": 2}}).status_code == 400
    httpx.delete(f"{cloud.compute_url}/servers/{server_id}", headers=h(token))


@WITH_RABBITMQ
def test_agent_killed_then_delete_evacuate_and_orphan_cleanup(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    """A node's agent dies with two servers on it: deleting one succeeds at once and frees its claim,
    the other is evacuated once the host is forced down; when the agent comes back, the node
    reconcile destroys both copies it still holds."""
    token = admin[0]
    host = unique("phoenix")
    state = cloud.state_dir / "fake" / f"{host}.json"

    def start_agent() -> subprocess.Popen:
        return subprocess.Popen([str(BIN / "cumulo"), "agent", "--host", host, "--fake"], env=cloud.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def held() -> set[str]:
        return set(json.loads(state.read_text())["instances"]) if state.exists() else set()

    proc = start_agent()
    try:
        deadline = time.monotonic() + 20
        while host not in {s["host"] for s in httpx.get(f"{cloud.compute_url}/os-services",
                                                          headers=h(token, "2.53")).json()["services"]}:
            assert time.monotonic() < deadline
            time.sleep(0.3)
        doomed, kept = (create(cloud, token, availability_zone=f"nova:{host}").json()["server"]["id"]
                        for _ in range(2))
        for sid in (doomed, kept):
            assert wait_status(cloud, token, sid, "ACTIVE")["OS-EXT-SRV-ATTR:host"] == host
        assert held() == {doomed, kept}
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # delete while the agent is dead: gone at once, claim freed
    assert httpx.delete(f"{cloud.compute_url}/servers/{doomed}", headers=h(token)).status_code == 204
    assert httpx.get(f"{cloud.compute_url}/servers/{doomed}", headers=h(token)).status_code == 404
    assert httpx.get(f"{cloud.placement_url}/allocations/{doomed}",
                     headers={"X-Auth-Token": token}).json()["allocations"] == {}
    # evacuate refuses while the host is up, works once it is forced down
    url = f"{cloud.compute_url}/servers/{kept}/action"
    assert httpx.post(url, headers=h(token, "2.53"), json={"evacuate": {}}).status_code == 409
    service = [s for s in httpx.get(f"{cloud.compute_url}/os-services?host={host}",
                                    headers=h(token, "2.53")).json()["services"]][0]
    services_url = f"{cloud.compute_url}/os-services/{service['id']}"
    assert httpx.put(services_url, headers=h(token, "2.53"), json={"forced_down": True}).status_code == 200
    assert httpx.post(url, headers=h(token, "2.53"), json={"evacuate": {}}).status_code == 200
    moved = wait_status(cloud, token, kept, "ACTIVE")
    deadline = time.monotonic() + 15
    while moved["OS-EXT-SRV-ATTR:host"] == host and time.monotonic() < deadline:
        time.sleep(0.2)
        moved = wait_status(cloud, token, kept, "ACTIVE")
    assert moved["OS-EXT-SRV-ATTR:host"].startswith("fake-")
    migrations = httpx.get(f"{cloud.compute_url}/os-migrations?instance_uuid={kept}",
                           headers=h(token, "2.59")).json()["migrations"]
    assert [(m["migration_type"], m["status"]) for m in migrations] == [("evacuation", "done")]
    # the agent returns: what it still holds belongs to nobody here and is destroyed
    assert httpx.put(services_url, headers=h(token, "2.53"), json={"forced_down": False}).status_code == 200
    proc = start_agent()
    try:
        deadline = time.monotonic() + 20
        while held() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert held() == set()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    httpx.delete(f"{cloud.compute_url}/servers/{kept}", headers=h(token))
