"""Object versioning (cumulo/object/middleware/versioned_writes.py) against a real cloud (SQLite,
identity + object), over HTTP with httpx: X-Versions-Location's stack mode, X-History-Location's
delete markers, Swift's archive names, the container headers and their errors, who may use it,
and tempest's versioned-container flow."""

from __future__ import annotations

import gzip
import hashlib
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.functional.conftest import Cloud, unique
from tests.functional.object_helpers import Swift, object_cloud, swift_admin, swift_people

MARKER = "application/x-deleted;swift_versions_deleted=1"


@pytest.fixture(scope="module")
def vcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with object_cloud(tmp_path_factory, "versioning") as c:
        yield c


@pytest.fixture(scope="module")
def owner(vcloud: Cloud) -> Swift:
    return swift_admin(vcloud)


@pytest.fixture(scope="module")
def people(vcloud: Cloud) -> dict[str, Swift]:
    """A project with a member and a reader, and a member of another project, all aimed at the
    first project's account."""
    found = swift_people(vcloud, "ver")
    return {name: found[name].on(found["member"].project_id) for name in ("member", "reader", "other")}


def _pair(s: Swift, header: str = "X-Versions-Location") -> tuple[str, str]:
    """A new versioned container and its archive container."""
    archive, cont = unique("archive"), unique("versioned")
    assert s("PUT", f"/{archive}").status_code == 201
    assert s("PUT", f"/{cont}", headers={header: archive}).status_code == 201
    return cont, archive


def _prefix(name: str) -> str:
    return f"{len(name.encode()):03x}{name}/"


def test_info_lists_the_flags(owner: Swift, vcloud: Cloud) -> None:
    info = httpx.get(f"{vcloud.object_url}/info", timeout=30).json()
    assert info["versioned_writes"] == {"allowed_flags": ["x-versions-location", "x-history-location"]}


def test_stack_mode_archives_in_order_and_delete_pops_each_older_version(owner: Swift) -> None:
    cont, archive = _pair(owner)
    head = owner("HEAD", f"/{cont}")
    assert head.headers["x-versions-location"] == archive
    assert "x-history-location" not in head.headers
    assert not any(k.lower().startswith("x-container-meta-sysmeta") for k in head.headers)
    for body in (b"one", b"two", b"three"):
        assert owner("PUT", f"/{cont}/obj", content=body, headers={"Content-Type": f"text/v-{body.decode()}"}
                     ).status_code == 201
    assert owner("GET", f"/{cont}/obj").content == b"three"
    versions = owner.listing(archive)
    assert [v["name"].rsplit("/", 1)[0] + "/" for v in versions] == [_prefix("obj")] * 2
    assert [v["content_type"] for v in versions] == ["text/v-one", "text/v-two"]  # name order is age order
    stamp = versions[0]["name"].rsplit("/", 1)[1]
    assert len(stamp) == 16 and stamp[10] == "."
    assert owner("GET", f"/{archive}/{versions[1]['name']}").content == b"two"
    # a POST makes no version
    assert owner("POST", f"/{cont}/obj", headers={"X-Object-Meta-Color": "red"}).status_code == 202
    assert len(owner.listing(archive)) == 2

    assert owner("DELETE", f"/{cont}/obj").status_code == 204
    got = owner("GET", f"/{cont}/obj")
    assert got.content == b"two" and got.headers["content-type"] == "text/v-two"
    assert [v["content_type"] for v in owner.listing(archive)] == ["text/v-one"]
    assert owner("DELETE", f"/{cont}/obj").status_code == 204
    assert owner("GET", f"/{cont}/obj").content == b"one"
    assert owner.listing(archive) == []
    assert owner("HEAD", f"/{archive}").headers["x-container-object-count"] == "0"
    assert owner("DELETE", f"/{cont}/obj").status_code == 204
    assert owner("GET", f"/{cont}/obj").status_code == 404
    assert owner("DELETE", f"/{cont}/obj").status_code == 404


