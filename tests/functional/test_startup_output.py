"""What `cumulo up` prints while it starts: no Alembic INFO lines on the terminal (they belong in
a log file), and the ready line with its time."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from cumulo.core import logging as logmod
from tests.functional.conftest import Cloud, start_cloud, stop_cloud, wait_for


@pytest.fixture(scope="module")
def tcloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    # the log on stderr, as on an operator's terminal when no [logging] file is set
    c = start_cloud(tmp_path_factory.mktemp("startup-cloud"), "sqlite", {
        "CUMULO_SERVICES": "identity", "CUMULO_LOGGING__FILE": ""})
    yield c
    stop_cloud(c)


def _stderr(cloud: Cloud) -> str:
    return (cloud.state_dir / "stderr.log").read_text()


def test_no_alembic_info_on_stderr(tcloud: Cloud) -> None:
    text = _stderr(tcloud)
    # the cloud's own INFO lines are there (the log really goes to stderr) ...
    assert " INFO cumulo.server " in text, text
    # ... Alembic's (its plugins, the migration context) are not
    assert " INFO alembic" not in text, text
    assert "alembic" not in text.lower(), text


def test_ready_line_says_how_long(tcloud: Cloud) -> None:
    def ready() -> list[str]:
        return [line for line in _stderr(tcloud).splitlines() if line.startswith("cumulo is up")]

    lines = wait_for(ready, 10, "the ready line")
    assert len(lines) == 1, lines
    assert "(ready in " in lines[0] and " s)" in lines[0], lines[0]


def test_alembic_info_kept_in_a_log_file(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        logmod.setup("INFO", str(tmp_path / "cumulo.log"))
        assert logging.getLogger("alembic.runtime.plugins").isEnabledFor(logging.INFO)
        logmod.setup("INFO", "")
        assert not logging.getLogger("alembic.runtime.plugins").isEnabledFor(logging.INFO)
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in before[0]:
            root.addHandler(h)
        root.setLevel(before[1])
        logging.getLogger("alembic").setLevel(logging.NOTSET)
