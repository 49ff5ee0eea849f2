"""A real MCP server for transport tests: the coordinator's transports over a small in-process ToolService.

Run as a process: `python tests/integration/mcp_test_server.py [--stdio] [--settings JSON]`.
Over HTTP it prints `LISTENING <port>` once bound to 127.0.0.1:0. Tools:

- `echo(text)` returns the text; `fail()` returns an `isError` result;
- `slow(seconds)` sleeps, counting cancellations (read them back with `stats`);
- `progress(steps)` reports progress `steps` times;
- `stamp(session_id)` has `session_id` marked `x-mcp-header: Session-Id`, like the coordinator's tools.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from coordinator.calls import CallContext, ServerIdentity, TransportSettings, UnknownToolError
from coordinator.transports.security import security_middleware
from coordinator.transports.sse import SseTransport
from coordinator.transports.stdio import serve_stdio
from coordinator.transports.streamable_http import StreamableHttpTransport

IDENTITY = ServerIdentity(name="protocol-test", version="1.2.3", instructions="Test tools only.")

TOOLS: list[dict[str, Any]] = [
    {
        "name": "echo",
        "description": "Return the text you send.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    },
    {"name": "fail", "description": "Always fails as a tool.", "inputSchema": {"type": "object"}},
    {
        "name": "slow",
        "description": "Sleep for `seconds`.",
        "inputSchema": {"type": "object", "properties": {"seconds": {"type": "number"}}},
    },
    {
        "name": "progress",
        "description": "Report progress `steps` times.",
        "inputSchema": {"type": "object", "properties": {"steps": {"type": "integer"}}},
    },
    {"name": "stats", "description": "Counters kept by this server.", "inputSchema": {"type": "object"}},
    {
        "name": "stamp",
        "description": "Echo the session id and what the transport said about the call.",
        "inputSchema": {
            "type": "object",
            "properties": {"session_id": {"type": "string", "x-mcp-header": "Session-Id"}},
        },
    },
]


def _text(value: str, *, error: bool = False, structured: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = {"content": [{"type": "text", "text": value}], "isError": error}
    if structured is not None:
        result["structuredContent"] = structured
    return result


class TestTools:
    """A ToolService with no worker behind it: enough to drive every transport path for real."""

    def __init__(self) -> None:
        self.cancelled = 0
        self.closed_sessions: list[str] = []

    def list_tools(self) -> list[dict[str, Any]]:
        return TOOLS

    async def call_tool(self, name: str, arguments: Mapping[str, Any], ctx: CallContext) -> dict[str, Any]:
        if name == "echo":
            return _text(str(arguments.get("text", "")))
        if name == "fail":
            return _text("this tool always fails", error=True)
        if name == "slow":
            try:
                await asyncio.sleep(float(arguments.get("seconds", 1.0)))
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            return _text("slept")
        if name == "progress":
            steps = int(arguments.get("steps", 3))
            for step in range(1, steps + 1):
                if ctx.progress is not None:
                    await ctx.progress(step, steps, f"step {step}")
            return _text(f"done {steps}")
        if name == "stats":
            stats = {"cancelled": self.cancelled, "closed_sessions": len(self.closed_sessions)}
            return _text(json.dumps(stats), structured=stats)
        if name == "stamp":
            seen = {
                "session_id": arguments.get("session_id"),
                "transport": ctx.transport,
                "protocol_version": ctx.protocol_version,
                "transport_session_id": ctx.transport_session_id,
                "caller": ctx.caller,
                "client_name": ctx.client_name,
                "trace_id": ctx.trace_id,
            }
            return _text(json.dumps(seen), structured=seen)
        raise UnknownToolError(name)

    async def transport_session_closed(self, transport_session_id: str) -> None:
        self.closed_sessions.append(transport_session_id)


def build_app(
    service: TestTools, settings: TransportSettings, max_sessions: int = 10_000
) -> tuple[web.Application, list[Any]]:
    app = web.Application(middlewares=[security_middleware(settings)])
    idle = settings.keepalive_interval * 50
    transports: list[Any] = [
        StreamableHttpTransport(service, IDENTITY, settings, idle_timeout=idle, max_sessions=max_sessions),
        SseTransport(service, IDENTITY, settings),
    ]
    for transport in transports:
        transport.add_routes(app)
    return app, transports


async def serve_http(settings: TransportSettings, max_sessions: int) -> None:
    service = TestTools()
    app, transports = build_app(service, settings, max_sessions)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"LISTENING {runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for transport in transports:
        await transport.aclose()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stdio", action="store_true")
    parser.add_argument("--settings", default="{}", help="TransportSettings fields as a JSON object")
    parser.add_argument("--max-sessions", type=int, default=10_000)
    args = parser.parse_args()
    fields = json.loads(args.settings)
    for key in ("allowed_origins", "allowed_hosts"):
        if key in fields:
            fields[key] = tuple(fields[key])
    settings = TransportSettings(**fields)
    if args.stdio:
        asyncio.run(serve_stdio(TestTools(), IDENTITY))
    else:
        asyncio.run(serve_http(settings, args.max_sessions))
    sys.exit(0)


if __name__ == "__main__":
    main()
