"""Building CallToolResult dicts: successes, tool errors, and help text for worker and argument errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema

from coordinator.worker_client import WorkerError

Result = dict[str, Any]
"""A CallToolResult as a JSON-ready dict."""


class ToolFailure(Exception):
    """A tool's own failure: becomes an isError result carrying this message."""


def ok(text: str, structured: dict[str, Any]) -> Result:
    """A successful CallToolResult."""
    return {"content": [{"type": "text", "text": text}], "structuredContent": structured, "isError": False}


def failed(text: str, structured: dict[str, Any] | None = None) -> Result:
    """An isError CallToolResult."""
    result: Result = {"content": [{"type": "text", "text": text}], "isError": True}
    if structured is not None:
        result["structuredContent"] = structured
    return result


def clip_long_text(result: Result, limit: int) -> None:
    """Cut an over-long first text block in place, saying how much was left out and how to get it.

    The text is what a model reads; a megabyte of stdout would flood its context. structuredContent
    is left whole for programs.
    """
    block = result["content"][0]
    text: str = block["text"]
    if len(text) <= limit:
        return
    block["text"] = (
        f"{text[:limit]}\n[... {len(text) - limit:,} more characters not shown (limits.max_result_text_chars = "
        f"{limit:,}); structuredContent has the whole value. To see more, read files in pages with fs.read "
        "offset/limit, or have the program write long output to a file and read that in parts.]"
    )


def argument_error(tool: str, err: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return f"invalid arguments for {tool}: missing required argument '{missing}'"
    if err.validator == "additionalProperties":
        allowed = ", ".join(err.schema.get("properties", {})) if isinstance(err.schema, Mapping) else ""
        extra = (
            sorted(set(err.instance) - set(err.schema.get("properties", {})))
            if isinstance(err.instance, dict) and isinstance(err.schema, Mapping)
            else []
        )
        names = ", ".join(map(repr, extra))
        return f"invalid arguments for {tool}: unknown argument {names} (allowed: {allowed})"
    where = f"argument '{path}'" if path else "arguments"
    return f"invalid arguments for {tool}: {where}: {err.message}"


def worker_message(tool: str, exc: WorkerError) -> str:
    if exc.kind == "connect":
        return f"{tool} failed: the worker is unreachable ({exc.message}); try again shortly"
    if exc.kind == "timeout":
        return (
            f"{tool} failed: {exc.message}; the call may still be running on the worker, so check the "
            "workspace before retrying"
        )
    if exc.kind == "disconnected":
        return f"{tool} failed: {exc.message}; the call may or may not have run, so check the workspace first"
    if exc.kind == "protocol":
        return f"{tool} failed: {exc.message}"
    hint = {
        "too_large": {
            "fs.read": "; read large files in pieces with offset and limit",
            "artifact.get": "; read it in pieces with fs.read (path artifacts/...) and offset and limit",
        }.get(tool, ""),
        # The worker is full or draining, or killed the call because its session was closed.
        "capacity_exhausted": "; try again shortly (after session.create if this session was closed)",
    }.get(exc.code or "", "")
    if exc.code == "internal" or ((exc.status or 0) >= 500 and exc.code not in ("timeout", "capacity_exhausted")):
        return f"{tool} failed: the worker reported an internal error: {exc.message}"
    return f"{tool} failed: {exc.message}{hint}"


def opened_block(session_id: str) -> dict[str, str]:
    return {
        "type": "text",
        "text": f"Opened new session '{session_id}'; pass session_id=\"{session_id}\" on later calls to keep "
        "working in this workspace.",
    }


def run_result(answer: dict[str, Any]) -> Result:
    code = answer.get("exit_code")
    parts = [f"exit_code: {code}"]
    for stream in ("stdout", "stderr"):
        value = answer.get(stream) or ""
        if value:
            cut = " (truncated)" if answer.get(f"{stream}_truncated") else ""
            parts.append(f"--- {stream}{cut} ---\n{value}")
    text = "\n".join(parts)
    if code != 0:
        return failed("run.python: the program failed\n" + text, answer)
    return ok(text, answer)
