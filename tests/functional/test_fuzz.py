"""Schema-driven fuzzing of every API (issue 11): 0 5xx, 0 hangs, every 4xx in the service's format.

``FUZZ_REQUESTS`` sets the count (20,000 by default here; ``make fuzz`` sends more) and
``FUZZ_SEED`` the seed (printed, so a failure replays).  The fuzzer itself is tests/functional/fuzzer.py.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.functional.conftest import Cloud, start_cloud, stop_cloud
from tests.functional.conftest import _drop_pg_database as drop_pg_database
from tests.functional.fuzzer import Fuzzer, Route, fault_shape_ok

# SQLite takes the bulk; PostgreSQL (32-bit columns, strict types) a quarter as many on its own cloud;
# both clouds serve through two API worker processes, as `make up` does on two cores
SHARE = {"sqlite": 1.0, "postgres": 0.25}


@pytest.fixture(scope="module", params=list(SHARE))
def fuzzed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp(f"fuzz-{request.param}"), request.param,
                    {"CUMULO_SERVICES": "identity,image,compute,placement,network",
                     "CUMULO_LOGGING__LEVEL": "WARNING", "CUMULO_API__WORKERS": "2"})
    yield c
    stop_cloud(c)
    if request.param == "postgres":
        drop_pg_database(c.env["CUMULO_DATABASE__URL"].rsplit("/", 1)[1])


def fixtures(cloud: Cloud) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Real resources for the fuzzer's paths: a member's network, port, server, image ... ."""
    admin, _ = cloud.token()
    member, body = cloud.token("demo", cloud.demo_password, "demo")
    user_id, project_id = body["user"]["id"], body["project"]["id"]
    m = {"X-Auth-Token": member}
    a = {"X-Auth-Token": admin}

    def post(url: str, json: dict, headers: dict, key: str) -> str:
        r = httpx.post(url, json=json, headers=headers)
        assert r.status_code in (200, 201, 202), (url, r.text)
        return str(r.json()[key]["id"]) if key else ""

    net = post(cloud.network_url + "/networks", {"network": {"name": "fz-net"}}, m, "network")
    subnet = post(cloud.network_url + "/subnets", {"subnet": {"network_id": net, "cidr": "10.9.0.0/24",
                                                              "ip_version": 4}}, m, "subnet")
    port = post(cloud.network_url + "/ports", {"port": {"network_id": net}}, m, "port")
    group = post(cloud.network_url + "/security-groups", {"security_group": {"name": "fz"}}, m, "security_group")
    rule = post(cloud.network_url + "/security-group-rules", {"security_group_rule": {
        "security_group_id": group, "direction": "ingress", "protocol": "tcp", "port_range_min": 22,
        "port_range_max": 22}}, m, "security_group_rule")
    router = post(cloud.network_url + "/routers", {"router": {"name": "fz-r"}}, m, "router")
    active = [i["id"] for i in httpx.get(cloud.image_url + "/v2/images", headers=m).json()["images"]
              if i["status"] == "active"]
    assert active, "the fuzz cloud has no active image to boot"
    server = post(cloud.compute_url + "/servers", {"server": {"name": "fz-vm", "flavorRef": "1",
                                                              "imageRef": active[0], "networks": "none"}},
                  {**m, "OpenStack-API-Version": "compute 2.37"}, "server")
    image = httpx.post(cloud.image_url + "/v2/images", json={"name": "fz-img", "disk_format": "raw",
                                                             "container_format": "bare"}, headers=m).json()["id"]
    agg = post(cloud.compute_url + "/os-aggregates", {"aggregate": {"name": "fz-agg"}}, a, "aggregate")
    providers = httpx.get(cloud.placement_url + "/resource_providers", headers=a).json()["resource_providers"]
    ids = {"network_id": [net], "subnet_id": [subnet], "port_id": [port], "group_id": [group], "rule_id": [rule],
           "router_id": [router], "server_id": [server], "image_id": [image], "agg_id": [agg], "flavor_id": ["1"],
           "uuid": [p["uuid"] for p in providers], "consumer": [server], "user_id": [user_id],
           "project_id": [project_id], "tenant_id": [project_id], "member_id": [project_id],
           "domain_id": ["default"], "id": [server, net, image]}
    return {"admin": admin, "member": member}, ids


