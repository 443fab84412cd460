"""The database: one SQLAlchemy 2 async engine, sessions, and the Alembic migration runner.

SQLite in the state directory is the default; PostgreSQL (asyncpg) and MariaDB/MySQL (aiomysql)
are chosen by URL.  Every service's tables share one metadata (``Base``) and one migration history.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, String, TypeDecorator, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

LOG = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A naive-UTC timestamp with microseconds on every backend (MySQL drops them otherwise)."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "mysql":
            from sqlalchemy.dialects.mysql import DATETIME

            return dialect.type_descriptor(DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value


class JSONText(TypeDecorator[Any]):
    """JSON stored as text: identical on SQLite, PostgreSQL and MariaDB."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        from sqlalchemy import Text

        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


__all__ = ["Base", "Database", "JSON", "JSONText", "UTCDateTime", "IntegrityError", "DBAPIError",
           "new_id", "utcnow", "async_url"]


def async_url(url: str) -> str:
    """Map a plain database URL to the async driver Cumulo uses for it."""
    u = make_url(url)
    backend = u.get_backend_name()
    driver = {"sqlite": "aiosqlite", "postgresql": "asyncpg", "mysql": "aiomysql",
              "mariadb": "aiomysql"}.get(backend)
    if driver is None:
        raise ValueError(f"unsupported database {backend!r}: use sqlite://, postgresql:// or mysql://")
    if backend == "mariadb":
        u = u.set(drivername="mysql")
    if u.get_driver_name() != driver:
        u = u.set(drivername=f"{'mysql' if backend == 'mariadb' else backend}+{driver}")
    if u.get_backend_name() == "mysql" and "charset" not in u.query:
        u = u.update_query_dict({"charset": "utf8mb4"})
    return u.render_as_string(hide_password=False)


class Database:
    """The engine and a session factory; ``async with db.session() as s`` commits on success."""

    def __init__(self, url: str, pool_size: int = 10, echo: bool = False) -> None:
        self.url = async_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            path = make_url(self.url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                          pool_recycle=3600)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer: transactions that meet its lock sleep in its busy handler (up to
        # 100 ms a try).  Taking turns in-process instead hands the database over at once.  A task
        # that already holds the turn (a nested session) does not wait for itself.
        self._turn: asyncio.Lock | None = asyncio.Lock() if self.dialect == "sqlite" else None
        self._holder: contextvars.ContextVar[bool] = contextvars.ContextVar(f"db_turn_{id(self)}", default=False)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        if self._turn is None or self._holder.get():
            async with self.sessions() as session:
                async with session.begin():
                    yield session
            return
        async with self._turn:
            token = self._holder.set(True)
            try:
                async with self.sessions() as session:
                    async with session.begin():
                        yield session
            finally:
                self._holder.reset(token)

    async def close(self) -> None:
        await self.engine.dispose()

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        def upgrade(connection: Any) -> None:
            cfg = AlembicConfig()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")

        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade)

    async def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        async with self.engine.connect() as conn:
            return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
