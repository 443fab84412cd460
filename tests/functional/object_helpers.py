"""What the object-storage test modules share: a cloud running identity and object storage, a
plain-HTTP Swift client of one account, and the personas as such clients."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.functional.conftest import Cloud, _drop_pg_database, make_people, start_cloud, stop_cloud

SERVICES = {"CUMULO_SERVICES": "identity,object"}


@contextmanager
def object_cloud(tmp_path_factory: pytest.TempPathFactory, name: str, backend: str = "sqlite",
                 env: dict[str, str] | None = None) -> Iterator[Cloud]:
    """A cloud with identity and object storage only (PostgreSQL's database dropped after)."""
    c = start_cloud(tmp_path_factory.mktemp(f"{name}-{backend}"), backend, {**SERVICES, **(env or {})})
    try:
        yield c
    finally:
        stop_cloud(c)
        if backend == "postgres":
            _drop_pg_database(c.env["CUMULO_DATABASE__URL"].rsplit("/", 1)[1])


class Swift:
    """A client of one account (``AUTH_<project>``) with one token, or none (anonymous).  Every
    answer under 500 is returned; a 5xx fails the test where it happened."""

    def __init__(self, cloud: Cloud, token: str | None, project_id: str, user_id: str = "") -> None:
        self.cloud, self.token, self.project_id, self.user_id = cloud, token, project_id, user_id
        self.root = f"{cloud.object_url}/v1"
        self.account = f"AUTH_{project_id}"
        self.base = f"{self.root}/{self.account}"
        self.http = httpx.Client(timeout=60)

    def __call__(self, method: str, path: str = "", account: str | None = None, anonymous: bool = False,
                 **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if self.token and not anonymous:
            headers.setdefault("X-Auth-Token", self.token)
        base = self.base if account is None else f"{self.root}/{account}"
        r = self.http.request(method, base + path, headers=headers, **kw)
        assert r.status_code < 500, (method, path, r.status_code, r.text)
        return r

    def on(self, project_id: str) -> Swift:
        """The same caller (token, own project) aimed at another project's account."""
        other = Swift(self.cloud, self.token, self.project_id, self.user_id)
        other.account = f"AUTH_{project_id}"
        other.base = f"{self.root}/{other.account}"
        return other

    def put(self, path: str, data: bytes = b"", **headers: str) -> httpx.Response:
        r = self("PUT", path, content=data, headers=headers)
        assert r.status_code == 201, (path, r.status_code, r.text)
        return r

    def listing(self, container: str, **params: str) -> list[dict[str, Any]]:
        r = self("GET", f"/{container}", params={"format": "json", **params})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


def swift_admin(cloud: Cloud) -> Swift:
    token, body = cloud.token()
    return Swift(cloud, token, body["project"]["id"], body["user"]["id"])


def swift_people(cloud: Cloud, prefix: str) -> dict[str, Swift]:
    """P's ``member`` and ``reader`` and Q's member ``other``, each on its own account, and
    ``anonymous`` (no token) on P's."""
    out = {name: Swift(cloud, p.token, p.project_id, p.user_id) for name, p in make_people(cloud, prefix).items()}
    out["anonymous"] = Swift(cloud, None, out["member"].project_id)
    return out
