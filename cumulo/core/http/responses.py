"""The responses every API answers with: JSON rendered by orjson, and 204 No Content.

Its own module so that the middlewares (request ids, microversions) and the app factory can all
answer in JSON without importing one another."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSON(Response):
    """A JSON response rendered with orjson (the hot paths answer many of these)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def no_content(headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=204, headers=headers)
