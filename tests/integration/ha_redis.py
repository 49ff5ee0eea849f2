"""A real redis-server on 127.0.0.1 for the HA and Redis store tests: config, TLS material, start/stop/pause."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from ha_processes import READY_TIMEOUT, ProcessDied, free_port, wait_until

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """A `session.redis` section for tests; the same attributes as coordinator.config.RedisConfig."""

    url: str
    key_prefix: str = "codegen-mcp:"
    password_file: str | None = None
    connect_timeout: float = 1.0
    operation_timeout: float = 1.0


@dataclass
class RedisServer:
    """One redis-server on 127.0.0.1 with its own config file and data dir; restartable on the same port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    appendonly: bool = True
    appendfsync: str = "everysec"
    password: str | None = None
    unixsocket: Path | None = None
    tls_dir: Path | None = None  # holds ca.crt, server.crt, server.key (see make_test_ca); TLS only then
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.tls_dir is not None:
            return f"rediss://127.0.0.1:{self.port}/0"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.workdir / "redis.log"

    def _write_conf(self) -> Path:
        lines = [
            "bind 127.0.0.1",
            f"port {0 if self.tls_dir else self.port}",
            f"dir {self.workdir}",
            'save ""',
            f"appendonly {'yes' if self.appendonly else 'no'}",
            f"appendfsync {self.appendfsync}",
            f"logfile {self.log}",
            "daemonize no",
            "protected-mode yes",
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        if self.unixsocket:
            lines += [f"unixsocket {self.unixsocket}", "unixsocketperm 700"]
        if self.tls_dir:
            lines += [
                f"tls-port {self.port}",
                f"tls-cert-file {self.tls_dir / 'server.crt'}",
                f"tls-key-file {self.tls_dir / 'server.key'}",
                f"tls-ca-cert-file {self.tls_dir / 'ca.crt'}",
                "tls-auth-clients no",
            ]
        conf = self.workdir / "redis.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def client(self) -> redis.Redis:
        tls: dict[str, Any] = {}
        if self.tls_dir is not None:
            tls = {"ssl": True, "ssl_ca_certs": str(self.tls_dir / "ca.crt")}
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=2, **tls)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self._write_conf()
        self.proc = subprocess.Popen([REDIS_SERVER, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ProcessDied(f"redis-server exited {self.proc.returncode}: {self.log_tail()}")
            with self.client() as c:
                return bool(c.ping())

        wait_until(ready, f"redis-server ready on port {self.port}")

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text().splitlines()[-10:])
        except OSError:
            return "(no log)"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig` (SIGTERM: graceful, AOF flushed; SIGKILL: crash) and wait for the exit."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=READY_TIMEOUT)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None
        return rc

    def pause(self) -> None:
        """SIGSTOP: the server keeps its socket but answers nothing (a hung Redis)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()


def make_test_ca(directory: Path) -> Path:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl CLI), for TLS tests."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed; apt-get install -y openssl")
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=codegen-mcp test CA",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (directory / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext",
    )
    return directory


@contextlib.contextmanager
def running_redis(workdir: Path, **kwargs: object) -> Iterator[RedisServer]:
    """A started RedisServer, stopped (and resumed first, if paused) on exit."""
    server = RedisServer(workdir, **kwargs)  # type: ignore[arg-type]
    last: Exception | None = None
    for _ in range(3):  # the free port may be taken between probing and binding
        try:
            server.start()
            break
        except (ProcessDied, TimeoutError) as exc:
            last = exc
            server.stop(signal.SIGKILL)
            server.port = free_port()
    else:
        raise RuntimeError(f"could not start redis-server: {last}")
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.send_signal(signal.SIGCONT)
        server.stop()
