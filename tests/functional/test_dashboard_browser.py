"""The dashboard in a real browser: Debian's Chromium (headless), driven by Playwright.

One cloud for the module: identity, image, compute on one QEMU node (this machine, the cumulo-tiny
guest), placement, network (the first topology of ``cumulo up``: public, demo's private network
behind router1; no dataplane, so no namespace), block storage and the dashboard.  The user is
demo, a member of project demo, signing in through the login form as a person would; the tests
read what the page shows (text, rows, the console's screen) and check the API's state after a
form.  Playwright runs /usr/bin/chromium (scripts/setup-test.sh installs it): no browser is
downloaded.  ``CUMULO_SCREENSHOTS=DIR`` also saves a screenshot of each main page into DIR; the
pictures in docs/dashboard/ are made so::

    CUMULO_SCREENSHOTS=docs/dashboard .venv/bin/python -m pytest -q tests/functional/test_dashboard_browser.py
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import playwright.sync_api as playwright  # the [test] extra; a missing one fails the module, never skips it
import pytest

from cumulo.dashboard.session import Sealer, Session
from tests.functional.conftest import BIN, Cloud, start_cloud, stop_cloud, unique, wait_for
from tests.functional.dashboard_helpers import dashboard_url, qemu_pids

CHROMIUM = "/usr/bin/chromium"
# what the machine needs for a headless Chromium that makes no connection of its own
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SERVICES = "identity,image,compute,placement,network,volume,dashboard"
READY = "cumulo-guest ready"
SHOTS = os.environ.get("CUMULO_SCREENSHOTS", "")


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
        page.set_default_timeout(30000)  # a loaded CI machine (two test workers, guests under TCG)
        # every event the page's stream delivered (app.js re-dispatches each as "cumulo:event"): said
        # when a live change the test waits for does not come
        page.add_init_script("document.addEventListener('cumulo:event', (e) => "
                             "(window.cumuloSeen = window.cumuloSeen || []).push(e.detail))")

    def events(self) -> list[dict[str, Any]]:
        return list(self.page.evaluate("window.cumuloSeen || []"))

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
            # a row the event stream just swapped is highlighted for a second: picture it after
            self.page.wait_for_function("() => !document.querySelector('.changed')", timeout=5000)
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


def private_network(cloud: Cloud, token: str) -> str:
    """demo's network "private" (cumulo up's first topology, behind router1 to "public")."""
    return str(api(cloud, token, "GET", "network", "/networks?name=private").json()["networks"][0]["id"])


def tiny_image(cloud: Cloud, token: str) -> str:
    return str(api(cloud, token, "GET", "image", "/images?name=cumulo-tiny").json()["images"][0]["id"])


def server_status(cloud: Cloud, token: str, server_id: str) -> str:
    server = api(cloud, token, "GET", "compute", f"/servers/{server_id}").json()["server"]
    assert server["status"] != "ERROR", server.get("fault")
    return str(server["status"]) if not server.get("OS-EXT-STS:task_state") else "busy"


def console_log(cloud: Cloud, token: str, server_id: str) -> str:
    r = api(cloud, token, "POST", "compute", f"/servers/{server_id}/action", {"os-getConsoleOutput": {}})
    return str(r.json().get("output", "")) if r.status_code == 200 else ""


def volume(cloud: Cloud, demo: dict[str, str], volume_id: str | None) -> dict[str, Any]:
    v = api(cloud, demo["token"], "GET", "volume", f"/{demo['project_id']}/volumes/{volume_id}").json()["volume"]
    assert v["status"] not in ("error", "error_attaching"), v
    return dict(v)


@pytest.fixture(scope="module")
def launched() -> dict[str, str]:
    """The server the wizard's test launched (its id under "id"), for the tests after it."""
    return {}


