"""Resource events from the database: when a transaction that wrote a watched row commits, the bus
hears ``resource.<kind>.<action>`` (``cumulo.core.events``) for each row it wrote.

A service names its models once, where it is built::

    watch(db, bus, Volume, "volume", status=lambda row: row["status"])

and from then on every committed write of a ``Volume`` in this process publishes an event, however
it was written: ``session.add`` (create), a changed attribute or ``update(Volume).where(Volume.id
== ...)`` / ``.in_(...)`` (update), ``session.delete`` or ``delete(Volume).where(...)`` (delete).
No write path can forget its event, and none has to remember one.  Three SQLAlchemy session
events do it: ``do_orm_execute`` notes the ids and new values of an UPDATE or DELETE,
``after_flush`` the rows a flush adds, changes or deletes, and ``after_commit`` hands what the
transaction did to a task that publishes (a rollback drops it).

What an event says (the row's project and the status the API shows) comes from the write and
from the row's values this process last saw (kept from every load of the model, ``SEEN`` rows
per model); only a row this process has not seen is read back, by its primary key, after the
commit and off the caller's path.  A statement that picks rows by anything but their id (a bulk
sweep) publishes nothing for them: their next write by id does.  Publishing never fails or
delays the caller: the events leave from a task of their own, in the order of the commits.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, ClauseElement

from cumulo.core import events

LOG = logging.getLogger(__name__)
KEY = "cumulo.watch"
SEEN = 4096
PATIENCE = 10.0  # seconds one event may take (a read back, the bus): a stuck bus holds up no queue for long

Row = Mapping[str, Any]


@dataclass(eq=False)
class Watch:
    """One model's events: its kind, how its status reads, which columns say so."""

    db: Any
    bus: Any
    model: Any
    kind: str
    status: Callable[[Row], str]
    fields: tuple[str, ...]
    project: str = "project_id"
    gone: Callable[[Row], bool] | None = None  # a soft delete: the update that makes it true is a "delete"
    engines: set[Any] = field(default_factory=set)
    # a row's fields as last seen: a tuple in the order of fields (a dict when some were not loaded)
    seen: OrderedDict[str, tuple[Any, ...] | dict[str, Any]] = field(default_factory=OrderedDict)
    pk: str = ""  # the primary key's attribute (set once: inspecting the mapper per row costs)

    def __post_init__(self) -> None:
        mapper = inspect(self.model)
        self.pk = self.pk or str(mapper.primary_key[0].key)
        # fields a new row holds as NULL when its writer left them unset (no default of any kind):
        # a create knows them without reading the row back
        columns = {prop.key: prop.columns[0] for prop in mapper.column_attrs}
        self.null_when_unset = tuple(k for k in self.fields if k in columns and columns[k].nullable
                                     and columns[k].default is None and columns[k].server_default is None)
        pick = operator.itemgetter(*self.fields)
        self._pick: Callable[[Row], tuple[Any, ...]] = pick if len(self.fields) > 1 else lambda row: (pick(row),)

    def known(self, ident: str) -> dict[str, Any]:
        values = self.seen.get(ident)
        if values is None:
            return {}
        return dict(zip(self.fields, values, strict=True)) if isinstance(values, tuple) else values

    def remember(self, ident: str, row: Row) -> None:
        """Called for every loaded row, hence a tuple from itemgetter (C) and no dict built."""
        seen = self.seen
        try:
            seen[ident] = self._pick(row)
        except KeyError:  # a column this query did not load (deferred): what it did load
            seen[ident] = {k: row[k] for k in self.fields if k in row}
        seen.move_to_end(ident)
        if len(seen) > SEEN:
            seen.popitem(last=False)

    async def describe(self, ident: str, values: Row, action: str) -> dict[str, Any]:
        row = {**self.known(ident), **values}
        if action != "delete" and any(k not in row for k in self.fields):
            async with self.db.reader() as s:
                obj = await s.get(self.model, ident)
            if obj is not None:
                row = {**{k: getattr(obj, k) for k in self.fields}, **values}
        if action == "delete":
            self.seen.pop(ident, None)
        else:
            self.remember(ident, row)
        return row

    def status_of(self, row: Row) -> str:
        try:
            return str(self.status(row) or "")
        except Exception:  # noqa: BLE001  (a row we know too little of: the event goes without a status)
            return ""


_WATCHES: dict[str, list[Watch]] = {}
_last: asyncio.Task[None] | None = None  # the newest publishing task: each waits for the one before
_installed = False


def watch(db: Any, bus: Any, model: Any, kind: str, status: Callable[[Row], str], fields: tuple[str, ...] = ("status",),
          project: str = "project_id", gone: Callable[[Row], bool] | None = None) -> Watch | None:
    """Publish ``kind`` events for every committed write of ``model`` through ``db`` in this process.

    ``status(row)`` gets a mapping of ``fields`` (and ``project``) and returns what the API shows."""
    if bus is None:
        return None
    _install()
    cols = tuple(dict.fromkeys((*fields, project)))
    w = Watch(db, bus, model, kind, status, cols, project, gone)
    w.engines = {e.sync_engine for e in (db.engine, getattr(db, "read_engine", None)) if e is not None}
    table = model.__table__.name
    _WATCHES[table] = [x for x in _WATCHES.get(table, []) if x.db is not db] + [w]
    if not event.contains(model, "load", _on_load):
        event.listen(model, "load", _on_load, raw=True)  # raw: the InstanceState, no wrapper per row
    return w


