"""MCP over stdio: newline-delimited JSON-RPC on stdin/stdout, in both protocol eras.

One stdio connection is one transport session (`stdio-<random>`). A message carrying the
2026-07-28 `_meta` envelope stands alone; anything else follows the `initialize` handshake.
Requests run concurrently; replies and notifications are written whole, one per line. At end of
input, running calls finish and are answered before the session closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import Final

from coordinator.calls import ServerIdentity, ToolService
from coordinator.protocol import JSON, PARSE_ERROR, Exchange, McpProtocol, Peer, error_response
from coordinator.transports.events import dumps

logger = logging.getLogger(__name__)

MAX_LINE_BYTES: Final = 64 * 1024 * 1024
"""The longest message accepted on stdin."""


async def serve_stdio(
    service: ToolService,
    identity: ServerIdentity,
    *,
    reader: asyncio.StreamReader | None = None,
    writer: asyncio.StreamWriter | None = None,
) -> None:
    """Serve one MCP connection on `reader`/`writer` (default: this process's stdin/stdout) until EOF."""
    protocol = McpProtocol(service, identity)
    readline = await _stdin_reader() if reader is None else reader.readline
    write = await _stdout_writer() if writer is None else _stream_writer(writer)
    lock = asyncio.Lock()
    session_id = f"stdio-{secrets.token_hex(8)}"
    peer = Peer("stdio", session_id)

    async def send(message: JSON | list[JSON]) -> None:
        async with lock:
            await write(dumps(message) + b"\n")

    exchange = Exchange("stdio", peer, None, None, None, send)
    tasks: set[asyncio.Task[None]] = set()

    async def answer(line: bytes) -> None:
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await send(
                    error_response(None, PARSE_ERROR, "Parse error: a line on stdin is not valid JSON")
                )
            return
        try:
            reply = await protocol.handle_message(message, exchange)
        except Exception:
            logger.exception("a stdio message failed outside the protocol's error handling")
            return
        if reply is not None:
            try:
                await send(reply)
            except (ConnectionError, RuntimeError):
                logger.debug("stdout is closed: a reply was dropped")

    try:
        while True:
            try:
                line = await readline()
            except ValueError:
                await send(
                    error_response(None, PARSE_ERROR, f"Parse error: a line exceeds {MAX_LINE_BYTES} bytes")
                )
                continue
            if not line:
                break
            if not line.strip():
                continue
            task = asyncio.ensure_future(answer(line))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        peer.cancel_all()
        for task in tasks:
            task.cancel()
        try:
            await service.transport_session_closed(session_id)
        except Exception:
            logger.exception("closing the tool-layer session for the stdio connection failed")


async def _stdin_reader() -> Callable[[], Awaitable[bytes]]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    except (ValueError, OSError):
        # A regular file (e.g. `< requests.jsonl`) is not a pipe: read it on a thread instead.
        stdin = sys.stdin.buffer

        async def read_file_line() -> bytes:
            return await loop.run_in_executor(None, stdin.readline)

        return read_file_line
    return reader.readline


async def _stdout_writer() -> Callable[[bytes], Awaitable[None]]:
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, sys.stdout.buffer
        )
    except (ValueError, OSError):
        stdout = sys.stdout.buffer

        async def write_file(data: bytes) -> None:
            stdout.write(data)
            stdout.flush()

        return write_file
    return _stream_writer(asyncio.StreamWriter(transport, protocol, None, loop))


def _stream_writer(writer: asyncio.StreamWriter) -> Callable[[bytes], Awaitable[None]]:
    async def write(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    return write