def test_versions_keep_their_metadata_and_headers(owner: Swift) -> None:
    cont, archive = _pair(owner)
    first = {"Content-Type": "text/jibberish01", "Content-Encoding": "gzip",
             "Content-Disposition": "attachment; filename=myfile", "X-Object-Meta-Kept": "yes"}
    packed = gzip.compress(b"aaaaa")  # httpx decodes what says it is gzip
    assert owner("PUT", f"/{cont}/doc", content=packed, headers=first).status_code == 201
    assert owner("PUT", f"/{cont}/doc", content=b"bbbbb",
                 headers={"Content-Type": "text/jibberish02", "X-Object-Meta-Foo": "Bar"}).status_code == 201
    [version] = owner.listing(archive)
    old = owner("GET", f"/{archive}/{version['name']}")
    assert old.content == b"aaaaa"
    assert old.headers["content-type"] == "text/jibberish01"
    assert old.headers["content-encoding"] == "gzip"
    assert old.headers["content-disposition"] == "attachment; filename=myfile"
    assert old.headers["x-object-meta-kept"] == "yes"
    assert "x-object-meta-foo" not in old.headers  # the new version's metadata did not leak
    assert version["hash"] == hashlib.md5(packed).hexdigest()
    # the popped version comes back with all of it
    assert owner("DELETE", f"/{cont}/doc").status_code == 204
    back = owner("GET", f"/{cont}/doc")
    assert back.content == b"aaaaa"
    assert back.headers["content-disposition"] == "attachment; filename=myfile"
    assert back.headers["x-object-meta-kept"] == "yes" and "x-object-meta-foo" not in back.headers


def test_copy_and_x_copy_from_over_a_versioned_object_archive_it(owner: Swift) -> None:
    cont, archive = _pair(owner)
    src = unique("src")
    assert owner("PUT", f"/{src}").status_code == 201
    owner("PUT", f"/{src}/s", content=b"ddddd", headers={"Content-Type": "text/d"})
    owner("PUT", f"/{cont}/o", content=b"ccccc")
    assert owner("COPY", f"/{src}/s", headers={"Destination": f"{cont}/o"}).status_code == 201
    assert owner("GET", f"/{cont}/o").content == b"ddddd"
    [v] = owner.listing(archive)
    assert owner("GET", f"/{archive}/{v['name']}").content == b"ccccc"
    assert owner("PUT", f"/{cont}/o", headers={"X-Copy-From": f"{src}/s", "Content-Length": "0"}).status_code == 201
    assert len(owner.listing(archive)) == 2
    # a copy from a missing source archives nothing
    assert owner("COPY", f"/{src}/missing", headers={"Destination": f"{cont}/o"}).status_code == 404
    assert len(owner.listing(archive)) == 2
    # restoring an older version: COPY it from the archive onto the object
    oldest = owner.listing(archive)[0]["name"]
    assert owner("COPY", f"/{archive}/{oldest}", headers={"Destination": f"{cont}/o"}).status_code == 201
    assert owner("GET", f"/{cont}/o").content == b"ccccc"
    assert len(owner.listing(archive)) == 3


def test_history_mode_leaves_a_delete_marker_and_the_archived_copies(owner: Swift) -> None:
    cont, archive = _pair(owner, "X-History-Location")
    head = owner("HEAD", f"/{cont}")
    assert head.headers["x-history-location"] == archive and "x-versions-location" not in head.headers
    owner("PUT", f"/{cont}/h", content=b"1")
    owner("PUT", f"/{cont}/h", content=b"2")
    assert owner("DELETE", f"/{cont}/h").status_code == 204
    assert owner("GET", f"/{cont}/h").status_code == 404
    versions = owner.listing(archive, prefix=_prefix("h"))
    assert [v["content_type"] for v in versions][-1] == MARKER
    assert versions[-1]["bytes"] == 0
    assert [owner("GET", f"/{archive}/{v['name']}").content for v in versions[:2]] == [b"1", b"2"]
    assert len(versions) == 3
    # a DELETE of what is not there still notes it (as Swift does), and answers 404
    assert owner("DELETE", f"/{cont}/h").status_code == 404
    assert len(owner.listing(archive, prefix=_prefix("h"))) == 4


def test_stack_mode_after_history_mode_restores_past_the_delete_marker(owner: Swift) -> None:
    cont, archive = _pair(owner, "X-History-Location")
    owner("PUT", f"/{cont}/m", content=b"old")
    assert owner("DELETE", f"/{cont}/m").status_code == 204  # archive: old, marker
    assert owner("POST", f"/{cont}", headers={"X-Versions-Location": archive}).status_code == 204
    assert owner("DELETE", f"/{cont}/m").status_code == 204  # the marker goes, old comes back
    assert owner("GET", f"/{cont}/m").content == b"old"
    assert owner.listing(archive, prefix=_prefix("m")) == []


