"""Worker failures seen through a real coordinator: down, slow, 5xx (retried only when safe), lost sessions.

The misbehaving worker is a small real aiohttp server on 127.0.0.1:0 in the test's event loop; the
healthy one is the real `worker` process from worker_fixtures.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from coordinator_fixtures import CoordinatorProcess, StubWorker, call_tool, http_get, result_text, wait_until
from worker_fixtures import start_worker


@pytest.fixture
async def stub() -> AsyncIterator[StubWorker]:
    worker = StubWorker()
    await worker.start()
    yield worker
    await worker.stop()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_worker_that_is_down_makes_ready_503_and_tool_calls_clear_errors(
    coordinator_factory: Callable[..., CoordinatorProcess],
) -> None:
    """No reachable worker: /ready names the reason, workspace tools fail clearly, echo still works."""
    url = f"http://127.0.0.1:{closed_port()}"
    coord = coordinator_factory(
        config={"worker": {"url": url, "max_retries": 1, "retry_backoff": "10ms"}}, wait_ready=False
    )
    _, body = await asyncio.to_thread(wait_until, lambda: _ready_body(coord, 503), 10, "/ready 503")
    assert "no_healthy_worker" in body["reasons"]
    assert url in body["details"]["no_healthy_worker"]
    result = await call_tool(coord, "fs.write", {"path": "a.txt", "content": "x"})
    assert result.is_error
    assert result_text(result).startswith("no healthy worker is available to open a session")
    assert "try again shortly" in result_text(result)
    echo = await call_tool(coord, "echo", {"text": "still here"})
    assert not echo.is_error


def _ready_body(coord: CoordinatorProcess, want: int) -> tuple[int, dict[str, Any]] | None:
    status, body = http_get(coord.url + "/ready")
    return (status, json.loads(body)) if status == want else None


async def test_a_slow_worker_hits_the_worker_timeout_with_a_clear_error(
    coordinator_factory: Callable[..., CoordinatorProcess], stub: StubWorker
) -> None:
    """A worker that never answers: worker.timeout fires and the result says so; it is not retried."""
    stub.hang.add("run/python")
    coord = await asyncio.to_thread(
        coordinator_factory, config={"worker": {"url": stub.url, "timeout": "1s", "retry_backoff": "10ms"}}
    )
    result = await call_tool(coord, "run.python", {"code": "print(1)"})
    assert result.is_error
    assert "did not answer within 1s (worker.timeout)" in result_text(result)
    assert stub.calls["run/python"] == 1
    metrics = (await asyncio.to_thread(http_get, coord.metrics_url))[1].decode()
    assert 'coordinator_worker_errors_total{kind="timeout"} 1.0' in metrics
    assert 'coordinator_tool_calls_total{outcome="timeout",tool="run.python"} 1.0' in metrics


async def test_worker_5xx_is_retried_for_reads_only(
    coordinator_factory: Callable[..., CoordinatorProcess], stub: StubWorker
) -> None:
    """fs.read survives two 500s by retrying; run.python gets one 500 and is not re-run."""
    stub.fail_first = {"fs/read": 2, "run/python": 1}
    coord = await asyncio.to_thread(
        coordinator_factory, config={"worker": {"url": stub.url, "max_retries": 3, "retry_backoff": "10ms"}}
    )
    read = await call_tool(coord, "fs.read", {"path": "a.txt"})
    assert not read.is_error, result_text(read)
    assert result_text(read).startswith("stub")
    assert stub.calls["fs/read"] == 3
    ran = await call_tool(coord, "run.python", {"code": "print(1)"})
    assert ran.is_error
    assert "internal error: disk hiccup" in result_text(ran)
    assert stub.calls["run/python"] == 1


async def test_a_lost_workspace_tells_the_model_to_open_a_new_session(
    coordinator_factory: Callable[..., CoordinatorProcess], stub: StubWorker
) -> None:
    """session_not_found from the worker (it restarted) without shared workspaces: a clear isError."""
    coord = await asyncio.to_thread(coordinator_factory, config={"worker": {"url": stub.url}})
    sid = (await call_tool(coord, "session.create", {})).structured_content["session_id"]
    stub.lost_sessions = True
    result = await call_tool(coord, "fs.read", {"session_id": sid, "path": "a.txt"})
    assert result.is_error
    assert "was lost because its worker restarted" in result_text(result)
    assert "session.create" in result_text(result)


async def test_a_separate_worker_process_serves_the_sessions(
    coordinator_factory: Callable[..., CoordinatorProcess], tmp_path: Path
) -> None:
    """With worker.url set to a real worker process, files land in that worker's workspace root."""
    worker = await asyncio.to_thread(start_worker, _mkdir(tmp_path / "w"))
    try:
        coord = await asyncio.to_thread(coordinator_factory, config={"worker": {"url": worker.url}})
        result = await call_tool(coord, "fs.write", {"path": "hello.txt", "content": "from coordinator"})
        assert not result.is_error, result_text(result)
        sid = result.structured_content["session_id"]
        assert (worker.session_dir(sid) / "hello.txt").read_text() == "from coordinator"
    finally:
        assert worker.stop() == 0


