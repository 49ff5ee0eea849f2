"""Start a real `coordinator` process on 127.0.0.1 with free ports, for integration tests.

    proc = start_coordinator(tmp_path, config={"session": {"max_age": "2s"}}, env={"LOG_LEVEL": "debug"})
    proc.url            # http://127.0.0.1:PORT   (MCP at proc.url + "/mcp")
    proc.metrics_url    # http://127.0.0.1:METRICS_PORT/metrics
    proc.stop()         # SIGTERM, wait, return the exit code

The process binds port 0 for both listeners and reports the ports in its `listening` JSON log line on
stderr, which this helper reads. Its stdout and stderr go to files under `tmp_path` (`.stdout_path`,
`.stderr_path`) so a chatty process can never block on a full pipe. By default the embedded worker runs
over `tmp_path/workspaces`; pass `config={"worker": {"url": ...}}` to use a separate worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from mcp import Client

from coordinator.config_schema import merge

COORDINATOR_ENV_VARS = (
    "CONFIG_FILE",
    "LOG_LEVEL",
    "SESSION_MAX_AGE",
    "CLEANUP_INTERVAL",
    "WORKER_URL",
    "HOST",
    "PORT",
    "METRICS_PORT",
    "SESSION_STORE",
    "REDIS_URL",
    "REDIS_PASSWORD",
    "AUDIT_BACKEND",
    "AUDIT_FILE",
    "WORKSPACE_ROOT",
    "WORKER_DNS_NAME",
    "AUTH_TOKENS_FILE",
)
"""Variables the coordinator reads; stripped from the inherited environment so tests stay hermetic."""

POLL_INTERVAL = 0.02
"""Seconds between readiness polls (always inside a bounded deadline)."""


def coordinator_command() -> list[str]:
    """argv prefix that runs the coordinator from this virtualenv."""
    script = Path(sys.executable).with_name("coordinator")
    return [str(script)] if script.exists() else [sys.executable, "-m", "coordinator"]


def hermetic_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the coordinator's variables, plus `env`."""
    out = {k: v for k, v in os.environ.items() if k not in COORDINATOR_ENV_VARS}
    out.update(env or {})
    return out


