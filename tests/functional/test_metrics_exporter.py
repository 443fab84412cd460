"""The leader's operator ``/metrics`` after real operations on a fake-node cloud: openstack-exporter's
cloud-level gauges (names, labels, values), Ceilometer's per-instance meters, and ``cumulo usage
report`` against os-simple-tenant-usage and a resize done through the API.

One cloud (SQLite, in-process bus, two fake compute nodes, block storage) serves the module; the
gauges are refreshed every half second, the meters every second.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.functional.conftest import (
    BIN,
    BLOCK_STORAGE_SERVICES,
    Cloud,
    start_cloud,
    stop_cloud,
    unique,
    wait_for,
)

pytestmark = pytest.mark.functional
Samples = dict[str, list[tuple[dict[str, str], float]]]


@pytest.fixture(scope="module")
def mcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("exporter"), "sqlite", {
        "CUMULO_SERVICES": BLOCK_STORAGE_SERVICES, "CUMULO_METRICS__CLOUD_INTERVAL": "0.5",
        "CUMULO_METRICS__METER_INTERVAL": "1"})
    yield c
    stop_cloud(c)


def scrape(cloud: Cloud) -> Samples:
    r = httpx.get(f"http://127.0.0.1:{cloud.metrics_port}/metrics", timeout=10)
    assert r.status_code == 200
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    found = [v for lv, v in samples.get(name, []) if all(lv.get(k) == w for k, w in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for lv, v in samples.get(name, []) if all(lv.get(k) == w for k, w in labels.items()))


class Compute:
    def __init__(self, cloud: Cloud, token: str) -> None:
        self.cloud, self.h = cloud, {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.47"}

    def __call__(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        r = httpx.request(method, f"{self.cloud.compute_url}{path}", json=body, headers=self.h, timeout=30)
        assert r.status_code == status, r.text
        return r.json() if r.content else None

    def boot(self, flavor: str = "10") -> str:
        image = httpx.get(f"{self.cloud.image_url}/v2/images?name=cumulo-tiny",
                          headers={"X-Auth-Token": self.h["X-Auth-Token"]}).json()["images"][0]["id"]
        sid = self("POST", "/servers", {"server": {"name": unique("m"), "flavorRef": flavor, "imageRef": image,
                                                   "networks": "none"}}, 202)["server"]["id"]
        self.wait(sid, "ACTIVE")
        return str(sid)

    def wait(self, sid: str, status: str) -> dict[str, Any]:
        return wait_for(lambda: (s := self("GET", f"/servers/{sid}")["server"])["status"] == status and s,  # type: ignore
                        30, f"server {sid} {status}")


@pytest.fixture(scope="module")
def world(mcloud: Cloud) -> dict[str, Any]:
    """Real operations: two servers (one stopped), a volume, a floating IP, a project."""
    token, body = mcloud.token()
    project = body["project"]["id"]
    nova = Compute(mcloud, token)
    before = scrape(mcloud)
    a, b = nova.boot(), nova.boot()
    nova("POST", f"/servers/{b}/action", {"os-stop": None}, 202)
    nova.wait(b, "SHUTOFF")
    h = {"X-Auth-Token": token}
    vol = httpx.post(f"{mcloud.volume_url}/{project}/volumes", headers=h,
                     json={"volume": {"size": 1, "name": unique("mv")}}).json()["volume"]["id"]
    wait_for(lambda: httpx.get(f"{mcloud.volume_url}/{project}/volumes/{vol}", headers=h)
             .json()["volume"]["status"] == "available", 30, "the volume available")
    net = mcloud.network_url
    ext = httpx.post(f"{net}/networks", headers=h, json={"network": {"name": unique("ext"),
                                                                     "router:external": True}}).json()["network"]
    r = httpx.post(f"{net}/subnets", headers=h, json={"subnet": {"network_id": ext["id"], "cidr": "198.51.100.0/24",
                                                                 "ip_version": 4}})
    assert r.status_code == 201, r.text
    r = httpx.post(f"{net}/floatingips", headers=h, json={"floatingip": {"floating_network_id": ext["id"]}})
    assert r.status_code == 201, r.text
    fip = r.json()["floatingip"]
    r = httpx.post(f"{mcloud.url}/projects", headers=h, json={"project": {"name": unique("mp")}})
    assert r.status_code == 201, r.text
    return {"token": token, "project": project, "a": a, "b": b, "volume": vol, "fip": fip, "before": before,
            "nova": nova, "new_project": r.json()["project"]["id"]}


def settled(cloud: Cloud, check: Any, what: str) -> Samples:
    """The first scrape for which ``check(samples)`` holds (the gauges refresh every half second)."""
    last: list[Samples] = []

    def ok() -> bool:
        last[:] = [scrape(cloud)]
        return bool(check(last[0]))
    wait_for(ok, 20, what, every=0.3)
    return last[0]


def test_nova_gauges_after_two_boots_and_a_stop(mcloud: Cloud, world: dict[str, Any]) -> None:
    a, b, project = world["a"], world["b"], world["project"]
    s = settled(mcloud, lambda s: value(s, "openstack_nova_server_status", id=b) == 11, "b SHUTOFF in the gauges")
    assert value(s, "openstack_nova_up") == 1
    assert value(s, "openstack_nova_total_vms") == 2
    labels = next(lv for lv, _ in s["openstack_nova_server_status"] if lv["id"] == a)
    assert labels["status"] == "ACTIVE" and labels["tenant_id"] == project and labels["uuid"] == a
    assert labels["hypervisor_hostname"].startswith("fake-") and labels["flavor_id"] == "10"
    assert len(labels["host_id"]) == 56  # Nova's hostId, a SHA-224
    assert value(s, "openstack_nova_server_status", id=a) == 0  # ACTIVE is 0 in openstack-exporter
    assert total(s, "openstack_nova_running_vms", tenant_id=project) == 1  # the stopped one is not running
    for host in ("fake-0", "fake-1"):
        assert value(s, "openstack_nova_agent_state", hostname=host, service="nova-compute") == 1
    assert value(s, "openstack_nova_agent_state", hostname="fake-0")  # adminState etc. present
    # flavor 10 is 1 vCPU, 128 MiB, 1 GiB: both servers hold it (a stopped one keeps its claim)
    assert total(s, "openstack_nova_vcpus_used") == 2
    assert total(s, "openstack_nova_memory_used_bytes") == 2 * 128 * 2**20
    assert total(s, "openstack_nova_local_storage_used_bytes") == 2 * 2**30
    assert value(s, "openstack_nova_vcpus_available", hostname="fake-0") > 0
    assert value(s, "openstack_nova_limits_vcpus_used", tenant="admin", tenant_id=project) == 2
    assert value(s, "openstack_nova_limits_instances_used", tenant="admin", tenant_id=project) == 2
    assert value(s, "openstack_nova_limits_memory_used", tenant="admin", tenant_id=project) == 256
    assert value(s, "openstack_nova_limits_vcpus_max", tenant="admin", tenant_id=project) == 20
    assert value(s, "openstack_nova_limits_instances_max", tenant="admin", tenant_id=project) == 10
    assert value(s, "openstack_nova_flavors") >= 7


def test_placement_cinder_neutron_glance_identity_gauges(mcloud: Cloud, world: dict[str, Any]) -> None:
    project = world["project"]
    s = settled(mcloud, lambda s: value(s, "openstack_cinder_volumes") == 1 and value(
        s, "openstack_identity_project_info", id=world["new_project"]) == 1, "the volume and project")
    for service in ("nova", "neutron", "glance", "cinder", "identity", "placement"):
        assert value(s, f"openstack_{service}_up") == 1, service
    assert total(s, "openstack_placement_resource_usage", resourcetype="VCPU") == 2
    assert value(s, "openstack_placement_resource_total", hostname="fake-0", resourcetype="MEMORY_MB") > 0
    assert value(s, "openstack_placement_resource_allocation_ratio", hostname="fake-0", resourcetype="VCPU") > 0
    vol = world["volume"]
    assert value(s, "openstack_cinder_volume_status", id=vol, status="available", tenant_id=project, size="1") == 1
    assert value(s, "openstack_cinder_volume_gb", id=vol) == 1
    assert value(s, "openstack_cinder_volume_status_counter", status="available") == 1
    assert value(s, "openstack_cinder_volume_status_counter", status="error") == 0
    assert value(s, "openstack_cinder_limits_volume_used_gb", tenant="admin", tenant_id=project) == 1
    assert total(s, "openstack_cinder_agent_state") >= 1
    assert total(s, "openstack_cinder_pool_capacity_total_gb") > 0
    fip = world["fip"]
    assert value(s, "openstack_neutron_floating_ips") == 1
    assert value(s, "openstack_neutron_floating_ip", id=fip["id"], status="DOWN",
                 floating_ip_address=fip["floating_ip_address"], project_id=project) == 1
    assert value(s, "openstack_neutron_networks") >= 1 and value(s, "openstack_neutron_subnets") >= 1
    assert value(s, "openstack_glance_images") >= 1
    assert total(s, "openstack_glance_image_bytes") > 0
    h = {"X-Auth-Token": world["token"]}
    projects = httpx.get(f"{mcloud.url}/projects", headers=h).json()["projects"]
    users = httpx.get(f"{mcloud.url}/users", headers=h).json()["users"]
    assert value(s, "openstack_identity_projects") == len(projects)
    assert value(s, "openstack_identity_users") == len(users)
    assert value(s, "openstack_identity_domains") >= 1


def test_ceilometer_meters_per_instance(mcloud: Cloud, world: dict[str, Any]) -> None:
    a, project = world["a"], world["project"]
    s = settled(mcloud, lambda s: value(s, "ceilometer_cpu", resource_id=a) is not None, "a's cpu meter")
    assert value(s, "ceilometer_vcpus", resource_id=a, project_id=project) == 1
    assert value(s, "ceilometer_memory", resource_id=a) == 128
    assert value(s, "ceilometer_memory_usage", resource_id=a) == 128  # the fake guest uses all it has
    assert value(s, "ceilometer_disk_root_size", resource_id=a) == 1
    assert value(s, "ceilometer_cpu", resource_id=a) >= 0
    assert value(s, "ceilometer_vcpus", resource_id=world["b"]) is None  # a stopped server is not metered


def test_a_deleted_server_leaves_the_gauges(mcloud: Cloud, world: dict[str, Any]) -> None:
    nova = world["nova"]
    c = nova.boot()
    settled(mcloud, lambda s: value(s, "openstack_nova_total_vms") == 3, "three servers")
    nova("DELETE", f"/servers/{c}", status=204)
    s = settled(mcloud, lambda s: value(s, "openstack_nova_total_vms") == 2, "two servers again")
    assert value(s, "openstack_nova_server_status", id=c) is None
    assert value(s, "openstack_nova_limits_instances_used", tenant="admin") == 2


def test_stuck_resources_and_disks_for_the_alert_rules(mcloud: Cloud, world: dict[str, Any]) -> None:
    s = scrape(mcloud)
    for kind in ("server", "volume", "snapshot"):
        assert value(s, "cumulo_resources_stuck", kind=kind) == 0, kind
        assert value(s, "cumulo_resources_transitional", kind=kind) == 0, kind
    state = value(s, "cumulo_filesystem_size_bytes", place="state", path=str(mcloud.state_dir))
    free = value(s, "cumulo_filesystem_avail_bytes", place="state", path=str(mcloud.state_dir))
    assert state and free is not None and 0 < free <= state


def test_a_scrape_runs_no_query(mcloud: Cloud, world: dict[str, Any]) -> None:
    # the figures come from the leader's cache: 20 scrapes cost little whatever the cloud's size
    started = time.perf_counter()
    for _ in range(20):
        scrape(mcloud)
    per = (time.perf_counter() - started) / 20
    s = scrape(mcloud)
    age, cost = value(s, "cumulo_exporter_age_seconds"), value(s, "cumulo_exporter_refresh_seconds")
    assert age is not None and 0 <= age < 5, age  # refreshed every half second
    assert cost is not None and 0 < cost < 2, cost
    assert per < 0.5, per


def test_usage_report_matches_simple_tenant_usage_and_follows_a_resize(mcloud: Cloud, world: dict[str, Any]) -> None:
    nova, project = world["nova"], world["project"]
    a = world["a"]
    nova("POST", f"/servers/{a}/action", {"resize": {"flavorRef": "11"}}, 202)  # 128 -> 256 MiB
    nova.wait(a, "VERIFY_RESIZE")
    nova("POST", f"/servers/{a}/action", {"confirmResize": None}, 204)
    nova.wait(a, "ACTIVE")
    time.sleep(1)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    start = now - dt.timedelta(hours=1)
    out = subprocess.run([str(BIN / "cumulo"), "usage", "report", "--project", "admin", "--from",
                          start.isoformat(), "--to", now.isoformat(), "--json"], env=mcloud.env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    lines = {(x["kind"], x["id"]): x for x in got["resources"]}
    api = nova("GET", f"/os-simple-tenant-usage/{project}?start={start.isoformat()}&end={now.isoformat()}"
                      "&detailed=1")["tenant_usage"]
    by_id = {u["instance_id"]: u for u in api["server_usages"]}
    b = world["b"]
    # b was never resized: the same hours and vCPU-hours as Nova's API
    assert abs(lines["server", b]["hours"] - by_id[b]["hours"]) < 1e-3
    assert abs(lines["server", b]["vcpu_hours"] - by_id[b]["hours"] * 1) < 1e-3
    # a: 128 MiB until the resize was asked, 256 MiB after (the API counts 256 all along)
    shown = nova("GET", f"/servers/{a}")["server"]
    launched = dt.datetime.fromisoformat(shown["OS-SRV-USG:launched_at"])
    migration = nova("GET", f"/os-migrations?instance_uuid={a}")["migrations"][0]
    resized = dt.datetime.fromisoformat(migration["created_at"])
    expect = 128 * (resized - launched).total_seconds() / 3600 + 256 * (now - resized).total_seconds() / 3600
    assert abs(lines["server", a]["ram_mb_hours"] - expect) < 0.01, (lines["server", a], expect)
    assert lines["server", a]["ram_mb_hours"] < by_id[a]["memory_mb"] * by_id[a]["hours"]
    assert abs(lines["volume", world["volume"]]["volume_gb_hours"] - lines["volume", world["volume"]]["hours"]) < 1e-6
    assert lines["floating_ip", world["fip"]["id"]]["floating_ip_hours"] > 0
    # a stopped server keeps counting its hours (Nova's rule) but not as powered on
    assert lines["server", b]["running_hours"] < lines["server", b]["hours"]