async def test_sessions_are_spread_over_the_least_loaded_workers(
    coordinator_factory: Callable[..., CoordinatorProcess], tmp_path: Path
) -> None:
    """With two workers, new sessions go to the one with fewer sessions, alternating."""
    first = await asyncio.to_thread(start_worker, _mkdir(tmp_path / "a"))
    second = await asyncio.to_thread(start_worker, _mkdir(tmp_path / "b"))
    try:
        coord = await asyncio.to_thread(coordinator_factory, config={"worker": {"url": [first.url, second.url]}})
        sids = [(await call_tool(coord, "session.create", {})).structured_content["session_id"] for _ in range(4)]
        on_first = sum(first.session_dir(s).exists() for s in sids)
        on_second = sum(second.session_dir(s).exists() for s in sids)
        assert (on_first, on_second) == (2, 2)
    finally:
        first.stop()
        second.stop()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


async def test_workers_are_discovered_by_dns_name(
    coordinator_factory: Callable[..., CoordinatorProcess], stub: StubWorker
) -> None:
    """worker.discovery.dns_name resolves to worker addresses; sessions are opened on them."""
    port = int(stub.url.rsplit(":", 1)[1])
    coord = await asyncio.to_thread(
        coordinator_factory,
        config={"worker": {"discovery": {"dns_name": "localhost", "port": port, "refresh_interval": "1s"}}},
    )
    result = await call_tool(coord, "fs.read", {"path": "a.txt"})
    assert not result.is_error, result_text(result)
    assert stub.calls["PUT"] == 1
    debug = json.loads((await asyncio.to_thread(http_get, coord.url + "/debug/sessions"))[1])
    assert f"http://127.0.0.1:{port}" in {w["url"] for w in debug["workers"]}


async def test_with_shared_workspaces_a_lost_session_moves_to_a_healthy_worker(
    coordinator_factory: Callable[..., CoordinatorProcess], stub: StubWorker
) -> None:
    """session_not_found on the pinned worker re-pins the session (PUT adopts it) and the call succeeds."""
    other = StubWorker()
    await other.start()
    try:
        coord = await asyncio.to_thread(
            coordinator_factory,
            config={"worker": {"url": [stub.url, other.url], "shared_workspaces": True}},
        )
        sid = (await call_tool(coord, "session.create", {})).structured_content["session_id"]
        pinned, spare = (stub, other) if stub.calls["PUT"] else (other, stub)
        pinned.lost_sessions = True
        result = await call_tool(coord, "fs.read", {"session_id": sid, "path": "a.txt"})
        assert not result.is_error, result_text(result)
        assert spare.calls["PUT"] == 1 and spare.calls["fs/read"] == 1
        debug = json.loads((await asyncio.to_thread(http_get, coord.url + "/debug/sessions"))[1])
        assert debug["sessions"][0]["worker_url"] == spare.url
    finally:
        await other.stop()


async def test_the_callers_trace_id_reaches_the_worker_and_the_audit_log(
    coordinator_factory: Callable[..., CoordinatorProcess], tmp_path: Path
) -> None:
    """A W3C traceparent on the MCP request: the worker logs the same trace id, and so does the audit."""
    worker = await asyncio.to_thread(start_worker, _mkdir(tmp_path / "w"))
    try:
        coord = await asyncio.to_thread(coordinator_factory, config={"worker": {"url": worker.url}})
        trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {
                "name": "fs.write",
                "arguments": {"path": "t.txt", "content": "traced"},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {},
                    "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
                },
            },
        }
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2026-07-28",
            "Mcp-Method": "tools/call",
            "Mcp-Name": "fs.write",
            "traceparent": f"00-{trace}-00f067aa0ba902b7-01",
        }
        async with (
            aiohttp.ClientSession() as http,
            http.post(coord.mcp_url, json=body, headers=headers) as resp,
        ):
            reply = await resp.json(content_type=None)
        assert resp.status == 200, reply
        assert reply["result"]["isError"] is False, reply
        traced = [r for r in worker.logs() if r.get("trace_id") == trace]
        assert any(r.get("path", "").endswith("/fs/write") for r in traced), worker.logs()[-5:]
        assert any(r["trace_id"] == trace and r["tool"] == "fs.write" for r in coord.audit_records())
    finally:
        assert worker.stop() == 0


async def test_a_session_whose_worker_died_gets_a_clear_error(
    coordinator_factory: Callable[..., CoordinatorProcess], stub: StubWorker
) -> None:
    """The pinned worker stops answering: the error says to retry or open a new session."""
    coord = await asyncio.to_thread(
        coordinator_factory, config={"worker": {"url": stub.url, "max_retries": 1, "retry_backoff": "10ms"}}
    )
    sid = (await call_tool(coord, "session.create", {})).structured_content["session_id"]
    await stub.stop()
    result = await call_tool(coord, "fs.read", {"session_id": sid, "path": "a.txt"})
    assert result.is_error
    text = result_text(result)
    assert text.startswith(f"the worker of session '{sid}' is unreachable")
    assert "call session.create to open a new session" in text
