"""Unified limits and the lifetimes Keystone gives them: a project's limits are deleted with the
project; a service's registered limits (and the project limits under them) stay when the service
is deleted (Keystone deletes only its endpoints).  On SQLite, PostgreSQL and MariaDB, since the
second needs the migration that dropped the limits' foreign keys to the service table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.functional.conftest import (
    Cloud,
    _drop_mariadb_database,
    _drop_pg_database,
    personas,
    start_cloud,
    stop_cloud,
    unique,
)


@pytest.fixture(scope="module", params=["sqlite", "postgres", "mariadb"])
def cloud(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp(f"limits-{request.param}"), request.param,
                    {"CUMULO_SERVICES": "identity"})
    yield c
    stop_cloud(c)
    name = c.env.get("CUMULO_DATABASE__URL", "").rsplit("/", 1)[-1]
    if request.param == "postgres":
        _drop_pg_database(name)
    elif request.param == "mariadb":
        _drop_mariadb_database(name)


def call(cloud: Cloud, token: str, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{cloud.url}{path}", json=body, headers={"X-Auth-Token": token})


def ok(r: httpx.Response) -> Any:
    assert r.status_code < 300, r.text
    return r.json() if r.content else None


def test_project_limits_go_with_their_project_and_service_limits_outlive_the_service(cloud: Cloud) -> None:
    admin = cloud.token()[0]
    service = ok(call(cloud, admin, "POST", "/services", {"service": {"type": unique("svc"), "name": "s"}}))["service"]
    resource = unique("widgets")
    registered = ok(call(cloud, admin, "POST", "/registered_limits", {"registered_limits": [{
        "service_id": service["id"], "resource_name": resource, "default_limit": 5}]}))["registered_limits"][0]
    projects = [ok(call(cloud, admin, "POST", "/projects", {"project": {"name": unique("lp"), "domain_id": "default"}})
                   )["project"]["id"] for _ in range(2)]
    limits = [ok(call(cloud, admin, "POST", "/limits", {"limits": [{
        "service_id": service["id"], "project_id": p, "resource_name": resource, "resource_limit": 7}]}))["limits"][0]
        for p in projects]
    # the project goes, and its limits with it; the other project's stays
    assert call(cloud, admin, "DELETE", f"/projects/{projects[0]}").status_code == 204
    assert call(cloud, admin, "GET", f"/limits/{limits[0]['id']}").status_code == 404
    assert ok(call(cloud, admin, "GET", f"/limits?project_id={projects[0]}"))["limits"] == []
    assert ok(call(cloud, admin, "GET", f"/limits/{limits[1]['id']}"))["limit"]["resource_limit"] == 7
    # the service goes with its endpoints; its registered limit and the project limit under it stay
    endpoint = ok(call(cloud, admin, "POST", "/endpoints", {"endpoint": {
        "service_id": service["id"], "interface": "public", "url": "http://127.0.0.1:1/"}}))["endpoint"]
    assert call(cloud, admin, "DELETE", f"/services/{service['id']}").status_code == 204
    assert call(cloud, admin, "GET", f"/services/{service['id']}").status_code == 404
    assert call(cloud, admin, "GET", f"/endpoints/{endpoint['id']}").status_code == 404
    kept = ok(call(cloud, admin, "GET", f"/registered_limits/{registered['id']}"))["registered_limit"]
    assert kept["service_id"] == service["id"] and kept["default_limit"] == 5
    assert registered["id"] in [x["id"] for x in ok(call(cloud, admin, "GET", "/registered_limits"))[
        "registered_limits"]]
    assert ok(call(cloud, admin, "GET", f"/limits/{limits[1]['id']}"))["limit"]["service_id"] == service["id"]
    # nothing new can be registered for the deleted service; what is kept can still be deleted
    r = call(cloud, admin, "POST", "/registered_limits", {"registered_limits": [{
        "service_id": service["id"], "resource_name": unique("more"), "default_limit": 1}]})
    assert r.status_code == 400
    assert call(cloud, admin, "DELETE", f"/limits/{limits[1]['id']}").status_code == 204
    assert call(cloud, admin, "DELETE", f"/registered_limits/{registered['id']}").status_code == 204


def test_only_an_admin_deletes_projects_and_services(cloud: Cloud) -> None:
    admin = cloud.token()[0]
    people = personas(cloud, "limits")
    service = ok(call(cloud, admin, "POST", "/services", {"service": {"type": unique("svc")}}))["service"]
    victim = ok(call(cloud, admin, "POST", "/projects", {"project": {"name": unique("lp"), "domain_id": "default"}}))[
        "project"]["id"]
    for persona in ("member", "reader", "other"):
        token = people[persona][0]
        assert call(cloud, token, "DELETE", f"/services/{service['id']}").status_code == 403
        assert call(cloud, token, "DELETE", f"/projects/{victim}").status_code == 403
    assert call(cloud, admin, "DELETE", f"/projects/{victim}").status_code == 204
    assert call(cloud, admin, "DELETE", f"/services/{service['id']}").status_code == 204
