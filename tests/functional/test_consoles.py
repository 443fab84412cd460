"""Remote consoles of a real QEMU guest: the URL the Compute API (and ``openstack console url
show``) hands out opens the guest's serial shell or its VNC server through Cumulo's proxies,
once, for the project's members; the console log keeps working beside the live console."""

from __future__ import annotations

import json
import sqlite3
import struct
import time
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.functional.conftest import Cloud, personas, start_cloud, stop_cloud, wait_for

READY = "cumulo-guest ready"


def h(token: str, version: str = "2.6") -> dict[str, str]:
    return {"X-Auth-Token": token, "OpenStack-API-Version": f"compute {version}"}


@pytest.fixture(scope="module")
def ccloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("consoles"), "sqlite", {
        "CUMULO_COMPUTE__FAKE_NODES": "0", "CUMULO_COMPUTE__LOCAL_NODE": "true", "CUMULO_COMPUTE__HOST": "cnode",
        "CUMULO_COMPUTE__SHUTDOWN_TIMEOUT": "10", "CUMULO_COMPUTE__BUILD_TIMEOUT": "120"})
    yield c
    admin = c.token()[0]
    for server in httpx.get(f"{c.compute_url}/servers?all_tenants=1", headers=h(admin)).json().get("servers", []):
        httpx.delete(f"{c.compute_url}/servers/{server['id']}", headers=h(admin))
    deadline = time.monotonic() + 30
    while httpx.get(f"{c.compute_url}/servers?all_tenants=1", headers=h(admin)).json()["servers"] and \
            time.monotonic() < deadline:
        time.sleep(0.3)
    stop_cloud(c)


@pytest.fixture(scope="module")
def people(ccloud: Cloud) -> dict[str, tuple[str, str]]:
    return personas(ccloud, "console")


@pytest.fixture(scope="module")
def server(ccloud: Cloud, people: dict[str, tuple[str, str]]) -> str:
    """A cumulo-tiny guest of project P (made by P's member), booted to its ready marker."""
    token = people["member"][0]
    image = httpx.get(f"{ccloud.image_url}/v2/images?name=cumulo-tiny", headers={"X-Auth-Token": token}
                      ).json()["images"][0]["id"]
    r = httpx.post(f"{ccloud.compute_url}/servers", headers=h(token), json={"server": {
        "name": "console-vm", "flavorRef": "10", "imageRef": image, "networks": "none"}})
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]

    def ready() -> bool:
        s = httpx.get(f"{ccloud.compute_url}/servers/{sid}", headers=h(token)).json()["server"]
        assert s["status"] != "ERROR", s.get("fault")
        if s["status"] != "ACTIVE":
            return False
        out = httpx.post(f"{ccloud.compute_url}/servers/{sid}/action", headers=h(token),
                         json={"os-getConsoleOutput": {}})
        return out.status_code == 200 and READY in out.json()["output"]

    wait_for(ready, 120, "the guest's ready marker on its console")
    return sid


def remote_console(cloud: Cloud, token: str, sid: str, protocol: str, kind: str,
                   version: str = "2.6") -> httpx.Response:
    return httpx.post(f"{cloud.compute_url}/servers/{sid}/remote-consoles", headers=h(token, version),
                      json={"remote_console": {"protocol": protocol, "type": kind}})


def console_output(cloud: Cloud, sid: str) -> str:
    r = httpx.post(f"{cloud.compute_url}/servers/{sid}/action", headers=h(cloud.token()[0]),
                   json={"os-getConsoleOutput": {}})
    return str(r.json()["output"])


def read_until(ws: ClientConnection, marker: bytes, timeout: float = 20) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{marker!r} never came over the console; got {seen[-500:]!r}"
        try:
            seen += ws.recv(timeout=left)
        except TimeoutError:
            continue
    return seen


def refused(url: str, **kwargs: object) -> int:
    """The HTTP status a websocket handshake to ``url`` was refused with (fails if it opened)."""
    try:
        with connect(url, open_timeout=10, **kwargs):  # type: ignore[arg-type]
            pass
    except InvalidStatus as exc:
        return exc.response.status_code
    raise AssertionError(f"{url} opened a console")


