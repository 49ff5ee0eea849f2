"""The `SessionStore` contract: where coordinator sessions live, shared by the memory and Redis stores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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

    async def create(self, record: SessionRecord) -> None:
        """Store a new record; the TTL (max_age) starts now."""
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

    async def aclose(self) -> None: ...
