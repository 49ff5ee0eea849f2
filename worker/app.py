"""The worker's aiohttp application factory: state, middleware, health, lifecycle (reaper, drain)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from worker import handlers
from worker.config import WorkerConfig
from worker.errors import WorkerError
from worker.logs import fields, get_logger, trace_id
from worker.processes import ProcessGroups
from worker.sessions import SessionRegistry
from worker.state import STATE, WorkerState

log = get_logger()
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# Successful read-only calls log at DEBUG: at thousands per second an INFO line each would cost
# about a third of the worker's throughput (bench/worker_bench.py) and drown the useful lines.
_READ_ONLY = ("/fs/read", "/fs/list", "/artifact/get")
# OS errors a request can cause on its own; any other OSError is the worker's fault: `internal`.
_OS_ERRORS = {
    errno.ENAMETOOLONG: "invalid_argument",
    errno.ENOSPC: "too_large",
    errno.EDQUOT: "too_large",
    errno.EFBIG: "too_large",
}
# What to tell the caller for each: the request path (/v1/sessions/...) means nothing to a model.
_OS_HINTS = {
    errno.ENAMETOOLONG: "a file or directory name is too long (at most 255 bytes per name); use a shorter one",
    errno.ENOSPC: "the workspace volume is full; delete files that are no longer needed",
    errno.EDQUOT: "the workspace volume's quota is used up; delete files that are no longer needed",
    errno.EFBIG: "the file would exceed the largest size allowed",
}
_HTTP_CODES = {404: "not_found", 405: "invalid_argument", 413: "too_large", 400: "invalid_argument"}


def error_response(err: WorkerError) -> web.Response:
    """The JSON answer for `err`."""
    return web.json_response(err.to_json(), status=err.status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map every failure to `{error: {code, message}}` and log each call as one JSON line."""
    started = time.monotonic()
    tid = trace_id(request.headers.get("traceparent"))
    state = request.app[STATE]
    sid = request.match_info.get("sid")
    try:
        response = await handler(request)
    except WorkerError as err:
        response = error_response(err)
    except web.HTTPException as exc:
        code = _HTTP_CODES.get(exc.status, "internal" if exc.status >= 500 else "invalid_argument")
        if exc.status == 413:
            message = f"request body is larger than the {state.body_cap} bytes this worker accepts"
        elif exc.status == 404:
            message = f"no endpoint {request.method} {request.path}; see docs/worker-api.md"
        else:
            message = f"{request.method} {request.path}: {exc.reason}"
        response = error_response(WorkerError(code, message))
    except OSError as exc:
        known = _OS_ERRORS.get(exc.errno or 0)
        if known is None:
            log.exception("unexpected OS error", extra=fields(worker_id=state.config.worker_id, session_id=sid))
            response = error_response(WorkerError("internal", "the worker failed unexpectedly; see its log"))
        else:
            response = error_response(WorkerError(known, f"{exc.strerror or exc}: {_OS_HINTS[exc.errno or 0]}"))
    except Exception:
        log.exception(
            "unexpected failure", extra=fields(worker_id=state.config.worker_id, session_id=sid, trace_id=tid)
        )
        response = error_response(WorkerError("internal", "the worker failed unexpectedly; see its log"))
    quiet = response.status < 400 and (request.method == "GET" or request.path.endswith(_READ_ONLY))
    level = logging.DEBUG if quiet else logging.INFO
    if request.path != "/health" and log.isEnabledFor(level):
        log.log(
            level,
            "request",
            extra=fields(
                worker_id=state.config.worker_id,
                session_id=sid,
                trace_id=tid,
                method=request.method,
                path=request.path,
                status=response.status,
                duration_ms=round((time.monotonic() - started) * 1000, 3),
            ),
        )
    return response


async def health(request: web.Request) -> web.Response:
    """`{status, worker_id, sessions, capacity}`; 503 while draining."""
    state = request.app[STATE]
    body = {
        "status": "draining" if state.draining else "ok",
        "worker_id": state.config.worker_id,
        "sessions": len(state.sessions),
        "capacity": state.config.max_sessions,
    }
    return web.json_response(body, status=503 if state.draining else 200)


async def kill_children(app: web.Application) -> int:
    """SIGKILL every process group this worker started; returns how many. Safe to call repeatedly."""
    return app[STATE].groups.kill_all()


async def begin_drain(app: web.Application) -> None:
    """Refuse new work (capacity_exhausted), answer /health 503 and kill running children."""
    state = app[STATE]
    first = not state.draining
    state.draining = True
    killed = state.groups.close()
    if first or killed:
        log.info("draining", extra=fields(worker_id=state.config.worker_id, killed_process_groups=killed))


async def _on_shutdown(app: web.Application) -> None:
    await begin_drain(app)


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    """Orphan cleanup at startup, then the idle reaper until cleanup."""
    state = app[STATE]
    config = state.config
    if config.cleanup_orphans_on_start:
        removed = await asyncio.to_thread(state.sessions.cleanup_orphans)
        log.info("orphan workspaces removed", extra=fields(worker_id=config.worker_id, count=len(removed)))
    task = asyncio.create_task(_reap_forever(state), name="worker-reaper")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await kill_children(app)


async def _reap_forever(state: WorkerState) -> None:
    config = state.config
    while True:
        await asyncio.sleep(config.reap_interval_seconds)
        try:
            reaped = await state.sessions.reap_idle(config.session_idle_ttl_seconds)
        except Exception:
            log.exception("reaper failed", extra=fields(worker_id=config.worker_id))
            continue
        if reaped:
            log.debug("reaper pass", extra=fields(worker_id=config.worker_id, reaped=len(reaped)))


def create_app(config: WorkerConfig) -> web.Application:
    """The worker application. No globals and no signal handlers: embed it under any AppRunner.

    `begin_drain(app)` starts a graceful stop; shutdown (on_shutdown) kills all child processes.
    """
    limits = config.limits
    body_cap = max(limits.max_file_bytes * 4 // 3 + 65536, 1024 * 1024)
    app = web.Application(middlewares=[error_middleware], client_max_size=body_cap)
    groups = ProcessGroups()
    app[STATE] = WorkerState(
        config=config,
        sessions=SessionRegistry(config.workspace_root, config.max_sessions, groups, config.worker_id),
        groups=groups,
        body_cap=body_cap,
    )
    app.router.add_get("/health", health)
    handlers.add_routes(app)
    app.cleanup_ctx.append(_lifetime)
    app.on_shutdown.append(_on_shutdown)
    return app
