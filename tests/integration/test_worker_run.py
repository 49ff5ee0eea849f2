"""run.python against a real worker: output, stdin/args/file, scrubbed env, timeouts, rlimits."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from worker_fixtures import WorkerClient, WorkerProcess, start_worker

MEMORY = 256 * 1024 * 1024
LIMITS = {
    "run_timeout_seconds": 5,
    "max_output_bytes": 1000,
    "memory_bytes": MEMORY,
    "cpu_seconds": 1,
    "max_open_files": 64,
    "max_processes": 100,
    "max_file_bytes": 100_000,
}


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    proc = start_worker(tmp_path_factory.mktemp("run"), env={"WORKER_SECRET_TOKEN": "hunter2"}, limits=LIMITS)
    yield proc
    assert proc.stop() == 0


@pytest.fixture
async def sid(api: WorkerClient) -> str:
    return await api.new_session()


async def run(api: WorkerClient, sid: str, **body: object) -> dict[str, object]:
    status, answer = await api.op(sid, "run/python", body)
    assert status == 200, answer
    return dict(answer)


def _dead(pid: int) -> bool:
    """True when `pid` is gone or a zombie (exited, not yet reaped by init)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def _wait_dead(pid: int) -> bool:
    async with asyncio.timeout(5):
        while not _dead(pid):
            await asyncio.sleep(0.01)
    return True


async def test_print_returns_stdout_exit_code_and_duration(api: WorkerClient, sid: str) -> None:
    """print(1) gives exit_code 0, '1\\n' on stdout, nothing on stderr, and no truncation."""
    answer = await run(api, sid, code="print(1)")
    assert answer["exit_code"] == 0
    assert answer["stdout"] == "1\n"
    assert answer["stderr"] == ""
    assert answer["stdout_truncated"] is False and answer["stderr_truncated"] is False
    assert isinstance(answer["duration_ms"], float)


async def test_stdout_and_stderr_come_back_separately(api: WorkerClient, sid: str) -> None:
    """Writes to stderr do not mix into stdout."""
    answer = await run(api, sid, code="import sys; print('out'); print('err', file=sys.stderr)")
    assert (answer["stdout"], answer["stderr"]) == ("out\n", "err\n")


async def test_exception_is_a_result_with_nonzero_exit_code(api: WorkerClient, sid: str) -> None:
    """A failing program is the user's outcome (200), not a worker error."""
    answer = await run(api, sid, code="raise ValueError('boom')")
    assert answer["exit_code"] == 1
    assert "ValueError: boom" in str(answer["stderr"])


async def test_args_and_stdin_reach_the_program(api: WorkerClient, sid: str) -> None:
    """args become sys.argv[1:] and stdin is readable."""
    code = "import sys, json; print(json.dumps([sys.argv, sys.stdin.read()]))"
    answer = await run(api, sid, code=code, args=["a", "b c"], stdin="hello\n")
    assert json.loads(str(answer["stdout"])) == [["-c", "a", "b c"], "hello\n"]


async def test_file_mode_runs_a_workspace_script(api: WorkerClient, sid: str) -> None:
    """`file` runs a script written with fs.write; it can import a sibling module from the workspace."""
    await api.op(sid, "fs/write", {"path": "pkg/helper.py", "content": "VALUE = 42\n"})
    await api.op(
        sid,
        "fs/write",
        {
            "path": "main.py",
            "content": "import sys\nfrom pkg.helper import VALUE\nprint(VALUE, sys.argv[1])\n",
        },
    )
    answer = await run(api, sid, file="main.py", args=["x"])
    assert answer["stdout"] == "42 x\n"


async def test_code_mode_can_import_workspace_modules(api: WorkerClient, sid: str) -> None:
    """The workspace (cwd) is on sys.path for inline code, as with python -c."""
    await api.op(sid, "fs/write", {"path": "mymod.py", "content": "X = 'from workspace'\n"})
    assert (await run(api, sid, code="import mymod; print(mymod.X)"))["stdout"] == "from workspace\n"


