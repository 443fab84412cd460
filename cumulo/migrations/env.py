"""Alembic environment: migrations run on the connection Cumulo hands in (see core.db.migrate)."""

from alembic import context

from cumulo.core.db import Base
from cumulo.migrations import models  # noqa: F401  (registers every service's tables)

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `cumulo db sync`, which supplies the connection")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
