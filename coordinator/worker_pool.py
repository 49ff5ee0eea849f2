"""The worker pool: endpoints from config or DNS discovery, their health, and least-loaded placement."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field

from coordinator.config import WorkerConfig
from coordinator.logs import get_logger
from coordinator.worker_client import WorkerClient, WorkerError

log = get_logger("coordinator.worker_pool")


@dataclass(slots=True)
class Endpoint:
    """What the pool knows about one worker. Mutable: the health loop updates it in place.

    `sessions` is the worker's own count from /health plus the sessions pinned here since.
    """

    url: str
    healthy: bool = False
    sessions: int = 0
    capacity: int | None = None
    worker_id: str | None = None
    last_error: str | None = None
    checked: bool = field(default=False)


class WorkerPool:
    """Tracks worker endpoints and picks the least-loaded healthy one for each new session.

    Endpoints are the static `urls`, or the addresses `discovery.dns_name` resolves to, re-resolved every
    `refresh_interval`. Every endpoint's /health is polled every `health_interval`.
    """

    def __init__(self, config: WorkerConfig, client: WorkerClient, urls: tuple[str, ...] = ()) -> None:
        self.config = config
        self.client = client
        self.endpoints: dict[str, Endpoint] = {url: Endpoint(url) for url in (urls or config.urls)}
        self._tasks: list[asyncio.Task[None]] = []
        self._check_lock = asyncio.Lock()

    async def start(self) -> None:
        """Resolve, probe every endpoint once, then keep doing both in the background."""
        if self.config.discovery.dns_name:
            await self.resolve()
            self._tasks.append(asyncio.create_task(self._resolve_loop(), name="worker-dns"))
        await self.check_all()
        self._tasks.append(asyncio.create_task(self._health_loop(), name="worker-health"))

    async def aclose(self) -> None:
        """Stop the background loops."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def resolve(self) -> None:
        """Replace the endpoint set with the current DNS answer, keeping known endpoints' state."""
        disc = self.config.discovery
        assert disc.dns_name is not None
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(disc.dns_name, disc.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            log.warning(
                "worker discovery: cannot resolve %s: %s",
                disc.dns_name,
                exc,
                extra={"dns_name": disc.dns_name},
            )
            return
        urls: list[str] = []
        for family, _, _, _, sockaddr in infos:
            host = str(sockaddr[0])
            host = f"[{host}]" if family == socket.AF_INET6 else host
            url = f"{disc.scheme}://{host}:{disc.port}"
            if url not in urls:
                urls.append(url)
        fresh = {url: self.endpoints.get(url) or Endpoint(url) for url in urls}
        if set(fresh) != set(self.endpoints):
            log.info("worker discovery: %d endpoint(s)", len(fresh), extra={"endpoints": sorted(fresh)})
        self.endpoints = fresh

    async def check(self, endpoint: Endpoint) -> None:
        """Probe one endpoint's /health and record the outcome."""
        timeout = max(0.5, min(self.config.connect_timeout + 1.0, self.config.health_interval))
        was = endpoint.healthy if endpoint.checked else None
        try:
            answer = await self.client.health(endpoint.url, timeout)
        except WorkerError as exc:
            endpoint.healthy = False
            endpoint.last_error = exc.message
        else:
            endpoint.healthy = answer.get("status", "ok") == "ok"
            sessions = answer.get("sessions")
            endpoint.sessions = sessions if isinstance(sessions, int) else endpoint.sessions
            capacity = answer.get("capacity")
            endpoint.capacity = capacity if isinstance(capacity, int) else None
            worker_id = answer.get("worker_id")
            endpoint.worker_id = worker_id if isinstance(worker_id, str) else None
            endpoint.last_error = None if endpoint.healthy else f"status {answer.get('status')!r}"
        endpoint.checked = True
        if was is not endpoint.healthy:
            level = 20 if endpoint.healthy else 30
            log.log(
                level,
                "worker %s is %s",
                endpoint.url,
                "healthy" if endpoint.healthy else "unhealthy",
                extra={"worker_url": endpoint.url, "reason": endpoint.last_error},
            )

    async def check_all(self) -> None:
        """Probe every endpoint concurrently."""
        async with self._check_lock:
            await asyncio.gather(*(self.check(ep) for ep in list(self.endpoints.values())))

    def healthy(self) -> list[Endpoint]:
        """Endpoints whose last probe succeeded."""
        return [ep for ep in self.endpoints.values() if ep.healthy]

    def pick(self, exclude: frozenset[str] = frozenset()) -> Endpoint | None:
        """The least-loaded healthy endpoint (fewest sessions, then lowest fill ratio), or None."""
        best: Endpoint | None = None
        for ep in self.endpoints.values():
            if not ep.healthy or ep.url in exclude:
                continue
            if ep.capacity is not None and ep.sessions >= ep.capacity:
                continue
            if best is None or ep.sessions < best.sessions:
                best = ep
        return best

    def capacity_note(self) -> str | None:
        """When healthy workers exist but every one is full: their fill, in words; else None."""
        healthy = self.healthy()
        if not healthy or any(ep.capacity is None or ep.sessions < ep.capacity for ep in healthy):
            return None
        fill = ", ".join(f"{ep.url} holds {ep.sessions} of {ep.capacity}" for ep in healthy)
        return f"every healthy worker is at its session capacity: {fill}"

    def pinned(self, url: str) -> None:
        """A session was just created on `url`."""
        ep = self.endpoints.get(url)
        if ep is not None:
            ep.sessions += 1

    def released(self, url: str) -> None:
        """A session on `url` was closed."""
        ep = self.endpoints.get(url)
        if ep is not None and ep.sessions > 0:
            ep.sessions -= 1

    def mark_unhealthy(self, url: str, reason: str) -> None:
        """A call to `url` could not connect: skip it until the next successful probe."""
        ep = self.endpoints.get(url)
        if ep is not None and ep.healthy:
            ep.healthy = False
            ep.last_error = reason
            log.warning("worker %s is unhealthy", url, extra={"worker_url": url, "reason": reason})

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_interval)
            try:
                await self.check_all()
            except Exception:  # pragma: no cover - a probe bug must not stop probing
                log.exception("worker health check failed")

    async def _resolve_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.discovery.refresh_interval)
            try:
                await self.resolve()
                await self.check_all()
            except Exception:  # pragma: no cover
                log.exception("worker discovery failed")
