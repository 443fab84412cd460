"""The status the compute API shows for a server: Nova's mapping of vm_state and task_state."""

from __future__ import annotations

from typing import Any

STATUS = {"building": "BUILD", "active": "ACTIVE", "error": "ERROR", "deleted": "DELETED", "stopped": "SHUTOFF",
          "paused": "PAUSED", "suspended": "SUSPENDED", "resized": "VERIFY_RESIZE", "soft-delete": "SOFT_DELETED",
          "shelved": "SHELVED", "shelved_offloaded": "SHELVED_OFFLOADED", "rescued": "RESCUE"}
# task states that change the status Nova shows
TASK_STATUS = {"rebuilding": "REBUILD", "resize_prep": "RESIZE", "resize_migrating": "RESIZE",
               "resize_reverting": "REVERT_RESIZE", "migrating": "MIGRATING", "reboot_started": "REBOOT",
               "reboot_started_hard": "HARD_REBOOT"}


def status_of(s: Any) -> str:
    """``s`` has ``vm_state``, ``task_state`` and ``deleted_at`` (a Server row, or their values)."""
    if s.deleted_at is not None:
        return "DELETED"
    if s.task_state in TASK_STATUS and s.vm_state in ("active", "stopped", "error", "resized", "paused"):
        return TASK_STATUS[s.task_state]
    return STATUS.get(s.vm_state, s.vm_state.upper())
