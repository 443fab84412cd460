"""``/healthcheck`` on every API port (cumulo.core.http.healthcheck) without a cloud: OK and no
token, HEAD without a body, DRAINING once stopping, DISABLED BY FILE while the drain file exists,
DATABASE UNREACHABLE when the probe fails or hangs, one probe a second however many checks ask,
and every other request passes through to the API."""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from cumulo.core.http.healthcheck import Healthcheck, HealthState


def api() -> Starlette:
    async def root(_: object) -> PlainTextResponse:
        return PlainTextResponse("the API", status_code=401)

    return Starlette(routes=[Route("/", root), Route("/healthcheck", root, methods=["POST"])])


class Probe:
    def __init__(self) -> None:
        self.calls, self.fail, self.hang = 0, False, False

    async def __call__(self) -> None:
        self.calls += 1
        if self.hang:
            await asyncio.sleep(5)
        if self.fail:
            raise ConnectionError("database gone")


def test_ok_without_a_token_head_without_a_body_and_the_api_untouched(tmp_path: Path) -> None:
    probe = Probe()
    client = TestClient(Healthcheck(api(), HealthState(probe)))
    r = client.get("/healthcheck")
    assert (r.status_code, r.text, r.headers["content-type"]) == (200, "OK", "text/plain; charset=UTF-8")
    head = client.head("/healthcheck")
    assert (head.status_code, head.content) == (200, b"")
    assert client.get("/").text == "the API"
    assert client.post("/healthcheck").text == "the API"  # only GET and HEAD are the check's
    assert probe.calls == 1  # one probe a second, however many checks


def test_draining_disabled_by_file_and_database_unreachable(tmp_path: Path) -> None:
    probe, drain = Probe(), tmp_path / "drain"
    state = HealthState(probe, str(drain), ttl=0, timeout=0.2)
    client = TestClient(Healthcheck(api(), state))
    drain.touch()
    assert (client.get("/healthcheck").status_code, client.get("/healthcheck").text) == (503, "DISABLED BY FILE")
    drain.unlink()
    probe.fail = True
    r = client.get("/healthcheck")
    assert (r.status_code, r.text) == (503, "DATABASE UNREACHABLE")
    probe.fail, probe.hang = False, True
    assert client.get("/healthcheck").text == "DATABASE UNREACHABLE"  # no answer within the timeout
    probe.hang = False
    assert client.get("/healthcheck").status_code == 200
    state.draining = True
    assert (client.get("/healthcheck").status_code, client.get("/healthcheck").text) == (503, "DRAINING")
