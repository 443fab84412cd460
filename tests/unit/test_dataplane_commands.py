"""Every command the dataplane runs has a deadline: one that hangs is killed, logged with its
command line and counted, and never stalls the agent; a failure is swallowed only when its error
says the one "already so" case the caller expects.  A failing step of a reconcile is recorded,
counted and retried while the round goes on with the others."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest

from cumulo.network.agent import STEP_FAILURES, NetworkAgent
from cumulo.network.dataplane.linux import COMMAND_FAILURES, GONE_LINK, CommandFailed, CommandTimedOut, run


def count(counter: object, *labels: str) -> float:
    return counter.labels(*labels)._value.get()  # type: ignore[attr-defined]


def test_a_hanging_command_is_killed_at_its_deadline_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    before = count(COMMAND_FAILURES, "sleep", "timeout")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(CommandTimedOut):
        asyncio.run(run("sleep", "30", timeout=0.5))
    assert time.monotonic() - started < 10
    assert count(COMMAND_FAILURES, "sleep", "timeout") == before + 1
    assert "timed out after 0.5s and was killed: sleep 30" in caplog.text


def test_a_timeout_is_raised_even_when_failures_are_not_checked() -> None:
    with pytest.raises(CommandTimedOut):
        asyncio.run(run("sleep", "30", timeout=0.3, check=False))


def test_the_killed_command_is_gone(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with pytest.raises(CommandTimedOut):
        asyncio.run(run("sh", "-c", f"echo $$ > {pid_file}; exec sleep 30", timeout=1))
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_failure_raises_with_the_command_and_its_error(caplog: pytest.LogCaptureFixture) -> None:
    before = count(COMMAND_FAILURES, "sh", "failed")
    with caplog.at_level(logging.WARNING), pytest.raises(CommandFailed) as info:
        asyncio.run(run("sh", "-c", "echo 'RTNETLINK answers: Operation not permitted' >&2; exit 2"))
    assert info.value.returncode == 2 and "Operation not permitted" in str(info.value)
    assert count(COMMAND_FAILURES, "sh", "failed") == before + 1
    assert "command failed (2): sh -c" in caplog.text


def test_only_the_expected_not_found_case_is_swallowed() -> None:
    gone = "echo 'Cannot find device \"tapx\"' >&2; exit 1"
    assert asyncio.run(run("sh", "-c", gone, ok_if=GONE_LINK)) == ""
    busy = "echo 'RTNETLINK answers: Device or resource busy' >&2; exit 2"
    with pytest.raises(CommandFailed):
        asyncio.run(run("sh", "-c", busy, ok_if=GONE_LINK))


def test_a_failing_step_is_recorded_and_counted_and_the_round_goes_on(tmp_path: Path) -> None:
    agent = NetworkAgent(None, "cumulo-test-x", tmp_path, "", "")
    done = []

    async def round_() -> None:
        async with agent._step("DHCP of network n1"):
            await run("sh", "-c", "echo boom >&2; exit 3")
        async with agent._step("security groups (IPv4)"):
            done.append("rules")

    before = count(STEP_FAILURES, "DHCP")
    asyncio.run(round_())
    assert done == ["rules"]
    assert len(agent._failed) == 1 and agent._failed[0].startswith("DHCP of network n1: sh -c")
    assert count(STEP_FAILURES, "DHCP") == before + 1