def vnc_websocket(url: str) -> str:
    """The websocket a noVNC page URL names in its ``path`` (``?token=...``), as noVNC finds it."""
    parts = urlsplit(url)
    path = unquote(parse_qs(parts.query)["path"][0])
    return f"ws://{parts.netloc}/{path.lstrip('/')}"


def test_serial_console_from_the_cli_reaches_the_guest_shell_once(ccloud: Cloud, server: str) -> None:
    out = json.loads(ccloud.cli("console", "url", "show", "--serial", server, "-f", "json").stdout)
    assert out["type"] == "serial" and out["protocol"] == "serial", out
    url = out["url"]
    assert url.startswith(f"ws://127.0.0.1:{ccloud.env['CUMULO_COMPUTE__SERIAL_PROXY_PORT']}/?token=")
    with connect(url, open_timeout=10) as ws:
        ws.send(b"\n")
        read_until(ws, b"cumulo-guest:/# ")
        ws.send(b"echo console-$((6*7))-works\n")  # the shell's answer, not the echo of the line
        read_until(ws, b"console-42-works")
    # what went over the live console is in the console log too
    wait_for(lambda: "console-42-works" in console_output(ccloud, server), 10, "the answer in the console log")
    assert refused(url) == 403  # used once: gone
    # the guest's serial port takes the next session once the first has closed
    again = json.loads(ccloud.cli("console", "url", "show", "--serial", server, "-f", "json").stdout)["url"]
    with connect(again, open_timeout=10) as ws:
        ws.send(b"echo second-$((2*3))\n")
        read_until(ws, b"second-6")


def test_serial_console_token_expired_or_forged_is_refused(ccloud: Cloud, people: dict, server: str) -> None:
    token = people["member"][0]
    r = remote_console(ccloud, token, server, "serial", "serial")
    assert r.status_code == 200, r.text
    url = r.json()["remote_console"]["url"]
    # a browser page of another site may not use a URL it learned; the token survives that try
    assert refused(url, origin="http://elsewhere.example") == 403
    assert refused(url.replace("token=", "token=x")) == 403
    # past its time to live (the row's expiry moved back, as 600 s would) the token opens nothing
    with sqlite3.connect(ccloud.state_dir / "cumulo.db") as db:
        db.execute("UPDATE compute_console_token SET expires_at = '2000-01-01 00:00:00.000000' "
                   "WHERE instance_uuid = ?", (server,))
    assert refused(url) == 403
    # the VNC proxy does not take a serial console's token
    r = remote_console(ccloud, token, server, "serial", "serial")
    serial_token = parse_qs(urlsplit(r.json()["remote_console"]["url"]).query)["token"][0]
    vnc_port = ccloud.env["CUMULO_COMPUTE__NOVNC_PROXY_PORT"]
    assert refused(f"ws://127.0.0.1:{vnc_port}/?token={serial_token}") == 403


def test_novnc_console_speaks_rfb_to_the_guests_vnc_server(ccloud: Cloud, server: str) -> None:
    out = json.loads(ccloud.cli("console", "url", "show", "--novnc", server, "-f", "json").stdout)
    assert out["type"] == "novnc" and out["protocol"] == "vnc", out
    url = out["url"]
    port = ccloud.env["CUMULO_COMPUTE__NOVNC_PROXY_PORT"]
    assert url.startswith(f"http://127.0.0.1:{port}/vnc_lite.html?path=%3Ftoken%3D"), url
    page = httpx.get(url)  # the page (noVNC's, where it is installed) does not use the token up
    assert page.status_code == 200 and "<html" in page.text
    with connect(vnc_websocket(url), subprotocols=["binary"], open_timeout=10) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "binary"
        version = ws.recv(timeout=10)
        assert isinstance(version, bytes) and version.startswith(b"RFB 003.00"), version
        ws.send(version)
        types = ws.recv(timeout=10)
        assert 1 in types[1:1 + types[0]], types  # security type None offered
        ws.send(bytes((1,)))
        assert ws.recv(timeout=10) == b"\0\0\0\0"  # security handshake done
        ws.send(bytes((1,)))  # ClientInit: shared
        init = ws.recv(timeout=10)
        width, height = struct.unpack(">HH", init[:4])
        assert width > 0 and height > 0 and len(init) == 24 + struct.unpack(">L", init[20:24])[0]
    assert refused(vnc_websocket(url)) == 403


