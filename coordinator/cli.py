"""The `coordinator` command line: parse flags, load and validate config, then serve."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

from coordinator import __version__
from coordinator.config import ConfigError, load_config
from coordinator.logs import setup_logging

EXIT_CONFIG = 2


def parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the flags)."""
    p = argparse.ArgumentParser(
        prog="coordinator",
        description="codegen-mcp coordinator: MCP over stdio, Streamable HTTP and SSE, routing workspace "
        "tools to workers.",
    )
    p.add_argument(
        "--config", metavar="FILE", help="config.yaml to load (default: $CONFIG_FILE, else built-in defaults)"
    )
    p.add_argument("--transport", choices=("stdio", "http"), help="override server.transport")
    p.add_argument("--debug", action="store_true", help="debug logging (overrides server.log_level)")
    p.add_argument(
        "--check-config", action="store_true", help="validate the configuration, print the result, exit"
    )
    p.add_argument("--version", action="version", version=f"coordinator (codegen-mcp) {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `coordinator` console script; returns the process exit code."""
    args = parser().parse_args(argv)
    path = args.config or os.environ.get("CONFIG_FILE") or None
    overrides: dict[str, Any] = {}
    if args.transport:
        overrides.setdefault("server", {})["transport"] = args.transport
    if args.debug:
        overrides.setdefault("server", {})["log_level"] = "debug"
    try:
        config = load_config(path, overrides=overrides)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    if args.check_config:
        source = path or "built-in defaults"
        if config.auth.enabled:
            # The server would refuse to start without a readable, well-formed token file: say so now.
            from coordinator.auth import AuthConfigError, load_tokens  # noqa: PLC0415 - only when enabled

            try:
                load_tokens(config.auth.tokens_file)
            except AuthConfigError as exc:
                prefix = f"{os.path.basename(path)}: " if path else ""
                print(f"{prefix}auth.tokens_file: {exc}", file=sys.stderr)
                return EXIT_CONFIG
        if config.worker.embedded and config.worker.embedded_config:
            from coordinator.embedded_worker import EmbeddedConfigError, EmbeddedWorker  # noqa: PLC0415
            from worker.config import load_config as load_worker_config  # noqa: PLC0415

            embedded = EmbeddedWorker(config)
            try:
                embedded.load_worker_config(load_worker_config, embedded.worker_overrides())
            except EmbeddedConfigError as exc:
                prefix = f"{os.path.basename(path)}: " if path else ""
                for line in exc.errors:
                    print(prefix + line, file=sys.stderr)
                return EXIT_CONFIG
        print(f"config OK ({source})")
        return 0
    setup_logging(config.server.log_level)
    from coordinator.app import StartupError, serve  # noqa: PLC0415 - keep --version/--check-config fast

    try:
        return asyncio.run(serve(config, config.server.transport))
    except StartupError as exc:
        print(f"coordinator: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # pragma: no cover - SIGINT before the handler is installed
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
