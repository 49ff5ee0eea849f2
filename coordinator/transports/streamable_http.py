"""Streamable HTTP on /mcp in both protocol eras, on aiohttp.

Routing, per request:

- `MCP-Protocol-Version: 2026-07-28` (or, without the header, a body carrying the `_meta`
  envelope) takes the stateless path: one POST, one JSON-RPC request, one reply (JSON, or SSE once
  the call emits progress or runs past the keepalive interval). No `Mcp-Session-Id`; closing the
  response stream cancels the call. Notifications are acknowledged 202 and dropped. GET and DELETE
  are 405.
- Everything else is the handshake era (2024-11-05 .. 2025-11-25): `initialize` mints a random
  `Mcp-Session-Id`; later requests must carry it (400 without, 404 when unknown or expired);
  GET opens the server->client SSE stream, DELETE ends the session.

Handshake sessions live in this process's memory and expire after `idle_timeout` seconds without
traffic, open GET stream or running call. Given a shared `store` (the Redis session store), each
session is also saved there (`save_transport_session`) so any replica can serve it: a request whose
`Mcp-Session-Id` is unknown here loads the record and rebuilds the session before it is served. The
hot path stays local: a session held here slides the shared TTL at most every `touch_interval`, in
the background, and the store's deletion feed (`watch_transport_sessions`) drops copies that another
replica DELETEd; while that feed is broken, held sessions are re-checked in the store before use.
Idle expiry is then the store's TTL; locally, an idle copy is only forgotten. The GET stream stays in
the process that opened it (this server sends no requests, so nothing needs to reach it elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from mcp_types.jsonrpc import HEADER_MISMATCH
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from coordinator.calls import ServerIdentity, ToolService, TransportSettings
from coordinator.protocol import (
    INVALID_REQUEST,
    PARSE_ERROR,
    SUPPORTED_VERSIONS,
    Exchange,
    McpProtocol,
    Notify,
    Peer,
    error_response,
    http_status_for,
    modern_version_of,
)
from coordinator.sdk_inbound import duplicated_routing_header, unsupported_version
from coordinator.session_store import StoreUnavailable
from coordinator.transports.events import (
    Reply,
    Ticker,
    accepts,
    deferred_reply,
    error_reply,
    json_reply,
    keepalive_stream,
)
from coordinator.transports.security import CALLER_KEY

if TYPE_CHECKING:
    from coordinator.session_store import SessionStore

logger = logging.getLogger(__name__)

SESSION_HEADER: Final = "Mcp-Session-Id"
VERSION_HEADER: Final = "MCP-Protocol-Version"
PATH: Final = "/mcp"
DEFAULT_IDLE_TIMEOUT: Final = 30 * 60.0
"""Seconds a handshake session may sit idle before it is closed."""
DEFAULT_MAX_SESSIONS: Final = 10_000
_MINTED_ID: Final = re.compile(r"[A-Za-z0-9_-]{43}")
"""The shape of `secrets.token_urlsafe(32)`: anything else is not looked up in the store."""
"""Open handshake sessions per process; `initialize` beyond this is refused with 503."""


@dataclass(slots=True)
class _Session:
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


class StreamableHttpTransport:
    """POST/GET/DELETE /mcp for both eras. Call `add_routes(app)` once and `aclose()` on shutdown."""

    def __init__(
        self,
        service: ToolService,
        identity: ServerIdentity,
        settings: TransportSettings,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        store: SessionStore | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.protocol = McpProtocol(service, identity)
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self._sessions: dict[str, _Session] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._ticker = Ticker(settings.keepalive_interval / 4)
        self._closing = False
        self.store = store
        self.touch_interval = max(1.0, idle_timeout / 10)
        """A held session slides its shared TTL at most this often (seconds)."""
        self._watcher: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(PATH, self.handle_post)
        app.router.add_get(PATH, self.handle_get, allow_head=False)
        app.router.add_delete(PATH, self.handle_delete)

    @property
    def session_count(self) -> int:
        """Open handshake-era sessions (for health and debug pages)."""
        return len(self._sessions)

    async def aclose(self) -> None:
        """Close every session (telling the tool layer) and stop the idle reaper."""
        self._closing = True
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
        await self._ticker.aclose()

    # ----- POST ---------------------------------------------------------------------------------

    async def handle_post(self, request: web.Request) -> web.StreamResponse:
        if request.content_type != "application/json":
            return error_reply(
                415, INVALID_REQUEST, "Unsupported Media Type: send the JSON-RPC body as application/json"
            )
        accept_json, accept_sse = accepts(request.headers.get("Accept", ""))
        if not (accept_json or accept_sse):
            return error_reply(
                406,
                INVALID_REQUEST,
                "Not Acceptable: the Accept header must include application/json and text/event-stream",
            )
        body = await request.read()
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):
            return error_reply(400, PARSE_ERROR, "Parse error: the body is not valid JSON")
        version = request.headers.get(VERSION_HEADER)
        session_id = request.headers.get(SESSION_HEADER)
        is_initialize = isinstance(message, dict) and message.get("method") == "initialize"
        if not is_initialize and (
            version in MODERN_PROTOCOL_VERSIONS
            or (version is None and session_id is None and modern_version_of(message) is not None)
            or (version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS and session_id is None)
        ):
            return await self._post_modern(request, message, version, accept_json, accept_sse)
        return await self._post_handshake(
            request,
            message,
            version=version,
            session_id=session_id,
            accept_json=accept_json,
            accept_sse=accept_sse,
        )

    async def _post_modern(
        self, request: web.Request, message: Any, version: str | None, accept_json: bool, accept_sse: bool
    ) -> web.StreamResponse:
        if isinstance(message, list):
            return error_reply(
                400,
                INVALID_REQUEST,
                f"Invalid request: JSON-RPC batches are not allowed at {MODERN_PROTOCOL_VERSIONS[-1]}; "
                "send one request per POST",
            )
        if not isinstance(message, dict):
            return error_reply(400, INVALID_REQUEST, "Invalid request: the body must be one JSON-RPC object")
        if "id" not in message:
            rejection = unsupported_version(version or "")
            if rejection is not None:
                body = error_response(None, rejection.code, rejection.message, rejection.data)
                return json_reply(body, http_status_for(body, modern=True))
            return web.Response(status=202)
        duplicated = duplicated_routing_header(request.headers.items())
        if duplicated is not None:
            return error_reply(
                400,
                HEADER_MISMATCH,
                f"Header mismatch: {duplicated} appears more than once",
                request_id=message.get("id"),
            )
        headers = request.headers
        caller = request.get(CALLER_KEY)
        remote = request.remote

        async def run(notify: Notify | None) -> Reply:
            exchange = Exchange("streamable-http", None, caller, remote, headers, notify)
            return await self.protocol.handle_modern(message, exchange, headers=headers)

        return await deferred_reply(
            request,
            run,
            accept_json=accept_json,
            accept_sse=accept_sse,
            keepalive=self.settings.keepalive_interval,
            ticker=self._ticker,
            cancel_on_disconnect=True,
            status_of=_modern_status,
        )

    async def _post_handshake(
        self,
        request: web.Request,
        message: Any,
        *,
        version: str | None,
        session_id: str | None,
        accept_json: bool,
        accept_sse: bool,
    ) -> web.StreamResponse:
        caller = request.get(CALLER_KEY)
        if isinstance(message, dict) and message.get("method") == "initialize":
            return await self._initialize(request, message, caller)
        session = await self._find_session(session_id, caller)
        if isinstance(session, web.Response):
            return session
        negotiated = session.peer.protocol_version
        if version is not None and version != negotiated:
            supported = ", ".join(SUPPORTED_VERSIONS)
            reason = (
                f"Unsupported MCP-Protocol-Version {version!r} (supported: {supported})"
                if version not in SUPPORTED_VERSIONS
                else f"MCP-Protocol-Version {version!r} does not match the version this session negotiated"
            )
            return error_reply(
                400,
                INVALID_REQUEST,
                f"Bad Request: {reason}; send {negotiated!r}, as negotiated by initialize",
                headers={SESSION_HEADER: session.peer.session_id},
            )
        session.last_seen = time.monotonic()
        answer_headers = {SESSION_HEADER: session.peer.session_id}
        peer = session.peer
        remote = request.remote
        if not _has_request(message):
            exchange = Exchange("streamable-http", peer, caller, remote, request.headers, None)
            reply = await self.protocol.handle_message(message, exchange)
            await self._save_if_changed(session)
            if reply is not None:  # a malformed message or a refused batch
                return json_reply(reply, http_status_for(_first(reply), modern=False), answer_headers)
            return web.Response(status=202, headers=answer_headers)
        headers = request.headers

        async def run(notify: Notify | None) -> Reply:
            exchange = Exchange("streamable-http", peer, caller, remote, headers, notify)
            return await self.protocol.handle_message(message, exchange)

        try:
            return await deferred_reply(
                request,
                run,
                accept_json=accept_json,
                accept_sse=accept_sse,
                keepalive=self.settings.keepalive_interval,
                ticker=self._ticker,
                cancel_on_disconnect=False,
                status_of=_handshake_status,
                headers=answer_headers,
            )
        finally:
            session.last_seen = time.monotonic()
            await self._save_if_changed(session)

    async def _initialize(
        self, request: web.Request, message: dict[str, Any], caller: str | None
    ) -> web.StreamResponse:
        session_id = secrets.token_urlsafe(32)
        peer = Peer("streamable-http", session_id, caller=caller, remote=request.remote)
        exchange = Exchange("streamable-http", peer, caller, request.remote, request.headers, None)
        reply = await self.protocol.handle_message(message, exchange)
        assert isinstance(reply, dict)
        if "error" in reply:
            return json_reply(reply, http_status_for(reply, modern=False))
        if self._closing:
            return error_reply(503, INVALID_REQUEST, "Service Unavailable: the coordinator is shutting down")
        if len(self._sessions) >= self.max_sessions:
            return error_reply(
                503,
                INVALID_REQUEST,
                f"Service Unavailable: {self.max_sessions} sessions are open; close idle ones (DELETE /mcp) "
                f"or use protocol version {MODERN_PROTOCOL_VERSIONS[-1]}, which needs no session",
                headers={"Retry-After": "5"},
            )
        session = _Session(peer)
        if self.store is not None:
            try:
                await self._save(session)
            except StoreUnavailable as exc:
                return _store_unavailable(exc)
        self._sessions[session_id] = session
        self._ensure_reaper()
        return json_reply(reply, 200, {SESSION_HEADER: session_id})

    # ----- GET / DELETE -------------------------------------------------------------------------

    async def handle_get(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get(VERSION_HEADER) in MODERN_PROTOCOL_VERSIONS:
            return _method_not_allowed()
        _, accept_sse = accepts(request.headers.get("Accept", ""))
        if not accept_sse:
            return error_reply(
                406, INVALID_REQUEST, "Not Acceptable: the GET stream needs Accept: text/event-stream"
            )
        session = await self._find_session(request.headers.get(SESSION_HEADER), request.get(CALLER_KEY))
        if isinstance(session, web.Response):
            return session
        if session.streaming:
            return error_reply(409, INVALID_REQUEST, "Conflict: this session already has an open GET stream")
        session.streaming = True
        try:
            return await keepalive_stream(
                request,
                session.closed,
                self.settings.keepalive_interval,
                headers={SESSION_HEADER: session.peer.session_id},
            )
        finally:
            session.streaming = False
            session.last_seen = time.monotonic()

    async def handle_delete(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get(VERSION_HEADER) in MODERN_PROTOCOL_VERSIONS:
            return _method_not_allowed()
        session = await self._find_session(request.headers.get(SESSION_HEADER), request.get(CALLER_KEY))
        if isinstance(session, web.Response):
            return session
        session_id = session.peer.session_id
        if self.store is not None:
            try:
                await self.store.delete_transport_session(session_id)  # every replica drops its copy
            except StoreUnavailable as exc:
                return _store_unavailable(exc)
        # Release here even if the deletion feed already made this process forget its copy.
        self._forget(session_id)
        await self._release(session_id)
        return web.Response(status=200)

    # ----- sessions -----------------------------------------------------------------------------

    async def _find_session(self, session_id: str | None, caller: str | None) -> _Session | web.Response:
        """The caller's session, or the 400/404/503 answer explaining why there is none.

        With a store: a session not held here is loaded from it (503 while it is unreachable, so the
        client retries rather than discarding its session), and a held one slides the shared TTL now
        and then, or is re-checked first when the deletion feed may have missed its DELETE.
        """
        if not session_id:
            return error_reply(
                400,
                INVALID_REQUEST,
                f"Bad Request: missing {SESSION_HEADER} header; send initialize first and echo the "
                f"{SESSION_HEADER} it returns, or use protocol version {MODERN_PROTOCOL_VERSIONS[-1]}",
            )
        session = self._sessions.get(session_id)
        if self.store is not None:
            if session is None:
                if _MINTED_ID.fullmatch(session_id):
                    try:
                        session = await self._load(session_id)
                    except StoreUnavailable as exc:
                        return _store_unavailable(exc)
            elif not session.verified:
                session = await self._verify(session)
            elif time.monotonic() - session.synced >= self.touch_interval:
                self._touch_later(session)
        if session is None or session.peer.caller != caller:
            return error_reply(
                404,
                INVALID_REQUEST,
                "Not Found: unknown or expired session; send a new initialize to start another",
            )
        return session

    async def _close_session(self, session_id: str) -> None:
        if self._forget(session_id) is not None:
            await self._release(session_id)

    async def _release(self, session_id: str) -> None:
        """Tell the tool layer, which closes the session's implicit workspace session."""
        try:
            await self.service.transport_session_closed(session_id)
        except Exception:
            logger.exception("closing the tool-layer session for a transport session failed")

    def _forget(self, session_id: str) -> _Session | None:
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
        if self.store is not None and not self._closing and (self._watcher is None or self._watcher.done()):
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

    @staticmethod
    def _state(peer: Peer) -> tuple[Any, ...]:
        return (peer.protocol_version, peer.caller, peer.client_name, peer.initialized, peer.log_level)

    async def _save(self, session: _Session) -> None:
        assert self.store is not None
        peer = session.peer
        state = self._state(peer)
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

    async def _save_if_changed(self, session: _Session) -> None:
        """Re-save after `notifications/initialized` or `logging/setLevel` changed the peer."""
        if self.store is None or self._state(session.peer) == session.saved:
            return
        if self._sessions.get(session.peer.session_id) is not session:
            return  # deleted meanwhile: do not bring the record back
        try:
            await self._save(session)
        except StoreUnavailable as exc:
            logger.warning("could not save a handshake session's state: %s", exc)

    async def _load(self, session_id: str) -> _Session | None:
        """Rebuild a session another replica initialized, from the store; None when it is not there."""
        assert self.store is not None
        data = await self.store.load_transport_session(session_id)
        held = self._sessions.get(session_id)
        if held is not None:  # a concurrent request loaded it meanwhile
            return held
        if data is None or self._closing:
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
        session = _Session(peer)
        session.saved = self._state(peer)
        self._sessions[session_id] = session
        self._ensure_reaper()
        return session

    async def _verify(self, session: _Session) -> _Session | None:
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

    def _touch_later(self, session: _Session) -> None:
        """Slide the shared TTL in the background; drop the copy if the record is gone."""
        if session.touching:
            return
        session.touching = True
        session.synced = time.monotonic()  # at most one touch per interval, even when it fails
        task = asyncio.get_running_loop().create_task(self._touch(session))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _touch(self, session: _Session) -> None:
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


def _store_unavailable(exc: StoreUnavailable) -> web.Response:
    logger.warning("handshake session lookup failed: %s", exc)
    return error_reply(
        503,
        INVALID_REQUEST,
        "Service Unavailable: the session store is unreachable, so this session cannot be looked up "
        "right now; try again shortly with the same Mcp-Session-Id (the session is not lost)",
        headers={"Retry-After": "1"},
    )


def _has_request(message: Any) -> bool:
    if isinstance(message, dict):
        return "id" in message and "method" in message
    if isinstance(message, list):
        return any(isinstance(m, dict) and "id" in m and "method" in m for m in message)
    return False


def _first(reply: Reply) -> dict[str, Any] | None:
    if isinstance(reply, list):
        return reply[0] if len(reply) == 1 else None
    return reply


def _modern_status(reply: Reply) -> int:
    return http_status_for(_first(reply), modern=True)


def _handshake_status(reply: Reply) -> int:
    return http_status_for(_first(reply), modern=False)


def _method_not_allowed() -> web.Response:
    return error_reply(
        405,
        INVALID_REQUEST,
        f"Method Not Allowed: protocol version {MODERN_PROTOCOL_VERSIONS[-1]} uses POST only",
        headers={"Allow": "POST"},
    )
