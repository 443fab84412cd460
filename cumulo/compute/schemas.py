"""The Compute API's request bodies, as JSON Schema (checked before any handler runs).

Shapes follow Nova's own schemas: unknown keys are refused where Nova refuses them (server
create and update, flavors, key pairs, server groups, aggregates, services), numbers are bounded,
names are printable.  What needs the database or the microversion (does the flavor exist, is
``hostname`` allowed at this version) stays in the handlers.
"""

from __future__ import annotations

from cumulo.core.http.schema import (
    BOOLEAN,
    BOOLEAN_LIKE,
    ID,
    UUID,
    Schema,
    array,
    integer,
    metadata,
    name,
    nullable,
    obj,
    string,
    wrapped,
)

# One request makes at most this many servers: a bound before the quota is even looked at.
MAX_SERVERS_PER_REQUEST = 1000
V = "/v2.1"

IP: Schema = {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
ACCESS_IP: Schema = {"type": ["string", "null"], "maxLength": 64}
COUNT: Schema = {"anyOf": [integer(1, MAX_SERVERS_PER_REQUEST),
                           {"type": "string", "pattern": r"^(1000|[1-9][0-9]{0,2})$"}]}
TAG = string(60, 1, r"^[^,/\x00-\x1f]*$")
DISK_CONFIG: Schema = {"type": "string", "enum": ["AUTO", "MANUAL"]}
DESCRIPTION = nullable(string(255, 0, r"^[^\x00]*$"))
HOST = string(255, 1, r"^[^\x00-\x1f]*$")
# server and snapshot metadata: bounded far past the default quota (128), so that going past the
# quota is the 403 Nova answers, not a schema error
SERVER_METADATA = metadata(1024)

NETWORK = obj({"uuid": string(255), "port": nullable(string(255)), "fixed_ip": IP, "tag": TAG})
SERVER_CREATE = obj({
    "server": obj({
        "name": name(),
        "imageRef": {"type": ["string", "null"], "maxLength": 2048},
        "flavorRef": {"anyOf": [string(2048, 1), integer(0)]},
        "adminPass": string(255, 0),
        "metadata": SERVER_METADATA,
        "networks": {"anyOf": [{"type": "string", "enum": ["auto", "none"]}, array(NETWORK, 100)]},
        "OS-DCF:diskConfig": DISK_CONFIG,
        "accessIPv4": ACCESS_IP,
        "accessIPv6": ACCESS_IP,
        "personality": array({"type": "object"}, 100),  # held to the injected_files quota: a 403 past it
        "availability_zone": name(),
        "block_device_mapping": array({"type": "object"}, 64),
        "block_device_mapping_v2": array(obj({
            "boot_index": {"type": ["integer", "string", "null"], "maxLength": 10},
            "uuid": nullable(string(255)), "source_type": string(32), "destination_type": string(32),
            "volume_size": nullable(integer(0, as_string=True)), "delete_on_termination": BOOLEAN_LIKE,
            "device_name": nullable(string(255)), "guest_format": nullable(string(255)),
            "disk_bus": nullable(string(255)), "device_type": nullable(string(255)),
            "volume_type": nullable(string(255)), "no_device": {}, "tag": TAG,
            "connection_info": string(16384), "snapshot_id": string(255), "volume_id": string(255),
            "image_id": string(255)}, extra=True), 64),
        "config_drive": {"anyOf": [BOOLEAN, string(255, 0)]},
        "key_name": name(),
        "min_count": COUNT,
        "max_count": COUNT,
        "return_reservation_id": BOOLEAN_LIKE,
        "security_groups": array(obj({"name": name()}, required=("name",)), 100),
        "user_data": nullable(string(90000, 0, r"^[A-Za-z0-9+/=\s]*$")),
        "description": DESCRIPTION,
        "tags": array(TAG, 50),
        "trusted_image_certificates": nullable(array(string(255, 1), 50)),
        "host": HOST,
        "hypervisor_hostname": HOST,
        "hostname": string(255, 1),
    }, required=("name", "flavorRef")),
    "os:scheduler_hints": obj({}, extra=True, max_properties=64),
    "OS-SCH-HNT:scheduler_hints": obj({}, extra=True, max_properties=64),
}, required=("server",))

SERVER_UPDATE = wrapped("server", obj({
    "name": name(), "accessIPv4": ACCESS_IP, "accessIPv6": ACCESS_IP, "OS-DCF:diskConfig": DISK_CONFIG,
    "description": DESCRIPTION, "hostname": string(255, 1)}))

# One action per body, its argument shaped as Nova's schemas say; unknown actions reach the
# handler, which names them in its 400.
ANY_ARG: Schema = {"type": ["object", "null"]}
ACTIONS: dict[str, Schema] = {
    "reboot": obj({"type": {"type": "string", "enum": ["HARD", "SOFT", "hard", "soft"]}}, required=("type",)),
    "resize": obj({"flavorRef": {"anyOf": [string(255, 1), integer(0)]}, "OS-DCF:diskConfig": DISK_CONFIG},
                  required=("flavorRef",)),
    "rebuild": obj({"imageRef": string(2048, 1), "name": name(), "adminPass": string(255, 0),
                    "metadata": SERVER_METADATA, "preserve_ephemeral": BOOLEAN, "OS-DCF:diskConfig": DISK_CONFIG,
                    "accessIPv4": ACCESS_IP, "accessIPv6": ACCESS_IP, "personality": array({"type": "object"}, 100),
                    "key_name": nullable(name()), "user_data": nullable(string(90000, 0)),
                    "description": DESCRIPTION, "trusted_image_certificates": nullable(array(string(255), 50)),
                    "hostname": string(255, 1)}, required=("imageRef",)),
    "createImage": obj({"name": name(), "metadata": SERVER_METADATA}, required=("name",)),
    "os-getConsoleOutput": obj({"length": {"type": ["integer", "string", "null"], "maxLength": 12,
                                           "minimum": -1, "maximum": 2**31 - 1}}),
    "os-resetState": obj({"state": {"type": "string", "enum": ["active", "error"]}}, required=("state",)),
    "addSecurityGroup": obj({"name": name()}, required=("name",)),
    "removeSecurityGroup": obj({"name": name()}, required=("name",)),
    "lock": {"type": ["object", "null"], "properties": {"locked_reason": string(255, 0)}},
    "unlock": ANY_ARG,
    "migrate": {"type": ["object", "null"], "properties": {"host": nullable(HOST)}},
    "os-migrateLive": obj({"host": nullable(HOST), "block_migration": {"anyOf": [BOOLEAN_LIKE, {"enum": ["auto"]}]},
                           "disk_over_commit": BOOLEAN_LIKE, "force": BOOLEAN_LIKE}, required=("host",)),
    "evacuate": obj({"host": HOST, "adminPass": string(255, 0), "onSharedStorage": BOOLEAN_LIKE,
                     "force": BOOLEAN_LIKE, "targetState": string(32)}),
    "unshelve": {"type": ["object", "null"], "properties": {"availability_zone": nullable(name()),
                                                            "host": HOST}},
}
SERVER_ACTION: Schema = {"type": "object", "minProperties": 1, "maxProperties": 1,
                         "propertyNames": {"maxLength": 64}, "properties": ACTIONS}

FLAVOR_CREATE = wrapped("flavor", obj({
    "name": name(),
    # a string or a number, as Nova takes it (the handler checks the characters of either)
    "id": {"type": ["string", "number", "null"], "minLength": 1, "maxLength": 255,
           "pattern": r"^(?! )[a-zA-Z0-9. _-]+(?<! )$"},
    "ram": integer(1, as_string=True),
    "vcpus": integer(1, as_string=True),
    "disk": integer(0, as_string=True),
    "OS-FLV-EXT-DATA:ephemeral": integer(0, as_string=True),
    "swap": {"anyOf": [integer(0, as_string=True), {"type": "string", "enum": [""]}]},
    "rxtx_factor": {"type": ["number", "string"], "minimum": 0, "exclusiveMinimum": 0, "maximum": 3.40282e38,
                    "maxLength": 40},
    "os-flavor-access:is_public": BOOLEAN_LIKE,
    "description": DESCRIPTION,
}, required=("name", "ram", "vcpus", "disk")))
FLAVOR_UPDATE = wrapped("flavor", obj({"description": DESCRIPTION}, required=("description",)))
EXTRA_SPECS = obj({"extra_specs": metadata(255)}, required=("extra_specs",))
ONE_SPEC: Schema = {**metadata(1), "minProperties": 1}
TENANT = obj({"tenant": string(255, 1)}, required=("tenant",))
FLAVOR_ACTION: Schema = {"type": "object", "minProperties": 1, "maxProperties": 1,
                         "properties": {"addTenantAccess": TENANT, "removeTenantAccess": TENANT}}

KEYPAIR = wrapped("keypair", obj({
    "name": string(255, 1, r"^[a-zA-Z0-9 @._-]+$"), "type": {"type": "string", "enum": ["ssh", "x509"]},
    "public_key": string(16384, 0), "user_id": string(255, 1)}, required=("name",)))

QUOTA_VALUE = integer(-1, 2**31 - 1, as_string=True)
QUOTA_SET = wrapped("quota_set", {"type": "object", "maxProperties": 32, "properties": {"force": BOOLEAN_LIKE},
                                  "propertyNames": {"maxLength": 64}, "additionalProperties": QUOTA_VALUE})
QUOTA_CLASS_SET = wrapped("quota_class_set", {"type": "object", "maxProperties": 32,
                                              "propertyNames": {"maxLength": 64},
                                              "additionalProperties": QUOTA_VALUE})

SERVER_GROUP = wrapped("server_group", obj({
    "name": name(),
    "policies": array({"type": "string", "enum": ["affinity", "anti-affinity", "soft-affinity",
                                                  "soft-anti-affinity"]}, 1, 1),
    "policy": {"type": "string", "enum": ["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"]},
    "rules": obj({"max_server_per_host": integer(1, as_string=True)}),
}, required=("name",)))

AGGREGATE = wrapped("aggregate", obj({"name": name(), "availability_zone": nullable(name())},
                                     required=("name",)))
AGGREGATE_UPDATE = wrapped("aggregate", obj({"name": name(), "availability_zone": nullable(name())}))
AGGREGATE_ACTION: Schema = {"type": "object", "minProperties": 1, "maxProperties": 1, "properties": {
    "add_host": obj({"host": HOST}, required=("host",)),
    "remove_host": obj({"host": HOST}, required=("host",)),
    "set_metadata": obj({"metadata": {"type": "object", "maxProperties": 128,
                                      "propertyNames": {"maxLength": 255, "minLength": 1},
                                      "additionalProperties": {"type": ["string", "null"], "maxLength": 255}}},
                        required=("metadata",)),
}}

SERVICE_UPDATE = obj({"status": {"type": "string", "enum": ["enabled", "disabled"]},
                      "disabled_reason": nullable(string(255, 0)), "forced_down": BOOLEAN,
                      "host": HOST, "binary": string(255, 1)})

SECURITY_GROUP = wrapped("security_group", obj({"name": name(), "description": string(255, 0)},
                                               extra=True))
PORT = {"anyOf": [integer(-1, 65535), {"type": "string", "pattern": r"^-?[0-9]{1,5}$"}, {"type": "null"}]}
SECURITY_GROUP_RULE = wrapped("security_group_rule", obj({
    "parent_group_id": string(255, 1), "ip_protocol": nullable(string(32)), "from_port": PORT, "to_port": PORT,
    "cidr": nullable(string(64)), "group_id": nullable(string(255))}, extra=True))

VOLUME_ATTACHMENT = wrapped("volumeAttachment", obj({
    "volumeId": UUID, "device": nullable(string(255, 0, r"^(/dev/[a-z0-9]+)?$")), "tag": TAG,
    "delete_on_termination": BOOLEAN}, required=("volumeId",)))
VOLUME_ATTACHMENT_UPDATE = wrapped("volumeAttachment", obj({
    "volumeId": UUID, "device": nullable(string(255, 0)), "tag": TAG, "delete_on_termination": BOOLEAN,
    "serverId": UUID, "id": UUID}, required=("volumeId",)))

SCHEMAS: dict[tuple[str, str], Schema] = {
    ("POST", f"{V}/servers"): SERVER_CREATE,
    ("PUT", f"{V}/servers/{{server_id}}"): SERVER_UPDATE,
    ("POST", f"{V}/servers/{{server_id}}/action"): SERVER_ACTION,
    ("POST", f"{V}/servers/{{server_id}}/metadata"): obj({"metadata": SERVER_METADATA}, required=("metadata",)),
    ("PUT", f"{V}/servers/{{server_id}}/metadata"): obj({"metadata": SERVER_METADATA}, required=("metadata",)),
    ("PUT", f"{V}/servers/{{server_id}}/metadata/{{key}}"): obj({"meta": {**metadata(1), "minProperties": 1}},
                                                                required=("meta",)),
    ("PUT", f"{V}/servers/{{server_id}}/tags"): obj({"tags": array(TAG, 50)}, required=("tags",)),
    ("POST", f"{V}/flavors"): FLAVOR_CREATE,
    ("PUT", f"{V}/flavors/{{flavor_id}}"): FLAVOR_UPDATE,
    ("POST", f"{V}/flavors/{{flavor_id}}/os-extra_specs"): EXTRA_SPECS,
    ("PUT", f"{V}/flavors/{{flavor_id}}/os-extra_specs/{{key}}"): ONE_SPEC,
    ("POST", f"{V}/flavors/{{flavor_id}}/action"): FLAVOR_ACTION,
    ("POST", f"{V}/os-keypairs"): KEYPAIR,
    ("PUT", f"{V}/os-quota-sets/{{project_id}}"): QUOTA_SET,
    ("PUT", f"{V}/os-quota-class-sets/{{name}}"): QUOTA_CLASS_SET,
    ("POST", f"{V}/os-server-groups"): SERVER_GROUP,
    ("POST", f"{V}/os-aggregates"): AGGREGATE,
    ("PUT", f"{V}/os-aggregates/{{agg_id}}"): AGGREGATE_UPDATE,
    ("POST", f"{V}/os-aggregates/{{agg_id}}/action"): AGGREGATE_ACTION,
    ("PUT", f"{V}/os-services/{{service_id}}"): SERVICE_UPDATE,
    ("POST", f"{V}/os-security-groups"): SECURITY_GROUP,
    ("PUT", f"{V}/os-security-groups/{{group_id}}"): SECURITY_GROUP,
    ("POST", f"{V}/os-security-group-rules"): SECURITY_GROUP_RULE,
    ("POST", f"{V}/servers/{{server_id}}/os-volume_attachments"): VOLUME_ATTACHMENT,
    ("PUT", f"{V}/servers/{{server_id}}/os-volume_attachments/{{volume_id}}"): VOLUME_ATTACHMENT_UPDATE,
}

__all__ = ["SCHEMAS", "MAX_SERVERS_PER_REQUEST", "ID", "UUID"]