def test_fuzz_every_api(fuzzed: Cloud) -> None:
    count = int(int(os.environ.get("FUZZ_REQUESTS", "20000")) * SHARE[fuzzed.backend])
    seed = int(os.environ.get("FUZZ_SEED", str(random.randrange(1 << 30))))
    tokens, ids = fixtures(fuzzed)
    docs = httpx.get(f"http://127.0.0.1:{fuzzed.metrics_port}/openapi.json").json()
    assert {"identity", "image", "compute", "network", "placement"} <= set(docs)

    def skip(route: Route) -> bool:
        return route.method == "HEAD" or route.service == "metadata"

    fuzzer = Fuzzer(docs, tokens, ids, seed, skip=skip)
    started = time.monotonic()
    stats = fuzzer.run(count, workers=4, deadline=900)
    took = time.monotonic() - started
    print(f"\nfuzz seed {seed} on {fuzzed.backend}: {stats.sent} requests over {len(fuzzer.routes)} routes "
          f"in {took:.0f} s "
          f"({stats.sent / max(took, 1e-9):.0f}/s), slowest {stats.slowest:.2f} s; by status "
          f"{dict(sorted(stats.by_status.items()))}; by service {stats.by_service}")
    assert stats.sent == count, f"only {stats.sent} of {count} requests were sent before the deadline"
    assert not stats.findings, f"seed {seed}: {len(stats.findings)} findings:\n" + "\n".join(
        f.line() for f in stats.findings[:40])
    # the cloud is still whole: the member's fixtures answer and a token validates
    assert httpx.get(fuzzed.url + "/auth/tokens", headers={"X-Auth-Token": tokens["admin"],
                                                           "X-Subject-Token": tokens["admin"]}).status_code == 200


@pytest.mark.parametrize("service, body", [
    ("identity", {"error": {"code": 400, "title": "Bad Request", "message": "m"}}),
    ("compute", {"badRequest": {"code": 400, "message": "m"}}),
    ("network", {"NeutronError": {"type": "BadRequest", "message": "m", "detail": ""}}),
    ("image", {"code": 400, "title": "Bad Request", "message": "m"}),
    ("placement", {"errors": [{"status": 400, "title": "Bad Request", "detail": "m"}]}),
])
def test_fault_shapes_the_fuzzer_accepts_are_the_services_own(service: str, body: dict) -> None:
    assert fault_shape_ok(service, body)
    others = [s for s in ("identity", "compute", "network", "image", "placement") if s != service]
    assert not all(fault_shape_ok(o, body) for o in others)
    assert not fault_shape_ok(service, {"detail": "Not Found"})  # starlette's own shape is never right


# Each request the fuzzer ever found answered with a 5xx, replayed: (service, method, path, params, body)
FOUND = [
    ("compute", "GET", "/flavors", {"limit": "0"}, None),  # IndexError on an empty page's marker
    ("compute", "GET", "/os-aggregates/" + "9" * 40, {}, None),  # an id past the column's range
    ("placement", "GET", "/allocation_candidates", {"resources": "VCPU:" + "9" * 20}, None),
    ("compute", "PUT", "/os-quota-sets/x", {}, {"quota_set": {"instances": "9999999999"}}),
    ("network", "POST", "/ports", {}, 1.5),  # a body that is a bare number broke the depth/NUL walk
    ("image", "POST", "/v2/tasks", {}, None),
]


@pytest.mark.parametrize("service, method, path, params, body", FOUND)
def test_what_the_fuzzer_found_stays_fixed(fuzzed: Cloud, service: str, method: str, path: str,
                                           params: dict, body: object) -> None:
    token, _ = fuzzed.token("demo", fuzzed.demo_password, "demo")
    base = {"compute": fuzzed.compute_url, "network": fuzzed.network_url, "identity": fuzzed.url,
            "image": fuzzed.image_url, "placement": fuzzed.placement_url}[service]
    content = None if method == "GET" else json.dumps(body).encode()  # None is sent as a literal null
    r = httpx.request(method, base + path, params=params, content=content,
                      headers={"X-Auth-Token": token, "Content-Type": "application/json"})
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert fault_shape_ok(service, r.json()), r.text
