"""The legacy HTTP+SSE transport (protocol 2024-11-05): `GET /sse` plus `POST /messages?session_id=...`.

`GET /sse` opens a stream whose first event, `endpoint`, names the URL to POST messages to. Each
POST is acknowledged 202 and its reply travels back on the stream, as do progress notifications.
Keepalive comments go out every `keepalive_interval` seconds. The session ends when the stream's
client disconnects, which also tells the tool layer (`transport_session_closed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from coordinator.calls import ServerIdentity, ToolService, TransportSettings
from coordinator.protocol import INVALID_REQUEST, JSON, PARSE_ERROR, Exchange, McpProtocol, Peer
from coordinator.transports.events import dumps, error_reply, keepalive_stream, sse_event
from coordinator.transports.security import CALLER_KEY

logger = logging.getLogger(__name__)

STREAM_PATH: Final = "/sse"
MESSAGES_PATH: Final = "/messages"


@dataclass(slots=True)
class _SseSession:
    """One open `GET /sse` stream: its protocol peer, the frames waiting to go out, its running POSTs."""

    peer: Peer
    outbox: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


class SseTransport:
    """GET /sse and POST /messages. Call `add_routes(app)` once and `aclose()` on shutdown."""

    def __init__(self, service: ToolService, identity: ServerIdentity, settings: TransportSettings) -> None:
        self.service = service
        self.settings = settings
        self.protocol = McpProtocol(service, identity)
        self._sessions: dict[str, _SseSession] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(STREAM_PATH, self.handle_stream, allow_head=False)
        app.router.add_post(MESSAGES_PATH, self.handle_message)
        app.router.add_post(MESSAGES_PATH + "/", self.handle_message)

    @property
    def session_count(self) -> int:
        """Open SSE streams."""
        return len(self._sessions)

    async def aclose(self) -> None:
        """End every stream and tell the tool layer its sessions are gone."""
        for session_id in list(self._sessions):
            await self._close(session_id)

    async def handle_stream(self, request: web.Request) -> web.StreamResponse:
        session_id = secrets.token_hex(16)
        peer = Peer("sse", session_id, caller=request.get(CALLER_KEY), remote=request.remote)
        session = _SseSession(peer)
        self._sessions[session_id] = session
        endpoint = f"{MESSAGES_PATH}?session_id={session_id}"
        try:
            return await keepalive_stream(
                request,
                session.closed,
                self.settings.keepalive_interval,
                first=sse_event(endpoint, "endpoint"),
                outbox=session.outbox,
            )
        finally:
            await self._close(session_id)

    async def handle_message(self, request: web.Request) -> web.StreamResponse:
        session_id = request.query.get("session_id")
        if not session_id:
            return error_reply(
                400,
                INVALID_REQUEST,
                "Bad Request: session_id is required; use the URL from the endpoint event",
            )
        session = self._sessions.get(session_id)
        if session is None or session.peer.caller != request.get(CALLER_KEY):
            return error_reply(
                404, INVALID_REQUEST, "Not Found: unknown session; open GET /sse for a new one"
            )
        body = await request.read()
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):
            return error_reply(400, PARSE_ERROR, "Parse error: the body is not valid JSON")

        async def notify(reply: JSON) -> None:
            session.outbox.put_nowait(sse_event(dumps(reply)))

        exchange = Exchange("sse", session.peer, session.peer.caller, request.remote, request.headers, notify)
        task = asyncio.ensure_future(self._answer(message, exchange, session))
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)
        return web.Response(status=202, text="Accepted")

    async def _answer(self, message: Any, exchange: Exchange, session: _SseSession) -> None:
        try:
            reply = await self.protocol.handle_message(message, exchange)
        except Exception:
            logger.exception("an SSE message failed outside the protocol's error handling")
            return
        if reply is not None and not session.closed.is_set():
            session.outbox.put_nowait(sse_event(dumps(reply)))

    async def _close(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        session.closed.set()
        session.peer.cancel_all()
        for task in list(session.tasks):
            task.cancel()
        for task in list(session.tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self.service.transport_session_closed(session_id)
        except Exception:
            logger.exception("closing the tool-layer session for an SSE session failed")
