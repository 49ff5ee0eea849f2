"""MCP JSON-RPC dispatch over plain dicts, for both protocol eras, shared by every transport.

Two eras reach this module:

- 2026-07-28 ("modern"): every request carries the `_meta` envelope (protocol version, client
  capabilities, client info) and stands alone. Results carry `resultType` and the serverInfo stamp.
- 2024-11-05 .. 2025-11-25 ("handshake"): `initialize` negotiates a version for a connection,
  held in a `Peer`.

Batches: JSON-RPC batches were part of MCP only in 2025-03-26 (added then, removed in 2025-06-18).
They are accepted on a connection that negotiated 2025-03-26 and refused with -32600 everywhere
else, including before `initialize` and on the modern path.

Pydantic is kept off the hot path: `tools/list` and `tools/call` are plain dict work. The SDK's pure
helpers (`mcp/shared/inbound.py`, via `coordinator/sdk_inbound.py`) run the modern validation ladder.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast

from mcp_types import CLIENT_INFO_META_KEY
from mcp_types.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
)
from mcp_types.version import (
    HANDSHAKE_PROTOCOL_VERSIONS,
    LATEST_HANDSHAKE_VERSION,
    MODERN_PROTOCOL_VERSIONS,
)

from coordinator.calls import (
    CallContext,
    InvalidToolArguments,
    ProgressCallback,
    ServerIdentity,
    ToolService,
    TransportKind,
    UnknownToolError,
)
from coordinator.protocol_modern import ParamHeaderRules, fast_envelope, modern_version_of, stamp
from coordinator.sdk_inbound import ERROR_CODE_HTTP_STATUS, Rejection, classify
from coordinator.tracing import trace_id_for

__all__ = [
    "BATCH_VERSION",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "SUPPORTED_VERSIONS",
    "Exchange",
    "McpProtocol",
    "Notify",
    "Peer",
    "error_response",
    "http_status_for",
    "modern_version_of",
]

logger = logging.getLogger(__name__)

JSON = dict[str, Any]
Notify = Callable[[JSON], Awaitable[None]]
"""Sends one server->client JSON-RPC notification on the channel the request came in on."""

SUPPORTED_VERSIONS: Final[tuple[str, ...]] = (*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS)
BATCH_VERSION: Final = "2025-03-26"
"""The one protocol version whose connections may send JSON-RPC batches."""

REQUEST_CANCELLED: Final = -32800
"""Answer to a request the client cancelled, where the transport must still close the exchange."""

_CAPABILITIES: Final[JSON] = {"tools": {"listChanged": False}, "logging": {}}
_LOG_LEVELS: Final = frozenset(
    {"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}
)


def error_response(request_id: Any, code: int, message: str, data: Any = None) -> JSON:
    """A JSON-RPC error object; `request_id` None renders as `id: null`, as JSON-RPC requires."""
    error: JSON = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def http_status_for(response: JSON | None, *, modern: bool) -> int:
    """HTTP status for a single JSON-RPC reply on /mcp.

    Modern: the SDK's error-code table (-32601 -> 404, -32602/-32600/... -> 400). Handshake era:
    the JSON-RPC error rides in a 200, except a body that could not be parsed or understood (400).
    """
    if response is None or "error" not in response:
        return 200
    code = response["error"].get("code")
    if modern:
        return ERROR_CODE_HTTP_STATUS.get(code, 200)
    return 400 if code in (PARSE_ERROR, INVALID_REQUEST) else 200


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


@dataclass(slots=True)
class Peer:
    """One handshake-era connection: an HTTP session, an SSE session or a stdio connection.

    Mutable by design: `initialize` fills the negotiated version and the client's name, and
    `in_flight` maps request ids to the tasks running them so `notifications/cancelled` can stop them.
    """

    transport: TransportKind
    session_id: str
    caller: str | None = None
    remote: str | None = None
    protocol_version: str | None = None
    client_name: str | None = None
    initialized: bool = False
    log_level: str = "info"
    in_flight: dict[Any, asyncio.Task[Any]] = field(default_factory=dict)

    def cancel_all(self) -> None:
        """Cancel every call still running for this connection (it is going away)."""
        for task in list(self.in_flight.values()):
            task.cancel()
        self.in_flight.clear()


@dataclass(frozen=True, slots=True)
class Exchange:
    """What dispatch needs to know about where one message came from and how to answer it.

    `peer` is None only on the stateless 2026-07-28 HTTP path. `headers` are the HTTP request
    headers (None on stdio), consulted for `traceparent`. `notify` delivers progress
    notifications; None drops them (e.g. a client that accepts only JSON).
    """

    transport: TransportKind
    peer: Peer | None = None
    caller: str | None = None
    remote: str | None = None
    headers: Mapping[str, str] | None = None
    notify: Notify | None = None


class McpProtocol:
    """Answers MCP requests from plain JSON-RPC dicts by calling a `ToolService`.

    Transports parse bytes, pick the era (HTTP routes on `MCP-Protocol-Version`, stdio and SSE on
    the `_meta` envelope) and call `handle_message` (stateful connections) or `handle_modern`
    (stateless HTTP). Neither raises for client mistakes: those become JSON-RPC errors.
    """

    def __init__(self, service: ToolService, identity: ServerIdentity) -> None:
        self.service = service
        self.identity = identity
        self._server_info: JSON = {"name": identity.name, "version": identity.version}
        self._param_headers = ParamHeaderRules(service.list_tools)

    # ----- entry points -------------------------------------------------------------------------

    async def handle_message(self, message: Any, exchange: Exchange) -> JSON | list[JSON] | None:
        """Answer one decoded message (object or batch) from a stateful connection.

        Messages carrying the 2026-07-28 `_meta` envelope take the modern path; the rest use the
        handshake state in `exchange.peer`. Returns the reply (None for notifications, for
        responses the client sent, and for requests it cancelled).
        """
        if isinstance(message, list):
            return await self._handle_batch(message, exchange)
        if modern_version_of(message) is not None:
            return await self.handle_modern(message, exchange, headers=None)
        return await self._handle_handshake(message, exchange)

    async def handle_modern(
        self, message: Any, exchange: Exchange, *, headers: Mapping[str, str] | None
    ) -> JSON | None:
        """Answer one 2026-07-28 message; `headers` (HTTP only) are checked against the body."""
        if not isinstance(message, dict):
            return error_response(None, INVALID_REQUEST, "Body must be a single JSON-RPC request object")
        msg = cast(JSON, message)
        request_id = msg.get("id")
        if "id" not in msg:
            return None  # notifications stand alone on this era: nothing to act on
        if not _valid_id(request_id) or msg.get("jsonrpc") != "2.0" or not isinstance(msg.get("method"), str):
            return error_response(
                request_id if _valid_id(request_id) else None,
                INVALID_REQUEST,
                'Invalid request: expected {"jsonrpc": "2.0", "id": <string|number>, "method": <string>}',
            )
        verdict = fast_envelope(msg, headers)
        if verdict is None:
            # Something is off: the SDK's ladder names the first failing rung, exactly as it would.
            classified = classify(msg, headers)
            if isinstance(classified, Rejection):
                return error_response(request_id, classified.code, classified.message, classified.data)
            verdict = (classified.protocol_version, classified.client_info)
        if headers is not None and (rejection := self._param_headers.rejection(msg, headers)) is not None:
            return error_response(request_id, rejection.code, rejection.message, rejection.data)
        version, client_info = verdict
        client_name = client_info.get("name") if isinstance(client_info, dict) else None
        method: str = msg["method"]
        params: JSON = msg["params"]
        if method == "tools/call":
            outcome = await self._call_tool(request_id, params, version, exchange, client_name)
            if "result" in outcome:
                outcome["result"] = stamp(self._server_info, outcome["result"])
            return outcome
        if method == "tools/list":
            tools = self.service.list_tools()
            result: JSON = {"tools": tools, "resultType": "complete", "ttlMs": 0, "cacheScope": "private"}
            return {"jsonrpc": "2.0", "id": request_id, "result": stamp(self._server_info, result)}
        if method == "server/discover":
            return {
                "jsonrpc": "2.0",
                "id": request_id,
                "result": stamp(self._server_info, self._discover_result()),
            }
        return error_response(
            request_id,
            METHOD_NOT_FOUND,
            f"Method not found: {method!r} is not served at protocol version {version}",
        )

    # ----- handshake era ------------------------------------------------------------------------

    async def _handle_batch(self, batch: list[Any], exchange: Exchange) -> JSON | list[JSON] | None:
        peer = exchange.peer
        if peer is None or peer.protocol_version != BATCH_VERSION:
            negotiated = peer.protocol_version if peer is not None else None
            return error_response(
                None,
                INVALID_REQUEST,
                "JSON-RPC batches are not supported at "
                f"{negotiated or 'this protocol version'}; only {BATCH_VERSION} allowed them. "
                "Send one message per request.",
            )
        if not batch:
            return error_response(None, INVALID_REQUEST, "Invalid request: an empty batch")
        if any(isinstance(item, dict) and item.get("method") == "initialize" for item in batch):
            return error_response(None, INVALID_REQUEST, "initialize must not be part of a JSON-RPC batch")
        replies = await asyncio.gather(*(self._handle_handshake(item, exchange) for item in batch))
        answered = [reply for reply in replies if reply is not None]
        return answered or None

    async def _handle_handshake(self, message: Any, exchange: Exchange) -> JSON | None:
        if not isinstance(message, dict):
            return error_response(None, INVALID_REQUEST, "Invalid request: a JSON-RPC message is an object")
        msg = cast(JSON, message)
        method = msg.get("method")
        has_id = "id" in msg
        request_id = msg.get("id")
        if method is None and has_id and ("result" in msg or "error" in msg):
            return None  # a response to a server->client request; this server sends none
        if (
            msg.get("jsonrpc") != "2.0"
            or not isinstance(method, str)
            or (has_id and not _valid_id(request_id))
        ):
            return error_response(
                request_id if _valid_id(request_id) else None,
                INVALID_REQUEST,
                'Invalid request: expected {"jsonrpc": "2.0", "method": <string>, '
                'optionally "id": <string|number> and "params": <object>}',
            )
        params = msg.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            if not has_id:
                return None
            return error_response(request_id, INVALID_PARAMS, "Invalid params: `params` must be an object")
        peer = exchange.peer
        if not has_id:
            if peer is not None:
                self._notification(peer, method, params)
            return None
        if method == "initialize":
            return self._initialize(request_id, params, peer)
        if method == "ping":
            return {"jsonrpc": "2.0", "id": request_id, "result": {}}
        if peer is None or peer.protocol_version is None:
            return error_response(
                request_id,
                INVALID_REQUEST,
                f"{method!r} before initialize: send initialize first, or use protocol version "
                f"{MODERN_PROTOCOL_VERSIONS[-1]} with the per-request _meta envelope",
            )
        if method == "tools/call":
            return await self._tracked_call(request_id, params, peer, exchange)
        if method == "tools/list":
            return {"jsonrpc": "2.0", "id": request_id, "result": {"tools": self.service.list_tools()}}
        if method == "server/discover":
            return {"jsonrpc": "2.0", "id": request_id, "result": self._discover_result()}
        if method == "logging/setLevel":
            level = params.get("level")
            if level not in _LOG_LEVELS:
                return error_response(
                    request_id,
                    INVALID_PARAMS,
                    f"Invalid params: level {level!r} is not one of {', '.join(sorted(_LOG_LEVELS))}",
                )
            peer.log_level = level
            return {"jsonrpc": "2.0", "id": request_id, "result": {}}
        return error_response(request_id, METHOD_NOT_FOUND, f"Method not found: {method!r}")

    def _initialize(self, request_id: Any, params: JSON, peer: Peer | None) -> JSON:
        if peer is None:
            return error_response(request_id, INVALID_REQUEST, "initialize needs a stateful connection")
        if peer.protocol_version is not None:
            return error_response(
                request_id,
                INVALID_REQUEST,
                f"This connection is already initialized at {peer.protocol_version}; "
                "open a new connection to initialize again",
            )
        requested = params.get("protocolVersion")
        if not isinstance(requested, str):
            return error_response(
                request_id, INVALID_PARAMS, "Invalid params: initialize needs a `protocolVersion` string"
            )
        version = requested if requested in HANDSHAKE_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION
        client_info = params.get("clientInfo")
        if isinstance(client_info, dict) and isinstance(name := client_info.get("name"), str):
            peer.client_name = name
        peer.protocol_version = version
        result: JSON = {
            "protocolVersion": version,
            "capabilities": _CAPABILITIES,
            "serverInfo": self._server_info,
        }
        if self.identity.instructions:
            result["instructions"] = self.identity.instructions
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    def _notification(self, peer: Peer, method: str, params: JSON) -> None:
        if method == "notifications/initialized":
            peer.initialized = True
        elif method == "notifications/cancelled":
            task = peer.in_flight.get(params.get("requestId"))
            if task is not None:
                logger.debug("client cancelled request %r", params.get("requestId"))
                task.cancel()
        # Other notifications (roots/list_changed, progress, ...) have nothing to act on here.

    async def _tracked_call(
        self, request_id: Any, params: JSON, peer: Peer, exchange: Exchange
    ) -> JSON | None:
        """Run tools/call as its own task, registered so notifications/cancelled can stop it."""
        version = peer.protocol_version or LATEST_HANDSHAKE_VERSION
        task = asyncio.ensure_future(self._call_tool(request_id, params, version, exchange, peer.client_name))
        peer.in_flight[request_id] = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or current.cancelling() == 0):
                return None  # cancelled by the client: no reply is owed
            raise
        finally:
            if peer.in_flight.get(request_id) is task:
                del peer.in_flight[request_id]

    # ----- shared -------------------------------------------------------------------------------

    async def _call_tool(
        self, request_id: Any, params: JSON, version: str, exchange: Exchange, client_name: str | None
    ) -> JSON:
        name = params.get("name")
        if not isinstance(name, str) or not name:
            return error_response(
                request_id, INVALID_PARAMS, "Invalid params: tools/call needs a `name` string"
            )
        arguments = params.get("arguments")
        if arguments is None:
            arguments = {}
        meta = params.get("_meta")
        meta = meta if isinstance(meta, dict) else None
        progress = None
        token = meta.get("progressToken") if meta is not None else None
        if token is not None and exchange.notify is not None:
            progress = _progress_sender(token, exchange.notify)
        peer = exchange.peer
        if client_name is None and meta is not None:
            info = meta.get(CLIENT_INFO_META_KEY)
            client_name = info.get("name") if isinstance(info, dict) else None
        ctx = CallContext(
            transport=exchange.transport,
            protocol_version=version,
            transport_session_id=peer.session_id if peer is not None else None,
            trace_id=trace_id_for(exchange.headers, meta),
            caller=exchange.caller,
            client_name=client_name,
            remote=exchange.remote,
            progress=progress,
        )
        try:
            if not isinstance(arguments, dict):
                raise InvalidToolArguments(
                    f"tools/call `arguments` must be an object, not {type(arguments).__name__}"
                )
            result = await self.service.call_tool(name, arguments, ctx)
        except (UnknownToolError, InvalidToolArguments) as exc:
            return error_response(request_id, INVALID_PARAMS, f"Invalid params: {exc}")
        except Exception:
            logger.exception("tool %r failed outside its own error handling", name)
            return error_response(request_id, INTERNAL_ERROR, f"Internal error while running tool {name!r}")
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    def _discover_result(self) -> JSON:
        result: JSON = {
            "supportedVersions": list(SUPPORTED_VERSIONS),
            "capabilities": _CAPABILITIES,
            "serverInfo": self._server_info,
            "resultType": "complete",
            "ttlMs": 0,
            "cacheScope": "private",
        }
        if self.identity.instructions:
            result["instructions"] = self.identity.instructions
        return result


def _progress_sender(token: Any, notify: Notify) -> ProgressCallback:
    async def progress(value: float, total: float | None = None, message: str | None = None) -> None:
        params: JSON = {"progressToken": token, "progress": value}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        try:
            await notify({"jsonrpc": "2.0", "method": "notifications/progress", "params": params})
        except (ConnectionError, RuntimeError):
            logger.debug("progress dropped: the response stream is closed")

    return progress
