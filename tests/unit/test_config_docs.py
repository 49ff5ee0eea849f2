"""The README's configuration table lists exactly the schema's keys, with their defaults and env variables."""

from __future__ import annotations

import re
from pathlib import Path

from coordinator.config import ENV_VARS, schema_keys

DOC = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `([a-z_.]+)` \|(.*)$")


def table() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    text = DOC.read_text("utf-8")
    section = text[text.index("<!-- config-table:start -->") : text.index("<!-- config-table:end -->")]
    for line in section.splitlines():
        match = ROW.match(line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split(" | ")]
    return rows


def test_the_config_table_lists_exactly_the_schema_keys() -> None:
    """No schema key is undocumented and no documented key is missing from the schema."""
    assert sorted(table()) == sorted(path for path, _ in schema_keys())


def test_the_config_table_shows_each_schema_default() -> None:
    """The default column matches the schema's default for every key that has one."""
    rows = table()
    for path, node in schema_keys():
        if "default" in node:
            default = node["default"]
            text = str(default).lower() if isinstance(default, bool) else str(default)
            assert rows[path][1] == f"`{text}`", path


def test_the_config_table_names_every_environment_variable() -> None:
    """Each environment variable appears in the row of the key it sets."""
    rows = table()
    for var, path in ENV_VARS.items():
        assert f"`{var}`" in rows[".".join(path)][2], var
