"""The rest of Identity v3: credentials, policies, consumers, domain configs, endpoint groups,
trusts and unified limits, through the CLI where it has commands and HTTP otherwise."""

from __future__ import annotations

import json

import httpx

from tests.functional.conftest import Cloud, unique
from tests.functional.test_identity_api import h, login, make_user


def test_cli_credentials_policies_and_ec2(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    blob = json.dumps({"access": unique("ak"), "secret": "sk"})
    cred = json.loads(cloud.cli("credential", "create", "--type", "ec2", "--project", "admin", "admin", blob,
                                "-f", "json").stdout)
    listed = json.loads(cloud.cli("credential", "list", "-f", "json").stdout)
    assert cred["id"] in [c["ID"] for c in listed]
    cloud.cli("credential", "delete", cred["id"])
    r = httpx.post(f"{cloud.url}/credentials", headers=h(token), json={"credential": {
        "type": "ec2", "user_id": "nope", "blob": blob, "project_id": "x"}})
    assert r.status_code == 404
    r = httpx.post(f"{cloud.url}/credentials", headers=h(token), json={"credential": {"type": "ec2"}})
    assert r.status_code == 400
    r = httpx.post(f"{cloud.url}/policies", headers=h(token), json={"policy": {"type": "t", "blob": "{}"}})
    assert r.status_code == 201
    pid = r.json()["policy"]["id"]
    assert httpx.patch(f"{cloud.url}/policies/{pid}", headers=h(token),
                       json={"policy": {"blob": "{\"a\": 1}"}}).json()["policy"]["blob"] == "{\"a\": 1}"
    assert httpx.delete(f"{cloud.url}/policies/{pid}", headers=h(token)).status_code == 204
    assert httpx.get(f"{cloud.url}/policies/{pid}", headers=h(token)).status_code == 404
    # EC2 credentials of the admin user, created and found by access key
    uid = admin[1]["user"]["id"]
    project = admin[1]["project"]["id"]
    r = httpx.post(f"{cloud.url}/users/{uid}/credentials/OS-EC2", headers=h(token), json={"tenant_id": project})
    assert r.status_code == 201
    access = r.json()["credential"]["access"]
    r = httpx.get(f"{cloud.url}/users/{uid}/credentials/OS-EC2/{access}", headers=h(token))
    assert r.status_code == 200 and r.json()["credential"]["tenant_id"] == project
    assert httpx.delete(f"{cloud.url}/users/{uid}/credentials/OS-EC2/{access}", headers=h(token)).status_code == 204


def test_consumers_secret_shown_once(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    r = httpx.post(f"{cloud.url}/OS-OAUTH1/consumers", headers=h(token), json={"consumer": {"description": "d"}})
    assert r.status_code == 201 and r.json()["consumer"]["secret"]
    cid = r.json()["consumer"]["id"]
    shown = httpx.get(f"{cloud.url}/OS-OAUTH1/consumers/{cid}", headers=h(token)).json()["consumer"]
    assert "secret" not in shown and shown["description"] == "d"
    assert httpx.delete(f"{cloud.url}/OS-OAUTH1/consumers/{cid}", headers=h(token)).status_code == 204


def test_domain_config_groups_options_and_bad_input(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    domain = httpx.post(f"{cloud.url}/domains", headers=h(token),
                        json={"domain": {"name": unique("d")}}).json()["domain"]["id"]
    base = f"{cloud.url}/domains/{domain}/config"
    assert httpx.get(base, headers=h(token)).status_code == 404
    config = {"identity": {"driver": "ldap"}, "ldap": {"url": "ldap://x", "user_tree_dn": "ou=U"}}
    r = httpx.put(base, headers=h(token), json={"config": config})
    assert r.status_code == 201 and r.json()["config"] == config
    r = httpx.patch(f"{base}/ldap/url", headers=h(token), json={"config": {"url": "ldap://y"}})
    assert r.json()["config"]["ldap"]["url"] == "ldap://y"
    assert httpx.get(f"{base}/ldap/url", headers=h(token)).json() == {"config": {"url": "ldap://y"}}
    assert httpx.delete(f"{base}/identity", headers=h(token)).status_code == 204
    assert httpx.get(f"{base}/identity", headers=h(token)).status_code == 404
    assert httpx.put(base, headers=h(token), json={"config": {"nova": {"x": 1}}}).status_code == 403
    assert httpx.put(base, headers=h(token), json={"config": "x"}).status_code == 400
    assert "ldap" in httpx.get(f"{cloud.url}/domains/config/default", headers=h(token)).json()["config"]


def test_endpoint_groups_and_project_associations(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    identity = [s for s in httpx.get(f"{cloud.url}/services", headers=h(token)).json()["services"]
                if s["type"] == "identity"][0]
    r = httpx.post(f"{cloud.url}/OS-EP-FILTER/endpoint_groups", headers=h(token), json={"endpoint_group": {
        "name": unique("eg"), "filters": {"service_id": identity["id"], "interface": "public"}}})
    assert r.status_code == 201
    gid = r.json()["endpoint_group"]["id"]
    endpoints = httpx.get(f"{cloud.url}/OS-EP-FILTER/endpoint_groups/{gid}/endpoints", headers=h(token)).json()
    assert [e["interface"] for e in endpoints["endpoints"]] == ["public"]
    project = admin[1]["project"]["id"]
    assert httpx.put(f"{cloud.url}/OS-EP-FILTER/endpoint_groups/{gid}/projects/{project}",
                     headers=h(token)).status_code == 204
    listed = httpx.get(f"{cloud.url}/OS-EP-FILTER/projects/{project}/endpoints", headers=h(token)).json()
    assert len(listed["endpoints"]) == 1
    bad = httpx.post(f"{cloud.url}/OS-EP-FILTER/endpoint_groups", headers=h(token), json={"endpoint_group": {
        "name": "x", "filters": {"colour": "red"}}})
    assert bad.status_code == 400
    assert httpx.delete(f"{cloud.url}/OS-EP-FILTER/endpoint_groups/{gid}", headers=h(token)).status_code == 204


def test_trust_delegates_a_role_and_dies_with_the_trust(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    trustor, project, _ = make_user(cloud, token)
    trustee, _, _ = make_user(cloud, token)
    trustor_token = login(cloud, trustor, "pw-initial-1", project).headers["X-Subject-Token"]
    r = httpx.post(f"{cloud.url}/OS-TRUST/trusts", headers=h(trustor_token), json={"trust": {
        "trustor_user_id": trustor, "trustee_user_id": trustee, "project_id": project,
        "impersonation": True, "roles": [{"name": "member"}]}})
    assert r.status_code == 201, r.text
    trust_id = r.json()["trust"]["id"]
    trustee_token = login(cloud, trustee, "pw-initial-1").headers["X-Subject-Token"]
    r = httpx.post(f"{cloud.url}/auth/tokens", json={"auth": {
        "identity": {"methods": ["token"], "token": {"id": trustee_token}},
        "scope": {"OS-TRUST:trust": {"id": trust_id}}}})
    assert r.status_code == 201, r.text
    body = r.json()["token"]
    assert body["user"]["id"] == trustor and body["project"]["id"] == project
    assert body["OS-TRUST:trust"]["id"] == trust_id
    assert {x["name"] for x in body["roles"]} == {"member", "reader"}
    trust_token = r.headers["X-Subject-Token"]
    assert httpx.delete(f"{cloud.url}/OS-TRUST/trusts/{trust_id}", headers=h(trustor_token)).status_code == 204
    r = httpx.get(f"{cloud.url}/auth/tokens", headers=h(token, **{"X-Subject-Token": trust_token}))
    assert r.status_code == 404
    # the trustor cannot delegate a role it does not hold; bad times are 400
    r = httpx.post(f"{cloud.url}/OS-TRUST/trusts", headers=h(trustor_token), json={"trust": {
        "trustor_user_id": trustor, "trustee_user_id": trustee, "project_id": project,
        "impersonation": False, "roles": [{"name": "admin"}]}})
    assert r.status_code == 403
    r = httpx.post(f"{cloud.url}/OS-TRUST/trusts", headers=h(trustor_token), json={"trust": {
        "trustor_user_id": trustor, "trustee_user_id": trustee, "project_id": project,
        "impersonation": False, "expires_at": "bad.123Z", "roles": [{"name": "member"}]}})
    assert r.status_code == 400


def test_cli_unified_limits(cloud: Cloud, admin) -> None:  # type: ignore[no-untyped-def]
    token = admin[0]
    resource = unique("cores")
    reg = json.loads(cloud.cli("registered", "limit", "create", "--service", "identity", "--default-limit", "10",
                               "--region", "RegionOne", resource, "-f", "json").stdout)
    assert reg["default_limit"] == 10
    project = unique("p")
    cloud.cli("project", "create", project)
    lim = json.loads(cloud.cli("limit", "create", "--service", "identity", "--project", project,
                               "--resource-limit", "20", "--region", "RegionOne", resource, "-f", "json").stdout)
    assert lim["resource_limit"] == 20
    listed = json.loads(cloud.cli("limit", "list", "--resource-name", resource, "-f", "json").stdout)
    assert len(listed) == 1
    # duplicates conflict; a limit without a registered default is refused; the model is flat
    r = httpx.post(f"{cloud.url}/registered_limits", headers=h(token), json={"registered_limits": [{
        "service_id": reg["service_id"], "region_id": "RegionOne", "resource_name": resource, "default_limit": 1}]})
    assert r.status_code == 409
    r = httpx.post(f"{cloud.url}/limits", headers=h(token), json={"limits": [{
        "service_id": reg["service_id"], "project_id": lim["project_id"], "resource_name": unique("none"),
        "resource_limit": 1}]})
    assert r.status_code == 403
    r = httpx.post(f"{cloud.url}/limits", headers=h(token), json={"limits": [{"resource_limit": "many"}]})
    assert r.status_code == 400
    assert httpx.get(f"{cloud.url}/limits/model", headers=h(token)).json()["model"]["name"] == "flat"
    cloud.cli("limit", "delete", lim["id"])
    cloud.cli("registered", "limit", "delete", reg["id"])
