"""Large objects and symlinks (cumulo/object/middleware/slo.py, dlo.py, symlink.py) against one real
cloud (SQLite, identity + object) over HTTP with httpx, and openstacksdk's object store for
reads: SLO upload/read/ranges/manifest/delete and bad manifests, DLO concatenation, symlinks
soft and static, loops, and access through a link."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.functional.conftest import Cloud, make_project_member
from tests.functional.object_helpers import Swift, object_cloud, swift_admin


@pytest.fixture(scope="module")
def lcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with object_cloud(tmp_path_factory, "large") as c:
        yield c


def md5(data: bytes | str) -> str:
    return hashlib.md5(data.encode() if isinstance(data, str) else data).hexdigest()


@pytest.fixture(scope="module")
def owner(lcloud: Cloud) -> Swift:
    return swift_admin(lcloud)


@pytest.fixture(scope="module")
def other(lcloud: Cloud) -> Swift:
    """A member of another project (aimed at its own account)."""
    p = make_project_member(lcloud, "large-q")
    return Swift(lcloud, p.token, p.project_id)


@pytest.fixture(scope="module")
def segs(owner: Swift) -> dict[str, Any]:
    """Container 'segs' with three segments a (1000 B), b (1000 B), c (17 B) and container 'big'."""
    owner.put("/segs")
    owner.put("/big")
    data = {"a": bytes(range(256)) * 3 + b"A" * 232, "b": b"B" * 1000, "c": b"the last segment!"}
    for name, body in data.items():
        owner.put(f"/segs/{name}", body)
    return data


def manifest(segs: dict[str, Any], names: str = "abc") -> list[dict[str, Any]]:
    return [{"path": f"/segs/{n}", "etag": md5(segs[n]), "size_bytes": len(segs[n])} for n in names]


def test_slo_put_get_and_ranges(owner: Swift, segs: dict[str, Any]) -> None:
    whole = segs["a"] + segs["b"] + segs["c"]
    r = owner("PUT", "/big/slo1", params={"multipart-manifest": "put"}, content=json.dumps(manifest(segs)),
              headers={"X-Object-Meta-Color": "blue"})
    assert r.status_code == 201, r.text
    slo_etag = md5("".join(md5(segs[n]) for n in "abc"))
    assert r.headers["etag"] == f'"{slo_etag}"'
    head = owner("HEAD", "/big/slo1")
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(whole))
    assert head.headers["etag"] == f'"{slo_etag}"'
    assert head.headers["x-static-large-object"] == "True"
    assert head.headers["x-object-meta-color"] == "blue"
    assert not any(k.startswith("x-object-sysmeta") for k in head.headers)
    got = owner("GET", "/big/slo1")
    assert got.status_code == 200 and got.content == whole
    # ranges across the boundaries: a->b, b->c, the last bytes, and two ranges at once
    for spec, (start, end) in (("bytes=990-1009", (990, 1010)), ("bytes=1995-2005", (1995, 2006)),
                               ("bytes=-5", (len(whole) - 5, len(whole))), ("bytes=0-0", (0, 1))):
        r = owner("GET", "/big/slo1", headers={"Range": spec})
        assert r.status_code == 206, (spec, r.text)
        assert r.content == whole[start:end], spec
        assert r.headers["content-range"] == f"bytes {start}-{end - 1}/{len(whole)}"
    r = owner("GET", "/big/slo1", headers={"Range": "bytes=10-20,1500-2010"})
    assert r.status_code == 206 and r.headers["content-type"].startswith("multipart/byteranges")
    assert whole[10:21] in r.content and whole[1500:2011] in r.content
    assert owner("GET", "/big/slo1", headers={"Range": "bytes=5000-6000"}).status_code == 416
    # conditions against the large object's ETag
    assert owner("GET", "/big/slo1", headers={"If-None-Match": f'"{slo_etag}"'}).status_code == 304
    assert owner("GET", "/big/slo1", headers={"If-Match": md5(b"x")}).status_code == 412
    assert owner("GET", "/big/slo1", headers={"If-Match": slo_etag}).status_code == 200
    # a POST changes the metadata only: still the large object
    assert owner("POST", "/big/slo1", headers={"X-Object-Meta-Color": "red"}).status_code == 202
    head = owner("HEAD", "/big/slo1")
    assert head.headers["x-object-meta-color"] == "red" and head.headers["etag"] == f'"{slo_etag}"'
    assert owner("GET", "/big/slo1").content == whole
    assert owner("POST", "/segs/c", headers={"X-Static-Large-Object": "True"}).status_code == 202
    assert owner("GET", "/segs/c").content == segs["c"]


def test_slo_manifest_is_versioned(owner: Swift, segs: dict[str, Any]) -> None:
    owner.put("/vslo-archive")
    owner.put("/vslo", **{"X-Versions-Location": "vslo-archive"})
    for names in ("ab", "c"):
        r = owner("PUT", "/vslo/m?multipart-manifest=put", content=json.dumps(manifest(segs, names)))
        assert r.status_code == 201, r.text
    assert owner("GET", "/vslo/m").content == segs["c"]
    archived = owner("GET", "/vslo-archive", params={"format": "json"}).json()
    assert len(archived) == 1
    assert owner("GET", f"/vslo-archive/{archived[0]['name']}").content == segs["a"] + segs["b"]


def test_slo_sdk_read_and_manifest_get(lcloud: Cloud, owner: Swift, segs: dict[str, Any]) -> None:
    items = manifest(segs, "ca")
    items[1]["range"] = "10-19"
    assert owner("PUT", "/big/slo2?multipart-manifest=put", content=json.dumps(items)).status_code == 201
    conn = lcloud.sdk()
    try:
        data = conn.object_store.download_object("slo2", container="big")
    finally:
        conn.close()
    assert data == segs["c"] + segs["a"][10:20]
    got = owner("GET", "/big/slo2", params={"multipart-manifest": "get"})
    assert got.status_code == 200 and got.headers["x-static-large-object"] == "True"
    stored = got.json()
    assert [x["name"] for x in stored] == ["/segs/c", "/segs/a"]
    assert stored[1]["range"] == "10-19" and stored[1]["bytes"] == 1000 and stored[0]["hash"] == md5(segs["c"])
    raw = owner("GET", "/big/slo2", params={"multipart-manifest": "get", "format": "raw"}).json()
    assert raw == [{"path": "/segs/c", "etag": md5(segs["c"]), "size_bytes": 17},
                   {"path": "/segs/a", "etag": md5(segs["a"]), "size_bytes": 1000, "range": "10-19"}]
    expected = md5(md5(segs["c"]) + f"{md5(segs['a'])}:10-19;")
    assert owner("HEAD", "/big/slo2").headers["etag"] == f'"{expected}"'


def test_slo_nested_and_inline_data(owner: Swift, segs: dict[str, Any]) -> None:
    owner("PUT", "/big/inner?multipart-manifest=put", content=json.dumps(manifest(segs, "bc")))
    inner_etag = owner("HEAD", "/big/inner").headers["etag"].strip('"')
    outer = [{"path": "/segs/a"}, {"data": "SGVsbG8="}, {"path": "/big/inner", "etag": inner_etag}]
    r = owner("PUT", "/big/outer?multipart-manifest=put", content=json.dumps(outer))
    assert r.status_code == 201, r.text
    whole = segs["a"] + b"Hello" + segs["b"] + segs["c"]
    assert owner("GET", "/big/outer").content == whole
    r = owner("GET", "/big/outer", headers={"Range": "bytes=998-1010"})
    assert r.content == whole[998:1011]


@pytest.mark.parametrize("case", ["etag", "size", "missing", "too_many", "bad_json", "small", "self"])
def test_slo_bad_manifests(owner: Swift, segs: dict[str, Any], case: str) -> None:
    items = manifest(segs)
    if case == "etag":
        items[1]["etag"] = md5(b"nope")
    elif case == "size":
        items[2]["size_bytes"] = 99
    elif case == "missing":
        items[0]["path"] = "/segs/absent"
    elif case == "too_many":
        items = [{"path": "/segs/c"}] * 1001
    elif case == "small":
        items[0]["size_bytes"] = 0
    elif case == "self":
        items[0]["path"] = "/big/bad"
    body = "[{" if case == "bad_json" else json.dumps(items)
    r = owner("PUT", "/big/bad?multipart-manifest=put", content=body)
    if case == "too_many":
        assert r.status_code == 413 and "must be <= 1000" in r.text
        return
    assert r.status_code == 400, r.text
    want = {"etag": "Errors:\n/segs/b, Etag Mismatch\n", "size": "Errors:\n/segs/c, Size Mismatch\n",
            "missing": "Errors:\n/segs/absent, 404 Not Found\n", "bad_json": "Manifest must be valid JSON.\n",
            "small": "Index 0: too small; each segment must be at least 1 byte.\n",
            "self": "Index 0: manifest must not include itself as a segment\n"}[case]
    assert r.text == want
    assert owner("HEAD", "/big/bad").status_code == 404


def test_slo_errors_as_json_and_reserved_header(owner: Swift, segs: dict[str, Any]) -> None:
    items = manifest(segs, "ab")
    items[0]["etag"] = md5(b"wrong")
    r = owner("PUT", "/big/bad2?multipart-manifest=put", content=json.dumps(items),
              headers={"Accept": "application/json"})
    assert r.status_code == 400 and r.json() == {"Errors": [["/segs/a", "Etag Mismatch"]]}
    r = owner("PUT", "/big/plain", content=b"x", headers={"X-Static-Large-Object": "True"})
    assert r.status_code == 400 and "reserved header" in r.text


def test_slo_delete_with_segments(owner: Swift, segs: dict[str, Any]) -> None:
    owner.put("/dels")
    for n in ("1", "2"):
        owner.put(f"/dels/{n}", n.encode() * 10)
    items = [{"path": "/dels/1"}, {"path": "/dels/2"}]
    assert owner("PUT", "/dels/m?multipart-manifest=put", content=json.dumps(items)).status_code == 201
    r = owner("DELETE", "/dels/m", params={"multipart-manifest": "delete"}, headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json() == {"Number Deleted": 3, "Number Not Found": 0, "Response Body": "",
                        "Response Status": "200 OK", "Errors": []}
    for n in ("1", "2", "m"):
        assert owner("HEAD", f"/dels/{n}").status_code == 404
    owner.put("/dels/p", b"plain")
    r = owner("DELETE", "/dels/p?multipart-manifest=delete")
    assert r.status_code == 200 and "Response Status: 400 Bad Request" in r.text and "Not an SLO manifest" in r.text
    assert owner("HEAD", "/dels/p").status_code == 200


def test_slo_segment_read_access(lcloud: Cloud, owner: Swift, other: Swift, segs: dict[str, Any]) -> None:
    """Another project with a read ACL on the manifest's container but not on the segments'."""
    owner.put("/shared", **{"X-Container-Read": f"{other.account[5:]}:*"})
    owner("PUT", "/shared/slo?multipart-manifest=put", content=json.dumps(manifest(segs, "c")))
    mine = other.on(owner.project_id)
    assert mine("GET", "/shared/slo").status_code == 403
    owner("POST", "/segs", headers={"X-Container-Read": f"{other.account[5:]}:*"})
    try:
        assert mine("GET", "/shared/slo").content == segs["c"]
    finally:
        owner("POST", "/segs", headers={"X-Container-Read": ""})


def test_slo_larger_segments_stream(owner: Swift) -> None:
    """Segments of several of the store's chunks each: the body and ranges inside and across them."""
    owner.put("/bigsegs")
    bodies = [bytes([i]) * 200_000 + bytes(range(256)) * 300 for i in range(3)]
    for i, body in enumerate(bodies):
        owner.put(f"/bigsegs/{i}", body)
    items = [{"path": f"/bigsegs/{i}", "etag": md5(b), "size_bytes": len(b)} for i, b in enumerate(bodies)]
    assert owner("PUT", "/bigsegs/m?multipart-manifest=put", content=json.dumps(items)).status_code == 201
    whole = b"".join(bodies)
    with owner.http.stream("GET", owner.base + "/bigsegs/m", headers={"X-Auth-Token": owner.token or ""}) as r:
        assert r.status_code == 200 and r.headers["content-length"] == str(len(whole))
        got = b"".join(r.iter_bytes())
    assert hashlib.md5(got).hexdigest() == md5(whole)
    start = len(bodies[0]) - 70_000
    r = owner("GET", "/bigsegs/m", headers={"Range": f"bytes={start}-{start + 400_000}"})
    assert r.content == whole[start:start + 400_001]


