"""`cumulo --help` teaches: its command list one a line, and every command's help an example."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from cumulo.cli.main import main


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every visible leaf command's path below ``group``."""
    found = []
    for name, cmd in group.commands.items():
        if cmd.hidden:
            continue
        if isinstance(cmd, click.Group):
            found += _commands(cmd, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


COMMANDS = _commands(main)


def _help(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


def test_top_help_lists_each_command_on_its_own_line() -> None:
    lines = _help().split("Every command has its own help", 1)[0].splitlines()  # the list's block
    for command in ("up", "status", "config show", "db sync | version", "identity rotate-keys",
                    "policy show", "network trace X", "network agent", "network cleanup", "agent",
                    "volume agent", "object ring | status"):
        starts = [line for line in lines if line.strip().startswith(f"cumulo {command} ")]
        assert len(starts) == 1, (command, lines)
        # one command a line: no other command's name joined onto it (click's rewrapping did that)
        assert starts[0].count("cumulo ") == 1, starts[0]


def test_short_flag_for_help() -> None:
    assert _help() == CliRunner().invoke(main, ["-h"], terminal_width=100).output


def test_command_summaries_are_not_cut() -> None:
    # the "Commands:" section shows each command's short help whole, never ending in "..."
    output = _help()
    section = output.split("Commands:", 1)[1]
    assert "..." not in section, section


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_each_command_has_an_example(path: tuple[str, ...]) -> None:
    output = _help(*path)
    assert "Examples:" in output, output
    examples = output.split("Examples:", 1)[1].strip().splitlines()
    assert examples, output
    # each example is a command line of its own that runs this very command
    assert any(" ".join(("cumulo", *path)) in line or ("cumulo --" in line and path[-1] in line)
               for line in examples), examples


def test_up_help_names_the_settings_that_matter() -> None:
    output = _help("up")
    for setting in ("[database] url", "[bus] url", "[identity] port", "--quiet"):
        assert setting in output, setting
    # the settings block keeps its lines (each starts with its setting)
    assert any(line.strip().startswith("[bus] url") for line in output.splitlines())


def test_enough_commands_found() -> None:
    assert len(COMMANDS) >= 20, COMMANDS
