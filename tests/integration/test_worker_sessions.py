"""Sessions against real workers: FIFO order, parallelism, capacity, reaping, orphans, drain, SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from worker_fixtures import WorkerClient, WorkerProcess, start_worker

from worker.app import begin_drain, create_app
from worker.config import load_config

WAIT_FOR_GO = "import os, time\nwhile not os.path.exists('go'): time.sleep(0.01)\n"


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    proc = start_worker(tmp_path_factory.mktemp("sessions"))
    yield proc
    assert proc.stop() == 0


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def api(worker: WorkerProcess, http: aiohttp.ClientSession) -> WorkerClient:
    return WorkerClient(http, worker.url)


async def _until(check: object, what: str, timeout: float = 10.0) -> None:
    """Poll an async predicate until it holds (bounded)."""
    async with asyncio.timeout(timeout):
        while not await check():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_calls_in_one_session_run_one_at_a_time_in_arrival_order(
    api: WorkerClient, worker: WorkerProcess
) -> None:
    """Calls queued behind a running call execute in the order they arrived, whatever their kind."""
    sid = await api.new_session()
    blocker = asyncio.create_task(
        api.op(sid, "run/python", {"code": WAIT_FOR_GO + "open('order.txt', 'a').write('blocker\\n')"})
    )

    async def busy() -> bool:
        return bool((await api.call("GET", f"/v1/sessions/{sid}"))[1]["busy"])

    await _until(busy, "blocker running")
    queued = []
    for k in range(1, 7):
        if k % 2:
            call = api.op(sid, "run/python", {"code": f"open('order.txt', 'a').write('{k}\\n')"})
        else:
            call = api.op(sid, "fs/write", {"path": "order.txt", "content": f"{k}\n", "append": True})
        queued.append(asyncio.create_task(call))

        async def waiting(n: int = k) -> bool:
            return (await api.call("GET", f"/v1/sessions/{sid}"))[1]["queued"] == n

        await _until(waiting, f"{k} calls queued")
    (worker.session_dir(sid) / "go").touch()
    results = await asyncio.gather(blocker, *queued)
    assert all(status == 200 for status, _ in results), results
    order = (worker.session_dir(sid) / "order.txt").read_text().split()
    assert order == ["blocker", "1", "2", "3", "4", "5", "6"]


async def test_different_sessions_run_in_parallel(api: WorkerClient, worker: WorkerProcess) -> None:
    """While one session's call is blocked, another session reads, writes and runs code."""
    blocked = await api.new_session()
    free = await api.new_session()
    task = asyncio.create_task(api.op(blocked, "run/python", {"code": WAIT_FOR_GO}))

    async def busy() -> bool:
        return bool((await api.call("GET", f"/v1/sessions/{blocked}"))[1]["busy"])

    await _until(busy, "blocked session running")
    assert (await api.op(free, "fs/write", {"path": "a", "content": "1"}))[0] == 200
    assert (await api.op(free, "run/python", {"code": "print(2)"}))[1]["stdout"] == "2\n"
    assert not task.done()
    (worker.session_dir(blocked) / "go").touch()
    assert (await task)[0] == 200


