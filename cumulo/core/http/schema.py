"""Request bodies checked before any work: JSON Schema per route, plus limits every body obeys.

A service lists its schemas as ``{("POST", "/v2.1/servers"): {...}, ...}`` (method and route
template, as the router declares them) and hands them to ``create_app``; a request to such a route
is parsed and validated before its handler runs, and a body that does not fit gets a 400 naming the
field and what is wrong with it.  Every JSON body, with or without a schema, must also:

* be sent as JSON (``Content-Type`` naming json, or none at all): otherwise 415;
* nest at most ``MAX_DEPTH`` levels and hold no NUL character in any string or key: otherwise 400.

The same schemas make each API's OpenAPI document (``openapi_document``), published on the
operator port at ``/openapi.json``; the fuzzer in the test-suite reads it.

Schemas are compiled once with fastjsonschema (generated Python code, microseconds per body).
The fragments below (``name``, ``uuid``, ``count``...) keep the services' schemas short and alike.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Callable, Mapping
from typing import Any

import fastjsonschema

from cumulo.core.http import faults
from cumulo.core.logging import is_secret_name, redact

MAX_DEPTH = 32
Schema = dict[str, Any]
Validator = Callable[[Any], Any]
_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


def compile_schema(schema: Schema) -> Validator:
    return fastjsonschema.compile(schema)  # type: ignore[no-any-return]


def validate(validator: Validator, data: Any) -> None:
    """Raise a 400 naming the field when ``data`` does not fit the compiled schema."""
    try:
        validator(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise faults.ValidationError(_message(exc)) from None


# a value in a fault is shown in short: a repr of a whole 100 KiB body (and its redaction) cost
# tens of milliseconds of the event loop for every refused request
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 120
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 6
_SHORT.maxlevel = 3


def _message(exc: fastjsonschema.JsonSchemaValueException) -> str:
    field = ".".join(str(p) for p in (exc.path or [])[1:]) or "the request body"
    detail = exc.message
    if detail.startswith(exc.name or "\0"):
        detail = detail[len(exc.name):].lstrip()
    if exc.rule == "additionalProperties" and isinstance(exc.value, dict):
        extra = sorted(set(exc.value) - set((exc.definition or {}).get("properties") or {}))
        detail = "has unexpected keys " + ", ".join(repr(k) for k in extra[:5])
    elif exc.rule == "pattern" and isinstance(exc.value, str) and any(ord(c) < 32 for c in exc.value):
        detail = "must not hold control characters"
    elif exc.rule in ("anyOf", "oneOf") and isinstance(exc.rule_definition, list):
        detail = "must be " + " or ".join(_describe(alt) for alt in exc.rule_definition[:4])
    # the message is logged and shown: never echo a password or secret, nor one inside an object
    value = "***" if is_secret_name(field) else redact(_SHORT.repr(exc.value))
    if len(value) > 80:
        value = value[:77] + "..."
    return f"Invalid input for field/attribute {field}. Value: {value}. It {detail}."


def _describe(schema: Any) -> str:
    """A schema in a few words, for faults: 'an integer from 1 to 1000', 'a string of at most 255'."""
    if not isinstance(schema, dict):
        return "a valid value"
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"][:8])
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    low, high = schema.get("minimum"), schema.get("maximum")
    if kind == "integer" and low is not None and high is not None:
        return f"an integer from {low} to {high}"
    if kind == "string" and "pattern" in schema:
        return f"a string matching {schema['pattern']}"
    if kind == "string" and "maxLength" in schema:
        return f"a string of at most {schema['maxLength']} characters"
    return {"integer": "an integer", "number": "a number", "boolean": "a boolean", "object": "an object",
            "array": "a list", "string": "a string", "null": "null"}.get(str(kind), "a valid value")


def check_content_type(content_type: str | None) -> None:
    """JSON bodies come as JSON: no Content-Type (clients of old) or one that names json."""
    if not content_type:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media and "json" not in media:
        raise faults.UnsupportedMediaType(
            f"The Content-Type {media!r} is not supported here: send the body as application/json.")


def check_shape(data: Any) -> None:
    """Depth and NUL limits, in one pass without recursion (a body is at most a few hundred KiB)."""
    if not isinstance(data, (dict, list)):
        if isinstance(data, str) and "\0" in data:
            raise faults.ValidationError("The request body holds a NUL character in a string.")
        return
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:  # only containers are pushed: a list of 50,000 strings costs one pass over it
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise faults.ValidationError(f"The request body nests deeper than {MAX_DEPTH} levels.")
        if isinstance(node, dict):
            for key in node:
                if "\0" in key:
                    raise faults.ValidationError("The request body holds a NUL character in a key.")
            values: Any = node.values()
        else:
            values = node
        for value in values:
            if isinstance(value, (dict, list)):
                stack.append((value, depth + 1))
            elif value.__class__ is str and "\0" in value:
                raise faults.ValidationError("The request body holds a NUL character in a string.")


# --- fragments the services' schemas are made of ---------------------------------------------

NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"


def string(max_length: int = 255, min_length: int = 0, pattern: str | None = None) -> Schema:
    s: Schema = {"type": "string", "minLength": min_length, "maxLength": max_length}
    if pattern:
        s["pattern"] = pattern
    return s


def name(max_length: int = 255, min_length: int = 1) -> Schema:
    """A resource name: printable, bounded (Nova and Neutron refuse control characters)."""
    return string(max_length, min_length, NO_CONTROL)


def nullable(s: Schema) -> Schema:
    types = s.get("type")
    if isinstance(types, str):
        return {**s, "type": [types, "null"]}
    if isinstance(types, list):
        return {**s, "type": [*types, "null"]}
    return {"anyOf": [s, {"type": "null"}]}


def integer(minimum: int | None = 0, maximum: int | None = 2**31 - 1, as_string: bool = False) -> Schema:
    """An integer within bounds; ``as_string`` also takes its decimal string ("3"), as Nova does."""
    s: Schema = {"type": "integer"}
    if minimum is not None:
        s["minimum"] = minimum
    if maximum is not None:
        s["maximum"] = maximum
    if not as_string:
        return s
    # as a string, one digit fewer than the maximum has: never past a 32-bit column, whatever a
    # handler does with it (the integer form carries the exact bounds)
    width = max(len(str(maximum if maximum is not None else 2**31 - 1)) - 1, 1)
    digits = rf"^-?[0-9]{{1,{width}}}$" if minimum is None or minimum < 0 else rf"^[0-9]{{1,{width}}}$"
    return {"anyOf": [s, {"type": "string", "pattern": digits}]}


BOOLEAN: Schema = {"type": "boolean"}
BOOLEAN_LIKE: Schema = {"anyOf": [BOOLEAN, {"type": "string", "enum": [
    "true", "false", "True", "False", "TRUE", "FALSE", "1", "0", "yes", "no", "on", "off"]}]}
UUID: Schema = string(36, 1, r"^[0-9a-fA-F-]{1,36}$")
ID: Schema = string(255, 1, NO_CONTROL)  # ids that need not be UUIDs (flavor ids, names used as ids)


def obj(properties: Mapping[str, Schema], required: tuple[str, ...] = (), extra: bool | Schema = False,
        max_properties: int | None = None) -> Schema:
    s: Schema = {"type": "object", "properties": dict(properties), "additionalProperties": extra}
    if required:
        s["required"] = list(required)
    if max_properties is not None:
        s["maxProperties"] = max_properties
    return s


def array(items: Schema, max_items: int = 1000, min_items: int = 0, unique: bool = False) -> Schema:
    s: Schema = {"type": "array", "items": items, "maxItems": max_items, "minItems": min_items}
    if unique:
        s["uniqueItems"] = True
    return s


def metadata(max_items: int = 128, key_length: int = 255, value_length: int = 255) -> Schema:
    """A map of strings to strings (server metadata, flavor extra specs, ...)."""
    return {"type": "object", "maxProperties": max_items,
            "propertyNames": {"type": "string", "minLength": 1, "maxLength": key_length},
            "additionalProperties": {"type": "string", "maxLength": value_length}}


def wrapped(key: str, inner: Schema) -> Schema:
    """``{"server": {...}}``: the one top-level key most OpenStack bodies have."""
    return obj({key: inner}, required=(key,), extra=True)


# --- OpenAPI -------------------------------------------------------------------------------------

def openapi_document(service: str, routes: list[tuple[str, list[str]]],
                     schemas: Mapping[tuple[str, str], Schema], server_url: str = "") -> dict[str, Any]:
    """An OpenAPI 3.1 document of one API: every route and method, with its body schema."""
    paths: dict[str, Any] = {}
    for path, methods in routes:
        params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                  for p in _PARAM.findall(path)]
        item = paths.setdefault(_PARAM.sub(r"{\1}", path), {})
        for method in methods:
            if method == "HEAD":
                continue
            op: dict[str, Any] = {"operationId": f"{method.lower()} {path}",
                                  "responses": {"default": {"description": "the service's answer or fault"}}}
            if params:
                op["parameters"] = params
            schema = schemas.get((method, path))
            if schema is not None:
                op["requestBody"] = {"required": True,
                                     "content": {"application/json": {"schema": schema}}}
            item[method.lower()] = op
    doc: dict[str, Any] = {"openapi": "3.1.0", "info": {"title": f"Cumulo {service} API", "version": "1"},
                           "paths": paths}
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


def find_openapi(app: Any) -> Callable[[str], dict[str, Any]] | None:
    """The ``openapi`` of an app made by ``create_app``, through any middleware wrapped around it."""
    for _ in range(10):
        if app is None:
            return None
        found = getattr(app, "openapi", None)
        if callable(found):
            return found  # type: ignore[no-any-return]
        app = getattr(app, "app", None)
    return None
