"""Real processes for the HA tests: redis-server, nginx round-robin, coordinators and workers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
READY_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (for servers that cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ProcessDied(RuntimeError):
    """A server process exited while we waited for it to become ready."""


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT) -> None:
    """Poll `predicate()` until it is true; fail naming `what` after `timeout` seconds.

    Exceptions other than ProcessDied count as "not yet" (a refused connect, a 503).
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    last: Exception | None = None
    while True:
        try:
            if predicate():
                return
        except ProcessDied:
            raise
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:g}s (last error: {last!r})")
        time.sleep(delay)  # polling interval, not a wait for an outcome
        delay = min(delay * 2, 0.05)


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


def require_binaries(*names: str) -> None:
    """Skip with the install command when a system binary is missing."""
    missing = [n for n in names if not (shutil.which(n) or Path(f"/usr/sbin/{n}").exists())]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed; run `bash ci/install-deps.sh` "
            f"(or apt-get install -y {' '.join(missing)})"
        )


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}


NGINX_CONF = """\
worker_processes 1;
error_log {prefix}/error.log info;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    log_format upstream '$remote_addr "$request" $status upstream=$upstream_addr '
                        'upstream_status=$upstream_status time=$request_time';
    access_log {prefix}/access.log upstream;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    client_max_body_size 8m;

    upstream coordinators {{
{balance}
{servers}
{keepalive}
    }}

    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://coordinators;
            # SSE-safe: stream responses as they come, HTTP/1.1 upstream, long idle reads.
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            proxy_connect_timeout 2s;
            # Retry another replica only when this one could not take the request: a refused or failed
            # connect (POST is never re-sent once it reached an upstream: no non_idempotent), and a
            # 502/503 answer to idempotent methods.
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 3;
            proxy_next_upstream_timeout 10s;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    """nginx round-robin in front of `upstreams` (host:port), with its own prefix and config file."""

    prefix: Path
    upstreams: list[str]
    port: int = field(default_factory=free_port)
    keepalive: int = 0
    balance: str = ""  # "" is round-robin; "ip_hash" pins each client address to one replica
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        # max_fails=0: nginx never benches a replica by itself; each request tries the next one on a
        # refused connect, so a restarting replica costs no failed call and rejoins at once.
        servers = "\n".join(f"        server {u} max_fails=0;" for u in self.upstreams)
        conf = self.prefix / "nginx.conf"
        # No upstream keepalive by default: a POST written onto an idle pooled connection just as the
        # coordinator closes it (shutdown) fails after sending and, being non-idempotent, is not retried.
        keepalive = f"        keepalive {self.keepalive};" if self.keepalive else ""
        balance = f"        {self.balance};" if self.balance else ""
        conf.write_text(
            NGINX_CONF.format(prefix=self.prefix, port=self.port, servers=servers, keepalive=keepalive, balance=balance)
        )
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.prefix), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ProcessDied(f"nginx exited {self.proc.returncode}: {self.error_log()}")
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True

        wait_until(listening, f"nginx listening on {self.port}")

    def error_log(self) -> str:
        try:
            return (self.prefix / "error.log").read_text()[-2000:]
        except OSError:
            return "(no error log)"

    def access_log(self) -> list[str]:
        try:
            return (self.prefix / "access.log").read_text().splitlines()
        except OSError:
            return []

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish open requests
            try:
                self.proc.wait(timeout=READY_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=READY_TIMEOUT)
        self.proc = None


def http_status(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """GET `url`; (status, body), also for 4xx/5xx answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode("utf-8", "replace")


@dataclass
class Coordinator:
    """One `coordinator --transport http` process with a fixed port, so it restarts where nginx expects it."""

    home: Path
    config: dict[str, Any]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def upstream(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home / "coordinator.log"

    def start(self, ready_timeout: float = 20.0, probe: str = "/ready") -> None:
        """Start, then wait until `probe` answers 200 (/healthz when a dependency is down on purpose)."""
        self.home.mkdir(parents=True, exist_ok=True)
        config = json.loads(json.dumps(self.config))
        config.setdefault("server", {}).update(host="127.0.0.1", port=self.port, metrics_port=0)
        conf = self.home / "config.yaml"
        conf.write_text(yaml.safe_dump(config))
        env = env_without("PORT", "METRICS_PORT", "HOST", "REDIS_URL", "WORKER_URL", "CONFIG_FILE", "SESSION_STORE")
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "coordinator", "--config", str(conf), "--transport", "http"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                cwd=self.home,
            )

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ProcessDied(f"coordinator exited {self.proc.returncode}:\n{self.log_tail()}")
            return http_status(f"{self.url}{probe}", timeout=1)[0] == 200

        wait_until(ready, f"coordinator {probe} 200 on port {self.port}", ready_timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text("utf-8", "replace").splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict):
                    out.append(rec)
        return out

    def terminate(self) -> None:
        """Send SIGTERM: the drain starts (/ready 503 for drain_delay, then in-flight calls finish)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the exit; the exit code."""
        assert self.proc is not None
        rc = self.proc.wait(timeout=timeout)
        self.proc = None
        return rc

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the exit code (the drain runs inside)."""
        self.terminate()
        return self.wait(timeout)

    def kill(self) -> None:
        """kill -9: a crash, nothing drains."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=READY_TIMEOUT)
        self.proc = None

    def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=READY_TIMEOUT)
        self.proc = None


