"""JSON-lines logging to stderr (python-json-logger): time, level, msg, plus worker/session/trace ids."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

LOGGER_NAME = "worker"
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def formatter() -> logging.Formatter:
    """The JSON formatter: `{"time", "level", "msg", ...extra fields}`."""
    return JsonFormatter(
        ["levelname", "message"],
        rename_fields={"levelname": "level", "message": "msg"},
        timestamp="time",
    )


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send the `worker`, `aiohttp` and `asyncio` loggers to `stream` (stderr) as JSON lines.

    Call this from a process entry point only; `create_app` never touches logging configuration.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter())
    for name in (LOGGER_NAME, "aiohttp", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("aiohttp.access").disabled = True


def get_logger() -> logging.Logger:
    """The worker's logger."""
    return logging.getLogger(LOGGER_NAME)


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C `traceparent` header, or None when it is absent or malformed."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    return match.group(1) if match else None


def fields(**values: Any) -> dict[str, Any]:
    """`extra=` for a log call, dropping None values."""
    return {k: v for k, v in values.items() if v is not None}
