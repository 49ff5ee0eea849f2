"""The SDK's own MCPServer with one `echo` tool on uvicorn: the baseline for bench/echo_bench.py.

Run: `python bench/sdk_reference_server.py --port 0`; it prints `LISTENING <port>` once bound.
Stateless and JSON-response, the fastest configuration the SDK offers for 2026-07-28 calls.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer


def build_server() -> MCPServer:
    """An MCPServer whose only tool echoes its `text` argument."""
    server: MCPServer = MCPServer(name="sdk-reference", version="0")

    @server.tool(name="echo", description="Return the text you send.")
    def echo(text: str) -> str:
        return text

    return server


async def serve(host: str, port: int) -> None:
    """Bind first (so port 0 works and the real port is known), then hand the socket to uvicorn.

    The socket is created with proto=IPPROTO_TCP so that asyncio sets TCP_NODELAY on accepted
    connections, as it does when uvicorn binds by host and port; with proto 0 every keep-alive
    response would stall ~40 ms on Nagle plus delayed ACK and the baseline would look absurdly slow.
    """
    app = build_server().streamable_http_app(stateless_http=True, json_response=True, host=host)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    print(f"LISTENING {sock.getsockname()[1]}", flush=True)
    await server.serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))
    sys.exit(0)


if __name__ == "__main__":
    main()