# -- client load -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """One tool call of the load: when it started (monotonic), how it ended."""

    started: float
    tool: str
    session_id: str | None
    ok: bool
    error: str | None = None
    duration: float = 0.0


def result_text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in (result.content or []))


class RateLimiter:
    """Spaces calls evenly at `rate` per second across every task that shares it."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next_slot = 0.0

    async def acquire(self) -> None:
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)  # pacing the load, not waiting for an outcome


@dataclass
class Load:
    """Concurrent 2026-07-28 clients, each on its own session handle, at `rate` calls/s in total.

    Each client opens a session with session.create, then cycles fs.write, fs.read (checking the
    content it wrote) and, every fifth round, run.python reading the file back. Every file written is
    remembered so `verify()` can prove that no session and no file was lost.
    """

    url: str
    clients: int = 6
    rate: float = 50.0
    call_timeout: float = 20.0
    outcomes: list[Outcome] = field(default_factory=list)
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    reopen_on_lost: bool = False

    async def _call(self, client: Any, tool: str, args: dict[str, Any], sid: str | None) -> Any:
        started = time.monotonic()
        try:
            result = await client.call_tool(tool, args, read_timeout_seconds=self.call_timeout)
        except Exception as exc:
            self.outcomes.append(
                Outcome(started, tool, sid, False, f"{type(exc).__name__}: {exc}", time.monotonic() - started)
            )
            return None
        if result.is_error:
            self.outcomes.append(Outcome(started, tool, sid, False, result_text(result), time.monotonic() - started))
            return None
        self.outcomes.append(Outcome(started, tool, sid, True, None, time.monotonic() - started))
        return result

    async def _open(self, client: Any, limiter: RateLimiter, stop: asyncio.Event) -> str | None:
        while not stop.is_set():
            await limiter.acquire()
            created = await self._call(client, "session.create", {}, None)
            if created is not None:
                sid = str(created.structured_content["session_id"])
                self.files[sid] = {}
                return sid
        return None

    async def _user(self, n: int, limiter: RateLimiter, stop: asyncio.Event) -> None:
        from mcp import Client  # noqa: PLC0415 - heavy import, only where a load runs

        async with Client(f"{self.url}/mcp", mode="2026-07-28", read_timeout_seconds=self.call_timeout) as client:
            await client.list_tools()
            sid = await self._open(client, limiter, stop)
            k = 0
            while sid is not None and not stop.is_set():
                k += 1
                path, content = f"f{k % 20}.txt", f"client {n} round {k}"
                await limiter.acquire()
                wrote = await self._call(client, "fs.write", {"session_id": sid, "path": path, "content": content}, sid)
                if wrote is not None:
                    self.files[sid][path] = content
                else:  # the write may or may not have happened: stop vouching for this file
                    self.files[sid].pop(path, None)
                    continue
                await limiter.acquire()
                read = await self._call(client, "fs.read", {"session_id": sid, "path": path}, sid)
                if read is not None and wrote is not None and read.structured_content.get("content") != content:
                    self.outcomes.append(Outcome(time.monotonic(), "fs.read", sid, False, "content mismatch"))
                if k % 5 == 0:
                    await limiter.acquire()
                    code = f"print(open({path!r}).read())"
                    ran = await self._call(client, "run.python", {"session_id": sid, "code": code}, sid)
                    if ran is not None and content not in result_text(ran):
                        self.outcomes.append(Outcome(time.monotonic(), "run.python", sid, False, "stdout mismatch"))
                lost = [o for o in self.outcomes[-3:] if o.session_id == sid and "not found" in (o.error or "")]
                if lost and self.reopen_on_lost:
                    sid = await self._open(client, limiter, stop)

    async def run(self, stop: asyncio.Event, max_seconds: float) -> None:
        """Run until `stop` is set or `max_seconds` pass, whichever is first."""
        limiter = RateLimiter(self.rate)
        users = [asyncio.create_task(self._user(n, limiter, stop)) for n in range(self.clients)]
        try:
            async with asyncio.timeout(max_seconds):
                await stop.wait()
        except TimeoutError:
            stop.set()
        async with asyncio.timeout(self.call_timeout + 5):
            await asyncio.gather(*users)

    def failures(self, since: float = 0.0, until: float = float("inf")) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok and since <= o.started <= until]

    def successes(self, since: float = 0.0) -> int:
        return sum(1 for o in self.outcomes if o.ok and o.started >= since)

    async def verify(self) -> list[str]:
        """Read back every file of every session; the problems found (empty when nothing was lost)."""
        from mcp import Client  # noqa: PLC0415

        problems = []
        async with Client(f"{self.url}/mcp", mode="2026-07-28", read_timeout_seconds=self.call_timeout) as client:
            await client.list_tools()
            for sid, files in self.files.items():
                for path, content in files.items():
                    result = await client.call_tool("fs.read", {"session_id": sid, "path": path})
                    if result.is_error:
                        problems.append(f"{sid}/{path}: {result_text(result)}")
                    elif result.structured_content.get("content") != content:
                        problems.append(f"{sid}/{path}: content changed")
        return problems


# -- the whole topology ------------------------------------------------------------------------------


def coordinator_config(redis: RedisServer, worker_urls: list[str], key_prefix: str, **sections: Any) -> dict[str, Any]:
    """A coordinator config on the Redis store with `worker_urls`; `sections` are merged in per section."""
    config: dict[str, Any] = {
        "server": {"log_level": "info", "drain_delay": "1s", "shutdown_grace": "20s"},
        "session": {
            "store": "redis",
            "max_age": "30m",
            "cleanup_interval": "1m",
            "redis": {
                "url": redis.url,
                "key_prefix": key_prefix,
                "operation_timeout": "1s",
                "connect_timeout": "1s",
            },
        },
        "worker": {"url": worker_urls, "health_interval": "1s", "max_retries": 2, "retry_backoff": "50ms"},
        "audit": {"enabled": False},
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    return config


@dataclass
class Topology:
    """redis-server, `workers` workers, `replicas` coordinators on the Redis store, and nginx in front."""

    root: Path
    replicas: int = 3
    workers: int = 2
    shared_root: bool = False
    with_nginx: bool = True
    nginx_keepalive: int = 0
    coordinator_sections: dict[str, Any] = field(default_factory=dict)
    redis: RedisServer | None = None
    worker_procs: list[Any] = field(default_factory=list)
    coordinators: list[Coordinator] = field(default_factory=list)
    nginx: Nginx | None = None
    extra_fronts: dict[str, Nginx] = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def url(self) -> str:
        """Where clients connect: nginx, or the only coordinator without it."""
        return self.nginx.url if self.nginx is not None else self.coordinators[0].url

    def start(self) -> None:
        from worker_fixtures import start_worker  # noqa: PLC0415 - the worker engineer's helper

        require_binaries("redis-server", *(["nginx"] if self.with_nginx else []))
        try:
            self.redis = self._stack.enter_context(running_redis(self.root / "redis", appendonly=True))
            shared = self.root / "shared-workspaces"
            for i in range(self.workers):
                extra: dict[str, Any] = {"worker_id": f"w{i}"}
                if self.shared_root:
                    extra["workspace_root"] = str(shared)
                proc = start_worker(self.root, **extra)
                self.worker_procs.append(proc)
                self._stack.callback(proc.stop)
            urls = [w.url for w in self.worker_procs]
            config = coordinator_config(self.redis, urls, "ha:", **self.coordinator_sections)
            self.coordinators = [Coordinator(self.root / f"coordinator-{i}", config) for i in range(self.replicas)]
            for c in self.coordinators:
                self._stack.callback(c.ensure_stopped)
            with concurrent.futures.ThreadPoolExecutor(self.replicas) as pool:
                list(pool.map(lambda c: c.start(), self.coordinators))
            if self.with_nginx:
                upstreams = [c.upstream for c in self.coordinators]
                self.nginx = Nginx(self.root / "nginx", upstreams, keepalive=self.nginx_keepalive)
                self._stack.callback(self.nginx.stop)
                self.nginx.start()
        except BaseException:
            self.close()
            raise

    def adopt(self, worker: Any) -> None:
        """Stop `worker` (a WorkerProcess a test started, e.g. a replacement) with the rest of the topology."""
        self._stack.callback(worker.stop)

    def heal(self) -> None:
        """Restart any coordinator or redis-server an earlier scenario left stopped."""
        if self.redis is not None and self.redis.proc is None:
            self.redis.start()
        for c in self.coordinators:
            if c.proc is None or c.proc.poll() is not None:
                c.ensure_stopped()
                c.start()

    def add_front(self, name: str, **nginx: Any) -> Nginx:
        """Another nginx in front of the same coordinators (e.g. balance="ip_hash"), stopped with the rest."""
        nginx.setdefault("upstreams", [c.upstream for c in self.coordinators])
        front = Nginx(self.root / f"nginx-{name}", **nginx)
        self._stack.callback(front.stop)
        front.start()
        self.extra_fronts[name] = front
        return front

    def close(self) -> None:
        self._stack.close()

    def expiry_logs(self) -> list[str]:
        """session_id of every "session expired" log line across all coordinators."""
        return [
            str(rec.get("session_id"))
            for c in self.coordinators
            for rec in c.log_records()
            if rec.get("msg") == "session expired"
        ]
