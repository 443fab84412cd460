"""The log reader of `cumulo trace` and `cumulo logs`: it parses what the formatters write (text
and JSON, tracebacks, rotated files) and puts one request's lines in time order with durations."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cumulo.cli import trace
from cumulo.cli.main import main
from cumulo.core import context
from cumulo.core import logging as logmod

RID = "req-0f6e3d2a-9c61-4c3e-a3b5-5d1c8e2f7a10"
OTHER = "req-99999999-9c61-4c3e-a3b5-5d1c8e2f7a10"


def record(name: str, level: int, msg: str, created: float, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("qemu-img failed")
        except RuntimeError:
            import sys
            exc_info = sys.exc_info()
    r = logging.LogRecord(name, level, __file__, 1, msg, (), exc_info)
    r.created, r.msecs = created, (created % 1) * 1000
    return r


def write(path: Path, fmt: str, lines: list[tuple[str | None, str, int, str, float, bool]]) -> None:
    """Lines as the cloud's own formatters write them: (request id, logger, level, message, time, traceback)."""
    formatter = logmod.JSONFormatter() if fmt == "json" else logmod.RedactingFormatter(logmod.FORMAT)
    tagger = logmod.RequestTagFilter()
    with path.open("a") as f:
        for rid, name, level, msg, created, exc in lines:
            token = context.current.set(context.RequestContext(rid) if rid else None)
            try:
                r = record(name, level, msg, created, exc)
                tagger.filter(r)
                f.write(formatter.format(r) + "\n")
            finally:
                context.current.reset(token)


