"""Coordinator sessions: opening, resolving and expiring them, and calling their pinned worker."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Mapping
from typing import Any

from coordinator.config import Config, SessionConfig
from coordinator.logs import get_logger
from coordinator.memory_store import MemorySessionStore
from coordinator.metrics import Metrics
from coordinator.session_store import SessionRecord, SessionStore, StoreUnavailable
from coordinator.worker_client import WorkerClient, WorkerError
from coordinator.worker_pool import WorkerPool

log = get_logger("coordinator.sessions")


class SessionError(Exception):
    """A session problem the model can act on; the message becomes an isError tool result."""


def make_store(config: SessionConfig) -> SessionStore:
    """The session store named by `session.store`; the Redis one is imported only when chosen."""
    if config.store == "redis":
        from coordinator.redis_store import RedisSessionStore  # noqa: PLC0415 - optional extra

        # Records outlive max_age by a grace long enough that the expiry loop always claims them first:
        # only a claim deletes the workspace, so a record Redis dropped on its own would orphan one.
        grace = max(60.0, config.max_age / 2, 3 * config.cleanup_interval)
        store: SessionStore = RedisSessionStore(config.redis, max_age=config.max_age, ttl_grace=grace)
        return store
    return MemorySessionStore(config.max_age)


def not_found(session_id: str) -> SessionError:
    """The one message for an unknown, expired or foreign session (foreign ones are not revealed)."""
    return SessionError(f"session '{session_id}' not found or expired; call session.create to open a new one")


class SessionManager:
    """Opens sessions on the least-loaded healthy worker, resolves a call's session, and expires idle ones.

    A session belongs to its `owner` (the auth caller); another caller sees it as not found. Implicit
    sessions are keyed by the transport session (`transport_key`) so one client never lands in another
    client's workspace.
    """

    def __init__(
        self,
        config: Config,
        store: SessionStore,
        pool: WorkerPool,
        client: WorkerClient,
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.store = store
        self.pool = pool
        self.client = client
        self.metrics = metrics
        self._implicit: dict[str, asyncio.Future[SessionRecord]] = {}
        self._cleanup_task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the expiry loop (every session.cleanup_interval)."""
        self._cleanup_task = asyncio.create_task(self._cleanup_loop(), name="session-cleanup")

    async def aclose(self) -> None:
        """Stop the expiry loop."""
        if self._cleanup_task is not None:
            self._cleanup_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cleanup_task
            self._cleanup_task = None

    async def _cleanup_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.session.cleanup_interval)
            try:
                await self.expire_once()
            except StoreUnavailable as exc:
                log.warning("session cleanup skipped: the store is unavailable: %s", exc)
            except Exception:  # pragma: no cover - the loop must survive a bug in one pass
                log.exception("session cleanup failed")

    async def expire_once(self, now: float | None = None) -> int:
        """Claim every idle session and delete its workspace; returns how many expired."""
        total = 0
        while True:
            claimed = await self.store.claim_expired(time.time() if now is None else now)
            for record in claimed:
                log.info(
                    "session expired",
                    extra={"session_id": record.session_id, "worker_url": record.worker_url},
                )
                await self._delete_workspace(record, "")
            total += len(claimed)
            if len(claimed) < 100:
                return total

    # -- opening and resolving -------------------------------------------------------------------
    async def open(
        self, owner: str | None, transport_key: str | None = None, trace_id: str = ""
    ) -> SessionRecord:
        """Create a session on the least-loaded healthy worker and store it."""
        if await self.store.count() >= self.config.session.max_sessions:
            raise SessionError(
                f"the coordinator already holds its maximum of {self.config.session.max_sessions} sessions "
                "(session.max_sessions); close one with session.close, or wait for idle ones to expire"
            )
        session_id = secrets.token_urlsafe(18)
        tried: set[str] = set()
        last_error = "no worker is registered"
        while True:
            endpoint = self.pool.pick(frozenset(tried))
            if endpoint is None and not tried:
                await self.pool.check_all()  # health may be stale: a worker may have just come up
                endpoint = self.pool.pick()
            if endpoint is None:
                full = None if tried else self.pool.capacity_note()
                if full is not None:
                    raise SessionError(
                        f"no worker has room for a new session ({full}); close sessions you no longer need "
                        "with session.close, or try again later"
                    )
                raise SessionError(
                    f"no healthy worker is available to open a session ({last_error}); try again shortly"
                )
            tried.add(endpoint.url)
            try:
                await self.client.call(
                    endpoint.url, "PUT", f"/v1/sessions/{session_id}", {}, idempotent=True, trace_id=trace_id
                )
            except WorkerError as exc:
                last_error = exc.message
                if exc.kind == "connect":
                    self.pool.mark_unhealthy(endpoint.url, exc.message)
                if exc.kind in ("connect", "disconnected") or exc.code == "capacity_exhausted":
                    continue
                raise SessionError(f"the worker could not open a session: {exc.message}") from exc
            break
        now = time.time()
        record = SessionRecord(session_id, endpoint.url, now, now, owner=owner, transport_key=transport_key)
        try:
            winner = await self.store.create(record)
        except StoreUnavailable:
            # The workspace exists but no replica knows it: remove it now rather than leave it to the
            # worker's idle reaper. Best effort; the caller still gets the store's retryable error.
            with contextlib.suppress(WorkerError):
                await self.client.call(
                    endpoint.url, "DELETE", f"/v1/sessions/{session_id}", None, idempotent=True, trace_id=trace_id
                )
            raise
        if winner is not None:
            # Another replica opened this transport session's implicit session at the same moment (a
            # handshake client's concurrent first calls): use that one, so the client keeps one workspace.
            with contextlib.suppress(WorkerError):
                await self.client.call(
                    endpoint.url, "DELETE", f"/v1/sessions/{session_id}", None, idempotent=True, trace_id=trace_id
                )
            return winner
        self.pool.pinned(endpoint.url)
        self.metrics.sessions_created.inc()
        log.info(
            "session opened",
            extra={"session_id": session_id, "worker_url": endpoint.url, "trace_id": trace_id or None},
        )
        return record

    async def resolve(
        self,
        session_id: str | None,
        *,
        caller: str | None,
        transport_key: str | None,
        trace_id: str = "",
    ) -> tuple[SessionRecord, bool]:
        """The session a call runs in, and whether it was created for this call.

        With `session_id`: that session (touched), or SessionError. Without: the implicit session of
        `transport_key` (created on first use), or, with no transport session (2026-07-28), a new one.
        """
        now = time.time()
        if session_id is not None:
            record = await self.store.touch(session_id, now)
            if record is None or record.owner != caller:
                raise not_found(session_id)
            return record, False
        if transport_key is None:
            return await self.open(caller, None, trace_id), True
        existing = await self.store.find_by_transport(transport_key)
        if existing is not None:
            touched = await self.store.touch(existing.session_id, now)
            if touched is not None:
                return touched, False
            stale = await self.store.delete(existing.session_id)  # idle too long: replace it
            if stale is not None:
                await self._delete_workspace(stale, trace_id)
        pending = self._implicit.get(transport_key)
        if pending is not None:
            return await asyncio.shield(pending), False
        future: asyncio.Future[SessionRecord] = asyncio.get_running_loop().create_future()
        self._implicit[transport_key] = future
        try:
            record = await self.open(caller, transport_key, trace_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        else:
            future.set_result(record)
        finally:
            self._implicit.pop(transport_key, None)
        return record, True

    async def close(self, session_id: str, caller: str | None, trace_id: str = "") -> SessionRecord:
        """Close a session and delete its workspace."""
        record = await self.store.get(session_id)
        if record is None or record.owner != caller:
            raise not_found(session_id)
        removed = await self.store.delete(session_id)
        if removed is None:
            raise not_found(session_id)
        await self._delete_workspace(removed, trace_id)
        log.info("session closed", extra={"session_id": session_id, "trace_id": trace_id or None})
        return removed

    async def release_transport(self, transport_key: str) -> None:
        """A transport session ended: close its implicit session and workspace."""
        record = await self.store.find_by_transport(transport_key)
        if record is not None and await self.store.delete(record.session_id) is not None:
            await self._delete_workspace(record, "")

    async def _delete_workspace(self, record: SessionRecord, trace_id: str) -> None:
        self.pool.released(record.worker_url)
        try:
            await self.client.call(
                record.worker_url,
                "DELETE",
                f"/v1/sessions/{record.session_id}",
                idempotent=True,
                trace_id=trace_id,
            )
        except WorkerError as exc:
            log.warning(
                "could not delete the workspace of session %s: %s",
                record.session_id,
                exc.message,
                extra={"session_id": record.session_id, "worker_url": record.worker_url},
            )

    # -- calling the worker ----------------------------------------------------------------------
    async def call(
        self,
        record: SessionRecord,
        op: str,
        body: Mapping[str, Any],
        *,
        idempotent: bool,
        trace_id: str,
        call_timeout: float | None = None,
    ) -> dict[str, Any]:
        """POST `/v1/sessions/{sid}/{op}` on the session's worker.

        A lost workspace (`session_not_found`) or an unreachable worker is handled here: with
        `worker.shared_workspaces` the session moves to a healthy worker and the call runs there (a
        refused connection means the call never started); otherwise the session is dropped and the
        SessionError tells the model to open a new one.
        """
        path = f"/v1/sessions/{record.session_id}/{op}"

        async def send(worker_url: str) -> dict[str, Any]:
            return await self.client.call(
                worker_url, "POST", path, body, idempotent=idempotent, trace_id=trace_id, call_timeout=call_timeout
            )

        try:
            return await send(record.worker_url)
        except WorkerError as exc:
            lost = exc.code == "session_not_found"
            shared = self.config.worker.shared_workspaces
            if exc.kind == "connect":
                self.pool.mark_unhealthy(record.worker_url, exc.message)
                if not shared:
                    raise SessionError(
                        f"the worker of session '{record.session_id}' is unreachable ({exc.message}); retry "
                        "shortly, and if it keeps failing the worker was lost with the workspace: call "
                        "session.create to open a new session"
                    ) from exc
            if not lost and not (exc.kind == "connect" and shared):
                raise
            if lost:
                self.metrics.worker_error("session_lost")
        if not self.config.worker.shared_workspaces:
            await self.store.delete(record.session_id)
            self.pool.released(record.worker_url)
            raise SessionError(
                f"the workspace of session '{record.session_id}' was lost because its worker restarted or "
                "was replaced; call session.create to open a new session and write the files again"
            )
        moved = await self._repin(record, trace_id)
        return await send(moved.worker_url)

    async def _repin(self, record: SessionRecord, trace_id: str) -> SessionRecord:
        endpoint = self.pool.pick(frozenset({record.worker_url})) or self.pool.pick()
        if endpoint is None:
            raise SessionError(
                f"the worker of session '{record.session_id}' is unreachable and no healthy worker can adopt "
                "it; try again shortly"
            )
        # PUT is idempotent and adopts the existing directory on the shared volume.
        await self.client.call(
            endpoint.url, "PUT", f"/v1/sessions/{record.session_id}", {}, idempotent=True, trace_id=trace_id
        )
        moved = await self.store.repin(record.session_id, endpoint.url)
        if moved is None:
            raise not_found(record.session_id)
        self.pool.released(record.worker_url)
        self.pool.pinned(endpoint.url)
        log.info(
            "session re-pinned",
            extra={
                "session_id": record.session_id,
                "worker_url": endpoint.url,
                "previous_worker_url": record.worker_url,
            },
        )
        return moved
