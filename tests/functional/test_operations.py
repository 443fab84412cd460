"""Running the cloud: restart keeps records, clean shutdown, status, metrics, health, policy file."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from tests.functional.conftest import BIN, start_cloud, stop_cloud, unique, wait_for


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
    assert out.returncode == 0 and "identity:list_users" in out.stdout and "volume:create" in out.stdout


def test_policy_file_overrides_a_default_rule(own_cloud, tmp_path) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text('"identity:list_users": "role:member"\n')
    cloud = own_cloud(CUMULO_POLICY__FILE=str(policy))
    out = cloud.cli("token", "issue", "-f", "value", "-c", "id", cloud="cumulo-demo").stdout.strip()
    assert httpx.get(f"{cloud.url}/users", headers={"X-Auth-Token": out}).status_code == 200
    assert httpx.get(f"{cloud.url}/groups", headers={"X-Auth-Token": out}).status_code == 403


def test_rotate_keys_new_tokens_use_the_new_primary_old_ones_last_until_their_key_goes(own_cloud) -> None:  # type: ignore[no-untyped-def]
    """After a rotation, tokens are encrypted with the new primary key alone (decrypted here with
    nothing but that key file), tokens of the old primary still validate, and they stop
    validating once further rotations have removed their key (max_active_keys = 3)."""
    from cryptography.fernet import Fernet, InvalidToken

    cloud = own_cloud()
    keys = cloud.state_dir / "fernet-keys"

    def key(index: int) -> Fernet:
        return Fernet((keys / str(index)).read_bytes().strip())

    def opens(fernet: Fernet, token: str) -> bool:
        try:
            fernet.decrypt(token.encode() + b"=" * (-len(token) % 4))
            return True
        except InvalidToken:
            return False

    def rotate(primary: int) -> None:
        out = subprocess.run([str(BIN / "cumulo"), "identity", "rotate-keys"], env=cloud.env, capture_output=True,
                             text=True)
        assert out.returncode == 0 and f"primary {primary}" in out.stdout, out.stdout + out.stderr

    def validates(subject: str) -> int:
        admin = cloud.token()[0]
        return httpx.get(f"{cloud.url}/auth/tokens", headers={"X-Auth-Token": admin,
                                                              "X-Subject-Token": subject}).status_code

    assert sorted(p.name for p in keys.iterdir()) == ["0", "1"]  # staged 0, primary 1
    old, _ = cloud.token()
    assert opens(key(1), old) and not opens(key(0), old)
    staged = (keys / "0").read_bytes()
    rotate(2)  # the staged key becomes primary 2, a new one is staged
    assert (keys / "2").read_bytes() == staged != (keys / "0").read_bytes()
    # the running cloud picks the new primary up by itself: a token made after that opens with key 2 only
    def issued_with(index: int) -> str | None:
        token = cloud.token()[0]
        return token if opens(key(index), token) else None

    new = wait_for(lambda: issued_with(2), 15, "a token encrypted with the new primary key 2")
    assert isinstance(new, str) and not opens(key(1), new)
    assert validates(old) == 200 and validates(new) == 200  # key 1 is still a secondary
    rotate(3)  # keys 0, 2, 3 remain: key 1 is gone, key 2 is a secondary now
    assert sorted(p.name for p in keys.iterdir()) == ["0", "2", "3"]
    wait_for(lambda: validates(old) == 404, 15, "the token of removed key 1 to be refused")
    assert validates(new) == 200
    rotate(4)  # keys 0, 3, 4: key 2 goes too
    assert sorted(p.name for p in keys.iterdir()) == ["0", "3", "4"]
    wait_for(lambda: validates(new) == 404, 15, "the token of removed key 2 to be refused")
    fresh = cloud.token()[0]
    assert opens(key(4), fresh) and validates(fresh) == 200
