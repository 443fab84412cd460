"""The app factory's cross-cutting behaviour, through a real ASGI client."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.context import AuthContext
from cumulo.core.http import faults
from cumulo.core.http.app import JSON, Router, auth_of, create_app, json_body
from cumulo.core.http.microversion import Microversions, Version


class Validator:
    async def validate(self, token: str) -> AuthContext:
        if token != "good":
            raise faults.Unauthorized("bad token")
        return AuthContext(user_id="u1", project_id="p1", roles=["member"])


def make_app(service: str = "identity"):  # type: ignore[no-untyped-def]
    r = Router()

    @r.post("/echo")
    async def echo(request: Request) -> Response:
        return JSON({"got": await json_body(request), "user": auth_of(request).user_id})

    @r.get("/open", auth=False)
    async def open_(request: Request) -> Response:
        logging.getLogger("test").info("inside")
        return JSON({"ok": True})

    @r.get("/boom", auth=False)
    async def boom(request: Request) -> Response:
        raise RuntimeError("kaboom")

    @r.get("/missing", auth=False)
    async def missing(request: Request) -> Response:
        raise faults.NotFound("no such thing")

    return create_app(service, r, Validator(), max_body=100)


def client(app) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_request_id_on_every_response_and_inbound_global_id_kept() -> None:
    async with client(make_app()) as c:
        r = await c.get("/open")
        assert r.headers["x-openstack-request-id"].startswith("req-")
        r2 = await c.get("/nope")
        assert r2.status_code == 404 and r2.json()["error"]["code"] == 404
        assert r2.headers["x-openstack-request-id"] != r.headers["x-openstack-request-id"]


async def test_auth_required_and_checked() -> None:
    async with client(make_app()) as c:
        assert (await c.post("/echo", json={})).status_code == 401
        r = await c.post("/echo", json={"a": 1}, headers={"X-Auth-Token": "bad"})
        assert r.status_code == 401 and r.json()["error"]["message"] == "bad token"
        assert "Keystone uri=" in r.headers["www-authenticate"]
        r = await c.post("/echo", json={"a": 1}, headers={"X-Auth-Token": "good"})
        assert r.json() == {"got": {"a": 1}, "user": "u1"}


async def test_bad_json_and_oversized_bodies() -> None:
    async with client(make_app()) as c:
        r = await c.post("/echo", content=b"{oops", headers={"X-Auth-Token": "good"})
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
        r = await c.post("/echo", content=b"x" * 500, headers={"X-Auth-Token": "good"})
        assert r.status_code == 413


@pytest.mark.parametrize("service,key", [("identity", "error"), ("compute", "itemNotFound"),
                                         ("network", "NeutronError")])
async def test_faults_use_the_service_format(service: str, key: str) -> None:
    async with client(make_app(service)) as c:
        r = await c.get("/missing")
        assert r.status_code == 404 and key in r.json()


async def test_unexpected_errors_are_a_logged_500_in_service_format(caplog) -> None:  # type: ignore[no-untyped-def]
    async with client(make_app()) as c:
        with caplog.at_level(logging.ERROR):
            r = await c.get("/boom")
        assert r.status_code == 500 and r.json()["error"]["code"] == 500
        assert "kaboom" in caplog.text


def test_microversion_negotiation() -> None:
    mv = Microversions("compute", Version(2, 1), Version(2, 90), "x-openstack-nova-api-version")
    assert mv.negotiate({}) == Version(2, 1)
    assert mv.negotiate({"openstack-api-version": "compute 2.53"}) == Version(2, 53)
    assert mv.negotiate({"openstack-api-version": "compute latest"}) == Version(2, 90)
    assert mv.negotiate({"x-openstack-nova-api-version": "2.10"}) == Version(2, 10)
    assert mv.negotiate({"openstack-api-version": "volume 3.0"}) == Version(2, 1)
    with pytest.raises(faults.NotAcceptable):
        mv.negotiate({"openstack-api-version": "compute 2.91"})
    with pytest.raises(faults.BadRequest):
        mv.negotiate({"openstack-api-version": "compute two"})
    assert mv.response_headers(Version(2, 5))["OpenStack-API-Version"] == "compute 2.5"


def test_access_rules_match_service_method_and_path() -> None:
    from cumulo.core.http.app import access_allowed

    rules = [{"service": "compute", "method": "GET", "path": "/v2.1/servers/*/ips"},
             {"service": "image", "method": "GET", "path": "/v2/images/**"}]
    assert access_allowed(rules, "compute", "GET", "/v2.1/servers/abc/ips")
    assert not access_allowed(rules, "compute", "GET", "/v2.1/servers/abc")
    assert not access_allowed(rules, "compute", "POST", "/v2.1/servers/abc/ips")
    assert access_allowed(rules, "image", "GET", "/v2/images/x/file")
    assert not access_allowed(rules, "network", "GET", "/v2/images/x")


async def test_access_rules_are_enforced_outside_identity() -> None:
    class RuledValidator:
        async def validate(self, token: str) -> AuthContext:
            return AuthContext(user_id="u1", project_id="p1", roles=["member"],
                               access_rules=[{"service": "compute", "method": "POST", "path": "/other"}])

    r = Router()

    @r.post("/echo")
    async def echo(request: Request) -> Response:
        return JSON({})

    for service, status in (("compute", 401), ("identity", 200)):
        app = create_app(service, r, RuledValidator())
        async with client(app) as c:
            assert (await c.post("/echo", json={}, headers={"X-Auth-Token": "t"})).status_code == status
