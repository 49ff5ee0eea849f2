"""The stdio transport, spoken line by line to a real process: eras, concurrency, cancellation, bad input."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp_fixtures import ENVELOPE, SERVER_SCRIPT


class StdioPeer:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stdin = proc.stdin
        self.stdout = proc.stdout

    async def send(self, message: Any) -> None:
        assert self.stdin is not None
        data = message if isinstance(message, bytes) else json.dumps(message).encode()
        self.stdin.write(data + b"\n")
        await self.stdin.drain()

    async def receive(self) -> Any:
        assert self.stdout is not None
        async with asyncio.timeout(10):
            line = await self.stdout.readline()
        assert line, "the server closed stdout"
        return json.loads(line)

    async def initialize(self, version: str = "2025-11-25") -> dict[str, Any]:
        params = {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        }
        await self.send({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": params})
        reply = await self.receive()
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        result: dict[str, Any] = reply["result"]
        return result


@pytest.fixture
async def peer() -> AsyncIterator[StdioPeer]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SERVER_SCRIPT),
        "--stdio",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    yield StdioPeer(proc)
    if proc.returncode is None:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


def call(request_id: Any, name: str, arguments: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments, **params},
    }


async def test_a_line_that_is_not_json_gets_a_parse_error_and_the_connection_lives_on(
    peer: StdioPeer,
) -> None:
    """Garbage on stdin is answered with -32700 (id null); later messages still work."""
    await peer.send(b"{this is not json")
    reply = await peer.receive()
    assert reply["id"] is None
    assert reply["error"]["code"] == -32700
    result = await peer.initialize()
    assert result["protocolVersion"] == "2025-11-25"


async def test_modern_envelope_requests_need_no_initialize(peer: StdioPeer) -> None:
    """A 2026-07-28 stdio client sends server/discover and tools/call with the _meta envelope only."""
    await peer.send({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": ENVELOPE}})
    discover = await peer.receive()
    assert "2026-07-28" in discover["result"]["supportedVersions"]
    await peer.send(call(2, "echo", {"text": "modern"}, _meta=ENVELOPE))
    reply = await peer.receive()
    assert reply["result"]["content"][0]["text"] == "modern"
    assert reply["result"]["resultType"] == "complete"


async def test_handshake_calls_before_initialize_are_refused(peer: StdioPeer) -> None:
    """Without initialize or the envelope, tools/list is -32600 with a pointer to the fix."""
    await peer.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    reply = await peer.receive()
    assert reply["error"]["code"] == -32600
    assert "initialize" in reply["error"]["message"]


async def test_batches_work_at_2025_03_26_only(peer: StdioPeer) -> None:
    """Before initialize a batch is refused; on a 2025-03-26 connection it is answered as an array."""
    batch = [call(1, "echo", {"text": "a"}), {"jsonrpc": "2.0", "id": 2, "method": "ping"}]
    await peer.send(batch)
    refused = await peer.receive()
    assert refused["error"]["code"] == -32600
    await peer.initialize("2025-03-26")
    await peer.send(batch)
    replies = await peer.receive()
    assert isinstance(replies, list)
    assert sorted(r["id"] for r in replies) == [1, 2]


async def test_requests_run_concurrently(peer: StdioPeer) -> None:
    """A quick call sent after a slow one is answered first."""
    await peer.initialize()
    await peer.send(call("slow", "slow", {"seconds": 2}))
    await peer.send(call("quick", "echo", {"text": "first"}))
    first = await peer.receive()
    assert first["id"] == "quick"
    second = await peer.receive()
    assert second["id"] == "slow"


async def test_notifications_cancelled_stops_the_call_without_a_reply(peer: StdioPeer) -> None:
    """After notifications/cancelled the slow call yields no reply and counts as cancelled."""
    await peer.initialize()
    await peer.send(call(9, "slow", {"seconds": 60}))
    await peer.send(call(10, "echo", {"text": "barrier"}))
    assert (await peer.receive())["id"] == 10
    await peer.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}})
    await peer.send(call(11, "stats", {}))
    reply = await peer.receive()
    assert reply["id"] == 11
    assert reply["result"]["structuredContent"]["cancelled"] == 1


async def test_end_of_input_lets_running_calls_finish_and_answer(peer: StdioPeer) -> None:
    """Closing stdin does not drop in-flight calls: their replies still arrive, then the process exits."""
    await peer.initialize()
    await peer.send(call(1, "slow", {"seconds": 0.3}))
    assert peer.stdin is not None
    peer.stdin.close()
    reply = await peer.receive()
    assert reply["result"]["content"][0]["text"] == "slept"
    async with asyncio.timeout(10):
        assert await peer.proc.wait() == 0


async def test_progress_notifications_are_written_as_lines(peer: StdioPeer) -> None:
    """With a progressToken, notifications/progress lines precede the result."""
    await peer.initialize()
    await peer.send(call(3, "progress", {"steps": 2}, _meta={"progressToken": 77}))
    lines = [await peer.receive() for _ in range(3)]
    assert [m["params"]["progress"] for m in lines[:2]] == [1, 2]
    assert lines[2]["id"] == 3
