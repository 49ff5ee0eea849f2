"""HTTP client of the worker API (docs/worker-api.md): timeouts, safe retries, and typed errors."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from coordinator.config import WorkerConfig
from coordinator.logs import get_logger
from coordinator.tracing import make_traceparent

log = get_logger("coordinator.worker_client")

_JSON_HEADERS = {"Content-Type": "application/json"}
_NOT_RETRIED_CODES = frozenset({"timeout", "capacity_exhausted"})


class WorkerError(Exception):
    """A worker call that did not produce a result.

    `kind` is `connect` (no connection; nothing was sent), `disconnected` (the connection broke after
    the request may have been sent), `timeout` (worker.timeout fired), `http` (the worker answered an
    error; `code` is its stable error code) or `protocol` (an answer that is not the API's JSON).
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        url: str,
        code: str | None = None,
        status: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.url = url
        self.code = code
        self.status = status
        self.details: Mapping[str, Any] = details or {}

    @property
    def metric_kind(self) -> str:
        """The `kind` label of coordinator_worker_errors_total."""
        if self.kind == "http":
            return "http_5xx" if (self.status or 0) >= 500 else "http_4xx"
        return self.kind


class WorkerClient:
    """One pooled aiohttp ClientSession for every worker.

    Retries (up to `max_retries`, exponential backoff with jitter) happen only when they cannot repeat
    work: a connection that was never established, or, for calls marked `idempotent`, a broken
    connection or a 5xx answer. A timeout is never retried: the worker may still be running the call.
    """

    def __init__(self, config: WorkerConfig, on_error: Callable[[WorkerError], None] | None = None) -> None:
        self.config = config
        self._on_error = on_error
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=config.timeout, sock_connect=config.connect_timeout)

    async def start(self) -> None:
        """Open the connection pool."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=30)
            # No cookies between services: the dummy jar also skips per-request cookie filtering.
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar()
            )

    async def aclose(self) -> None:
        """Close the pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pooled session; `start()` must have run."""
        if self._session is None:
            raise RuntimeError("WorkerClient.start() was not awaited")
        return self._session

    def _backoff(self, attempt: int) -> float:
        base: float = self.config.retry_backoff * (2**attempt)
        return base / 2 + random.uniform(0, base / 2)  # noqa: S311 - jitter, not security

    def _fail(self, err: WorkerError) -> WorkerError:
        if self._on_error is not None:
            self._on_error(err)
        return err

    async def call(
        self,
        base_url: str,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        idempotent: bool,
        trace_id: str | None = None,
        call_timeout: float | None = None,
    ) -> dict[str, Any]:
        """Call the worker at `base_url` and return its JSON answer; raise WorkerError otherwise.

        `call_timeout` (seconds) replaces worker.timeout for this call.
        """
        url = base_url + path
        headers = dict(_JSON_HEADERS)
        if trace_id:
            headers["traceparent"] = make_traceparent(trace_id)
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        req_timeout = (
            self._timeout
            if call_timeout is None
            else aiohttp.ClientTimeout(total=call_timeout, sock_connect=self.config.connect_timeout)
        )
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                async with self.session.request(
                    method, url, data=data, headers=headers, timeout=req_timeout
                ) as resp:
                    raw = await resp.read()
                    status = resp.status
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                err = WorkerError(
                    "connect", f"cannot connect to the worker at {base_url}: {_reason(exc)}", url=base_url
                )
                if last:
                    raise self._fail(err) from exc
                log.debug("worker connect failed; retrying", extra={"url": url, "attempt": attempt + 1})
                await asyncio.sleep(self._backoff(attempt))
                continue
            except TimeoutError as exc:
                limit = call_timeout if call_timeout is not None else self.config.timeout
                raise self._fail(
                    WorkerError(
                        "timeout",
                        f"the worker at {base_url} did not answer within {limit:g}s (worker.timeout)",
                        url=base_url,
                    )
                ) from exc
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                err = WorkerError(
                    "disconnected",
                    f"the connection to the worker at {base_url} broke: {_reason(exc)}",
                    url=base_url,
                )
                if idempotent and not last:
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                raise self._fail(err) from exc
            try:
                answer = json.loads(raw) if raw else {}
            except ValueError as exc:
                raise self._fail(
                    WorkerError(
                        "protocol",
                        f"the worker at {base_url} answered {status} without JSON",
                        url=base_url,
                        status=status,
                    )
                ) from exc
            if status < 400:
                if not isinstance(answer, dict):
                    raise self._fail(
                        WorkerError(
                            "protocol", f"the worker at {base_url} answered a non-object", url=base_url
                        )
                    )
                return answer
            error = answer.get("error") if isinstance(answer, dict) else None
            error = error if isinstance(error, dict) else {}
            code = error.get("code") if isinstance(error.get("code"), str) else None
            message = error.get("message") if isinstance(error.get("message"), str) else f"HTTP {status}"
            details = error.get("details") if isinstance(error.get("details"), dict) else None
            err = WorkerError("http", str(message), url=base_url, code=code, status=status, details=details)
            if status >= 500 and idempotent and not last and code not in _NOT_RETRIED_CODES:
                self._fail(err)
                log.debug("worker answered %s; retrying an idempotent call", status, extra={"url": url})
                await asyncio.sleep(self._backoff(attempt))
                continue
            # A `timeout` answer is the user's program (or pip) running past its own limit: the worker
            # did its job, so it is not counted in coordinator_worker_errors_total.
            raise self._fail(err) if status >= 500 and code != "timeout" else err
        raise AssertionError("unreachable")  # pragma: no cover

    async def health(self, base_url: str, probe_timeout: float) -> dict[str, Any]:
        """GET /health once (no retries); raise WorkerError unless the worker answers 200 with JSON."""
        try:
            async with self.session.get(
                base_url + "/health", timeout=aiohttp.ClientTimeout(total=probe_timeout)
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError as exc:
            message = f"{base_url}/health timed out after {probe_timeout:g}s"
            raise WorkerError("timeout", message, url=base_url) from exc
        except aiohttp.ClientError as exc:
            message = f"cannot reach {base_url}/health: {_reason(exc)}"
            raise WorkerError("connect", message, url=base_url) from exc
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            message = f"{base_url}/health answered {status} without JSON"
            raise WorkerError("protocol", message, url=base_url) from exc
        if status != 200 or not isinstance(answer, dict):
            state = answer.get("status") if isinstance(answer, dict) else None
            raise WorkerError(
                "http",
                f"{base_url}/health answered {status} ({state or 'unhealthy'})",
                url=base_url,
                status=status,
            )
        return answer


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error.strerror or str(exc.os_error) or type(exc).__name__
    return str(exc) or type(exc).__name__
