"""Assembles the coordinator: runtime parts, the aiohttp apps (MCP + probes, metrics), and their lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from coordinator import health
from coordinator.audit import AuditLog
from coordinator.calls import ServerIdentity, TransportSettings
from coordinator.config import Config
from coordinator.embedded_worker import EmbeddedConfigError, EmbeddedWorker
from coordinator.logs import get_logger
from coordinator.metrics import Metrics
from coordinator.session_store import SessionStore
from coordinator.sessions import SessionManager, make_store
from coordinator.tasks import TaskManager
from coordinator.tools import CoordinatorTools
from coordinator.transports.security import security_middleware
from coordinator.transports.sse import SseTransport
from coordinator.transports.streamable_http import StreamableHttpTransport
from coordinator.worker_client import WorkerClient, WorkerError
from coordinator.worker_pool import Endpoint, WorkerPool

log = get_logger("coordinator.app")

ABORT_FLUSH_SECONDS = 2.0
"""After the shutdown grace, how long stopped calls get to send their error answers."""

INSTRUCTIONS = (
    "Workspace tools: open a session with session.create (or just call a tool; a session is opened for you "
    "and its session_id comes back), then fs.write, run.python, fs.read, fs.list, pkg.install and "
    "artifact.get in it. Long runs can pass async: true and poll task.get_status / task.get_result."
)


class StartupError(Exception):
    """The coordinator cannot start; the message says which setting to fix. Exit code 2 for config, 1 else."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Runtime:
    """Every long-lived part of one coordinator process, built from config (nothing starts in __init__).

    `started` turns True once workers and the store are connected; `draining` once SIGTERM arrived.
    """

    def __init__(self, config: Config, metrics: Metrics | None = None, audit_stream: Any = None) -> None:
        self.config = config
        self.metrics = metrics if metrics is not None else Metrics()
        try:
            self.audit = AuditLog(config.audit, stream=audit_stream)
        except OSError as exc:
            raise StartupError(
                f"audit.file_path: cannot open {config.audit.file_path!r}: {exc.strerror or exc} "
                "(mount a writable volume there, set AUDIT_FILE, or use audit.backend: stdout)"
            ) from exc
        self.store: SessionStore = make_store(config.session)
        self.client = WorkerClient(config.worker, on_error=self._worker_error)
        self.embedded = EmbeddedWorker(config) if config.worker.embedded else None
        self.pool = WorkerPool(config.worker, self.client)
        self.sessions = SessionManager(config, self.store, self.pool, self.client, self.metrics)
        self.tasks = TaskManager(config.limits.max_tasks, config.limits.task_ttl)
        self.tools = CoordinatorTools(config, self.sessions, self.tasks, self.audit, self.metrics)
        self.identity = ServerIdentity(config.server.name, config.server.version, INSTRUCTIONS)
        self.started = False
        self.draining = False

    def _worker_error(self, err: WorkerError) -> None:
        self.metrics.worker_error(err.metric_kind)

    async def start(self) -> None:
        """Connect the worker pool (starting the embedded worker if needed) and start the expiry loop."""
        await self.client.start()
        if self.embedded is not None:
            try:
                url = await self.embedded.start()
            except EmbeddedConfigError as exc:
                raise StartupError("\n".join(exc.errors)) from exc
            except ImportError as exc:
                raise StartupError(
                    f"the embedded worker is unavailable ({exc}); install codegen-mcp with its worker, "
                    "or set worker.url (env WORKER_URL) to a running worker"
                ) from exc
            except OSError as exc:
                raise StartupError(
                    f"worker.workspace_root: cannot use {self.config.worker.workspace_root!r} for the "
                    f"embedded worker: {exc.strerror or exc}; set WORKSPACE_ROOT to a writable directory"
                ) from exc
            self.pool.endpoints = {url: Endpoint(url)}
        await self.pool.start()
        self.sessions.start()
        self.started = True

    async def refresh_gauges(self) -> None:
        """Read the open-session count from the store (at scrape time)."""
        try:
            async with asyncio.timeout(health.STORE_PING_TIMEOUT):
                self.metrics.sessions_active.set(await self.store.count())
        except Exception as exc:
            log.debug("sessions_active not refreshed: %s", exc)

    async def aclose(self) -> None:
        """Stop background work and close connections, in reverse order of start."""
        await self.sessions.aclose()
        await self.pool.aclose()
        await self.client.aclose()
        if self.embedded is not None:
            await self.embedded.aclose()
        await self.store.aclose()
        self.audit.close()


RUNTIME = web.AppKey("runtime", Runtime)
TRANSPORTS = web.AppKey("transports", list)


