"""/v3/policies: Keystone's legacy store of policy blobs (opaque to identity, kept for clients).

Cumulo's own authorization uses the rules of ``[policy] file``; these records do not change it.
"""

from __future__ import annotations

from cumulo.core.http.app import Router
from cumulo.identity import models as m
from cumulo.identity.api.common import IdentityAPI
from cumulo.identity.api.crud import Resource, register, required_string


def router(api: IdentityAPI) -> Router:
    r = Router()
    register(r, api, Resource(
        model=m.Policy, member="policy", collection="policies", path="/v3/policies",
        fields={"type": required_string("type"), "blob": required_string("blob", 1 << 20)},
        read_rule="identity:policy_read", write_rule="identity:policy_write", filters=("type",)))
    return r
