"""The coordinator process end to end: CLI exit codes, SIGTERM draining, expiry, probes, metrics, stdio."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from coordinator_fixtures import (
    CoordinatorProcess,
    call_tool,
    coordinator_command,
    hermetic_env,
    http_get,
    result_text,
    wait_until,
)
from mcp import Client, StdioServerParameters

from coordinator import __version__


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*coordinator_command(), *args],
        capture_output=True,
        text=True,
        env=hermetic_env(env),
        timeout=60,
        check=False,
    )


def test_version_prints_the_package_version() -> None:
    """--version prints the installed version and exits 0."""
    done = run_cli("--version")
    assert done.returncode == 0
    assert __version__ in done.stdout


def test_check_config_accepts_a_valid_file(tmp_path: Path) -> None:
    """--check-config on a valid file prints 'config OK' and exits 0."""
    path = tmp_path / "config.yaml"
    path.write_text("session:\n  max_age: 1h30m\nworker:\n  url: [http://a:8081, http://b:8081]\n")
    done = run_cli("--check-config", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("config OK")


def test_check_config_rejects_an_invalid_file_with_one_line_per_error(tmp_path: Path) -> None:
    """Exit 2, and stderr holds exactly one line per error, each naming its JSON path."""
    path = tmp_path / "config.yaml"
    path.write_text("server:\n  bogus: 1\nsession:\n  max_age: 10x\n")
    done = run_cli("--check-config", "--config", str(path))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "config.yaml: server.bogus: unknown key (allowed: name, version, log_level, transport, host, port, "
        "metrics_port, shutdown_grace, drain_delay, keepalive_interval)",
        "config.yaml: session.max_age: '10x' is not a duration (examples: 30m, 1h30m)",
    ]


def test_config_file_comes_from_the_environment_and_env_errors_name_the_variable(tmp_path: Path) -> None:
    """$CONFIG_FILE is used without --config; a bad env value exits 2 naming the variable."""
    path = tmp_path / "c.yaml"
    path.write_text("server:\n  port: nope\n")
    done = run_cli("--check-config", env={"CONFIG_FILE": str(path)})
    assert done.returncode == 2
    assert done.stderr.strip() == "c.yaml: server.port: 'nope' is not an integer"
    done = run_cli("--check-config", env={"CLEANUP_INTERVAL": "often"})
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "$CLEANUP_INTERVAL=often: session.cleanup_interval: 'often' is not a duration (examples: 30m, 1h30m)"
    )


def test_a_missing_tokens_file_stops_startup_with_exit_2(tmp_path: Path) -> None:
    """auth.enabled with an unreadable tokens file exits 2 and names auth.tokens_file."""
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "server": {"port": 0, "metrics_port": 0},
                "auth": {"enabled": True, "tokens_file": str(tmp_path / "missing")},
                "worker": {"workspace_root": str(tmp_path / "ws")},
            }
        )
    )
    done = run_cli("--config", str(path))
    assert done.returncode == 2
    assert "auth.tokens_file" in done.stderr


async def test_sigterm_during_a_long_call_lets_it_finish_and_exits_0(
    coordinator_factory: Callable[..., CoordinatorProcess], tmp_path: Path
) -> None:
    """SIGTERM mid-call: /ready turns 503 draining, the call completes, the process exits 0, audit written."""
    audit = tmp_path / "audit.jsonl"
    coord = coordinator_factory(
        config={
            "server": {"drain_delay": "300ms", "shutdown_grace": "20s"},
            "audit": {"backend": "file", "file_path": str(audit)},
        }
    )
    async with Client(coord.mcp_url) as client:
        await client.list_tools()  # the client validates results against the listed output schemas
        call = await _long_call(client, coord, "import time; time.sleep(2); print('finished')")
        coord.proc.send_signal(signal.SIGTERM)
        _, body = await asyncio.to_thread(wait_until, lambda: _ready_503(coord), 5, "/ready 503")
        assert body == {"ready": False, "reasons": ["draining"], "details": body["details"]}
        result = await call
    assert not result.is_error, result_text(result)
    assert "finished" in result_text(result)
    assert await asyncio.to_thread(coord.proc.wait, 30) == 0
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [r["tool"] for r in records] == ["run.python"]
    assert records[0]["outcome"] == "success"
    assert any(r.get("msg") == "stopped" for r in coord.logs())


async def _long_call(client: Client, coord: CoordinatorProcess, code: str) -> asyncio.Task[Any]:
    """Start run.python `code` and return once the coordinator counts it in flight."""
    call = asyncio.create_task(client.call_tool("run.python", {"code": code}))
    await asyncio.to_thread(
        wait_until, lambda: _debug(coord)["inflight_calls"] == 1, 15, "the run.python call to be in flight"
    )
    return call


def _debug(coord: CoordinatorProcess) -> dict:
    return json.loads(http_get(coord.url + "/debug/sessions")[1])


def _ready_503(coord: CoordinatorProcess) -> tuple[int, dict] | None:
    try:
        status, body = http_get(coord.url + "/ready", timeout=2)
    except OSError:
        return None
    return (status, json.loads(body)) if status == 503 else None


async def test_idle_sessions_expire_and_their_workspaces_are_deleted(
    coordinator_factory: Callable[..., CoordinatorProcess], tmp_path: Path
) -> None:
    """With a short max_age, the cleanup loop removes the session and its worker workspace."""
    root = tmp_path / "expiry-ws"
    coord = coordinator_factory(
        config={
            "session": {"max_age": "1s", "cleanup_interval": "100ms"},
            "worker": {"workspace_root": str(root)},
        }
    )
    result = await call_tool(coord, "fs.write", {"path": "f.txt", "content": "x"})
    sid = result.structured_content["session_id"]
    assert (root / sid / "f.txt").exists()
    await asyncio.to_thread(wait_until, lambda: not (root / sid).exists(), 15, "the workspace to be deleted")
    assert _debug(coord)["count"] == 0
    after = await call_tool(coord, "fs.read", {"session_id": sid, "path": "f.txt"})
    assert after.is_error and "not found or expired" in result_text(after)
    assert any(r.get("msg") == "session expired" and r.get("session_id") == sid for r in coord.logs())


async def test_metrics_count_calls_by_tool_and_outcome(
    coordinator_factory: Callable[..., CoordinatorProcess],
) -> None:
    """After calls, the seed metrics carry tool/outcome labels and the session gauges move."""
    coord = coordinator_factory()
    await call_tool(coord, "echo", {"text": "a"})
    await call_tool(coord, "fs.read", {"path": "missing.txt"})
    text = (await asyncio.to_thread(http_get, coord.metrics_url))[1].decode()
    assert 'coordinator_tool_calls_total{outcome="success",tool="echo"} 1.0' in text
    assert 'coordinator_tool_calls_total{outcome="error",tool="fs.read"} 1.0' in text
    assert 'coordinator_tool_duration_seconds_count{tool="echo"} 1.0' in text
    assert "coordinator_sessions_created_total 1.0" in text
    assert "coordinator_sessions_active 1.0" in text
    assert "process_cpu_seconds_total" in text


def test_debug_sessions_can_be_disabled(coordinator_factory: Callable[..., CoordinatorProcess]) -> None:
    """security.debug_endpoints: disabled answers 403 even on loopback; the default answers loopback."""
    closed = coordinator_factory(config={"security": {"debug_endpoints": "disabled"}})
    status, body = http_get(closed.url + "/debug/sessions")
    assert status == 403
    assert "disabled" in json.loads(body)["message"]
    opened = coordinator_factory()
    assert http_get(opened.url + "/debug/sessions")[0] == 200


def test_a_busy_port_in_http_mode_exits_1_naming_the_setting(tmp_path: Path) -> None:
    """If server.port is taken, the coordinator says which setting to change and exits 1."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = tmp_path / "config.yaml"
        path.write_text(
            yaml.safe_dump({"server": {"port": port, "metrics_port": 0}, "worker": {"workspace_root": str(tmp_path)}})
        )
        done = run_cli("--config", str(path), "--transport", "http")
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} for http" in done.stderr
    assert "server.port (env PORT)" in done.stderr