def transport_settings(config: Config) -> TransportSettings:
    """The transports' settings from config; loads the auth tokens file when auth is on."""
    tokens = None
    if config.auth.enabled:
        from coordinator.auth import AuthConfigError, load_tokens  # noqa: PLC0415

        try:
            tokens = load_tokens(config.auth.tokens_file)
        except AuthConfigError as exc:
            raise StartupError(f"auth.tokens_file: {exc}") from exc
    return TransportSettings(
        allowed_origins=config.security.allowed_origins,
        allowed_hosts=config.security.allowed_hosts,
        trust_forwarded_host=config.security.trust_forwarded_host,
        max_body_bytes=config.limits.max_body_bytes,
        keepalive_interval=config.server.keepalive_interval,
        auth_tokens=tokens,
    )


def build_app(runtime: Runtime, settings: TransportSettings, *, mcp: bool = True) -> web.Application:
    """The main application: probes, debug pages and (unless `mcp` is False) /mcp, /sse and /messages."""
    app = web.Application(client_max_size=runtime.config.limits.max_body_bytes)
    app[RUNTIME] = runtime
    app[TRANSPORTS] = []
    health.add_routes(app, runtime)
    if mcp:
        _add_transports(app, runtime, settings)
    return app


def _add_transports(app: web.Application, runtime: Runtime, settings: TransportSettings) -> None:
    service, identity = runtime.tools, runtime.identity
    # A shared store (Redis) lets any replica serve a handshake-era Mcp-Session-Id. The memory store is
    # private to this process, where the transport's own memory already is the whole truth.
    store = runtime.store if runtime.store.shared else None
    http = StreamableHttpTransport(
        service, identity, settings, idle_timeout=runtime.config.session.max_age, store=store
    )
    http.add_routes(app)
    app[TRANSPORTS].append(http)
    sse = SseTransport(service, identity, settings)
    sse.add_routes(app)
    app[TRANSPORTS].append(sse)
    app.middlewares.append(security_middleware(settings))


def build_metrics_app(runtime: Runtime) -> web.Application:
    """The metrics application served on server.metrics_port: GET /metrics."""
    app = web.Application()
    app.router.add_get("/metrics", runtime.metrics.handler(runtime.refresh_gauges))
    return app


async def close_transports(app: web.Application) -> None:
    """End open GET/SSE streams and transport sessions."""
    for transport in app[TRANSPORTS]:
        try:
            await transport.aclose()
        except Exception:  # pragma: no cover - shutdown goes on regardless
            log.exception("closing a transport failed")


def connect_help(url: str, workspace_root: str) -> str:
    """Human-readable instructions printed once at startup in http mode."""
    argv0 = Path(sys.argv[0])
    command = str(argv0.resolve()) if argv0.name == "coordinator" and argv0.exists() else "coordinator"
    server = {
        "command": command,
        "args": ["--transport", "stdio"],
        # Ports 0: each stdio copy the client starts gets its own free health/metrics ports, so none of
        # them holds 8080/9090 against `make run`.
        "env": {
            "WORKSPACE_ROOT": str(Path(workspace_root).expanduser().resolve()),
            "PORT": "0",
            "METRICS_PORT": "0",
        },
    }
    snippet = json.dumps({"mcpServers": {"codegen-mcp": server}}, indent=2)
    return (
        f"\ncodegen-mcp coordinator is serving MCP at {url}/mcp (legacy SSE at {url}/sse)\n\n"
        f"  Try it with the MCP Inspector:\n"
        f"    npx -y @modelcontextprotocol/inspector --cli {url}/mcp --transport http --method tools/list\n\n"
        f"  Claude Code:  claude mcp add --transport http codegen-mcp {url}/mcp\n"
        f"  Claude Desktop (stdio), in claude_desktop_config.json:\n"
        + "\n".join("    " + line for line in snippet.splitlines())
        + "\n\n"
    )


