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

import datetime as dt
import fcntl
import json
import logging
import logging.handlers
import os
import re
import sys
import threading
from pathlib import Path
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
        record.request_id = ctx.request_id if ctx else None
        if ctx and ctx.auth:
            record.user_id, record.project_id = ctx.auth.user_id, ctx.auth.project_id or ctx.auth.domain_id
        return True


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then masks secrets in the whole line, traceback included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


# what every LogRecord has (and what RequestTagFilter adds): the rest came with ``extra=``
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "req", "request_id", "user_id", "project_id", "taskName", "color_message"}


def _plain(value: Any, key: str = "") -> Any:
    """An extra field's value for JSON, its secrets masked."""
    if key and is_secret_name(key) and value is not None:
        return MASK
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return redact(str(value))


class JSONFormatter(logging.Formatter):
    """One JSON object a line, for log shippers (Fluent Bit, Vector, Loki's promtail, journald's
    structured fields): ``time`` (ISO 8601 UTC), ``level``, ``logger``, ``request_id``,
    ``user_id``, ``project_id``, ``process``, ``message``, ``exception`` (a traceback, when there
    is one) and whatever the call passed with ``extra=``.  Secrets are masked field by field, so
    the line stays valid JSON."""

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created, dt.UTC)
        doc: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname, "logger": record.name,
            "request_id": getattr(record, "request_id", None),
            "message": redact(record.getMessage()),
        }
        for key in ("user_id", "project_id"):
            if getattr(record, key, None):
                doc[key] = getattr(record, key)
        doc["process"] = record.process
        if record.exc_info:
            doc["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            doc["exception"] = redact(record.exc_text)
        if record.stack_info:
            doc["stack"] = redact(self.formatStack(record.stack_info))
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in doc and not key.startswith("_"):
                doc[key] = _plain(value, key)
        return json.dumps(doc, ensure_ascii=False, default=str)


class RotatingLogFile(logging.handlers.WatchedFileHandler):
    """The log file, rotated by size, safely for several processes writing it (the API workers of
    one ``cumulo up`` share ``cumulo.log``).

    When the file passes ``max_bytes``, the process that notices takes a lock (``<file>.lock``),
    checks the size again (another may have just rotated), renames ``cumulo.log`` to
    ``cumulo.log.1`` (``.1`` to ``.2`` ..., the oldest past ``backup_count`` is removed) and opens
    a new file; every other process sees that the name now points to another file and reopens it,
    as a ``WatchedFileHandler`` does.  The same watch lets an external ``logrotate`` rename the
    file (no ``copytruncate`` needed).  ``max_bytes = 0`` never rotates.  New files are 0640."""

    def __init__(self, path: str, max_bytes: int = 0, backup_count: int = 0) -> None:
        self.max_bytes, self.backup_count = max_bytes, backup_count
        super().__init__(path, encoding="utf-8")

    def _open(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)  # noqa: SIM115 (the handler's stream)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.max_bytes and self.stream is not None and os.fstat(self.stream.fileno()).st_size >= self.max_bytes:
                self.rotate()
        except OSError:
            self.handleError(record)
        super().emit(record)

    def rotate(self) -> None:
        lock = os.open(f"{self.baseFilename}.lock", os.O_WRONLY | os.O_CREAT, 0o640)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if os.stat(self.baseFilename).st_size >= self.max_bytes:  # nobody rotated it meanwhile
                    for i in range(self.backup_count - 1, 0, -1):
                        older = f"{self.baseFilename}.{i}"
                        if os.path.exists(older):
                            os.replace(older, f"{self.baseFilename}.{i + 1}")
                    if self.backup_count > 0:
                        os.replace(self.baseFilename, f"{self.baseFilename}.1")
                    else:
                        os.unlink(self.baseFilename)
            except FileNotFoundError:
                pass
            self.reopenIfNeeded()
        finally:
            os.close(lock)  # and with it the lock


def rotated_files(path: str | Path) -> list[Path]:
    """The log file and its rotated copies, oldest first (``cumulo.log.5`` ... ``cumulo.log``)."""
    base = Path(path)
    olds = []
    for other in base.parent.glob(f"{base.name}.*"):
        suffix = other.name[len(base.name) + 1:]
        if suffix.isdigit():
            olds.append((int(suffix), other))
    return [p for _, p in sorted(olds, reverse=True)] + ([base] if base.exists() else [])


FORMAT = "%(asctime)s %(levelname)s %(name)s %(req)s %(message)s"
SYSLOG_FORMAT = "cumulo[%(process)d]: %(levelname)s %(name)s %(req)s %(message)s"
FORMATS = ("text", "json")


def _syslog_handler(address: str, facility: str) -> logging.Handler:
    """``/dev/log`` (journald and rsyslog listen there) or another unix socket, or ``host:port`` (UDP)."""
    where: str | tuple[str, int] = address
    if not address.startswith("/"):
        host, _, port = address.rpartition(":")
        where = (host or "localhost", int(port or 514))
    return logging.handlers.SysLogHandler(where, logging.handlers.SysLogHandler.facility_names[facility])


def setup(level: str = "INFO", path: str = "", *, fmt: str = "text", max_bytes: int = 0, backup_count: int = 0,
          syslog: str = "", syslog_facility: str = "user") -> None:
    """Send every log line to ``path`` (else stderr), as text or JSON (``fmt``), rotating the file
    past ``max_bytes``; and to syslog/journald at ``syslog`` when it is set."""
    if fmt not in FORMATS:
        raise ValueError(f"[logging] format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if path:  # request ids, users and projects: for the operator (and the adm group), not every local user
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640))
    handler: logging.Handler = RotatingLogFile(path, max_bytes, backup_count) if path \
        else logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else RedactingFormatter(FORMAT))
    handlers = [handler]
    if syslog:
        try:
            extra = _syslog_handler(syslog, syslog_facility)
        except (OSError, ValueError, KeyError) as exc:
            print(f"cumulo: syslog {syslog!r} is not usable ({exc}); logging without it", file=sys.stderr)
        else:
            extra.setFormatter(JSONFormatter() if fmt == "json" else RedactingFormatter(SYSLOG_FORMAT))
            handlers.append(extra)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for h in handlers:
        h.addFilter(RequestTagFilter())
        root.addHandler(h)
    root.setLevel(level.upper())
    # aiosqlite logs every statement with its parameters at DEBUG
    for noisy in ("aiormq", "aio_pika", "alembic.runtime.migration", "uvicorn.access", "uvicorn.error",
                  "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Alembic's INFO lines at every start (its plugins, the migration context) belong in a log
    # file, not on the terminal of `cumulo up`
    logging.getLogger("alembic").setLevel(logging.NOTSET if path else logging.WARNING)


def configure(cfg: Any, path: str | None = None) -> None:
    """``setup`` from a ``[logging]`` section (``path`` instead of its ``file`` when given)."""
    setup(cfg.level, cfg.file if path is None else path, fmt=cfg.format, max_bytes=cfg.max_bytes,
          backup_count=cfg.backup_count, syslog=cfg.syslog, syslog_facility=cfg.syslog_facility)


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
