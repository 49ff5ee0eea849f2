"""QA findings on the coordinator's lifecycle, with real processes and the SDK client."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from coordinator_fixtures import call_tool, result_text, start_coordinator
from mcp import Client
from worker_fixtures import start_worker


async def test_embedded_workspaces_left_open_are_deleted_when_the_coordinator_stops(tmp_path: Path) -> None:
    """Sessions still open at SIGTERM (memory store) leave no workspace or venv behind under the root."""
    coord = start_coordinator(tmp_path, name="qa")
    root = tmp_path / "qa-workspaces"
    try:
        wrote = await call_tool(coord, "fs.write", {"path": "keep.txt", "content": "x"})
        assert not wrote.is_error, result_text(wrote)
        sid = wrote.structured_content["session_id"]
        ran = await call_tool(coord, "run.python", {"session_id": sid, "code": "print(1)"})
        assert not ran.is_error, result_text(ran)
        assert (root / sid / "keep.txt").is_file()
    finally:
        assert coord.stop() == 0
    assert not (root / sid).exists()
    assert not (root / ".private" / sid).exists()


async def test_a_full_worker_is_reported_as_full_not_as_missing(tmp_path: Path) -> None:
    """With its only worker at max_sessions, session.create names the capacity and suggests session.close."""
    worker = start_worker(tmp_path, max_sessions=1)
    coord = start_coordinator(tmp_path, config={"worker": {"url": worker.url}}, name="qa-full")
    try:
        first = await call_tool(coord, "session.create", {})
        assert not first.is_error, result_text(first)
        second = await call_tool(coord, "session.create", {})
    finally:
        assert coord.stop() == 0
        assert worker.stop() == 0
    assert second.is_error
    assert result_text(second) == (
        f"no worker has room for a new session (every healthy worker is at its session capacity: {worker.url} "
        "holds 1 of 1); close sessions you no longer need with session.close, or try again later"
    )


def test_debug_sessions_refuses_a_request_relayed_by_a_local_proxy(tmp_path: Path) -> None:
    """In loopback mode, a loopback peer carrying X-Forwarded-For (a local proxy) gets 403, a direct one 200."""
    coord = start_coordinator(tmp_path, name="qa-debug")
    try:
        with urllib.request.urlopen(coord.url + "/debug/sessions", timeout=5) as direct:
            assert direct.status == 200
        relayed = urllib.request.Request(coord.url + "/debug/sessions", headers={"X-Forwarded-For": "203.0.113.9"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(relayed, timeout=5).close()
        with refused.value as answer:
            assert answer.code == 403
            assert "not requests relayed by a proxy" in json.loads(answer.read())["message"]
    finally:
        assert coord.stop() == 0


async def test_appends_report_the_bytes_appended_and_an_oversize_write_gets_no_read_hint(tmp_path: Path) -> None:
    """fs.write append answers bytes_written = appended bytes; over max_file_bytes it names only the limit."""
    worker = start_worker(tmp_path, limits={"max_file_bytes": 10})
    coord = start_coordinator(tmp_path, config={"worker": {"url": worker.url}}, name="qa-append")
    try:
        async with Client(coord.mcp_url, mode="legacy") as client:
            await client.call_tool("fs.write", {"path": "log.txt", "content": "abcdef"})
            appended = await client.call_tool("fs.write", {"path": "log.txt", "content": "xyz", "append": True})
            too_big = await client.call_tool("fs.write", {"path": "log.txt", "content": "12", "append": True})
    finally:
        assert coord.stop() == 0
        assert worker.stop() == 0
    assert appended.structured_content["bytes_written"] == 3
    assert appended.structured_content["size"] == 9
    assert result_text(appended) == "Wrote 3 bytes to log.txt (size 9)."
    assert too_big.is_error
    assert result_text(too_big) == "fs.write failed: path 'log.txt' would be 11 bytes; limits.max_file_bytes allows 10"


async def test_a_slow_install_is_stopped_by_the_worker_within_the_coordinators_worker_timeout(
    tmp_path: Path,
) -> None:
    """pkg.install asks the worker to stop pip before worker.timeout: a hung index gives pip's timeout, cleanly."""
    held: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept the connection, read nothing, answer nothing

    index = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = index.sockets[0].getsockname()[1]
    worker = start_worker(
        tmp_path, packages={"index_url": f"http://127.0.0.1:{port}/simple", "use_pip_config_files": False}
    )
    coord = start_coordinator(
        tmp_path, config={"worker": {"url": worker.url, "timeout": "9s", "connect_timeout": "3s"}}, name="qa-pip"
    )
    try:
        installed = await call_tool(coord, "pkg.install", {"packages": ["iniconfig"]})
        status = await call_tool(coord, "echo", {"text": "still serving"})
    finally:
        assert coord.stop() == 0
        assert worker.stop() == 0
        for writer in held:
            writer.close()
        index.close()
        await index.wait_closed()
    assert installed.is_error
    assert installed.content[0].text.startswith("pkg.install failed: pkg.install ran past its timeout of 1s")
    assert "worker.timeout" not in result_text(installed)
    assert not status.is_error


async def test_a_new_audit_file_is_not_world_readable(tmp_path: Path) -> None:
    """The file backend creates its file 0640: records carry callers' code and file contents."""
    audit = tmp_path / "audit.jsonl"
    coord = start_coordinator(tmp_path, config={"audit": {"backend": "file", "file_path": str(audit)}}, name="qa-audit")
    try:
        echoed = await call_tool(coord, "echo", {"text": "secret-ish"})
        assert not echoed.is_error
    finally:
        assert coord.stop() == 0
    assert audit.stat().st_mode & 0o777 == 0o640
    assert '"tool":"echo"' in audit.read_text()
