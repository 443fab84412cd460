"""Driving the dashboard over plain HTTP in the functional tests (the browser tests use Chromium).

``Browser`` is a cookie-keeping client of one cloud's dashboard: ``login`` signs in as a user,
``page`` gets a page, ``post`` sends a form with the CSRF token of the last page seen.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.functional.conftest import Cloud

CSRF = re.compile(r'name="csrf-token" content="([0-9a-f]+)"')


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
