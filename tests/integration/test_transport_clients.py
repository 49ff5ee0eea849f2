"""The MCP Python SDK client against the coordinator's transports, over every transport and era."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import mcp.client.session as client_session
import pytest
from mcp.client.client import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_fixtures import SERVER_SCRIPT, ServerProcess, running_protocol_server


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_protocol_server({"keepalive_interval": 0.2}) as proc:
        yield proc


def stdio_params() -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=[str(SERVER_SCRIPT), "--stdio"])


@pytest.mark.parametrize("mode", ["2026-07-28", "auto"])
async def test_sdk_client_calls_echo_statelessly_in_the_2026_era(server: ServerProcess, mode: str) -> None:
    """A 2026-07-28 client (pinned or auto-probing server/discover) lists tools and calls echo."""
    async with Client(server.mcp_url, mode=mode) as client:
        assert client.session.protocol_version == "2026-07-28"
        names = [tool.name for tool in (await client.list_tools()).tools]
        assert {"echo", "slow", "progress", "stamp"} <= set(names)
        result = await client.call_tool("echo", {"text": "hi"})
        assert result.content[0].text == "hi"  # type: ignore[union-attr]
        assert result.is_error is False
        stamp = await client.call_tool("stamp", {"session_id": "s-1"})
        assert stamp.structured_content is not None
        assert stamp.structured_content["transport_session_id"] is None
        assert stamp.structured_content["session_id"] == "s-1"


async def test_sdk_client_completes_the_handshake_era_over_streamable_http(server: ServerProcess) -> None:
    """mode='legacy' negotiates 2025-11-25 via initialize and gets a transport session id."""
    async with Client(server.mcp_url, mode="legacy") as client:
        assert client.session.protocol_version == "2025-11-25"
        result = await client.call_tool("echo", {"text": "hello"})
        assert result.content[0].text == "hello"  # type: ignore[union-attr]
        stamp = await client.call_tool("stamp", {})
        assert stamp.structured_content is not None
        assert stamp.structured_content["transport_session_id"]
        assert stamp.structured_content["protocol_version"] == "2025-11-25"


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_progress_notifications_reach_the_sdk_client(server: ServerProcess, mode: str) -> None:
    """A progress callback receives every step the tool reports, in both eras."""
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with Client(server.mcp_url, mode=mode) as client:
        result = await client.call_tool("progress", {"steps": 3}, progress_callback=on_progress)
    assert result.content[0].text == "done 3"  # type: ignore[union-attr]
    assert seen == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_unknown_tool_is_an_invalid_params_error_for_the_sdk_client(server: ServerProcess, mode: str) -> None:
    """tools/call on a name that is not a tool raises MCPError -32602, not a tool result."""
    async with Client(server.mcp_url, mode=mode) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("no.such.tool", {})
    assert caught.value.code == -32602
    assert "no.such.tool" in str(caught.value)


async def test_sdk_client_speaks_the_legacy_sse_transport(server: ServerProcess) -> None:
    """GET /sse + POST /messages carries the handshake and a tool call with progress."""
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with Client(sse_client(f"{server.url}/sse"), mode="legacy") as client:
        result = await client.call_tool("echo", {"text": "over sse"})
        assert result.content[0].text == "over sse"  # type: ignore[union-attr]
        await client.call_tool("progress", {"steps": 2}, progress_callback=on_progress)
        stamp = await client.call_tool("stamp", {})
    assert seen == [1.0, 2.0]
    assert stamp.structured_content is not None
    assert stamp.structured_content["transport"] == "sse"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_sdk_client_speaks_stdio_in_both_eras(mode: str) -> None:
    """Over stdio, auto mode lands on 2026-07-28 via server/discover and legacy on 2025-11-25."""
    async with Client(stdio_params(), mode=mode) as client:
        expected = "2026-07-28" if mode == "auto" else "2025-11-25"
        assert client.session.protocol_version == expected
        result = await client.call_tool("echo", {"text": "stdio"})
        assert result.content[0].text == "stdio"  # type: ignore[union-attr]
        stamp = await client.call_tool("stamp", {})
    assert stamp.structured_content is not None
    assert stamp.structured_content["transport"] == "stdio"
    assert stamp.structured_content["transport_session_id"].startswith("stdio-")


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26", "2025-06-18"])
@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_sdk_client_offering_an_older_version_is_served_at_that_version(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch, version: str, transport: str
) -> None:
    """The real SDK client, made to offer an older handshake version, negotiates it and works at it.

    The SDK always offers its newest handshake version; setting the module constant it reads makes
    it offer `version` instead, with every later request stamped with that version on the wire.
    """
    monkeypatch.setattr(client_session, "LATEST_HANDSHAKE_VERSION", version)
    target: Any = server.mcp_url if transport == "streamable-http" else sse_client(f"{server.url}/sse")
    async with Client(target, mode="legacy") as client:
        assert client.session.protocol_version == version
        result = await client.call_tool("stamp", {})
    assert result.structured_content is not None
    assert result.structured_content["protocol_version"] == version