@dataclass
class CoordinatorProcess:
    """A running coordinator. `stop()` sends SIGTERM and returns the exit code; `kill()` is the hard stop."""

    proc: subprocess.Popen[bytes]
    port: int | None
    metrics_port: int | None
    config_path: Path
    stdout_path: Path
    stderr_path: Path
    audit_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait up to `timeout` seconds; returns the exit code (kills on timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    terminate = stop

    def kill(self) -> None:
        """SIGKILL (for teardown after a failure)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stderr_text(self) -> str:
        return self.stderr_path.read_text("utf-8", "replace")

    def stdout_text(self) -> str:
        return self.stdout_path.read_text("utf-8", "replace")

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (human-readable lines are skipped)."""
        return _json_lines(self.stderr_text())

    def audit_records(self) -> list[dict[str, Any]]:
        """Audit records so far, from the audit file if one is configured, else from stdout."""
        text = (
            self.audit_path.read_text("utf-8") if self.audit_path and self.audit_path.exists() else (self.stdout_text())
        )
        return [r for r in _json_lines(text) if r.get("log_type") == "audit"]


def _json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                out.append(value)
    return out


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET `url`; returns (status, body) for any HTTP answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    """Poll `predicate()` until it returns a truthy value or `timeout` seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_INTERVAL)


def start_coordinator(
    tmp_path: Path,
    config: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    args: Sequence[str] = (),
    transport: str = "http",
    wait_ready: bool = True,
    timeout: float = 20.0,
    name: str = "coordinator",
) -> CoordinatorProcess:
    """Start a coordinator with `config` merged over test defaults (ports 0, embedded worker in tmp_path).

    Waits for the `listening` log line, then (unless `wait_ready` is False) for `/ready` to answer 200.
    `env` is added to a hermetic copy of this environment; env vars override the config file, as in
    production.
    """
    base: dict[str, Any] = {
        "server": {"port": 0, "metrics_port": 0, "shutdown_grace": "20s"},
        "worker": {"workspace_root": str(tmp_path / f"{name}-workspaces")},
    }
    merged = merge(base, config or {})
    config_path = tmp_path / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(merged), "utf-8")
    stdout_path = tmp_path / f"{name}.stdout"
    stderr_path = tmp_path / f"{name}.stderr"
    audit = merged.get("audit", {})
    audit_path = Path(audit["file_path"]) if audit.get("backend") == "file" and "file_path" in audit else None
    argv = [*coordinator_command(), "--config", str(config_path), "--transport", transport, *args]
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL if transport == "http" else subprocess.PIPE,
            env=hermetic_env(env),
            cwd=tmp_path,
        )
    handle = CoordinatorProcess(proc, None, None, config_path, stdout_path, stderr_path, audit_path)

    def listening() -> dict[str, Any] | None:
        if proc.poll() is not None:
            raise AssertionError(f"coordinator exited with {proc.returncode}:\n{handle.stderr_text()}")
        return next((r for r in handle.logs() if r.get("msg") == "listening"), None)

    try:
        line = wait_until(listening, timeout, "the coordinator's 'listening' log line")
        handle.port, handle.metrics_port = line.get("port"), line.get("metrics_port")
        if wait_ready:
            wait_until(lambda: _ready(handle), timeout, f"{handle.url}/ready to answer 200")
    except BaseException:
        handle.kill()
        raise
    return handle


def _ready(handle: CoordinatorProcess) -> bool:
    if handle.proc.poll() is not None:
        raise AssertionError(f"coordinator exited with {handle.proc.returncode}:\n{handle.stderr_text()}")
    try:
        status, _ = http_get(handle.url + "/ready", timeout=2.0)
    except OSError:
        return False
    return status == 200


async def call_tool(proc: CoordinatorProcess, name: str, arguments: dict[str, Any], **kwargs: Any) -> Any:
    """One tools/call with the real `mcp` SDK client over Streamable HTTP (2026-07-28): its CallToolResult."""
    async with Client(proc.mcp_url) as client:
        return await client.call_tool(name, arguments, **kwargs)


def result_text(result: Any) -> str:
    """All text content of a CallToolResult, joined by newlines."""
    return "\n".join(block.text for block in result.content if getattr(block, "type", None) == "text")


class StubWorker:
    """A worker speaking the API shape, whose answers the test scripts per operation."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.fail_first: dict[str, int] = {}
        self.hang: set[str] = set()
        self.lost_sessions = False
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "worker_id": "stub", "sessions": 0, "capacity": 100})

    async def _session(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        self.calls[request.method] += 1
        return web.json_response({"session_id": sid, "created": True, "deleted": True})

    async def _op(self, request: web.Request) -> web.Response:
        op = request.match_info["op"]
        self.calls[op] += 1
        body = await request.json()
        if self.lost_sessions:
            return web.json_response({"error": {"code": "session_not_found", "message": "unknown session"}}, status=404)
        if op in self.hang:
            await asyncio.Event().wait()
        if self.fail_first.get(op, 0) > 0:
            self.fail_first[op] -= 1
            return web.json_response({"error": {"code": "internal", "message": "disk hiccup"}}, status=500)
        if op == "fs/read":
            return web.json_response({"path": body["path"], "content": "stub", "encoding": "utf-8", "size": 4})
        if op == "run/python":
            return web.json_response({"exit_code": 0, "stdout": "ran\n", "stderr": "", "duration_ms": 1})
        return web.json_response({"path": body.get("path"), "bytes_written": 1, "size": 1})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_route("*", "/v1/sessions/{sid}", self._session)
        app.router.add_post("/v1/sessions/{sid}/{op:.+}", self._op)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
