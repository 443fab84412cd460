"""The project's object-storage quota from unified limits (cumulo/object/middleware/project_quota.py)
against a real identity + object cloud (SQLite): limits written with the `openstack` CLI, uploads
over HTTP with httpx."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from cumulo.object.middleware.project_quota import CACHE_SECONDS
from tests.functional.conftest import Cloud, make_project_member
from tests.functional.object_helpers import Swift, object_cloud

SERVICE = "object-store"


@pytest.fixture(scope="module")
def lcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with object_cloud(tmp_path_factory, "limits") as c:
        yield c


@pytest.fixture(scope="module")
def new_account(lcloud: Cloud) -> Callable[[], Swift]:
    """A fresh project with a member, as a Swift client of that member."""
    def make() -> Swift:
        p = make_project_member(lcloud, "lim")
        return Swift(lcloud, p.token, p.project_id, p.user_id)
    return make


def cli_json(cloud: Cloud, *args: str) -> Any:
    return json.loads(cloud.cli(*args, "-f", "json").stdout)


def settle() -> None:
    """Each API process rereads a project's limits every CACHE_SECONDS: wait out the window."""
    time.sleep(CACHE_SECONDS + 0.3)


def v3(cloud: Cloud, method: str, path: str, body: Any = None) -> Any:
    """The identity API as the admin (the CLI is slow: it is kept for what the tests are about)."""
    r = httpx.request(method, f"{cloud.url}{path}", json=body, headers={"X-Auth-Token": cloud.token()[0]})
    assert r.status_code < 300, r.text
    return r.json() if r.content else None


def registered(cloud: Cloud) -> dict[str, dict[str, Any]]:
    """The object service's registered limits by resource (over HTTP)."""
    service = [s for s in v3(cloud, "GET", "/services")["services"] if s["type"] == SERVICE][0]
    rows = v3(cloud, "GET", f"/registered_limits?service_id={service['id']}")["registered_limits"]
    return {r["resource_name"]: r for r in rows}


def create_limit(cloud: Cloud, project_id: str, value: int, resource: str, cli: bool = False) -> Any:
    """A project limit in the region its default is registered in (Keystone matches a limit to its
    registered limit by service, region and resource): with ``openstack limit create``, or over HTTP."""
    default = registered(cloud)[resource]
    if cli:
        return cli_json(cloud, "limit", "create", "--project", project_id, "--service", SERVICE, "--region",
                        default["region_id"], "--resource-limit", str(value), resource)
    return v3(cloud, "POST", "/limits", {"limits": [{
        "project_id": project_id, "service_id": default["service_id"], "region_id": default["region_id"],
        "resource_name": resource, "resource_limit": value}]})["limits"][0]


def delete_limit(cloud: Cloud, limit_id: str) -> None:
    v3(cloud, "DELETE", f"/limits/{limit_id}")


def test_the_object_service_registers_unlimited_defaults(lcloud: Cloud, new_account: Callable[[], Swift]) -> None:
    rows = {r["Resource Name"]: r for r in cli_json(lcloud, "registered", "limit", "list", "--service", SERVICE)}
    assert {name: int(rows[name]["Default Limit"]) for name in ("bytes", "gigabytes", "containers")} == {
        "bytes": -1, "gigabytes": -1, "containers": -1}
    # -1 everywhere: nothing is refused
    acct = new_account()
    for i in range(3):
        assert acct("PUT", f"/c{i}").status_code == 201
    assert acct("PUT", "/c0/big", content=b"x" * 200_000).status_code == 201


def test_a_project_limit_refuses_uploads_over_it_and_an_overwrite_frees_room(
        lcloud: Cloud, new_account: Callable[[], Swift]) -> None:
    acct = new_account()
    assert acct("PUT", "/c").status_code == 201
    assert acct("PUT", "/c/a", content=b"a" * 600).status_code == 201
    limit = create_limit(lcloud, acct.project_id, 1000, "bytes", cli=True)
    assert int(limit["resource_limit"]) == 1000
    settle()
    assert acct("PUT", "/c/b", content=b"b" * 500).status_code == 413
    r = acct("PUT", "/c/b", content=b"b" * 500)
    assert r.status_code == 413 and "Upload exceeds quota." in r.text
    assert acct("HEAD", "/c/b").status_code == 404
    assert acct("PUT", "/c/b", content=b"b" * 400).status_code == 201  # exactly at the limit
    # overwriting a counts what a frees: 600 out, 600 in
    assert acct("PUT", "/c/a", content=b"A" * 600).status_code == 201
    assert acct("PUT", "/c/a", content=b"A" * 601).status_code == 413
    # a chunked upload without a length is bounded by the room left, and nothing is kept
    def body() -> Iterator[bytes]:
        for _ in range(10):
            yield b"z" * 100

    assert acct("PUT", "/c/chunked", content=body()).status_code == 413
    assert acct("HEAD", "/c/chunked").status_code == 404
    # copies are uploads too
    assert acct("PUT", "/c/b2", headers={"X-Copy-From": "c/b"}).status_code == 413
    assert acct("COPY", "/c/b", headers={"Destination": "c/b3"}).status_code == 413
    assert acct("DELETE", "/c/b").status_code == 204
    assert acct("COPY", "/c/a", headers={"Destination": "c/a2"}).status_code == 413  # 600 + 600 > 1000
    assert acct("PUT", "/c/small", content=b"s" * 400).status_code == 201
    usage = acct("HEAD")
    assert int(usage.headers["x-account-bytes-used"]) == 1000
    # the limit raised: room again
    lcloud.cli("limit", "set", "--resource-limit", "5000", limit["id"])
    settle()
    assert acct("PUT", "/c/more", content=b"m" * 3000).status_code == 201
    # lowered below what the account holds: nothing more fits, an empty object neither; deletes go on
    v3(lcloud, "PATCH", f"/limits/{limit['id']}", {"limit": {"resource_limit": 100}})
    settle()
    assert acct("PUT", "/c/empty", content=b"").status_code == 413
    assert acct("DELETE", "/c/more").status_code == 204
    delete_limit(lcloud, limit["id"])


