"""The real `coordinator` process (embedded worker) spoken to by real MCP clients in every era and transport.

The SDK client covers Streamable HTTP (2026-07-28 and the handshake era), legacy SSE and stdio; raw
requests cover the security answers. The MCP Inspector CLI has its own module, test_inspector_cli.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import httpx2
import pytest
import yaml
from coordinator_fixtures import (
    CoordinatorProcess,
    coordinator_command,
    hermetic_env,
    result_text,
    start_coordinator,
)
from mcp.client.client import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_fixtures import ACCEPT_BOTH, modern_call, modern_headers

TOKEN = "c0ffee00c0ffee00c0ffee00"


@pytest.fixture(scope="module")
def coord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoordinatorProcess]:
    tmp = tmp_path_factory.mktemp("protocol")
    proc = start_coordinator(tmp, config={"server": {"keepalive_interval": "50ms"}})
    yield proc
    assert proc.stop() == 0


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoordinatorProcess]:
    tmp = tmp_path_factory.mktemp("guarded")
    tokens = tmp / "tokens"
    tokens.write_text(f"# test callers\nci-bot:{TOKEN}\n", "utf-8")
    tokens.chmod(0o600)
    config = {
        "auth": {"enabled": True, "tokens_file": str(tokens)},
        "security": {"allowed_origins": ["https://ide.example.com"]},
        "limits": {"max_body_bytes": 4096},
    }
    proc = start_coordinator(tmp, config=config)
    yield proc
    assert proc.stop() == 0


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def stdio_params(tmp_path: Path) -> StdioServerParameters:
    config = tmp_path / "stdio.yaml"
    config.write_text(
        yaml.safe_dump({"server": {"port": 0, "metrics_port": 0}, "worker": {"workspace_root": str(tmp_path / "ws")}})
    )
    command = coordinator_command()
    return StdioServerParameters(
        command=command[0],
        args=[*command[1:], "--config", str(config), "--transport", "stdio"],
        env=hermetic_env(),
        cwd=str(tmp_path),
    )


# ----- SDK client ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["2026-07-28", "auto", "legacy"])
async def test_sdk_client_echoes_and_keeps_a_session_over_streamable_http(coord: CoordinatorProcess, mode: str) -> None:
    """Every era reaches the tools; an explicit session_id (an x-mcp-header) round-trips its files."""
    async with Client(coord.mcp_url, mode=mode) as client:
        expected = "2025-11-25" if mode == "legacy" else "2026-07-28"
        assert client.session.protocol_version == expected
        echoed = await client.call_tool("echo", {"text": f"hi {mode}"})
        assert result_text(echoed) == f"hi {mode}"
        created = await client.call_tool("session.create", {})
        assert created.structured_content is not None
        sid = created.structured_content["session_id"]
        wrote = await client.call_tool("fs.write", {"session_id": sid, "path": "a.txt", "content": mode})
        assert not wrote.is_error, result_text(wrote)
        read = await client.call_tool("fs.read", {"session_id": sid, "path": "a.txt"})
        assert result_text(read) == mode


async def test_handshake_client_gets_an_implicit_workspace_for_its_transport_session(
    coord: CoordinatorProcess,
) -> None:
    """Without session_id, a handshake-era client's calls share the workspace of its Mcp-Session-Id."""
    async with Client(coord.mcp_url, mode="legacy") as client:
        wrote = await client.call_tool("fs.write", {"path": "implicit.txt", "content": "same workspace"})
        assert not wrote.is_error, result_text(wrote)
        read = await client.call_tool("fs.read", {"path": "implicit.txt"})
    assert result_text(read) == "same workspace"


async def test_sdk_client_works_over_legacy_sse(coord: CoordinatorProcess) -> None:
    """GET /sse + POST /messages reaches the coordinator's tools, with an implicit workspace."""
    async with Client(sse_client(f"{coord.url}/sse"), mode="legacy") as client:
        assert result_text(await client.call_tool("echo", {"text": "sse"})) == "sse"
        await client.call_tool("fs.write", {"path": "s.txt", "content": "over sse"})
        assert result_text(await client.call_tool("fs.read", {"path": "s.txt"})) == "over sse"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_sdk_client_works_over_stdio_in_both_eras(tmp_path: Path, mode: str) -> None:
    """`coordinator --transport stdio` answers server/discover (auto) and initialize (legacy)."""
    async with Client(stdio_params(tmp_path), mode=mode) as client:
        assert client.session.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
        assert result_text(await client.call_tool("echo", {"text": "stdio"})) == "stdio"
        await client.call_tool("fs.write", {"path": "x.txt", "content": "kept"})
        assert result_text(await client.call_tool("fs.read", {"path": "x.txt"})) == "kept"


