"""Probes and debug pages: `/healthz` (liveness), `/ready` (readiness with reasons), `/debug/sessions`."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from coordinator.app import Runtime

STORE_PING_TIMEOUT = 2.0
"""Seconds /ready waits for the session store's ping."""


PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
"""Headers a reverse proxy adds; their presence means the loopback peer relays another caller."""


def is_loopback(remote: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback peers."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


async def readiness(runtime: Runtime) -> tuple[list[str], dict[str, str]]:
    """Why this process should not get traffic now: short reason codes, and a sentence for each."""
    reasons: list[str] = []
    details: dict[str, str] = {}
    if runtime.draining:
        reasons.append("draining")
        details["draining"] = "shutting down: finishing in-flight calls"
    if not runtime.started:
        reasons.append("starting")
        details["starting"] = "workers and the session store are being connected"
        return reasons, details
    try:
        async with asyncio.timeout(STORE_PING_TIMEOUT):
            await runtime.store.ping()
    except Exception as exc:
        reasons.append("session_store_unreachable")
        details["session_store_unreachable"] = f"session store ({runtime.config.session.store}): {exc}"
    if not runtime.pool.healthy():
        reasons.append("no_healthy_worker")
        known = [f"{ep.url}: {ep.last_error or 'not checked yet'}" for ep in runtime.pool.endpoints.values()]
        details["no_healthy_worker"] = (
            "; ".join(known) or "no worker endpoint is known (check worker.discovery)"
        )
    return reasons, details


def add_routes(app: web.Application, runtime: Runtime) -> None:
    """Register the probe and debug handlers on `app`."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(request: web.Request) -> web.Response:
        reasons, details = await readiness(runtime)
        if reasons:
            return web.json_response({"ready": False, "reasons": reasons, "details": details}, status=503)
        return web.json_response({"ready": True})

    async def debug_sessions(request: web.Request) -> web.Response:
        mode = runtime.config.security.debug_endpoints
        # A loopback peer that forwards (a local nginx/Caddy in front) may be relaying anyone: the session
        # ids listed here are bearer handles, so proxied requests are not "loopback callers".
        proxied = any(h in request.headers for h in PROXY_HEADERS)
        if mode == "disabled" or (mode == "loopback" and (proxied or not is_loopback(request.remote))):
            return web.json_response(
                {
                    "error": "forbidden",
                    "message": "/debug/sessions answers loopback callers only, not requests relayed by a "
                    "proxy (set security.debug_endpoints: open to change that)"
                    if mode == "loopback"
                    else "/debug/sessions is disabled (security.debug_endpoints: disabled)",
                },
                status=403,
            )
        raw_limit = request.query.get("limit", "1000")
        limit = min(max(int(raw_limit), 1), 10000) if raw_limit.isdigit() else 1000
        now = time.time()
        records = await runtime.store.list(limit)
        sessions: list[dict[str, Any]] = [
            {
                "session_id": r.session_id,
                "worker_url": r.worker_url,
                "created_at": r.created_at,
                "idle_seconds": round(now - r.last_used, 3),
                "owner": r.owner,
                "implicit": r.transport_key is not None,
            }
            for r in records
        ]
        workers = [
            {
                "url": ep.url,
                "healthy": ep.healthy,
                "sessions": ep.sessions,
                "capacity": ep.capacity,
                "worker_id": ep.worker_id,
                "last_error": ep.last_error,
            }
            for ep in runtime.pool.endpoints.values()
        ]
        return web.json_response(
            {
                "count": await runtime.store.count(),
                "sessions": sessions,
                "workers": workers,
                "inflight_calls": runtime.tools.inflight,
                "running_tasks": runtime.tasks.running(),
                "draining": runtime.draining,
            }
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/ready", ready)
    app.router.add_get("/debug/sessions", debug_sessions)