class Server:
    """Runs the listeners and owns SIGTERM: drain, stop accepting, finish in-flight calls, clean up.

    aiohttp's run_app closes its listener before anything else, so this uses AppRunner/TCPSite
    directly: `/ready` turns 503 first, new requests are still served for `server.drain_delay`, then
    the listeners close, in-flight tool calls get `server.shutdown_grace`, and only then do the
    transports and the runtime shut down.
    """

    def __init__(self, runtime: Runtime, settings: TransportSettings, transport: str) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.transport = transport
        self.app = build_app(runtime, settings, mcp=transport == "http")
        self.metrics_app = build_metrics_app(runtime)
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        self.metrics_runner = web.AppRunner(self.metrics_app, access_log=None, handle_signals=False)
        self.port: int | None = None
        self.metrics_port: int | None = None
        self._stop = asyncio.Event()

    async def _bind(self, runner: web.AppRunner, port: int, what: str) -> int | None:
        await runner.setup()
        site = web.TCPSite(runner, self.config.server.host, port)
        try:
            await site.start()
        except OSError as exc:
            if self.transport == "stdio":  # several stdio copies may run side by side (Claude Desktop)
                log.warning("%s listener not started on %s:%s: %s", what, self.config.server.host, port, exc)
                return None
            key = "server.port (env PORT)" if what == "http" else "server.metrics_port (env METRICS_PORT)"
            raise StartupError(
                f"cannot listen on {self.config.server.host}:{port} for {what}: {exc.strerror or exc}; "
                f"choose another {key}",
                exit_code=1,
            ) from exc
        return int(runner.addresses[-1][1])

    async def start(self) -> None:
        """Bind both listeners, report their ports, then connect workers and the store."""
        started = time.perf_counter()
        self.port = await self._bind(self.runner, self.config.server.port, "http")
        self.metrics_port = await self._bind(self.metrics_runner, self.config.server.metrics_port, "metrics")
        log.info(
            "listening",
            extra={
                "host": self.config.server.host,
                "port": self.port,
                "metrics_port": self.metrics_port,
                "transport": self.transport,
            },
        )
        await self.runtime.start()
        gc.freeze()  # startup objects (schemas, models, modules) leave the collector's working set
        log.info("ready", extra={"startup_ms": round((time.perf_counter() - started) * 1000, 1)})

    def request_stop(self) -> None:
        """Begin the graceful shutdown (the SIGTERM/SIGINT handler)."""
        if not self.runtime.draining:
            log.info("shutdown requested: draining")
        self.runtime.draining = True
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT start the graceful shutdown."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    async def wait_stopped(self) -> None:
        """Return once a stop was requested."""
        await self._stop.wait()

    async def shutdown(self) -> None:
        """Drain, stop accepting, wait for in-flight work, then close everything."""
        self.runtime.draining = True
        cfg = self.config.server
        if cfg.drain_delay > 0 and self.transport == "http":
            await asyncio.sleep(cfg.drain_delay)
        for site in list(self.runner.sites):
            await site.stop()
        deadline = time.monotonic() + cfg.shutdown_grace
        tools = self.runtime.tools
        # Calls arriving on kept-alive connections (e.g. a proxy's) are still served within the grace:
        # refusing them would fail calls that a proxy has no way to retry elsewhere.
        if not await tools.wait_idle(cfg.shutdown_grace):
            log.warning("shutdown grace expired with %d call(s) still running", tools.inflight)
            await abort_calls(tools)
        # Close the kept-alive connections before refusing anything: a call that slipped in on one just
        # before this point is still served (within the runner's shutdown timeout), never refused.
        await close_transports(self.app)
        await self.runner.cleanup()
        tools.accepting = False
        await self.runtime.tasks.wait_all(max(0.0, deadline - time.monotonic()))
        await self.metrics_runner.cleanup()
        await self.runtime.aclose()
        log.info("stopped")


async def abort_calls(tools: CoordinatorTools) -> None:
    """Answer the calls still running when the grace ran out with a tool error, and let the answers go out."""
    stopped = tools.abort_inflight()
    if not await tools.wait_idle(ABORT_FLUSH_SECONDS):
        log.warning("%d of %d stopped call(s) did not unwind in time", tools.inflight, stopped)


async def serve(config: Config, transport: str) -> int:
    """Run the coordinator until SIGTERM (http) or stdin EOF (stdio); returns the exit code."""
    settings = transport_settings(config)
    audit_stream = sys.stderr if transport == "stdio" else None
    runtime = Runtime(config, audit_stream=audit_stream)
    server = Server(runtime, settings, transport)
    server.install_signal_handlers()
    try:
        await server.start()
    except BaseException:
        with contextlib.suppress(Exception):
            await server.runner.cleanup()
            await server.metrics_runner.cleanup()
            await runtime.aclose()
        raise
    if transport == "stdio":
        from coordinator.transports.stdio import serve_stdio  # noqa: PLC0415

        stdio = asyncio.create_task(serve_stdio(runtime.tools, runtime.identity))
        stop = asyncio.create_task(server.wait_stopped())
        await asyncio.wait({stdio, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if stdio.done():
            stdio.result()
        else:  # SIGTERM: let calls already read from stdin finish (and answer) before stopping
            if not await runtime.tools.wait_idle(config.server.shutdown_grace):
                log.warning("shutdown grace expired with %d call(s) still running", runtime.tools.inflight)
                await abort_calls(runtime.tools)
            stdio.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stdio
    else:
        sys.stderr.write(
            connect_help(
                f"http://{_url_host(config.server.host)}:{server.port}", config.worker.workspace_root
            )
        )
        sys.stderr.flush()
        await server.wait_stopped()
    await server.shutdown()
    return 0


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
