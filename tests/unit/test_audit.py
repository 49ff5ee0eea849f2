"""Audit records: one JSON line per call, long values truncated with their SHA-256, flushed per record."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from coordinator.audit import AuditLog, redact_arguments, redact_value
from coordinator.config import AuditConfig


def audit_config(**changes: object) -> AuditConfig:
    values: dict[str, object] = {
        "enabled": True,
        "backend": "stdout",
        "format": "json",
        "file_path": "/nonexistent",
        "max_value_bytes": 32,
    }
    values.update(changes)
    return AuditConfig(**values)  # type: ignore[arg-type]


def record(log: AuditLog, **changes: object) -> None:
    fields: dict[str, object] = {
        "tool": "fs.write",
        "arguments": {"path": "a.txt", "content": "x" * 100},
        "outcome": "success",
        "duration_ms": 1.23456,
        "session_id": "s1",
        "caller": "alice",
        "trace_id": "t" * 32,
        "transport": "streamable-http",
        "protocol_version": "2026-07-28",
    }
    fields.update(changes)
    log.record(**fields)  # type: ignore[arg-type]


def test_short_values_are_kept_verbatim() -> None:
    """Values within max_value_bytes appear unchanged."""
    assert redact_arguments({"path": "a.txt", "n": 3, "flag": True, "none": None}, 32) == {
        "path": "a.txt",
        "n": 3,
        "flag": True,
        "none": None,
    }


def test_long_string_is_truncated_and_carries_its_sha256() -> None:
    """A long string keeps its first max_value_bytes bytes, its full size and the hash of the whole."""
    value = "é" * 100  # 200 UTF-8 bytes
    out = redact_value(value, 32)
    assert out == {
        "truncated": "é" * 16,
        "bytes": 200,
        "sha256": hashlib.sha256(value.encode()).hexdigest(),
    }


def test_truncation_never_splits_a_multibyte_character() -> None:
    """Cutting inside a UTF-8 sequence drops the partial character instead of emitting garbage."""
    out = redact_value("a" + "€" * 40, 32)
    assert isinstance(out, dict)
    assert out["truncated"] == "a" + "€" * 10


def test_long_lists_are_measured_and_hashed_as_json() -> None:
    """Non-string values are measured in compact JSON."""
    value = [f"package-number-{i}" for i in range(10)]
    raw = json.dumps(value, separators=(",", ":")).encode()
    out = redact_value(value, 32)
    assert out["bytes"] == len(raw)
    assert out["sha256"] == hashlib.sha256(raw).hexdigest()


def test_stdout_backend_writes_one_tagged_json_line_per_call() -> None:
    """Each record is a JSON line with log_type audit and every seed field."""
    stream = io.StringIO()
    log = AuditLog(audit_config(), stream=stream)
    record(log)
    record(log, tool="echo", arguments={"text": "hi"}, outcome="error", error="boom")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["log_type"] == "audit"
    assert first["tool"] == "fs.write"
    assert first["arguments"]["path"] == "a.txt"
    assert first["arguments"]["content"]["bytes"] == 100
    assert first["outcome"] == "success"
    assert first["duration_ms"] == 1.235
    assert (first["session_id"], first["caller"], first["trace_id"]) == ("s1", "alice", "t" * 32)
    assert (first["transport"], first["protocol_version"]) == ("streamable-http", "2026-07-28")
    assert first["time"].endswith("Z")
    assert second["error"] == "boom"


def test_file_backend_appends_and_is_readable_after_each_record(tmp_path: Path) -> None:
    """The file backend flushes per record: another reader sees each line at once."""
    path = tmp_path / "audit.jsonl"
    path.write_text('{"old": true}\n')
    log = AuditLog(audit_config(backend="file", file_path=str(path)))
    record(log)
    assert len(path.read_text().splitlines()) == 2
    record(log)
    assert len(path.read_text().splitlines()) == 3
    log.close()


def test_disabled_audit_writes_nothing() -> None:
    """audit.enabled false makes record() a no-op."""
    stream = io.StringIO()
    log = AuditLog(audit_config(enabled=False), stream=stream)
    record(log)
    assert stream.getvalue() == ""
