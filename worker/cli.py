"""The `worker` console script: load config, serve, and stop cleanly on SIGTERM (exit 0)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from worker.app import begin_drain, create_app
from worker.config import ConfigError, WorkerConfig, load_config
from worker.logs import configure_logging, fields, get_logger

SHUTDOWN_TIMEOUT_SECONDS = 10.0


class StartupError(Exception):
    """The worker cannot start serving (workspace root unusable, port taken); the message says why."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="worker", description="codegen-mcp reference worker")
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON config (schemas/worker-config.schema.json)")
    parser.add_argument("--check-config", action="store_true", help="validate the config and exit")
    parser.add_argument("--port-file", metavar="FILE", help="write the bound port here once listening")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for an invalid config)."""
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for line in exc.errors:
            print(f"worker: config: {line}", file=sys.stderr)
        return 2
    if args.check_config:
        print("worker: config OK", file=sys.stderr)
        return 0
    configure_logging(config.log_level)
    try:
        asyncio.run(serve(config, Path(args.port_file) if args.port_file else None))
    except StartupError as exc:
        get_logger().error(str(exc), extra=fields(worker_id=config.worker_id))
        return 1
    return 0


def _write_port_file(path: Path, port: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{port}\n", "utf-8")
    os.replace(tmp, path)


async def serve(config: WorkerConfig, port_file: Path | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then drain: refuse work, kill children, finish, return."""
    log = get_logger()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # before the port is announced: a test may stop us at once
        loop.add_signal_handler(signum, stop.set)
    try:
        app = create_app(config)
    except OSError as exc:
        raise StartupError(
            f"workspace_root {str(config.workspace_root)!r} is not usable: {exc.strerror or exc}; "
            "point workspace_root (or $WORKSPACE_ROOT) at a writable directory"
        ) from None
    # handler_cancellation: a caller that hangs up (a coordinator killed or giving up mid-call) cancels
    # its handler, which kills the run's process group and frees the session's queue.
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
        access_log=None,
        handler_cancellation=True,
    )
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}; "
            "set port (or $PORT) to a free port, or 0 for any"
        ) from None
    port = next(addr[1] for addr in runner.addresses if isinstance(addr, tuple))
    log.info("listening", extra=fields(worker_id=config.worker_id, host=config.host, port=port))
    if port_file is not None:
        _write_port_file(port_file, port)
    try:
        await stop.wait()
        log.info("stopping", extra=fields(worker_id=config.worker_id))
        await begin_drain(app)
    finally:
        await runner.cleanup()
    log.info("stopped", extra=fields(worker_id=config.worker_id))


if __name__ == "__main__":
    sys.exit(main())
