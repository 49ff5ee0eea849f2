"""`MemorySessionStore`: the in-process SessionStore (one replica, or replicas with ClientIP affinity)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from coordinator.session_store import SessionRecord, TransportEvent


class MemorySessionStore:
    """Sessions in two dicts. Every method runs without awaiting, so it is atomic on the event loop:
    `claim_expired` hands each expired record to exactly one caller. `max_age` is in seconds.

    Transport-session records live in a third dict with a sliding expiry; the coordinator does not use
    them (this store is private to one process, `shared` is False), but the contract holds, so several
    transports in one process can share them (tests do). `watch_transport_sessions` is the one method
    that awaits: until it is cancelled."""

    shared = False

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._records: dict[str, SessionRecord] = {}
        self._by_transport: dict[str, str] = {}
        # Transport sessions: id -> (data, ttl, expires_at on time.monotonic()).
        self._transport: dict[str, tuple[dict[str, Any], float, float]] = {}
        self._transport_sweep_at = 0.0
        self._watchers: list[TransportEvent] = []

    async def create(self, record: SessionRecord) -> SessionRecord | None:
        if record.transport_key is not None:
            other = self._records.get(self._by_transport.get(record.transport_key, ""))
            if (
                other is not None
                and other.session_id != record.session_id
                and record.last_used - other.last_used < self.max_age
            ):
                return other
        self._records[record.session_id] = record
        if record.transport_key is not None:
            self._by_transport[record.transport_key] = record.session_id
        return None

    async def get(self, session_id: str) -> SessionRecord | None:
        return self._records.get(session_id)

    async def touch(self, session_id: str, now: float) -> SessionRecord | None:
        record = self._records.get(session_id)
        if record is None:
            return None
        if now - record.last_used >= self.max_age:
            # Expired but not yet reaped: it stays for claim_expired, which deletes its workspace.
            return None
        record = dataclasses.replace(record, last_used=now)
        self._records[session_id] = record
        return record

    async def repin(self, session_id: str, worker_url: str) -> SessionRecord | None:
        record = self._records.get(session_id)
        if record is None:
            return None
        record = dataclasses.replace(record, worker_url=worker_url)
        self._records[session_id] = record
        return record

    async def delete(self, session_id: str) -> SessionRecord | None:
        return self._delete(session_id)

    def _delete(self, session_id: str) -> SessionRecord | None:
        record = self._records.pop(session_id, None)
        key = None if record is None else record.transport_key
        if key is not None and self._by_transport.get(key) == session_id:
            del self._by_transport[key]
        return record

    async def claim_expired(self, now: float, limit: int = 100) -> list[SessionRecord]:
        cutoff = now - self.max_age
        expired = [sid for sid, rec in self._records.items() if rec.last_used <= cutoff][:limit]
        claimed: list[SessionRecord] = []
        for sid in expired:
            record = self._delete(sid)
            if record is not None:
                claimed.append(record)
        return claimed

    async def find_by_transport(self, transport_key: str) -> SessionRecord | None:
        sid = self._by_transport.get(transport_key)
        return None if sid is None else self._records.get(sid)

    async def count(self) -> int:
        return len(self._records)

    async def list(self, limit: int = 1000) -> list[SessionRecord]:
        return [rec for _, rec in zip(range(limit), self._records.values(), strict=False)]

    async def ping(self) -> None:
        return None

    async def save_transport_session(self, session_id: str, data: Mapping[str, Any], ttl: float) -> None:
        now = time.monotonic()
        if now >= self._transport_sweep_at:  # drop expired records now and then, so none piles up
            self._transport = {k: v for k, v in self._transport.items() if v[2] > now}
            self._transport_sweep_at = now + max(1.0, ttl / 4)
        self._transport[session_id] = (dict(data), ttl, now + ttl)

    async def load_transport_session(self, session_id: str) -> dict[str, Any] | None:
        entry = self._transport.get(session_id)
        if entry is None:
            return None
        data, ttl, expires_at = entry
        now = time.monotonic()
        if expires_at <= now:
            del self._transport[session_id]
            return None
        self._transport[session_id] = (data, ttl, now + ttl)
        return dict(data)

    async def delete_transport_session(self, session_id: str) -> bool:
        entry = self._transport.pop(session_id, None)
        for on_event in list(self._watchers):
            on_event(session_id)
        return entry is not None and entry[2] > time.monotonic()

    async def watch_transport_sessions(self, on_event: TransportEvent) -> None:
        # In-process delivery, so several transports in one process may share this store (tests do).
        self._watchers.append(on_event)
        try:
            await asyncio.Event().wait()
        finally:
            self._watchers.remove(on_event)

    async def aclose(self) -> None:
        return None