async def test_max_sessions_refuses_one_more_with_capacity_exhausted(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The third session on a max_sessions=2 worker is refused; freeing one admits it."""
    proc = start_worker(tmp_path, max_sessions=2)
    try:
        api = WorkerClient(http, proc.url)
        await api.new_session("one")
        await api.new_session("two")
        assert (await api.call("PUT", "/v1/sessions/one", {}))[0] == 200
        status, body = await api.call("PUT", "/v1/sessions/three", {})
        assert (status, body["error"]["code"]) == (503, "capacity_exhausted")
        assert "max_sessions" in body["error"]["message"]
        assert (await api.call("GET", "/health"))[1]["sessions"] == 2
        await api.call("DELETE", "/v1/sessions/one")
        assert (await api.call("PUT", "/v1/sessions/three", {}))[1]["created"] is True
    finally:
        assert proc.stop() == 0


async def test_idle_sessions_are_reaped_and_their_directory_deleted(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A session idle past session_idle_ttl_seconds disappears with its workspace; a busy one is spared."""
    proc = start_worker(tmp_path, session_idle_ttl_seconds=0.3, reap_interval_seconds=0.05)
    try:
        api = WorkerClient(http, proc.url)
        idle = await api.new_session()
        await api.op(idle, "fs/write", {"path": "f.txt", "content": "x"})
        busy = await api.new_session()
        long_run = await api.op(busy, "run/python", {"code": "import time; time.sleep(1); print('survived')"})
        assert long_run[1]["stdout"] == "survived\n"

        async def reaped() -> bool:
            return not proc.session_dir(idle).exists()

        await _until(reaped, "idle session reaped")
        status, body = await api.op(idle, "fs/read", {"path": "f.txt"})
        assert (status, body["error"]["code"]) == (404, "session_not_found")
        assert any(line.get("msg") == "session reaped" and line.get("session_id") == idle for line in proc.logs())
    finally:
        assert proc.stop() == 0


async def test_orphaned_workspaces_are_removed_at_start_when_configured(tmp_path: Path) -> None:
    """cleanup_orphans_on_start: true deletes leftover workspaces and venvs before serving."""
    root = tmp_path / "ws"
    (root / "orphan-1").mkdir(parents=True)
    (root / "orphan-1" / "data.txt").write_text("left over")
    (root / ".private" / "orphan-1" / "venv").mkdir(parents=True)
    proc = start_worker(tmp_path, workspace_root=str(root), cleanup_orphans_on_start=True)
    try:
        assert not (root / "orphan-1").exists()
        assert not (root / ".private" / "orphan-1").exists()
    finally:
        assert proc.stop() == 0


async def test_existing_workspace_is_adopted_when_orphan_cleanup_is_off(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """Without cleanup, PUT adopts a directory left on a shared volume (created: false) with its files."""
    root = tmp_path / "ws"
    (root / "kept").mkdir(parents=True)
    (root / "kept" / "data.txt").write_text("still here")
    proc = start_worker(tmp_path, workspace_root=str(root))
    try:
        api = WorkerClient(http, proc.url)
        assert await api.call("PUT", "/v1/sessions/kept", {}) == (
            200,
            {"session_id": "kept", "created": False},
        )
        assert (await api.op("kept", "fs/read", {"path": "data.txt"}))[1]["content"] == "still here"
    finally:
        assert proc.stop() == 0


async def test_sigterm_kills_running_children_and_exits_zero(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """SIGTERM during a long run kills the run's process group and the worker exits 0."""
    proc = start_worker(tmp_path)
    try:
        api = WorkerClient(http, proc.url)
        sid = await api.new_session()
        code = "import os, time; open('me.pid', 'w').write(str(os.getpid())); time.sleep(300)"
        task = asyncio.create_task(api.op(sid, "run/python", {"code": code}))
        pid_file = proc.session_dir(sid) / "me.pid"

        async def started() -> bool:
            return pid_file.exists() and bool(pid_file.read_text())

        await _until(started, "child started")
        child = int(pid_file.read_text())
        proc.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.proc.wait, 15) == 0
        try:
            status, body = await task
            assert status == 503 and body["error"]["code"] == "capacity_exhausted"
        except aiohttp.ClientError:
            pass  # the connection may close before the answer is written
        assert (
            not Path(f"/proc/{child}").exists()
            or Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        )
        assert any(line.get("msg") == "stopped" for line in proc.logs())
    finally:
        proc.stop()


async def test_draining_app_answers_health_503_and_refuses_new_work(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """create_app embedded under another AppRunner: after begin_drain, /health is 503 and PUT is refused."""
    app = create_app(load_config(env={}, overrides={"workspace_root": str(tmp_path / "ws"), "worker_id": "embedded"}))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    api = WorkerClient(http, f"http://127.0.0.1:{port}")
    try:
        assert await api.call("GET", "/health") == (
            200,
            {"status": "ok", "worker_id": "embedded", "sessions": 0, "capacity": 64},
        )
        sid = await api.new_session()
        await begin_drain(app)
        status, body = await api.call("GET", "/health")
        assert (status, body["status"]) == (503, "draining")
        status, body = await api.call("PUT", "/v1/sessions/another", {})
        assert (status, body["error"]["code"]) == (503, "capacity_exhausted")
        assert "draining" in body["error"]["message"]
        assert (await api.call("DELETE", f"/v1/sessions/{sid}"))[0] == 200
    finally:
        await runner.cleanup()


async def test_environment_overrides_the_config_file(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """WORKER_ID and MAX_SESSIONS from the environment beat the file, as /health shows."""
    proc = start_worker(
        tmp_path, worker_id="from-file", max_sessions=5, env={"WORKER_ID": "env-id", "MAX_SESSIONS": "3"}
    )
    try:
        status, body = await WorkerClient(http, proc.url).call("GET", "/health")
        assert (status, body["worker_id"], body["capacity"]) == (200, "env-id", 3)
    finally:
        assert proc.stop() == 0


def test_port_in_use_exits_1_with_a_helpful_log_line(tmp_path: Path) -> None:
    """A taken port ends the worker with exit code 1 and a log line saying what to change."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(RuntimeError, match=r"exited with 1") as info:
            start_worker(tmp_path, port=taken.getsockname()[1])
    assert "set port (or $PORT) to a free port" in str(info.value)
