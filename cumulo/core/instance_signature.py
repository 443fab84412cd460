"""The ``X-Instance-ID-Signature`` between the metadata proxy (network's dataplane) and the
metadata API (compute): HMAC-SHA256 of the instance id with the shared metadata secret, as
Neutron's metadata agent signs for Nova's metadata service."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, instance_id: str) -> str:
    """The signature, in hex, the proxy sends beside ``X-Instance-ID``."""
    return hmac.new(secret.encode(), instance_id.encode(), hashlib.sha256).hexdigest()


def verify(secret: str, instance_id: str, signature: str) -> bool:
    """Whether ``signature`` is the instance id's signature (compared in constant time)."""
    return hmac.compare_digest(sign(secret, instance_id), signature)
