"""Object expiry (X-Delete-At / X-Delete-After and the expirer) against real clouds: identity +
object on SQLite with a 1 s expirer interval; a restart with an expired object still in the
listing; and the expirer's index (migration 0025) on PostgreSQL and MariaDB."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.functional.conftest import (
    Cloud,
    _drop_mariadb_database,
    _drop_pg_database,
    start_cloud,
    stop_cloud,
    unique,
    wait_for,
)
from tests.functional.object_helpers import Swift, swift_admin

FAST = {"CUMULO_SERVICES": "identity,object", "CUMULO_OBJECT__EXPIRER_INTERVAL": "1"}


@pytest.fixture(scope="module")
def ecloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("object-expiry"), "sqlite", FAST)
    yield c
    stop_cloud(c)


@pytest.fixture(scope="module")
def swift(ecloud: Cloud) -> Swift:
    return swift_admin(ecloud)


def _container(swift: Swift) -> str:
    name = "/" + unique("exp")
    assert swift("PUT", name).status_code == 201
    return name


def _count(swift: Swift, c: str) -> int:
    return int(swift("HEAD", c).headers["x-container-object-count"])


def test_delete_after_hides_the_object_then_the_expirer_deletes_it(swift: Swift) -> None:
    c = _container(swift)
    swift("PUT", c + "/stays", content=b"keep")
    before = time.time()
    r = swift("PUT", c + "/goes", content=b"short lived", headers={"X-Delete-After": "2"})
    assert r.status_code == 201
    head = swift("HEAD", c + "/goes")
    assert head.status_code == 200
    at = int(head.headers["x-delete-at"])
    assert int(before) + 2 <= at <= int(time.time()) + 2
    assert len(head.headers["x-delete-at"]) == 10
    wait_for(lambda: time.time() > at + 0.05, 5, "the delete-at time")
    # at once: 404 to GET, HEAD, POST and COPY, whatever the expirer has done
    assert swift("GET", c + "/goes").status_code == 404
    assert swift("HEAD", c + "/goes").status_code == 404
    assert swift("POST", c + "/goes", headers={"X-Object-Meta-A": "b"}).status_code == 404
    assert swift("COPY", c + "/goes", headers={"Destination": c[1:] + "/copy"}).status_code == 404
    # the expirer's pass takes it out of the listing and the counts
    wait_for(lambda: swift("GET", c).text == "stays\n", 15, "the expirer to delete the object")
    assert _count(swift, c) == 1
    assert int(swift("HEAD", c).headers["x-container-bytes-used"]) == 4
    assert swift("GET", c + "/stays").content == b"keep"


def test_delete_at_is_checked(swift: Swift) -> None:
    c = _container(swift)
    now = int(time.time())
    cases = [({"X-Delete-At": str(now - 10)}, "X-Delete-At in past"),
             ({"X-Delete-At": "soon"}, "Non-integer X-Delete-At"),
             ({"X-Delete-At": "1.5e9"}, "Non-integer X-Delete-At"),
             ({"X-Delete-At": ""}, "Non-integer X-Delete-At"),
             ({"X-Delete-After": "0"}, "X-Delete-After in past"),
             ({"X-Delete-After": "-5"}, "X-Delete-After in past"),
             ({"X-Delete-After": "x"}, "Non-integer X-Delete-After"),
             ({"X-Delete-After": "9" * 40}, "Non-integer X-Delete-After")]
    for headers, message in cases:
        r = swift("PUT", c + "/o", content=b"x", headers=headers)
        assert (r.status_code, r.text) == (400, message), headers
    assert swift("GET", c + "/o").status_code == 404  # nothing was stored
    assert swift("PUT", c + "/o", content=b"x").status_code == 201
    for headers, message in cases:
        r = swift("POST", c + "/o", headers=headers)
        assert (r.status_code, r.text) == (400, message), headers
    # far futures are Swift's ten-digit bound
    assert swift("POST", c + "/o", headers={"X-Delete-At": "99999999999"}).status_code == 202
    assert swift("HEAD", c + "/o").headers["x-delete-at"] == "9999999999"
    assert swift("POST", c + "/o", headers={"X-Delete-After": str(10**12)}).status_code == 202
    assert swift("HEAD", c + "/o").headers["x-delete-at"] == "9999999999"


def test_post_without_delete_at_clears_it(swift: Swift) -> None:
    c = _container(swift)
    at = int(time.time()) + 2
    assert swift("PUT", c + "/o", content=b"x", headers={"X-Delete-At": str(at)}).status_code == 201
    assert swift("PUT", c + "/p", content=b"y", headers={"X-Delete-At": str(at)}).status_code == 201
    assert swift("HEAD", c + "/o").headers["x-delete-at"] == str(at)
    # a POST replaces the metadata: without X-Delete-At the schedule goes (X-Remove-Delete-At too)
    assert swift("POST", c + "/o", headers={"X-Object-Meta-K": "v"}).status_code == 202
    assert swift("POST", c + "/p", headers={"X-Remove-Delete-At": "x"}).status_code == 202
    assert "x-delete-at" not in swift("HEAD", c + "/o").headers
    wait_for(lambda: time.time() > at + 2.5, 10, "the old delete-at time and an expirer pass")
    assert swift("GET", c + "/o").content == b"x"
    assert swift("GET", c + "/p").content == b"y"
    assert sorted(swift("GET", c).text.split()) == ["o", "p"]


def test_copy_keeps_or_sets_the_schedule(swift: Swift) -> None:
    c = _container(swift)
    at = int(time.time()) + 600
    swift("PUT", c + "/src", content=b"data", headers={"X-Delete-At": str(at)})
    assert swift("COPY", c + "/src", headers={"Destination": c[1:] + "/same"}).status_code == 201
    assert swift("HEAD", c + "/same").headers["x-delete-at"] == str(at)
    r = swift("PUT", c + "/later", headers={"X-Copy-From": c[1:] + "/src", "X-Delete-After": "1200",
                                            "Content-Length": "0"})
    assert r.status_code == 201
    assert int(swift("HEAD", c + "/later").headers["x-delete-at"]) >= at + 500
    r = swift("COPY", c + "/src", headers={"Destination": c[1:] + "/past", "X-Delete-At": "100"})
    assert (r.status_code, r.text) == (400, "X-Delete-At in past")


def test_delete_of_an_expired_object_removes_it_and_answers_404(tmp_path_factory: pytest.TempPathFactory) -> None:
    """With the expirer far off: an expired object is still listed and counted (as in Swift) until
    the expirer runs; a DELETE removes it with a 404; and a restart's expirer deletes the rest."""
    tmp = tmp_path_factory.mktemp("object-expiry-restart")
    first = start_cloud(tmp, "sqlite", {**FAST, "CUMULO_OBJECT__EXPIRER_INTERVAL": "3600"})
    try:
        token, body = first.token()
        s = Swift(first, token, body["project"]["id"])
        s("PUT", "/box")
        at = int(time.time()) + 1
        for name in ("a", "b"):
            assert s("PUT", f"/box/{name}", content=b"12345", headers={"X-Delete-At": str(at)}).status_code == 201
        wait_for(lambda: time.time() > at + 0.05, 5, "the delete-at time")
        assert s("GET", "/box/a").status_code == 404
        assert s("GET", "/box").text == "a\nb\n"
        assert _count(s, "/box") == 2
        assert s("DELETE", "/box/a").status_code == 404
        assert s("GET", "/box").text == "b\n" and _count(s, "/box") == 1
    finally:
        stop_cloud(first)
    second = start_cloud(tmp, "sqlite", FAST)
    try:
        token, body = second.token()
        s = Swift(second, token, body["project"]["id"])
        wait_for(lambda: s("GET", "/box").status_code == 204, 15, "the restarted expirer to delete b")
        assert _count(s, "/box") == 0
        assert s("DELETE", "/box").status_code == 204
    finally:
        stop_cloud(second)


@pytest.mark.parametrize("backend", ["postgres", "mariadb"])
def test_the_expirer_index_on(backend: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Migration 0025 (the delete_at column and its index) and the expirer's query on the
    server databases."""
    c = start_cloud(tmp_path_factory.mktemp(f"object-expiry-{backend}"), backend, FAST)
    try:
        token, body = c.token()
        s = Swift(c, token, body["project"]["id"])
        s("PUT", "/box")
        s("PUT", "/box/" + "é" * 300, content=b"x", headers={"X-Delete-After": "1"})
        s("PUT", "/box/stays", content=b"y", headers={"X-Delete-After": "3600"})
        wait_for(lambda: s("GET", "/box").text == "stays\n", 15, "the expirer")
        assert _count(s, "/box") == 1
    finally:
        stop_cloud(c)
        name = c.env["CUMULO_DATABASE__URL"].rsplit("/", 1)[1]
        if backend == "postgres":
            _drop_pg_database(name)
        else:
            _drop_mariadb_database(name)
