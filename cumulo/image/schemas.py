"""JSON schemas served at /v2/schemas/*, describing Cumulo's image and member documents, and the
schemas request bodies are checked against before any handler runs (``REQUEST_SCHEMAS``)."""

from __future__ import annotations

from typing import Any

from cumulo.core.http.schema import Schema, array, obj, string
from cumulo.image.service import CONTAINER_FORMATS, DISK_FORMATS, VISIBILITIES

_NULLABLE_STRING = {"type": ["null", "string"]}
IMAGE_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "description": "An identifier for the image",
           "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"},
    "name": {"type": ["null", "string"], "maxLength": 255, "description": "Descriptive name for the image"},
    "status": {"type": "string", "readOnly": True, "description": "Status of the image",
               "enum": ["queued", "saving", "active", "killed", "deleted", "uploading", "importing",
                        "pending_delete", "deactivated"]},
    "visibility": {"type": "string", "enum": list(VISIBILITIES), "description": "Scope of image accessibility"},
    "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
    "os_hidden": {"type": "boolean", "description": "If true, image will not appear in default image list."},
    "checksum": {**_NULLABLE_STRING, "readOnly": True, "maxLength": 32, "description": "md5 hash of image data"},
    "os_hash_algo": {**_NULLABLE_STRING, "readOnly": True, "maxLength": 64,
                     "description": "Algorithm of os_hash_value"},
    "os_hash_value": {**_NULLABLE_STRING, "readOnly": True, "maxLength": 128,
                      "description": "Secure hash of image data"},
    "owner": {**_NULLABLE_STRING, "maxLength": 255, "description": "Owner of the image"},
    "size": {"type": ["null", "integer"], "readOnly": True, "description": "Size of image file in bytes"},
    "virtual_size": {"type": ["null", "integer"], "readOnly": True, "description": "Virtual size of image in bytes"},
    "container_format": {"type": ["null", "string"], "enum": [None, *CONTAINER_FORMATS],
                         "description": "Format of the container"},
    "disk_format": {"type": ["null", "string"], "enum": [None, *DISK_FORMATS],
                    "description": "Format of the disk"},
    "created_at": {"type": "string", "readOnly": True, "description": "Date and time of image registration"},
    "updated_at": {"type": "string", "readOnly": True, "description": "Date and time of the last modification"},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}, "description": "List of strings"},
    "direct_url": {"type": "string", "readOnly": True, "description": "URL to access the image file"},
    "min_ram": {"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
    "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
    "self": {"type": "string", "readOnly": True, "description": "An image self url"},
    "stores": {"type": "string", "readOnly": True,
               "description": "Store in which image data resides. Only present when the operator has enabled "
                              "multiple stores."},
    "file": {"type": "string", "readOnly": True, "description": "An image file url"},
    "schema": {"type": "string", "readOnly": True, "description": "An image schema url"},
    "kernel_id": {**_NULLABLE_STRING, "description": "ID of image stored in Glance that should be used as the "
                                                     "kernel when booting an AMI-style image."},
    "ramdisk_id": {**_NULLABLE_STRING, "description": "ID of image stored in Glance that should be used as the "
                                                      "ramdisk when booting an AMI-style image."},
}
IMAGE = {"name": "image", "properties": IMAGE_PROPERTIES, "additionalProperties": {"type": "string"},
         "links": [{"href": "{self}", "rel": "self"}, {"href": "{file}", "rel": "enclosure"},
                   {"href": "{schema}", "rel": "describedby"}]}
MEMBER = {"name": "member", "properties": {
    "image_id": {"type": "string", "description": "An identifier for the image"},
    "member_id": {"type": "string", "description": "An identifier for the image member (tenantId)"},
    "status": {"type": "string", "enum": ["pending", "accepted", "rejected"],
               "description": "The status of this image member"},
    "created_at": {"type": "string", "description": "Date and time of image member creation"},
    "updated_at": {"type": "string", "description": "Date and time of last modification of image member"},
    "schema": {"type": "string", "readOnly": True}}}
_ID_PATTERN = "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"
TASK_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "pattern": _ID_PATTERN, "description": "An identifier for the task"},
    "type": {"type": "string", "enum": ["import", "api_image_import", "location_import"],
             "description": "The type of task represented by this content"},
    "status": {"type": "string", "enum": ["pending", "processing", "success", "failure"],
               "description": "The current status of this task"},
    "input": {"type": ["null", "object"], "description": "The parameters required by task, JSON blob"},
    "result": {"type": ["null", "object"], "description": "The result of current task, JSON blob"},
    "owner": {"type": "string", "description": "An identifier for the owner of this task"},
    "message": {"type": "string", "description": "Human-readable informative message only included when "
                                                 "appropriate (usually on failure)"},
    "image_id": {"type": "string", "description": "Image associated with the task"},
    "request_id": {"type": "string", "description": "Human-readable informative request-id"},
    "user_id": {"type": "string", "description": "User associated with the task"},
    "expires_at": {"type": ["null", "string"], "description": "Datetime when this resource would be subject to "
                                                              "removal"},
    "created_at": {"type": "string", "description": "Datetime when this resource was created"},
    "updated_at": {"type": "string", "description": "Datetime when this resource was updated"},
    "self": {"type": "string"}, "schema": {"type": "string"},
}
TASK = {"name": "task", "properties": TASK_PROPERTIES,
        "links": [{"href": "{self}", "rel": "self"}, {"href": "{schema}", "rel": "describedby"}]}
