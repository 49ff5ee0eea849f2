"""Path safety against a real worker: absolute paths, `..`, user-made symlinks, a dir swapped mid-call."""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from worker_fixtures import WorkerClient, WorkerProcess, start_worker

RENAME_EXCHANGE = 2
AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)


def _exchange(a: Path, b: Path) -> None:
    """Swap two names atomically (renameat2 RENAME_EXCHANGE), so `a` always exists."""
    if _libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory outside every workspace holding a secret the worker must never serve."""
    path = tmp_path_factory.mktemp("outside")
    (path / "secret.txt").write_text("OUTSIDE")
    return path


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    proc = start_worker(tmp_path_factory.mktemp("paths"))
    yield proc
    assert proc.stop() == 0


async def _refused(api: WorkerClient, sid: str, op: str, body: dict[str, object]) -> None:
    status, answer = await api.op(sid, op, body)
    assert status == 403, (op, body, answer)
    assert answer["error"]["code"] == "path_outside_workspace"


async def _user_code(api: WorkerClient, sid: str, code: str) -> None:
    status, answer = await api.op(sid, "run/python", {"code": code})
    assert status == 200 and answer["exit_code"] == 0, answer


async def test_absolute_paths_are_refused_for_every_operation(api: WorkerClient) -> None:
    """/etc/passwd and friends are refused before anything is opened."""
    sid = await api.new_session()
    await _refused(api, sid, "fs/read", {"path": "/etc/passwd"})
    await _refused(api, sid, "fs/write", {"path": "/tmp/x", "content": "x"})
    await _refused(api, sid, "fs/list", {"path": "/"})
    await _refused(api, sid, "run/python", {"file": "/etc/hostname"})


async def test_dot_dot_out_of_the_workspace_is_refused(api: WorkerClient, worker: WorkerProcess) -> None:
    """`..` that climbs above the workspace root is refused, also into a sibling session."""
    sid = await api.new_session()
    other = await api.new_session()
    await api.op(other, "fs/write", {"path": "mine.txt", "content": "other session"})
    await _refused(api, sid, "fs/read", {"path": f"../{other}/mine.txt"})
    await _refused(api, sid, "fs/read", {"path": "a/../../x"})
    await _refused(api, sid, "fs/write", {"path": "../escape.txt", "content": "x"})
    await _refused(api, sid, "fs/list", {"path": ".."})
    assert not (worker.workspace_root / "escape.txt").exists()


async def test_dot_dot_that_stays_inside_is_allowed(api: WorkerClient) -> None:
    """`sub/../file` lands inside the workspace and works."""
    sid = await api.new_session()
    await api.op(sid, "fs/write", {"path": "sub/../file.txt", "content": "ok"})
    status, body = await api.op(sid, "fs/read", {"path": "file.txt"})
    assert (status, body["content"]) == (200, "ok")


async def test_names_starting_with_two_dots_are_legal(api: WorkerClient) -> None:
    """`..foo` is a file name, not a parent reference."""
    sid = await api.new_session()
    for path in ("..foo", "dir/..bar", "...", "..dir/..baz"):
        status, body = await api.op(sid, "fs/write", {"path": path, "content": path})
        assert status == 200, (path, body)
        status, body = await api.op(sid, "fs/read", {"path": path})
        assert (status, body["content"]) == (200, path)


async def test_user_made_symlink_to_a_directory_outside_is_refused(api: WorkerClient, outside: Path) -> None:
    """A symlink created by run.python that points outside cannot be read, listed or written through."""
    sid = await api.new_session()
    await _user_code(api, sid, f"import os; os.symlink({str(outside)!r}, 'out')")
    await _refused(api, sid, "fs/read", {"path": "out/secret.txt"})
    await _refused(api, sid, "fs/list", {"path": "out"})
    await _refused(api, sid, "fs/write", {"path": "out/planted.txt", "content": "x"})
    await _refused(api, sid, "artifact/get", {"path": "../out/secret.txt"})
    assert not (outside / "planted.txt").exists()


async def test_user_made_symlink_to_a_file_outside_is_refused(api: WorkerClient, outside: Path) -> None:
    """Reading or overwriting through a file symlink to the outside is refused; the target is untouched."""
    sid = await api.new_session()
    await _user_code(api, sid, f"import os; os.symlink({str(outside / 'secret.txt')!r}, 'pw')")
    await _refused(api, sid, "fs/read", {"path": "pw"})
    await _refused(api, sid, "fs/write", {"path": "pw", "content": "pwned"})
    await _refused(api, sid, "run/python", {"file": "pw"})
    assert (outside / "secret.txt").read_text() == "OUTSIDE"


async def test_relative_symlink_climbing_out_is_refused(api: WorkerClient) -> None:
    """A relative symlink whose target climbs above the root is refused."""
    sid = await api.new_session()
    await _user_code(api, sid, "import os; os.makedirs('a'); os.symlink('../../..', 'a/up')")
    await _refused(api, sid, "fs/read", {"path": "a/up/etc/passwd"})


async def test_symlink_into_an_artifacts_escape_is_refused(api: WorkerClient) -> None:
    """artifacts/ replaced by a symlink to the workspace root does not widen artifact.get."""
    sid = await api.new_session()
    await api.op(sid, "fs/write", {"path": "private.txt", "content": "p"})
    await _user_code(api, sid, "import os; os.symlink('.', 'artifacts')")
    await _refused(api, sid, "artifact/get", {"path": "private.txt"})


async def test_symlinks_that_stay_inside_are_followed(api: WorkerClient, worker: WorkerProcess) -> None:
    """Relative and absolute symlinks to places inside the workspace work."""
    sid = await api.new_session()
    await api.op(sid, "fs/write", {"path": "real/data.txt", "content": "inside"})
    root = worker.session_dir(sid)
    await _user_code(api, sid, f"import os; os.symlink('real', 'rel'); os.symlink({str(root / 'real')!r}, 'abs')")
    for path in ("rel/data.txt", "abs/data.txt"):
        status, body = await api.op(sid, "fs/read", {"path": path})
        assert (status, body["content"]) == (200, "inside"), path
    status, body = await api.op(sid, "fs/list", {})
    types = {e["path"]: e["type"] for e in body["entries"]}
    assert types == {"real": "dir", "rel": "symlink", "abs": "symlink"}


async def test_symlink_loop_is_invalid_argument(api: WorkerClient) -> None:
    """A symlink cycle ends with a clear error instead of hanging."""
    sid = await api.new_session()
    await _user_code(api, sid, "import os; os.symlink('b', 'a'); os.symlink('a', 'b')")
    status, body = await api.op(sid, "fs/read", {"path": "a"})
    assert status == 400
    assert "symlinks in a row" in body["error"]["message"]


async def test_directory_swapped_for_a_symlink_mid_operation_never_escapes(
    api: WorkerClient, worker: WorkerProcess, outside: Path
) -> None:
    """While another process swaps d/ for a symlink to the outside, reads and writes never cross."""
    sid = await api.new_session()
    await api.op(sid, "fs/write", {"path": "d/secret.txt", "content": "inside"})
    root = worker.session_dir(sid)
    os.symlink(outside, root / "d_swap")
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            _exchange(root / "d", root / "d_swap")  # d is now the symlink to the outside
            _exchange(root / "d", root / "d_swap")  # and the real directory again
            swaps += 1

    thread = threading.Thread(target=swapper)
    thread.start()
    seen: dict[str, int] = {}
    try:
        for i in range(300):
            status, body = await api.op(sid, "fs/read", {"path": "d/secret.txt"})
            outcome = body.get("content") if status == 200 else body["error"]["code"]
            seen[str(outcome)] = seen.get(str(outcome), 0) + 1
            await api.op(sid, "fs/write", {"path": f"d/w{i}.txt", "content": "x"})
    finally:
        stop.set()
        thread.join()
    assert swaps > 0
    assert "OUTSIDE" not in seen, seen
    assert set(seen) <= {"inside", "path_outside_workspace"}, seen
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
