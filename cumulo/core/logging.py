"""Logging set-up: every line of a request carries ``[req-... user project]``, and no secret.

An operator follows one request across services by grepping its request id (Ops Guide,
"Tracing Instance Requests"); lines outside a request carry ``[-]``.

Every handler formats through ``RedactingFormatter``: whatever a line (or a traceback) holds,
token headers (``X-Auth-Token``, ``X-Subject-Token``), Fernet tokens (``gAAAA...``), the values of
``password``/``secret``/``adminPass``/``token`` keys, passwords in URLs (``scheme://user:pw@``) and
every secret registered with ``add_secret`` (the bootstrap passwords, the metadata secret, the
database and bus passwords) come out as ``***``.  Code should not log secrets in the first place;
this is the net under it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

from cumulo.core import context

MASK = "***"
_KEYS = r"(?:password|passwd|secret|adminpass|admin_pass|x-auth-token|x-subject-token|x-auth-key|token|" \
        r"authorization|os_password|blob|credential)"
# `"password": "..."`, `password=...`, `X-Auth-Token: ...`, `'secret': '...'` (JSON, repr, headers,
# query strings, env files).  A value that opens an object or list is left: its members get their turn.
_KEYED = re.compile(
    r"""(?ix)
    (?P<key>["']?\b[\w-]*""" + _KEYS + r"""["']?\s*[:=]\s*)
    (?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|(?:(?:basic|bearer)\s+)?(?![\[{(])[^\s,;&}'"\]]+)""")
_FERNET = re.compile(r"gAAAAA[A-Za-z0-9_\-]{20,}={0,2}")
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^\s/:@]*:)(?P<pw>[^\s/@]+)(?P<at>@)", re.I)

_secrets: set[str] = set()
_secrets_re: re.Pattern[str] | None = None
_lock = threading.Lock()


def add_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears in a log line from now on (short values are ignored:
    masking every "admin" would hide more than it protects)."""
    global _secrets_re
    if not value or len(value) < 8 or value in _secrets:
        return
    with _lock:
        _secrets.add(value)
        _secrets_re = re.compile("|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True)))


def add_url_secret(url: str | None) -> None:
    """Register the password of a ``scheme://user:password@host`` URL."""
    if url:
        try:
            password = urlsplit(url).password
        except ValueError:
            return
        if password:
            add_secret(password)
            add_secret(unquote(password))


def _keyed(m: re.Match[str]) -> str:
    value = m.group("value")
    quote = value[0] if value[:1] in ("'", '"') else ""
    if not quote and len(value) < 16 and m.group("key").lower().rstrip(": =").endswith("token"):
        return m.group(0)  # prose ("could not find token: The token ..."), not a token
    return f"{m.group('key')}{quote}{MASK}{quote}"


_SECRET_NAME = re.compile(r"(?i)(password|passwd|secret|adminpass|token|blob|credential)[^.]*$")


def is_secret_name(name: str) -> bool:
    """Whether a field named ``name`` (``user.password``, ``adminPass``, ...) holds a secret, so a
    message about it must not show its value."""
    return bool(_SECRET_NAME.search(name))


def redact(text: str) -> str:
    """``text`` with every secret it holds replaced by ``***``."""
    if _secrets_re is not None:
        text = _secrets_re.sub(MASK, text)
    text = _FERNET.sub(MASK, text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}{m.group('at')}", text)
    return _KEYED.sub(_keyed, text)


def mask_url(url: str) -> str:
    """A URL for display: its password (in the authority or the query) masked, the rest kept."""
    return _KEYED.sub(_keyed, _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}{m.group('at')}", url))


class RequestTagFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = context.current.get()
        record.req = ctx.log_tag() if ctx else "[-]"
        return True


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then masks secrets in the whole line, traceback included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


FORMAT = "%(asctime)s %(levelname)s %(name)s %(req)s %(message)s"


def setup(level: str = "INFO", path: str = "") -> None:
    if path:  # request ids, users and projects: for the operator (and the adm group), not every local user
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640))
    handler: logging.Handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(FORMAT))
    handler.addFilter(RequestTagFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiosqlite logs every statement with its parameters at DEBUG
    for noisy in ("aiormq", "aio_pika", "alembic.runtime.migration", "uvicorn.access", "uvicorn.error",
                  "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Alembic's INFO lines at every start (its plugins, the migration context) belong in a log
    # file, not on the terminal of `cumulo up`
    logging.getLogger("alembic").setLevel(logging.NOTSET if path else logging.WARNING)


def add_config_secrets(cfg: Any) -> None:
    """Register the secrets a configuration holds: the database and bus passwords, the metadata
    secret and the bootstrap passwords (the generated ones are registered where they are read)."""
    add_url_secret(cfg.database_url)
    add_url_secret(cfg.bus.url)
    add_secret(cfg.compute.metadata_secret)
    add_secret(cfg.bootstrap.admin_password)
    add_secret(cfg.bootstrap.demo_password)


def config_has_secrets(cfg: Any) -> bool:
    """Whether the configuration itself holds a password or secret (not one generated in the state dir)."""
    def password(url: str) -> bool:
        try:
            return bool(urlsplit(url).password)
        except ValueError:
            return False

    return bool(password(cfg.database_url) or password(cfg.bus.url) or cfg.compute.metadata_secret
                or cfg.bootstrap.admin_password or cfg.bootstrap.demo_password)
