"""The config schema: loading it, its keys and defaults, and validation errors that read like help."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from coordinator.durations import EXAMPLES


@cache
def schema() -> dict[str, Any]:
    """The coordinator config JSON Schema: package data when installed as a wheel, else the repo copy."""
    packaged = resources.files("coordinator").joinpath("schemas/config.schema.json")
    if packaged.is_file():
        text = packaged.read_text("utf-8")
    else:
        text = (Path(__file__).resolve().parent.parent / "schemas" / "config.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


def _resolve(node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        merged = dict(schema()["$defs"][ref.removeprefix("#/$defs/")])
        merged.update({k: v for k, v in node.items() if k != "$ref"})
        return merged
    return node


def schema_keys() -> list[tuple[str, Mapping[str, Any]]]:
    """Every leaf key of the schema as (`dotted.path`, its resolved schema), in schema order."""
    out: list[tuple[str, Mapping[str, Any]]] = []

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for name, raw in node.get("properties", {}).items():
            child = _resolve(raw)
            path = f"{prefix}{name}"
            if child.get("type") == "object" and "properties" in child:
                walk(child, path + ".")
            else:
                out.append((path, child))

    walk(schema(), "")
    return out


def defaults() -> dict[str, Any]:
    """The schema's defaults as a nested mapping (keys without a default are left out)."""
    tree: dict[str, Any] = {}
    for path, node in schema_keys():
        if "default" in node:
            set_path(tree, tuple(path.split(".")), node["default"])
    return tree


def set_path(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        child = tree.get(part)
        if not isinstance(child, dict):
            child = {}
            tree[part] = child
        tree = child
    tree[path[-1]] = value


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _dotted(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(err: jsonschema.ValidationError) -> str:
    """One help sentence for a schema violation, without its location."""
    value = err.instance
    schema_node = err.schema if isinstance(err.schema, Mapping) else {}
    kind = err.validator
    if kind == "pattern" and schema_node.get("pattern") == schema()["$defs"]["duration"]["pattern"]:
        return f"{value!r} is not a duration ({EXAMPLES})"
    if kind == "type" and schema_node.get("pattern") == schema()["$defs"]["duration"]["pattern"]:
        # YAML reads `5` as a number: say how to write a duration rather than "is not a string".
        return f"{value!r} is not a duration; give it a unit, e.g. '{value}s' ({EXAMPLES})"
    if kind == "type":
        wanted = schema_node.get("type")
        names = {
            "integer": "an integer",
            "string": "a string",
            "boolean": "true or false",
            "object": "a mapping",
            "array": "a list",
            "number": "a number",
        }
        if isinstance(wanted, str):
            return f"{value!r} is not {names.get(wanted, wanted)}"
        return f"{value!r} has the wrong type (expected {' or '.join(map(str, wanted or ()))})"
    if kind == "enum":
        return f"{value!r} is not one of: {', '.join(map(str, schema_node.get('enum') or ()))}"
    if kind == "minimum":
        return f"{value!r} is below the minimum {schema_node['minimum']}"
    if kind == "maximum":
        return f"{value!r} is above the maximum {schema_node['maximum']}"
    if kind == "minLength":
        return f"{value!r} must not be empty"
    if kind == "pattern":
        return f"{value!r} does not match the pattern {schema_node['pattern']}"
    if kind == "uniqueItems":
        return f"{value!r} lists an item twice"
    if kind == "oneOf" and err.absolute_path and list(err.absolute_path)[-1] == "url":
        return (
            f"{value!r} is not a worker URL or a list of them "
            "(examples: http://worker:8081, [http://a:8081, http://b:8081])"
        )
    return err.message


def error_lines(
    data: Mapping[str, Any], sources: Mapping[tuple[str, ...], str], file_label: str
) -> list[str]:
    lines: list[str] = []
    errors = sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    for err in errors:
        path = tuple(str(p) for p in err.absolute_path)
        label = file_label
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            # The unknown key itself names the location: "server.bogus: unknown key (...)".
            allowed = ", ".join(err.schema.get("properties", {})) if isinstance(err.schema, Mapping) else ""
            known = set(err.schema.get("properties", {})) if isinstance(err.schema, Mapping) else set()
            for extra in sorted(set(err.instance) - known):
                where = _dotted((*path, extra))
                src = sources.get((*path, extra), file_label)
                lines.append(f"{src}: {where}: unknown key (allowed: {allowed})")
            continue
        for depth in range(len(path), 0, -1):
            if path[:depth] in sources:
                label = sources[path[:depth]]
                break
        lines.append(f"{label}: {_dotted(path)}: {_describe(err)}")
    return lines
