"""Tool argument checks: a fast path compiled from each inputSchema, with jsonschema to explain failures."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema

Check = Callable[[Any], bool]

_TYPES: dict[str, Check] = {
    "string": lambda v: type(v) is str,
    "boolean": lambda v: type(v) is bool,
    "integer": lambda v: type(v) is int or (type(v) is float and v.is_integer()),
    "number": lambda v: type(v) in (int, float),
    "array": lambda v: type(v) is list,
    "object": lambda v: type(v) is dict,
}
_SUPPORTED = frozenset(
    {
        "type",
        "description",
        "default",
        "title",
        "x-mcp-header",
        "minLength",
        "pattern",
        "enum",
        "minimum",
        "exclusiveMinimum",
        "items",
        "minItems",
    }
)


def _compile_property(schema: Mapping[str, Any]) -> Check | None:
    """A predicate equivalent to `schema`, or None when it uses a keyword this fast path does not know."""
    if not set(schema) <= _SUPPORTED or not isinstance(schema.get("type"), str):
        return None
    checks: list[Check] = [_TYPES[schema["type"]]]
    if "minLength" in schema:
        n = int(schema["minLength"])
        checks.append(lambda v: len(v) >= n)
    if "pattern" in schema:
        rx = re.compile(schema["pattern"])
        checks.append(lambda v: rx.search(v) is not None)
    if "enum" in schema:
        allowed = tuple(schema["enum"])
        checks.append(lambda v: v in allowed)
    if "minimum" in schema:
        low = schema["minimum"]
        checks.append(lambda v: v >= low)
    if "exclusiveMinimum" in schema:
        above = schema["exclusiveMinimum"]
        checks.append(lambda v: v > above)
    if "minItems" in schema:
        items_min = int(schema["minItems"])
        checks.append(lambda v: len(v) >= items_min)
    if "items" in schema:
        item = _compile_property(schema["items"])
        if item is None:
            return None
        checks.append(lambda v: all(item(x) for x in v))
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(check(v) for check in checks)


class ArgumentValidator:
    """Validates one tool's arguments against its inputSchema.

    `is_valid` runs plain-Python checks compiled from the schema (a few microseconds); schemas it
    cannot compile fall back to jsonschema. `first_error` asks jsonschema for the message to show.
    """

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self._jsonschema = jsonschema.Draft202012Validator(schema)
        self._required = tuple(schema.get("required", ()))
        self._closed = schema.get("additionalProperties") is False
        props: dict[str, Check] = {}
        compiled = schema.get("type") == "object" and set(schema) <= {
            "type",
            "properties",
            "required",
            "additionalProperties",
        }
        for name, prop in schema.get("properties", {}).items():
            check = _compile_property(prop)
            if check is None:
                compiled = False
                break
            props[name] = check
        self._props = props if compiled else None

    def is_valid(self, arguments: Mapping[str, Any]) -> bool:
        """True when `arguments` satisfy the schema."""
        props = self._props
        if props is None:
            return bool(self._jsonschema.is_valid(arguments))
        for name in self._required:
            if name not in arguments:
                return False
        for name, value in arguments.items():
            check = props.get(name)
            if check is None:
                if self._closed:
                    return False
                continue
            if not check(value):
                return False
        return True

    def first_error(self, arguments: Mapping[str, Any]) -> jsonschema.ValidationError | None:
        """The error to report, ordered by argument path; None when valid."""
        errors = sorted(self._jsonschema.iter_errors(arguments), key=lambda e: [str(p) for p in e.path])
        return errors[0] if errors else None