async def test_stdio_transport_serves_the_sdk_client_even_when_its_ports_are_busy(tmp_path: Path) -> None:
    """--transport stdio speaks MCP on stdin/stdout; a busy health port is only a warning (several copies)."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    config = tmp_path / "stdio.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"port": busy.getsockname()[1], "metrics_port": 0},
                "worker": {"workspace_root": str(tmp_path / "ws")},
            }
        )
    )
    command = coordinator_command()
    params = StdioServerParameters(
        command=command[0],
        args=[*command[1:], "--config", str(config), "--transport", "stdio"],
        env=hermetic_env(),
        cwd=str(tmp_path),
    )
    async with Client(params) as client:
        wrote = await client.call_tool("fs.write", {"path": "a.txt", "content": "via stdio"})
        assert not wrote.is_error, result_text(wrote)
        read = await client.call_tool("fs.read", {"path": "a.txt"})
        assert result_text(read) == "via stdio"
    busy.close()


async def test_a_call_still_running_when_the_grace_runs_out_gets_a_clear_tool_error_and_exit_is_0(
    coordinator_factory: Callable[..., CoordinatorProcess], tmp_path: Path
) -> None:
    """Past server.shutdown_grace the call answers isError naming the grace, not a cut connection."""
    audit = tmp_path / "audit.jsonl"
    coord = coordinator_factory(
        config={
            "server": {"shutdown_grace": "1s"},
            "audit": {"backend": "file", "file_path": str(audit)},
        }
    )
    async with Client(coord.mcp_url) as client:
        await client.list_tools()
        call = await _long_call(client, coord, "import time; time.sleep(60)")
        coord.proc.send_signal(signal.SIGTERM)
        result = await call
    assert result.is_error
    text = result_text(result)
    assert "shutting down" in text and "server.shutdown_grace" in text, text
    assert await asyncio.to_thread(coord.proc.wait, 30) == 0
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(r["tool"], r["outcome"]) for r in records] == [("run.python", "timeout")]


async def test_the_embedded_worker_takes_its_limits_from_worker_embedded_config(
    coordinator_factory: Callable[..., CoordinatorProcess], tmp_path: Path
) -> None:
    """worker.embedded_config sets the in-process worker's limits: here a 64-byte output cap."""
    worker_config = tmp_path / "worker.yaml"
    worker_config.write_text(yaml.safe_dump({"limits": {"max_output_bytes": 64}}))
    coord = coordinator_factory(config={"worker": {"embedded_config": str(worker_config)}})
    async with Client(coord.mcp_url) as client:
        result = await client.call_tool("run.python", {"code": "print('y' * 1000)"})
    assert not result.is_error, result_text(result)
    assert result.structured_content["stdout_truncated"] is True
    assert len(result.structured_content["stdout"]) == 64


