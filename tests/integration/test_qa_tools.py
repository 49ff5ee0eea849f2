"""QA findings on the tools, seen the way a model sees them: through a real coordinator and the SDK client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from coordinator_fixtures import CoordinatorProcess, http_get, result_text, start_coordinator
from mcp import Client
from mcp.shared.exceptions import MCPError

BODY_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def coord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoordinatorProcess]:
    tmp = tmp_path_factory.mktemp("qa-tools")
    proc = start_coordinator(tmp, config={"limits": {"max_body_bytes": BODY_LIMIT}})
    yield proc
    assert proc.stop() == 0


async def test_fs_read_text_tells_the_model_the_file_continues_and_where(coord: CoordinatorProcess) -> None:
    """A partial fs.read says in its text which bytes it gave and the offset to read the rest from."""
    async with Client(coord.mcp_url, mode="legacy") as client:
        await client.call_tool("fs.write", {"path": "notes.txt", "content": "abcdefghij"})
        first = await client.call_tool("fs.read", {"path": "notes.txt", "limit": 4})
        rest = await client.call_tool("fs.read", {"path": "notes.txt", "offset": 4})
    assert first.structured_content["eof"] is False
    assert result_text(first).startswith("abcd\n")
    assert "call fs.read again with offset=4" in result_text(first)
    assert result_text(rest) == "efghij"


async def test_fs_list_double_star_glob_finds_files_at_every_depth(coord: CoordinatorProcess) -> None:
    """`**/*.csv`, the schema's own example, lists top-level and nested matches without `recursive`."""
    async with Client(coord.mcp_url, mode="legacy") as client:
        for path in ("top.csv", "a/mid.csv", "a/b/deep.csv", "a/x.py"):
            await client.call_tool("fs.write", {"path": path, "content": "1"})
        listed = await client.call_tool("fs.list", {"glob": "**/*.csv"})
        nested = await client.call_tool("fs.list", {"path": "a", "glob": "**/*.csv"})
    assert not listed.is_error, result_text(listed)
    assert [e["path"] for e in listed.structured_content["entries"]] == ["a/b/deep.csv", "a/mid.csv", "top.csv"]
    assert [e["path"] for e in nested.structured_content["entries"]] == ["a/b/deep.csv", "a/mid.csv"]


async def test_fs_write_to_a_path_ending_in_a_slash_is_refused_not_written_as_a_file(
    coord: CoordinatorProcess,
) -> None:
    """`dir/` names a directory: the write fails and says so, and no file called `dir` appears."""
    async with Client(coord.mcp_url, mode="legacy") as client:
        wrote = await client.call_tool("fs.write", {"path": "out/", "content": "x"})
        listed = await client.call_tool("fs.list", {})
    assert wrote.is_error
    assert "ends with '/'" in result_text(wrote)
    assert "out" not in {e["path"] for e in listed.structured_content["entries"]}


async def test_a_program_running_past_its_timeout_is_not_a_worker_error(coord: CoordinatorProcess) -> None:
    """run.python past its own timeout is the user's outcome: coordinator_worker_errors_total stays flat."""
    async with Client(coord.mcp_url, mode="legacy") as client:
        ran = await client.call_tool("run.python", {"code": "while True:\n    pass", "timeout": 0.5})
    assert ran.is_error
    assert "ran past its timeout of 0.5s" in result_text(ran)
    assert "pass a larger timeout" in result_text(ran)
    status, body = await asyncio.to_thread(http_get, coord.metrics_url)
    assert status == 200
    assert "coordinator_worker_errors_total{" not in body.decode()


async def test_an_oversize_request_tells_the_model_to_write_in_appended_parts(coord: CoordinatorProcess) -> None:
    """A write over limits.max_body_bytes is refused with a message naming the limit and `append: true`."""
    async with Client(coord.mcp_url) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("fs.write", {"path": "big.txt", "content": "x" * (2 * BODY_LIMIT)})
    message = str(refused.value)
    assert "limits.max_body_bytes" in message
    assert "append: true" in message


async def test_fs_list_text_marks_symlinks_so_they_do_not_read_as_empty_files(coord: CoordinatorProcess) -> None:
    """A symlink in the listing text says it is one, instead of looking like a file without a size."""
    async with Client(coord.mcp_url, mode="legacy") as client:
        await client.call_tool("run.python", {"code": "import os; os.symlink('/etc', 'etc')"})
        listed = await client.call_tool("fs.list", {})
    assert "etc  (symlink, not followed)" in result_text(listed).splitlines()


async def test_an_async_run_killed_by_session_close_says_so_not_internal_error(coord: CoordinatorProcess) -> None:
    """Closing a session kills its async run; task.get_result explains that, without 'internal error'."""
    async with Client(coord.mcp_url) as client:
        sid = (await client.call_tool("session.create", {})).structured_content["session_id"]
        started = await client.call_tool(
            "run.python", {"session_id": sid, "code": "import time\ntime.sleep(600)", "async": True}
        )
        task_id = started.structured_content["task_id"]
        closed = await client.call_tool("session.close", {"session_id": sid})
        assert not closed.is_error, result_text(closed)
        # session.close returns once the worker killed the run and answered it; the task records
        # that answer within a round trip or two (bounded, no sleeping).
        for _ in range(200):
            status = await client.call_tool("task.get_status", {"task_id": task_id})
            if status.structured_content["status"] != "running":
                break
        outcome = await client.call_tool("task.get_result", {"task_id": task_id})
    assert outcome.is_error
    assert result_text(outcome) == (
        "run.python failed: the run was killed: its session was deleted or the worker is shutting down; "
        "try again shortly (after session.create if this session was closed)"
    )


async def test_an_over_long_file_name_is_explained_without_the_worker_url(coord: CoordinatorProcess) -> None:
    """A 300-byte name fails with the 255-byte rule and a fix, not the worker's internal request path."""
    async with Client(coord.mcp_url, mode="legacy") as client:
        wrote = await client.call_tool("fs.write", {"path": "n" * 300, "content": "x"})
    assert wrote.is_error
    assert wrote.content[0].text == (
        "fs.write failed: File name too long: a file or directory name is too long (at most 255 bytes per "
        "name); use a shorter one"
    )