def the_server(cloud: Cloud, demo: dict[str, str], launched: dict[str, str]) -> str:
    """The wizard's server, ACTIVE; booted through the API if that test did not leave one."""
    if "id" not in launched:
        r = api(cloud, demo["token"], "POST", "compute", "/servers", {"server": {
            "name": unique("web"), "flavorRef": "10", "imageRef": tiny_image(cloud, demo["token"]),
            "networks": [{"uuid": private_network(cloud, demo["token"])}]}})
        assert r.status_code == 202, r.text
        launched["id"] = r.json()["server"]["id"]
    wait_for(lambda: server_status(cloud, demo["token"], launched["id"]) == "ACTIVE", 150, "the server ACTIVE")
    return launched["id"]


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
        assert not tab.errors
    finally:
        context.close()


def test_launched_through_the_wizard_it_goes_active_in_the_open_list_without_a_reload(
        bcloud: Cloud, member: Tab, demo: dict[str, str], launched: dict[str, str]) -> None:
    """The list stays open in one tab while the wizard launches in another: the new row comes in
    and turns ACTIVE by the event stream, and the list's document is the one first loaded."""
    listing = member
    listing.goto("/project/instances")
    listing.page.evaluate("window.cumuloMarker = 'same-document'")
    before = listing.navigations
    wizard = Tab(listing.page.context.new_page(), listing.base)
    name = unique("web")
    try:
        wizard.goto("/project/instances/launch")
        assert "Quota left" in wizard.text("#quota-left")
        wizard.page.fill("input[name=name]", name)
        wizard.page.check("input[name=source][value=image]")
        wizard.page.select_option("select[name=image_id]", tiny_image(bcloud, demo["token"]))
        wizard.page.check("#flavor-10")
        wizard.page.check(f"input[name=networks][value='{private_network(bcloud, demo['token'])}']")
        wizard.page.click("form.wizard button[type=submit]")
        wizard.page.wait_for_url(re.compile(r"/project/instances/[0-9a-f-]{36}$"))
        server_id = wizard.page.url.rsplit("/", 1)[1]
        assert f"Launching {name}" in wizard.text(".flash")
    finally:
        wizard.page.close()
    launched["id"] = server_id
    server = api(bcloud, demo["token"], "GET", "compute", f"/servers/{server_id}").json()["server"]
    assert server["name"] == name and server["flavor"]["original_name"] == "cumulo.nano"
    assert list(server["addresses"]) == ["private"] or server["status"] == "BUILD"
    row = listing.page.locator(f"#row-server-{server_id}")
    row.wait_for(timeout=20000)  # the create event put the row in
    assert name in row.inner_text()
    wait_for(lambda: server_status(bcloud, demo["token"], server_id) == "ACTIVE", 150, "the server ACTIVE")
    try:
        playwright.expect(row.locator("td.status")).to_have_text(re.compile(r"^ACTIVE"), timeout=10000)
    except AssertionError as exc:
        raise AssertionError(f"the page's events: {listing.events()}") from exc
    assert listing.navigations == before and listing.page.evaluate("window.cumuloMarker") == "same-document"
    listing.shot("instances")
    assert not listing.errors, listing.errors


def test_the_serial_console_in_the_browser_answers_a_command(bcloud: Cloud, member: Tab, demo: dict[str, str],
                                                            launched: dict[str, str]) -> None:
    server_id = the_server(bcloud, demo, launched)
    wait_for(lambda: READY in console_log(bcloud, demo["token"], server_id), 120, "the guest's ready marker")
    member.goto(f"/project/instances/{server_id}")
    member.shot("instance")
    member.goto(f"/project/instances/{server_id}/console")
    playwright.expect(member.page.locator("#console-state")).to_have_text("connected", timeout=15000)
    screen = member.page.locator("#terminal .xterm-rows")
    playwright.expect(screen).to_contain_text("cumulo-guest:/# ", timeout=20000)
    n = random.randrange(100, 1000)
    member.page.locator("#terminal").click()
    member.page.keyboard.type(f"echo cumulo-$(({n}*7))-answered\n")
    # the shell's answer (the typed line itself holds "$((...))", not the product)
    playwright.expect(screen).to_contain_text(f"cumulo-{n * 7}-answered", timeout=20000)
    member.page.keyboard.type("uname -s\n")
    playwright.expect(screen).to_contain_text("Linux", timeout=20000)
    member.shot("instance-console")
    assert not member.errors, member.errors


