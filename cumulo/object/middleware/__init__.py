"""The features in front of the Swift v1 handlers, as Swift's proxy pipeline has them: TempURL,
FormPost, static websites, large objects, versioning, expiry and the rest.  Each feature is one
module of this package, and its docstring is the operator's manual for it.  A module defines:

``NAME``
    the feature's name: its section in ``GET /info``, and what ``[object] disabled_features``
    lists to turn it off;
``ORDER``
    its place in the pipeline: a lower ORDER sees the request first (and the response last);
``capabilities(cfg) -> dict | None``
    its ``/info`` section, or None for none;
``async handle(call, app) -> Response``
    the feature itself: it answers the call, or passes it on with ``await app(call)`` (a changed
    call too: ``with_headers``), and may change the answer on the way back.

A feature that authorizes a request by other means than a token (a TempURL's signature, a
FormPost's) says so with ``call.granted``; the policy and ACL checks then let it through, for
what the feature allows (it must check the method and path itself).  Features reach data through
``call.svc`` (the ObjectService) and the store, not through sub-requests over HTTP.

The modules are found by listing this package, so adding a feature is adding its module."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from cumulo.core.config import Config

if TYPE_CHECKING:
    from cumulo.object.api import Call

Handler = Callable[["Call"], Awaitable[Response]]

__all__ = ["Handler", "Pipeline", "features", "with_headers"]


def features(cfg: Config) -> list[ModuleType]:
    """The feature modules that are on, in pipeline order."""
    off = {name.strip() for name in cfg.object.disabled_features}
    found = []
    for entry in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{entry.name}")
        if module.NAME not in off:
            found.append(module)
    return sorted(found, key=lambda m: (m.ORDER, m.NAME))


class Pipeline:
    """The handlers wrapped by each feature that is on, the first in ORDER outermost."""

    def __init__(self, cfg: Config, app: Handler) -> None:
        self.modules = features(cfg)
        self.cfg = cfg
        handler = app
        for module in reversed(self.modules):
            handler = _bind(module, handler)
        self.handler = handler

    def capabilities(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for module in self.modules:
            section = module.capabilities(self.cfg)
            if section is not None:
                out[module.NAME] = section
        return out

    async def __call__(self, call: Call) -> Response:
        return await self.handler(call)


def _bind(module: ModuleType, app: Handler) -> Handler:
    async def handler(call: Call) -> Response:
        return await module.handle(call, app)  # type: ignore[no-any-return]

    handler.__name__ = f"{module.NAME}_handler"
    return handler


def with_headers(call: Call, changes: dict[str, str | None], *, method: str | None = None,
                 path: str | None = None) -> Call:
    """The same call with some request headers set (or removed, for None), and optionally
    another method or path (the account, container and object are parsed again from the path).
    The body is the original request's."""
    scope = dict(call.request.scope)
    lowered = {k.lower(): v for k, v in changes.items()}
    headers = [(k, v) for k, v in scope["headers"] if k.decode("latin-1") not in lowered]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in lowered.items() if v is not None]
    scope["headers"] = headers
    fields: dict[str, Any] = {}
    if method is not None:
        scope["method"] = method
    if path is not None:
        scope["path"] = path
        scope["raw_path"] = path.encode("utf-8")
        parts = path.split("/", 4)
        fields["container"] = parts[3] if len(parts) > 3 else ""
        fields["obj"] = parts[4] if len(parts) > 4 else ""
    request = Request(scope, call.request.receive)
    return dataclasses.replace(call, request=request, **fields)
