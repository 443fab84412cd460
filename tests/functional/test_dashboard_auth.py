"""The dashboard's sign-in, sessions and CSRF, and the panels each persona may open.

One cloud (SQLite, fake nodes).  The client is a plain cookie-keeping HTTP client
(tests/functional/dashboard_helpers.py); the browser tests drive Chromium.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.functional.conftest import (
    BIN,
    Cloud,
    Persona,
    identity_admin,
    make_people,
    start_cloud,
    stop_cloud,
    unique,
    wait_for,
)
from tests.functional.dashboard_helpers import Browser, boot, compute, dashboard_url


@pytest.fixture(scope="module")
def dcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("dash-auth"), "sqlite")
    yield c
    stop_cloud(c)


@pytest.fixture(scope="module")
def people(dcloud: Cloud) -> dict[str, Persona]:
    return make_people(dcloud, "dash")


def test_the_catalog_lists_the_dashboard_and_policy_show_its_rules(dcloud: Cloud) -> None:
    token = dcloud.token()[0]
    catalog = httpx.get(f"{dcloud.url}/auth/catalog", headers={"X-Auth-Token": token}).json()["catalog"]
    urls = [e["url"] for entry in catalog if entry["type"] == "dashboard" for e in entry["endpoints"]]
    assert urls and urls[0].rstrip("/") == dashboard_url(dcloud)
    out = subprocess.run([str(BIN / "cumulo"), "policy", "show", "--service", "dashboard"], env=dcloud.env,
                         capture_output=True, text=True, check=True).stdout
    assert "dashboard:admin_panel: role:admin" in out
    assert "dashboard:project_panel:" in out


def test_a_page_without_a_session_goes_to_the_login_page_and_back(dcloud: Cloud, people: dict[str, Persona]) -> None:
    b = Browser(dcloud)
    r = b.page("/project/instances", status="ACTIVE")
    assert r.status_code == 303 and r.headers["location"].startswith("/auth/login?next=/project/instances")
    member = people["member"]
    r = b.http.post("/auth/login", data={"username": member.user_name, "password": member.password,
                                         "domain": "Default", "next": "/project/instances?status=ACTIVE"})
    assert r.status_code == 303 and r.headers["location"] == "/project/instances?status=ACTIVE"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("cumulo_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert member.token not in cookie  # sealed, not the token in the clear
    page = b.page("/project/instances").text
    assert member.project_name in page and member.user_name in page


def test_a_wrong_password_is_said_in_words_and_next_cannot_leave_the_site(dcloud: Cloud,
                                                                          people: dict[str, Persona]) -> None:
    b = Browser(dcloud)
    r = b.http.post("/auth/login", data={"username": people["member"].user_name, "password": "wrong"})
    assert r.status_code == 401
    assert "The user name or the password is wrong" in r.text
    assert "cumulo_session" not in r.headers.get("set-cookie", "")
    assert b.http.post("/auth/login", data={"username": "", "password": ""}).status_code == 400
    assert b.http.post("/auth/login", data={"username": "x" * 300, "password": "y"}).status_code == 400
    member = people["member"]
    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        r = b.http.post("/auth/login", data={"username": member.user_name, "password": member.password,
                                             "next": evil})
        assert r.status_code == 303 and r.headers["location"] == "/project/", evil


def test_a_form_without_the_sessions_csrf_token_or_from_another_origin_is_refused(
        dcloud: Cloud, people: dict[str, Persona]) -> None:
    member = people["member"]
    server_id = boot(dcloud, member, unique("csrf"))
    b = Browser(dcloud)
    b.login(member.user_name, member.password)
    path = f"/project/instances/{server_id}/action"
    assert b.post(path, {"action": "stop"}, csrf=False).status_code == 403
    assert b.http.post(path, data={"action": "stop", "csrf_token": "0" * 64}).status_code == 403
    other = Browser(dcloud)  # another session's token does not fit this session
    other.login(member.user_name, member.password)
    assert b.http.post(path, data={"action": "stop", "csrf_token": other.csrf}).status_code == 403
    r = b.http.post(path, data={"action": "stop", "csrf_token": b.csrf}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    assert compute(dcloud, member.token, "GET", f"/servers/{server_id}").json()["server"]["status"] == "ACTIVE"
    assert "Stopping 1 instance" in b.flash(b.post(path, {"action": "stop"}))
    wait_for(lambda: compute(dcloud, member.token, "GET", f"/servers/{server_id}").json()["server"]["status"]
             == "SHUTOFF", 30, "the server stopped by the dashboard's form")


def test_logout_revokes_the_token_so_a_copied_cookie_is_worthless(dcloud: Cloud, people: dict[str, Persona]) -> None:
    member = people["member"]
    b = Browser(dcloud)
    b.login(member.user_name, member.password)
    copied = dict(b.http.cookies)
    assert b.page("/project/instances").status_code == 200
    r = b.post("/auth/logout")
    assert r.status_code == 303 and r.headers["location"] == "/auth/login"
    thief = httpx.Client(base_url=dashboard_url(dcloud), cookies=copied, follow_redirects=False)
    r = thief.get("/project/instances")
    assert r.status_code == 303 and "expired=1" in r.headers["location"]
    assert "Your session has ended" in thief.get(r.headers["location"]).text


def test_switching_project_rescopes_the_session(dcloud: Cloud, people: dict[str, Persona]) -> None:
    member = people["member"]
    v3 = identity_admin(dcloud)
    second = v3("POST", "/projects", {"project": {"name": unique("dash-second"), "domain_id": "default"}})["project"]
    role = v3("GET", "/roles?name=reader")["roles"][0]["id"]
    v3("PUT", f"/projects/{second['id']}/users/{member.user_id}/roles/{role}")
    b = Browser(dcloud)
    b.login(member.user_name, member.password, project=member.project_name)
    listed = b.page("/auth/projects").text
    assert second["name"] in listed and member.project_name in listed
    r = b.post("/auth/switch", {"project_id": second["id"]})
    assert r.status_code == 303
    page = b.page("/project/instances").text
    assert f"project <b>{second['name']}</b>" in page
    assert "Launch instance" not in page  # a reader there: no write buttons
    assert "Switch project" in page and "(reader)" in page
    # a project the user has no role in: refused in words, the session stays where it was
    stranger = v3("POST", "/projects", {"project": {"name": unique("dash-none"), "domain_id": "default"}})["project"]
    msg = b.flash(b.post("/auth/switch", {"project_id": stranger["id"]}))
    assert msg and "project" in msg.lower()
    assert f"project <b>{second['name']}</b>" in b.page("/project/").text


def test_a_reader_sees_the_list_but_its_write_is_refused_by_the_api_in_words(
        dcloud: Cloud, people: dict[str, Persona]) -> None:
    member, reader = people["member"], people["reader"]
    name = unique("seen")
    server_id = boot(dcloud, member, name)
    b = Browser(dcloud)
    b.login(reader.user_name, reader.password)
    page = b.page("/project/instances").text
    assert name in page and f'id="row-server-{server_id}"' in page
    assert "Launch instance" not in page and 'name="action"' not in page
    msg = b.flash(b.post(f"/project/instances/{server_id}/action", {"action": "stop"}))
    assert msg.startswith(server_id[:8]) and ("not authorized" in msg.lower() or "policy" in msg.lower()), msg
    assert compute(dcloud, member.token, "GET", f"/servers/{server_id}").json()["server"]["status"] == "ACTIVE"
    row = b.page(f"/project/instances/{server_id}/row")
    assert row.status_code == 200 and name in row.text


def test_another_projects_member_sees_nothing_of_the_project(dcloud: Cloud, people: dict[str, Persona]) -> None:
    member, other = people["member"], people["other"]
    name = unique("hidden")
    server_id = boot(dcloud, member, name)
    b = Browser(dcloud)
    b.login(other.user_name, other.password)
    assert name not in b.page("/project/instances").text
    assert b.page(f"/project/instances/{server_id}/row").status_code == 404
    msg = b.flash(b.post(f"/project/instances/{server_id}/action", {"action": "stop"}))
    assert server_id[:8] in msg and re.search(r"could not be found|not found", msg, re.I), msg


def test_the_overview_shows_quota_use_and_the_usage_report_downloads_as_csv(
        dcloud: Cloud, people: dict[str, Persona]) -> None:
    member = people["member"]
    name = unique("usage")
    boot(dcloud, member, name)
    b = Browser(dcloud)
    b.login(member.user_name, member.password)
    page = b.page("/project/").text
    instances = re.search(r'aria-label="Instances: (\d+) of (\d+)"', page)
    assert instances, page[:2000]
    used = len(compute(dcloud, member.token, "GET", "/servers").json()["servers"])
    assert int(instances.group(1)) == used
    r = b.page("/project/usage.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines()[0].startswith("name,instance_id,flavor")
    assert name in r.text
    bad = b.page("/project/", start="not-a-date").text
    assert "Dates are written YYYY-MM-DD" in bad
