"""Server-side limits against slow or idle clients, on every API port (uvicorn's HTTP protocol).

* ``[api] header_timeout`` (default 10 s): a connection must deliver a request's complete
  headers this long after it opens or after its previous answer; else it is closed (a
  "slowloris" client that trickles header bytes holds no connection for long).
* ``[api] keepalive_timeout`` (default 5 s): an idle keep-alive connection is closed after it.
* ``[api] max_connections`` (default 1000): past this many connections (or requests in flight)
  per process new requests get 503 at once instead of queueing without bound.
* ``[api] backlog`` (default 2048): the listening sockets' accept queue.

The first is added here to uvicorn's httptools protocol; the others are uvicorn's own options,
set by ``cumulo.server``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def protocol(header_timeout: float) -> type[HttpToolsProtocol]:
    class HeaderTimeoutProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with a deadline on reading each request's headers."""

        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            if header_timeout > 0:
                self._header_timer = self.loop.call_later(header_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

    return HeaderTimeoutProtocol
