"""Tool calls through a real coordinator (embedded worker) with the real `mcp` SDK client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from coordinator_fixtures import CoordinatorProcess, call_tool, result_text, start_coordinator
from mcp import Client
from mcp.shared.exceptions import MCPError


@pytest.fixture(scope="module")
def coord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoordinatorProcess]:
    tmp = tmp_path_factory.mktemp("tools")
    proc = start_coordinator(tmp, config={"audit": {"backend": "file", "file_path": str(tmp / "audit.jsonl")}})
    yield proc
    assert proc.stop() == 0


async def test_a_model_can_open_a_session_write_run_and_read(coord: CoordinatorProcess) -> None:
    """The issue's definition of done: session.create, fs.write, run.python, fs.read, fs.list."""
    async with Client(coord.mcp_url) as client:
        created = await client.call_tool("session.create", {})
        sid = created.structured_content["session_id"]
        wrote = await client.call_tool(
            "fs.write",
            {"session_id": sid, "path": "src/main.py", "contents": "open('out.txt','w').write('42')"},
        )
        assert not wrote.is_error, result_text(wrote)
        ran = await client.call_tool("run.python", {"session_id": sid, "file": "src/main.py"})
        assert not ran.is_error, result_text(ran)
        assert ran.structured_content["exit_code"] == 0
        read = await client.call_tool("fs.read", {"session_id": sid, "path": "out.txt"})
        assert result_text(read) == "42"
        assert read.structured_content["session_id"] == sid
        listed = await client.call_tool("fs.list", {"session_id": sid, "recursive": True})
        paths = {e["path"] for e in listed.structured_content["entries"]}
        assert {"out.txt", "src/main.py"} <= paths


async def test_tools_list_carries_schemas_and_the_session_header_mark(coord: CoordinatorProcess) -> None:
    """Every tool has input and output schemas; every session_id property is marked x-mcp-header."""
    async with Client(coord.mcp_url) as client:
        tools = (await client.list_tools()).tools
    names = {t.name for t in tools}
    assert names == {
        "echo",
        "session.create",
        "session.close",
        "fs.read",
        "fs.write",
        "fs.list",
        "run.python",
        "pkg.install",
        "task.get_status",
        "task.get_result",
        "artifact.get",
    }
    for tool in tools:
        assert tool.output_schema is not None, tool.name
        prop = tool.input_schema.get("properties", {}).get("session_id")
        if prop is not None:
            assert prop["x-mcp-header"] == "Session-Id", tool.name


async def test_a_call_without_session_id_opens_a_session_and_returns_its_id(
    coord: CoordinatorProcess,
) -> None:
    """A 2026-07-28 call without session_id gets a fresh session, named in the result and its text."""
    result = await call_tool(coord, "fs.write", {"path": "a.txt", "content": "hi"})
    sid = result.structured_content["session_id"]
    assert f'session_id="{sid}"' in result_text(result)
    again = await call_tool(coord, "fs.read", {"session_id": sid, "path": "a.txt"})
    assert result_text(again) == "hi"


async def test_two_handshake_clients_never_share_a_workspace(coord: CoordinatorProcess) -> None:
    """Implicit sessions are per transport session: a second client does not see the first one's files."""
    async with Client(coord.mcp_url, mode="legacy") as first:
        await first.call_tool("fs.write", {"path": "secret.txt", "content": "mine"})
        mine = await first.call_tool("fs.read", {"path": "secret.txt"})
        assert result_text(mine) == "mine"
        async with Client(coord.mcp_url, mode="legacy") as second:
            theirs = await second.call_tool("fs.read", {"path": "secret.txt"})
            assert theirs.is_error
            assert "does not exist" in result_text(theirs)


async def test_bad_arguments_are_a_tool_error_naming_the_argument(coord: CoordinatorProcess) -> None:
    """Schema violations come back as isError results that name the argument."""
    wrong_type = await call_tool(coord, "fs.read", {"path": 5})
    assert wrong_type.is_error
    assert result_text(wrong_type) == "invalid arguments for fs.read: argument 'path': 5 is not of type 'string'"
    missing = await call_tool(coord, "fs.read", {})
    assert result_text(missing) == "invalid arguments for fs.read: missing required argument 'path'"
    unknown = await call_tool(coord, "echo", {"text": "x", "loud": True})
    assert unknown.is_error and "unknown argument 'loud'" in result_text(unknown)
    both = await call_tool(coord, "run.python", {"code": "1", "file": "a.py"})
    assert both.is_error and "exactly one of 'code'" in result_text(both)


async def test_a_path_escape_is_refused_as_a_tool_error(coord: CoordinatorProcess) -> None:
    """../ out of the workspace is an isError result, never a file from outside."""
    result = await call_tool(coord, "fs.read", {"path": "../../../../etc/passwd"})
    assert result.is_error
    assert "outside the workspace" in result_text(result)
    assert "root:" not in result_text(result)


async def test_a_python_exception_is_a_tool_error_with_the_traceback(coord: CoordinatorProcess) -> None:
    """An exception in user code is isError with the traceback text and a non-zero exit code."""
    result = await call_tool(coord, "run.python", {"code": "1/0"})
    assert result.is_error
    assert "ZeroDivisionError" in result_text(result)
    assert result.structured_content["exit_code"] != 0


