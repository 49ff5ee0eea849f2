"""Container tier helpers: the private docker daemon, chart-like `docker run`, readiness polling."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TAG = "container-test"
BASE_TAG = "codegen-mcp-base:bookworm"
# The chart's pod and container securityContext, as `docker run` flags.
CHART_SECURITY = (
    "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,size=256m",
    "--user", "1000:1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
)
APP_UID = 1000
# Where the chart mounts each config.yaml (its ConfigMap volume, read-only) and passes it with --config.
COORDINATOR_CONFIG = "/etc/codegen-mcp/config.yaml"
WORKER_CONFIG = "/etc/codegen-mcp-worker/config.yaml"


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass(frozen=True, slots=True)
class Docker:
    """The docker CLI bound to the private daemon this tier started."""

    host: str
    cli: str

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER": self.cli}

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`docker ARGS`; a failure with check=True fails the test with docker's own output."""
        proc = subprocess.run(
            [self.cli, *args], env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            output = tail(proc.stderr + proc.stdout)
            pytest.fail(f"docker {' '.join(args[:3])} ... exited {proc.returncode}:\n{output}")
        return proc


@dataclass(frozen=True, slots=True)
class Images:
    """The tags of the images built for this run, and the wheelhouse they were built from."""

    coordinator: str
    worker: str
    wheelhouse: Path


@dataclass(slots=True)
class Container:
    """One `docker run -d` container: its name and the loopback port it serves on."""

    docker: Docker
    name: str
    port: int
    logs_on_failure: bool = True

    def running(self) -> bool:
        proc = self.docker.run("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return proc.stdout.strip() == "true"

    def logs(self) -> str:
        proc = self.docker.run("logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def stop(self, timeout_s: int = 30) -> int:
        """SIGTERM, as the kubelet sends it, then the exit code once the container has gone."""
        self.docker.run("stop", "--time", str(timeout_s), self.name, timeout=timeout_s + 30)
        proc = self.docker.run("inspect", "--format", "{{.State.ExitCode}}", self.name)
        return int(proc.stdout.strip())


@dataclass(slots=True)
class Runner:
    """Starts containers the way the chart runs them, and removes every one it started."""

    docker: Docker
    started: list[str] = field(default_factory=list)

    def start(
        self,
        image: str,
        *,
        port: int,
        env: dict[str, str],
        mounts: list[tuple[Path, str, bool]],
        args: tuple[str, ...] = (),
        purpose: str,
    ) -> Container:
        """`docker run -d` on the host network; each mount is (host path, container path, read_only)."""
        name = f"cgm-{purpose}-{uuid.uuid4().hex[:8]}"
        argv = ["run", "--detach", "--name", name, "--network", "host", *CHART_SECURITY]
        for key, value in env.items():
            argv += ["--env", f"{key}={value}"]
        for source, target, read_only in mounts:
            argv += ["--volume", f"{source}:{target}:{'ro' if read_only else 'rw'}"]
        self.docker.run(*argv, image, *args)
        self.started.append(name)
        return Container(self.docker, name, port)

    def remove_all(self) -> None:
        if self.started:
            self.docker.run("rm", "--force", "--volumes", *self.started, check=False)
            self.started.clear()


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http_ok(container: Container, path: str, timeout_s: float = 60) -> dict[str, object]:
    """Poll http://127.0.0.1:PORT/PATH until it answers 200; fail early if the container exits."""
    url = f"http://127.0.0.1:{container.port}{path}"
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                body = response.read()
                return json.loads(body) if body.strip().startswith(b"{") else {}
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:300]!r}"
        except OSError as exc:
            last = str(exc)
        if not container.running():
            pytest.fail(f"{container.name} exited before {path} answered 200:\n{tail(container.logs())}")
        time.sleep(0.1)  # poll interval of a bounded readiness wait, not a wait for time to pass
    pytest.fail(f"{url} did not answer 200 within {timeout_s}s (last: {last}):\n{tail(container.logs())}")


def writable_dir(parent: Path, name: str) -> Path:
    """A host directory that uid 1000 (the images' user) owns, for a volume mount."""
    path = parent / name
    path.mkdir(mode=0o755)
    os.chown(path, APP_UID, APP_UID)
    return path


def _pid_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state == "Z"


def stop_dockerd(pid: int) -> None:
    """SIGTERM the daemon by PID (it stops its containers and its containerd), then SIGKILL after 60 s."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 60
    while not _pid_gone(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.1)  # poll interval of a bounded wait for the daemon's exit


def mounts_under(path: Path) -> list[str]:
    prefix = str(path) + "/"
    with open("/proc/self/mounts") as mounts:
        return [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
