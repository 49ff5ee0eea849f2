"""Tool argument validation: the compiled fast path agrees with jsonschema on every tool's schema."""

from __future__ import annotations

import itertools
from typing import Any

import jsonschema
import pytest

from coordinator.arguments import ArgumentValidator
from coordinator.tool_schemas import TOOLS

SAMPLES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2.5,
    3.0,
    "",
    "a",
    "a.py",
    "../x",
    "bad id!",
    "sess_1-A",
    "utf-8",
    "base64",
    "latin-1",
    [],
    ["x"],
    ["", "y"],
    [1],
    {},
    {"k": "v"},
]


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t["name"])
def test_fast_check_agrees_with_jsonschema_for_every_tool(tool: dict[str, Any]) -> None:
    """For one- and two-argument combinations of many sample values, both validators give the same verdict."""
    schema = tool["inputSchema"]
    fast = ArgumentValidator(schema)
    slow = jsonschema.Draft202012Validator(schema)
    names = [*schema.get("properties", {}), "unknown"]
    cases: list[dict[str, Any]] = [{}]
    for name in names:
        cases += [{name: value} for value in SAMPLES]
    for first, second in itertools.combinations(names, 2):
        cases += [{first: a, second: b} for a in SAMPLES[::3] for b in SAMPLES[1::3]]
    for case in cases:
        assert fast.is_valid(case) == slow.is_valid(case), case
        assert (fast.first_error(case) is None) == slow.is_valid(case), case


def test_first_error_orders_by_argument_path() -> None:
    """The reported error is deterministic: the first argument path in sort order."""
    validator = ArgumentValidator(next(t for t in TOOLS if t["name"] == "fs.read")["inputSchema"])
    error = validator.first_error({"path": 1, "offset": "x"})
    assert error is not None
    assert list(error.path) == ["offset"]