def test_both_headers_at_once_are_a_400(owner: Swift) -> None:
    archive, cont = unique("archive"), unique("both")
    r = owner("PUT", f"/{cont}", headers={"X-Versions-Location": archive, "X-History-Location": archive})
    assert r.status_code == 400 and "Only one of" in r.text
    assert owner("HEAD", f"/{cont}").status_code == 404
    assert owner("PUT", f"/{cont}").status_code == 201
    assert owner("POST", f"/{cont}", headers={"X-Versions-Location": archive,
                                               "X-History-Location": archive}).status_code == 400
    # an empty one defers to the other
    assert owner("POST", f"/{cont}", headers={"X-Versions-Location": archive,
                                               "X-History-Location": ""}).status_code == 204
    assert owner("HEAD", f"/{cont}").headers["x-versions-location"] == archive
    assert owner("POST", f"/{cont}", headers={"X-Versions-Location": "a/b"}).status_code == 412


def test_a_missing_archive_container_is_a_412_and_nothing_changes(owner: Swift) -> None:
    archive, cont = unique("absent"), unique("versioned")
    assert owner("PUT", f"/{cont}", headers={"X-Versions-Location": archive}).status_code == 201
    assert owner("PUT", f"/{cont}/x", content=b"first").status_code == 201  # nothing to archive yet
    assert owner("PUT", f"/{cont}/x", content=b"second").status_code == 412
    assert owner("GET", f"/{cont}/x").content == b"first"
    assert owner("DELETE", f"/{cont}/x").status_code == 204  # stack mode, no archive: a plain delete
    assert owner("POST", f"/{cont}", headers={"X-History-Location": archive}).status_code == 204
    owner("PUT", f"/{cont}/y", content=b"y")
    assert owner("DELETE", f"/{cont}/y").status_code == 412
    assert owner("GET", f"/{cont}/y").content == b"y"


def test_removal_headers_and_an_empty_value_turn_it_off(owner: Swift) -> None:
    cont, archive = _pair(owner)
    assert owner("POST", f"/{cont}", headers={"X-Remove-Versions-Location": "x"}).status_code == 204
    assert "x-versions-location" not in owner("HEAD", f"/{cont}").headers
    owner("PUT", f"/{cont}/r", content=b"1")
    owner("PUT", f"/{cont}/r", content=b"2")
    assert owner("HEAD", f"/{archive}").headers["x-container-object-count"] == "0"
    # setting wins over removing in the same request
    assert owner("POST", f"/{cont}", headers={"X-Remove-History-Location": "x",
                                               "X-History-Location": archive}).status_code == 204
    assert owner("HEAD", f"/{cont}").headers["x-history-location"] == archive
    assert owner("POST", f"/{cont}", headers={"X-Remove-History-Location": "x"}).status_code == 204
    assert "x-history-location" not in owner("HEAD", f"/{cont}").headers
    assert owner("POST", f"/{cont}", headers={"X-Versions-Location": archive}).status_code == 204
    assert owner("PUT", f"/{cont}", headers={"X-Versions-Location": ""}).status_code == 202
    head = owner("HEAD", f"/{cont}")
    assert "x-versions-location" not in head.headers and "x-history-location" not in head.headers
    # other container metadata is untouched by all this
    assert owner("POST", f"/{cont}", headers={"X-Container-Meta-Kept": "1",
                                               "X-Versions-Location": archive}).status_code == 204
    head = owner("HEAD", f"/{cont}")
    assert head.headers["x-container-meta-kept"] == "1" and head.headers["x-versions-location"] == archive
    listing = owner("GET", f"/{cont}", params={"format": "json"})
    assert listing.headers["x-versions-location"] == archive


