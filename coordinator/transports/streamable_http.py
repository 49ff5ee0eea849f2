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

Handshake sessions are held by `HandshakeSessions` (coordinator/transports/handshake_sessions.py),
in this process's memory and, given a shared `store`, in the Redis session store too, so any replica can
serve them. The GET stream stays in the process that opened it (this server sends no requests, so
nothing needs to reach it elsewhere).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
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
from coordinator.transports.handshake_sessions import DEFAULT_IDLE_TIMEOUT, HandshakeSession, HandshakeSessions
from coordinator.transports.security import CALLER_KEY

if TYPE_CHECKING:
    from coordinator.session_store import SessionStore

logger = logging.getLogger(__name__)

SESSION_HEADER: Final = "Mcp-Session-Id"
VERSION_HEADER: Final = "MCP-Protocol-Version"
PATH: Final = "/mcp"
DEFAULT_MAX_SESSIONS: Final = 10_000
"""Open handshake sessions per process; `initialize` beyond this is refused with 503."""


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
        self.store = store
        self.sessions = HandshakeSessions(service.transport_session_closed, idle_timeout=idle_timeout, store=store)
        self._ticker = Ticker(settings.keepalive_interval / 4)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(PATH, self.handle_post)
        app.router.add_get(PATH, self.handle_get, allow_head=False)
        app.router.add_delete(PATH, self.handle_delete)

    @property
    def session_count(self) -> int:
        """Open handshake-era sessions (for health and debug pages)."""
        return len(self.sessions)

    @property
    def touch_interval(self) -> float:
        """A held session slides its shared TTL at most this often (seconds)."""
        return self.sessions.touch_interval

    async def aclose(self) -> None:
        """Close every session (telling the tool layer) and stop the idle reaper."""
        await self.sessions.aclose()
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
            await self.sessions.save_if_changed(session)
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
            await self.sessions.save_if_changed(session)

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
        if self.sessions.closing:
            return error_reply(503, INVALID_REQUEST, "Service Unavailable: the coordinator is shutting down")
        if len(self.sessions) >= self.max_sessions:
            return error_reply(
                503,
                INVALID_REQUEST,
                f"Service Unavailable: {self.max_sessions} sessions are open; close idle ones (DELETE /mcp) "
                f"or use protocol version {MODERN_PROTOCOL_VERSIONS[-1]}, which needs no session",
                headers={"Retry-After": "5"},
            )
        try:
            await self.sessions.open(peer)
        except StoreUnavailable as exc:
            return _store_unavailable(exc)
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
        try:
            await self.sessions.delete(session.peer.session_id)
        except StoreUnavailable as exc:
            return _store_unavailable(exc)
        return web.Response(status=200)

    # ----- sessions -----------------------------------------------------------------------------

    async def _find_session(self, session_id: str | None, caller: str | None) -> HandshakeSession | web.Response:
        """The caller's session, or the 400/404/503 answer explaining why there is none.

        503 while the store is unreachable, so the client retries rather than discarding its session.
        """
        if not session_id:
            return error_reply(
                400,
                INVALID_REQUEST,
                f"Bad Request: missing {SESSION_HEADER} header; send initialize first and echo the "
                f"{SESSION_HEADER} it returns, or use protocol version {MODERN_PROTOCOL_VERSIONS[-1]}",
            )
        try:
            session = await self.sessions.lookup(session_id)
        except StoreUnavailable as exc:
            return _store_unavailable(exc)
        if session is None or session.peer.caller != caller:
            return error_reply(
                404,
                INVALID_REQUEST,
                "Not Found: unknown or expired session; send a new initialize to start another",
            )
        return session


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
