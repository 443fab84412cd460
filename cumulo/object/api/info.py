"""``GET /info``: Swift's capabilities document, listing only what runs here (no middleware
section appears for a feature that is off); and ``GET /crossdomain.xml``, the cross-domain policy
Flash and Silverlight clients ask for (Swift's crossdomain middleware with its default policy:
every domain may read; ``[object] disabled_features = ["crossdomain"]`` turns it off, a 404)."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from cumulo.object.api import common as c
from cumulo.object.service import ObjectService


def answer(request: Request, svc: ObjectService, features: dict[str, object]) -> Response:
    doc = {
        "swift": {
            "version": "2.38.0",
            "max_file_size": svc.cfg.object.max_file_size,
            "max_meta_name_length": c.MAX_META_NAME,
            "max_meta_value_length": c.MAX_META_VALUE,
            "max_meta_count": c.MAX_META_COUNT,
            "max_meta_overall_size": c.MAX_META_OVERALL,
            "max_header_size": c.MAX_HEADER_SIZE,
            "max_object_name_length": c.MAX_OBJECT_NAME,
            "max_container_name_length": c.MAX_CONTAINER_NAME,
            "max_account_name_length": c.MAX_ACCOUNT_NAME,
            "container_listing_limit": c.LISTING_LIMIT,
            "account_listing_limit": c.LISTING_LIMIT,
            "extra_header_count": 0,
            "account_autocreate": True,
            "allow_account_management": False,
            "strict_cors_mode": True,
            "policies": [{"name": "Policy-0", "aliases": "Policy-0", "default": True}],
        },
        "keystoneauth": {},
        **features,
    }
    off = {name.strip() for name in svc.cfg.object.disabled_features}
    # quotas.py and crossdomain below: sections without settings
    for name in ("container_quotas", "account_quotas", "crossdomain"):
        if name not in off:
            doc[name] = {}
    body = json.dumps(doc).encode()
    return Response(b"" if request.method == "HEAD" else body, media_type="application/json; charset=utf-8",
                    headers={"Content-Length": str(len(body))})


CROSSDOMAIN = ('<?xml version="1.0"?>\n'
               '<!DOCTYPE cross-domain-policy SYSTEM "http://www.adobe.com/xml/dtds/cross-domain-policy.dtd" >\n'
               '<cross-domain-policy>\n<allow-access-from domain="*" secure="false" />\n</cross-domain-policy>')


def crossdomain(request: Request, svc: ObjectService) -> Response:
    if "crossdomain" in {name.strip() for name in svc.cfg.object.disabled_features}:
        raise c.SwiftError(404)
    if request.method not in ("GET", "HEAD"):
        raise c.SwiftError(405, headers={"Allow": "GET, HEAD"})
    body = CROSSDOMAIN.encode()
    return Response(b"" if request.method == "HEAD" else body, media_type="application/xml; charset=utf-8",
                    headers={"Content-Length": str(len(body))})
