"""(being written)"""

from __future__ import annotations

from cumulo.core.http.app import Router
from cumulo.identity.api.common import IdentityAPI


def router(api: IdentityAPI) -> Router:
    return Router()
