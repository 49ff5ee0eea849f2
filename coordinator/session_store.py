"""The `SessionStore` contract: where coordinator sessions live, shared by the memory and Redis stores."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

TransportEvent = Callable[[str | None], None]
"""Told about transport sessions deleted anywhere: the id, or None for "some may have been missed"."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One coordinator session.

    `worker_url` is the worker the session is pinned to; its workspace lives there. `last_used` and
    `created_at` are Unix seconds. `owner` is the auth caller that created it (None with auth off);
    `transport_key` is set for implicit sessions opened for a handshake-era/SSE/stdio transport session.
    """

    session_id: str
    worker_url: str
    created_at: float
    last_used: float
    owner: str | None = None
    transport_key: str | None = None


class StoreUnavailable(RuntimeError):
    """The store cannot be reached (Redis down or timing out). Callers answer a retryable error."""


class SessionStore(Protocol):
    """Shared session state. Every method is atomic with respect to other replicas.

    Expiry is two-phase so that workspace cleanup runs exactly once across replicas:
    `claim_expired` atomically removes idle records and returns only those this caller won.
    Methods raise `StoreUnavailable` when the backend is unreachable.
    """

    shared: bool
    """True when other coordinator processes see the same records (Redis), False for in-process stores."""

    async def create(self, record: SessionRecord) -> SessionRecord | None:
        """Store a new record; the TTL (max_age) starts now. Returns None.

        When `record.transport_key` already maps to a live session (another replica won the race to open
        that transport session's implicit session), nothing is stored and that session is returned.
        """
        ...

    async def get(self, session_id: str) -> SessionRecord | None: ...

    async def touch(self, session_id: str, now: float) -> SessionRecord | None:
        """Mark the session used at `now`, sliding its TTL; None when it does not exist (or expired)."""
        ...

    async def repin(self, session_id: str, worker_url: str) -> SessionRecord | None:
        """Move the session to another worker (shared workspaces after a worker loss)."""
        ...

    async def delete(self, session_id: str) -> SessionRecord | None:
        """Remove the session; returns the removed record so the caller can delete its workspace."""
        ...

    async def claim_expired(self, now: float, limit: int = 100) -> list[SessionRecord]:
        """Atomically remove up to `limit` sessions idle for max_age or more; return the ones removed here."""
        ...

    async def find_by_transport(self, transport_key: str) -> SessionRecord | None:
        """The implicit session opened for a transport session, if any."""
        ...

    async def count(self) -> int:
        """Open sessions across all replicas."""
        ...

    async def list(self, limit: int = 1000) -> list[SessionRecord]:
        """Up to `limit` records, for /debug/sessions."""
        ...

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the backend answers; used by /ready."""
        ...

    # Handshake-era transport sessions (`Mcp-Session-Id`): what a replica needs to serve a request for a
    # session another replica initialized. `data` is a small JSON-serialisable mapping owned by the
    # transport; the record expires after `ttl` seconds without a save or load.

    async def save_transport_session(self, session_id: str, data: Mapping[str, Any], ttl: float) -> None:
        """Store (or replace) the record; its idle TTL starts now."""
        ...

    async def load_transport_session(self, session_id: str) -> dict[str, Any] | None:
        """The record, sliding its TTL; None when it does not exist or expired."""
        ...

    async def delete_transport_session(self, session_id: str) -> bool:
        """Remove the record (True when it existed) and tell every replica's `watch_transport_sessions`."""
        ...

    async def watch_transport_sessions(self, on_event: TransportEvent) -> None:
        """Run until cancelled, calling `on_event(id)` for each transport session deleted by any replica.

        `on_event(None)` means deletions may have been missed (the feed broke or reconnected): the
        caller must re-check what it holds. Never raises StoreUnavailable; it reconnects by itself.
        """
        ...

    async def aclose(self) -> None: ...