def test_slo_segment_gone_is_409(owner: Swift) -> None:
    owner.put("/gone")
    owner.put("/gone/s1", b"1" * 10)
    owner.put("/gone/s2", b"2" * 10)
    items = [{"path": "/gone/s1"}, {"path": "/gone/s2"}]
    assert owner("PUT", "/gone/m?multipart-manifest=put", content=json.dumps(items)).status_code == 201
    owner.put("/gone/s1", b"changed!!!")
    r = owner("GET", "/gone/m")
    assert r.status_code == 409 and r.text == "Object segment no longer valid"
    assert owner("GET", "/gone/m", headers={"Range": "bytes=12-15"}).content == b"2222"
    r = owner("DELETE", "/gone/m?multipart-manifest=delete")
    assert r.status_code == 200
    assert r.text == ("Number Deleted: 3\nNumber Not Found: 0\nResponse Body: \nResponse Status: 200 OK\n"
                      "Errors:\n")


def test_dlo_concat_range_etag(owner: Swift) -> None:
    owner.put("/dlo")
    parts = {f"part/{i:03d}": bytes([65 + i]) * (100 + i) for i in range(5)}
    for name, body in reversed(list(parts.items())):
        owner.put(f"/dlo/{name}", body)
    owner.put("/dlo/manifest", b"", **{"X-Object-Manifest": "dlo/part/"})
    whole = b"".join(parts.values())
    r = owner("GET", "/dlo/manifest")
    assert r.status_code == 200 and r.content == whole
    etag = md5("".join(md5(b) for b in parts.values()))
    assert r.headers["etag"] == f'"{etag}"' and r.headers["content-length"] == str(len(whole))
    assert r.headers["x-object-manifest"] == "dlo/part/"
    r = owner("GET", "/dlo/manifest", headers={"Range": "bytes=95-310"})
    assert r.status_code == 206 and r.content == whole[95:311]
    assert owner("GET", "/dlo/manifest", headers={"If-None-Match": etag}).status_code == 304
    # a segment added later is part of it; ?multipart-manifest=get is the manifest object itself
    owner.put("/dlo/part/999", b"zz")
    assert owner("GET", "/dlo/manifest").content == whole + b"zz"
    r = owner("GET", "/dlo/manifest?multipart-manifest=get")
    assert r.status_code == 200 and r.content == b"" and r.headers["etag"].strip('"') == md5(b"")
    assert owner("PUT", "/dlo/bad", content=b"", headers={"X-Object-Manifest": "noslash"}).status_code == 400


