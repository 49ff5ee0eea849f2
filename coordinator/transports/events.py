"""Server-Sent Events framing and the JSON-or-SSE reply that /mcp and /sse share.

A POSTed request is answered as `application/json` when it finishes quickly without emitting a
notification, and switches to `text/event-stream` (with `: ping` keepalive comments) as soon as it
emits progress or runs longer than the keepalive interval, if the client's Accept allows SSE.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from aiohttp import web

from coordinator.protocol import JSON, Notify, error_response

logger = logging.getLogger(__name__)

SSE_HEADERS: Final[Mapping[str, str]] = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache, no-transform",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}
"""`X-Accel-Buffering: no` keeps nginx-style proxies from holding events back."""

PING: Final = b": ping\n\n"
"""An SSE comment: ignored by clients, keeps idle-read timeouts in proxies from closing the stream."""

Reply = JSON | list[JSON] | None

_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> bytes:
    """Compact JSON bytes, UTF-8 kept as is (one shared encoder: no per-call setup)."""
    return _ENCODER.encode(value).encode()


def sse_event(data: bytes | str, event: str = "message") -> bytes:
    """One SSE frame; `data` must be a single line (compact JSON is)."""
    payload = data if isinstance(data, bytes) else data.encode()
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"


@functools.lru_cache(maxsize=64)
def accepts(header: str) -> tuple[bool, bool]:
    """(accepts JSON, accepts SSE) for an Accept header, honouring `*/*`, `application/*` and `text/*`."""
    if not header:
        return True, False  # no Accept header means anything; a plain JSON reply is the safe choice
    kinds = {part.split(";", 1)[0].strip().lower() for part in header.split(",")}
    wildcard = "*/*" in kinds
    return (
        wildcard or "application/json" in kinds or "application/*" in kinds,
        wildcard or "text/event-stream" in kinds or "text/*" in kinds,
    )


def json_reply(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON response from an already JSON-ready value."""
    return web.Response(body=dumps(body), status=status, content_type="application/json", headers=headers)


def error_reply(
    status: int, code: int, message: str, headers: Mapping[str, str] | None = None, request_id: Any = None
) -> web.Response:
    """An HTTP-level rejection with a JSON-RPC-shaped body, so every MCP client can show the reason."""
    return json_reply(error_response(request_id, code, message), status, headers)


def disconnected(request: web.BaseRequest) -> bool:
    """Whether the client has gone away (aiohttp does not cancel handlers on disconnect)."""
    transport = request.transport
    return transport is None or transport.is_closing()


class Ticker:
    """One clock for the keepalive deadlines of many exchanges.

    A `loop.call_later` per request would leave a cancelled TimerHandle in the event loop's heap for
    every quick call (the deadline is seconds away, the call takes microseconds); at thousands of
    calls per second the heap grows to hundreds of thousands of entries and every push pays for it.
    Here a deadline is a dict entry, and one task wakes every `granularity` seconds while any is due.
    Deadlines fire up to `granularity` late, which keepalives tolerate.
    """

    def __init__(self, granularity: float) -> None:
        self.granularity = max(0.001, granularity)
        self._due: dict[int, tuple[float, Callable[[], None]]] = {}
        self._next = 0
        self._task: asyncio.Task[None] | None = None

    def schedule(self, delay: float, callback: Callable[[], None]) -> int:
        """Run `callback` (synchronously, on the loop) about `delay` seconds from now; returns a key."""
        loop = asyncio.get_running_loop()
        key = self._next
        self._next += 1
        self._due[key] = (loop.time() + delay, callback)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return key

    def cancel(self, key: int) -> None:
        """Forget a deadline (a no-op once it has fired)."""
        self._due.pop(key, None)

    async def aclose(self) -> None:
        """Stop the clock; pending deadlines are dropped."""
        self._due.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._due:
            await asyncio.sleep(self.granularity)
            now = loop.time()
            for key, (when, callback) in list(self._due.items()):
                if when <= now and self._due.pop(key, None) is not None:
                    try:
                        callback()
                    except Exception:
                        logger.exception("a keepalive deadline callback failed")


