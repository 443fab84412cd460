"""The database: one SQLAlchemy 2 async engine, sessions, and the Alembic migration runner.

SQLite in the state directory is the default; PostgreSQL (asyncpg) and MariaDB/MySQL (aiomysql)
are chosen by URL.  Every service's tables share one metadata (``Base``) and one migration history.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import datetime as dt
import fcntl
import json
import logging
import mmap
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from prometheus_client import Histogram
from sqlalchemy import JSON, DateTime, MetaData, String, Text, TypeDecorator, event
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
            # only a MySQL/MariaDB database loads SQLAlchemy's MySQL dialect (some 20 ms at import)
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
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


__all__ = ["Base", "Database", "JSON", "JSONText", "UTCDateTime", "IntegrityError", "DBAPIError",
           "new_id", "utcnow", "async_url", "integrity_kind", "is_duplicate"]

# What an IntegrityError really is.  Only UNIQUE means "that name/address/id is taken": a foreign
# key, a NOT NULL or a CHECK failing is another fault (a referent deleted meanwhile, or a bug) and
# must not be answered with "already exists".
UNIQUE, FOREIGN_KEY, NOT_NULL, CHECK, OTHER = "unique", "foreign_key", "not_null", "check", "other"
_SQLITE = {"SQLITE_CONSTRAINT_UNIQUE": UNIQUE, "SQLITE_CONSTRAINT_PRIMARYKEY": UNIQUE,
           "SQLITE_CONSTRAINT_FOREIGNKEY": FOREIGN_KEY, "SQLITE_CONSTRAINT_NOTNULL": NOT_NULL,
           "SQLITE_CONSTRAINT_CHECK": CHECK}
_SQLITE_TEXT = (("UNIQUE constraint failed", UNIQUE), ("FOREIGN KEY constraint failed", FOREIGN_KEY),
                ("NOT NULL constraint failed", NOT_NULL), ("CHECK constraint failed", CHECK))
_POSTGRES = {"23505": UNIQUE, "23503": FOREIGN_KEY, "23502": NOT_NULL, "23514": CHECK}  # SQLSTATE
_MYSQL = {1062: UNIQUE, 1586: UNIQUE, 1216: FOREIGN_KEY, 1217: FOREIGN_KEY, 1451: FOREIGN_KEY,
          1452: FOREIGN_KEY, 1048: NOT_NULL, 1364: NOT_NULL, 3819: CHECK, 4025: CHECK}


def integrity_kind(exc: BaseException) -> str:
    """``unique``, ``foreign_key``, ``not_null``, ``check`` or ``other`` for a database error, read
    from the driver's own code: SQLite's extended result code (sqlite3/aiosqlite), PostgreSQL's
    SQLSTATE (asyncpg), MySQL/MariaDB's error number (pymysql under aiomysql)."""
    orig = getattr(exc, "orig", None) or exc
    name = getattr(orig, "sqlite_errorname", None)
    if isinstance(name, str) and name in _SQLITE:
        return _SQLITE[name]
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and not isinstance(args[0], bool):
        return _MYSQL.get(args[0], OTHER)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(code, str) and code[:2] == "23":
        return _POSTGRES.get(code, OTHER)
    text = str(args[0]) if args else ""
    return next((kind for prefix, kind in _SQLITE_TEXT if text.startswith(prefix)), OTHER)


