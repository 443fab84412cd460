"""Paging, sorting and filters applied to a real SQLite table."""

from __future__ import annotations

import pytest
from sqlalchemy import Integer, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from starlette.datastructures import QueryParams

from cumulo.core.http.faults import BadRequest
from cumulo.core.http.paging import apply, list_query, next_link


class B(DeclarativeBase):
    pass


class Thing(B):
    __tablename__ = "thing"
    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    size: Mapped[int] = mapped_column(Integer)


@pytest.fixture
def session():  # type: ignore[no-untyped-def]
    engine = create_engine("sqlite://")
    B.metadata.create_all(engine)
    with Session(engine) as s:
        for i in range(10):
            s.add(Thing(id=f"id{i:02d}", name=f"n{i % 3}", size=i))
        s.commit()
        yield s


def test_pages_cover_every_row_once_in_order(session) -> None:  # type: ignore[no-untyped-def]
    seen, marker = [], None
    while True:
        params = QueryParams({"limit": "3", "sort_key": "name", "sort_dir": "desc",
                              **({"marker": marker} if marker else {})})
        q = list_query(params, {"name", "size", "id"})
        marker_row = session.get(Thing, marker) if marker else None
        rows = session.execute(apply(select(Thing), Thing, q, marker_row)).scalars().all()
        seen.extend(rows)
        links = next_link("http://x/things", params, q, rows, "things")
        if not links:
            break
        marker = rows[-1].id
        assert f"marker={marker}" in links[0]["href"]
    assert len(seen) == 10 and len({t.id for t in seen}) == 10
    assert [t.name for t in seen] == sorted((t.name for t in seen), reverse=True)


@pytest.mark.parametrize("params", [{"limit": "x"}, {"limit": "-1"}, {"sort_key": "secret"},
                                    {"sort_key": "name", "sort_dir": "up"}])
def test_bad_parameters_are_400(params) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadRequest):
        list_query(QueryParams(params), {"name", "id"})
