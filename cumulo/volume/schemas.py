"""The Block Storage API's request bodies, as JSON Schema (checked before any handler runs).

Shapes follow Cinder's own schemas: sizes are positive integers (or their decimal strings), names
and descriptions bounded, metadata a map of strings; the volume create takes the keys Cinder's
clients send, null where Cinder allows null.  What needs the database (does the type exist, is
the quota left) stays in the service.  Each schema is registered on both paths, with and without
the project id (3.67).
"""

from __future__ import annotations

from cumulo.core.http.schema import (
    BOOLEAN_LIKE,
    UUID,
    Schema,
    integer,
    metadata,
    name,
    nullable,
    obj,
    string,
    wrapped,
)
from cumulo.volume.qos import LIMIT_KEYS as QOS_LIMIT_KEYS

SIZE: Schema = {"anyOf": [integer(1), {"type": "string", "pattern": r"^[1-9][0-9]{0,8}$"}],
                "description": "GiB, at least 1"}
NAME = nullable(string(255, 0, r"^[^\x00-\x1f\x7f]*$"))
DESCRIPTION = nullable(string(255, 0, r"^[^\x00]*$"))
ID_OR_NULL = nullable(string(255, 0))

VOLUME_CREATE = wrapped("volume", obj({
    "size": nullable(SIZE),
    "name": NAME, "display_name": NAME,
    "description": DESCRIPTION, "display_description": DESCRIPTION,
    "volume_type": ID_OR_NULL,
    "availability_zone": ID_OR_NULL,
    "metadata": nullable(metadata()),
    "snapshot_id": ID_OR_NULL,
    "source_volid": ID_OR_NULL,
    "imageRef": ID_OR_NULL, "image_id": ID_OR_NULL,
    "backup_id": ID_OR_NULL,
    "consistencygroup_id": ID_OR_NULL,
    "group_id": ID_OR_NULL,
    "multiattach": BOOLEAN_LIKE,
}, extra=True))
VOLUME_UPDATE = wrapped("volume", obj({
    "name": NAME, "display_name": NAME, "description": DESCRIPTION, "display_description": DESCRIPTION,
    "metadata": nullable(metadata()),
}, extra=False, max_properties=5))
MODE: Schema = {"type": "string", "enum": ["rw", "ro"]}
# what the compute node says about itself (os-brick's connector properties): an object, whose few
# keys Cumulo reads are checked, the rest kept as given
CONNECTOR: Schema = {"type": "object", "maxProperties": 64, "properties": {
    "host": nullable(string(255)), "mountpoint": nullable(string(255)), "mode": nullable(MODE),
    "ip": nullable(string(255)), "initiator": nullable(string(255)), "platform": nullable(string(255)),
    "os_type": nullable(string(255)), "multipath": nullable(BOOLEAN_LIKE)}}
NO_ARGS: Schema = {"type": ["object", "null"]}  # {"os-reserve": null} or {"os-reserve": {}}
VOLUME_ACTION = obj({
    "os-set_bootable": obj({"bootable": BOOLEAN_LIKE}, required=("bootable",)),
    "os-update_readonly_flag": obj({"readonly": BOOLEAN_LIKE}, required=("readonly",)),
    "os-reserve": NO_ARGS, "os-unreserve": NO_ARGS, "os-begin_detaching": NO_ARGS, "os-roll_detaching": NO_ARGS,
    "os-attach": obj({"instance_uuid": nullable(UUID), "mountpoint": string(255, 1),
                      "host_name": nullable(string(255)), "mode": MODE}, required=("mountpoint",)),
    "os-detach": nullable(obj({"attachment_id": nullable(UUID)})),
    "os-initialize_connection": obj({"connector": CONNECTOR}, required=("connector",)),
    "os-terminate_connection": obj({"connector": CONNECTOR}, required=("connector",)),
    "os-force_detach": nullable(obj({"attachment_id": nullable(UUID), "connector": nullable(CONNECTOR)})),
    # extend, upload, image metadata, the admin's actions
    "os-extend": obj({"new_size": SIZE}, required=("new_size",)),
    "os-volume_upload_image": obj({
        "image_name": string(255, 1), "disk_format": string(16, 1), "container_format": string(16, 1),
        "force": BOOLEAN_LIKE, "visibility": {"type": "string", "enum": ["public", "private", "shared",
                                                                         "community"]},
        "protected": BOOLEAN_LIKE}, required=("image_name",)),
    "os-set_image_metadata": obj({"metadata": metadata()}, required=("metadata",)),
    "os-unset_image_metadata": obj({"key": string(255, 1)}, required=("key",)),
    "os-show_image_metadata": NO_ARGS,
    "os-reset_status": obj({"status": string(32, 1), "attach_status": string(32, 1),
                            "migration_status": string(32, 1)}),
    "os-force_delete": NO_ARGS,
    # retype and the admin's migration (the transfers' piece)
    "os-retype": obj({"new_type": string(255, 1), "migration_policy": nullable(
        {"type": "string", "enum": ["never", "on-demand"]})}, required=("new_type",)),
    "os-migrate_volume": obj({"host": nullable(string(255)), "force_host_copy": BOOLEAN_LIKE,
                              "lock_volume": BOOLEAN_LIKE, "cluster": nullable(string(255))}),
}, extra=True, max_properties=1)
SNAPSHOT_ACTION = obj({
    "os-reset_status": obj({"status": string(32, 1)}, required=("status",)),
    "os-force_delete": NO_ARGS,
    "os-update_snapshot_status": obj({"status": string(32, 1), "progress": string(8, 1, r"^[0-9]{1,3}%$")},
                                     required=("status",)),
}, extra=True, max_properties=1)
METADATA = obj({"metadata": metadata()}, required=("metadata",))
META_ITEM = obj({"meta": metadata(1)}, required=("meta",))

