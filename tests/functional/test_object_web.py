"""Object storage's web and bulk features against a real cloud (SQLite, identity + object) over
HTTP with httpx: bulk delete and archive extraction (cumulo/object/middleware/bulk.py), static
web sites (staticweb.py) and CORS (cors.py)."""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.functional.conftest import Cloud
from tests.functional.object_helpers import Swift, object_cloud, swift_admin


@pytest.fixture(scope="module")
def wcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with object_cloud(tmp_path_factory, "object-web") as c:
        yield c


@pytest.fixture(scope="module")
def sw(wcloud: Cloud) -> Swift:
    return swift_admin(wcloud)


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def tarball(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
        d = tarfile.TarInfo("emptydir")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
    return out.getvalue()


def test_info_sections(sw: Swift) -> None:
    info = httpx.get(f"{sw.cloud.object_url}/info").json()
    assert info["bulk_delete"] == {"max_deletes_per_request": 10000, "max_failed_deletes": 1000}
    assert info["bulk_upload"] == {"max_containers_per_extraction": 10000, "max_failed_extractions": 1000}
    assert "staticweb" in info and info["swift"]["strict_cors_mode"] is True


# ---- bulk delete ----

def test_bulk_delete_objects_json(sw: Swift) -> None:
    c = name("bd")
    assert sw("PUT", f"/{c}").status_code == 201
    for o in ("a", "b c", "d/e"):
        assert sw("PUT", f"/{c}/{o}", content=b"x").status_code == 201
    body = f"/{c}/a\n/{c}/b%20c\n/{c}/d/e\n/{c}/missing\n"
    r = sw("POST", "?bulk-delete", content=body, headers={"Accept": "application/json",
                                                           "Content-Type": "text/plain"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    answer = r.json()
    assert answer == {"Response Status": "200 OK", "Response Body": "", "Number Deleted": 3,
                      "Number Not Found": 1, "Errors": []}
    assert sw("GET", f"/{c}").status_code == 204  # empty now
    # the container itself goes in a second request (DELETE verb, plain answer)
    r = sw("DELETE", "?bulk-delete", content=f"/{c}\n")
    assert r.status_code == 200 and "Number Deleted: 1" in r.text and "Response Status: 200 OK" in r.text
    assert sw("HEAD", f"/{c}").status_code == 404


def test_bulk_delete_objects_before_their_container(sw: Swift) -> None:
    """Tempest's shape: paths without the leading slash, the container listed before its object."""
    c = name("bdboth")
    sw("PUT", f"/{c}")
    sw("PUT", f"/{c}/o", content=b"x")
    r = sw("DELETE", "?bulk-delete", content=f"{c}\n{c}/o", headers={"Accept": "application/json"})
    assert r.json()["Number Deleted"] == 2 and r.json()["Errors"] == []
    assert sw("HEAD", f"/{c}").status_code == 404


def test_bulk_delete_non_empty_container_is_409(sw: Swift) -> None:
    c = name("bd409")
    sw("PUT", f"/{c}")
    sw("PUT", f"/{c}/keep", content=b"x")
    r = sw("POST", "?bulk-delete", content=f"/{c}\n", headers={"Accept": "application/json"})
    answer = r.json()
    assert answer["Response Status"] == "400 Bad Request"
    assert answer["Errors"] == [[f"/{c}", "409 Conflict"]] and answer["Number Deleted"] == 0
    assert sw("HEAD", f"/{c}").status_code == 204
    # xml answer
    r = sw("POST", "?bulk-delete", content=f"/{c}\n", headers={"Accept": "application/xml"})
    assert "<number_deleted>0</number_deleted>" in r.text and "<status>409 Conflict</status>" in r.text


def test_bulk_delete_limits_and_auth(sw: Swift) -> None:
    r = sw("POST", "?bulk-delete", content="\n".join(f"/c/o{i}" for i in range(10001)),
           headers={"Accept": "application/json"})
    assert r.json()["Response Status"] == "413 Request Entity Too Large"
    assert "Maximum Bulk Deletes: 10000" in r.json()["Response Body"]
    r = sw("POST", "?bulk-delete", content="/c/" + "x" * 3000, headers={"Accept": "application/json"})
    assert r.json()["Response Status"] == "400 Bad Request" and r.json()["Response Body"] == "Invalid File Name"
    r = sw("POST", "?bulk-delete", content="/a/b", headers={"Content-Type": "application/json",
                                                            "Accept": "application/json"})
    assert r.json()["Response Status"] == "406 Not Acceptable"
    c = name("bdauth")
    sw("PUT", f"/{c}")
    sw("PUT", f"/{c}/o", content=b"x")
    r = sw("POST", "?bulk-delete", anonymous=True, content=f"/{c}/o\n", headers={"Accept": "application/json"})
    assert r.json()["Errors"] == [[f"/{c}/o", "401 Unauthorized"]]
    assert sw("HEAD", f"/{c}/o").status_code == 200


# ---- archive extraction ----

def test_extract_into_container(sw: Swift) -> None:
    c = name("ex")
    sw("PUT", f"/{c}")
    data = tarball({"top.txt": b"top", "dir/sub/deep.html": b"<p>deep</p>", "./dir/b.bin": b"\x00\x01"})
    r = sw("PUT", f"/{c}?extract-archive=tar.gz", content=data, headers={"Accept": "application/json",
                                                                          "X-Object-Meta-Color": "blue"})
    assert r.status_code == 200, r.text
    assert r.json() == {"Response Status": "201 Created", "Response Body": "", "Number Files Created": 3,
                        "Errors": []}
    names = sw("GET", f"/{c}?format=json").json()
    assert sorted(o["name"] for o in names) == ["dir/b.bin", "dir/sub/deep.html", "top.txt"]
    got = sw("GET", f"/{c}/dir/sub/deep.html")
    assert got.content == b"<p>deep</p>" and got.headers["content-type"] == "text/html"
    assert got.headers["x-object-meta-color"] == "blue"


def test_extract_at_account_level(sw: Swift) -> None:
    a, b = name("exa"), name("exb")
    data = tarball({f"{a}/one.txt": b"1", f"{a}/x/two.txt": b"22", f"{b}/three": b"333", "loose.txt": b"skip"},
                   mode="w")
    r = sw("PUT", "?extract-archive=tar", content=data, headers={"Accept": "application/json"})
    assert r.json()["Number Files Created"] == 3 and r.json()["Response Status"] == "201 Created"
    assert sw("GET", f"/{a}/x/two.txt").content == b"22"
    assert sw("HEAD", f"/{b}").headers["x-container-object-count"] == "1"
    # bz2 into a pseudo-directory of a container
    data = tarball({"f.txt": b"bz"}, mode="w:bz2")
    r = sw("PUT", f"/{b}/pseudo?extract-archive=tar.bz2", content=data, headers={"Accept": "application/json"})
    assert r.json()["Number Files Created"] == 1
    assert sw("GET", f"/{b}/pseudo/f.txt").content == b"bz"


def test_extract_bad_archives(sw: Swift) -> None:
    c = name("exbad")
    sw("PUT", f"/{c}")
    r = sw("PUT", f"/{c}?extract-archive=tar.gz", content=b"this is not gzip" * 10,
           headers={"Accept": "application/json"})
    assert r.status_code == 200
    assert r.json()["Response Status"] == "400 Bad Request"
    assert r.json()["Response Body"].startswith("Invalid Tar File")
    r = sw("PUT", f"/{c}?extract-archive=zip", content=b"x")
    assert r.status_code == 400 and "Unsupported archive format" in r.text
    r = sw("PUT", f"/{c}?extract-archive=tar", content=tarball({}, mode="w"), headers={"Accept": "application/json"})
    assert r.json()["Response Body"] == "Invalid Tar File: No Valid Files"
    # no token: each file is refused and the extraction stops at the first 401
    r = sw("PUT", f"/{c}?extract-archive=tar", anonymous=True, content=tarball({"a": b"1"}, mode="w"),
           headers={"Accept": "application/json"})
    assert r.json()["Response Status"] == "401 Unauthorized"
    assert sw("GET", f"/{c}?format=json").json() == []


# ---- static web ----

@pytest.fixture(scope="module")
def site(sw: Swift) -> str:
    c = name("web")
    assert sw("PUT", f"/{c}", headers={"X-Container-Read": ".r:*,.rlistings"}).status_code == 201
    for path, data, ctype in (("index.html", b"<h1>home</h1>", "text/html"),
                              ("docs/a.txt", b"aaa", "text/plain"), ("docs/b.txt", b"bb", "text/plain"),
                              ("blog/index.html", b"<h1>blog</h1>", "text/html"),
                              ("404error.html", b"<h1>gone</h1>", "text/html"),
                              ("marker", b"", "application/directory")):
        assert sw("PUT", f"/{c}/{path}", content=data, headers={"Content-Type": ctype}).status_code == 201
    return c


def test_staticweb_index_listing_error(sw: Swift, site: str) -> None:
    anon = httpx.Client(timeout=30, follow_redirects=False)
    base = sw.base + "/" + site
    # without web metadata: the plain listing, anonymous with .rlistings
    assert anon.get(base).text.splitlines()[0] == "404error.html"
    sw("POST", f"/{site}", headers={"X-Container-Meta-Web-Index": "index.html",
                                    "X-Container-Meta-Web-Listings": "true",
                                    "X-Container-Meta-Web-Error": "error.html"})
    r = anon.get(base)
    assert r.status_code == 301 and r.headers["location"].endswith(f"/{site}/")
    r = anon.get(base + "/")
    assert r.status_code == 200 and r.content == b"<h1>home</h1>"
    r = anon.get(base + "/blog")
    assert r.status_code == 301 and r.headers["location"].endswith(f"/{site}/blog/")
    assert anon.get(base + "/blog/").content == b"<h1>blog</h1>"
    r = anon.get(base + "/docs/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "Listing of" in r.text and 'href="./a%2Etxt"' in r.text and ">b.txt</a>" in r.text
    assert anon.get(base + "/docs").status_code == 301
    r = anon.get(base + "/nothing/here")
    assert r.status_code == 404 and r.content == b"<h1>gone</h1>"
    r = anon.get(base + "/marker")
    assert r.status_code == 404 and r.content == b"<h1>gone</h1>"
    # a token holder sees the API unless asking for web mode
    assert sw("GET", f"/{site}/docs/").status_code == 404
    assert "Listing of" in sw("GET", f"/{site}/docs/", headers={"X-Web-Mode": "true"}).text
    # listing with a style sheet at the root when there is no index
    sw("POST", f"/{site}", headers={"X-Remove-Container-Meta-Web-Index": "x",
                                    "X-Container-Meta-Web-Listings-CSS": "style.css"})
    r = anon.get(base + "/")
    assert '<link rel="stylesheet" type="text/css" href="style.css" />' in r.text
    assert 'href="./docs/"' in r.text and "index.html" in r.text
    # not readable by anonymous: 401 (with the 401 page when there is one: here none readable)
    private = name("webpriv")
    sw("PUT", f"/{private}", headers={"X-Container-Meta-Web-Listings": "true"})
    assert anon.get(sw.base + f"/{private}/").status_code == 401


# ---- CORS ----

def test_cors_preflight_and_headers(sw: Swift) -> None:
    c = name("cors")
    sw("PUT", f"/{c}", headers={"X-Container-Meta-Access-Control-Allow-Origin": "https://good.example",
                                "X-Container-Meta-Access-Control-Max-Age": "600",
                                "X-Container-Meta-Access-Control-Expose-Headers": "X-Custom"})
    sw("PUT", f"/{c}/o", content=b"data", headers={"X-Object-Meta-Kind": "k"})
    anon = httpx.Client(timeout=30)
    url = f"{sw.base}/{c}/o"
    r = anon.options(url, headers={"Origin": "https://good.example", "Access-Control-Request-Method": "GET",
                                   "Access-Control-Request-Headers": "x-auth-token, content-type"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://good.example"
    assert r.headers["access-control-max-age"] == "600"
    assert "GET" in r.headers["access-control-allow-methods"]
    assert r.headers["access-control-allow-headers"] == "x-auth-token, content-type"
    r = anon.options(url, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert r.status_code == 401 and "access-control-allow-origin" not in r.headers
    r = anon.options(url, headers={"Origin": "https://good.example", "Access-Control-Request-Method": "PATCH"})
    assert r.status_code == 401
    r = anon.options(url)
    assert r.status_code == 200 and r.headers["allow"] == "COPY, DELETE, GET, HEAD, OPTIONS, POST, PUT"
    assert anon.options(f"{sw.base}/{c}").headers["allow"] == "DELETE, GET, HEAD, OPTIONS, POST, PUT"
    r = sw("GET", f"/{c}/o", headers={"Origin": "https://good.example"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://good.example"
    exposed = {h.strip() for h in r.headers["access-control-expose-headers"].split(",")}
    assert {"etag", "x-timestamp", "x-trans-id", "x-object-meta-kind", "x-custom"} <= exposed
    r = sw("GET", f"/{c}/o", headers={"Origin": "https://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    # an error answer for an allowed origin carries them too
    r = anon.get(url, headers={"Origin": "https://good.example"})
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == "https://good.example"
    # any origin
    sw("POST", f"/{c}", headers={"X-Container-Meta-Access-Control-Allow-Origin": "*"})
    r = anon.options(url, headers={"Origin": "https://x.example", "Access-Control-Request-Method": "PUT"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
    assert json.loads(json.dumps(dict(r.headers)))  # headers are plain text
