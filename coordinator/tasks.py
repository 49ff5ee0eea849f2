"""Async tool tasks: `run.python` / `pkg.install` with `async: true`, polled by task.get_status/get_result."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from coordinator.logs import get_logger

log = get_logger("coordinator.tasks")


class TaskError(Exception):
    """A task request the model can fix (unknown id, table full); becomes an isError result."""


@dataclass(slots=True)
class TaskEntry:
    """One async task. Mutable until it finishes; `result` is the tool's CallToolResult dict.

    Times are Unix seconds.
    """

    task_id: str
    tool: str
    owner: str | None
    session_id: str | None
    created_at: float
    future: asyncio.Task[dict[str, Any]] | None = None
    finished_at: float | None = None
    result: dict[str, Any] | None = field(default=None)

    @property
    def status(self) -> str:
        """`running`, `completed` (the tool succeeded) or `failed` (it answered isError)."""
        if self.result is None:
            return "running"
        return "failed" if self.result.get("isError") else "completed"

    def describe(self) -> dict[str, Any]:
        """The task.get_status answer."""
        out: dict[str, Any] = {
            "task_id": self.task_id,
            "tool": self.tool,
            "status": self.status,
            "created_at": self.created_at,
        }
        if self.session_id is not None:
            out["session_id"] = self.session_id
        if self.finished_at is not None:
            out["finished_at"] = self.finished_at
            out["duration_ms"] = round((self.finished_at - self.created_at) * 1000, 3)
        return out


class TaskManager:
    """Runs async tool calls in the background and keeps their results for `ttl` seconds.

    At most `max_tasks` are kept; when full, the oldest finished tasks are dropped first, and a new
    task is refused only when every slot holds a running task. A task belongs to its owner.
    """

    def __init__(self, max_tasks: int, ttl: float) -> None:
        self.max_tasks = max_tasks
        self.ttl = ttl
        self._tasks: dict[str, TaskEntry] = {}

    def running(self) -> int:
        """How many tasks are still running."""
        return sum(1 for t in self._tasks.values() if t.result is None)

    def _prune(self, now: float) -> None:
        for task_id, entry in list(self._tasks.items()):
            if entry.finished_at is not None and now - entry.finished_at > self.ttl:
                del self._tasks[task_id]
        if len(self._tasks) < self.max_tasks:
            return
        finished = sorted(
            (e for e in self._tasks.values() if e.finished_at is not None), key=lambda e: e.finished_at or 0.0
        )
        for entry in finished[: len(self._tasks) - self.max_tasks + 1]:
            del self._tasks[entry.task_id]

    def submit(
        self,
        tool: str,
        run: Callable[[], Awaitable[dict[str, Any]]],
        *,
        owner: str | None,
        session_id: str | None,
    ) -> TaskEntry:
        """Start `run()` in the background and return its entry."""
        now = time.time()
        self._prune(now)
        if len(self._tasks) >= self.max_tasks:
            raise TaskError(
                f"{self.max_tasks} async tasks are already running (limits.max_tasks); wait for one to "
                "finish with task.get_status, or call the tool without async"
            )
        entry = TaskEntry(f"task_{secrets.token_urlsafe(12)}", tool, owner, session_id, now)

        async def runner() -> dict[str, Any]:
            try:
                result = await run()
            except asyncio.CancelledError:
                result = _error("the task was cancelled because the coordinator shut down")
                entry.result, entry.finished_at = result, time.time()
                raise
            except Exception as exc:  # a bug in a tool must still end the task with an answer
                log.exception("async task %s failed", entry.task_id)
                result = _error(f"the task failed unexpectedly: {type(exc).__name__}: {exc}")
            entry.result, entry.finished_at = result, time.time()
            return result

        entry.future = asyncio.create_task(runner(), name=entry.task_id)
        self._tasks[entry.task_id] = entry
        return entry

    def get(self, task_id: str, owner: str | None) -> TaskEntry:
        """The task, or TaskError naming the unknown id."""
        entry = self._tasks.get(task_id)
        if entry is None or entry.owner != owner:
            raise TaskError(
                f"task '{task_id}' not found: it never existed, belongs to another client, or its result "
                f"expired (results are kept for {self.ttl:g}s); start the call again"
            )
        return entry

    async def wait_all(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for running tasks (shutdown), then cancel the rest."""
        pending = [e.future for e in self._tasks.values() if e.future is not None and not e.future.done()]
        if not pending:
            return
        _, still = await asyncio.wait(pending, timeout=timeout_s)
        for task in still:
            task.cancel()
        for task in still:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _error(message: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": message}], "isError": True}