TYPE_CREATE = wrapped("volume_type", obj({
    "name": name(255), "description": DESCRIPTION,
    "os-volume-type-access:is_public": BOOLEAN_LIKE, "is_public": BOOLEAN_LIKE,
    "extra_specs": metadata(),
}, required=("name",)))
TYPE_UPDATE = wrapped("volume_type", obj({
    "name": nullable(name(255)), "description": DESCRIPTION, "is_public": BOOLEAN_LIKE,
}, max_properties=3))
EXTRA_SPECS = obj({"extra_specs": metadata()}, required=("extra_specs",))

SNAPSHOT_CREATE = wrapped("snapshot", obj({
    "volume_id": nullable(string(36)),  # missing: Cinder's 404 for volume None
    "name": NAME, "display_name": NAME, "description": DESCRIPTION, "display_description": DESCRIPTION,
    "force": BOOLEAN_LIKE,
    "metadata": nullable(metadata()),
}))
SNAPSHOT_UPDATE = wrapped("snapshot", obj({
    "name": NAME, "display_name": NAME, "description": DESCRIPTION, "display_description": DESCRIPTION,
}, max_properties=4))

# attachments (3.27; mode from 3.54, the handler refuses it before)
ATTACHMENT_CREATE = wrapped("attachment", obj({
    "volume_uuid": UUID, "instance_uuid": nullable(UUID), "connector": nullable(CONNECTOR), "mode": MODE,
}, required=("volume_uuid",)))
ATTACHMENT_UPDATE = wrapped("attachment", obj({"connector": CONNECTOR}, required=("connector",)))
ATTACHMENT_ACTION = obj({"os-complete": {"type": ["object", "null"]}}, required=("os-complete",), max_properties=1)

QUOTA_LIMIT: Schema = {"anyOf": [integer(-1), {"type": "string", "pattern": r"^(-1|[0-9]{1,9})$"}]}
QUOTA_UPDATE = obj({"quota_set": {"type": "object", "propertyNames": {"type": "string", "maxLength": 255},
                                  "additionalProperties": QUOTA_LIMIT}}, required=("quota_set",))

# (method, path without the /v3 prefix) -> schema; registered for /v3/{project_id}<path> and /v3<path>
BODIES: dict[tuple[str, str], Schema] = {
    ("POST", "/volumes"): VOLUME_CREATE,
    ("PUT", "/volumes/{volume_id}"): VOLUME_UPDATE,
    ("POST", "/volumes/{volume_id}/action"): VOLUME_ACTION,
    ("POST", "/volumes/{volume_id}/metadata"): METADATA,
    ("PUT", "/volumes/{volume_id}/metadata"): METADATA,
    ("PUT", "/volumes/{volume_id}/metadata/{key}"): META_ITEM,
    ("POST", "/types"): TYPE_CREATE,
    ("PUT", "/types/{type_id}"): TYPE_UPDATE,
    ("POST", "/types/{type_id}/extra_specs"): EXTRA_SPECS,
    ("PUT", "/types/{type_id}/extra_specs/{key}"): {"type": "object", "maxProperties": 1,
                                                    "additionalProperties": string(255)},
    ("POST", "/snapshots"): SNAPSHOT_CREATE,
    ("PUT", "/snapshots/{snapshot_id}"): SNAPSHOT_UPDATE,
    ("POST", "/snapshots/{snapshot_id}/metadata"): METADATA,
    ("PUT", "/snapshots/{snapshot_id}/metadata"): METADATA,
    ("PUT", "/snapshots/{snapshot_id}/metadata/{key}"): META_ITEM,
    ("POST", "/snapshots/{snapshot_id}/action"): SNAPSHOT_ACTION,
    ("PUT", "/os-quota-sets/{target}"): QUOTA_UPDATE,
    ("PUT", "/os-quota-class-sets/{class_name}"): obj({"quota_class_set": QUOTA_UPDATE["properties"]["quota_set"]},
                                                       required=("quota_class_set",)),
    ("PUT", "/os-services/{action}"): obj({"host": string(255, 1), "binary": string(255, 1),
                                           "disabled_reason": string(255, 1, r"^[^\x00-\x1f\x7f]*$")},
                                          required=("host",), extra=True),
    ("POST", "/attachments"): ATTACHMENT_CREATE,
    ("PUT", "/attachments/{attachment_id}"): ATTACHMENT_UPDATE,
    ("POST", "/attachments/{attachment_id}/action"): ATTACHMENT_ACTION,
}