SCHEMAS: dict[str, dict[str, Any]] = {
    "task": TASK,
    "tasks": {"name": "tasks", "properties": {"tasks": {"type": "array", "items": TASK},
                                              "schema": {"type": "string"}, "first": {"type": "string"},
                                              "next": {"type": "string"}},
              "links": [{"href": "{schema}", "rel": "describedby"}, {"href": "{first}", "rel": "first"},
                        {"href": "{next}", "rel": "next"}]},
    "image": IMAGE,
    "images": {"name": "images", "properties": {"images": {"type": "array", "items": IMAGE},
                                                "schema": {"type": "string"}, "first": {"type": "string"},
                                                "next": {"type": "string"}},
               "links": [{"href": "{first}", "rel": "first"}, {"href": "{next}", "rel": "next"},
                         {"href": "{schema}", "rel": "describedby"}]},
    "member": MEMBER,
    "members": {"name": "members", "properties": {"members": {"type": "array", "items": MEMBER},
                                                  "schema": {"type": "string"}},
                "links": [{"href": "{schema}", "rel": "describedby"}]},
}


def _metadef(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "properties": properties, "additionalProperties": False}


_TIME = {"type": "string", "readOnly": True, "format": "date-time"}
_NS = {"namespace": {"type": "string", "maxLength": 80}, "display_name": {"type": "string", "maxLength": 80},
       "description": {"type": "string", "maxLength": 500}, "visibility": {"type": "string",
                                                                           "enum": ["public", "private"]},
       "protected": {"type": "boolean"}, "owner": {"type": "string", "maxLength": 255},
       "created_at": _TIME, "updated_at": _TIME, "schema": {"type": "string", "readOnly": True},
       "self": {"type": "string", "readOnly": True}}
_ASSOC = {"name": {"type": "string", "maxLength": 80}, "prefix": {"type": "string", "maxLength": 80},
          "properties_target": {"type": "string", "maxLength": 80}, "created_at": _TIME, "updated_at": _TIME}
_OBJ = {"name": {"type": "string", "maxLength": 80}, "description": {"type": "string"},
        "required": {"type": "array", "items": {"type": "string"}}, "properties": {"type": "object"},
        "created_at": _TIME, "updated_at": _TIME, "schema": {"type": "string"}, "self": {"type": "string"}}
_PROP = {"name": {"type": "string", "maxLength": 80}, "title": {"type": "string"},
         "type": {"type": "string", "enum": ["array", "boolean", "integer", "number", "object", "string", None]},
         "description": {"type": "string"}, "enum": {"type": "array"}, "default": {}}
_TAG = {"name": {"type": "string", "maxLength": 255}, "created_at": _TIME, "updated_at": _TIME}
SCHEMAS.update({
    "metadefs/namespace": _metadef("namespace", _NS),
    "metadefs/namespaces": _metadef("namespaces", {"namespaces": {"type": "array", "items": _NS},
                                                   "first": {"type": "string"}, "schema": {"type": "string"}}),
    "metadefs/resource_type": _metadef("resource_type_association", _ASSOC),
    "metadefs/resource_types": _metadef("resource_type_associations",
                                        {"resource_type_associations": {"type": "array", "items": _ASSOC}}),
    "metadefs/object": _metadef("object", _OBJ),
    "metadefs/objects": _metadef("objects", {"objects": {"type": "array", "items": _OBJ}}),
    "metadefs/property": _metadef("property", _PROP),
    "metadefs/properties": _metadef("properties", {"properties": {"type": "object"}}),
    "metadefs/tag": _metadef("tag", _TAG),
    "metadefs/tags": _metadef("tags", {"tags": {"type": "array", "items": _TAG}}),
})


# -- request bodies: Glance lets an image carry any extra property, so image bodies are open
# objects, but bounded (at most 128 attributes, keys of at most 255 characters); the attribute
# rules (read-only and reserved names, formats, visibility) stay in the handlers.

OPEN: Schema = {"type": "object", "maxProperties": 128, "propertyNames": {"maxLength": 255}}
# an operation is RFC 6902's {"op": ..., "path": ...} or Glance's compact {"replace": "/name", "value": ...}
# (tempest and older clients send the compact form)
PATCH_OP = {**obj({"op": {"type": "string", "enum": ["add", "remove", "replace"]}, "path": string(300, 1),
                   "add": string(300, 1), "replace": string(300, 1), "remove": string(300, 1), "value": {}}),
            "anyOf": [{"required": ["op", "path"]}, {"required": ["add"]}, {"required": ["replace"]},
                      {"required": ["remove"]}]}

REQUEST_SCHEMAS: dict[tuple[str, str], Schema] = {
    ("POST", "/v2/images"): OPEN,
    ("PATCH", "/v2/images/{image_id}"): array(PATCH_OP, 256),
    ("POST", "/v2/images/{image_id}/members"): obj({"member": string(255, 1)}, required=("member",)),
    # openstacksdk (and so `openstack image set --accept`) sends the member id along with the status
    ("PUT", "/v2/images/{image_id}/members/{member_id}"): obj({"status": string(32, 1), "member": string(255)},
                                                              required=("status",)),
    ("POST", "/v2/images/{image_id}/import"): {"type": "object", "maxProperties": 16,
                                               "properties": {"method": {"type": "object", "maxProperties": 16}}},
    ("POST", "/v2/tasks"): OPEN,
}