async def test_cwd_home_and_environment_are_scrubbed(api: WorkerClient, sid: str, worker: WorkerProcess) -> None:
    """cwd and HOME are the workspace; only allowlisted variables exist; the worker's secrets do not leak."""
    code = "import os, json; print(json.dumps([os.getcwd(), dict(os.environ)]))"
    cwd, env = json.loads(str((await run(api, sid, code=code))["stdout"]))
    root = str(worker.session_dir(sid))
    assert cwd == root
    assert env["HOME"] == root
    assert set(env) <= {
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "PYTHONUNBUFFERED",
        "VIRTUAL_ENV",
        "TMPDIR",
        "LC_CTYPE",
    }
    assert env["TMPDIR"].startswith(root + "/")
    assert env["PATH"].endswith(":/usr/bin:/bin")
    assert "WORKER_SECRET_TOKEN" not in env


async def test_code_runs_in_the_session_venv_not_the_worker_env(api: WorkerClient, sid: str) -> None:
    """sys.prefix is the session venv, and the worker's own packages (aiohttp) are not importable."""
    code = "import sys, importlib.util as u; print(sys.prefix != sys.base_prefix, u.find_spec('aiohttp'))"
    assert (await run(api, sid, code=code))["stdout"] == "True None\n"


async def test_rlimits_are_applied_to_the_child(api: WorkerClient, sid: str) -> None:
    """CPU, address space, open files, file size and process count limits are set and cannot be raised."""
    code = (
        "import resource as r, json; print(json.dumps({n: r.getrlimit(getattr(r, 'RLIMIT_' + n)) "
        "for n in ['CPU', 'AS', 'NOFILE', 'FSIZE', 'NPROC']}))"
    )
    limits = json.loads(str((await run(api, sid, code=code))["stdout"]))
    assert limits == {
        "CPU": [1, 2],
        "AS": [MEMORY, MEMORY],
        "NOFILE": [64, 64],
        "FSIZE": [100_000, 100_000],
        "NPROC": [100, 100],
    }


async def test_memory_limit_stops_a_large_allocation(api: WorkerClient, sid: str) -> None:
    """Allocating past limits.memory_bytes fails with MemoryError inside the program."""
    answer = await run(api, sid, code=f"b = bytearray({2 * MEMORY})")
    assert answer["exit_code"] == 1
    assert "MemoryError" in str(answer["stderr"])


async def test_file_size_limit_stops_a_large_write(api: WorkerClient, sid: str) -> None:
    """Writing past RLIMIT_FSIZE fails (EFBIG) instead of filling the disk."""
    answer = await run(api, sid, code="open('big', 'wb').write(b'x' * 200_000)")
    assert answer["exit_code"] != 0
    assert "File too large" in str(answer["stderr"])


async def test_open_files_limit_stops_a_descriptor_leak(api: WorkerClient, sid: str) -> None:
    """Opening more files than limits.max_open_files fails with EMFILE."""
    answer = await run(api, sid, code="fs = [open('/dev/null') for _ in range(200)]")
    assert "Too many open files" in str(answer["stderr"])


async def test_cpu_limit_kills_a_busy_loop(api: WorkerClient, sid: str) -> None:
    """A loop past limits.cpu_seconds is killed by SIGXCPU (exit code -24) before the wall timeout."""
    answer = await run(api, sid, code="while True: pass")
    assert answer["exit_code"] == -24


async def test_output_cap_truncates_each_stream_separately(api: WorkerClient, sid: str) -> None:
    """Past limits.max_output_bytes the stream is cut and flagged; the other stream is intact."""
    answer = await run(api, sid, code="import sys; sys.stdout.write('x' * 50_000); sys.stderr.write('e')")
    assert answer["stdout"] == "x" * 1000
    assert answer["stdout_truncated"] is True
    assert (answer["stderr"], answer["stderr_truncated"]) == ("e", False)


async def test_timeout_kills_the_process_group_including_a_forked_grandchild(
    api: WorkerClient, sid: str, worker: WorkerProcess
) -> None:
    """On timeout the whole group dies: the grandchild's PID is gone, and partial output comes back."""
    code = (
        "import os, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    open('grandchild.pid', 'w').write(str(os.getpid()))\n"
        "    time.sleep(300)\n"
        "    os._exit(0)\n"
        "while not os.path.exists('grandchild.pid'): time.sleep(0.01)\n"
        "print('started', flush=True)\n"
        "time.sleep(300)\n"
    )
    status, answer = await api.op(sid, "run/python", {"code": code, "timeout": 1})
    assert status == 504
    assert answer["error"]["code"] == "timeout"
    assert answer["error"]["details"]["stdout"] == "started\n"
    pid = int((worker.session_dir(sid) / "grandchild.pid").read_text())
    assert await _wait_dead(pid)


