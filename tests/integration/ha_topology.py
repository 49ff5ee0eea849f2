"""The HA topology as real processes on 127.0.0.1: nginx round-robin, coordinators on one redis-server, workers."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ha_processes import READY_TIMEOUT, ProcessDied, env_without, free_port, require_binaries, wait_until
from ha_redis import RedisServer, running_redis

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

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
