"""The operator port's probes without a cloud: /livez answers whatever the checks say, /readyz is
503 naming the failing part, and /healthcheck answers DISABLED BY FILE while the drain file exists."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from cumulo.core.http.admin import create_admin_app


async def healthy() -> dict[str, str]:
    return {"database": "ok"}


async def bus_down() -> dict[str, str]:
    return {"database": "ok", "bus": "failing: no round trip (RPCTimeout)", "agents": "ok"}


def test_readyz_is_503_naming_the_failing_part_while_livez_answers() -> None:
    client = TestClient(create_admin_app(healthy, ready=bus_down))
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"status": "failing", "checks": {"database": "ok", "bus": "failing: no round trip (RPCTimeout)",
                                                        "agents": "ok"}}
    assert client.get("/livez").json() == {"status": "ok"}
    assert client.get("/healthcheck").status_code == 200


def test_healthcheck_is_disabled_by_the_drain_file(tmp_path: Path) -> None:
    drain = tmp_path / "drain"
    client = TestClient(create_admin_app(healthy, disable_by_file=str(drain)))
    assert client.get("/healthcheck").status_code == 200
    drain.touch()
    r = client.get("/healthcheck")
    assert (r.status_code, r.text) == (503, "DISABLED BY FILE")
    assert client.get("/readyz").status_code == 200  # readiness has checks of its own
    drain.unlink()
    assert client.get("/healthcheck").json() == {"status": "ok", "checks": {"database": "ok"}}