class _Exchange:
    """One deferred reply in flight: uncommitted (JSON still possible) or an SSE stream being written.

    A class with bound methods rather than closures: this runs once per request on the hot path.
    """

    __slots__ = (
        "_lock",
        "abandoned",
        "accept_sse",
        "cancel_on_disconnect",
        "gone",
        "headers",
        "keepalive",
        "pinger",
        "request",
        "response",
        "task",
        "ticker",
        "timer",
    )

    def __init__(
        self,
        request: web.Request,
        task: asyncio.Task[Any],
        *,
        accept_sse: bool,
        keepalive: float,
        cancel_on_disconnect: bool,
        ticker: Ticker,
        headers: Mapping[str, str] | None,
    ) -> None:
        self.request = request
        self.task = task
        self.accept_sse = accept_sse
        self.keepalive = keepalive
        self.cancel_on_disconnect = cancel_on_disconnect
        self.ticker = ticker
        self.headers = headers
        self.response: web.StreamResponse | None = None
        self._lock: asyncio.Lock | None = None  # made on first use: the JSON fast path never needs it
        self.pinger: asyncio.Task[None] | None = None
        self.timer: int | None = None
        self.gone = False
        self.abandoned = False

    async def write(self, frame: bytes) -> None:
        """Commit to SSE if not done yet, then write one frame (whole, never interleaved)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.response is None:
                response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **(self.headers or {})})
                await response.prepare(self.request)
                self.response = response
            await self.response.write(frame)

    async def finish(self) -> None:
        """Close the SSE stream after the last frame."""
        assert self.response is not None
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self.response.write_eof()

    def client_left(self) -> None:
        self.gone = True
        if self.cancel_on_disconnect and not self.abandoned:
            self.abandoned = True
            self.task.cancel()

    async def ping(self) -> None:
        try:
            while True:
                await self.write(PING)
                await asyncio.sleep(self.keepalive)
        except ConnectionError:
            self.client_left()

    def on_deadline(self) -> None:
        """The call outlived the keepalive interval: go SSE and ping, or (JSON only) check the client."""
        self.timer = None
        if self.accept_sse:
            self.pinger = asyncio.get_running_loop().create_task(self.ping())
        elif disconnected(self.request):
            self.client_left()
        else:
            self.timer = self.ticker.schedule(self.keepalive, self.on_deadline)

    async def notify(self, message: JSON) -> None:
        """Send one notification on this request's stream (committing it to SSE)."""
        if self.gone:
            raise ConnectionResetError("the client closed the response stream")
        try:
            await self.write(sse_event(dumps(message)))
        except ConnectionError:
            self.client_left()
            raise

    async def stop_timers(self) -> None:
        if self.timer is not None:
            self.ticker.cancel(self.timer)
            self.timer = None
        if self.pinger is not None:
            self.pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.pinger
            self.pinger = None


async def deferred_reply(
    request: web.Request,
    run: Callable[[Notify | None], Awaitable[Reply]],
    *,
    accept_json: bool,
    accept_sse: bool,
    keepalive: float,
    cancel_on_disconnect: bool,
    status_of: Callable[[Reply], int],
    ticker: Ticker,
    headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """Run `run(notify)` and answer with JSON, or with SSE once it emits or outlives `keepalive`.

    The call runs inline in the request's task (no extra task on the fast path); a `ticker`
    deadline commits the SSE stream and starts `: ping` keepalives when the call is slow.
    `cancel_on_disconnect` is the 2026-07-28 rule (closing the stream cancels the request); the
    handshake era lets the call finish. A None reply (notifications only, or a request the client
    cancelled) is answered 202 on the JSON path and by closing the stream on the SSE path.
    """
    me = asyncio.current_task()
    assert me is not None
    exchange = _Exchange(
        request,
        me,
        accept_sse=accept_sse,
        keepalive=keepalive,
        cancel_on_disconnect=cancel_on_disconnect,
        ticker=ticker,
        headers=headers,
    )
    if accept_json:
        exchange.timer = ticker.schedule(keepalive, exchange.on_deadline)
    else:
        exchange.on_deadline()
    try:
        reply = await run(exchange.notify if accept_sse else None)
    except asyncio.CancelledError:
        if exchange.abandoned and me.uncancel() == 0:
            return web.Response(status=499)
        raise
    except ConnectionError:
        if exchange.gone:
            return web.Response(status=499)
        raise
    finally:
        if exchange.timer is not None or exchange.pinger is not None:
            await exchange.stop_timers()
    if exchange.response is None:
        if reply is None:
            return web.Response(status=202, headers=headers)
        return json_reply(reply, status_of(reply), headers)
    try:
        if reply is not None:
            frames = [sse_event(dumps(item)) for item in (reply if isinstance(reply, list) else [reply])]
            await exchange.write(b"".join(frames))
        await exchange.finish()
    except ConnectionError:
        logger.debug("the client left before the reply was written")
    return exchange.response


async def keepalive_stream(
    request: web.Request,
    closed: asyncio.Event,
    keepalive: float,
    *,
    first: bytes | None = None,
    outbox: asyncio.Queue[bytes] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """A long-lived SSE stream: `first`, then `outbox` frames, with pings, until `closed` or disconnect."""
    response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **(headers or {})})
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):
        if first is not None:
            await response.write(first)
        while not closed.is_set():
            if outbox is None:
                try:
                    async with asyncio.timeout(keepalive):
                        await closed.wait()
                except TimeoutError:
                    await response.write(PING)
                continue
            frame = await _next_frame(outbox, closed, keepalive)
            if frame is not None:
                await response.write(frame)
        with contextlib.suppress(RuntimeError):
            await response.write_eof()
    return response


async def _next_frame(outbox: asyncio.Queue[bytes], closed: asyncio.Event, keepalive: float) -> bytes | None:
    """The next queued frame, PING after `keepalive` seconds without one, or None once `closed` is set."""
    if not outbox.empty():
        return outbox.get_nowait()
    getter = asyncio.ensure_future(outbox.get())
    closer = asyncio.ensure_future(closed.wait())
    try:
        await asyncio.wait({getter, closer}, timeout=keepalive, return_when=asyncio.FIRST_COMPLETED)
    finally:
        closer.cancel()
        if not getter.done():
            getter.cancel()
    if getter.done() and not getter.cancelled():
        return getter.result()
    return None if closed.is_set() else PING
