"""The MCP Inspector CLI (Node, `@modelcontextprotocol/inspector --cli`) against the real coordinator.

It covers Streamable HTTP, legacy SSE and stdio. The Inspector lives in /work/main/.tools
(`make deps-system`); without it (or without node) these tests skip and say so.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from coordinator_fixtures import CoordinatorProcess, coordinator_command, hermetic_env, start_coordinator

REPO = Path(__file__).resolve().parents[2]
INSPECTOR = REPO / ".tools" / "node_modules" / ".bin" / "mcp-inspector"


@pytest.fixture(scope="module")
def coord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoordinatorProcess]:
    proc = start_coordinator(tmp_path_factory.mktemp("inspector"))
    yield proc
    assert proc.stop() == 0


def inspector(*args: str) -> dict[str, Any]:
    """Run the Inspector CLI and parse its JSON output."""
    if not INSPECTOR.exists() or shutil.which("node") is None:
        pytest.skip("MCP Inspector CLI not installed (make deps-system installs it into .tools)")
    done = subprocess.run(
        [str(INSPECTOR), "--cli", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=hermetic_env(),
    )
    assert done.returncode == 0, done.stderr + done.stdout
    start = done.stdout.index("{")
    parsed: dict[str, Any] = json.loads(done.stdout[start:])
    return parsed


async def test_inspector_cli_calls_echo_over_streamable_http(coord: CoordinatorProcess) -> None:
    """`mcp-inspector --cli URL --transport http --method tools/call` gets the echo back."""
    out = await asyncio.to_thread(
        inspector,
        coord.mcp_url,
        "--transport",
        "http",
        "--method",
        "tools/call",
        "--tool-name",
        "echo",
        "--tool-arg",
        "text=hi",
    )
    assert out["content"][0]["text"] == "hi"
    assert out["isError"] is False


async def test_inspector_cli_lists_tools_over_legacy_sse(coord: CoordinatorProcess) -> None:
    """The Inspector's SSE transport lists the coordinator's tools."""
    out = await asyncio.to_thread(inspector, f"{coord.url}/sse", "--transport", "sse", "--method", "tools/list")
    assert "fs.read" in {tool["name"] for tool in out["tools"]}


async def test_inspector_cli_calls_echo_over_stdio(tmp_path: Path) -> None:
    """The Inspector spawns the coordinator in stdio mode, chosen by MCP_TRANSPORT as the README says.

    The Inspector claims `--config` and `--transport` for itself, so the transport (and the rest of the
    config) travels in the environment.
    """
    args = [
        "-e", "MCP_TRANSPORT=stdio", "-e", "PORT=0", "-e", "METRICS_PORT=0",
        "-e", f"WORKSPACE_ROOT={tmp_path / 'ws'}",
        *coordinator_command(),
    ]  # fmt: skip
    call = ["--method", "tools/call", "--tool-name", "echo", "--tool-arg", "text=io"]
    out = await asyncio.to_thread(inspector, *args, *call)
    assert out["content"][0]["text"] == "io"
