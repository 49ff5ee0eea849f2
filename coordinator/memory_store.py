"""`MemorySessionStore`: the in-process SessionStore (one replica, or replicas with ClientIP affinity)."""

from __future__ import annotations

import dataclasses

from coordinator.session_store import SessionRecord


class MemorySessionStore:
    """Sessions in two dicts. Every method runs without awaiting, so it is atomic on the event loop:
    `claim_expired` hands each expired record to exactly one caller. `max_age` is in seconds."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._records: dict[str, SessionRecord] = {}
        self._by_transport: dict[str, str] = {}

    async def create(self, record: SessionRecord) -> None:
        self._records[record.session_id] = record
        if record.transport_key is not None:
            self._by_transport[record.transport_key] = record.session_id

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

    async def aclose(self) -> None:
        return None
