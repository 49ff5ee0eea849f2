"""run.python: user code in a subprocess of the session venv, with a timeout, an output cap and rlimits."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.config import Limits
from worker.errors import WorkerError, invalid
from worker.processes import Captured, ProcessGroups, RLimits, run_captured
from worker.workspace import Workspace, open_final

# Runs the code file given as argv[1] as `python -c` would: __main__, sys.argv[0] == '-c', cwd on sys.path.
BOOTSTRAP = (
    "_s=__import__('sys');_p=_s.argv.pop(1);_s.argv[0]='-c';"
    "_c=compile(open(_p,'rb').read(),'<code>','exec');del _s,_p;exec(_c)"
)
SYSTEM_PATH = "/usr/bin:/bin"


@dataclass(frozen=True, slots=True)
class RunRequest:
    """A validated run.python call: exactly one of `code` or `file`."""

    code: str | None
    file: str | None
    args: tuple[str, ...]
    stdin: bytes | None
    timeout: float


def parse_run(body: dict[str, Any], limits: Limits) -> RunRequest:
    """Validate a run.python body; `timeout` is capped by limits.run_timeout_seconds."""
    code, file = body.get("code"), body.get("file")
    if (code is None) == (file is None):
        raise invalid("give exactly one of 'code' (Python source) or 'file' (a workspace path)")
    if code is not None and not isinstance(code, str):
        raise invalid(f"code must be a string, got {type(code).__name__}")
    if file is not None and not isinstance(file, str):
        raise invalid(f"file must be a string, got {type(file).__name__}")
    args = body.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) and "\x00" not in a for a in args):
        raise invalid("args must be a list of strings without NUL bytes")
    stdin = body.get("stdin")
    if stdin is not None and not isinstance(stdin, str):
        raise invalid(f"stdin must be a string, got {type(stdin).__name__}")
    return RunRequest(
        code=code,
        file=file,
        args=tuple(args),
        stdin=stdin.encode("utf-8", errors="surrogatepass") if stdin is not None else None,
        timeout=parse_timeout(body, limits.run_timeout_seconds, "limits.run_timeout_seconds"),
    )


def parse_timeout(body: dict[str, Any], ceiling: float, ceiling_name: str) -> float:
    """The call's `timeout` in seconds: default and ceiling `ceiling`."""
    raw = body.get("timeout")
    if raw is None:
        return ceiling
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
        raise invalid(
            f"timeout must be a positive number of seconds (at most {ceiling:g}, {ceiling_name}), got {raw!r}"
        )
    return min(float(raw), ceiling)


def child_env(workspace: Path, venv: Path) -> dict[str, str]:
    """The scrubbed environment of user code: an allowlist, nothing inherited from the worker."""
    return {
        "PATH": f"{venv}/bin:{SYSTEM_PATH}",
        "HOME": str(workspace),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "VIRTUAL_ENV": str(venv),
        "TMPDIR": str(workspace / ".tmp"),
    }


def rlimits(limits: Limits) -> RLimits:
    """The rlimits of a run, from config."""
    return RLimits(
        cpu_seconds=limits.cpu_seconds,
        memory_bytes=limits.memory_bytes,
        file_bytes=limits.max_file_bytes,
        open_files=limits.max_open_files,
        processes=limits.max_processes,
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write a worker-owned file without following a symlink someone put in its place."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_symlink():
            path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _script_path(ws: Workspace, file: str) -> Path:
    resolved = ws.resolve(file, field="file")
    try:
        fd = open_final(resolved, os.O_RDONLY | os.O_NONBLOCK, file)
        os.close(fd)
    finally:
        resolved.close()
    return ws.root.joinpath(*resolved.parts)


async def run_python(
    req: RunRequest,
    *,
    ws: Workspace,
    python: Path,
    venv: Path,
    private: Path,
    limits: Limits,
    groups: ProcessGroups,
    session_id: str,
) -> dict[str, Any]:
    """Run the request and build the answer; a timeout raises WorkerError('timeout') with partial output."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(ws.root / ".tmp", 0o700)
    if req.code is not None:
        code_file = private / "main.py"
        _write_private(code_file, req.code.encode("utf-8", errors="surrogatepass"))
        argv = [str(python), "-c", BOOTSTRAP, str(code_file), *req.args]
    else:
        argv = [str(python), str(_script_path(ws, req.file or "")), *req.args]
    captured = await run_captured(
        argv,
        cwd=ws.root,
        env=child_env(ws.root, venv),
        stdin=req.stdin,
        time_limit=req.timeout,
        max_output=limits.max_output_bytes,
        rlimits=rlimits(limits),
        groups=groups,
        session_id=session_id,
    )
    result = _answer(captured)
    if captured.timed_out:
        raise WorkerError(
            "timeout",
            f"run.python ran past its timeout of {req.timeout:g}s (capped by limits.run_timeout_seconds); "
            "its process group was killed",
            details=result,
        )
    if captured.killed:
        raise WorkerError(
            "capacity_exhausted", "the run was killed: its session was deleted or the worker is shutting down"
        )
    return result


def _answer(c: Captured) -> dict[str, Any]:
    return {
        "exit_code": c.exit_code,
        "stdout": c.stdout.decode("utf-8", errors="replace"),
        "stderr": c.stderr.decode("utf-8", errors="replace"),
        "duration_ms": c.duration_ms,
        "stdout_truncated": c.stdout_truncated,
        "stderr_truncated": c.stderr_truncated,
    }
