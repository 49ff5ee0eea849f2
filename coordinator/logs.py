"""JSON-lines logging on stderr (python-json-logger): `time`, `level`, `msg`, plus the call's known fields."""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

LOGGER_NAME = "coordinator"

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _Formatter(JsonFormatter):
    """ISO-8601 UTC `time` with milliseconds; `level` and `msg` renamed from logging's names."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{whole}.{int(record.msecs):03d}Z"


def setup_logging(level: str = "info", stream: IO[str] | None = None) -> logging.Logger:
    """Send every log record (ours, aiohttp's, the embedded worker's) as JSON lines to `stream` (stderr).

    Returns the `coordinator` logger. Calling it again replaces the handler, so tests and the CLI can
    reconfigure freely.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(
        _Formatter(
            "{asctime}{levelname}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "message": "msg"},
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS.get(level, logging.INFO))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    return logging.getLogger(LOGGER_NAME)


def get_logger(name: str = LOGGER_NAME) -> logging.Logger:
    """A logger under the `coordinator` namespace."""
    return logging.getLogger(name)


def fields(**values: Any) -> dict[str, Any]:
    """`extra=` for a log call, dropping fields that are not known (None)."""
    return {k: v for k, v in values.items() if v is not None}
