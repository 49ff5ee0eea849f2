"""Coordinator and worker containers run as the chart runs them, driven by the MCP SDK client."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from container_support import (
    COORDINATOR_CONFIG,
    WORKER_CONFIG,
    Container,
    Images,
    Runner,
    free_port,
    wait_http_ok,
    writable_dir,
)
from mcp.client import Client
from mcp_types import CallToolResult

pytestmark = pytest.mark.slow



def _coordinator_runs_on_host() -> str | None:
    """None when `coordinator --version` works on the host, else why not."""
    script = Path(sys.executable).with_name("coordinator")
    try:
        proc = subprocess.run(
            [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        return f"coordinator --version cannot start: {exc}"
    return None if proc.returncode == 0 else f"coordinator --version exited {proc.returncode}"


@pytest.fixture(scope="module", autouse=True)
def _coordinator_exists() -> None:
    reason = _coordinator_runs_on_host()
    if reason is not None:
        pytest.skip(f"container round trip: the coordinator is not built yet ({reason})")


@dataclass(frozen=True, slots=True)
class Stack:
    """A worker container and a coordinator container routed to it, both on loopback."""

    coordinator: Container
    worker: Container
    metrics_port: int
    workspaces: Path
    audit: Path

    @property
    def mcp_url(self) -> str:
        return f"http://127.0.0.1:{self.coordinator.port}/mcp"


def config_dir(path: Path, text: str) -> Path:
    """A world-readable directory holding one config.yaml with `text`."""
    path.mkdir(mode=0o755)
    (path / "config.yaml").write_text(text)
    (path / "config.yaml").chmod(0o644)
    return path


def start_stack(runner: Runner, images: Images, tmp_path: Path) -> Stack:
    """Start the worker, then the coordinator, each with its config.yaml mounted read-only."""
    workspaces = writable_dir(tmp_path, "workspaces")
    audit = writable_dir(tmp_path, "audit")
    worker_port, port, metrics_port = free_port(), free_port(), free_port()

    # Each config.yaml sits alone in a directory mounted read-only, as the chart mounts its ConfigMap.
    worker_config = config_dir(tmp_path / "worker-config", "workspace_root: /workspaces\nmax_sessions: 16\n")
    worker = runner.start(
        images.worker,
        port=worker_port,
        # HOST: the containers share the host's network, and servers here bind loopback only.
        env={"HOST": "127.0.0.1", "PORT": str(worker_port), "WORKER_ID": "container-worker-0"},
        mounts=[(worker_config, str(PurePosixPath(WORKER_CONFIG).parent), True), (workspaces, "/workspaces", False)],
        args=("--config", WORKER_CONFIG),
        purpose="worker",
    )

    config = {
        "server": {"log_level": "info"},
        "worker": {"url": f"http://127.0.0.1:{worker_port}"},
        "audit": {"enabled": True, "backend": "file", "file_path": "/var/log/audit/audit.jsonl"},
    }
    coordinator_config = config_dir(tmp_path / "coordinator-config", json.dumps(config))  # JSON is YAML
    coordinator = runner.start(
        images.coordinator,
        port=port,
        env={"HOST": "127.0.0.1", "PORT": str(port), "METRICS_PORT": str(metrics_port)},
        mounts=[
            (coordinator_config, str(PurePosixPath(COORDINATOR_CONFIG).parent), True),
            (audit, "/var/log/audit", False),
        ],
        args=("--config", COORDINATOR_CONFIG),
        purpose="coordinator",
    )
    wait_http_ok(worker, "/health")
    wait_http_ok(coordinator, "/healthz")
    wait_http_ok(coordinator, "/ready")
    return Stack(coordinator, worker, metrics_port, workspaces, audit)


@pytest.fixture
def stack(runner: Runner, images: Images, tmp_path: Path) -> Iterator[Stack]:
    yield start_stack(runner, images, tmp_path)


def payload(result: CallToolResult) -> dict[str, Any]:
    """The tool's structured result; a tool error fails the test with the tool's own message."""
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert not result.is_error, f"tool error: {text}"
    if isinstance(result.structured_content, dict):
        return result.structured_content
    parsed = json.loads(text)
    assert isinstance(parsed, dict)
    return parsed


async def test_mcp_round_trip_goes_from_the_coordinator_container_to_the_worker_container(
    stack: Stack,
) -> None:
    """session.create, fs.write, run.python and fs.read through the coordinator reach the worker's volume."""
    async with Client(stack.mcp_url) as client:
        session_id = payload(await client.call_tool("session.create", {}))["session_id"]
        assert isinstance(session_id, str)
        assert session_id

        written = await client.call_tool(
            "fs.write", {"session_id": session_id, "path": "src/greet.py", "content": "NAME = 'container'\n"}
        )
        payload(written)

        code = (
            "import os, sys\n"
            "sys.path.insert(0, 'src')\n"
            "from greet import NAME\n"
            "open('out.txt', 'w').write(f'hello {NAME} from {os.getuid()}')\n"
            "print(NAME.upper())\n"
        )
        ran = payload(await client.call_tool("run.python", {"session_id": session_id, "code": code}))
        assert ran["exit_code"] == 0, ran
        assert ran["stdout"].strip() == "CONTAINER"

        read = payload(await client.call_tool("fs.read", {"session_id": session_id, "path": "out.txt"}))
        assert read["content"] == "hello container from 1000"

    # The files live on the worker container's /workspaces volume, written as uid 1000.
    written_files = [p for p in stack.workspaces.rglob("out.txt") if p.is_file()]
    assert len(written_files) == 1
    assert written_files[0].read_text() == "hello container from 1000"
    assert written_files[0].stat().st_uid == 1000


async def test_coordinator_container_writes_audit_records_and_serves_metrics(stack: Stack) -> None:
    """The audit file on the mounted volume gets the call, and /metrics answers on METRICS_PORT."""
    async with Client(stack.mcp_url) as client:
        payload(await client.call_tool("echo", {"text": "audited"}))

    audit_file = stack.audit / "audit.jsonl"
    records = [json.loads(line) for line in audit_file.read_text().splitlines() if line.strip()]
    assert any("echo" in json.dumps(record) for record in records), records

    with urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert "coordinator_tool_calls_total" in metrics


def test_image_healthchecks_pass_inside_the_running_containers(stack: Stack, images: Images) -> None:
    """Each image's HEALTHCHECK command, run in its container, exits 0 (it follows $PORT)."""
    for container, image in ((stack.worker, images.worker), (stack.coordinator, images.coordinator)):
        template = "{{json .Config.Healthcheck.Test}}"
        test = json.loads(container.docker.run("image", "inspect", "--format", template, image).stdout)
        assert test[0] == "CMD", test
        container.docker.run("exec", container.name, *test[1:])


def test_both_containers_exit_zero_on_sigterm(runner: Runner, images: Images, tmp_path: Path) -> None:
    """`docker stop` (SIGTERM to PID 1, as the kubelet sends it) ends both processes with exit code 0."""
    stack = start_stack(runner, images, tmp_path)
    assert stack.coordinator.stop() == 0, stack.coordinator.logs()
    assert stack.worker.stop() == 0, stack.worker.logs()
