"""Integrity errors are told apart on every backend: only a unique violation is a duplicate.

Against real SQLite, PostgreSQL (asyncpg) and MariaDB (aiomysql) databases: ``integrity_kind``
names the constraint that failed, and a service that answers 409 "already exists" (or retries
with another value) for a unique violation lets any other violation through instead of calling it
a duplicate."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from cumulo.core.db import CHECK, FOREIGN_KEY, NOT_NULL, UNIQUE, Database, IntegrityError, integrity_kind
from cumulo.core.http.faults import Conflict
from cumulo.network.ipam import Ipam


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    name = f"cumulo_test_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cumulo.db'}"
    elif request.param == "postgres":
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {name}"],
                       check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc",
                        f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False, capture_output=True)
    else:
        subprocess.run(["mariadb", "-h", "127.0.0.1", "-u", "root", "-e", f"CREATE DATABASE {name}"],
                       check=True, capture_output=True)
        yield f"mysql://root@127.0.0.1:3306/{name}"
        subprocess.run(["mariadb", "-h", "127.0.0.1", "-u", "root", "-e", f"DROP DATABASE IF EXISTS {name}"],
                       check=False, capture_output=True)


@pytest.fixture
async def db(url: str) -> AsyncIterator[Database]:
    database = Database(url)
    yield database
    await database.close()


async def violation(db: Database, statement: str) -> IntegrityError:
    try:
        async with db.session() as s:
            await s.execute(text(statement))
    except IntegrityError as exc:
        return exc
    raise AssertionError(f"{statement} went through")


async def test_integrity_kind_names_the_constraint_that_failed(db: Database) -> None:
    async with db.engine.begin() as c:
        await c.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        await c.execute(text("CREATE TABLE child (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE, "
                             "parent_id INTEGER REFERENCES parent(id))"))
        await c.execute(text("INSERT INTO parent VALUES (1)"))
        await c.execute(text("INSERT INTO child VALUES (1, 'a', 1)"))
    assert integrity_kind(await violation(db, "INSERT INTO child VALUES (2, 'a', 1)")) == UNIQUE
    assert integrity_kind(await violation(db, "INSERT INTO child VALUES (1, 'b', 1)")) == UNIQUE  # primary key
    assert integrity_kind(await violation(db, "INSERT INTO child VALUES (3, 'c', 9)")) == FOREIGN_KEY
    assert integrity_kind(await violation(db, "DELETE FROM parent")) == FOREIGN_KEY
    assert integrity_kind(await violation(db, "INSERT INTO child VALUES (4, NULL, 1)")) == NOT_NULL
    if db.dialect != "mysql":  # MariaDB reports a failed CHECK as an OperationalError (4025), not integrity
        async with db.engine.begin() as c:
            await c.execute(text("CREATE TABLE checked (id INTEGER PRIMARY KEY, n INTEGER CHECK (n > 0))"))
        assert integrity_kind(await violation(db, "INSERT INTO checked VALUES (1, -1)")) == CHECK


async def test_port_missing_a_value_is_not_called_a_mac_in_use(db: Database) -> None:
    await db.migrate()
    svc = Ipam(db)
    net = await svc.create_network({"name": "n", "project_id": "p"})
    values = {"network_id": net.id, "project_id": None}  # a NOT NULL column without a default
    with pytest.raises(IntegrityError) as caught:
        await svc.create_port(dict(values, mac_address="fa:16:3e:00:00:01"), None, "p", True)
    assert integrity_kind(caught.value) == NOT_NULL
    # nor, without a MAC, as "no free MAC address" after retrying MACs that were never the problem
    with pytest.raises(IntegrityError):
        await svc.create_port(dict(values), None, "p", True)
    # a real duplicate still is one
    port = await svc.create_port({"network_id": net.id, "project_id": "p", "mac_address": "fa:16:3e:00:00:02"},
                                 None, "p", True)
    with pytest.raises(Conflict) as conflict:
        await svc.create_port({"network_id": net.id, "project_id": "p", "mac_address": port.mac_address},
                              None, "p", True)
    assert conflict.value.kind == "MacAddressInUse"


async def test_network_missing_a_value_is_not_called_a_taken_segment(db: Database) -> None:
    await db.migrate()
    svc = Ipam(db)
    with pytest.raises(IntegrityError) as caught:
        await svc.create_network({"name": "n", "project_id": None, "segment_id": 77})
    assert integrity_kind(caught.value) == NOT_NULL
    await svc.create_network({"name": "a", "project_id": "p", "segment_id": 78})
    with pytest.raises(Conflict) as conflict:
        await svc.create_network({"name": "b", "project_id": "p", "segment_id": 78})
    assert conflict.value.kind == "TunnelIdInUse"