# QoS specs: the limits a front end applies must be non-negative integers (or their decimal
# strings: Cinder keeps every value as a string); other keys are a back-end's own, kept as given
QOS_LIMIT: Schema = {"anyOf": [integer(0, 10**15), {"type": "string", "pattern": r"^\s*[0-9]{1,16}\s*$"}]}
QOS_VALUE: Schema = {"anyOf": [string(255), integer(None, None)]}
QOS_KEYS: Schema = {"type": "object", "maxProperties": 128,
                    "propertyNames": {"type": "string", "minLength": 1, "maxLength": 255},
                    "properties": {"consumer": {"type": "string", "enum": ["front-end", "back-end", "both"]},
                                   **{key: QOS_LIMIT for key in sorted(QOS_LIMIT_KEYS)}},
                    "additionalProperties": QOS_VALUE}
QOS_CREATE = obj({"qos_specs": {**QOS_KEYS, "properties": {**QOS_KEYS["properties"], "name": name(255)},
                                "required": ["name"]}}, required=("qos_specs",))
PROJECT = obj({"project": string(255, 1)}, required=("project",))
BODIES.update({
    ("POST", "/qos-specs"): QOS_CREATE,
    ("PUT", "/qos-specs/{qos_id}"): obj({"qos_specs": QOS_KEYS}, required=("qos_specs",)),
    ("PUT", "/qos-specs/{qos_id}/delete_keys"): obj({"keys": {"type": "array", "uniqueItems": True, "maxItems": 128,
                                                              "items": string(255, 1)}}, required=("keys",)),
    ("POST", "/types/{type_id}/action"): {**obj({"addProjectAccess": PROJECT, "removeProjectAccess": PROJECT},
                                                max_properties=1), "minProperties": 1},
})

