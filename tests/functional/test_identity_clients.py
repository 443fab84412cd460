"""Identity driven by the official clients: the `openstack` CLI and openstacksdk."""

from __future__ import annotations

import json

import httpx

from tests.functional.conftest import Cloud, unique


def test_cli_token_issue_returns_a_project_scoped_token(cloud: Cloud) -> None:
    out = json.loads(cloud.cli("token", "issue", "-f", "json").stdout)
    assert out["id"] and out["project_id"] and out["user_id"]
    r = httpx.get(f"{cloud.url}/auth/tokens", headers={"X-Auth-Token": out["id"], "X-Subject-Token": out["id"]})
    assert r.status_code == 200
    assert r.json()["token"]["project"]["name"] == "admin"


def test_cli_project_user_group_role_lifecycle(cloud: Cloud) -> None:
    project, user, group, role = unique("proj"), unique("user"), unique("group"), unique("role")
    proj = json.loads(cloud.cli("project", "create", "--description", "made by a test", project,
                                "-f", "json").stdout)
    assert proj["name"] == project and proj["enabled"] is True
    usr = json.loads(cloud.cli("user", "create", "--password", "secret-1", "--project", project,
                               user, "-f", "json").stdout)
    assert usr["default_project_id"] == proj["id"]
    cloud.cli("group", "create", group)
    cloud.cli("group", "add", "user", group, user)
    assert f"{user} in group {group}" in cloud.cli("group", "contains", "user", group, user).stdout
    cloud.cli("role", "create", role)
    cloud.cli("role", "add", "--user", user, "--project", project, role)
    cloud.cli("role", "add", "--user", user, "--project", project, "member")
    rows = json.loads(cloud.cli("role", "assignment", "list", "--user", user, "--project", project,
                                "--names", "-f", "json").stdout)
    assert {r["Role"] for r in rows} == {role, "member"}
    # the new user can log in to its project and sees only it
    listing = json.loads(cloud.cli("project", "list", "--user", user, "-f", "json").stdout)
    assert [p["Name"] for p in listing] == [project]
    tok = httpx.post(f"{cloud.url}/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": "secret-1"}}},
        "scope": {"project": {"id": proj["id"]}}}})
    assert tok.status_code == 201
    assert {r["name"] for r in tok.json()["token"]["roles"]} >= {role, "member", "reader"}
    cloud.cli("role", "remove", "--user", user, "--project", project, role)
    cloud.cli("group", "remove", "user", group, user)
    for kind, name in (("group", group), ("user", user), ("role", role), ("project", project)):
        cloud.cli(kind, "delete", name)
    assert cloud.cli("project", "show", project, check=False).returncode != 0


def test_sdk_application_credential_authenticates(cloud: Cloud) -> None:
    conn = cloud.sdk()
    user_id = conn.current_user_id
    cred = conn.identity.create_application_credential(user=user_id, name=unique("appcred"),
                                                       description="sdk test")
    assert cred.secret
    r = httpx.post(f"{cloud.url}/auth/tokens", json={"auth": {"identity": {
        "methods": ["application_credential"],
        "application_credential": {"id": cred.id, "secret": cred.secret}}}})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert token["application_credential"]["id"] == cred.id
    assert token["project"]["name"] == "admin"
    # by name + user, and a wrong secret fails
    r = httpx.post(f"{cloud.url}/auth/tokens", json={"auth": {"identity": {
        "methods": ["application_credential"],
        "application_credential": {"name": cred.name, "user": {"id": user_id}, "secret": "wrong"}}}})
    assert r.status_code == 401
    conn.identity.delete_application_credential(user_id, cred.id)
    r = httpx.post(f"{cloud.url}/auth/tokens", json={"auth": {"identity": {
        "methods": ["application_credential"],
        "application_credential": {"id": cred.id, "secret": cred.secret}}}})
    assert r.status_code == 401


def test_cli_application_credential_create_and_use(cloud: Cloud, tmp_path) -> None:  # type: ignore[no-untyped-def]
    name = unique("cli-appcred")
    out = json.loads(cloud.cli("application", "credential", "create", name, "-f", "json").stdout)
    assert out["Secret"]
    clouds = {"clouds": {"ac": {"auth_type": "v3applicationcredential", "auth": {
        "auth_url": cloud.url, "application_credential_id": out["ID"],
        "application_credential_secret": out["Secret"]}, "identity_api_version": 3}}}
    path = tmp_path / "clouds.yaml"
    import yaml

    path.write_text(yaml.safe_dump(clouds))
    import os
    import subprocess

    from tests.functional.conftest import BIN

    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_CLIENT_CONFIG_FILE=str(path), OS_CLOUD="ac")
    proc = subprocess.run([str(BIN / "openstack"), "token", "issue", "-f", "json"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["project_id"]


def test_sdk_catalog_lists_identity(cloud: Cloud) -> None:
    conn = cloud.sdk()
    services = {s.type: s for s in conn.identity.services()}
    assert "identity" in services
    endpoints = [e for e in conn.identity.endpoints() if e.service_id == services["identity"].id]
    assert {e.interface for e in endpoints} == {"public", "internal", "admin"}
    token, body = cloud.token()
    r = httpx.get(f"{cloud.url}/auth/catalog", headers={"X-Auth-Token": token})
    assert r.status_code == 200
    assert [s["type"] for s in r.json()["catalog"]] == [s["type"] for s in body["catalog"]]


def test_demo_cloud_is_a_member_of_demo(cloud: Cloud) -> None:
    out = json.loads(cloud.cli("token", "issue", "-f", "json", cloud="cumulo-demo").stdout)
    r = httpx.get(f"{cloud.url}/auth/tokens", headers={"X-Auth-Token": out["id"], "X-Subject-Token": out["id"]})
    token = r.json()["token"]
    assert token["project"]["name"] == "demo"
    assert {r["name"] for r in token["roles"]} == {"member", "reader"}
