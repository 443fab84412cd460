"""The Identity API's request bodies, as JSON Schema (checked before any handler runs).

Keystone keeps unknown attributes of users, projects, groups and the like as "extra", so those
bodies stay open; what is bounded is the shape: names and ids of bounded length without control
characters, passwords of at most 4096 characters (Keystone's default), bounded lists.
"""

from __future__ import annotations

from cumulo.core.http.schema import BOOLEAN, Schema, array, name, nullable, obj, string

ID = string(64, 1, r"^[^\x00-\x1f/]*$")
NAME = name(255)
PASSWORD = string(4096, 0)
DOMAIN_REF = obj({"id": ID, "name": NAME}, extra=True)
USER_REF = obj({"id": ID, "name": NAME, "password": PASSWORD, "domain": DOMAIN_REF}, extra=True)
SCOPE: Schema = {"anyOf": [{"type": "string", "enum": ["unscoped"]}, obj({
    "project": obj({"id": ID, "name": NAME, "domain": DOMAIN_REF}, extra=True),
    "domain": DOMAIN_REF, "system": obj({"all": BOOLEAN}, extra=True),
    "OS-TRUST:trust": obj({"id": ID}, extra=True)}, extra=True)]}
AUTH = obj({"auth": obj({
    "identity": obj({
        "methods": array(string(64, 1), 8, 1),
        "password": obj({"user": USER_REF}, extra=True),
        "token": obj({"id": string(2048, 1)}, extra=True),
        "application_credential": obj({"id": ID, "name": NAME, "secret": string(4096, 1), "user": USER_REF},
                                      extra=True),
        "totp": {"type": "object"},
    }, required=("methods",), extra=True),
    "scope": SCOPE,
}, required=("identity",), extra=True)}, required=("auth",), extra=True)


def entity(member: str, **fields: Schema) -> Schema:
    return obj({member: obj(fields, extra=True)}, required=(member,), extra=True)


DESCRIPTION = nullable(string(65535, 0))
TAGS = array(string(255, 1, r"^[^,/\x00-\x1f]*$"), 80)
SCHEMAS: dict[tuple[str, str], Schema] = {
    ("POST", "/v3/auth/tokens"): AUTH,
    ("POST", "/v3/users"): entity("user", name=NAME, password=nullable(PASSWORD), domain_id=ID,
                                  default_project_id=nullable(ID), enabled=BOOLEAN, description=DESCRIPTION),
    ("PATCH", "/v3/users/{user_id}"): entity("user", name=NAME, password=nullable(PASSWORD), domain_id=ID,
                                             default_project_id=nullable(ID), enabled=BOOLEAN,
                                             description=DESCRIPTION),
    ("POST", "/v3/users/{user_id}/password"): obj({"user": obj({"password": PASSWORD,
                                                                "original_password": PASSWORD},
                                                               required=("password", "original_password"),
                                                               extra=True)}, required=("user",), extra=True),
    ("POST", "/v3/groups"): entity("group", name=NAME, domain_id=ID, description=DESCRIPTION),
    ("PATCH", "/v3/groups/{group_id}"): entity("group", name=NAME, domain_id=ID, description=DESCRIPTION),
    ("POST", "/v3/projects"): entity("project", name=name(64), domain_id=nullable(ID), parent_id=nullable(ID),
                                     enabled=BOOLEAN, is_domain=BOOLEAN, description=DESCRIPTION, tags=TAGS),
    ("PATCH", "/v3/projects/{project_id}"): entity("project", name=name(64), enabled=BOOLEAN,
                                                   description=DESCRIPTION, tags=TAGS),
    ("PUT", "/v3/projects/{project_id}/tags"): obj({"tags": TAGS}, required=("tags",), extra=True),
    ("POST", "/v3/domains"): entity("domain", name=name(64), enabled=BOOLEAN, description=DESCRIPTION),
    ("PATCH", "/v3/domains/{domain_id}"): entity("domain", name=name(64), enabled=BOOLEAN,
                                                 description=DESCRIPTION),
    ("POST", "/v3/roles"): entity("role", name=NAME, domain_id=nullable(ID), description=DESCRIPTION),
    ("PATCH", "/v3/roles/{role_id}"): entity("role", name=NAME, domain_id=nullable(ID), description=DESCRIPTION),
    ("POST", "/v3/users/{user_id}/application_credentials"): entity(
        "application_credential", name=NAME, secret=nullable(string(4096, 1)), description=DESCRIPTION,
        expires_at=nullable(string(64)), unrestricted=BOOLEAN, roles=array({"type": "object"}, 100),
        access_rules=array({"type": "object"}, 100)),
}