async def test_an_unknown_session_is_a_tool_error_telling_what_to_do(coord: CoordinatorProcess) -> None:
    """A made-up session_id gets the 'not found or expired; call session.create' message."""
    result = await call_tool(coord, "fs.list", {"session_id": "nope"})
    assert result.is_error
    assert result_text(result) == "session 'nope' not found or expired; call session.create to open a new one"


async def test_an_unknown_tool_is_a_protocol_error(coord: CoordinatorProcess) -> None:
    """tools/call of a name that is not a tool is a JSON-RPC error, not a result."""
    async with Client(coord.mcp_url) as client:
        with pytest.raises(MCPError) as err:
            await client.call_tool("fs.delete_everything", {})
    assert "Unknown tool" in str(err.value)


async def test_async_run_is_polled_to_its_result(coord: CoordinatorProcess) -> None:
    """run.python with async: true returns a task id; get_status and get_result answer for it."""
    async with Client(coord.mcp_url) as client:
        sid = (await client.call_tool("session.create", {})).structured_content["session_id"]
        started = await client.call_tool("run.python", {"session_id": sid, "code": "print('hello')", "async": True})
        task_id = started.structured_content["task_id"]
        status = await client.call_tool("task.get_status", {"task_id": task_id})
        assert status.structured_content["status"] in {"running", "completed"}
        for _ in range(200):
            result = await client.call_tool("task.get_result", {"task_id": task_id})
            if result.structured_content["status"] != "running":
                break
        assert result.structured_content["status"] == "completed"
        assert result.structured_content["result"]["stdout"] == "hello\n"


async def test_unknown_task_ids_are_clear_tool_errors(coord: CoordinatorProcess) -> None:
    """task.get_status and task.get_result answer an unknown id with isError, never a crash."""
    for tool in ("task.get_status", "task.get_result"):
        result = await call_tool(coord, tool, {"task_id": "task_missing"})
        assert result.is_error
        assert "task 'task_missing' not found" in result_text(result)


async def test_progress_notifications_arrive_during_a_long_run(coord: CoordinatorProcess) -> None:
    """With a progress callback, a run longer than a second reports progress before its result."""
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    result = await call_tool(
        coord,
        "run.python",
        {"code": "import time; time.sleep(1.6); print('ok')"},
        progress_callback=on_progress,
    )
    assert not result.is_error, result_text(result)
    assert seen and seen[0] == 1.0


async def test_session_close_deletes_the_workspace(coord: CoordinatorProcess, tmp_path: Path) -> None:
    """session.close removes the session; using it afterwards is 'not found'."""
    async with Client(coord.mcp_url) as client:
        sid = (await client.call_tool("session.create", {})).structured_content["session_id"]
        closed = await client.call_tool("session.close", {"session_id": sid})
        assert closed.structured_content == {"session_id": sid, "closed": True}
        after = await client.call_tool("fs.list", {"session_id": sid})
        assert after.is_error and "not found or expired" in result_text(after)


async def test_closing_a_session_twice_is_not_an_error(coord: CoordinatorProcess) -> None:
    """session.close is idempotent, as its annotation says: the second close answers closed: false."""
    async with Client(coord.mcp_url) as client:
        sid = (await client.call_tool("session.create", {})).structured_content["session_id"]
        await client.call_tool("session.close", {"session_id": sid})
        again = await client.call_tool("session.close", {"session_id": sid})
        assert not again.is_error, result_text(again)
        assert again.structured_content == {"session_id": sid, "closed": False}


async def test_every_call_leaves_an_audit_record(coord: CoordinatorProcess) -> None:
    """The file audit backend has a record per call with tool, outcome, trace id and protocol version."""
    await call_tool(coord, "echo", {"text": "audited-" + "x" * 2000})
    records = [r for r in coord.audit_records() if r["tool"] == "echo" and isinstance(r["arguments"]["text"], dict)]
    assert records, "no truncated echo record"
    record = records[-1]
    assert record["arguments"]["text"]["bytes"] == 2008
    assert len(record["arguments"]["text"]["sha256"]) == 64
    assert record["outcome"] == "success"
    assert len(record["trace_id"]) == 32
    assert record["transport"] == "streamable-http"
    assert record["protocol_version"]


async def test_long_output_is_cut_in_the_text_the_model_reads_but_kept_whole_in_structured_content(
    tmp_path: Path,
) -> None:
    """Past limits.max_result_text_chars the text ends with a note; structuredContent keeps every byte."""
    proc = start_coordinator(tmp_path, config={"limits": {"max_result_text_chars": 2000}})
    try:
        async with Client(proc.mcp_url) as client:
            result = await client.call_tool("run.python", {"code": "print('x' * 10000)"})
    finally:
        assert proc.stop() == 0
    assert not result.is_error, result_text(result)
    assert result.structured_content["stdout"] == "x" * 10000 + "\n"
    text = result_text(result)
    assert "more characters not shown (limits.max_result_text_chars = 2,000)" in text
    assert len(text) < 2500
