"""QoS specs and a volume type's project access: the ``VolumeService`` half of Cinder's
/qos-specs and os-volume-type-access (it inherits ``QosMixin``).
"""

from __future__ import annotations


class QosMixin:
    """Empty until its routes land."""