def test_a_volume_made_on_its_page_is_attached_on_the_instance_page(bcloud: Cloud, member: Tab,
                                                                    demo: dict[str, str],
                                                                    launched: dict[str, str]) -> None:
    server_id = the_server(bcloud, demo, launched)
    name = unique("disk")
    member.goto("/project/volumes/create")
    member.page.fill("input[name=name]", name)
    member.page.check("input[name=source][value=empty]")
    member.page.fill("input[name=size]", "1")
    member.page.click("form[action='/project/volumes/create'] button[type=submit]")
    member.page.wait_for_url(re.compile(r"/project/volumes$"))
    row = member.page.locator("tr[data-kind=volume]", has_text=name)
    volume_id = row.get_attribute("data-id")
    wait_for(lambda: volume(bcloud, demo, volume_id)["status"] == "available", 60, "the volume available")
    # the row turns available without a reload, even when that happened before the page's stream
    # opened (the stream replays what changed since the page's request)
    try:
        playwright.expect(row.locator("td.status")).to_have_text(re.compile("available"), timeout=10000)
    except AssertionError as exc:
        raise AssertionError(f"the page's events: {member.events()}") from exc
    member.goto(f"/project/instances/{server_id}/attach-volume")
    member.page.select_option("select[name=volume]", volume_id)
    member.page.click("form.action-form button[type=submit]")
    member.page.wait_for_url(re.compile(f"/project/instances/{server_id}$"))

    def attached() -> bool:
        v = volume(bcloud, demo, volume_id)
        return v["status"] == "in-use" and [a["server_id"] for a in v["attachments"]] == [server_id]

    wait_for(attached, 60, "the volume in-use by the server")
    member.goto(f"/project/instances/{server_id}")
    assert volume_id in member.text("#volumes")
    member.goto("/project/volumes")
    playwright.expect(member.page.locator(f"#row-volume-{volume_id}")).to_contain_text("in-use")
    member.shot("volumes")


