"""`ToolHandlers`: what each tool does once its arguments are valid: the worker call and the answer it makes."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from coordinator.calls import CallContext
from coordinator.config import Config
from coordinator.logs import get_logger
from coordinator.results import Result, ToolFailure, failed, ok, opened_block, run_result, worker_message
from coordinator.session_store import SessionRecord
from coordinator.sessions import SessionError, SessionManager
from coordinator.tasks import TaskManager
from coordinator.worker_client import WorkerError

log = get_logger("coordinator.tools")

Handler = Callable[[Mapping[str, Any], CallContext], Awaitable[tuple[Result, "str | None"]]]
"""One tool: its validated arguments and the call's context in; its result and the session it used out."""

CALL_SESSION: contextvars.ContextVar[tuple[str, bool] | None] = contextvars.ContextVar(
    "call_session", default=None
)
"""The session the current call resolved, and whether it was opened for it (for audit and error notes)."""

_PROGRESS_EVERY = 1.0  # seconds between notifications/progress while a long call waits on the worker


class ToolHandlers:
    """The handler of every tool but `echo`, keyed by tool name in `table()`.

    Handlers receive arguments that already passed the tool's JSON Schema; they raise `ToolFailure`,
    `SessionError`, `TaskError` or `WorkerError` for `CoordinatorTools.call_tool` to turn into an
    isError result. A call that resolves a session records it in `CALL_SESSION`.
    """

    def __init__(self, config: Config, sessions: SessionManager, tasks: TaskManager) -> None:
        self.config = config
        self.sessions = sessions
        self.tasks = tasks

    def table(self) -> dict[str, Handler]:
        """Tool name -> handler."""
        return {
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

    async def _session(self, arguments: Mapping[str, Any], ctx: CallContext) -> tuple[SessionRecord, bool]:
        record, created = await self.sessions.resolve(
            arguments.get("session_id"),
            caller=ctx.caller,
            transport_key=ctx.transport_session_id,
            trace_id=ctx.trace_id,
        )
        CALL_SESSION.set((record.session_id, created))
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

    # -- the tools ------------------------------------------------------------------------------------
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
