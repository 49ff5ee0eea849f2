"""The session registry: one workspace per session, per-session FIFO turns, capacity and idle reaping."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

from worker.errors import WorkerError, invalid
from worker.logs import fields, get_logger
from worker.processes import ProcessGroups
from worker.workspace import Workspace

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
PRIVATE_DIR = ".private"
log = get_logger()


def check_session_id(sid: str) -> str:
    """`sid` when it matches SESSION_ID, else an invalid_argument error."""
    if not SESSION_ID.match(sid):
        raise invalid(f"session id {sid!r} is not allowed; use 1-128 characters from A-Z a-z 0-9 _ -")
    return sid


class Session:
    """One session: its workspace, its private directory (venv, code file) and its FIFO turn lock.

    Calls take turns in arrival order (asyncio.Lock wakes waiters first-in, first-out). Mutable on
    purpose: last-use time, queue depth and the closed flag change over its life.
    """

    __slots__ = ("closed", "id", "last_used", "lock", "private", "waiting", "workspace")

    def __init__(self, sid: str, workspace: Workspace, private: Path) -> None:
        self.id = sid
        self.workspace = workspace
        self.private = private
        self.lock = asyncio.Lock()
        self.last_used = time.monotonic()
        self.waiting = 0
        self.closed = False

    @property
    def venv(self) -> Path:
        """Where the session venv lives (outside the user-visible workspace)."""
        return self.private / "venv"

    @property
    def busy(self) -> bool:
        """True while a call holds the turn."""
        return self.lock.locked()

    def idle_seconds(self) -> float:
        """Seconds since the last call finished."""
        return time.monotonic() - self.last_used

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for this session's turn (FIFO); refuses when the session was closed meanwhile."""
        if self.closed:
            raise _not_found(self.id)
        self.waiting += 1
        try:
            await self.lock.acquire()
        finally:
            self.waiting -= 1
        try:
            if self.closed:
                raise _not_found(self.id)
            yield
        finally:
            self.last_used = time.monotonic()
            self.lock.release()


def _not_found(sid: str) -> WorkerError:
    return WorkerError("session_not_found", f"session {sid!r} does not exist on this worker; create it with PUT first")


class SessionRegistry:
    """All sessions of this worker, bounded by `max_sessions`, under `root` (one directory each)."""

    def __init__(self, root: Path, max_sessions: int, groups: ProcessGroups, worker_id: str = "") -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve(strict=True)
        self.private_root = self.root / PRIVATE_DIR
        self.max_sessions = max_sessions
        self.groups = groups
        self.worker_id = worker_id or None
        self._sessions: dict[str, Session] = {}
        self._deleting: dict[str, asyncio.Event] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def sessions(self) -> list[Session]:
        """A snapshot of the live sessions."""
        return list(self._sessions.values())

    def get(self, sid: str) -> Session:
        """The live session `sid`, else session_not_found."""
        session = self._sessions.get(check_session_id(sid))
        if session is None:
            raise _not_found(sid)
        return session

    async def create(self, sid: str) -> tuple[Session, bool]:
        """Create (or adopt an existing directory as) session `sid`; idempotent. True when newly made.

        A create that arrives while the same id is being deleted waits for the deletion first.
        """
        check_session_id(sid)
        while sid in self._deleting:
            await self._deleting[sid].wait()
        existing = self._sessions.get(sid)
        if existing is not None:
            return existing, False
        if len(self._sessions) >= self.max_sessions:
            raise WorkerError(
                "capacity_exhausted",
                f"this worker holds {len(self._sessions)} sessions, its max_sessions; "
                "close a session or use another worker",
            )
        path = self.root / sid
        created = True
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                raise WorkerError(
                    "internal", f"workspace path for session {sid!r} exists and is not a directory"
                ) from None
            created = False
        private = self.private_root / sid
        private.mkdir(parents=True, exist_ok=True)
        session = Session(sid, Workspace(path), private)
        self._sessions[sid] = session
        log.info(
            "session created" if created else "session adopted",
            extra=fields(worker_id=self.worker_id, session_id=sid),
        )
        return session, created

    async def delete(self, sid: str, reason: str = "deleted") -> bool:
        """Close `sid`: kill its processes, wait for the call in progress, remove its directories.

        Idempotent; True when there was a session or a workspace directory to remove.
        """
        check_session_id(sid)
        while sid in self._deleting:
            await self._deleting[sid].wait()
        session = self._sessions.pop(sid, None)
        path = self.root / sid
        done = self._deleting[sid] = asyncio.Event()
        try:
            existed = session is not None or await asyncio.to_thread(os.path.lexists, path)
            if session is not None:
                session.closed = True
                self.groups.kill_session(sid)
                async with session.lock:
                    await asyncio.to_thread(_remove, path, self.private_root / sid)
            elif existed:
                await asyncio.to_thread(_remove, path, self.private_root / sid)
        finally:
            self.groups.release_session(sid)
            del self._deleting[sid]
            done.set()
        if existed:
            log.info(f"session {reason}", extra=fields(worker_id=self.worker_id, session_id=sid))
        return existed

    async def reap_idle(self, ttl_seconds: float) -> list[str]:
        """Delete every session idle for longer than `ttl_seconds` with no call in progress or queued."""
        reaped = []
        for session in self.sessions():
            if not session.busy and session.waiting == 0 and session.idle_seconds() > ttl_seconds:
                await self.delete(session.id, reason="reaped")
                reaped.append(session.id)
        return reaped

    def cleanup_orphans(self) -> list[str]:
        """Remove every workspace (and private directory) found under the root; call before serving."""
        removed = []
        for entry in os.scandir(self.root):
            if entry.name == PRIVATE_DIR or not SESSION_ID.match(entry.name) or entry.name in self._sessions:
                continue
            _remove(Path(entry.path), self.private_root / entry.name)
            removed.append(entry.name)
        if self.private_root.is_dir():
            for entry in os.scandir(self.private_root):
                if entry.name not in self._sessions:
                    _remove(Path(entry.path))
        return sorted(removed)


def _remove(*paths: Path) -> None:
    for path in paths:
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path, ignore_errors=True)
