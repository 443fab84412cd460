"""Compute agents on the bus: fake nodes register, heartbeat, appear in os-services and
os-hypervisors and as resource providers in placement; operators disable and force them down;
an agent that stops is shown down.  With RabbitMQ the agent runs as its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import httpx

from tests.functional.conftest import BIN, Cloud, unique


def h(token: str, version: str = "2.53") -> dict[str, str]:
    return {"X-Auth-Token": token, "OpenStack-API-Version": f"compute {version}"}


def services(cloud: Cloud, token: str) -> dict[str, dict]:
    r = httpx.get(f"{cloud.compute_url}/os-services", headers=h(token))
    return {s["host"]: s for s in r.json()["services"]}


def test_fake_nodes_register_with_services_hypervisors_and_placement(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    seen = services(cloud, token)
    assert {"fake-0", "fake-1"} <= set(seen) and seen["fake-0"]["state"] == "up"
    hypervisors = httpx.get(f"{cloud.compute_url}/os-hypervisors/detail", headers=h(token, "2.53")).json()
    node = [x for x in hypervisors["hypervisors"] if x["hypervisor_hostname"] == "fake-0"][0]
    assert node["hypervisor_type"] == "fake" and node["vcpus"] == 16 and node["state"] == "up"
    listing = json.loads(cloud.cli("hypervisor", "list", "-f", "json").stdout)
    assert "fake-1" in {x["Hypervisor Hostname"] for x in listing}
    inv = httpx.get(f"{cloud.placement_url}/resource_providers/{node['id']}/inventories",
                    headers={"X-Auth-Token": token}).json()["inventories"]
    assert inv["VCPU"]["total"] == 16 and inv["VCPU"]["allocation_ratio"] == 16.0
    assert inv["MEMORY_MB"]["allocation_ratio"] == 1.5 and inv["DISK_GB"]["allocation_ratio"] == 1.0


def test_disable_with_reason_enable_and_force_down(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    cloud.cli("compute", "service", "set", "--disable", "--disable-reason", "maintenance", "fake-1", "nova-compute")
    seen = services(cloud, token)["fake-1"]
    assert seen["status"] == "disabled" and seen["disabled_reason"] == "maintenance"
    r = httpx.put(f"{cloud.compute_url}/os-services/{seen['id']}", headers=h(token), json={"forced_down": True})
    assert r.status_code == 200 and r.json()["service"]["state"] == "down"
    r = httpx.put(f"{cloud.compute_url}/os-services/{seen['id']}", headers=h(token),
                  json={"status": "enabled", "forced_down": False})
    assert r.json()["service"]["status"] == "enabled" and r.json()["service"]["state"] == "up"
    r = httpx.put(f"{cloud.compute_url}/os-services/{seen['id']}", headers=h(token), json={"status": "sideways"})
    assert r.status_code == 400
    demo, _ = cloud.token("demo", cloud.demo_password, "demo")
    assert httpx.get(f"{cloud.compute_url}/os-services", headers=h(demo)).status_code == 403


def test_separate_agent_process_over_rabbitmq_goes_down_when_stopped(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    if cloud.backend != "postgres":  # the only backend whose bus crosses processes
        out = subprocess.run([str(BIN / "cumulo"), "agent", "--host", "x", "--fake"], env=cloud.env,
                             capture_output=True, text=True, timeout=30)
        assert out.returncode != 0 and "shared bus" in out.stderr
        return
    token = admin[0]
    host = unique("agent")
    proc = subprocess.Popen([str(BIN / "cumulo"), "agent", "--host", host, "--fake", "--vcpus", "4"], env=cloud.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while services(cloud, token).get(host, {}).get("state") != "up":
            assert time.monotonic() < deadline, "the agent never registered"
            time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    deadline = time.monotonic() + 30
    while services(cloud, token)[host]["state"] != "down":
        assert time.monotonic() < deadline, "a stopped agent was still shown up"
        time.sleep(0.5)


def test_aggregates_zones_and_placement_membership(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    zone = unique("az")
    agg = json.loads(cloud.cli("aggregate", "create", "--zone", zone, unique("agg"), "-f", "json").stdout)
    cloud.cli("aggregate", "add", "host", str(agg["id"]), "fake-0")
    cloud.cli("aggregate", "set", "--property", "ssd=true", str(agg["id"]))
    shown = json.loads(cloud.cli("aggregate", "show", str(agg["id"]), "-f", "json").stdout)
    assert shown["hosts"] == ["fake-0"] and shown["properties"]["ssd"] == "true"
    zones = httpx.get(f"{cloud.compute_url}/os-availability-zone", headers=h(token)).json()["availabilityZoneInfo"]
    assert {zone, "nova"} <= {z["zoneName"] for z in zones}
    detail = httpx.get(f"{cloud.compute_url}/os-availability-zone/detail", headers=h(token)).json()
    assert "fake-0" in [z for z in detail["availabilityZoneInfo"] if z["zoneName"] == zone][0]["hosts"]
    # the membership shows in placement, so scheduling can filter on it
    node = [x for x in httpx.get(f"{cloud.compute_url}/os-hypervisors", headers=h(token)).json()["hypervisors"]
            if x["hypervisor_hostname"] == "fake-0"][0]
    aggs = httpx.get(f"{cloud.placement_url}/resource_providers/{node['id']}/aggregates",
                     headers={"X-Auth-Token": token, "OpenStack-API-Version": "placement 1.19"}).json()
    assert httpx.get(f"{cloud.compute_url}/os-aggregates/{agg['id']}", headers=h(token, "2.41")).json()[
        "aggregate"]["uuid"] in aggs["aggregates"]
    # a host cannot sit in two zones; a non-empty aggregate cannot be deleted; unknown hosts are 404
    other = json.loads(cloud.cli("aggregate", "create", "--zone", unique("az2"), unique("agg"), "-f", "json").stdout)
    r = httpx.post(f"{cloud.compute_url}/os-aggregates/{other['id']}/action", headers=h(token),
                   json={"add_host": {"host": "fake-0"}})
    assert r.status_code == 409
    r = httpx.post(f"{cloud.compute_url}/os-aggregates/{other['id']}/action", headers=h(token),
                   json={"add_host": {"host": "no-such-host"}})
    assert r.status_code == 404
    assert httpx.delete(f"{cloud.compute_url}/os-aggregates/{agg['id']}", headers=h(token)).status_code == 400
    cloud.cli("aggregate", "remove", "host", str(agg["id"]), "fake-0")
    cloud.cli("aggregate", "delete", str(agg["id"]))
    cloud.cli("aggregate", "delete", str(other["id"]))
