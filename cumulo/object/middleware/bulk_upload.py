"""The switch for archive extraction (``PUT ?extract-archive=tar|tar.gz|tar.bz2``) and its
``bulk_upload`` section in ``GET /info``.  ``[object] disabled_features = bulk_upload`` turns it
off; the feature itself, its limits and its answers are described and done in ``bulk.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from cumulo.object.middleware import bulk

if TYPE_CHECKING:
    from cumulo.core.config import Config
    from cumulo.object.api import Call
    from cumulo.object.middleware import Handler

NAME = "bulk_upload"
ORDER = 21  # just after bulk delete, as one Swift middleware has both


def capabilities(cfg: Config) -> dict[str, Any] | None:
    return bulk.upload_capabilities()


async def handle(call: Call, app: Handler) -> Response:
    if call.request.method == "PUT" and "extract-archive" in call.request.query_params:
        return await bulk.extract_archive(call, app)
    return await app(call)
