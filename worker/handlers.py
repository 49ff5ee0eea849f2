"""The HTTP handlers of the worker API (docs/worker-api.md): sessions and one endpoint per workspace tool."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from worker import files, packages, runner
from worker.errors import WorkerError, invalid
from worker.sessions import Session, check_session_id
from worker.state import STATE, WorkerState
from worker.venvs import ensure_venv, venv_python

INLINE_READ_BYTES = 64 * 1024


def add_routes(app: web.Application) -> None:
    """Register every /v1 route on `app`."""
    app.router.add_put("/v1/sessions/{sid}", put_session)
    app.router.add_get("/v1/sessions/{sid}", get_session)
    app.router.add_delete("/v1/sessions/{sid}", delete_session)
    app.router.add_post("/v1/sessions/{sid}/fs/read", fs_read)
    app.router.add_post("/v1/sessions/{sid}/fs/write", fs_write)
    app.router.add_post("/v1/sessions/{sid}/fs/list", fs_list)
    app.router.add_post("/v1/sessions/{sid}/run/python", run_python)
    app.router.add_post("/v1/sessions/{sid}/pkg/install", pkg_install)
    app.router.add_post("/v1/sessions/{sid}/artifact/get", artifact_get)


def _accepting(request: web.Request) -> WorkerState:
    state = request.app[STATE]
    if state.draining:
        raise WorkerError("capacity_exhausted", "this worker is draining (shutting down); use another worker")
    return state


async def _body(request: web.Request, allowed: frozenset[str]) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise invalid("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid(f"the request body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise invalid(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return body


def _int(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid(f"{key} must be a non-negative integer, got {value!r}")
    return value


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise invalid(f"{key} must be true or false, got {value!r}")
    return value


def _path(body: dict[str, Any], key: str = "path", default: str | None = None) -> str:
    value = body.get(key, default)
    if value is None:
        raise invalid(f"{key} is required")
    if not isinstance(value, str):
        raise invalid(f"{key} must be a string, got {type(value).__name__}")
    return value


def _session(request: web.Request) -> tuple[WorkerState, Session]:
    state = _accepting(request)
    return state, state.sessions.get(request.match_info["sid"])


async def put_session(request: web.Request) -> web.Response:
    """Create or adopt a session; idempotent. The body is ignored (reserved for future options)."""
    state = _accepting(request)
    session, created = await state.sessions.create(request.match_info["sid"])
    return web.json_response({"session_id": session.id, "created": created})


async def get_session(request: web.Request) -> web.Response:
    """A session's status: whether a call runs, how many wait, idle seconds."""
    session = request.app[STATE].sessions.get(request.match_info["sid"])
    return web.json_response(
        {
            "session_id": session.id,
            "busy": session.busy,
            "queued": session.waiting,
            "idle_seconds": round(session.idle_seconds(), 3),
        }
    )


async def delete_session(request: web.Request) -> web.Response:
    """Delete a session and its workspace; idempotent (allowed while draining)."""
    sid = check_session_id(request.match_info["sid"])
    deleted = await request.app[STATE].sessions.delete(sid)
    return web.json_response({"session_id": sid, "deleted": deleted})


async def fs_read(request: web.Request) -> web.Response:
    """fs.read: a page of a file, as UTF-8 text or base64."""
    state, session = _session(request)
    async with session.turn():
        body = await _body(request, frozenset({"path", "offset", "limit"}))
        path = _path(body)
        max_read = state.config.limits.max_read_bytes
        limit = min(_int(body, "limit", max_read), max_read)
        opened = files.open_for_read(session.workspace, path, _int(body, "offset", 0), limit)
        if opened.length <= INLINE_READ_BYTES:
            answer = files.finish_read(opened)
        else:
            answer = await asyncio.to_thread(files.finish_read, opened)
    return web.json_response(answer)


async def fs_write(request: web.Request) -> web.Response:
    """fs.write: atomic write (or append), creating parent directories."""
    state, session = _session(request)
    async with session.turn():
        body = await _body(request, frozenset({"path", "content", "contents", "encoding", "append"}))
        path = _path(body)
        if "content" in body and "contents" in body:
            raise invalid("give content or contents, not both")
        content = body.get("content", body.get("contents"))
        if content is None:
            raise invalid("content is required (a string; base64 when encoding is 'base64')")
        data = files.decode_content(content, body.get("encoding", "utf-8"))
        limits = state.config.limits
        answer = await asyncio.to_thread(
            files.write_file,
            session.workspace,
            path,
            data,
            append=_bool(body, "append"),
            max_bytes=limits.max_file_bytes,
            max_files=limits.max_files,
        )
    return web.json_response(answer)


async def fs_list(request: web.Request) -> web.Response:
    """fs.list: entries with type, size and mtime; optional recursion and glob."""
    state, session = _session(request)
    async with session.turn():
        body = await _body(request, frozenset({"path", "recursive", "glob"}))
        path = _path(body, default=".")
        glob = body.get("glob")
        if glob is not None and (not isinstance(glob, str) or not glob):
            raise invalid(f"glob must be a non-empty string such as '*.py', got {glob!r}")
        answer = await asyncio.to_thread(
            files.list_dir,
            session.workspace,
            path,
            recursive=_bool(body, "recursive"),
            glob=glob,
            max_entries=state.config.limits.max_list_entries,
        )
    return web.json_response(answer)


async def run_python(request: web.Request) -> web.Response:
    """run.python: code or a workspace file in the session venv."""
    state, session = _session(request)
    async with session.turn():
        body = await _body(request, frozenset({"code", "file", "args", "stdin", "timeout"}))
        req = runner.parse_run(body, state.config.limits)
        python = await ensure_venv(session.venv)
        answer = await runner.run_python(
            req,
            ws=session.workspace,
            python=python,
            venv=session.venv,
            private=session.private,
            limits=state.config.limits,
            groups=state.groups,
            session_id=session.id,
        )
    return web.json_response(answer)


async def pkg_install(request: web.Request) -> web.Response:
    """pkg.install: requirement specifiers into the session venv."""
    state, session = _session(request)
    async with session.turn():
        body = await _body(request, frozenset({"packages", "timeout"}))
        config = state.config
        requirements = packages.parse_requirements(body.get("packages"), config.packages)
        timeout = runner.parse_timeout(body, config.limits.install_timeout_seconds, "limits.install_timeout_seconds")
        await ensure_venv(session.venv)
        answer = await packages.install(
            requirements,
            python=venv_python(session.venv),
            venv=session.venv,
            private=session.private,
            settings=config.packages,
            limits=config.limits,
            time_limit=timeout,
            groups=state.groups,
            session_id=session.id,
        )
    return web.json_response(answer)


async def artifact_get(request: web.Request) -> web.Response:
    """artifact.get: a file under artifacts/, base64-encoded, within limits.max_artifact_bytes."""
    state, session = _session(request)
    async with session.turn():
        body = await _body(request, frozenset({"path"}))
        answer = await asyncio.to_thread(
            files.get_artifact, session.workspace, _path(body), state.config.limits.max_artifact_bytes
        )
    return web.json_response(answer)
