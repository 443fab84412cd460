"""Logging set-up: every line of a request carries ``[req-... user project]``.

An operator follows one request across services by grepping its request id (Ops Guide,
"Tracing Instance Requests"); lines outside a request carry ``[-]``.
"""

from __future__ import annotations

import logging
import sys

from cumulo.core import context


class RequestTagFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = context.current.get()
        record.req = ctx.log_tag() if ctx else "[-]"
        return True


FORMAT = "%(asctime)s %(levelname)s %(name)s %(req)s %(message)s"


def setup(level: str = "INFO", path: str = "") -> None:
    handler: logging.Handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RequestTagFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("aiormq", "aio_pika", "alembic.runtime.migration", "uvicorn.access", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
