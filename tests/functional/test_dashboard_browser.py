"""The dashboard in a real browser: Debian's Chromium (headless), driven by Playwright.

One cloud for the module: identity, image, compute on one QEMU node (this machine, the cumulo-tiny
guest), placement, network (the first topology of ``cumulo up``: public, demo's private network
behind router1; no dataplane, so no namespace), block storage and the dashboard.  The user is
demo, a member of project demo, signing in through the login form as a person would; the tests
read what the page shows (text, rows, the console's screen) and check the API's state after a
form.  Playwright runs /usr/bin/chromium (scripts/setup-test.sh installs it): no browser is
downloaded.  ``CUMULO_SCREENSHOTS=DIR`` also saves a screenshot of each main page into DIR (the
pictures in docs/dashboard/ come from bench/dashboard_screens.py).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functional.conftest import BIN, Cloud, start_cloud, stop_cloud, unique, wait_for
from tests.functional.dashboard_helpers import dashboard_url

playwright = pytest.importorskip("playwright.sync_api", reason="the [test] extra (pyproject.toml) installs playwright")

CHROMIUM = "/usr/bin/chromium"
# what the machine needs for a headless Chromium that makes no connection of its own
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SERVICES = "identity,image,compute,placement,network,volume,dashboard"
READY = "cumulo-guest ready"
SHOTS = os.environ.get("CUMULO_SCREENSHOTS", "")


def qemu_pids(root: Path) -> list[int]:
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


@pytest.fixture(scope="module")
def bcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    tmp = tmp_path_factory.mktemp("dashb")  # short: QEMU's monitor socket paths are limited to 107 bytes
    c = start_cloud(tmp, "sqlite", {
        "CUMULO_SERVICES": SERVICES, "CUMULO_COMPUTE__FAKE_NODES": "0", "CUMULO_COMPUTE__LOCAL_NODE": "true",
        "CUMULO_COMPUTE__HOST": "bnode", "CUMULO_COMPUTE__SHUTDOWN_TIMEOUT": "5",
        "CUMULO_COMPUTE__BUILD_TIMEOUT": "120", "CUMULO_NETWORK__BOOTSTRAP": "true"})
    yield c
    admin = c.token()[0]
    servers = api(c, admin, "GET", "compute", "/servers?all_tenants=1").json().get("servers", [])
    for server in servers:
        api(c, admin, "DELETE", "compute", f"/servers/{server['id']}")
    deadline = time.monotonic() + 30
    while servers and time.monotonic() < deadline:
        servers = api(c, admin, "GET", "compute", "/servers?all_tenants=1").json().get("servers", [])
        time.sleep(0.3)
    stop_cloud(c)
    for pid in qemu_pids(tmp):  # a failed test must not leave guests running
        os.kill(pid, signal.SIGKILL)
    subprocess.run([str(BIN / "cumulo"), "network", "cleanup", "--yes"], env=c.env, capture_output=True, timeout=60)


def api(cloud: Cloud, token: str, method: str, service: str, path: str, body: Any = None) -> httpx.Response:
    """The public API as the holder of ``token`` (what the page's user could ask for themselves)."""
    base = {"compute": cloud.compute_url, "network": cloud.network_url, "image": f"{cloud.image_url}/v2",
            "volume": cloud.volume_url, "identity": cloud.url}[service]
    headers = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.79, volume 3.60"}
    return httpx.request(method, base + path, json=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def demo(bcloud: Cloud) -> dict[str, str]:
    """demo (a member of project demo): its password, token and project id."""
    token, body = bcloud.token("demo", bcloud.demo_password, "demo")
    return {"user": "demo", "password": bcloud.demo_password, "token": token, "project_id": body["project"]["id"]}


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


class Tab:
    """One browser page of a context, with what the tests ask of it."""

    def __init__(self, page: Any, base: str) -> None:
        self.page, self.base = page, base
        self.navigations = 0
        self.errors: list[str] = []
        page.on("framenavigated", lambda frame: self._navigated(frame))
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.set_default_timeout(15000)

    def _navigated(self, frame: Any) -> None:
        if frame == self.page.main_frame:
            self.navigations += 1

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def text(self, selector: str = "main") -> str:
        return str(self.page.inner_text(selector))

    def shot(self, name: str) -> None:
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def sign_in(tab: Tab, user: str, password: str, project: str = "") -> None:
    """Through the login form, as a person does: the page asked for sends the user there first."""
    tab.goto("/project/instances")
    assert "/auth/login" in tab.page.url
    tab.page.fill("input[name=username]", user)
    tab.page.fill("input[name=password]", password)
    if project:
        tab.page.fill("input[name=project]", project)
    tab.page.click("form[action='/auth/login'] button[type=submit]")
    tab.page.wait_for_url(re.compile(r"/project/instances$"))


@pytest.fixture(scope="module")
def member(bcloud: Cloud, chromium: Any, demo: dict[str, str]) -> Iterator[Tab]:
    """demo signed in, in a browser context of its own (its cookies)."""
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    tab = Tab(context.new_page(), dashboard_url(bcloud))
    sign_in(tab, demo["user"], demo["password"])
    yield tab
    context.close()


def boot(cloud: Cloud, token: str, name: str) -> str:
    image = api(cloud, token, "GET", "image", "/images?name=cumulo-tiny").json()["images"][0]["id"]
    r = api(cloud, token, "POST", "compute", "/servers", {"server": {
        "name": name, "flavorRef": "10", "imageRef": image, "networks": "none"}})
    assert r.status_code == 202, r.text
    return str(r.json()["server"]["id"])


def server_status(cloud: Cloud, token: str, server_id: str) -> str:
    server = api(cloud, token, "GET", "compute", f"/servers/{server_id}").json()["server"]
    assert server["status"] != "ERROR", server.get("fault")
    return str(server["status"])


# ---------------------------------------------------------------------------------------------


def test_sign_in_through_the_form_and_a_wrong_password_said_in_words(bcloud: Cloud, chromium: Any,
                                                                     demo: dict[str, str]) -> None:
    context = chromium.new_context()
    tab = Tab(context.new_page(), dashboard_url(bcloud))
    try:
        tab.goto("/project/")
        assert "/auth/login?next=/project/" in tab.page.url
        tab.page.fill("input[name=username]", "demo")
        tab.page.fill("input[name=password]", "not-" + demo["password"])
        tab.page.click("form[action='/auth/login'] button[type=submit]")
        assert "password is wrong" in tab.page.inner_text("p.error[role=alert]")
        tab.page.fill("input[name=password]", demo["password"])
        tab.page.click("form[action='/auth/login'] button[type=submit]")
        tab.page.wait_for_url(re.compile(r"/project/$"))
        header = tab.text("header")
        assert "demo" in header and "member" in header
        assert "Quotas" in tab.text() and "Instances" in tab.text()
        cookie = next(c for c in context.cookies() if c["name"] == "cumulo_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        assert tab.page.evaluate("document.cookie").find("cumulo_session") < 0  # no script reads it
        tab.shot("overview")
        assert not tab.errors
    finally:
        context.close()


def test_a_server_goes_active_in_the_list_without_a_reload(bcloud: Cloud, member: Tab, demo: dict[str, str]) -> None:
    tab = member
    tab.goto("/project/instances")
    tab.page.evaluate("window.cumuloMarker = 'same-document'")
    before = tab.navigations
    name = unique("web")
    server_id = boot(bcloud, demo["token"], name)
    row = tab.page.locator(f"#row-server-{server_id}")
    row.wait_for(timeout=20000)  # the create event put the row in
    assert name in row.inner_text()
    wait_for(lambda: server_status(bcloud, demo["token"], server_id) == "ACTIVE", 150, "the server ACTIVE")
    playwright.expect(row.locator("td.status")).to_have_text(re.compile(r"^ACTIVE"), timeout=10000)
    assert tab.navigations == before and tab.page.evaluate("window.cumuloMarker") == "same-document"
    tab.shot("instances")
    assert not tab.errors, tab.errors


def test_a_form_with_a_stale_csrf_token_is_refused(bcloud: Cloud, chromium: Any, demo: dict[str, str]) -> None:
    context = chromium.new_context()
    tab = Tab(context.new_page(), dashboard_url(bcloud))
    try:
        sign_in(tab, demo["user"], demo["password"])
        servers = api(bcloud, demo["token"], "GET", "compute", "/servers").json()["servers"]
        assert servers, "the list test's server"
        server_id = servers[0]["id"]
        stale = tab.page.get_attribute("meta[name=csrf-token]", "content")
        # a new session (sign out, sign in): the old page's token is stale
        tab.page.click("header form[action='/auth/logout'] button")
        tab.page.wait_for_url(re.compile(r"/auth/login"))
        sign_in(tab, demo["user"], demo["password"])
        assert tab.page.get_attribute("meta[name=csrf-token]", "content") != stale
        form = f"#row-server-{server_id} form"
        tab.page.select_option(f"{form} select[name=action]", "stop")
        tab.page.eval_on_selector(f"{form} input[name=csrf_token]", "(el, v) => { el.value = v; }", stale)
        with tab.page.expect_navigation():
            tab.page.click(f"{form} button[type=submit]")
        assert "CSRF token is missing or stale" in tab.text()
        assert server_status(bcloud, demo["token"], server_id) == "ACTIVE"  # nothing done
    finally:
        context.close()


def test_a_revoked_session_goes_to_the_login_page(bcloud: Cloud, chromium: Any, demo: dict[str, str]) -> None:
    """The session cookie copied into a second browser; signing out in the first revokes the token,
    so the copy is refused too: the next page (and the page script's next fragment) is the login."""
    first = chromium.new_context()
    one = Tab(first.new_page(), dashboard_url(bcloud))
    second = chromium.new_context()
    two = Tab(second.new_page(), dashboard_url(bcloud))
    try:
        sign_in(one, demo["user"], demo["password"])
        second.add_cookies([c for c in first.cookies() if c["name"] == "cumulo_session"])
        two.goto("/project/instances")
        assert two.page.url.endswith("/project/instances") and "Instances" in two.text("h1")
        one.page.click("header form[action='/auth/logout'] button")
        one.page.wait_for_url(re.compile(r"/auth/login"))
        two.goto("/project/instances")
        two.page.wait_for_url(re.compile(r"/auth/login\?expired=1"))
        assert "Your session has ended" in two.text()
        assert not [c for c in second.cookies() if c["name"] == "cumulo_session"]
    finally:
        first.close()
        second.close()
