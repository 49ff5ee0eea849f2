"""`HandshakeSessions`: the handshake-era `Mcp-Session-Id` sessions this process holds, and their shared copies.

Sessions live in this process's memory and expire after `idle_timeout` seconds without traffic, open
GET stream or running call. Given a shared `store` (the Redis session store), each session is also
saved there (`save_transport_session`) so any replica can serve it: an id unknown here is loaded from
the store and the session rebuilt. The hot path stays local: a session held here slides the shared TTL
at most every `touch_interval`, in the background, and the store's deletion feed
(`watch_transport_sessions`) drops copies that another replica DELETEd; while that feed is broken, held
sessions are re-checked in the store before use. Idle expiry is then the store's TTL; locally, an idle
copy is only forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from coordinator.protocol import Peer
from coordinator.session_store import StoreUnavailable

if TYPE_CHECKING:
    from coordinator.session_store import SessionStore

logger = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT: Final = 30 * 60.0
"""Seconds a handshake session may sit idle before it is closed."""
_MINTED_ID: Final = re.compile(r"[A-Za-z0-9_-]{43}")
"""The shape of `secrets.token_urlsafe(32)`: anything else is not looked up in the store."""


@dataclass(slots=True)
class HandshakeSession:
    """One handshake-era session: its protocol peer, last activity and its GET stream, if open."""

    peer: Peer
    last_seen: float = field(default_factory=time.monotonic)
    streaming: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    synced: float = field(default_factory=time.monotonic)
    """When the shared record was last saved or loaded (its TTL slid), on the monotonic clock."""
    verified: bool = True
    """False once the store's deletion feed may have missed news about this session."""
    saved: tuple[Any, ...] = ()
    """The peer state last written to the store, to re-save when it changes."""
    touching: bool = False

    def idle_for(self, now: float) -> float:
        if self.streaming or self.peer.in_flight:
            return 0.0
        return now - self.last_seen


