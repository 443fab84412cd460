"""Console tokens (one use, a time to live, kept hashed) and the proxies' checks, without a cloud."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cumulo.compute.console_models import ConsoleToken
from cumulo.compute.consoles.proxy import ConsoleProxy, origin_allowed, token_of
from cumulo.compute.consoles.service import with_token
from cumulo.compute.consoles.tokens import ConsoleTokens
from cumulo.core.db import Database


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    database = Database(f"sqlite:///{tmp_path / 'cumulo.db'}")
    await database.migrate()
    yield database
    await database.close()


async def test_a_token_opens_its_console_once_and_is_kept_only_as_its_hash(db: Database) -> None:
    tokens = ConsoleTokens(db, ttl=600)
    token = await tokens.issue("11111111-1111-1111-1111-111111111111", "serial", "node-1", "/x/tty.sock")
    async with db.session() as s:
        stored = (await s.execute(select(ConsoleToken.token_hash))).scalars().all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]
    assert await tokens.peek(token, "serial") is not None  # looking does not use it up
    assert await tokens.consume(token, "novnc") is None  # the other proxy's: refused (and gone)
    token = await tokens.issue("11111111-1111-1111-1111-111111111111", "serial", "node-1", "/x/tty.sock")
    console = await tokens.consume(token, "serial")
    assert console is not None and (console.host, console.path) == ("node-1", "/x/tty.sock")
    assert await tokens.consume(token, "serial") is None
    assert await tokens.consume("", "serial") is None and await tokens.consume("x" * 500, "serial") is None


async def test_an_expired_token_opens_nothing_and_is_cleaned_up(db: Database) -> None:
    tokens = ConsoleTokens(db, ttl=0)
    token = await tokens.issue("11111111-1111-1111-1111-111111111111", "novnc", "node-1", "/x/vnc.sock")
    assert await tokens.peek(token, "novnc") is None
    assert await tokens.consume(token, "novnc") is None
    await tokens.issue("11111111-1111-1111-1111-111111111111", "novnc", "node-1", "/x/vnc.sock")  # left unused
    await ConsoleTokens(db, ttl=600).issue("22222222-2222-2222-2222-222222222222", "novnc", "n", "/y")
    async with db.session() as s:  # each issue removes what has expired
        left = (await s.execute(select(ConsoleToken.instance_uuid))).scalars().all()
    assert left == ["22222222-2222-2222-2222-222222222222"]


def test_urls_carry_the_token_where_each_client_looks() -> None:
    assert with_token("ws://h:6083/", "serial", "T") == "ws://h:6083/?token=T"
    assert with_token("http://h:6080/vnc_lite.html", "novnc", "T") == "http://h:6080/vnc_lite.html?path=%3Ftoken%3DT"


def scope(query: bytes = b"", **headers: str) -> dict[str, Any]:
    return {"type": "websocket", "query_string": query,
            "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]}


def test_the_token_comes_from_the_query_or_a_cookie() -> None:
    assert token_of(scope(b"token=abc")) == "abc"
    assert token_of(scope(cookie="other=1; token=xyz")) == "xyz"
    assert token_of(scope(cookie="broken\x00")) == ""
    assert token_of(scope()) == ""


def test_a_browser_origin_must_name_the_host_it_connected_to() -> None:
    assert origin_allowed(scope(host="127.0.0.1:6080"))  # no Origin: not a browser
    assert origin_allowed(scope(host="127.0.0.1:6080", origin="http://127.0.0.1:6080"))
    assert not origin_allowed(scope(host="127.0.0.1:6080", origin="http://evil.example"))
    assert not origin_allowed(scope(host="127.0.0.1:6080", origin="null"))


async def get(app: ConsoleProxy, path: str) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": []}, receive, send)
    return sent[0]["status"], sent[1]["body"]


async def test_the_novnc_proxy_serves_the_web_client_and_nothing_outside_it(tmp_path: Path, db: Database) -> None:
    web = tmp_path / "novnc"
    web.mkdir()
    (web / "vnc_lite.html").write_text("<html><script>noVNC</script></html>")
    (tmp_path / "secret").write_text("no")
    app = ConsoleProxy(ConsoleTokens(db), "novnc", web)
    assert await get(app, "/vnc_lite.html") == (200, b"<html><script>noVNC</script></html>")
    assert (await get(app, "/../secret"))[0] == 404
    status, body = await get(ConsoleProxy(ConsoleTokens(db), "novnc", tmp_path / "none"), "/vnc_lite.html")
    assert status == 200 and b"not installed" in body
    assert (await get(ConsoleProxy(ConsoleTokens(db), "serial"), "/"))[0] == 400