@pytest.fixture(params=["text", "json"])
def cloud_log(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    t = time.time() - 60
    log = tmp_path / "cumulo.log"
    # the oldest part went to cumulo.log.1 when the file was rotated
    write(tmp_path / "cumulo.log.1", request.param, [
        (None, "cumulo.compute.agent", logging.INFO, "heartbeat", t, False),
        (RID, "cumulo.compute.scheduler", logging.INFO, "scheduled server s1 to node-1", t + 0.010, False),
        (OTHER, "cumulo.access", logging.INFO, 'image "GET /v2/images" 200 3.0ms', t + 0.011, False),
    ])
    write(log, request.param, [
        (RID, "cumulo.access", logging.INFO, 'compute "POST /v2.1/servers" 202 20.0ms', t + 0.020, False),
        (RID, "cumulo.bus", logging.INFO, "cast spawn received by compute.node-1", t + 0.030, False),
        (RID, "cumulo.compute.agent", logging.INFO, "spawn of server s1 on node-1: started", t + 0.031, False),
        (RID, "cumulo.compute.virt.qemu.driver", logging.WARNING, "instance s1: disks slow", t + 0.500, True),
        (None, "cumulo.network.agent", logging.ERROR, "dnsmasq died", t + 0.600, False),
        (RID, "cumulo.compute.agent", logging.INFO, "spawn of server s1 on node-1: done in 1469 ms", t + 1.500,
         False),
    ])
    return log


def test_a_request_is_told_in_time_order_across_rotated_files(cloud_log: Path) -> None:
    entries = trace.trace_entries(logmod.rotated_files(cloud_log), RID)
    assert [e.component for e in entries] == ["compute-api", "scheduler", "compute-api", "bus", "compute-agent",
                                              "qemu", "compute-agent"]
    first = entries[0]
    assert first.derived and first.message == 'compute "POST /v2.1/servers" received'  # 20 ms before its line
    assert round((entries[2].time - first.time).total_seconds(), 3) == 0.020
    assert all(e.request_id == RID for e in entries)
    assert all(a.time <= b.time for a, b in zip(entries, entries[1:], strict=False))
    qemu = entries[5]
    assert qemu.level == "WARNING" and "Traceback" in qemu.message and "qemu-img failed" in qemu.message
    text = trace.render_trace(RID, entries)
    assert "+1.500s" in text and "+1.000s" in text  # since the start; since the line before (the QEMU one)
    assert "qemu" in text.split("component", 2)[2]  # the summary lists each component
    assert OTHER not in text and "heartbeat" not in text and "dnsmasq" not in text


def test_cumulo_trace_command(cloud_log: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--state-dir", str(cloud_log.parent), "trace", RID], env={"CUMULO_CONFIG": ""})
    assert result.exit_code == 0, result.output
    assert "spawn of server s1 on node-1: done in 1469 ms" in result.output
    assert result.output.index("scheduled server s1") < result.output.index("cast spawn received")
    as_json = runner.invoke(main, ["--state-dir", str(cloud_log.parent), "trace", RID, "--json"])
    docs = [json.loads(line) for line in as_json.output.splitlines()]
    assert [d["component"] for d in docs][:2] == ["compute-api", "scheduler"] and docs[-1]["since_start"] == 1.5
    missing = runner.invoke(main, ["--state-dir", str(cloud_log.parent), "trace", OTHER.replace("9", "8")])
    assert missing.exit_code == 1 and "no log line carries" in missing.output
    bad = runner.invoke(main, ["--state-dir", str(cloud_log.parent), "trace", "not-an-id"])
    assert bad.exit_code == 2 and "req-<uuid>" in bad.output


def test_cumulo_logs_filters_by_service_level_and_request(cloud_log: Path) -> None:
    def logs(*args: str) -> list[str]:
        result = CliRunner().invoke(main, ["--state-dir", str(cloud_log.parent), "logs", *args])
        assert result.exit_code == 0, result.output
        return [line for line in result.output.splitlines() if line[:4].isdigit() or line.startswith("{")]

    every = logs()
    assert len(every) == 6 and "dnsmasq died" in every[4]  # the current file, in order
    compute = logs("--service", "compute")
    assert len(compute) == 4 and not any("dnsmasq" in line or "cast spawn" in line for line in compute)
    assert [line for line in logs("-s", "qemu")] == [line for line in compute if "disks slow" in line]
    assert len(logs("--service", "cumulo.bus")) == 1 and len(logs("-s", "network-agent")) == 1
    assert [("disks slow" in x, "dnsmasq" in x) for x in logs("--level", "warning")] == [(True, False), (False, True)]
    assert len(logs("--request", RID)) == 5 and len(logs("-n", "2")) == 2
    raw = logs("--raw", "-n", "1")
    assert raw == [cloud_log.read_text().splitlines()[-1]]


def test_text_parser_reads_request_user_and_project() -> None:
    e = trace.parse_line(f"2026-12-03 17:05:01,123 INFO cumulo.access [{RID} u1 p1] "
                         'compute "GET /v2.1/servers" 200 4.5ms')
    assert e is not None and e.request_id == RID and e.fields == {"user_id": "u1", "project_id": "p1"}
    assert e.time.microsecond == 123000 and e.component == "compute-api" and e.service == "compute"
    e = trace.parse_line("2026-12-03 17:05:01,123 INFO cumulo.bus [-] hop [with brackets]")
    assert e is not None and e.request_id is None and e.message == "hop [with brackets]"
    assert trace.parse_line("  File \"x.py\", line 1") is None and trace.parse_line("{not json") is None


def test_tail_reads_back_from_the_end_of_a_big_file(tmp_path: Path) -> None:
    log = tmp_path / "cumulo.log"
    t = time.time() - 600
    write(log, "text", [(RID if i % 100 == 0 else None, "cumulo.compute.agent" if i % 100 == 0 else "cumulo.bus",
                         logging.INFO, f"line {i:05d} " + "z" * 80, t + i / 1000, i == 9900) for i in range(10000)])
    wanted = lambda e: e.logger == "cumulo.compute.agent"  # noqa: E731
    got = trace.tail(log, 3, wanted, window=4096)
    assert [e.message.split()[1] for e in got] == ["09700", "09800", "09900"]
    assert "Traceback" in got[-1].message
    every = trace.tail(log, 1000, wanted, window=4096)  # fewer than asked: the whole file
    assert len(every) == 100 and every[0].message.startswith("line 00000")
    assert [e.message[:10] for e in trace.tail(log, 2, lambda e: True, window=300)] == ["line 09998", "line 09999"]
