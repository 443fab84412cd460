"""The routes of ``cumulo/volume/transfers.py`` (none yet)."""

from __future__ import annotations

from cumulo.core.http.app import Router
from cumulo.volume.service import VolumeService


def router(svc: VolumeService) -> Router:
    return Router()
