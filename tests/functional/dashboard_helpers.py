"""Driving the dashboard over plain HTTP in the functional tests (the browser tests use Chromium).

``Browser`` is a cookie-keeping client of one cloud's dashboard: ``login`` signs in as a user,
``page`` gets a page, ``post`` sends a form with the CSRF token of the last page seen.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from tests.functional.conftest import Cloud, Persona, wait_for

CSRF = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')
FLAVOR = {"flavor": {"name": "dash.tiny", "ram": 128, "vcpus": 1, "disk": 1}}


def dashboard_url(cloud: Cloud) -> str:
    return f"http://127.0.0.1:{cloud.env['CUMULO_DASHBOARD__PORT']}"


class Browser:
    def __init__(self, cloud: Cloud) -> None:
        self.base = dashboard_url(cloud)
        self.http = httpx.Client(base_url=self.base, follow_redirects=False, timeout=30,
                                 headers={"Origin": self.base})
        self.csrf = ""

    def login(self, user: str, password: str, project: str = "", domain: str = "Default") -> httpx.Response:
        r = self.http.post("/auth/login", data={"username": user, "password": password, "domain": domain,
                                                "project": project, "next": "/project/"})
        assert r.status_code == 303, r.text[:500]
        self.page("/project/")
        return r

    def page(self, path: str, **params: Any) -> httpx.Response:
        r = self.http.get(path, params=params or None)
        m = CSRF.search(r.text)
        if m:
            self.csrf = m.group(1)
        return r

    def post(self, path: str, data: dict[str, Any] | None = None, files: Any = None,
             csrf: bool = True) -> httpx.Response:
        body = dict(data or {})
        if csrf:
            body["csrf_token"] = self.csrf
        return self.http.post(path, data=body, files=files)

    def flash(self, response: httpx.Response) -> str:
        """The message the page after a redirect shows (a form's result)."""
        assert response.status_code == 303, response.text[:500]
        r = self.page(response.headers["location"])
        m = re.search(r'<div class="flash [^"]*" role="status">(.*?)</div>', r.text, re.S)
        return m.group(1).strip() if m else ""

    def close(self) -> None:
        self.http.close()


def compute(cloud: Cloud, token: str, method: str, path: str, body: object = None) -> httpx.Response:
    return httpx.request(method, cloud.compute_url + path, json=body, timeout=30,
                         headers={"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.79"})


def boot(cloud: Cloud, member: Persona, name: str, active: bool = True) -> str:
    """A server of ``member``'s on the dash.tiny flavor (made by the admin once) and the first image,
    without a network; ``active``: waited for until ACTIVE."""
    admin = cloud.token()[0]
    flavors = compute(cloud, admin, "GET", "/flavors?is_public=None").json()["flavors"]
    flavor = next((f["id"] for f in flavors if f["name"] == FLAVOR["flavor"]["name"]), None)
    if flavor is None:
        flavor = compute(cloud, admin, "POST", "/flavors", FLAVOR).json()["flavor"]["id"]
    image = httpx.get(f"{cloud.image_url}/v2/images", headers={"X-Auth-Token": member.token}).json()["images"][0]["id"]
    r = compute(cloud, member.token, "POST", "/servers", {"server": {
        "name": name, "flavorRef": flavor, "imageRef": image, "networks": "none"}})
    assert r.status_code == 202, r.text
    server_id = str(r.json()["server"]["id"])
    if active:
        wait_for(lambda: compute(cloud, member.token, "GET", f"/servers/{server_id}").json()["server"]["status"]
                 == "ACTIVE", 30, "the server ACTIVE")
    return server_id


def qemu_pids(root: Path) -> list[int]:
    """The QEMU processes whose command line names ``root`` (a test cloud's state directory)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu-system" in cmd and str(root).encode() in cmd:
                out.append(int(entry.name))
    return out
