"""`cumulo object ring ...` and `cumulo object status` on a state directory of real files."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from click.testing import CliRunner

from cumulo.cli.main import main
from cumulo.object.storage import ObjectStore


async def _one(data: bytes):
    yield data


def test_ring_commands_and_status_report_the_replicas(tmp_path: Path) -> None:
    def run(*args: str) -> str:
        result = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "object", *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert "3 devices" in run("ring", "create", "--part-power", "6")
    run("ring", "add", "d4", "--zone", "4")
    assert "partition replicas moved" in run("ring", "rebalance")
    assert " d4 " in run("ring", "show")

    store = ObjectStore.open(tmp_path)
    for i in range(5):
        asyncio.run(store.put("AUTH_a", "c", f"o{i}", _one(b"abc"), timestamp="1700000000.00000",
                              metadata={}, max_size=10))
    _, part, primaries = store.locate("AUTH_a", "c", "o0")
    shutil.rmtree(store.hash_dir(primaries[0], part, store.ring.hash("AUTH_a", "c", "o0")))
    out = run("status")
    assert "newest copy on N of 3 primaries: 3: 4, 2: 1" in out
    assert "marked out" in run("ring", "remove", "d1")
