"""The coordinator process serves MCP with aiohttp alone: no starlette, uvicorn or SDK server stack loaded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from coordinator.sdk_inbound import ERROR_CODE_HTTP_STATUS, Rejection, classify

HEAVY = ("starlette", "uvicorn", "mcp", "httpx2", "sse_starlette")


@pytest.mark.parametrize(
    "modules",
    [
        ["coordinator.protocol", "coordinator.transports.streamable_http", "coordinator.transports.sse"],
        ["coordinator.transports.stdio", "coordinator.transports.security", "coordinator.auth"],
        ["coordinator.cli", "coordinator.app"],
    ],
)
def test_importing_the_coordinator_loads_no_other_web_stack(modules: list[str]) -> None:
    """`import mcp` would pull in the SDK's client and server (starlette, uvicorn); the coordinator avoids it."""
    probe = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(done.stdout) == [], f"{modules} loaded {done.stdout.strip()}"


def test_the_sdk_ladder_is_loaded_from_the_installed_sdk() -> None:
    """sdk_inbound runs the SDK's own validation code: the same codes and messages as the SDK server."""
    verdict = classify({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}, None)
    assert isinstance(verdict, Rejection)
    assert verdict.code == -32602
    assert "_meta" in verdict.message
    assert ERROR_CODE_HTTP_STATUS[-32601] == 404
