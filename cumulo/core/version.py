"""The version of the code running in this process, as agents report it and `cumulo upgrade
check` compares it (major.minor.patch; the package's version, ``pyproject.toml``)."""

from __future__ import annotations

import re
from functools import cache


@cache
def code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cumulo")
    except PackageNotFoundError:
        return "0.0.0"


def parse(text: str | None) -> tuple[int, int, int] | None:
    """``"0.2.1"`` -> (0, 2, 1); a version this code cannot read -> None."""
    found = re.match(r"\s*v?(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not found:
        return None
    return int(found.group(1)), int(found.group(2)), int(found.group(3) or 0)


def minors_behind(older: str | None, newer: str | None) -> int | None:
    """How many minor releases ``older`` is behind ``newer`` (a major release counts as many;
    negative when ahead); None when either cannot be read."""
    a, b = parse(older), parse(newer)
    if a is None or b is None:
        return None
    if a[0] != b[0]:
        return (b[0] - a[0]) * 100
    return b[1] - a[1]
