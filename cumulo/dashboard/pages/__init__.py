"""The dashboard's pages, one module per group; each has ``routes(d)`` and its ``NAV`` entries.

A NAV entry is ``(panel, section, label, path)``: panel ``project`` or ``admin`` (the admin ones
are shown only to whom ``dashboard:admin_panel`` allows).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cumulo.dashboard.pages import (
    access,
    admin,
    admin_compute,
    admin_flavors,
    admin_identity,
    admin_network,
    admin_storage,
    admin_system,
    auth,
    containers,
    images,
    instances,
    live,
    network,
    overview,
    tasks,
    volumes,
)


def when(value: Any) -> str:
    """An API timestamp as the pages show it: ``2026-12-04 19:20 UTC``."""
    if not value:
        return ""
    text = str(value)
    if len(text) in (20, 25) and text[10] == "T" and text.endswith(("Z", "+00:00")):  # the APIs' usual form, fast
        return f"{text[:10]} {text[11:16]} UTC"
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def size(value: Any) -> str:
    """Bytes as KiB, MiB, GiB."""
    try:
        n = float(value)
    except (TypeError, ValueError):
        return ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def short(value: Any) -> str:
    return str(value or "")[:8]


FILTERS = {"when": when, "size": size, "short": short}
# the order of the side menu
MODULES: list[Any] = [auth, live, overview, instances, tasks, volumes, images, access, network, containers, admin,
                     admin_compute, admin_flavors, admin_storage, admin_network, admin_system, admin_identity]