def test_a_floating_ip_allocated_and_associated_in_the_browser(bcloud: Cloud, member: Tab, demo: dict[str, str],
                                                              launched: dict[str, str]) -> None:
    server_id = the_server(bcloud, demo, launched)
    port = api(bcloud, demo["token"], "GET", "network", f"/ports?device_id={server_id}").json()["ports"][0]
    member.goto("/project/floating-ips")
    before = {r.get_attribute("data-id") for r in member.page.locator("tr[data-kind=floatingip]").all()}
    member.page.click("#allocate-form button[type=submit]")
    member.page.wait_for_url(re.compile(r"/project/floating-ips$"))
    rows = member.page.locator("tr[data-kind=floatingip]")
    fip_id = next(r.get_attribute("data-id") for r in rows.all() if r.get_attribute("data-id") not in before)
    fip = api(bcloud, demo["token"], "GET", "network", f"/floatingips/{fip_id}").json()["floatingip"]
    assert fip["port_id"] is None and fip["floating_ip_address"] in member.text(f"#row-floatingip-{fip_id}")
    member.page.click(f"#row-floatingip-{fip_id} a:has-text('Associate')")
    member.page.wait_for_url(re.compile(f"/project/floating-ips/{fip_id}/associate$"))
    member.page.select_option("#associate-form select[name=port]", index=[
        i for i, v in enumerate(member.page.eval_on_selector_all(
            "#associate-form select[name=port] option", "els => els.map(e => e.value)")) if port["id"] in v][0])
    member.page.click("#associate-form button[type=submit]")
    member.page.wait_for_url(re.compile(r"/project/floating-ips$"))
    fip = api(bcloud, demo["token"], "GET", "network", f"/floatingips/{fip_id}").json()["floatingip"]
    assert fip["port_id"] == port["id"] and fip["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]
    playwright.expect(member.page.locator(f"#row-floatingip-{fip_id}")).to_contain_text(fip["fixed_ip_address"])


def test_the_topology_picture_shows_networks_router_and_server(bcloud: Cloud, member: Tab, demo: dict[str, str],
                                                              launched: dict[str, str]) -> None:
    server_id = the_server(bcloud, demo, launched)
    token = demo["token"]
    private, public = private_network(bcloud, token), api(bcloud, token, "GET", "network",
                                                         "/networks?name=public").json()["networks"][0]["id"]
    router = api(bcloud, token, "GET", "network", "/routers?name=router1").json()["routers"][0]["id"]
    member.goto("/project/network/topology")
    svg = member.page.locator("svg#topology")
    assert svg.is_visible() and svg.bounding_box()["width"] > 200
    for network in (private, public):
        assert member.page.locator(f"svg#topology [data-network-id='{network}']").count() == 1
    for kind, node in (("router", router), ("server", server_id)):
        box = member.page.locator(f"svg#topology a[data-kind={kind}][data-node-id='{node}']")
        assert box.count() == 1 and box.locator("rect").bounding_box()["width"] > 20
    assert "router1" in svg.text_content() and "private" in svg.text_content()
    member.shot("network-topology")
    member.goto("/project/")  # by now with a server, a volume and a floating IP in the quota charts
    assert "1 of 10" in member.text("figure[data-quota=Instances]")
    member.shot("overview")


def test_an_image_upload_moves_its_progress_bar_to_100(bcloud: Cloud, member: Tab, demo: dict[str, str],
                                                       tmp_path: Path) -> None:
    data = random.randbytes(48 * 1024 * 1024)
    path = tmp_path / "disk.raw"
    path.write_bytes(data)
    name = unique("upload")
    member.goto("/project/images/create")
    member.page.fill("input[name=name]", name)
    member.page.select_option("select[name=disk_format]", "raw")
    member.page.select_option("select[name=container_format]", "bare")
    member.page.set_input_files("input[data-upload-file]", str(path))
    # what the bar's words say, each time they change (the page goes on to the image's page after)
    member.page.evaluate("""() => {
      window.barSeen = [];
      const words = document.querySelector("[data-upload-progress] .words");
      new MutationObserver(() => window.barSeen.push(words.textContent)).observe(words,
          {childList: true, characterData: true, subtree: true});
      addEventListener("beforeunload", () => sessionStorage.setItem("barSeen", JSON.stringify(window.barSeen)));
    }""")
    member.page.click("#image-create button[type=submit]")
    member.page.wait_for_url(re.compile(r"/project/images/[0-9a-f-]{36}"), timeout=120000)
    seen = member.page.evaluate("JSON.parse(sessionStorage.getItem('barSeen') || '[]')")
    percents = [int(m.group(1)) for s in seen if (m := re.match(r"(\d+)%", s))]
    assert percents and percents[-1] == 100, seen
    assert any(0 < p < 100 for p in percents) and percents == sorted(percents), seen
    image_id = member.page.url.rsplit("/", 1)[1].split("?")[0]

    def active() -> dict[str, Any] | None:
        image = api(bcloud, demo["token"], "GET", "image", f"/images/{image_id}").json()
        return image if image["status"] == "active" else None

    image = wait_for(active, 30, "the image active")
    assert image["name"] == name and image["size"] == len(data)  # type: ignore[index]
    assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()  # type: ignore[index]


def test_a_member_gets_the_403_page_on_an_admin_page_and_the_admin_its_data(bcloud: Cloud, chromium: Any,
                                                                           member: Tab) -> None:
    response = member.goto("/admin/hypervisors")
    assert response.status == 403
    assert "Not allowed" in member.text("h1") and "administrators" in member.text()
    assert "bnode" not in member.page.content()  # nothing of the hypervisors
    assert "Admin" not in member.text("nav.side") and not member.page.locator("a[href^='/admin']").count()
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    admin = Tab(context.new_page(), member.base)
    try:
        sign_in(admin, "admin", bcloud.admin_password)
        assert admin.goto("/admin/hypervisors").status == 200
        assert "bnode" in admin.text()
        admin.shot("admin-hypervisors")
    finally:
        context.close()


def test_bad_form_input_shows_the_apis_words_beside_the_field(bcloud: Cloud, member: Tab,
                                                              demo: dict[str, str]) -> None:
    name = unique("net")
    member.goto("/project/networks/create")
    member.page.fill("#network-form input[name=name]", name)
    member.page.fill("#network-form input[name=cidr]", "10.20.30.0/33")
    response = None
    with member.page.expect_navigation() as nav:
        member.page.click("#network-form button[type=submit]")
    response = nav.value
    assert response.status == 400
    beside = member.page.locator("#network-form label:has(input[name=cidr]) .field-error[data-field=cidr]")
    words = beside.inner_text()
    # Neutron's own words for that input (the same request made straight to the API)
    net = api(bcloud, demo["token"], "POST", "network", "/networks", {"network": {"name": unique("probe")}})
    r = api(bcloud, demo["token"], "POST", "network", "/subnets", {"subnet": {
        "network_id": net.json()["network"]["id"], "cidr": "10.20.30.0/33", "ip_version": 4}})
    api(bcloud, demo["token"], "DELETE", "network", f"/networks/{net.json()['network']['id']}")
    assert r.status_code == 400 and r.json()["NeutronError"]["message"] in words, (words, r.text)
    assert member.page.input_value("#network-form input[name=name]") == name  # what was typed stays
    assert not api(bcloud, demo["token"], "GET", "network", f"/networks?name={name}").json()["networks"]


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
        tab.page.click(f"#row-server-{server_id} button.row-menu")  # the row's form appears
        form = f"#row-server-{server_id} form"
        tab.page.select_option(f"{form} select[name=action]", "stop")
        tab.page.eval_on_selector(f"{form} input[name=csrf_token]", "(el, v) => { el.value = v; }", stale)
        with tab.page.expect_navigation():
            tab.page.click(f"{form} button[type=submit]")
        assert "CSRF token is missing or stale" in tab.text()
        assert server_status(bcloud, demo["token"], server_id) == "ACTIVE"  # nothing done
    finally:
        context.close()


def test_a_revoked_or_expired_session_goes_to_the_login_page(bcloud: Cloud, chromium: Any, demo: dict[str, str],
                                                             launched: dict[str, str]) -> None:
    """The session cookie copied into a second browser; signing out in the first revokes the token,
    so the copy is refused too: the open list's next live row fetch, and the next page, go to the
    login page.  A session past its expiry goes there too."""
    server_id = the_server(bcloud, demo, launched)
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
        # the server changes while the copy's list is open: its row fetch is refused (401)
        assert api(bcloud, demo["token"], "POST", "compute", f"/servers/{server_id}/action",
                   {"pause": None}).status_code == 202
        try:
            two.page.wait_for_url(re.compile(r"/auth/login\?expired=1"), timeout=20000)
        finally:
            api(bcloud, demo["token"], "POST", "compute", f"/servers/{server_id}/action", {"unpause": None})
        assert "Your session has ended" in two.text()
        two.goto("/project/instances")
        two.page.wait_for_url(re.compile(r"/auth/login"))
        assert not [c for c in second.cookies() if c["name"] == "cumulo_session"]
    finally:
        first.close()
        second.close()
    # past its expiry (a session sealed with the cloud's own key, expired a minute ago)
    secret = (bcloud.state_dir / "dashboard-secret").read_text().strip()
    token, body = bcloud.token("demo", demo["password"], "demo")
    session = Session(token=token, user_id=body["user"]["id"], user_name="demo", domain_id="default",
                      project_id=demo["project_id"], project_name="demo", roles=["member"],
                      expires_at=time.time() - 60)
    third = chromium.new_context()
    try:
        third.add_cookies([{"name": "cumulo_session", "value": Sealer(secret).seal(session),
                            "url": dashboard_url(bcloud)}])
        tab = Tab(third.new_page(), dashboard_url(bcloud))
        tab.goto("/project/instances")
        tab.page.wait_for_url(re.compile(r"/auth/login\?next=/project/instances"))
        assert tab.page.locator("form[action='/auth/login'] input[name=password]").is_visible()
    finally:
        third.close()
