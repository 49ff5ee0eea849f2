"""Start `mcp_test_server.py` (the transports over a small real ToolService) as a process, and speak raw MCP.

with running_protocol_server({"keepalive_interval": 0.05}) as server:
    server.url            # http://127.0.0.1:PORT
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

SERVER_SCRIPT = Path(__file__).with_name("mcp_test_server.py")
MODERN = "2026-07-28"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "1"},
}
ACCEPT_BOTH = "application/json, text/event-stream"


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"


@contextmanager
def running_protocol_server(
    settings: Mapping[str, Any] | None = None, timeout: float = 20.0, extra_args: tuple[str, ...] = ()
) -> Iterator[ServerProcess]:
    """Start the server on 127.0.0.1:0, wait for its `LISTENING <port>` line (bounded), SIGTERM it after."""
    proc = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--settings", json.dumps(dict(settings or {})), *extra_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith(b"LISTENING") or not line:
                break
        if not line.startswith(b"LISTENING"):
            raise AssertionError(f"mcp_test_server.py did not start (exit code {proc.poll()})")
        yield ServerProcess(proc, int(line.split()[1]))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def modern_call(name: str, arguments: Mapping[str, Any], request_id: int = 1, **meta: Any) -> dict[str, Any]:
    """A 2026-07-28 tools/call body."""
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": dict(arguments), "_meta": {**ENVELOPE, **meta}},
    }


def modern_headers(method: str = "tools/call", name: str | None = None, **extra: str) -> dict[str, str]:
    """The routing headers a conforming 2026-07-28 client sends."""
    headers = {"Accept": ACCEPT_BOTH, "MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if name is not None:
        headers["Mcp-Name"] = name
    headers.update(extra)
    return headers


async def initialize(http: aiohttp.ClientSession, url: str, version: str = "2025-11-25") -> tuple[str, dict[str, Any]]:
    """Handshake-era initialize + initialized; returns (Mcp-Session-Id, initialize result)."""
    body = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "raw-test", "version": "1"},
        },
    }
    async with http.post(url, json=body, headers={"Accept": ACCEPT_BOTH}) as resp:
        assert resp.status == 200, await resp.text()
        session_id = resp.headers["Mcp-Session-Id"]
        result = (await resp.json())["result"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    headers = {
        "Accept": ACCEPT_BOTH,
        "Mcp-Session-Id": session_id,
        "MCP-Protocol-Version": result["protocolVersion"],
    }
    async with http.post(url, json=note, headers=headers) as resp:
        assert resp.status == 202
    return session_id, result


def sse_messages(text: str) -> list[dict[str, Any]]:
    """The JSON payloads of every `data:` line in an SSE body."""
    return [json.loads(line[5:].strip()) for line in text.splitlines() if line.startswith("data:") and "{" in line]


async def read_sse_until(resp: aiohttp.ClientResponse, needle: bytes, limit: int = 1 << 20) -> bytes:
    """Read a streaming body until `needle` appears (callers bound this with asyncio.timeout)."""
    seen = b""
    while needle not in seen and len(seen) < limit:
        chunk = await resp.content.readany()
        if not chunk:
            break
        seen += chunk
    return seen
