"""`CoordinatorTools`: the ToolService behind every transport: validates, routes to workers, audits."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from coordinator.arguments import ArgumentValidator
from coordinator.audit import AuditLog
from coordinator.calls import CallContext, InvalidToolArguments, UnknownToolError
from coordinator.config import Config
from coordinator.logs import get_logger
from coordinator.metrics import Metrics
from coordinator.results import (
    Result,
    ToolFailure,
    argument_error,
    failed,
    ok,
    opened_block,
    run_result,
    worker_message,
)
from coordinator.session_store import SessionRecord, StoreUnavailable
from coordinator.sessions import SessionError, SessionManager
from coordinator.tasks import TaskError, TaskManager
from coordinator.tool_schemas import TOOLS
from coordinator.worker_client import WorkerError

log = get_logger("coordinator.tools")

Handler = Callable[[Mapping[str, Any], CallContext], Awaitable[tuple[Result, "str | None"]]]

_CALL_SESSION: contextvars.ContextVar[tuple[str, bool] | None] = contextvars.ContextVar(
    "call_session", default=None
)
"""The session the current call resolved, and whether it was opened for it (for audit and error notes)."""

_QUIET = frozenset({"echo", "fs.read", "fs.list", "task.get_status", "task.get_result"})
"""Read-only tools whose successful calls log at debug (the audit log records every call anyway)."""

_PROGRESS_EVERY = 1.0  # seconds between notifications/progress while a long call waits on the worker


class CoordinatorTools:
    """The coordinator's ToolService (see coordinator/calls.py for the contract).

    Arguments are validated with precompiled JSON Schema validators; a tool's failure is an isError
    result, never an exception. Calls are counted in `inflight` so shutdown can wait for them.
    """

    def __init__(
        self,
        config: Config,
        sessions: SessionManager,
        tasks: TaskManager,
        audit: AuditLog,
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.tasks = tasks
        self.audit = audit
        self.metrics = metrics
        self.accepting = True
        self.inflight = 0
        self._deadlines: set[asyncio.Timeout] = set()
        self._aborted = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._sem = asyncio.Semaphore(config.limits.max_concurrent_calls)
        self._tools = TOOLS
        self._validators = {t["name"]: ArgumentValidator(t["inputSchema"]) for t in TOOLS}
        self._handlers: dict[str, Handler] = {
            "session.create": self._session_create,
            "session.close": self._session_close,
            "fs.read": self._fs_read,
            "fs.write": self._fs_write,
            "fs.list": self._fs_list,
            "run.python": self._run_python,
            "pkg.install": self._pkg_install,
            "task.get_status": self._task_status,
            "task.get_result": self._task_result,
            "artifact.get": self._artifact_get,
        }

    # -- ToolService ------------------------------------------------------------------------------
    def list_tools(self) -> list[dict[str, Any]]:
        """The precomputed tool list."""
        return self._tools

    async def call_tool(self, name: str, arguments: Mapping[str, Any], ctx: CallContext) -> Result:
        """Run one tool call; see ToolService.call_tool."""
        if not isinstance(arguments, Mapping):
            raise InvalidToolArguments("tools/call arguments must be a JSON object")
        start = time.perf_counter()
        if name == "echo":
            text = arguments.get("text")
            if type(text) is str and len(arguments) == 1:
                result: Result = {
                    "content": [{"type": "text", "text": text}],
                    "structuredContent": {"text": text},
                    "isError": False,
                }
            else:
                result = self._invalid("echo", arguments)
            self._finish("echo", arguments, ctx, result, None, start)
            return result
        handler = self._handlers.get(name)
        if handler is None:
            raise UnknownToolError(name)
        validator = self._validators[name]
        session_id: str | None = None
        outcome: str | None = None
        invalid = None if validator.is_valid(arguments) else validator.first_error(arguments)
        if invalid is not None:
            result = failed(argument_error(name, invalid))
        elif not self.accepting:
            outcome = "rejected"
            result = failed(f"{name} was not run: the coordinator is shutting down; retry on another replica")
        else:
            self.inflight += 1
            self._idle.clear()
            token = _CALL_SESSION.set(None)
            try:
                async with self._sem, asyncio.timeout(self.config.limits.tool_timeout) as deadline:
                    self._deadlines.add(deadline)
                    try:
                        result, session_id = await handler(arguments, ctx)
                    finally:
                        self._deadlines.discard(deadline)
            except (ToolFailure, SessionError, TaskError) as exc:
                result = failed(str(exc))
            except WorkerError as exc:
                outcome = "timeout" if exc.kind == "timeout" or exc.code == "timeout" else None
                result = failed(worker_message(name, exc))
            except StoreUnavailable as exc:
                result = failed(f"{name} failed: the session store is unavailable ({exc}); try again shortly")
            except TimeoutError:
                outcome = "timeout"
                if self._aborted:
                    result = failed(
                        f"{name} was stopped: the coordinator is shutting down and its shutdown grace "
                        f"(server.shutdown_grace = {self.config.server.shutdown_grace:g}s) ran out. The call may have "
                        "partly run; check the workspace (fs.list, fs.read) before retrying it"
                    )
                else:
                    result = failed(
                        f"{name} did not finish within {self.config.limits.tool_timeout:g}s (limits.tool_timeout)"
                    )
            except asyncio.CancelledError:  # the client went away or cancelled: audit it, then let it unwind
                self._finish(name, arguments, ctx, failed("cancelled"), None, start, outcome="cancelled")
                raise
            except Exception as exc:  # a bug must still end as a tool error, never as a dropped request
                log.exception(
                    "tool %s failed unexpectedly", name, extra={"tool_name": name, "trace_id": ctx.trace_id}
                )
                result = failed(f"{name} failed unexpectedly ({type(exc).__name__}); see the coordinator log")
            finally:
                self.inflight -= 1
                if self.inflight == 0:
                    self._idle.set()
                resolved = _CALL_SESSION.get()
                _CALL_SESSION.reset(token)
            if resolved is not None and session_id is None:
                session_id, created = resolved
                if created and result["isError"]:
                    result["content"].append(opened_block(session_id))
        self._finish(name, arguments, ctx, result, session_id, start, outcome)
        return result

    async def transport_session_closed(self, transport_session_id: str) -> None:
        """Release the implicit session of a transport session that ended."""
        try:
            await self.sessions.release_transport(transport_session_id)
        except StoreUnavailable as exc:
            log.warning("could not release the session of a closed transport: %s", exc)

    def abort_inflight(self) -> int:
        """Stop every running call now, so each answers a clear tool error instead of a cut connection.

        Used when the shutdown grace runs out; returns how many calls were stopped.
        """
        self._aborted = True
        now = asyncio.get_running_loop().time()
        for deadline in list(self._deadlines):
            deadline.reschedule(now)
        return len(self._deadlines)

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no call is running (True) or `timeout_s` passes (False)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    # -- bookkeeping ------------------------------------------------------------------------------
    def _invalid(self, name: str, arguments: Mapping[str, Any]) -> Result:
        error = self._validators[name].first_error(arguments)
        return failed(argument_error(name, error) if error else f"invalid arguments for {name}")

    def _finish(  # noqa: PLR0917 - private, called from two places
        self,
        name: str,
        arguments: Mapping[str, Any],
        ctx: CallContext,
        result: Result,
        session_id: str | None,
        start: float,
        outcome: str | None = None,
    ) -> None:
        seconds = time.perf_counter() - start
        is_error = result["isError"]
        outcome = outcome or ("error" if is_error else "success")
        self.metrics.observe_call(name, outcome, seconds)
        error_text = result["content"][0]["text"] if is_error else None
        if self.audit.enabled:
            self.audit.record(
                tool=name,
                arguments=arguments,
                outcome=outcome,
                duration_ms=seconds * 1000,
                session_id=session_id,
                caller=ctx.caller,
                trace_id=ctx.trace_id,
                transport=ctx.transport,
                protocol_version=ctx.protocol_version,
                error=error_text,
            )
        level = 10 if name in _QUIET and not is_error else 20
        if log.isEnabledFor(level):
            log.log(
                level,
                "tool call",
                extra={
                    "tool_name": name,
                    "session_id": session_id,
                    "workspace_id": session_id,
                    "duration_ms": round(seconds * 1000, 3),
                    "success": not is_error,
                    "trace_id": ctx.trace_id,
                    **({"error": error_text} if error_text else {}),
                },
            )

    async def _session(self, arguments: Mapping[str, Any], ctx: CallContext) -> tuple[SessionRecord, bool]:
        record, created = await self.sessions.resolve(
            arguments.get("session_id"),
            caller=ctx.caller,
            transport_key=ctx.transport_session_id,
            trace_id=ctx.trace_id,
        )
        _CALL_SESSION.set((record.session_id, created))
        return record, created

    @staticmethod
    def _opened_note(result: Result, record: SessionRecord, created: bool) -> Result:
        if created:
            result["content"].append(opened_block(record.session_id))
        return result

    async def _with_progress(
        self, call: Awaitable[dict[str, Any]], ctx: CallContext, label: str
    ) -> dict[str, Any]:
        if ctx.progress is None:
            return await call
        task = asyncio.ensure_future(call)
        ticks = 0
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=_PROGRESS_EVERY)
                if done:
                    return task.result()
                ticks += 1
                try:
                    await ctx.progress(float(ticks), None, f"{label}: running for {ticks}s")
                except Exception as exc:  # a gone client must not fail the call
                    log.debug("progress notification failed: %s", exc)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # -- tools ------------------------------------------------------------------------------------
    async def _session_create(
        self, arguments: Mapping[str, Any], ctx: CallContext
    ) -> tuple[Result, str | None]:
        record = await self.sessions.open(ctx.caller, None, ctx.trace_id)
        sid = record.session_id
        max_age = self.config.session.max_age
        return ok(
            f"Opened session '{sid}'. Pass session_id=\"{sid}\" to the fs.*, run.python, pkg.install and "
            f"artifact.get tools. It expires after {max_age:g}s without use.",
            {"session_id": sid, "expires_after_idle_seconds": max_age},
        ), sid

    async def _session_close(
        self, arguments: Mapping[str, Any], ctx: CallContext
    ) -> tuple[Result, str | None]:
        sid = str(arguments["session_id"])
        try:
            await self.sessions.close(sid, ctx.caller, ctx.trace_id)
        except SessionError:
            # Closing is idempotent: a retried close (or one after expiry) is not a failure.
            return ok(
                f"Session '{sid}' is already closed or has expired; there is nothing to close.",
                {"session_id": sid, "closed": False},
            ), None
        return ok(
            f"Closed session '{sid}' and deleted its workspace.", {"session_id": sid, "closed": True}
        ), sid

    async def _fs_read(self, arguments: Mapping[str, Any], ctx: CallContext) -> tuple[Result, str | None]:
        record, created = await self._session(arguments, ctx)
        body = {k: arguments[k] for k in ("path", "offset", "limit") if k in arguments}
        answer = await self.sessions.call(record, "fs/read", body, idempotent=True, trace_id=ctx.trace_id)
        answer["session_id"] = record.session_id
        text = str(answer.get("content", ""))
        if answer.get("encoding") == "base64":
            text = f"(binary file, {answer.get('size')} bytes, base64)\n{text}"
        if answer.get("eof") is False:
            # A model that reads only the text must learn that the file goes on, and how to page.
            start = int(answer.get("offset") or 0)
            end = start + int(answer.get("length") or 0)
            text += (
                f"\n(bytes {start}-{end} of {answer.get('size')}; the file continues: "
                f"call fs.read again with offset={end} for the rest)"
            )
        return self._opened_note(ok(text, answer), record, created), record.session_id

    async def _fs_write(self, arguments: Mapping[str, Any], ctx: CallContext) -> tuple[Result, str | None]:
        has_content, has_contents = "content" in arguments, "contents" in arguments
        if has_content == has_contents:
            raise ToolFailure(
                "invalid arguments for fs.write: give the text in exactly one of 'content' or 'contents'"
            )
        record, created = await self._session(arguments, ctx)
        body: dict[str, Any] = {
            "path": arguments["path"],
            "content": arguments["content"] if has_content else arguments["contents"],
        }
        for key in ("encoding", "append"):
            if key in arguments:
                body[key] = arguments[key]
        # An overwrite is idempotent (atomic replace); an append is not.
        answer = await self.sessions.call(
            record, "fs/write", body, idempotent=not body.get("append", False), trace_id=ctx.trace_id
        )
        answer["session_id"] = record.session_id
        text = (
            f"Wrote {answer.get('bytes_written')} bytes to {answer.get('path')} (size {answer.get('size')})."
        )
        return self._opened_note(ok(text, answer), record, created), record.session_id

    async def _fs_list(self, arguments: Mapping[str, Any], ctx: CallContext) -> tuple[Result, str | None]:
        record, created = await self._session(arguments, ctx)
        body = {k: arguments[k] for k in ("path", "recursive", "glob") if k in arguments}
        answer = await self.sessions.call(record, "fs/list", body, idempotent=True, trace_id=ctx.trace_id)
        answer["session_id"] = record.session_id
        entries = answer.get("entries") or []
        lines = [
            f"{e.get('path')}{'/' if e.get('type') == 'dir' else ''}"
            + (f"  ({e.get('size')} bytes)" if e.get("type") == "file" else "")
            + ("  (symlink, not followed)" if e.get("type") == "symlink" else "")
            for e in entries
            if isinstance(e, dict)
        ]
        text = "\n".join(lines) if lines else "(empty)"
        if answer.get("truncated"):
            text += "\n(listing truncated)"
        return self._opened_note(ok(text, answer), record, created), record.session_id

    async def _run_python(self, arguments: Mapping[str, Any], ctx: CallContext) -> tuple[Result, str | None]:
        if ("code" in arguments) == ("file" in arguments):
            raise ToolFailure(
                "invalid arguments for run.python: give exactly one of 'code' (Python source) or "
                "'file' (a workspace path)"
            )
        record, created = await self._session(arguments, ctx)
        body = {k: arguments[k] for k in ("code", "file", "args", "stdin", "timeout") if k in arguments}
        # A run may ask for longer than worker.timeout; give the worker time to enforce it and answer.
        wait = None
        if "timeout" in arguments:
            asked = float(arguments["timeout"]) + self.config.worker.connect_timeout + 5.0
            wait = max(self.config.worker.timeout, asked)

        async def run(progress_ctx: CallContext) -> Result:
            try:
                answer = await self._with_progress(
                    self.sessions.call(
                        record, "run/python", body, idempotent=False, trace_id=ctx.trace_id, call_timeout=wait
                    ),
                    progress_ctx,
                    "run.python",
                )
            except WorkerError as exc:
                if exc.code == "timeout":
                    return self._run_timeout(record, exc)
                raise
            answer["session_id"] = record.session_id
            return run_result(answer)

        if arguments.get("async"):
            return self._submit("run.python", record, created, ctx, run), record.session_id
        return self._opened_note(await run(ctx), record, created), record.session_id

    @staticmethod
    def _run_timeout(record: SessionRecord, exc: WorkerError) -> Result:
        details = dict(exc.details)
        text = (
            f"run.python failed: {exc.message}. Make the code finish sooner, or pass a larger timeout "
            "(the worker caps it)."
        )
        for stream in ("stdout", "stderr"):
            if details.get(stream):
                text += f"\n--- {stream} (partial) ---\n{details[stream]}"
        structured = {
            "session_id": record.session_id,
            "exit_code": -1,
            "timed_out": True,
            "stdout": str(details.get("stdout", "")),
            "stderr": str(details.get("stderr", "")),
        }
        return failed(text, structured)

    async def _pkg_install(self, arguments: Mapping[str, Any], ctx: CallContext) -> tuple[Result, str | None]:
        record, created = await self._session(arguments, ctx)
        body: dict[str, Any] = {"packages": list(arguments["packages"])}
        # The worker's own install limit (300 s by default) may exceed worker.timeout (120 s by default):
        # ask it to stop pip in time to answer, so a slow install is a clean timeout result rather than
        # a worker timeout that leaves pip running and the session busy.
        budget = self.config.worker.timeout - self.config.worker.connect_timeout - 5.0
        if budget >= 1.0:
            body["timeout"] = budget

        async def run(progress_ctx: CallContext) -> Result:
            answer = await self._with_progress(
                self.sessions.call(record, "pkg/install", body, idempotent=False, trace_id=ctx.trace_id),
                progress_ctx,
                "pkg.install",
            )
            answer["session_id"] = record.session_id
            installed = answer.get("installed") or {}
            if answer.get("exit_code", 0) != 0:
                return failed(
                    f"pkg.install failed (pip exit code {answer.get('exit_code')}):\n"
                    f"{answer.get('output', '')}",
                    answer,
                )
            names = ", ".join(f"{k}=={v}" for k, v in installed.items()) or ", ".join(body["packages"])
            return ok(f"Installed {names}.\n{answer.get('output', '')}".rstrip(), answer)

        if arguments.get("async"):
            return self._submit("pkg.install", record, created, ctx, run), record.session_id
        return self._opened_note(await run(ctx), record, created), record.session_id

    def _submit(
        self,
        tool: str,
        record: SessionRecord,
        created: bool,
        ctx: CallContext,
        run: Callable[[CallContext], Awaitable[Result]],
    ) -> Result:
        quiet = CallContext(
            ctx.transport, ctx.protocol_version, ctx.transport_session_id, ctx.trace_id, ctx.caller
        )

        async def job() -> Result:
            try:
                return await run(quiet)
            except (SessionError, ToolFailure) as exc:
                return failed(str(exc))
            except WorkerError as exc:
                return failed(worker_message(tool, exc))

        entry = self.tasks.submit(tool, job, owner=ctx.caller, session_id=record.session_id)
        structured = {"session_id": record.session_id, "task_id": entry.task_id, "status": "running"}
        text = (
            f"Started {tool} as task '{entry.task_id}'. Poll task.get_status with "
            f'task_id="{entry.task_id}", then fetch the outcome with task.get_result.'
        )
        return self._opened_note(ok(text, structured), record, created)

    async def _task_status(self, arguments: Mapping[str, Any], ctx: CallContext) -> tuple[Result, str | None]:
        entry = self.tasks.get(str(arguments["task_id"]), ctx.caller)
        info = entry.describe()
        return ok(f"Task '{entry.task_id}' ({entry.tool}) is {entry.status}.", info), entry.session_id

    async def _task_result(self, arguments: Mapping[str, Any], ctx: CallContext) -> tuple[Result, str | None]:
        entry = self.tasks.get(str(arguments["task_id"]), ctx.caller)
        if entry.result is None:
            return ok(
                f"Task '{entry.task_id}' is still running; call task.get_result again later.",
                {"task_id": entry.task_id, "status": "running"},
            ), entry.session_id
        inner = entry.result
        structured: dict[str, Any] = {"task_id": entry.task_id, "status": entry.status}
        if "structuredContent" in inner:
            structured["result"] = inner["structuredContent"]
        out: Result = {
            "content": list(inner["content"]),
            "structuredContent": structured,
            "isError": bool(inner.get("isError")),
        }
        return out, entry.session_id

    async def _artifact_get(
        self, arguments: Mapping[str, Any], ctx: CallContext
    ) -> tuple[Result, str | None]:
        record, created = await self._session(arguments, ctx)
        answer = await self.sessions.call(
            record, "artifact/get", {"path": arguments["path"]}, idempotent=True, trace_id=ctx.trace_id
        )
        answer["session_id"] = record.session_id
        mime = str(answer.get("mime_type") or "application/octet-stream")
        result = ok(
            f"Artifact {answer.get('path')} ({mime}, {answer.get('size')} bytes), base64 in "
            "structuredContent.content.",
            answer,
        )
        if mime.startswith("image/"):
            result["content"].append({"type": "image", "data": answer.get("content", ""), "mimeType": mime})
        return self._opened_note(result, record, created), record.session_id