def _lookup(session: Any, table: str | None) -> Watch | None:
    if not table or table not in _WATCHES:
        return None
    bind = getattr(session, "bind", None)
    for w in _WATCHES[table]:
        if bind in w.engines:
            return w
    return None


def _on_load(state: Any, context: Any) -> None:
    """Runs for every row of a watched model that a query loads (a list of 1,000 servers: 1,000
    times), so it does as little as it can: no inspect(), the identity from the state's key."""
    watches = _WATCHES.get(state.class_.__table__.name)
    if not watches:
        return
    bind = getattr(context.session, "bind", None)
    for w in watches:
        if bind in w.engines:
            break
    else:
        return
    key = state.key  # (class, (primary key values...), token), set before "load" fires
    ident = key[1][0] if key is not None and len(key[1]) == 1 else state.dict.get(w.pk)
    if ident is not None:
        w.remember(str(ident), state.dict)


def _ids(where: ClauseElement | None, table: str, pk: str) -> list[str]:
    out: list[Any] = []
    if where is None:
        return []
    for el in visitors.iterate(where):
        if not (isinstance(el, BinaryExpression) and isinstance(el.right, BindParameter)):
            continue
        left = el.left
        if getattr(left, "key", None) != pk or getattr(getattr(left, "table", None), "name", None) != table:
            continue
        if el.operator is operators.eq:
            out.append(el.right.effective_value)
        elif el.operator is operators.in_op:
            out.extend(el.right.effective_value or [])
    return [str(i) for i in out if i is not None]


def _values(stmt: Any, w: Watch) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (getattr(stmt, "_values", None) or {}).items():
        name = key if isinstance(key, str) else getattr(key, "key", None)
        if name not in w.fields:
            continue
        if isinstance(value, BindParameter):
            value = value.effective_value
        elif isinstance(value, ClauseElement):  # an SQL expression: its value is the database's
            continue
        out[name] = value
    return out


def _on_execute(state: ORMExecuteState) -> None:
    stmt = state.statement
    if not getattr(stmt, "is_dml", False) or not (state.is_update or state.is_delete):  # a SELECT: at once
        return
    table = getattr(getattr(stmt, "table", None), "name", None)
    w = _lookup(state.session, table)
    if w is None:
        return
    ids = _ids(getattr(stmt, "whereclause", None), table or "", w.pk)
    if not ids:
        return
    values = {} if state.is_delete else _values(stmt, w)
    action = "delete" if state.is_delete or (w.gone is not None and w.gone(values)) else "update"
    state.session.info.setdefault(KEY, []).append((w, ids, values, action))


def _after_flush(session: Session, _flush: Any) -> None:
    for objects, action in ((session.new, "create"), (session.dirty, "update"), (session.deleted, "delete")):
        for obj in objects:
            w = _lookup(session, getattr(getattr(obj, "__table__", None), "name", None))
            if w is None or (action == "update" and not session.is_modified(obj, include_collections=False)):
                continue
            state = inspect(obj).dict  # what is loaded: reading an unloaded attribute here would be I/O
            ident = state.get(w.pk)
            if ident is None:
                continue
            values = {k: state[k] for k in w.fields if k in state}
            if action == "create":
                for k in w.null_when_unset:
                    values.setdefault(k, None)
            act = "delete" if action == "update" and w.gone is not None and w.gone(values) else action
            session.info.setdefault(KEY, []).append((w, [str(ident)], values, act))


def _after_commit(session: Session) -> None:
    changes = session.info.pop(KEY, None)
    if not changes:
        return
    global _last
    try:
        _last = asyncio.get_running_loop().create_task(_publish(changes, _last))
    except RuntimeError:  # no loop (a synchronous tool's session): nobody is listening here
        return


def _after_rollback(session: Session) -> None:
    session.info.pop(KEY, None)


async def _publish(changes: list[tuple[Watch, list[str], dict[str, Any], str]],
                   before: asyncio.Task[None] | None) -> None:
    if before is not None and not before.done() and before.get_loop() is asyncio.get_running_loop():
        await asyncio.wait([before])
    for w, ids, values, action in changes:
        for ident in ids:
            try:
                async with asyncio.timeout(PATIENCE):
                    row = await w.describe(ident, values, action)
                    await events.changed(w.bus, w.kind, ident, row.get(w.project), action, status=w.status_of(row))
            except Exception as exc:  # noqa: BLE001  (the write has committed; the event is a courtesy)
                LOG.warning("no %s event for %s %s: %s", action, w.kind, ident, exc or type(exc).__name__)


def _install() -> None:
    global _installed
    if _installed:
        return
    event.listen(Session, "do_orm_execute", _on_execute)
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_soft_rollback", lambda session, _previous: _after_rollback(session))
    _installed = True