def test_the_registered_default_applies_to_projects_without_their_own_limit(
        lcloud: Cloud, new_account: Callable[[], Swift]) -> None:
    plain, favoured = new_account(), new_account()
    for acct in (plain, favoured):
        assert acct("PUT", "/c").status_code == 201
    override = create_limit(lcloud, favoured.project_id, -1, "bytes", cli=True)
    default_id = registered(lcloud)["bytes"]["id"]
    lcloud.cli("registered", "limit", "set", "--default-limit", "2000", default_id)
    try:
        settle()
        assert plain("PUT", "/c/o", content=b"p" * 3000).status_code == 413
        assert plain("PUT", "/c/o", content=b"p" * 2000).status_code == 201
        assert favoured("PUT", "/c/o", content=b"f" * 50_000).status_code == 201  # -1: no limit for it
    finally:
        v3(lcloud, "PATCH", f"/registered_limits/{default_id}", {"registered_limit": {"default_limit": -1}})
        delete_limit(lcloud, override["id"])


def test_gigabytes_bounds_quotas_above_what_bytes_can_say(lcloud: Cloud, new_account: Callable[[], Swift]) -> None:
    acct = new_account()
    assert acct("PUT", "/c").status_code == 201
    limit = create_limit(lcloud, acct.project_id, 0, "gigabytes")
    settle()
    assert acct("PUT", "/c/o", content=b"g").status_code == 413
    assert acct("PUT", "/c/empty", content=b"").status_code == 201
    delete_limit(lcloud, limit["id"])


def test_the_containers_limit(lcloud: Cloud, new_account: Callable[[], Swift]) -> None:
    acct = new_account()
    assert acct("PUT", "/one").status_code == 201
    limit = create_limit(lcloud, acct.project_id, 2, "containers")
    assert acct("PUT", "/two").status_code == 201
    settle()
    assert acct("PUT", "/three").status_code == 403
    r = acct("PUT", "/three")
    assert r.status_code == 403 and "Reached container limit of 2" in r.text
    assert acct("HEAD", "/three").status_code == 404
    # a PUT to a container that exists is an update, not a new container
    assert acct("PUT", "/two", headers={"X-Container-Meta-Color": "red"}).status_code == 202
    assert acct("DELETE", "/two").status_code == 204
    assert acct("PUT", "/three").status_code == 201
    delete_limit(lcloud, limit["id"])


def test_a_member_cannot_change_limits(lcloud: Cloud, new_account: Callable[[], Swift]) -> None:
    acct = new_account()
    service_id = registered(lcloud)["bytes"]["service_id"]
    url = lcloud.url
    head = {"X-Auth-Token": acct.token}
    r = httpx.post(f"{url}/limits", headers=head, json={"limits": [{
        "project_id": acct.project_id, "service_id": service_id, "resource_name": "bytes",
        "resource_limit": 10**9}]})
    assert r.status_code == 403, r.text
    default_id = registered(lcloud)["bytes"]["id"]
    r = httpx.patch(f"{url}/registered_limits/{default_id}", headers=head,
                    json={"registered_limit": {"default_limit": 10**9}})
    assert r.status_code == 403, r.text
    assert registered(lcloud)["bytes"]["default_limit"] == -1
    # and an admin's limit on the member's project holds the member to it
    limit = create_limit(lcloud, acct.project_id, 10, "bytes")
    assert acct("PUT", "/c").status_code == 201
    settle()
    assert acct("PUT", "/c/o", content=b"x" * 11).status_code == 413
    r = httpx.get(f"{url}/limits", headers=head, params={"project_id": acct.project_id})
    assert r.status_code == 200 and [x["resource_limit"] for x in r.json()["limits"]] == [10]
    delete_limit(lcloud, limit["id"])


def test_s3_uploads_are_held_to_the_project_limit_too(lcloud: Cloud) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    p = make_project_member(lcloud, "lim-s3")
    cred = v3(lcloud, "POST", f"/users/{p.user_id}/credentials/OS-EC2", {"tenant_id": p.project_id})["credential"]
    s3 = boto3.client("s3", endpoint_url=lcloud.s3_url, region_name="us-east-1", aws_access_key_id=cred["access"],
                      aws_secret_access_key=cred["secret"],
                      config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    bucket = f"lim-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a", Body=b"a" * 600)
    create_limit(lcloud, p.project_id, 1000, "bytes")
    settle()
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="big", Body=b"b" * 500)
    assert err.value.response["Error"]["Code"] == "QuotaExceeded"
    s3.put_object(Bucket=bucket, Key="fits", Body=b"c" * 400)  # exactly at the limit
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == ["a", "fits"]
