#!/usr/bin/env python3
"""Generate the values table of chart/README.md from the `# --` comments of chart/values.yaml.

Every key of values.yaml must carry a `# --` sentence (continued by plain `#` lines); an undocumented key
is an error. The table sits between the README's `values-table` markers. `--check` exits 1, changing
nothing, when the README's table is stale.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
VALUES = ROOT / "chart" / "values.yaml"
README = ROOT / "chart" / "README.md"
START = "<!-- values-table:start -->"
END = "<!-- values-table:end -->"
KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z0-9_.\-/]+):(?P<value>.*)$")


class UndocumentedKeyError(ValueError):
    """A values.yaml key without a `# --` comment."""


def parse_docs(text: str) -> dict[tuple[str, ...], str]:
    """Map each key path of a values.yaml text to its `# --` description, in file order."""
    docs: dict[tuple[str, ...], str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    skip_deeper_than: int | None = None
    list_indent: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped:
            continue
        if skip_deeper_than is not None:
            if indent > skip_deeper_than:
                continue
            skip_deeper_than = None
        if list_indent is not None:
            if indent > list_indent or (indent == list_indent and stripped.startswith("-")):
                continue
            list_indent = None
        if stripped.startswith("# --"):
            pending = [stripped[4:].strip()]
            continue
        if stripped.startswith("#"):
            if pending is not None:
                pending.append(stripped.lstrip("#").strip())
            continue
        if stripped.startswith("-"):
            list_indent = indent
            continue
        match = KEY.match(line)
        if not match:
            raise ValueError(f"values.yaml:{number}: cannot parse {line!r}")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = (*[key for _, key in stack], match["key"])
        if pending is None:
            dotted = ".".join(path)
            raise UndocumentedKeyError(f"values.yaml:{number}: {dotted} has no '# --' comment; add one")
        docs[path] = " ".join(part for part in pending if part)
        pending = None
        value = match["value"].strip()
        if value in ("|", "|-", ">", ">-"):
            skip_deeper_than = indent
        stack.append((indent, match["key"]))
    return docs


def _lookup(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(values_text: str) -> str:
    """The markdown values table of a values.yaml text."""
    docs = parse_docs(values_text)
    tree = yaml.safe_load(values_text)
    rows = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for path, description in docs.items():
        value = _lookup(tree, path)
        default = "" if isinstance(value, dict) and value else f"`{json.dumps(value, ensure_ascii=False)}`"
        rows.append(f"| `{'.'.join(path)}` | {_type(value)} | {_cell(default)} | {_cell(description)} |")
    return "\n".join(rows) + "\n"


def render_readme(readme: str, values_text: str) -> str:
    """The README text with its values table replaced."""
    head, _, rest = readme.partition(START)
    _, found, tail = rest.partition(END)
    if not found:
        raise ValueError(f"{README} lacks the {START} ... {END} markers")
    return f"{head}{START}\n{table(values_text)}{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the README's table is stale")
    args = parser.parse_args()
    current = README.read_text()
    try:
        rendered = render_readme(current, VALUES.read_text())
    except UndocumentedKeyError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.check:
        if rendered != current:
            print(f"{README} values table is stale; run: python3 ci/chart-readme.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
