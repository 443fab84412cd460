"""Groups, group types and group snapshots: the ``VolumeService`` half of Cinder's
/group_types, /groups and /group_snapshots (3.11-3.20; it inherits ``GroupsMixin``).
"""

from __future__ import annotations


class GroupsMixin:
    """Empty until its routes land."""