def test_who_may_open_a_console(ccloud: Cloud, people: dict, server: str) -> None:
    member, reader, other = people["member"][0], people["reader"][0], people["other"][0]
    admin = ccloud.token()[0]
    for token in (member, admin):
        r = remote_console(ccloud, token, server, "vnc", "novnc")
        assert r.status_code == 200, r.text
        body = r.json()["remote_console"]
        assert set(body) == {"protocol", "type", "url"} and body["protocol"] == "vnc"
    r = remote_console(ccloud, reader, server, "serial", "serial")
    assert r.status_code == 403 and "os-remote-consoles" in r.text
    assert remote_console(ccloud, other, server, "serial", "serial").status_code == 404
    # the actions of before 2.6 answer {"console": {...}}, for the same people
    for token, status in ((member, 200), (reader, 403), (other, 404)):
        r = httpx.post(f"{ccloud.compute_url}/servers/{server}/action", headers=h(token, "2.5"),
                       json={"os-getSerialConsole": {"type": "serial"}})
        assert r.status_code == status, r.text
    r = httpx.post(f"{ccloud.compute_url}/servers/{server}/action", headers=h(member, "2.5"),
                   json={"os-getVNCConsole": {"type": "novnc"}})
    assert r.status_code == 200 and set(r.json()["console"]) == {"type", "url"}, r.text
    with connect(vnc_websocket(r.json()["console"]["url"]), open_timeout=10) as ws:
        assert ws.recv(timeout=10).startswith(b"RFB 003.00")


def test_bad_requests_and_unready_servers(ccloud: Cloud, people: dict, server: str) -> None:
    member = people["member"][0]
    cases = [("vnc", "serial", "Invalid console type serial"), ("serial", "novnc", "Invalid console type novnc"),
             ("spice", "spice-html5", "Unavailable console type spice-html5."),
             ("rdp", "rdp-html5", "Unavailable console type rdp."), ("telnet", "serial", "protocol")]
    for protocol, kind, message in cases:
        r = remote_console(ccloud, member, server, protocol, kind)
        assert r.status_code == 400 and message in r.json()["badRequest"]["message"], r.text
    r = httpx.post(f"{ccloud.compute_url}/servers/{server}/remote-consoles", headers=h(member),
                   json={"remote_console": {"protocol": "serial"}})
    assert r.status_code == 400 and "'type' is a required property" in r.text
    assert remote_console(ccloud, member, server, "serial", "serial", "2.5").status_code == 404
    assert remote_console(ccloud, member, str(uuid.uuid4()), "serial", "serial").status_code == 404
    r = httpx.post(f"{ccloud.compute_url}/servers/{server}/action", headers=h(member, "2.6"),
                   json={"os-getSerialConsole": {"type": "serial"}})
    assert r.status_code == 404, r.text  # gone at 2.6
    r = httpx.post(f"{ccloud.compute_url}/servers/{server}/action", headers=h(member, "2.5"),
                   json={"os-getVNCConsole": {"type": "spice-html5"}})
    assert r.status_code == 400, r.text
    # a stopped server has no console to open
    r = httpx.post(f"{ccloud.compute_url}/servers/{server}/action", headers=h(member), json={"os-stop": None})
    assert r.status_code == 202, r.text
    wait_for(lambda: httpx.get(f"{ccloud.compute_url}/servers/{server}", headers=h(member)).json()["server"][
        "status"] == "SHUTOFF", 30, "the server to stop")
    for protocol, kind in (("serial", "serial"), ("vnc", "novnc")):
        r = remote_console(ccloud, member, server, protocol, kind)
        assert r.status_code == 409 and "is not ready" in r.json()["conflictingRequest"]["message"], r.text