async def test_slow_modern_call_streams_keepalives(coord: CoordinatorProcess, http: aiohttp.ClientSession) -> None:
    """A run.python call slower than keepalive_interval answers over SSE with `: ping` comments first."""
    async with Client(coord.mcp_url, mode="2026-07-28") as client:
        created = await client.call_tool("session.create", {})
    assert created.structured_content is not None
    sid = created.structured_content["session_id"]
    call = modern_call("run.python", {"session_id": sid, "code": "import time; time.sleep(1); print('ok')"})
    headers = modern_headers(name="run.python", **{"Mcp-Param-Session-Id": sid})
    async with http.post(coord.mcp_url, json=call, headers=headers) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        assert resp.headers["X-Accel-Buffering"] == "no"
        text = await resp.text()
    assert ": ping" in text
    last = json.loads([line for line in text.splitlines() if line.startswith("data:")][-1][5:])
    assert last["result"]["isError"] is False


# ----- security and bad input against the real process ----------------------------------------------


async def test_real_coordinator_refuses_missing_or_wrong_tokens(
    guarded: CoordinatorProcess, http: aiohttp.ClientSession
) -> None:
    """With auth on, /mcp needs a listed bearer token and says how to send it."""
    call = modern_call("echo", {"text": "x"})
    async with http.post(guarded.mcp_url, json=call, headers=modern_headers(name="echo")) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith('Bearer realm="codegen-mcp"')
    bad = modern_headers(name="echo", Authorization="Bearer wrong-wrong-wrong-wrong")
    async with http.post(guarded.mcp_url, json=call, headers=bad) as resp:
        assert resp.status == 401
    good = modern_headers(name="echo", Authorization=f"Bearer {TOKEN}")
    async with http.post(guarded.mcp_url, json=call, headers=good) as resp:
        assert resp.status == 200
        assert (await resp.json())["result"]["content"][0]["text"] == "x"


async def test_sdk_client_with_a_token_header_gets_through(guarded: CoordinatorProcess) -> None:
    """A client configured with the Authorization header works end to end (as IDEs configure it)."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as authed,
        Client(streamable_http_client(guarded.mcp_url, http_client=authed), mode="2026-07-28") as client,
    ):
        assert result_text(await client.call_tool("echo", {"text": "authed"})) == "authed"


async def test_real_coordinator_refuses_bad_origin_and_oversize_bodies(
    guarded: CoordinatorProcess, http: aiohttp.ClientSession
) -> None:
    """A foreign browser Origin is 403; a body over limits.max_body_bytes is 413."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    call = modern_call("echo", {"text": "x"})
    evil = modern_headers(name="echo", Origin="https://evil.example", **auth)
    async with http.post(guarded.mcp_url, json=call, headers=evil) as resp:
        assert resp.status == 403
    listed = modern_headers(name="echo", Origin="https://ide.example.com", **auth)
    async with http.post(guarded.mcp_url, json=call, headers=listed) as resp:
        assert resp.status == 200
    big = modern_call("echo", {"text": "x" * 10_000})
    async with http.post(guarded.mcp_url, json=big, headers=modern_headers(name="echo", **auth)) as resp:
        assert resp.status == 413


async def test_real_coordinator_answers_bad_json_rpc_with_the_right_codes(
    coord: CoordinatorProcess, http: aiohttp.ClientSession
) -> None:
    """Parse errors, modern batches, unknown tools and mismatched headers get their spec codes."""
    raw = {**modern_headers(), "Content-Type": "application/json"}
    async with http.post(coord.mcp_url, data=b"{", headers=raw) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == -32700
    batch = [modern_call("echo", {"text": "a"})]
    async with http.post(coord.mcp_url, json=batch, headers=modern_headers(name="echo")) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == -32600
    async with http.post(coord.mcp_url, json=modern_call("nope", {}), headers=modern_headers(name="nope")) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == -32602
    mismatched = modern_headers(name="fs.read", **{"Mcp-Param-Session-Id": "b"})
    call = modern_call("fs.read", {"session_id": "a", "path": "x"})
    async with http.post(coord.mcp_url, json=call, headers=mismatched) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == -32020
    old = {"Accept": ACCEPT_BOTH, "Mcp-Session-Id": "not-a-session", "MCP-Protocol-Version": "2025-06-18"}
    async with http.post(coord.mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=old) as resp:
        assert resp.status == 404


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_progress_from_a_long_run_reaches_the_sdk_client(coord: CoordinatorProcess, mode: str) -> None:
    """run.python reports progress about once a second; the client's callback receives it."""
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with Client(coord.mcp_url, mode=mode) as client:
        created = await client.call_tool("session.create", {})
        assert created.structured_content is not None
        sid = created.structured_content["session_id"]
        code = "import time; time.sleep(2.5); print('done')"
        ran = await client.call_tool("run.python", {"session_id": sid, "code": code}, progress_callback=on_progress)
    assert not ran.is_error, result_text(ran)
    assert seen, "no notifications/progress arrived during a 2.5 s run"
    assert seen == sorted(seen)
