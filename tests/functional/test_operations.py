"""Running the cloud: restart keeps records, clean shutdown, status, metrics, health, policy file."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from tests.functional.conftest import BIN, start_cloud, stop_cloud, unique


@pytest.fixture
def own_cloud(tmp_path):  # type: ignore[no-untyped-def]
    clouds = []

    def start(**env: str):  # type: ignore[no-untyped-def]
        c = start_cloud(tmp_path, "sqlite", env)
        clouds.append(c)
        return c

    yield start
    for c in clouds:
        stop_cloud(c)


def test_restart_keeps_records_keys_and_tokens(own_cloud) -> None:  # type: ignore[no-untyped-def]
    cloud = own_cloud()
    token, _ = cloud.token()
    name = unique("kept")
    r = httpx.post(f"{cloud.url}/projects", headers={"X-Auth-Token": token}, json={"project": {"name": name}})
    assert r.status_code == 201
    assert stop_cloud(cloud) == 0  # Ctrl-C is a clean shutdown
    assert not (cloud.state_dir / "status.json").exists()
    again = own_cloud()
    assert again.admin_password == cloud.admin_password
    r = httpx.get(f"{again.url}/projects?name={name}", headers={"X-Auth-Token": token})
    assert r.status_code == 200 and [p["name"] for p in r.json()["projects"]] == [name]


def test_status_metrics_and_health(own_cloud) -> None:  # type: ignore[no-untyped-def]
    cloud = own_cloud()
    out = subprocess.run([str(BIN / "cumulo"), "status"], env=cloud.env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "identity" in out.stdout and "ok" in out.stdout
    cloud.token()
    metrics = httpx.get(f"http://127.0.0.1:{cloud.metrics_port}/metrics").text
    assert 'cumulo_http_requests_total{method="POST",route="/v3/auth/tokens",service="identity",status="201"}' \
        in metrics
    health = httpx.get(f"http://127.0.0.1:{cloud.metrics_port}/healthcheck")
    assert health.status_code == 200 and health.json()["checks"]["database"] == "ok"


def test_config_show_and_policy_show(own_cloud) -> None:  # type: ignore[no-untyped-def]
    cloud = own_cloud()
    out = subprocess.run([str(BIN / "cumulo"), "config", "show"], env=cloud.env, capture_output=True, text=True)
    assert out.returncode == 0 and f"port = {cloud.url.split(':')[2].split('/')[0]}" in out.stdout
    out = subprocess.run([str(BIN / "cumulo"), "policy", "show"], env=cloud.env, capture_output=True, text=True)
    assert out.returncode == 0 and "identity:list_users" in out.stdout


def test_policy_file_overrides_a_default_rule(own_cloud, tmp_path) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text('"identity:list_users": "role:member"\n')
    cloud = own_cloud(CUMULO_POLICY__FILE=str(policy))
    out = cloud.cli("token", "issue", "-f", "value", "-c", "id", cloud="cumulo-demo").stdout.strip()
    assert httpx.get(f"{cloud.url}/users", headers={"X-Auth-Token": out}).status_code == 200
    assert httpx.get(f"{cloud.url}/groups", headers={"X-Auth-Token": out}).status_code == 403


def test_rotate_keys_keeps_current_tokens_and_is_picked_up(own_cloud) -> None:  # type: ignore[no-untyped-def]
    cloud = own_cloud()
    token, _ = cloud.token()
    out = subprocess.run([str(BIN / "cumulo"), "identity", "rotate-keys"], env=cloud.env, capture_output=True,
                         text=True)
    assert out.returncode == 0 and "primary 2" in out.stdout
    r = httpx.get(f"{cloud.url}/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token})
    assert r.status_code == 200
