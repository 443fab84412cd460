"""Volume transfers: the ``VolumeService`` half of Cinder's os-volume-transfer and
/volume-transfers (3.55), and os-retype (it inherits ``TransfersMixin``).
"""

from __future__ import annotations


class TransfersMixin:
    """Empty until its routes land."""