def test_dlo_segment_container_read_checked(lcloud: Cloud, owner: Swift, other: Swift) -> None:
    owner.put("/dlo-segs")
    owner.put("/dlo-segs/p1", b"one")
    owner.put("/dlo-pub", **{"X-Container-Read": f"{other.account[5:]}:*"})
    owner.put("/dlo-pub/m", b"", **{"X-Object-Manifest": "dlo-segs/p"})
    theirs = other.on(owner.project_id)
    assert owner("GET", "/dlo-pub/m").content == b"one"
    assert theirs("GET", "/dlo-pub/m").status_code == 403
    owner("POST", "/dlo-segs", headers={"X-Container-Read": f"{other.account[5:]}:*"})
    assert theirs("GET", "/dlo-pub/m").content == b"one"


def test_symlink_follow_and_get(owner: Swift, segs: dict[str, Any]) -> None:
    owner.put("/links")
    owner.put("/links/target", b"target data", **{"Content-Type": "text/x-target"})
    r = owner("PUT", "/links/soft", content=b"", headers={"X-Symlink-Target": "links/target"})
    assert r.status_code == 201, r.text
    got = owner("GET", "/links/soft")
    assert got.status_code == 200 and got.content == b"target data"
    assert got.headers["content-location"] == f"/v1/{owner.account}/links/target"
    assert got.headers["content-type"] == "text/x-target"
    assert "x-symlink-target" not in got.headers
    assert owner("GET", "/links/soft", headers={"Range": "bytes=0-5"}).content == b"target"
    link = owner("GET", "/links/soft", params={"symlink": "get"})
    assert link.status_code == 200 and link.content == b""
    assert link.headers["x-symlink-target"] == "links/target"
    assert link.headers["content-type"] == "application/symlink"
    assert owner("POST", "/links/soft", headers={"X-Object-Meta-K": "v"}).status_code == 202
    assert owner("GET", "/links/soft").content == b"target data"
    assert owner("HEAD", "/links/soft?symlink=get").headers["x-object-meta-k"] == "v"
    # a link to a large object serves the large object
    owner("PUT", "/links/toslo", content=b"", headers={"X-Symlink-Target": "big/slo1"})
    assert owner("GET", "/links/toslo").content == segs["a"] + segs["b"] + segs["c"]
    # a dangling soft link is a 404; bad targets
    owner("PUT", "/links/dangling", content=b"", headers={"X-Symlink-Target": "links/nothing"})
    assert owner("GET", "/links/dangling").status_code == 404
    assert owner("PUT", "/links/x", content=b"", headers={"X-Symlink-Target": "nocontainer"}).status_code == 412
    r = owner("PUT", "/links/self", content=b"", headers={"X-Symlink-Target": "links/self"})
    assert r.status_code == 400 and r.text == "Symlink cannot target itself"
    r = owner("PUT", "/links/body", content=b"data", headers={"X-Symlink-Target": "links/target"})
    assert r.status_code == 400
    # a JSON listing says where each link points (only JSON, as in Swift)
    listed = {o["name"]: o for o in owner("GET", "/links", params={"format": "json"}).json()}
    assert listed["soft"]["symlink_path"] == f"/v1/{owner.account}/links/target"
    assert listed["soft"]["content_type"] == "application/symlink"
    assert "symlink_path" not in listed["target"]
    assert b"symlink_path" not in owner("GET", "/links", params={"format": "xml"}).content


