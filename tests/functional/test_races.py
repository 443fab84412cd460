"""Races on every database backend: concurrent creates against address pools and quotas.

SQLite serializes every write, so a double-allocated address or a quota overshoot can only show
on PostgreSQL and MariaDB, where requests really run side by side.  These tests use the
session's ``cloud`` (one per backend) and a project of their own each, and fire the requests
together from threads that wait on one barrier.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import threading
from collections.abc import Callable

import httpx

from tests.functional.conftest import Cloud, unique

RACERS = 12  # requests in flight at once


def member_of_new_project(cloud: Cloud) -> tuple[str, str]:
    """A new project with a member user of its own: (project id, that member's token)."""
    admin = {"X-Auth-Token": cloud.token()[0]}
    name, password = unique("race"), unique("pw")
    project = httpx.post(f"{cloud.url}/projects", headers=admin, json={"project": {"name": name}}).json()["project"]
    user = httpx.post(f"{cloud.url}/users", headers=admin, json={"user": {
        "name": name, "password": password, "default_project_id": project["id"]}}).json()["user"]
    role = httpx.get(f"{cloud.url}/roles?name=member", headers=admin).json()["roles"][0]
    r = httpx.put(f"{cloud.url}/projects/{project['id']}/users/{user['id']}/roles/{role['id']}", headers=admin)
    assert r.status_code == 204, r.text
    return project["id"], cloud.token(name, password, name)[0]


def together(n: int, call: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """``n`` calls of ``call``, released at the same moment from ``n`` threads."""
    start = threading.Barrier(n)

    def one(_: int) -> httpx.Response:
        start.wait(30)
        return call()

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_concurrent_port_creates_hand_each_address_out_once(cloud: Cloud) -> None:
    """A /28 has 13 addresses to give (.2-.14): of 20 racing port creates exactly 13 get one
    each, all different, and the other 7 get Neutron's IpAddressGenerationFailure."""
    url = cloud.network_url
    _, token = member_of_new_project(cloud)
    member = {"X-Auth-Token": token}
    net = httpx.post(f"{url}/networks", headers=member, json={"network": {"name": unique("n")}}).json()["network"]
    r = httpx.post(f"{url}/subnets", headers=member, json={"subnet": {
        "network_id": net["id"], "ip_version": 4, "cidr": "10.30.0.0/28", "enable_dhcp": False}})
    assert r.status_code == 201, r.text
    pool = r.json()["subnet"]["allocation_pools"]
    assert pool == [{"start": "10.30.0.2", "end": "10.30.0.14"}]
    addresses = {str(ipaddress.ip_address("10.30.0.2") + i) for i in range(13)}

    results = together(20, lambda: httpx.post(f"{url}/ports", headers=member, timeout=60, json={"port": {
        "network_id": net["id"]}}))
    made = [r.json()["port"]["fixed_ips"][0]["ip_address"] for r in results if r.status_code == 201]
    refused = [r for r in results if r.status_code != 201]
    assert sorted(made) == sorted(addresses), [(r.status_code, r.text[:200]) for r in results]
    assert len(refused) == 7 and all(r.status_code == 409 and r.json()["NeutronError"]["type"] ==
                                     "IpAddressGenerationFailure" for r in refused), [r.text for r in refused]
    ports = httpx.get(f"{url}/ports?network_id={net['id']}", headers=member).json()["ports"]
    held = [f["ip_address"] for p in ports for f in p["fixed_ips"]]
    assert len(ports) == 13 and sorted(held) == sorted(addresses)  # the refused ones left no port behind
    # an address already held is refused by name; one freed is handed out again
    r = httpx.post(f"{url}/ports", headers=member, json={"port": {
        "network_id": net["id"], "fixed_ips": [{"ip_address": made[0]}]}})
    assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "IpAddressAlreadyAllocated"
    freed = ports[0]
    assert httpx.delete(f"{url}/ports/{freed['id']}", headers=member).status_code == 204
    again = httpx.post(f"{url}/ports", headers=member, json={"port": {"network_id": net["id"]}})
    assert again.status_code == 201 and again.json()["port"]["fixed_ips"] == freed["fixed_ips"], again.text
    for p in httpx.get(f"{url}/ports?network_id={net['id']}", headers=member).json()["ports"]:
        assert httpx.delete(f"{url}/ports/{p['id']}", headers=member).status_code == 204
    assert httpx.delete(f"{url}/networks/{net['id']}", headers=member).status_code == 204


def test_concurrent_network_and_port_creates_stop_exactly_at_the_quota(cloud: Cloud) -> None:
    """Quota network=3, port=4: of 12 racing creates of each exactly that many succeed (no
    overshoot, and no refusal while there was room), the rest get 409 OverQuota, and the
    project's usage is exactly the limit afterwards."""
    url = cloud.network_url
    project, token = member_of_new_project(cloud)
    member = {"X-Auth-Token": token}
    admin = {"X-Auth-Token": cloud.token()[0]}
    r = httpx.put(f"{url}/quotas/{project}", headers=admin, json={"quota": {"network": 3, "port": 4}})
    assert r.status_code == 200, r.text

    def outcome(results: list[httpx.Response], limit: int, resource: str) -> None:
        codes = sorted(r.status_code for r in results)
        assert codes == [201] * limit + [409] * (RACERS - limit), [(r.status_code, r.text[:200]) for r in results]
        for r in results:
            if r.status_code == 409:
                fault = r.json()["NeutronError"]
                assert fault["type"] == "OverQuota" and f"['{resource}']" in fault["message"], fault

    nets = together(RACERS, lambda: httpx.post(f"{url}/networks", headers=member, timeout=60,
                                               json={"network": {"name": unique("q")}}))
    outcome(nets, 3, "network")
    net = next(r.json()["network"] for r in nets if r.status_code == 201)
    assert httpx.post(f"{url}/subnets", headers=member, json={"subnet": {
        "network_id": net["id"], "ip_version": 4, "cidr": "10.31.0.0/24", "enable_dhcp": False}}).status_code == 201
    ports = together(RACERS, lambda: httpx.post(f"{url}/ports", headers=member, timeout=60,
                                                json={"port": {"network_id": net["id"]}}))
    outcome(ports, 4, "port")
    details = httpx.get(f"{url}/quotas/{project}/details", headers=member).json()["quota"]
    assert details["network"]["used"] == 3 and details["port"]["used"] == 4, details
    assert len(httpx.get(f"{url}/networks?project_id={project}", headers=member).json()["networks"]) == 3
    assert len(httpx.get(f"{url}/ports", headers=member).json()["ports"]) == 4
    for p in httpx.get(f"{url}/ports", headers=member).json()["ports"]:
        assert httpx.delete(f"{url}/ports/{p['id']}", headers=member).status_code == 204
    for n in httpx.get(f"{url}/networks?project_id={project}", headers=member).json()["networks"]:
        assert httpx.delete(f"{url}/networks/{n['id']}", headers=member).status_code == 204


def test_concurrent_security_group_creates_through_both_apis_share_the_quota(cloud: Cloud) -> None:
    """security_group=4 with the default group made: of 12 creates racing through the Network
    API and Compute's proxy (2.35) together exactly 3 succeed, the rest get each API's quota fault."""
    url = cloud.network_url
    project, token = member_of_new_project(cloud)
    member = {"X-Auth-Token": token}
    admin = {"X-Auth-Token": cloud.token()[0]}
    assert [g["name"] for g in httpx.get(f"{url}/security-groups", headers=member).json()["security_groups"]] == [
        "default"]
    assert httpx.put(f"{url}/quotas/{project}", headers=admin, json={"quota": {"security_group": 4}}
                     ).status_code == 200
    nova = {**member, "OpenStack-API-Version": "compute 2.35"}
    calls = iter(range(RACERS))  # even calls go to the Network API, odd ones to Compute's proxy

    def make() -> httpx.Response:
        if next(calls) % 2:
            return httpx.post(f"{cloud.compute_url}/os-security-groups", headers=nova, timeout=60, json={
                "security_group": {"name": unique("sg"), "description": "race"}})
        return httpx.post(f"{url}/security-groups", headers=member, timeout=60, json={
            "security_group": {"name": unique("sg")}})

    results = together(RACERS, make)
    made = [r for r in results if r.status_code in (200, 201)]
    refused = [r for r in results if r not in made]
    assert len(made) == 3, [(r.status_code, r.text[:200]) for r in results]
    for r in refused:
        neutron = r.json().get("NeutronError")
        assert (r.status_code == 409 and neutron["type"] == "OverQuota") or (
            r.status_code == 403 and "Quota exceeded, too many security groups" in r.json()["forbidden"]["message"]
        ), r.text
    groups = httpx.get(f"{url}/security-groups", headers=member).json()["security_groups"]
    assert len(groups) == 4
    details = httpx.get(f"{url}/quotas/{project}/details", headers=member).json()["quota"]
    assert details["security_group"]["used"] == 4, details
    for g in groups:
        if g["name"] != "default":
            assert httpx.delete(f"{url}/security-groups/{g['id']}", headers=member).status_code == 204
