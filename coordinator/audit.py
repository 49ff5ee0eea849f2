"""The audit log: one JSON line per tool call, to stdout (or stderr under stdio) or to a file."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

from coordinator.config import AuditConfig

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)
_second: int = -1
_second_text = ""


def _iso(ts: float) -> str:
    """ISO-8601 UTC with milliseconds; the formatted second is cached (records come in bursts)."""
    global _second, _second_text
    whole = int(ts)
    if whole != _second:
        _second, _second_text = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second_text}.{int((ts - whole) * 1000):03d}Z"


def redact_value(value: Any, max_bytes: int) -> Any:
    """`value` itself when its JSON/UTF-8 form fits `max_bytes`; else a truncated form with its SHA-256.

    A long string becomes `{"truncated": <first max_bytes bytes>, "bytes": <full size>, "sha256": ...}`;
    any other long value is measured and hashed as compact JSON.
    """
    if isinstance(value, str):
        if len(value) * 4 <= max_bytes:  # cannot exceed the limit even if every char takes 4 bytes
            return value
        raw = value.encode("utf-8", "surrogatepass")
    elif value is None or isinstance(value, bool | int | float):
        return value
    else:
        raw = _ENCODER.encode(value).encode()
    if len(raw) <= max_bytes:
        return value
    return {
        "truncated": raw[:max_bytes].decode("utf-8", "ignore"),
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def redact_arguments(arguments: Mapping[str, Any], max_bytes: int) -> dict[str, Any]:
    """Every argument through `redact_value`."""
    return {key: redact_value(value, max_bytes) for key, value in arguments.items()}


class AuditLog:
    """Writes audit records as JSON lines tagged `"log_type": "audit"`.

    The file backend appends and flushes after every record (a local write, a few microseconds, so it
    stays on the event loop); stdout is flushed per record too so log shippers see each call at once.
    """

    def __init__(self, config: AuditConfig, stream: IO[str] | None = None) -> None:
        self.config = config
        self.enabled = config.enabled
        self._owned: IO[str] | None = None
        if not config.enabled:
            self._out: IO[str] | None = None
        elif config.backend == "file":
            # Records carry callers' code and file contents: a new file is readable by owner and group only.
            fd = os.open(config.file_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            self._owned = open(fd, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            self._out = self._owned
        else:
            self._out = stream if stream is not None else sys.stdout

    def record(
        self,
        *,
        tool: str,
        arguments: Mapping[str, Any],
        outcome: str,
        duration_ms: float,
        session_id: str | None,
        caller: str | None,
        trace_id: str | None,
        transport: str | None,
        protocol_version: str | None,
        error: str | None = None,
    ) -> None:
        """Write one record for a finished tool call."""
        out = self._out
        if out is None:
            return
        entry: dict[str, Any] = {
            "log_type": "audit",
            "time": _iso(time.time()),
            "tool": tool,
            "arguments": redact_arguments(arguments, self.config.max_value_bytes),
            "outcome": outcome,
            "duration_ms": round(duration_ms, 3),
            "session_id": session_id,
            "caller": caller,
            "trace_id": trace_id,
            "transport": transport,
            "protocol_version": protocol_version,
        }
        if error is not None:
            entry["error"] = redact_value(error, self.config.max_value_bytes)
        out.write(_ENCODER.encode(entry) + "\n")
        out.flush()

    def close(self) -> None:
        """Close the audit file, if this log opened one."""
        if self._owned is not None:
            self._owned.close()
            self._owned = None
            self._out = None
