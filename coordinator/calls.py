"""The seam between MCP transports and the tool layer: what one call carries in, and who answers it.

Transports (`coordinator/transports/*`) speak the wire protocol and know nothing about workers or
sessions. The tool layer (`coordinator/tools.py`) knows nothing about HTTP or JSON-RPC framing. Both
sides depend only on this module; `coordinator/app.py` wires the two together (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

TransportKind = Literal["stdio", "streamable-http", "sse"]

ProgressCallback = Callable[[float, float | None, str | None], Awaitable[None]]
"""`await progress(progress, total, message)`: sends notifications/progress when the client asked for it."""


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """What the coordinator reports as serverInfo and instructions, in every era."""

    name: str
    version: str
    instructions: str | None = None


@dataclass(frozen=True, slots=True)
class CallContext:
    """Everything the tool layer may know about the caller of one tools/call.

    `transport_session_id` is the handshake-era `Mcp-Session-Id`, the SSE session or the stdio
    connection id (in either era); it is None for 2026-07-28 requests over HTTP, which stand alone. `caller` is the auth
    token's name, or None when auth is off.
    """

    transport: TransportKind
    protocol_version: str
    transport_session_id: str | None
    trace_id: str
    caller: str | None = None
    client_name: str | None = None
    remote: str | None = None
    progress: ProgressCallback | None = None


class ToolService(Protocol):
    """The tool layer as transports see it.

    `call_tool` returns a CallToolResult as a JSON-ready dict (`content`, `structuredContent`,
    `isError`). A tool's own failure is a result with `isError: true`; it raises `UnknownToolError`
    only for a name that is not a tool, which transports turn into a JSON-RPC error, and
    `InvalidToolArguments` for arguments that are not an object.
    """

    def list_tools(self) -> list[dict[str, Any]]: ...

    async def call_tool(self, name: str, arguments: Mapping[str, Any], ctx: CallContext) -> dict[str, Any]: ...

    async def transport_session_closed(self, transport_session_id: str) -> None:
        """A handshake-era, SSE or stdio session ended: its implicit workspace session may be released."""
        ...


class UnknownToolError(LookupError):
    """tools/call named a tool that does not exist: a protocol error (-32602), not a tool result."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown tool: {name!r}")
        self.name = name


class InvalidToolArguments(ValueError):
    """tools/call `arguments` is not a JSON object: a protocol error (-32602)."""


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """HTTP-side checks and timings, built from config by `coordinator/app.py`.

    `auth_tokens` maps a token's name to the token; None means auth is off.
    `keepalive_interval` is in seconds.
    """

    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    trust_forwarded_host: bool = False
    max_body_bytes: int = 4 * 1024 * 1024
    keepalive_interval: float = 20.0
    auth_tokens: Mapping[str, str] | None = field(default=None)
