"""Prometheus metrics of the coordinator, built against an injected CollectorRegistry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.aiohttp import make_aiohttp_handler

DURATION_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
"""Seconds: from an in-process echo (sub-millisecond) to a long pkg.install."""


class Metrics:
    """The five seed metrics plus process, platform and GC collectors, all in one registry.

    `outcome` is `success`, `error` (the tool answered isError), `timeout` (a worker or tool timeout),
    `rejected` (shutting down) or `cancelled` (the client went away). Labelled children are cached
    so a call costs two dict lookups.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.sessions_active = Gauge(
            "coordinator_sessions_active",
            "Open coordinator sessions (across replicas with a shared store).",
            registry=self.registry,
        )
        self.sessions_created = Counter(
            "coordinator_sessions_created", "Sessions opened by this process.", registry=self.registry
        )
        self.tool_calls = Counter(
            "coordinator_tool_calls",
            "Tool calls by tool and outcome.",
            ["tool", "outcome"],
            registry=self.registry,
        )
        self.tool_duration = Histogram(
            "coordinator_tool_duration_seconds",
            "Tool call duration in seconds.",
            ["tool"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.worker_errors = Counter(
            "coordinator_worker_errors",
            "Failed worker calls by kind (connect, timeout, http_5xx, session_lost, protocol).",
            ["kind"],
            registry=self.registry,
        )
        self._calls: dict[tuple[str, str], Counter] = {}
        self._durations: dict[str, Histogram] = {}

    def observe_call(self, tool: str, outcome: str, seconds: float) -> None:
        """Count one finished tool call and record its duration."""
        key = (tool, outcome)
        counter = self._calls.get(key)
        if counter is None:
            counter = self._calls[key] = self.tool_calls.labels(tool, outcome)
        counter.inc()
        hist = self._durations.get(tool)
        if hist is None:
            hist = self._durations[tool] = self.tool_duration.labels(tool)
        hist.observe(seconds)

    def worker_error(self, kind: str) -> None:
        """Count one failed worker call."""
        self.worker_errors.labels(kind).inc()

    def handler(
        self, refresh: Callable[[], Awaitable[None]] | None = None
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """The `/metrics` handler; `refresh` runs first (e.g. reading the session count from the store)."""
        inner = make_aiohttp_handler(self.registry)

        async def metrics(request: web.Request) -> web.StreamResponse:
            if refresh is not None:
                await refresh()
            return await inner(request)

        return metrics