def test_symlink_static_and_loops(owner: Swift) -> None:
    owner.put("/links2")
    owner.put("/links2/st-target", b"v1")
    r = owner("PUT", "/links2/static", content=b"",
              headers={"X-Symlink-Target": "links2/st-target", "X-Symlink-Target-Etag": md5(b"v1")})
    assert r.status_code == 201, r.text
    assert owner("GET", "/links2/static").content == b"v1"
    assert owner("GET", "/links2/static?symlink=get").headers["x-symlink-target-etag"] == md5(b"v1")
    r = owner("PUT", "/links2/static2", content=b"",
              headers={"X-Symlink-Target": "links2/st-target", "X-Symlink-Target-Etag": md5(b"other")})
    assert r.status_code == 409 and "does not match X-Symlink-Target-Etag" in r.text
    r = owner("PUT", "/links2/static3", content=b"",
              headers={"X-Symlink-Target": "links2/none", "X-Symlink-Target-Etag": md5(b"v1")})
    assert r.status_code == 409 and r.text == "X-Symlink-Target does not exist"
    owner.put("/links2/st-target", b"v2")
    r = owner("GET", "/links2/static")
    assert r.status_code == 409 and "does not match X-Symlink-Target-Etag" in r.text
    # chains: two hops are followed, three are not
    owner("PUT", "/links2/hop1", content=b"", headers={"X-Symlink-Target": "links2/st-target"})
    owner("PUT", "/links2/hop2", content=b"", headers={"X-Symlink-Target": "links2/hop1"})
    owner("PUT", "/links2/hop3", content=b"", headers={"X-Symlink-Target": "links2/hop2"})
    assert owner("GET", "/links2/hop2").content == b"v2"
    r = owner("GET", "/links2/hop3")
    assert r.status_code == 409 and r.text == "Too many levels of symbolic links, maximum allowed is 2"
    owner("PUT", "/links2/loopa", content=b"", headers={"X-Symlink-Target": "links2/loopb"})
    owner("PUT", "/links2/loopb", content=b"", headers={"X-Symlink-Target": "links2/loopa"})
    assert owner("GET", "/links2/loopa").status_code == 409


