"""Encryption at rest through a real cloud (SQLite, identity + object): what the Swift API stores
is ciphertext on every device, reads (whole and ranges) and ETags are the plaintext's, and after a
restart with ``[object] encryption = false`` old bodies still read while new ones are plain."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from tests.functional.conftest import start_cloud, stop_cloud
from tests.functional.test_object_api import Swift

SERVICES = {"CUMULO_SERVICES": "identity,object"}


def _data_files(state: Path) -> list[bytes]:
    return [p.read_bytes() for p in (state / "object" / "devices").glob("*/objects/*/*/*/*.data")]


def test_bodies_are_encrypted_on_the_devices(tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("object-encryption")
    body = b"attack at dawn; bring the secret plans. " * 2000
    first = start_cloud(tmp, "sqlite", SERVICES)
    try:
        token, auth = first.token()
        s = Swift(first, token, auth["project"]["id"])
        s("PUT", "/c")
        r = s("PUT", "/c/o", content=body)
        assert r.status_code == 201 and r.headers["etag"] == hashlib.md5(body).hexdigest()
        files = _data_files(tmp)
        assert len(files) == 3
        assert all(b"attack at dawn" not in f and hashlib.md5(body).hexdigest().encode() not in f for f in files)
        assert stat.S_IMODE((tmp / "object" / "root-secret").stat().st_mode) == 0o600
        assert s("GET", "/c/o").content == body
        assert s("GET", "/c/o", headers={"Range": "bytes=1000-1099"}).content == body[1000:1100]
        assert s("HEAD", "/c/o").headers["etag"] == hashlib.md5(body).hexdigest()
        assert s("GET", "/c?format=json").json()[0]["hash"] == hashlib.md5(body).hexdigest()
    finally:
        stop_cloud(first)
    second = start_cloud(tmp, "sqlite", {**SERVICES, "CUMULO_OBJECT__ENCRYPTION": "false"})
    try:
        token, auth = second.token()
        s = Swift(second, token, auth["project"]["id"])
        assert s("GET", "/c/o").content == body
        s("PUT", "/c/plain", content=b"written in the clear")
        assert sum(b"written in the clear" in f for f in _data_files(tmp)) == 3
    finally:
        stop_cloud(second)
