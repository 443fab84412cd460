"""Identity API behaviour over plain HTTP: revocation, RBAC, security compliance, bad input."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.functional.conftest import Cloud, unique


def h(token: str, **extra: str) -> dict[str, str]:
    return {"X-Auth-Token": token, **extra}


def make_user(cloud: Cloud, admin: str, role: str = "member", project_id: str | None = None,
              password: str = "pw-initial-1") -> tuple[str, str, str]:
    """A new user with `role` on a new (or given) project; returns (user_id, project_id, name)."""
    if project_id is None:
        r = httpx.post(f"{cloud.url}/projects", headers=h(admin), json={"project": {"name": unique("p")}})
        assert r.status_code == 201, r.text
        project_id = r.json()["project"]["id"]
    name = unique("u")
    r = httpx.post(f"{cloud.url}/users", headers=h(admin),
                   json={"user": {"name": name, "password": password, "default_project_id": project_id}})
    assert r.status_code == 201, r.text
    user_id = r.json()["user"]["id"]
    role_id = httpx.get(f"{cloud.url}/roles?name={role}", headers=h(admin)).json()["roles"][0]["id"]
    r = httpx.put(f"{cloud.url}/projects/{project_id}/users/{user_id}/roles/{role_id}", headers=h(admin))
    assert r.status_code == 204
    return user_id, project_id, name


def login(cloud: Cloud, user_id: str, password: str, project_id: str | None = None) -> httpx.Response:
    body: dict = {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"id": user_id, "password": password}}}}}
    if project_id:
        body["auth"]["scope"] = {"project": {"id": project_id}}
    return httpx.post(f"{cloud.url}/auth/tokens", json=body)


def valid(cloud: Cloud, admin: str, token: str) -> int:
    return httpx.get(f"{cloud.url}/auth/tokens", headers=h(admin, **{"X-Subject-Token": token})).status_code


# -- tokens and revocation -----------------------------------------------------------------
def test_token_validate_head_and_explicit_revoke(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    admin_token, _ = admin
    token, body = cloud.token()
    assert body["methods"] == ["password"] and body["expires_at"].endswith("Z")
    r = httpx.head(f"{cloud.url}/auth/tokens", headers=h(admin_token, **{"X-Subject-Token": token}))
    assert r.status_code == 200
    r = httpx.delete(f"{cloud.url}/auth/tokens", headers=h(admin_token, **{"X-Subject-Token": token}))
    assert r.status_code == 204
    assert valid(cloud, admin_token, token) == 404
    assert httpx.get(f"{cloud.url}/auth/catalog", headers=h(token)).status_code == 401


def test_rescoped_token_keeps_the_audit_chain_and_expiry(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    unscoped, body = cloud.token(project=None)
    assert "project" not in body and "roles" not in body
    r = httpx.post(f"{cloud.url}/auth/tokens", json={"auth": {
        "identity": {"methods": ["token"], "token": {"id": unscoped}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
    assert r.status_code == 201
    scoped = r.json()["token"]
    assert scoped["audit_ids"][1] == body["audit_ids"][0]
    assert scoped["expires_at"] == body["expires_at"]
    assert set(scoped["methods"]) == {"password", "token"}


def test_revocation_on_disable_password_change_role_removal_and_delete(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    admin_token, _ = admin
    user_id, project_id, _ = make_user(cloud, admin_token)
    token = login(cloud, user_id, "pw-initial-1", project_id).headers["X-Subject-Token"]
    assert valid(cloud, admin_token, token) == 200
    # user disabled -> token invalid; re-enabled -> a new login works
    httpx.patch(f"{cloud.url}/users/{user_id}", headers=h(admin_token), json={"user": {"enabled": False}})
    assert valid(cloud, admin_token, token) == 404
    assert login(cloud, user_id, "pw-initial-1").status_code == 401
    httpx.patch(f"{cloud.url}/users/{user_id}", headers=h(admin_token), json={"user": {"enabled": True}})
    token = login(cloud, user_id, "pw-initial-1", project_id).headers["X-Subject-Token"]
    # password changed by the user -> old token invalid, new password works, old does not
    r = httpx.post(f"{cloud.url}/users/{user_id}/password", headers=h(token),
                   json={"user": {"original_password": "pw-initial-1", "password": "pw-second-2"}})
    assert r.status_code == 204, r.text
    assert valid(cloud, admin_token, token) == 404
    assert login(cloud, user_id, "pw-initial-1").status_code == 401
    token = login(cloud, user_id, "pw-second-2", project_id).headers["X-Subject-Token"]
    assert valid(cloud, admin_token, token) == 200
    # role removed -> the project token stops working
    member = httpx.get(f"{cloud.url}/roles?name=member", headers=h(admin_token)).json()["roles"][0]["id"]
    httpx.delete(f"{cloud.url}/projects/{project_id}/users/{user_id}/roles/{member}", headers=h(admin_token))
    assert valid(cloud, admin_token, token) == 404
    # project disabled / deleted
    httpx.put(f"{cloud.url}/projects/{project_id}/users/{user_id}/roles/{member}", headers=h(admin_token))
    token = login(cloud, user_id, "pw-second-2", project_id).headers["X-Subject-Token"]
    httpx.patch(f"{cloud.url}/projects/{project_id}", headers=h(admin_token),
                json={"project": {"enabled": False}})
    assert valid(cloud, admin_token, token) == 404
    # user deleted
    unscoped = login(cloud, user_id, "pw-second-2").headers["X-Subject-Token"]
    assert httpx.delete(f"{cloud.url}/users/{user_id}", headers=h(admin_token)).status_code == 204
    assert valid(cloud, admin_token, unscoped) == 404


def test_password_history_and_lockout(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    admin_token, _ = admin
    user_id, project_id, _ = make_user(cloud, admin_token)
    r = httpx.post(f"{cloud.url}/users/{user_id}/password",
                   json={"user": {"original_password": "pw-initial-1", "password": "pw-initial-1"}})
    assert r.status_code == 400 and "previous password" in r.json()["error"]["message"]
    for _ in range(3):
        assert login(cloud, user_id, "wrong").status_code == 401
    r = login(cloud, user_id, "pw-initial-1")
    assert r.status_code == 401 and "locked" in r.json()["error"]["message"]
    time.sleep(3.2)
    assert login(cloud, user_id, "pw-initial-1").status_code == 201


# -- RBAC ------------------------------------------------------------------------------------
def test_member_cannot_administer_users_or_see_other_projects(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    admin_token, _ = admin
    user_id, project_id, _ = make_user(cloud, admin_token)
    token = login(cloud, user_id, "pw-initial-1", project_id).headers["X-Subject-Token"]
    assert httpx.get(f"{cloud.url}/users", headers=h(token)).status_code == 403
    r = httpx.post(f"{cloud.url}/users", headers=h(token), json={"user": {"name": unique("x")}})
    assert r.status_code == 403 and r.json()["error"]["code"] == 403
    admin_project = httpx.get(f"{cloud.url}/projects?name=admin", headers=h(admin_token)).json()["projects"][0]
    assert httpx.get(f"{cloud.url}/projects/{admin_project['id']}", headers=h(token)).status_code == 403
    # the user sees its own project, itself, and only its projects in a list
    assert httpx.get(f"{cloud.url}/projects/{project_id}", headers=h(token)).status_code == 200
    assert httpx.get(f"{cloud.url}/users/{user_id}", headers=h(token)).status_code == 200
    r = httpx.get(f"{cloud.url}/users/{user_id}/projects", headers=h(token))
    assert [p["id"] for p in r.json()["projects"]] == [project_id]
    r = httpx.get(f"{cloud.url}/auth/projects", headers=h(token))
    assert [p["id"] for p in r.json()["projects"]] == [project_id]


def test_reader_cannot_write(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    admin_token, _ = admin
    user_id, project_id, _ = make_user(cloud, admin_token, role="reader")
    token = login(cloud, user_id, "pw-initial-1", project_id).headers["X-Subject-Token"]
    for method, path, body in (
            ("POST", "/projects", {"project": {"name": unique("p")}}),
            ("PATCH", f"/projects/{project_id}", {"project": {"description": "x"}}),
            ("POST", "/roles", {"role": {"name": unique("r")}}),
            ("DELETE", f"/projects/{project_id}", None)):
        r = httpx.request(method, f"{cloud.url}{path}", headers=h(token), json=body)
        assert r.status_code == 403, (method, path, r.text)


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("body,status", [
    (b"{not json", 400),
    (b'{"project": {"name": 42}}', 400),
    (b'{"project": {"name": "x", "enabled": "yes"}}', 400),
    (b'{"project": "string"}', 400),
    (b'{"wrong": {}}', 400),
    (b'[]', 400),
])
def test_bad_project_bodies_get_400(cloud: Cloud, admin, body: bytes, status: int) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(f"{cloud.url}/projects", headers=h(admin[0], **{"Content-Type": "application/json"}),
                   content=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == status and err["title"] == "Bad Request" and err["message"]


def test_oversized_body_gets_413(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    big = b'{"project": {"name": "big", "description": "' + b"x" * 200_000 + b'"}}'
    r = httpx.post(f"{cloud.url}/projects", headers=h(admin[0], **{"Content-Type": "application/json"}),
                   content=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == 413


def test_unknown_ids_get_404_and_duplicates_409(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    for path in ("/projects/nope", "/users/nope", "/groups/nope", "/roles/nope", "/domains/nope",
                 "/regions/nope", "/services/nope", "/endpoints/nope"):
        r = httpx.get(f"{cloud.url}{path}", headers=h(token))
        assert r.status_code == 404 and r.json()["error"]["title"] == "Not Found", path
    name = unique("dup")
    assert httpx.post(f"{cloud.url}/projects", headers=h(token), json={"project": {"name": name}}).status_code == 201
    r = httpx.post(f"{cloud.url}/projects", headers=h(token), json={"project": {"name": name}})
    assert r.status_code == 409 and r.json()["error"]["title"] == "Conflict"
    r = httpx.post(f"{cloud.url}/users", headers=h(token), json={"user": {"name": "admin"}})
    assert r.status_code == 409


def test_missing_or_bad_token_gets_401(cloud: Cloud) -> None:
    assert httpx.get(f"{cloud.url}/projects").status_code == 401
    r = httpx.get(f"{cloud.url}/projects", headers=h("gAAAAAbogus"))
    assert r.status_code == 401 and r.json()["error"]["code"] == 401
    r = httpx.post(f"{cloud.url}/auth/tokens", json={"auth": {"identity": {"methods": ["password"],
                   "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": "no"}}}}})
    assert r.status_code == 401


def test_every_response_carries_a_request_id(cloud: Cloud) -> None:
    for r in (httpx.get(f"{cloud.url}"), httpx.get(f"{cloud.url}/projects")):
        assert r.headers["x-openstack-request-id"].startswith("req-")


def test_system_and_domain_scoped_tokens(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    admin_token, admin_body = admin
    r = httpx.get(f"{cloud.url}/auth/system", headers=h(admin_token))
    assert r.json()["system"] == [{"all": True}]
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "Default"}, "password": cloud.admin_password}}},
        "scope": {"system": {"all": True}}}}
    r = httpx.post(f"{cloud.url}/auth/tokens", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["token"]["system"] == {"all": True} and "admin" in {x["name"] for x in r.json()["token"]["roles"]}
    # a user without a domain role cannot scope to the domain; with one it can
    user_id, project_id, _ = make_user(cloud, admin_token)
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "id": user_id, "password": "pw-initial-1"}}}, "scope": {"domain": {"id": "default"}}}}
    assert httpx.post(f"{cloud.url}/auth/tokens", json=body).status_code == 401
    reader = httpx.get(f"{cloud.url}/roles?name=reader", headers=h(admin_token)).json()["roles"][0]["id"]
    assert httpx.put(f"{cloud.url}/domains/default/users/{user_id}/roles/{reader}",
                     headers=h(admin_token)).status_code == 204
    r = httpx.post(f"{cloud.url}/auth/tokens", json=body)
    assert r.status_code == 201 and r.json()["token"]["domain"]["id"] == "default"
    # a domain reader may list the domain's users but not create any
    token = r.headers["X-Subject-Token"]
    assert httpx.get(f"{cloud.url}/users?domain_id=default", headers=h(token)).status_code == 200
    assert httpx.post(f"{cloud.url}/users", headers=h(token),
                      json={"user": {"name": unique("nope")}}).status_code == 403


def test_member_cannot_list_all_projects(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    user_id, project_id, _ = make_user(cloud, admin[0])
    token = login(cloud, user_id, "pw-initial-1", project_id).headers["X-Subject-Token"]
    assert httpx.get(f"{cloud.url}/projects", headers=h(token)).status_code == 403


def test_cached_lookups_follow_creates_and_renames(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    name = unique("later")
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "domain": {"id": "default"}, "password": "pw-x-1"}}}, "scope": "unscoped"}}
    assert httpx.post(f"{cloud.url}/auth/tokens", json=body).status_code == 401  # not there yet
    r = httpx.post(f"{cloud.url}/users", headers=h(token), json={"user": {"name": name, "password": "pw-x-1"}})
    user_id = r.json()["user"]["id"]
    assert httpx.post(f"{cloud.url}/auth/tokens", json=body).status_code == 201
    renamed = unique("renamed")
    httpx.patch(f"{cloud.url}/users/{user_id}", headers=h(token), json={"user": {"name": renamed}})
    assert httpx.post(f"{cloud.url}/auth/tokens", json=body).status_code == 401
    body["auth"]["identity"]["password"]["user"]["name"] = renamed
    r = httpx.post(f"{cloud.url}/auth/tokens", json=body)
    assert r.status_code == 201 and r.json()["token"]["user"]["name"] == renamed