def test_symlink_does_not_lend_access(owner: Swift, other: Swift) -> None:
    """A link in another project's account to the owner's private object: refused; allowed once
    the target container's read ACL lets that project in."""
    owner.put("/private")
    owner.put("/private/secret", b"secret")
    other.put("/mine")
    r = other("PUT", "/mine/link", content=b"",
              headers={"X-Symlink-Target": "private/secret", "X-Symlink-Target-Account": owner.account})
    assert r.status_code == 201
    assert other("GET", "/mine/link").status_code == 403
    assert other("HEAD", "/mine/link").status_code == 403
    assert other("GET", "/mine/link?symlink=get").headers["x-symlink-target-account"] == owner.account
    owner("POST", "/private", headers={"X-Container-Read": f"{other.account[5:]}:*"})
    r = other("GET", "/mine/link")
    assert r.status_code == 200 and r.content == b"secret"
    assert r.headers["content-location"] == f"/v1/{owner.account}/private/secret"


def test_info_sections(lcloud: Cloud) -> None:
    info = httpx.get(f"{lcloud.object_url}/info", timeout=30).json()
    assert info["slo"] == {"max_manifest_segments": 1000, "max_manifest_size": 8388608, "min_segment_size": 1}
    assert info["dlo"] == {"max_segments": 10000}
    assert info["symlink"] == {"symloop_limit": 2, "static_links": True}