def test_a_bad_embedded_worker_config_fails_check_config_naming_the_key(tmp_path: Path) -> None:
    """An invalid worker.embedded_config exits 2 with lines prefixed worker.embedded_config, before serving."""
    worker_config = tmp_path / "worker.yaml"
    worker_config.write_text(yaml.safe_dump({"limits": {"max_output_bytes": "lots"}}))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"worker": {"embedded_config": str(worker_config)}}))
    done = run_cli("--check-config", "--config", str(config))
    assert done.returncode == 2
    assert "config.yaml: worker.embedded_config:" in done.stderr
    assert "max_output_bytes" in done.stderr
    missing = run_cli("--check-config", env={"WORKER_CONFIG": str(tmp_path / "absent.yaml")})
    assert missing.returncode == 2
    assert "worker.embedded_config:" in missing.stderr and "cannot read the config file" in missing.stderr


async def test_sigterm_over_stdio_lets_the_running_call_answer_and_exits_0(tmp_path: Path) -> None:
    """A client closing Claude Desktop mid-call: the answer still goes out on stdout, then exit 0."""
    command = coordinator_command()
    proc = await asyncio.create_subprocess_exec(
        *command,
        "--transport",
        "stdio",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=hermetic_env({"PORT": "0", "METRICS_PORT": "0", "WORKSPACE_ROOT": str(tmp_path / "ws")}),
        cwd=str(tmp_path),
    )
    assert proc.stdin is not None and proc.stdout is not None

    async def send(message: dict[str, object]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(message).encode() + b"\n")
        await proc.stdin.drain()

    async def reply(request_id: int) -> dict[str, object]:
        assert proc.stdout is not None
        while True:
            message = json.loads(await proc.stdout.readline())
            if message.get("id") == request_id:
                return dict(message)

    try:
        async with asyncio.timeout(60):
            await send(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-11-25",
                        "capabilities": {},
                        "clientInfo": {"name": "t", "version": "1"},
                    },
                }
            )
            await reply(1)
            await send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            code = "import time; open('started', 'w').close(); time.sleep(2); print('finished')"
            await send(
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "tools/call",
                    "params": {"name": "run.python", "arguments": {"code": code}},
                }
            )
            while not list((tmp_path / "ws").glob("*/started")):
                await asyncio.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            answer = await reply(2)
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    result = answer["result"]
    assert isinstance(result, dict)
    assert result["isError"] is False, result
    assert result["structuredContent"]["stdout"] == "finished\n"
