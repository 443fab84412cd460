"""Object storage's default policy rules, as Swift's keystoneauth decides: the account
``AUTH_<project_id>`` belongs to that project; its operator roles (member, admin) read and write
it, its reader reads it, ``ResellerAdmin`` does everything in every account.  Another project, or an
anonymous caller, gets in only through a container's ACL (``cumulo.object.acl``), which is asked
when the rule refuses.  The target is the account's ``project_id``.  Override any rule in the file
named by ``[policy] file``.
"""

from __future__ import annotations

from cumulo.core.http.authz import Rule

OWNER = "rule:swift_owner"
READER = "rule:swift_reader"

MESSAGE = "Policy doesn't allow {rule} to be performed."

RULES: list[Rule] = [
    Rule("swift_reseller", "role:ResellerAdmin", "A reseller admin: every account"),
    Rule("swift_owner", "(role:member or role:admin) and project_id:%(project_id)s or rule:swift_reseller",
         "An operator role (member, admin) of the account's project, or a reseller admin"),
    Rule("swift_reader", "role:reader and project_id:%(project_id)s or rule:swift_owner",
         "A reader of the account's project, or an owner"),
    Rule("object_store:info", "@", "GET /info (and HEAD): the cluster's capabilities, to anyone"),
    Rule("object_store:account:get", READER, "GET /v1/{account} (and HEAD)"),
    Rule("object_store:account:post", OWNER, "POST /v1/{account}"),
    Rule("object_store:container:put", OWNER, "PUT /v1/{account}/{container}"),
    Rule("object_store:container:get", READER, "GET /v1/{account}/{container} (and HEAD; or its read ACL)"),
    Rule("object_store:container:post", OWNER, "POST /v1/{account}/{container}"),
    Rule("object_store:container:delete", OWNER, "DELETE /v1/{account}/{container}"),
    Rule("object_store:object:get", READER,
         "GET /v1/{account}/{container}/{object} (and HEAD, a COPY's source; or the read ACL)"),
    Rule("object_store:object:put", OWNER,
         "PUT /v1/{account}/{container}/{object} (and a COPY's destination; or the write ACL)"),
    Rule("object_store:object:post", OWNER, "POST /v1/{account}/{container}/{object} (or the write ACL)"),
    Rule("object_store:object:delete", OWNER, "DELETE /v1/{account}/{container}/{object} (or the write ACL)"),
]
