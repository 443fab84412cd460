"""Object storage's Swift v1 API against a real cloud (SQLite, identity + object only), driven over
HTTP with httpx and with the `openstack` CLI: listings, ranges, conditions, metadata limits, copies,
keystoneauth's personas and container ACLs, bad input, and data that survives a restart."""

from __future__ import annotations

import hashlib
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functional.conftest import Cloud, start_cloud, stop_cloud, unique
from tests.functional.object_helpers import SERVICES, Swift, object_cloud, swift_admin, swift_people

TX = r"^tx[0-9a-f]{21}-[0-9a-f]{10}$"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def ocloud(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """One cloud per backend: SQLite, and PostgreSQL + RabbitMQ."""
    with object_cloud(tmp_path_factory, "object", request.param) as c:
        yield c


@pytest.fixture(scope="module")
def admin(ocloud: Cloud) -> Swift:
    return swift_admin(ocloud)


@pytest.fixture(scope="module")
def people(ocloud: Cloud) -> dict[str, Swift]:
    return swift_people(ocloud, "obj")


def test_the_catalog_names_the_tokens_own_account(ocloud: Cloud, admin: Swift) -> None:
    _, body = ocloud.token()
    swift = [s for s in body["catalog"] if s["type"] == "object-store"]
    assert swift and swift[0]["name"] == "swift"
    assert {e["url"] for e in swift[0]["endpoints"]} == {admin.base}
    _, unscoped = ocloud.token(project=None)
    assert "catalog" not in unscoped or all(s["type"] != "object-store" or not s["endpoints"]
                                           for s in unscoped.get("catalog", []))


def test_the_openstack_cli_creates_lists_shows_saves_and_deletes(ocloud: Cloud, tmp_path: Path) -> None:
    src = tmp_path / "file.bin"
    data = uuid.uuid4().bytes * 5000
    src.write_bytes(data)
    ocloud.cli("container", "create", "cli1")
    created = json.loads(ocloud.cli("object", "create", "cli1", str(src), "-f", "json").stdout)
    assert created[0]["etag"] == hashlib.md5(data).hexdigest()
    names = [o["Name"] for o in json.loads(ocloud.cli("object", "list", "cli1", "-f", "json").stdout)]
    assert names == [str(src)]
    shown = json.loads(ocloud.cli("object", "show", "cli1", str(src), "-f", "json").stdout)
    assert int(shown["content-length"]) == len(data)
    out = tmp_path / "back.bin"
    ocloud.cli("object", "save", "cli1", str(src), "--file", str(out))
    assert out.read_bytes() == data
    container = json.loads(ocloud.cli("container", "show", "cli1", "-f", "json").stdout)
    assert int(container["object_count"]) == 1 and int(container["bytes_used"]) == len(data)
    ocloud.cli("object", "delete", "cli1", str(src))
    ocloud.cli("container", "delete", "cli1")
    assert "cli1" not in ocloud.cli("container", "list", "-f", "value").stdout


def test_every_response_carries_a_trans_id_and_timestamp(admin: Swift, people: dict[str, Swift]) -> None:
    import re

    for r in (admin("HEAD"), admin("GET", "/nope-" + uuid.uuid4().hex), people["anonymous"]("GET"),
              admin("GET", "/c/o", headers={"X-Auth-Token": "bad"})):
        assert re.match(TX, r.headers["x-trans-id"]), r.headers
        assert r.headers["x-openstack-request-id"] == r.headers["x-trans-id"]
        assert float(r.headers["x-timestamp"]) > 0
    assert admin("GET", "/nope-" + uuid.uuid4().hex).status_code == 404
    assert admin("GET", "/c/o", headers={"X-Auth-Token": "bad"}).status_code == 401


def test_containers_objects_counts_and_a_non_empty_delete(admin: Swift) -> None:
    c = unique("/cnt")
    before = admin("HEAD")
    assert before.status_code == 204
    assert admin("PUT", c).status_code == 201
    assert admin("PUT", c).status_code == 202
    assert admin("PUT", c + "/a", content=b"12345").status_code == 201
    assert admin("PUT", c + "/b", content=b"678").status_code == 201
    assert admin("PUT", c + "/a", content=b"1").status_code == 201  # overwrite: one object, smaller
    head = admin("HEAD", c)
    assert head.status_code == 204
    assert head.headers["x-container-object-count"] == "2" and head.headers["x-container-bytes-used"] == "4"
    acct = admin("HEAD")
    assert int(acct.headers["x-account-container-count"]) == int(before.headers["x-account-container-count"]) + 1
    assert int(acct.headers["x-account-bytes-used"]) == int(before.headers["x-account-bytes-used"]) + 4
    assert admin("DELETE", c).status_code == 409
    assert admin("DELETE", c + "/a").status_code == 204
    assert admin("DELETE", c + "/a").status_code == 404
    assert admin("DELETE", c + "/b").status_code == 204
    assert admin("DELETE", c).status_code == 204
    assert admin("HEAD", c).status_code == 404


def test_listings_with_every_parameter(admin: Swift) -> None:
    c = unique("/list")
    admin("PUT", c)
    names = ["a", "b/1", "b/2", "b/3/x", "c", "d.txt", "e"]
    for name in names:
        admin("PUT", f"{c}/{name}", content=name.encode(), headers={"Content-Type": "text/plain"})

    def plain(**params: Any) -> list[str]:
        r = admin("GET", c, params=params)
        return r.text.splitlines() if r.status_code == 200 else []

    assert plain() == names
    assert plain(format="txt") == names  # an unknown format is plain text, as Swift answers
    assert plain(limit=2) == ["a", "b/1"]
    assert plain(marker="b/2") == ["b/3/x", "c", "d.txt", "e"]
    assert plain(end_marker="c") == ["a", "b/1", "b/2", "b/3/x"]
    assert plain(prefix="b/") == ["b/1", "b/2", "b/3/x"]
    assert plain(delimiter="/") == ["a", "b/", "c", "d.txt", "e"]
    assert plain(prefix="b/", delimiter="/") == ["b/1", "b/2", "b/3/"]
    assert plain(reverse="true") == names[::-1]
    assert plain(reverse="true", marker="c", limit=2) == ["b/3/x", "b/2"]
    assert plain(reverse="true", delimiter="/") == ["e", "d.txt", "c", "b/", "a"]
    assert admin("GET", c, params={"prefix": "zzz"}).status_code == 204
    r = admin("GET", c, params={"format": "json", "limit": 3, "delimiter": "/"})
    body = r.json()
    assert r.headers["content-type"].startswith("application/json")
    assert body[0]["name"] == "a" and body[0]["bytes"] == 1 and body[0]["hash"] == hashlib.md5(b"a").hexdigest()
    assert body[0]["content_type"] == "text/plain" and "T" in body[0]["last_modified"]
    assert body[1] == {"subdir": "b/"}
    assert admin("GET", c, params={"format": "json", "prefix": "zzz"}).json() == []
    r = admin("GET", c, headers={"Accept": "application/xml"}, params={"delimiter": "/"})
    root = ET.fromstring(r.content)
    assert root.tag == "container" and root.attrib["name"] == c[1:]
    assert [e.findtext("name") for e in root] == ["a", "b/", "c", "d.txt", "e"]
    assert root[1].tag == "subdir"
    accounts = admin("GET", "", params={"format": "json", "prefix": c[1:]}).json()
    assert accounts == [{"name": c[1:], "count": len(names), "bytes": sum(len(n) for n in names),
                         "last_modified": accounts[0]["last_modified"]}]
    assert admin("GET", c, params={"limit": 10001}).status_code == 412
    assert admin("GET", c, params={"limit": "x"}).status_code == 412
    assert admin("GET", c, params={"limit": 10000}).status_code == 200
    assert admin("GET", c, params={"delimiter": "ab"}).status_code == 412
    assert admin("GET", c, params={"format": "yaml"}).text.splitlines() == names  # plain, as Swift


def test_put_checks_the_etag_and_takes_chunked_bodies(admin: Swift) -> None:
    c = unique("/put")
    admin("PUT", c)
    data = b"x" * 100_000
    good = hashlib.md5(data).hexdigest()
    r = admin("PUT", c + "/o", content=data, headers={"ETag": good})
    assert r.status_code == 201 and r.headers["etag"] == good and r.headers["last-modified"]
    assert admin("PUT", c + "/o2", content=data, headers={"ETag": "0" * 32}).status_code == 422
    assert admin("HEAD", c + "/o2").status_code == 404

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"y" * 7000
    r = admin("PUT", c + "/chunked", content=chunks())
    assert r.status_code == 201
    assert admin("GET", c + "/chunked").content == b"y" * 70000
    bare = httpx.Request("PUT", admin.base + c + "/nolength", headers={"X-Auth-Token": admin.token or ""})
    bare.headers.pop("content-length", None)
    assert admin.http.send(bare).status_code == 411
    assert admin("PUT", unique("/missing") + "/o", content=b"1").status_code == 404


def test_range_and_multi_range_reads(admin: Swift) -> None:
    c = unique("/range")
    admin("PUT", c)
    data = bytes(range(256)) * 4
    admin("PUT", c + "/o", content=data)
    r = admin("GET", c + "/o", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{len(data)}"
    assert admin("GET", c + "/o", headers={"Range": "bytes=-5"}).content == data[-5:]
    assert admin("GET", c + "/o", headers={"Range": "bytes=1000-"}).content == data[1000:]
    r = admin("GET", c + "/o", headers={"Range": "bytes=0-1,5-6"})
    assert r.status_code == 206 and r.headers["content-type"].startswith("multipart/byteranges")
    boundary = r.headers["content-type"].split("boundary=")[1]
    parts = [p for p in r.content.split(b"--" + boundary.encode()) if p.strip(b"\r\n-")]
    assert [p.split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n") for p in parts] == [data[0:2], data[5:7]]
    assert int(r.headers["content-length"]) == len(r.content)
    for past in ("bytes=5000-6000", "bytes=5000-"):  # both start past the end: unsatisfiable
        r = admin("GET", c + "/o", headers={"Range": past})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(data)}", past
    r = admin("GET", c + "/o", headers={"Range": "bytes=3-"})
    assert r.status_code == 206 and r.content == data[3:]
    assert admin("GET", c + "/o", headers={"Range": "pages=1-2"}).status_code == 200


def test_conditional_requests(admin: Swift) -> None:
    c = unique("/cond")
    admin("PUT", c)
    etag = admin("PUT", c + "/o", content=b"hello").headers["etag"]
    head = admin("HEAD", c + "/o")
    assert head.headers["etag"] == etag and head.headers["content-length"] == "5"
    assert admin("GET", c + "/o", headers={"If-Match": etag}).status_code == 200
    assert admin("GET", c + "/o", headers={"If-Match": '"nope"'}).status_code == 412
    assert admin("GET", c + "/o", headers={"If-Match": "*"}).status_code == 200
    assert admin("GET", c + "/o", headers={"If-None-Match": etag}).status_code == 304
    assert admin("GET", c + "/o", headers={"If-None-Match": "other"}).status_code == 200
    last = head.headers["last-modified"]
    assert admin("GET", c + "/o", headers={"If-Modified-Since": last}).status_code == 304
    assert admin("GET", c + "/o", headers={"If-Modified-Since": formatdate(0, usegmt=True)}).status_code == 200
    assert admin("GET", c + "/o", headers={"If-Unmodified-Since": formatdate(0, usegmt=True)}).status_code == 412
    assert admin("GET", c + "/o", headers={"If-Unmodified-Since": last}).status_code == 200


def test_metadata_is_set_replaced_removed_and_limited(admin: Swift) -> None:
    c = unique("/meta")
    assert admin("PUT", c, headers={"X-Container-Meta-Color": "blue"}).status_code == 201
    assert admin("HEAD", c).headers["x-container-meta-color"] == "blue"
    admin("POST", c, headers={"X-Remove-Container-Meta-Color": "x", "X-Container-Meta-Size": "L"})
    h = admin("HEAD", c).headers
    assert "x-container-meta-color" not in h and h["x-container-meta-size"] == "L"
    admin("PUT", c + "/o", content=b"1", headers={"X-Object-Meta-A": "1", "X-Object-Meta-B": "2"})
    assert admin("POST", c + "/o", headers={"X-Object-Meta-C": "3"}).status_code == 202
    h = admin("HEAD", c + "/o").headers
    assert h["x-object-meta-c"] == "3" and "x-object-meta-a" not in h  # POST replaces the set
    assert admin("POST", "", headers={"X-Account-Meta-Team": "t1"}).status_code == 204
    assert admin("HEAD").headers["x-account-meta-team"] == "t1"
    for headers in ({"X-Object-Meta-" + "n" * 129: "v"}, {"X-Object-Meta-K": "v" * 257},
                    {f"X-Object-Meta-K{i}": "v" for i in range(91)},
                    {f"X-Object-Meta-K{i}": "v" * 250 for i in range(17)}):
        assert admin("PUT", c + "/bad", content=b"1", headers=headers).status_code == 400
        assert admin("POST", c, headers={k.replace("Object", "Container"): v
                                         for k, v in headers.items()}).status_code == 400
    assert admin("PUT", c + "/ok", content=b"1", headers={"X-Object-Meta-" + "n" * 128: "v" * 256}).status_code == 201


def test_copy_and_x_copy_from(admin: Swift) -> None:
    c = unique("/copy")
    admin("PUT", c)
    admin("PUT", c + "/src", content=b"payload", headers={"X-Object-Meta-K": "v", "Content-Type": "text/x"})
    r = admin("COPY", c + "/src", headers={"Destination": f"{c[1:]}/dst1"})
    assert r.status_code == 201 and r.headers["x-copied-from"] == f"{c[1:]}/src"
    assert admin("GET", c + "/dst1").content == b"payload"
    h = admin("HEAD", c + "/dst1").headers
    assert h["x-object-meta-k"] == "v" and h["content-type"] == "text/x"
    r = admin("PUT", c + "/dst2", headers={"X-Copy-From": f"/{c[1:]}/src", "X-Object-Meta-J": "w"}, content=b"")
    assert r.status_code == 201
    h = admin("HEAD", c + "/dst2").headers
    assert h["x-object-meta-j"] == "w" and h["x-object-meta-k"] == "v"
    assert admin("COPY", c + "/src", headers={"Destination": "nocontainer"}).status_code == 412
    assert admin("COPY", c + "/missing", headers={"Destination": f"{c[1:]}/x"}).status_code == 404
    assert admin("HEAD", c).headers["x-container-object-count"] == "3"


def test_bad_input_is_a_4xx(admin: Swift) -> None:
    c = unique("/bad")
    admin("PUT", c)
    assert admin("PUT", "/" + "c" * 257).status_code == 400
    assert admin("PUT", c + "/" + "o" * 1025, content=b"1").status_code == 400
    assert admin("PUT", c + "/" + "o" * 1024, content=b"1").status_code == 201
    assert admin("PUT", c + "/o", content=b"1", headers={"ETag": "zz"}).status_code == 422
    assert admin("GET", c + "/o", headers={"Range": "bytes=9-1"}).status_code in (200, 404)
    assert admin("PATCH", c).status_code == 405
    assert admin("GET", "", account="NOTAUTH_x").status_code == 403
    assert admin("GET", "", account="AUTH_" + uuid.uuid4().hex).status_code == 403  # another project's
    assert admin("PUT", c, headers={"X-Container-Read": ".r:"}).status_code == 400
    assert admin("PUT", c, headers={"X-Container-Read": ".bogus:x"}).status_code == 400
    assert admin("PUT", c, headers={"X-Container-Write": ".r:*"}).status_code == 400
    assert admin("PUT", c, headers={"X-Container-Read": "a b"}).status_code == 400
    r = admin("GET", unique("/nothere"))
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")


def test_personas_and_acls(people: dict[str, Swift]) -> None:
    member, reader, other, anon = (people[k] for k in ("member", "reader", "other", "anonymous"))
    c = unique("/shared")
    assert reader("PUT", c).status_code == 403
    assert member("PUT", c).status_code == 201
    assert member("PUT", c + "/o", content=b"secret").status_code == 201
    assert reader("GET", c + "/o").content == b"secret"
    assert reader("GET", c).text.splitlines() == ["o"]
    assert reader("HEAD").status_code == 204
    assert reader("PUT", c + "/r", content=b"1").status_code == 403
    assert reader("DELETE", c + "/o").status_code == 403
    assert reader("POST", c, headers={"X-Container-Meta-A": "1"}).status_code == 403
    acct = member.base.rsplit("/", 1)[1]
    assert other("GET", c + "/o", account=acct).status_code == 403
    assert other("GET", "", account=acct).status_code == 403
    assert anon("GET", c + "/o").status_code == 401
    # the owner lets the other project's member read, then write
    member("POST", c, headers={"X-Container-Read": f"{other.project_id}:*"})
    assert other("GET", c + "/o", account=acct).content == b"secret"
    assert other("GET", c, account=acct).status_code == 200
    assert other("PUT", c + "/w", account=acct, content=b"1").status_code == 403
    assert other("POST", c, account=acct, headers={"X-Container-Meta-A": "1"}).status_code == 403
    user_id = other.user_id
    member("POST", c, headers={"X-Container-Write": f"{other.project_id}:{user_id}"})
    assert other("PUT", c + "/w", account=acct, content=b"from-q").status_code == 201
    assert other("DELETE", c, account=acct).status_code == 403
    assert "x-container-read" not in other("HEAD", c, account=acct).headers  # ACLs are the owner's to see
    assert member("HEAD", c).headers["x-container-read"] == f"{other.project_id}:*"
    # anonymous: .r:* reads objects, .rlistings lists too; a referrer ACL needs a matching Referer
    member("POST", c, headers={"X-Container-Read": ".r:*"})
    assert anon("GET", c + "/o").content == b"secret"
    assert anon("GET", c).status_code == 401
    assert anon("PUT", c + "/a", content=b"1").status_code == 401
    member("POST", c, headers={"X-Container-Read": ".r:*,.rlistings"})
    assert anon("GET", c).text.splitlines() == ["o", "w"]
    member("POST", c, headers={"X-Container-Read": ".r:.example.com,.r:-bad.example.com"})
    assert anon("GET", c + "/o", headers={"Referer": "http://www.example.com/x"}).status_code == 200
    assert anon("GET", c + "/o", headers={"Referer": "http://bad.example.com/"}).status_code == 401
    assert anon("GET", c + "/o").status_code == 401
    member("POST", c, headers={"X-Remove-Container-Read": "x"})
    assert other("GET", c + "/o", account=acct).status_code == 403


@pytest.fixture(scope="module")
def reseller(ocloud: Cloud) -> str:
    """A token of the cloud's admin holding ResellerAdmin too (in its own project)."""
    token, body = ocloud.token()
    h = {"X-Auth-Token": token}
    roles = httpx.get(f"{ocloud.url}/roles", params={"name": "ResellerAdmin"}, headers=h).json()["roles"]
    if not roles:
        roles = [httpx.post(f"{ocloud.url}/roles", json={"role": {"name": "ResellerAdmin"}}, headers=h).json()["role"]]
    httpx.put(f"{ocloud.url}/projects/{body['project']['id']}/users/{body['user']['id']}/roles/{roles[0]['id']}",
              headers=h).raise_for_status()
    return ocloud.token()[0]


def test_an_admin_of_another_project_is_refused_but_a_reseller_admin_is_not(
        ocloud: Cloud, people: dict[str, Swift], reseller: str) -> None:
    token, body = ocloud.token()
    plain_admin = Swift(ocloud, token, body["project"]["id"])
    acct = people["member"].base.rsplit("/", 1)[1]
    if "ResellerAdmin" not in {r["name"] for r in body["roles"]}:
        assert plain_admin("GET", "", account=acct).status_code == 403  # operator roles are per project
    assert Swift(ocloud, reseller, body["project"]["id"])("GET", "", account=acct).status_code in (200, 204)


def test_container_and_account_quotas(ocloud: Cloud, people: dict[str, Swift], reseller: str) -> None:
    member = people["member"]
    c = unique("/quota")
    assert member("PUT", c, headers={"X-Container-Meta-Quota-Bytes": "x"}).status_code == 400
    assert member("PUT", c, headers={"X-Container-Meta-Quota-Bytes": "10", "X-Container-Meta-Quota-Count": "2"}
                  ).status_code == 201
    assert member("PUT", c + "/a", content=b"123456").status_code == 201
    r = member("PUT", c + "/b", content=b"123456")
    assert r.status_code == 413 and "quota" in r.text
    assert member("PUT", c + "/a", content=b"1234567890").status_code == 201  # an overwrite frees its bytes
    member("POST", c, headers={"X-Container-Meta-Quota-Bytes": ""})
    assert member("PUT", c + "/b", content=b"1").status_code == 201
    assert member("PUT", c + "/c", content=b"1").status_code == 413  # the count quota
    assert member("PUT", c + "/b", content=b"22").status_code == 201
    def chunked() -> Iterator[bytes]:
        yield b"x" * 100
    member("POST", c, headers={"X-Container-Meta-Quota-Bytes": "50", "X-Container-Meta-Quota-Count": ""})
    assert member("PUT", c + "/d", content=chunked()).status_code == 413
    assert member("HEAD", c + "/d").status_code == 404
    # the account's quota is a reseller's to set
    assert member("POST", "", headers={"X-Account-Meta-Quota-Bytes": "1"}).status_code == 403
    as_reseller = Swift(ocloud, reseller, member.project_id)
    assert as_reseller("POST", "", headers={"X-Account-Meta-Quota-Bytes": "15"}).status_code == 204
    assert member("PUT", c + "/e", content=b"x" * 10).status_code == 413
    assert as_reseller("POST", "", headers={"X-Account-Meta-Quota-Bytes": ""}).status_code == 204
    assert member("PUT", c + "/e", content=b"x" * 10).status_code == 201


def test_data_survives_a_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("object-restart")
    env = SERVICES
    first = start_cloud(tmp, "sqlite", env)
    try:
        token, body = first.token()
        s = Swift(first, token, body["project"]["id"])
        s("PUT", "/keep")
        s("PUT", "/keep/o", content=b"persist", headers={"X-Object-Meta-K": "v"})
    finally:
        stop_cloud(first)
    second = start_cloud(tmp, "sqlite", env)
    try:
        token, body = second.token()
        s = Swift(second, token, body["project"]["id"])
        r = s("GET", "/keep/o")
        assert r.content == b"persist" and r.headers["x-object-meta-k"] == "v"
        assert s("GET", "/keep").text == "o\n"
    finally:
        stop_cloud(second)


def test_openstacksdk_object_store(ocloud: Cloud) -> None:
    conn = ocloud.sdk()
    name = unique("sdk")
    conn.object_store.create_container(name=name)
    conn.object_store.upload_object(container=name, name="o", data=b"from the sdk")
    assert conn.object_store.download_object("o", container=name) == b"from the sdk"
    assert [o.name for o in conn.object_store.objects(name)] == ["o"]
    conn.object_store.delete_object("o", container=name)
    conn.object_store.delete_container(name)
    assert name not in [c.name for c in conn.object_store.containers()]


# ---- what tempest's object_storage tests check (issue 14, part 6) ----

def test_every_answer_has_a_content_type(admin: Swift) -> None:
    """tempest's header matcher wants Content-Type on every answer, a 204 too (Swift: text/html)."""
    c = unique("/ctype")
    answers = [admin("PUT", c), admin("POST", c, headers={"X-Container-Meta-A": "1"}), admin("HEAD", c),
               admin("PUT", c + "/o", content=b"x"), admin("POST", c + "/o"), admin("DELETE", c + "/o"),
               admin("DELETE", c), admin("POST", "", headers={"X-Account-Meta-A": "1"})]
    assert [r.status_code for r in answers] == [201, 204, 204, 201, 202, 204, 204, 204]
    assert all(r.headers.get("content-type") for r in answers), [dict(r.headers) for r in answers]


def test_account_usage_per_storage_policy(admin: Swift) -> None:
    c = unique("/policyusage")
    admin("PUT", c)
    admin("PUT", c + "/o", content=b"12345")
    h = admin("HEAD").headers
    prefix = "x-account-storage-policy-policy-0-"
    assert int(h[prefix + "container-count"]) == int(h["x-account-container-count"]) >= 1
    assert int(h[prefix + "object-count"]) == int(h["x-account-object-count"]) >= 1
    assert int(h[prefix + "bytes-used"]) == int(h["x-account-bytes-used"]) >= 5


def test_object_metadata_keeps_empty_values_and_ignores_removals(admin: Swift) -> None:
    c = unique("/emptymeta")
    admin("PUT", c)
    admin("PUT", c + "/o", content=b"1", headers={"X-Object-Meta-Blank": "", "X-Object-Meta-Full": "v"})
    h = admin("GET", c + "/o").headers
    assert h["x-object-meta-blank"] == "" and h["x-object-meta-full"] == "v"
    # a PUT replaces the metadata whole: X-Remove-Object-Meta-* names nothing to keep, empty or not
    admin("PUT", c + "/o", content=b"1", headers={"X-Remove-Object-Meta-Full": "x"})
    h = admin("HEAD", c + "/o").headers
    assert not [k for k in h if k.startswith("x-object-meta-")]
    assert admin("POST", c + "/o", headers={"X-Object-Meta-Blank": ""}).status_code == 202
    assert admin("HEAD", c + "/o").headers["x-object-meta-blank"] == ""


def test_a_copy_answers_with_the_new_objects_metadata(admin: Swift) -> None:
    c = unique("/copymeta")
    admin("PUT", c)
    admin("PUT", c + "/src", content=b"data", headers={"X-Object-Meta-Src": "s"})
    r = admin("COPY", c + "/src", headers={"Destination": f"{c[1:]}/dst", "X-Object-Meta-New": ""})
    assert r.status_code == 201
    assert r.headers["x-object-meta-src"] == "s" and r.headers["x-object-meta-new"] == ""
    assert r.headers["x-copied-from"] == f"{c[1:]}/src" and r.headers["x-copied-from-account"] == admin.base.rsplit(
        "/", 1)[1]
    r = admin("PUT", c + "/dst2", headers={"X-Copy-From": f"{c[1:]}/src"}, content=b"body")
    assert r.status_code == 400 and "zero byte" in r.text


def test_account_quota_headers_count_and_bytes(ocloud: Cloud, people: dict[str, Swift], reseller: str) -> None:
    member = people["member"]
    as_reseller = Swift(ocloud, reseller, member.project_id)
    c = unique("/aquota")
    member("PUT", c)
    for headers in ({"X-Account-Quota-Count": "1"}, {"X-Account-Quota-Bytes": "1"},
                    {"X-Remove-Account-Quota-Count": "x"}):
        assert member("POST", "", headers=headers).status_code == 403
    assert as_reseller("POST", "", headers={"X-Account-Quota-Count": "nope"}).status_code == 400
    before = int(member("HEAD").headers["x-account-object-count"])
    assert as_reseller("POST", "", headers={"X-Account-Quota-Count": str(before)}).status_code == 204
    h = member("HEAD").headers  # the account's users see their quota
    assert h["x-account-quota-count"] == str(before) and "x-account-meta-sysmeta:quota-count" not in h
    r = member("PUT", c + "/one-too-many", content=b"")
    assert r.status_code == 413 and r.text == "Upload exceeds quota."
    assert as_reseller("PUT", c + "/by-the-reseller", content=b"").status_code == 201  # not held to it
    assert as_reseller("POST", "", headers={"X-Remove-Account-Quota-Count": "x",
                                            "X-Account-Quota-Bytes": "3"}).status_code == 204
    assert member("PUT", c + "/big", content=b"x" * 4).status_code == 413
    assert as_reseller("POST", "", headers={"X-Account-Quota-Bytes": ""}).status_code == 204
    assert "x-account-quota-bytes" not in member("HEAD").headers
    assert member("PUT", c + "/big", content=b"x" * 4).status_code == 201


def test_info_lists_the_quotas_and_crossdomain_answers(ocloud: Cloud) -> None:
    info = httpx.get(f"{ocloud.object_url}/info").json()
    assert info["container_quotas"] == {} and info["account_quotas"] == {} and info["crossdomain"] == {}
    r = httpx.get(f"{ocloud.object_url}/crossdomain.xml")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert r.text.startswith('<?xml version="1.0"?>\n<!DOCTYPE cross-domain-policy SYSTEM ')
    assert r.text.endswith("</cross-domain-policy>") and 'domain="*"' in r.text


def test_names_with_encoded_question_marks_and_hashes_are_whole(admin: Swift) -> None:
    c = unique("q")
    assert admin("PUT", f"/{c}").status_code == 201
    assert admin("PUT", f"/{c}/a%3Fb%23c%20d", content=b"odd").status_code == 201
    r = admin("GET", f"/{c}/a%3Fb%23c%20d")
    assert r.status_code == 200 and r.content == b"odd"
    assert [o["name"] for o in admin("GET", f"/{c}?format=json").json()] == ["a?b#c d"]
    assert admin("GET", f"/{c}/a").status_code == 404  # not cut at the "?"
