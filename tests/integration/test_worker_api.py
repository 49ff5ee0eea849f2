"""The worker HTTP API end to end against a real worker process: sessions, files, artifacts, errors."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator

import pytest
from worker_fixtures import WorkerClient, WorkerProcess, start_worker


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    proc = start_worker(
        tmp_path_factory.mktemp("api"),
        worker_id="api-worker",
        limits={"max_file_bytes": 4096, "max_read_bytes": 1000, "max_artifact_bytes": 2048, "max_files": 5},
    )
    yield proc
    assert proc.stop() == 0


async def test_health_reports_status_worker_id_sessions_and_capacity(api: WorkerClient) -> None:
    """GET /health answers the documented fields with 200 while serving."""
    status, body = await api.call("GET", "/health")
    assert status == 200
    assert body["status"] == "ok"
    assert body["worker_id"] == "api-worker"
    assert body["capacity"] == 64
    assert isinstance(body["sessions"], int)


async def test_session_create_and_delete_are_idempotent(api: WorkerClient, worker: WorkerProcess) -> None:
    """PUT twice creates once; DELETE twice deletes once and removes the directory."""
    assert await api.call("PUT", "/v1/sessions/idem-1", {}) == (
        200,
        {"session_id": "idem-1", "created": True},
    )
    assert await api.call("PUT", "/v1/sessions/idem-1", {}) == (
        200,
        {"session_id": "idem-1", "created": False},
    )
    assert worker.session_dir("idem-1").is_dir()
    assert await api.call("DELETE", "/v1/sessions/idem-1") == (200, {"session_id": "idem-1", "deleted": True})
    assert not worker.session_dir("idem-1").exists()
    assert await api.call("DELETE", "/v1/sessions/idem-1") == (
        200,
        {"session_id": "idem-1", "deleted": False},
    )


async def test_session_id_with_bad_characters_is_invalid_argument(api: WorkerClient) -> None:
    """A session id outside [A-Za-z0-9_-] is refused."""
    status, body = await api.call("PUT", "/v1/sessions/bad.id", {})
    assert status == 400
    assert body["error"]["code"] == "invalid_argument"
    assert "bad.id" in body["error"]["message"]


async def test_operation_on_unknown_session_is_session_not_found(api: WorkerClient) -> None:
    """Every operation names an existing session."""
    status, body = await api.op("never-created", "fs/read", {"path": "x"})
    assert status == 404
    assert body["error"]["code"] == "session_not_found"


async def test_write_then_read_round_trips_text_and_creates_parents(api: WorkerClient) -> None:
    """fs.write creates missing directories; fs.read returns the same UTF-8 text."""
    sid = await api.new_session()
    status, body = await api.op(sid, "fs/write", {"path": "deep/er/note.txt", "content": "héllo\n"})
    assert status == 200
    assert body == {"path": "deep/er/note.txt", "bytes_written": 7, "size": 7}
    status, body = await api.op(sid, "fs/read", {"path": "deep/er/note.txt"})
    assert status == 200
    assert body["content"] == "héllo\n"
    assert body["encoding"] == "utf-8"
    assert body["eof"] is True


async def test_write_accepts_contents_as_an_alias(api: WorkerClient) -> None:
    """The upstream tool spelling `contents` works like `content`."""
    sid = await api.new_session()
    assert (await api.op(sid, "fs/write", {"path": "a.txt", "contents": "x"}))[0] == 200
    assert (await api.op(sid, "fs/read", {"path": "a.txt"}))[1]["content"] == "x"


async def test_binary_file_reads_back_base64(api: WorkerClient) -> None:
    """Bytes that are not UTF-8 text come back base64-encoded."""
    sid = await api.new_session()
    raw = bytes(range(256))
    await api.op(sid, "fs/write", {"path": "b.bin", "content": base64.b64encode(raw).decode(), "encoding": "base64"})
    status, body = await api.op(sid, "fs/read", {"path": "b.bin"})
    assert status == 200
    assert body["encoding"] == "base64"
    assert base64.b64decode(body["content"]) == raw


async def test_read_pages_a_large_file_with_offset_and_limit(api: WorkerClient) -> None:
    """offset/limit page through a file; reads are capped by limits.max_read_bytes."""
    sid = await api.new_session()
    text = "".join(f"{i:04d}\n" for i in range(600))  # 3000 bytes
    await api.op(sid, "fs/write", {"path": "big.txt", "content": text})
    status, body = await api.op(sid, "fs/read", {"path": "big.txt"})
    assert (status, body["length"], body["eof"], body["size"]) == (200, 1000, False, 3000)
    status, body = await api.op(sid, "fs/read", {"path": "big.txt", "offset": 2990, "limit": 100})
    assert body["content"] == text[2990:]
    assert body["eof"] is True


async def test_append_adds_to_an_existing_file(api: WorkerClient) -> None:
    """append: true keeps the old content."""
    sid = await api.new_session()
    await api.op(sid, "fs/write", {"path": "log.txt", "content": "a"})
    status, body = await api.op(sid, "fs/write", {"path": "log.txt", "content": "b", "append": True})
    assert (status, body["size"]) == (200, 2)
    assert (await api.op(sid, "fs/read", {"path": "log.txt"}))[1]["content"] == "ab"


async def test_write_over_max_file_bytes_is_too_large(api: WorkerClient) -> None:
    """A write beyond limits.max_file_bytes is refused and leaves nothing behind."""
    sid = await api.new_session()
    status, body = await api.op(sid, "fs/write", {"path": "huge.txt", "content": "x" * 5000})
    assert status == 413
    assert body["error"]["code"] == "too_large"
    assert "limits.max_file_bytes" in body["error"]["message"]
    assert (await api.op(sid, "fs/list", {}))[1]["entries"] == []


async def test_request_body_over_the_cap_is_too_large(api: WorkerClient) -> None:
    """A body larger than the worker accepts answers too_large, not a bare 413 page."""
    sid = await api.new_session()
    payload = io.BytesIO(json.dumps({"path": "x", "content": "x" * (2 * 1024 * 1024)}).encode())
    headers = {"Content-Type": "application/json"}
    async with api.http.post(f"{api.url}/v1/sessions/{sid}/fs/write", data=payload, headers=headers) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "too_large"


async def test_write_beyond_max_files_is_refused(api: WorkerClient) -> None:
    """limits.max_files bounds how many files one workspace holds."""
    sid = await api.new_session()
    for i in range(5):
        assert (await api.op(sid, "fs/write", {"path": f"f{i}", "content": ""}))[0] == 200
    status, body = await api.op(sid, "fs/write", {"path": "f5", "content": ""})
    assert status == 413
    assert "limits.max_files" in body["error"]["message"]
    assert (await api.op(sid, "fs/write", {"path": "f0", "content": "overwrite ok"}))[0] == 200


async def test_write_leaves_no_temp_file_behind(api: WorkerClient, worker: WorkerProcess) -> None:
    """The atomic write renames its temp file into place."""
    sid = await api.new_session()
    await api.op(sid, "fs/write", {"path": "d/x.txt", "content": "1"})
    await api.op(sid, "fs/write", {"path": "d/x.txt", "content": "2"})
    assert sorted(p.name for p in (worker.session_dir(sid) / "d").iterdir()) == ["x.txt"]


async def test_list_gives_type_size_and_mtime_with_recursion_and_glob(api: WorkerClient) -> None:
    """fs.list is flat by default, recursive on request, and filters by glob."""
    sid = await api.new_session()
    await api.op(sid, "fs/write", {"path": "src/app.py", "content": "print(1)\n"})
    await api.op(sid, "fs/write", {"path": "README.md", "content": "hi"})
    status, body = await api.op(sid, "fs/list", {})
    assert status == 200
    assert [(e["path"], e["type"]) for e in body["entries"]] == [("README.md", "file"), ("src", "dir")]
    assert body["entries"][0]["size"] == 2
    assert isinstance(body["entries"][0]["mtime"], float)
    _, body = await api.op(sid, "fs/list", {"recursive": True, "glob": "*.py"})
    assert [e["path"] for e in body["entries"]] == ["src/app.py"]
    _, body = await api.op(sid, "fs/list", {"path": "src"})
    assert [e["path"] for e in body["entries"]] == ["src/app.py"]


async def test_missing_file_is_not_found(api: WorkerClient) -> None:
    """Reading or listing something absent answers not_found."""
    sid = await api.new_session()
    assert (await api.op(sid, "fs/read", {"path": "nope.txt"}))[1]["error"]["code"] == "not_found"
    assert (await api.op(sid, "fs/list", {"path": "nodir"}))[1]["error"]["code"] == "not_found"


async def test_bad_arguments_are_invalid_argument_with_help(api: WorkerClient) -> None:
    """Missing, ill-typed and unknown fields name the field."""
    sid = await api.new_session()
    cases = [
        ({}, "path is required"),
        ({"path": 3}, "path must be a string"),
        ({"path": "x", "offset": -1}, "offset must be"),
        ({"path": "x", "colour": 1}, "unknown field(s) colour"),
    ]
    for body, needle in cases:
        status, answer = await api.op(sid, "fs/read", body)
        assert status == 400, body
        assert answer["error"]["code"] == "invalid_argument"
        assert needle in answer["error"]["message"]


async def test_non_json_body_is_invalid_argument(api: WorkerClient) -> None:
    """A body that is not JSON is refused with the one error shape."""
    sid = await api.new_session()
    async with api.http.post(f"{api.url}/v1/sessions/{sid}/fs/read", data=b"{nope") as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "invalid_argument"


async def test_unknown_endpoint_is_not_found_in_the_error_shape(api: WorkerClient) -> None:
    """Routing misses use the same error shape."""
    status, body = await api.call("GET", "/v1/nothing")
    assert status == 404
    assert body["error"]["code"] == "not_found"


async def test_artifact_get_returns_a_file_under_artifacts(api: WorkerClient) -> None:
    """artifact.get reads under artifacts/ and returns base64 with a mime type."""
    sid = await api.new_session()
    await api.op(sid, "fs/write", {"path": "artifacts/out/report.json", "content": '{"ok": true}'})
    status, body = await api.op(sid, "artifact/get", {"path": "out/report.json"})
    assert status == 200
    assert json.loads(base64.b64decode(body["content"])) == {"ok": True}
    assert body["mime_type"] == "application/json"
    assert body["size"] == 12


async def test_artifact_outside_artifacts_dir_is_refused(api: WorkerClient) -> None:
    """../ out of artifacts/ is path_outside_workspace even when it stays in the workspace."""
    sid = await api.new_session()
    await api.op(sid, "fs/write", {"path": "secret.txt", "content": "s"})
    await api.op(sid, "fs/write", {"path": "artifacts/a.txt", "content": "a"})
    status, body = await api.op(sid, "artifact/get", {"path": "../secret.txt"})
    assert status == 403
    assert body["error"]["code"] == "path_outside_workspace"


async def test_artifact_over_its_limit_is_too_large(api: WorkerClient) -> None:
    """limits.max_artifact_bytes caps artifact.get."""
    sid = await api.new_session()
    await api.op(sid, "fs/write", {"path": "artifacts/big.bin", "content": "x" * 3000})
    status, body = await api.op(sid, "artifact/get", {"path": "big.bin"})
    assert status == 413
    assert "limits.max_artifact_bytes" in body["error"]["message"]


async def test_missing_artifact_is_not_found(api: WorkerClient) -> None:
    """artifact.get of an absent file answers not_found."""
    sid = await api.new_session()
    status, body = await api.op(sid, "artifact/get", {"path": "none.png"})
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_request_log_lines_carry_session_and_trace_ids(api: WorkerClient, worker: WorkerProcess) -> None:
    """Each call logs one JSON line with worker_id, session_id and the traceparent's trace id."""
    sid = await api.new_session()
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    await api.call(
        "POST",
        f"/v1/sessions/{sid}/fs/write",
        {"path": "t.txt", "content": "t"},
        headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
    )
    lines = [x for x in worker.logs() if x.get("trace_id") == trace]
    assert lines, "no log line with the trace id"
    line = lines[-1]
    assert line["session_id"] == sid
    assert line["worker_id"] == "api-worker"
    assert {"time", "level", "msg"} <= set(line)


async def test_over_long_file_name_is_invalid_argument(api: WorkerClient) -> None:
    """A 300-character name is refused by the filesystem and reported as invalid_argument, not internal."""
    sid = await api.new_session()
    status, body = await api.op(sid, "fs/write", {"path": "n" * 300, "content": "x"})
    assert (status, body["error"]["code"]) == (400, "invalid_argument")
    assert "File name too long" in body["error"]["message"]


async def test_worker_side_failure_is_internal_without_a_stack_trace(api: WorkerClient, worker: WorkerProcess) -> None:
    """When the worker's own state is broken (the private dir is a file), the answer is `internal`."""
    sid = await api.new_session()
    private = worker.workspace_root / ".private" / sid
    private.rmdir()
    private.write_text("not a directory")
    status, body = await api.op(sid, "run/python", {"code": "print(1)"})
    assert (status, body["error"]["code"]) == (500, "internal")
    assert "Traceback" not in body["error"]["message"]
    assert any(line.get("level") == "ERROR" and line.get("session_id") == sid for line in worker.logs())