def test_who_may_enable_and_use_it(owner: Swift, people: dict[str, Swift]) -> None:
    member, reader, other = people["member"], people["reader"], people["other"]
    archive, cont = unique("archive"), unique("acl")
    assert member("PUT", f"/{archive}").status_code == 201
    assert member("PUT", f"/{cont}").status_code == 201
    # a reader can't turn versioning on (or off)
    assert reader("POST", f"/{cont}", headers={"X-Versions-Location": archive}).status_code == 403
    assert reader("PUT", f"/{cont}", headers={"X-Versions-Location": archive}).status_code == 403
    assert "x-versions-location" not in member("HEAD", f"/{cont}").headers
    assert member("POST", f"/{cont}", headers={"X-Versions-Location": archive}).status_code == 204
    assert reader("POST", f"/{cont}", headers={"X-Remove-Versions-Location": "x"}).status_code == 403
    assert member("HEAD", f"/{cont}").headers["x-versions-location"] == archive
    member("PUT", f"/{cont}/o", content=b"aaaaa")
    member("PUT", f"/{cont}/o", content=b"bbbbb")
    # a reader cannot overwrite or delete: nothing is archived or popped
    assert reader("PUT", f"/{cont}/o", content=b"ccccc").status_code == 403
    assert reader("DELETE", f"/{cont}/o").status_code == 403
    # another project, without any ACL: 403 and nothing moves
    assert other("DELETE", f"/{cont}/o").status_code == 403
    assert other("PUT", f"/{cont}/o", content=b"x").status_code == 403
    assert len(member.listing(archive)) == 1
    assert member("GET", f"/{cont}/o").content == b"bbbbb"
    # given write on the versioned container only, it versions (as in Swift) but can't read the archive
    assert member("POST", f"/{cont}", headers={"X-Container-Write": f"{other.project_id}:*"}).status_code == 204
    assert other("PUT", f"/{cont}/o", content=b"from-other").status_code == 201
    assert len(member.listing(archive)) == 2
    assert other("GET", f"/{archive}").status_code == 403
    assert other("DELETE", f"/{cont}/o").status_code == 204
    assert member("GET", f"/{cont}/o").content == b"bbbbb"


def test_long_and_non_ascii_names(owner: Swift) -> None:
    cont, archive = _pair(owner)
    name = "caf\u00e9/d\u00e9j\u00e0"
    owner("PUT", f"/{cont}/{name}", content=b"1")
    owner("PUT", f"/{cont}/{name}", content=b"2")
    [v] = owner.listing(archive)
    assert v["name"].startswith(f"{len(name.encode()):03x}{name}/")
    long_name = "n" * 1010  # its archive name would pass the 1,024-byte limit
    assert owner("PUT", f"/{cont}/{long_name}", content=b"1").status_code == 201
    assert owner("PUT", f"/{cont}/{long_name}", content=b"2").status_code == 412
    assert owner("GET", f"/{cont}/{long_name}").content == b"1"


def test_an_archive_name_url_encoded_or_raw_utf8(owner: Swift) -> None:
    archive = unique("arch\u00efve")
    assert owner("PUT", f"/{archive}").status_code == 201
    for value in (quote(archive), archive.encode()):
        cont = unique("versioned")
        assert owner("PUT", f"/{cont}", headers={"X-Versions-Location": value}).status_code == 201
        shown = owner("HEAD", f"/{cont}").headers.raw
        assert (b"x-versions-location", value.encode() if isinstance(value, str) else value) in [
            (k.lower(), v) for k, v in shown]
        owner("PUT", f"/{cont}/o", content=b"1")
        assert owner("PUT", f"/{cont}/o", content=b"2").status_code == 201
        assert owner("DELETE", f"/{cont}/o").status_code == 204
        assert owner("GET", f"/{cont}/o").content == b"1"
        assert owner("HEAD", f"/{archive}").headers["x-container-object-count"] == "0"


def test_tempest_versioned_container(owner: Swift) -> None:
    vers, base = unique("TestVersionContainer"), unique("TestBaseContainer")

    def counts(c: str) -> tuple[str, str, str]:
        h = owner("HEAD", f"/{c}").headers
        return h["x-container-object-count"], h["x-container-bytes-used"], h.get("x-versions-location", "Missing")

    assert owner("PUT", f"/{vers}").status_code == 201
    assert counts(vers) == ("0", "0", "Missing")
    assert owner("PUT", f"/{base}", headers={"X-versions-Location": vers}).status_code == 201
    assert counts(base) == ("0", "0", vers)
    owner("PUT", f"/{base}/TestObject", content=b"1")
    time.sleep(0.01)
    owner("PUT", f"/{base}/TestObject", content=b"2")
    assert owner("GET", f"/{base}/TestObject").content == b"2"
    assert owner("DELETE", f"/{base}/TestObject").status_code == 204
    assert counts(base) == ("1", "1", vers)
    assert owner("GET", f"/{base}/TestObject").content == b"1"
    assert owner("DELETE", f"/{base}/TestObject").status_code == 204
    assert counts(base) == ("0", "0", vers)
    assert counts(vers) == ("0", "0", "Missing")
    assert owner("DELETE", f"/{base}").status_code == 204
    assert owner("DELETE", f"/{vers}").status_code == 204
