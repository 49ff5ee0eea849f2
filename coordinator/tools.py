"""`CoordinatorTools`: the ToolService behind every transport: validates, runs the tool's handler, audits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
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
    clip_long_text,
    failed,
    opened_block,
    worker_message,
)
from coordinator.session_store import StoreUnavailable
from coordinator.sessions import SessionError, SessionManager
from coordinator.tasks import TaskError, TaskManager
from coordinator.tool_handlers import CALL_SESSION, ToolHandlers
from coordinator.tool_schemas import TOOLS
from coordinator.worker_client import WorkerError

log = get_logger("coordinator.tools")

_QUIET = frozenset({"echo", "fs.read", "fs.list", "task.get_status", "task.get_result"})
"""Read-only tools whose successful calls log at debug (the audit log records every call anyway)."""


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
        self._handlers = ToolHandlers(config, sessions, tasks).table()

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
            token = CALL_SESSION.set(None)
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
                resolved = CALL_SESSION.get()
                CALL_SESSION.reset(token)
            if resolved is not None and session_id is None:
                session_id, created = resolved
                if created and result["isError"]:
                    result["content"].append(opened_block(session_id))
        clip_long_text(result, self.config.limits.max_result_text_chars)
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