# backups: the container is a name in the backup store (one path part); metadata from 3.43 and the
# zone from 3.51, refused before by the handler
CONTAINER = nullable(string(255, 1, r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"))
BACKUP_CREATE = wrapped("backup", obj({
    "volume_id": UUID, "container": CONTAINER, "name": NAME, "description": DESCRIPTION,
    "incremental": BOOLEAN_LIKE, "force": BOOLEAN_LIKE, "snapshot_id": nullable(string(36)),
    "metadata": nullable(metadata()), "availability_zone": ID_OR_NULL,
}, required=("volume_id",)))
BACKUP_UPDATE = wrapped("backup", obj({
    "name": NAME, "description": DESCRIPTION, "metadata": nullable(metadata()),
}, max_properties=3))
BACKUP_RESTORE = wrapped("restore", obj({"volume_id": nullable(UUID), "name": NAME}))
BACKUP_ACTION: Schema = {**obj({
    "os-reset_status": obj({"status": string(32, 1)}, required=("status",)),
    "os-force_delete": NO_ARGS,
}, max_properties=1), "minProperties": 1}
BACKUP_IMPORT = wrapped("backup-record", obj({
    "backup_service": string(255, 1), "backup_url": string(65536, 1),
}, required=("backup_service", "backup_url")))
BODIES.update({
    ("POST", "/backups"): BACKUP_CREATE,
    ("PUT", "/backups/{backup_id}"): BACKUP_UPDATE,
    ("POST", "/backups/{backup_id}/restore"): BACKUP_RESTORE,
    ("POST", "/backups/{backup_id}/action"): BACKUP_ACTION,
    ("POST", "/backups/import_record"): BACKUP_IMPORT,
})

# volume transfers: no_snapshots on /volume-transfers from 3.55 (the handler refuses it elsewhere);
# the auth key a string or the integer some clients send, bounded
TRANSFER_CREATE = wrapped("transfer", obj({
    "volume_id": UUID, "name": NAME, "no_snapshots": BOOLEAN_LIKE,
}, required=("volume_id",)))
TRANSFER_ACCEPT = wrapped("accept", obj({
    "auth_key": {"anyOf": [string(255, 1), integer(0, 10**18)]},
}, required=("auth_key",)))
BODIES.update({
    ("POST", "/os-volume-transfer"): TRANSFER_CREATE,
    ("POST", "/volume-transfers"): TRANSFER_CREATE,
    ("POST", "/os-volume-transfer/{transfer_id}/accept"): TRANSFER_ACCEPT,
    ("POST", "/volume-transfers/{transfer_id}/accept"): TRANSFER_ACCEPT,
})

# generic volume groups (3.11-3.38), as Cinder's group_types, group_specs, groups and
# group_snapshots schemas: a group spec's key is Cinder's character set, its value a string or
# null; add_volumes and remove_volumes are comma-separated volume ids
GROUP_SPECS: Schema = {"type": "object", "maxProperties": 128, "additionalProperties": False,
                       "patternProperties": {r"^[a-zA-Z0-9-_:.]{1,255}$": nullable(string(255))}}
GROUP_TYPE_CREATE = wrapped("group_type", obj({
    "name": name(255), "description": DESCRIPTION, "is_public": BOOLEAN_LIKE, "group_specs": nullable(metadata()),
}, required=("name",)))
GROUP_TYPE_UPDATE = wrapped("group_type", obj({
    "name": nullable(string(255, 0, r"^[^\x00-\x1f\x7f]*$")), "description": DESCRIPTION, "is_public": BOOLEAN_LIKE,
}))
VOLUME_IDS = nullable(string(4096, 0, r"^[0-9a-zA-Z, -]*$"))
GROUP_CREATE = wrapped("group", obj({
    "name": NAME, "description": DESCRIPTION, "group_type": string(255, 1),
    "volume_types": {"type": "array", "minItems": 1, "maxItems": 64, "uniqueItems": True,
                     "items": string(255, 1)},
    "availability_zone": ID_OR_NULL,
}, required=("group_type", "volume_types")))
GROUP_UPDATE = wrapped("group", {**obj({
    "name": NAME, "description": DESCRIPTION, "add_volumes": VOLUME_IDS, "remove_volumes": VOLUME_IDS,
}), "minProperties": 1})
# one of the two sources (the handler checks that exactly one is given: the SDK sends the other as null)
GROUP_FROM_SRC = obj({"create-from-src": obj({
    "name": NAME, "description": DESCRIPTION, "group_snapshot_id": nullable(UUID), "source_group_id": nullable(UUID),
})}, required=("create-from-src",))
GROUP_ACTION: Schema = {**obj({
    "delete": obj({"delete-volumes": BOOLEAN_LIKE}),
    "reset_status": obj({"status": string(32, 1)}, required=("status",)),
    "enable_replication": {"type": "object"}, "disable_replication": {"type": "object"},
    "failover_replication": obj({"allow_attached_volume": BOOLEAN_LIKE,
                                 "secondary_backend_id": nullable(string(255))}),
    "list_replication_targets": {"type": "object"},
}, max_properties=1), "minProperties": 1}
GROUP_SNAPSHOT_CREATE = wrapped("group_snapshot", obj({
    "group_id": UUID, "name": NAME, "description": DESCRIPTION,
}, required=("group_id",)))
GROUP_SNAPSHOT_ACTION = obj({"reset_status": obj({"status": string(32, 1)}, required=("status",))},
                            required=("reset_status",))
BODIES.update({
    ("POST", "/group_types"): GROUP_TYPE_CREATE,
    ("PUT", "/group_types/{group_type_id}"): GROUP_TYPE_UPDATE,
    ("POST", "/group_types/{group_type_id}/group_specs"): obj({"group_specs": GROUP_SPECS},
                                                              required=("group_specs",)),
    ("PUT", "/group_types/{group_type_id}/group_specs/{key}"): {**GROUP_SPECS, "minProperties": 1,
                                                                "maxProperties": 1},
    ("POST", "/groups"): GROUP_CREATE,
    ("PUT", "/groups/{group_id}"): GROUP_UPDATE,
    ("POST", "/groups/action"): GROUP_FROM_SRC,
    ("POST", "/groups/{group_id}/action"): GROUP_ACTION,
    ("POST", "/group_snapshots"): GROUP_SNAPSHOT_CREATE,
    ("POST", "/group_snapshots/{group_snapshot_id}/action"): GROUP_SNAPSHOT_ACTION,
})

# a volume type's encryption spec (/types/{id}/encryption): Cinder's fields, bounded
ENCRYPTION_FIELDS: dict[str, Schema] = {
    "provider": string(255, 1), "cipher": nullable(string(255)),
    "key_size": nullable(integer(0, 65536)), "control_location": {"enum": ["front-end", "back-end"]}}
BODIES.update({
    ("POST", "/types/{type_id}/encryption"): obj({"encryption": obj(ENCRYPTION_FIELDS, required=("provider",))},
                                                 required=("encryption",)),
    ("PUT", "/types/{type_id}/encryption/{encryption_id}"): obj({"encryption": obj(ENCRYPTION_FIELDS)},
                                                                required=("encryption",)),
})