def is_duplicate(exc: BaseException) -> bool:
    """Whether an IntegrityError is a unique (or primary key) violation: the one case a service
    may answer with 409 "already exists" or retry with another value."""
    return integrity_kind(exc) == UNIQUE


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
        # Statements' parameters stay out of logs and error messages: they hold user data, hashes
        # and credential blobs.
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.dialect == "sqlite":
            path = make_url(self.url).database
            if path and path != ":memory:":
                private_sqlite_file(Path(path))
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                          pool_recycle=3600)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # reads that need no turn: SQLite in WAL mode lets any number of readers see the last commit
        # while one writer works, so list and look-up paths read through connections of their own,
        # made read-only by the engine (a write there fails at once instead of waiting)
        self._readers = self.sessions
        if self.dialect == "sqlite" and make_url(self.url).database not in (None, "", ":memory:"):
            read_engine = create_async_engine(self.url, **kwargs)
            event.listen(read_engine.sync_engine, "connect", _sqlite_read_pragmas)
            self.read_engine: AsyncEngine | None = read_engine
            self._readers = async_sessionmaker(read_engine, expire_on_commit=False)
        else:
            self.read_engine = None
        # SQLite has one writer: transactions that meet its lock sleep in its busy handler (up to
        # 100 ms a try), and a read that turns into a write after another process committed fails
        # at once (SQLITE_BUSY_SNAPSHOT).  Taking turns instead hands the database over at once:
        # in-process with a lock, across the API worker processes with an flock on ``<db>.turn``
        # (``FileTurn``).  A task that already holds the turn (a nested session) does not wait for itself.
        self._turn: asyncio.Lock | None = asyncio.Lock() if self.dialect == "sqlite" else None
        self._file_turn: FileTurn | None = None
        sqlite_path = make_url(self.url).database if self.dialect == "sqlite" else None
        if sqlite_path and sqlite_path != ":memory:":
            self._file_turn = FileTurn(sqlite_path + ".turn")
        self._holder: contextvars.ContextVar[bool] = contextvars.ContextVar(f"db_turn_{id(self)}", default=False)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        if self._turn is None or self._holder.get():
            async with self.sessions() as session:
                async with session.begin():
                    yield session
            return
        waited = time.perf_counter()
        async with self._turn:
            token = self._holder.set(True)
            if self._file_turn is not None:
                await self._file_turn.acquire()
            TURN_WAIT.observe(time.perf_counter() - waited)
            try:
                async with self.sessions() as session:
                    async with session.begin():
                        yield session
            finally:
                if self._file_turn is not None:
                    self._file_turn.release()
                self._holder.reset(token)

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A session for reading only: on SQLite it takes no turn (and cannot write); elsewhere it
        is an ordinary session."""
        if self.read_engine is None:
            async with self.session() as session:
                yield session
            return
        async with self._readers() as session:
            async with session.begin():
                yield session

    async def close(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not None:
            await self.read_engine.dispose()
        if self._file_turn is not None:
            self._file_turn.close()

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        # Alembic takes 0.2-0.5 s to import, and only the leader and `cumulo db` use it (the API
        # workers, which start with every restart of one, never do)
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
        # slow to import, as in migrate()
        from alembic.runtime.migration import MigrationContext

        async with self.engine.connect() as conn:
            return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


def private_sqlite_file(path: Path) -> None:
    """The SQLite database (and its -wal/-shm files, which SQLite creates with the database's
    mode) readable by its owner only: it holds password hashes and every tenant's records."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
    for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if f.stat().st_mode & 0o077:
                os.chmod(f, 0o600)


TURN_WAIT = Histogram("cumulo_db_turn_wait_seconds", "How long SQLite sessions waited for their turn",
                      buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


class FileTurn:
    """The SQLite turn across processes: an exclusive ``flock`` on a file next to the database.

    Uncontended it costs two system calls.  When another process holds it, one thread of its own
    waits in the kernel's ``flock`` (woken the moment the holder lets go, never a busy sleep), so
    neither the event loop nor the shared thread pool (busy with password hashes) waits.  A
    process that waits marks its slot in the file's first bytes (mapped by every process); while
    any slot is marked nobody takes the lock on the fast path, so a busy process cannot take turn
    after turn ahead of one whose waiting thread the scheduler has not woken yet.
    """

    SLOTS = 64

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self.fd).st_size < self.SLOTS:
            os.ftruncate(self.fd, self.SLOTS)
        self._waiting = mmap.mmap(self.fd, self.SLOTS)
        self._slot = os.getpid() % self.SLOTS
        self._waiting[self._slot] = 0  # a mark left by a dead process that had our slot
        self._waiter = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite-turn")

    async def acquire(self) -> None:
        if self._waiting.find(b"\x01") < 0:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
        self._waiting[self._slot] = 1
        try:
            got = asyncio.get_running_loop().run_in_executor(self._waiter, fcntl.flock, self.fd, fcntl.LOCK_EX)
            try:
                await asyncio.shield(got)
            except asyncio.CancelledError:
                # the thread will get the lock: wait for it and let go, so the next task of this
                # process never believes it holds a lock that is about to be released under it
                with contextlib.suppress(BaseException):
                    await got
                fcntl.flock(self.fd, fcntl.LOCK_UN)
                raise
        finally:
            self._waiting[self._slot] = 0

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self._waiter.shutdown(wait=False)
        with contextlib.suppress(Exception):
            self._waiting.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = -1


def _sqlite_read_pragmas(dbapi_conn: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_conn, record)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA query_only=ON")
    cur.close()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
