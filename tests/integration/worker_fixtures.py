"""Start a real worker process on 127.0.0.1:0: `start_worker(tmp_path, **config) -> WorkerProcess`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OVERRIDE_VARS = ("WORKER_ID", "WORKSPACE_ROOT", "MAX_SESSIONS", "LOG_LEVEL", "PORT", "HOST")


@dataclass
class WorkerProcess:
    """A running worker: its base `url`, `pid`, `workspace_root`, and its stderr log file."""

    url: str
    pid: int
    port: int
    workspace_root: Path
    config_path: Path
    log_path: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM the worker and wait for it; SIGKILL after `timeout`. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (non-JSON lines are skipped)."""
        out = []
        for line in self.log_path.read_text("utf-8", errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def session_dir(self, session_id: str) -> Path:
        """The workspace directory of a session."""
        return self.workspace_root / session_id


def start_worker(
    tmp_path: Path,
    *,
    env: dict[str, str] | None = None,
    ready_timeout: float = 30.0,
    **config: Any,
) -> WorkerProcess:
    """Start `python -m worker` with `config` (keys of schemas/worker-config.schema.json) on 127.0.0.1:0.

    Defaults: port 0, host 127.0.0.1, workspace_root under `tmp_path`, log_level info. `env` adds
    environment variables; the worker's own override variables are cleared from the inherited ones.
    Returns once the worker wrote its port file; raises RuntimeError (with its log) if it exits first.
    """
    home = Path(tempfile.mkdtemp(prefix="worker-", dir=tmp_path))
    config.setdefault("host", "127.0.0.1")
    config.setdefault("port", 0)
    config.setdefault("workspace_root", str(home / "workspaces"))
    config.setdefault("log_level", "info")
    config_path = home / "worker-config.json"
    config_path.write_text(json.dumps(config), "utf-8")
    port_file = home / "port"
    log_path = home / "worker.log"
    child_env = {k: v for k, v in os.environ.items() if k not in OVERRIDE_VARS}
    child_env.update(env or {})
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "--config", str(config_path), "--port-file", str(port_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=child_env,
        )
    deadline = time.monotonic() + ready_timeout
    while not port_file.exists():
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"worker did not listen within {ready_timeout}s:\n{log_path.read_text()}")
        try:
            proc.wait(timeout=0.02)  # a bounded pause that also notices an early exit
        except subprocess.TimeoutExpired:
            continue
        raise RuntimeError(f"worker exited with {proc.returncode}:\n{log_path.read_text()}")
    port = int(port_file.read_text().strip())
    return WorkerProcess(
        url=f"http://127.0.0.1:{port}",
        pid=proc.pid,
        port=port,
        workspace_root=Path(config["workspace_root"]).resolve(),
        config_path=config_path,
        log_path=log_path,
        proc=proc,
    )


class WorkerClient:
    """A thin aiohttp client of the worker API for tests: `await client.op(sid, "fs/read", {...})`."""

    def __init__(self, http: Any, url: str) -> None:
        self.http = http
        self.url = url

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """One request; returns (status, decoded JSON body)."""
        async with self.http.request(method, self.url + path, json=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def op(self, session_id: str, operation: str, body: Any) -> tuple[int, Any]:
        """POST /v1/sessions/{session_id}/{operation}."""
        return await self.call("POST", f"/v1/sessions/{session_id}/{operation}", body)

    async def new_session(self, session_id: str | None = None) -> str:
        """Create a session (a fresh random id unless given) and return its id."""
        sid = session_id or uuid.uuid4().hex
        status, body = await self.call("PUT", f"/v1/sessions/{sid}", {})
        if status != 200:
            raise RuntimeError(f"PUT /v1/sessions/{sid} answered {status}: {body}")
        return sid