class HandshakeSessions:
    """The registry of handshake sessions: open, look up, delete, expire; `aclose()` on shutdown.

    `release(session_id)` is awaited once a session ends here for good (DELETE, or idle expiry without
    a store), so the tool layer can close its implicit workspace session; its failures are logged.
    Store failures surface as `StoreUnavailable` from `open`, `lookup` and `delete` only; background
    saves and touches log them and carry on.
    """

    def __init__(
        self,
        release: Callable[[str], Awaitable[None]],
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        store: SessionStore | None = None,
    ) -> None:
        self.idle_timeout = idle_timeout
        self.store = store
        self.touch_interval = max(1.0, idle_timeout / 10)
        """A held session slides its shared TTL at most this often (seconds)."""
        self.closing = False
        self._release_hook = release
        self._sessions: dict[str, HandshakeSession] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._sessions)

    async def aclose(self) -> None:
        """Stop the reaper and feed, then close every session (with a store, only forget the copies)."""
        self.closing = True
        for task in (self._reaper, self._watcher, *self._background):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._reaper = self._watcher = None
        for session_id in list(self._sessions):
            if self.store is not None:
                self._forget(session_id)  # other replicas go on serving it: keep the shared record
            else:
                await self._close_session(session_id)

    async def open(self, peer: Peer) -> HandshakeSession:
        """Hold a new session for `peer` (saving it to the store first, if any)."""
        session = HandshakeSession(peer)
        if self.store is not None:
            await self._save(session)
        self._sessions[peer.session_id] = session
        self._ensure_reaper()
        return session

    async def lookup(self, session_id: str) -> HandshakeSession | None:
        """The session, or None when it is unknown or expired.

        With a store: a session not held here is loaded from it (raising StoreUnavailable while it is
        unreachable), and a held one slides the shared TTL now and then, or is re-checked first when
        the deletion feed may have missed its DELETE.
        """
        session = self._sessions.get(session_id)
        if self.store is not None:
            if session is None:
                if _MINTED_ID.fullmatch(session_id):
                    session = await self._load(session_id)
            elif not session.verified:
                session = await self._verify(session)
            elif time.monotonic() - session.synced >= self.touch_interval:
                self._touch_later(session)
        return session

    async def delete(self, session_id: str) -> None:
        """End the session everywhere: the store record first (StoreUnavailable leaves it open), then here."""
        if self.store is not None:
            await self.store.delete_transport_session(session_id)  # every replica drops its copy
        # Release here even if the deletion feed already made this process forget its copy.
        self._forget(session_id)
        await self._release(session_id)

    async def save_if_changed(self, session: HandshakeSession) -> None:
        """Re-save after `notifications/initialized` or `logging/setLevel` changed the peer."""
        if self.store is None or _state(session.peer) == session.saved:
            return
        if self._sessions.get(session.peer.session_id) is not session:
            return  # deleted meanwhile: do not bring the record back
        try:
            await self._save(session)
        except StoreUnavailable as exc:
            logger.warning("could not save a handshake session's state: %s", exc)

    # ----- local lifetime -----------------------------------------------------------------------

    async def _close_session(self, session_id: str) -> None:
        if self._forget(session_id) is not None:
            await self._release(session_id)

    async def _release(self, session_id: str) -> None:
        """Tell the tool layer, which closes the session's implicit workspace session."""
        try:
            await self._release_hook(session_id)
        except Exception:
            logger.exception("closing the tool-layer session for a transport session failed")

    def _forget(self, session_id: str) -> HandshakeSession | None:
        """Drop this process's copy: end its GET stream and cancel its running calls."""
        session = self._sessions.pop(session_id, None)
        if session is not None:
            session.closed.set()
            session.peer.cancel_all()
        return session

    def _ensure_reaper(self) -> None:
        loop = asyncio.get_running_loop()
        if self._reaper is None or self._reaper.done():
            self._reaper = loop.create_task(self._reap())
        if self.store is not None and not self.closing and (self._watcher is None or self._watcher.done()):
            self._watcher = loop.create_task(self.store.watch_transport_sessions(self._on_store_event))

    async def _reap(self) -> None:
        period = max(0.05, min(self.idle_timeout / 4, 60.0))
        while self._sessions:
            await asyncio.sleep(period)
            now = time.monotonic()
            for session_id, session in list(self._sessions.items()):
                idle = session.idle_for(now)
                if idle > self.idle_timeout:
                    if self.store is not None:
                        # Maybe busy on another replica; the store's TTL decides when it expires.
                        self._forget(session_id)
                        continue
                    logger.info("handshake session expired after %.0fs idle", self.idle_timeout)
                    await self._close_session(session_id)
                elif self.store is not None and idle == 0.0 and now - session.synced >= self.touch_interval:
                    self._touch_later(session)  # a long call or an open stream keeps it alive everywhere

    # ----- the shared store ---------------------------------------------------------------------

    async def _save(self, session: HandshakeSession) -> None:
        assert self.store is not None
        peer = session.peer
        state = _state(peer)
        record = {
            "protocol_version": peer.protocol_version,
            "caller": peer.caller,
            "client_name": peer.client_name,
            "initialized": peer.initialized,
            "log_level": peer.log_level,
        }
        await self.store.save_transport_session(peer.session_id, record, self.idle_timeout)
        session.saved = state
        session.synced = time.monotonic()

    async def _load(self, session_id: str) -> HandshakeSession | None:
        """Rebuild a session another replica initialized, from the store; None when it is not there."""
        assert self.store is not None
        data = await self.store.load_transport_session(session_id)
        held = self._sessions.get(session_id)
        if held is not None:  # a concurrent request loaded it meanwhile
            return held
        if data is None or self.closing:
            return None
        version = data.get("protocol_version")
        if not isinstance(version, str) or version not in HANDSHAKE_PROTOCOL_VERSIONS:
            return None
        caller, name, level = data.get("caller"), data.get("client_name"), data.get("log_level")
        peer = Peer(
            "streamable-http",
            session_id,
            caller=caller if isinstance(caller, str) else None,
            protocol_version=version,
            client_name=name if isinstance(name, str) else None,
            initialized=data.get("initialized") is True,
            log_level=level if isinstance(level, str) else "info",
        )
        session = HandshakeSession(peer)
        session.saved = _state(peer)
        self._sessions[session_id] = session
        self._ensure_reaper()
        return session

    async def _verify(self, session: HandshakeSession) -> HandshakeSession | None:
        """Re-check a held session against the store (the deletion feed may have missed its DELETE).

        While the store is unreachable the held copy is served: no DELETE can have happened meanwhile.
        """
        assert self.store is not None
        session_id = session.peer.session_id
        try:
            data = await self.store.load_transport_session(session_id)
        except StoreUnavailable:
            return session
        if data is None:
            if self._sessions.get(session_id) is session:
                self._forget(session_id)
            return None
        session.verified = True
        session.synced = time.monotonic()
        return session

    def _touch_later(self, session: HandshakeSession) -> None:
        """Slide the shared TTL in the background; drop the copy if the record is gone."""
        if session.touching:
            return
        session.touching = True
        session.synced = time.monotonic()  # at most one touch per interval, even when it fails
        task = asyncio.get_running_loop().create_task(self._touch(session))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _touch(self, session: HandshakeSession) -> None:
        assert self.store is not None
        session_id = session.peer.session_id
        try:
            data = await self.store.load_transport_session(session_id)
        except StoreUnavailable as exc:
            logger.debug("handshake session TTL not slid: %s", exc)
            return
        finally:
            session.touching = False
        if data is None and self._sessions.get(session_id) is session and not session.peer.in_flight:
            logger.info("handshake session expired or deleted on another replica")
            self._forget(session_id)

    def _on_store_event(self, session_id: str | None) -> None:
        if session_id is None:
            for session in self._sessions.values():
                session.verified = False
        else:
            self._forget(session_id)


def _state(peer: Peer) -> tuple[Any, ...]:
    return (peer.protocol_version, peer.caller, peer.client_name, peer.initialized, peer.log_level)
