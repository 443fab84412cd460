"""The Placement API's request bodies, as JSON Schema (checked before any handler runs).

Placement's own schemas refuse unknown keys everywhere; so do these.  Amounts are bounded
integers, generations are integers, names follow the resource class and trait rules.
"""

from __future__ import annotations

from cumulo.core.http.schema import Schema, array, integer, nullable, obj, string

UUID = string(36, 1, r"^[0-9a-fA-F-]{32,36}$")
GENERATION = integer(0, None)
AMOUNT = integer(1, 2**31 - 1)
CLASS_NAME = string(255, 1, r"^[A-Z0-9_]+$")
INVENTORY_FIELDS: dict[str, Schema] = {
    "total": AMOUNT, "reserved": integer(0), "min_unit": AMOUNT, "max_unit": AMOUNT, "step_size": AMOUNT,
    "allocation_ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 3.40282e38},
}
INVENTORY = obj(INVENTORY_FIELDS, required=("total",))
ALLOCATION = obj({"resources": {"type": "object", "maxProperties": 128, "propertyNames": {"maxLength": 255},
                                "additionalProperties": AMOUNT},
                  "generation": nullable(GENERATION)}, required=("resources",))
ALLOCATIONS_BY_PROVIDER: Schema = {"type": "object", "maxProperties": 1000, "propertyNames": {"maxLength": 36},
                                   "additionalProperties": ALLOCATION}
OLD_ALLOCATIONS = array(obj({"resource_provider": obj({"uuid": UUID}, required=("uuid",)),
                             "resources": ALLOCATION["properties"]["resources"]}, required=("resources",)), 1000)
CONSUMER_FIELDS: dict[str, Schema] = {
    "project_id": string(255, 1), "user_id": string(255, 1), "consumer_generation": nullable(GENERATION),
    "consumer_type": string(255, 1, r"^[A-Z0-9_]+$"),
    "mappings": {"type": "object", "maxProperties": 1000, "additionalProperties": array(UUID, 1000)},
}
CONSUMER = obj({"allocations": {"anyOf": [ALLOCATIONS_BY_PROVIDER, OLD_ALLOCATIONS]}, **CONSUMER_FIELDS},
               required=("allocations",))
PROVIDER = obj({"name": string(200, 1), "uuid": UUID, "parent_provider_uuid": nullable(UUID)}, required=("name",))

SCHEMAS: dict[tuple[str, str], Schema] = {
    ("POST", "/resource_providers"): PROVIDER,
    ("PUT", "/resource_providers/{uuid}"): obj({"name": string(200, 1), "parent_provider_uuid": nullable(UUID)},
                                               required=("name",)),
    ("PUT", "/resource_providers/{uuid}/inventories"): obj({
        "resource_provider_generation": GENERATION,
        "inventories": {"type": "object", "maxProperties": 256, "propertyNames": {"maxLength": 255},
                        "additionalProperties": INVENTORY}}, required=("resource_provider_generation", "inventories")),
    ("POST", "/resource_providers/{uuid}/inventories"): obj(
        {"resource_class": CLASS_NAME, "resource_provider_generation": GENERATION, **INVENTORY_FIELDS},
        required=("resource_class", "total")),
    ("PUT", "/resource_providers/{uuid}/inventories/{rc}"): obj(
        {"resource_provider_generation": GENERATION, **INVENTORY_FIELDS},
        required=("resource_provider_generation", "total")),
    ("PUT", "/resource_providers/{uuid}/traits"): obj({"traits": array(string(255, 1), 1000),
                                                       "resource_provider_generation": GENERATION},
                                                      required=("traits", "resource_provider_generation")),
    ("PUT", "/resource_providers/{uuid}/aggregates"): {"anyOf": [
        array(UUID, 1000), obj({"aggregates": array(UUID, 1000), "resource_provider_generation": GENERATION},
                               required=("aggregates", "resource_provider_generation"))]},
    ("PUT", "/allocations/{consumer}"): CONSUMER,
    ("POST", "/allocations"): {"type": "object", "maxProperties": 1000, "propertyNames": {"maxLength": 36},
                               "additionalProperties": CONSUMER},
}
