"""Request-body checks for the identity API, with Keystone's wording and 400 status."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cumulo.core.http.faults import ValidationError
from cumulo.core.logging import is_secret_name

__all__ = ["ValidationError"]

MISSING = object()  # "not given", as distinct from null


def entity(body: Any, key: str) -> dict[str, Any]:
    """The ``{"user": {...}}`` wrapper's object, or 400."""
    if not isinstance(body, dict) or key not in body:
        raise ValidationError(f"Expecting to find {key} in request body - the server could not comply "
                              "with the request since it is either malformed or otherwise incorrect.")
    value = body[key]
    if not isinstance(value, dict):
        raise ValidationError(f"Invalid input for field '{key}': expected an object.")
    return value


def string(data: dict[str, Any], name: str, *, required: bool = False, nullable: bool = False,
           max_len: int = 255, min_len: int = 0) -> Any:
    value = data.get(name, MISSING)
    if value is MISSING:
        if required:
            raise ValidationError(f"'{name}' is a required property.")
        return MISSING
    if value is None:
        if nullable:
            return None
        raise ValidationError(f"Invalid input for field '{name}': None is not of type 'string'.")
    if not isinstance(value, str):
        shown = "***" if is_secret_name(name) else repr(value)  # a password is never echoed (nor logged)
        raise ValidationError(f"Invalid input for field '{name}': {shown} is not of type 'string'.")
    if len(value) > max_len:
        raise ValidationError(f"Invalid input for field '{name}': the value is longer than {max_len}.")
    if len(value) < min_len or (required and min_len == 0 and name in ("name",) and not value.strip()):
        raise ValidationError(f"Invalid input for field '{name}': the value is too short.")
    return value


def name(data: dict[str, Any], required: bool = True, max_len: int = 255) -> Any:
    value = string(data, "name", required=required, max_len=max_len, min_len=1)
    if isinstance(value, str) and not value.strip():
        raise ValidationError("Invalid input for field 'name': the name cannot be empty or blank.")
    return value


def boolean(data: dict[str, Any], name_: str) -> Any:
    value = data.get(name_, MISSING)
    if value is MISSING:
        return MISSING
    if not isinstance(value, bool):
        raise ValidationError(f"Invalid input for field '{name_}': {value!r} is not of type 'boolean'.")
    return value


def obj(data: dict[str, Any], name_: str, nullable: bool = False) -> Any:
    value = data.get(name_, MISSING)
    if value is MISSING or (value is None and nullable):
        return value
    if not isinstance(value, dict):
        raise ValidationError(f"Invalid input for field '{name_}': {value!r} is not of type 'object'.")
    return value


def timestamp(data: dict[str, Any], name_: str) -> Any:
    value = data.get(name_, MISSING)
    if value is MISSING or value is None:
        return value
    if not isinstance(value, str):
        raise ValidationError(f"Invalid input for field '{name_}': expected an ISO 8601 time.")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"Invalid input for field '{name_}': {value!r} is not an ISO 8601 time.") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def present(value: Any) -> bool:
    return value is not MISSING


def pick(data: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Keep the checked values that were given: pick(d, name=name(d), enabled=boolean(d, 'enabled'))."""
    return {k: v for k, v in fields.items() if v is not MISSING}


def extras(data: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """Attributes outside the schema, kept as Keystone keeps them."""
    return {k: v for k, v in data.items() if k not in known}


def time_out(value: dt.datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