async def test_a_caller_that_hangs_up_mid_run_gets_its_process_group_killed(tmp_path: Path) -> None:
    """A coordinator that dies or gives up mid-call leaves no run behind: the group is killed, the session freed.

    The run timeout here is far longer than the bounded wait, so only the hang-up can end the run in time.
    """
    worker = start_worker(tmp_path, limits={"run_timeout_seconds": 600})
    try:
        async with aiohttp.ClientSession() as http:
            api = WorkerClient(http, worker.url)
            sid = await api.new_session()
            code = "import os, time\nopen('run.pid', 'w').write(str(os.getpid()))\ntime.sleep(600)\n"
            call = asyncio.create_task(api.op(sid, "run/python", {"code": code, "timeout": 600}))
            pid_file = worker.session_dir(sid) / "run.pid"
            async with asyncio.timeout(10):
                while not (pid_file.exists() and pid_file.read_text()):
                    await asyncio.sleep(0.01)
            call.cancel()  # closes the connection, as a killed coordinator's would be
            with pytest.raises(asyncio.CancelledError):
                await call
            assert await _wait_dead(int(pid_file.read_text()))
            answer = await run(api, sid, code="print('next')")  # the session's FIFO is free again
            assert answer["stdout"] == "next\n"
    finally:
        assert worker.stop() == 0


async def test_background_grandchild_dies_when_the_program_exits(
    api: WorkerClient, sid: str, worker: WorkerProcess
) -> None:
    """A child left running in the background does not outlive its run (nor hold the call open)."""
    code = (
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        "open('bg.pid', 'w').write(str(p.pid))\n"
        "print('done')\n"
    )
    answer = await run(api, sid, code=code)
    assert answer["stdout"] == "done\n"
    assert await _wait_dead(int((worker.session_dir(sid) / "bg.pid").read_text()))


async def test_timeout_is_capped_by_config(api: WorkerClient, sid: str) -> None:
    """A requested timeout above limits.run_timeout_seconds is cut to it."""
    status, answer = await api.op(sid, "run/python", {"code": "import time; time.sleep(60)", "timeout": 3600})
    assert status == 504
    assert "5s" in answer["error"]["message"]


async def test_code_and_file_together_are_invalid(api: WorkerClient, sid: str) -> None:
    """Exactly one of code or file is required."""
    for body in (
        {},
        {"code": "1", "file": "x.py"},
        {"code": 1},
        {"code": "1", "args": [1]},
        {"code": "1", "timeout": -1},
    ):
        status, answer = await api.op(sid, "run/python", body)
        assert (status, answer["error"]["code"]) == (400, "invalid_argument"), body


async def test_missing_script_file_is_not_found(api: WorkerClient, sid: str) -> None:
    """file naming nothing answers not_found."""
    status, answer = await api.op(sid, "run/python", {"file": "absent.py"})
    assert (status, answer["error"]["code"]) == (404, "not_found")


async def test_session_delete_kills_a_running_program(api: WorkerClient, sid: str, worker: WorkerProcess) -> None:
    """DELETE during a run kills its process group and removes the workspace."""
    code = "import os, time; open('me.pid', 'w').write(str(os.getpid())); time.sleep(300)"
    task = asyncio.create_task(api.op(sid, "run/python", {"code": code}))
    pid_file = worker.session_dir(sid) / "me.pid"
    async with asyncio.timeout(10):
        while not (pid_file.exists() and pid_file.read_text()):
            await asyncio.sleep(0.01)
    pid = int(pid_file.read_text())
    assert (await api.call("DELETE", f"/v1/sessions/{sid}"))[0] == 200
    status, _answer = await task
    assert status in (200, 503)
    assert await _wait_dead(pid)
    assert not worker.session_dir(sid).exists()
    assert os.path.exists(worker.workspace_root)
