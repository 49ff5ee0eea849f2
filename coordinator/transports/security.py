"""HTTP checks in front of the MCP endpoints (/mcp, /sse, /messages): Origin, Host, bearer token, body size.

Health, readiness, metrics and debug routes pass through untouched: they have their own rules.
Rejections carry a JSON-RPC-shaped body so MCP clients can show the reason:

- a browser Origin that is neither loopback nor allowed -> 403 (DNS-rebinding and CSRF defence);
- a Host (or trusted `X-Forwarded-Host`) outside `allowed_hosts` -> 421;
- a missing or wrong bearer token while auth is on -> 401 with `WWW-Authenticate`;
- a body over `max_body_bytes` -> 413, from Content-Length up front or while the body is read.

The token's name is left on the request under `CALLER_KEY` for the transports.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware
from mcp_types.jsonrpc import INVALID_REQUEST

from coordinator.calls import TransportSettings
from coordinator.transports.events import error_reply

CALLER_KEY: Final = web.RequestKey("codegen_mcp_caller", str)
"""The authenticated caller's name (the token file's key); absent when auth is off."""

PROTECTED_PATHS: Final = frozenset({"/mcp", "/sse", "/messages", "/messages/"})
REALM_HEADER: Final = 'Bearer realm="codegen-mcp"'
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.", "ip6-localhost"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback_host(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1 (brackets and a port may be present)."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def origin_allowed(origin: str, allowed: tuple[str, ...]) -> bool:
    """Loopback origins always pass; otherwise `*` or an exact `scheme://host[:port]` entry."""
    if "*" in allowed:
        return True
    parts = urlsplit(origin.strip())
    if parts.scheme in ("http", "https") and parts.hostname and is_loopback_host(parts.hostname):
        return True
    wanted = origin.strip().rstrip("/").lower()
    return any(entry.strip().rstrip("/").lower() == wanted for entry in allowed)


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """An empty list disables the check; loopback always passes; entries match `host` or `host:port`."""
    if not allowed or "*" in allowed:
        return True
    if is_loopback_host(host):
        return True
    value = host.strip().lower()
    bare = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    return any(entry.strip().lower() in (value, bare) for entry in allowed)


def authenticate(header: str | None, tokens: dict[str, bytes]) -> str | None:
    """The caller whose token the `Authorization: Bearer` header carries, or None.

    Compares against every token with `hmac.compare_digest`, without stopping at a match, so the
    time taken does not depend on which token (if any) matched.
    """
    if header is None:
        return None
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    given = presented.strip().encode()
    found: str | None = None
    for name, token in tokens.items():
        if hmac.compare_digest(given, token):
            found = name
    return found


def security_middleware(settings: TransportSettings) -> Middleware:
    """The aiohttp middleware enforcing `settings` on the MCP endpoints only."""
    tokens = (
        {name: token.encode() for name, token in settings.auth_tokens.items()}
        if settings.auth_tokens is not None
        else None
    )
    limit = settings.max_body_bytes

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in PROTECTED_PATHS:
            return await handler(request)
        origin = request.headers.get("Origin")
        if origin is not None and not origin_allowed(origin, settings.allowed_origins):
            return error_reply(
                403,
                INVALID_REQUEST,
                f"Forbidden: Origin {origin!r} is not allowed; add it to the coordinator's allowed origins",
            )
        host = request.headers.get("Host", "")
        if settings.trust_forwarded_host and (forwarded := request.headers.get("X-Forwarded-Host")):
            host = forwarded.split(",", 1)[0].strip()
        if not host_allowed(host, settings.allowed_hosts):
            return error_reply(
                421,
                INVALID_REQUEST,
                f"Misdirected request: Host {host!r} is not served here; add it to the allowed hosts",
            )
        caller: str | None = None
        if tokens is not None:
            auth = request.headers.get("Authorization")
            caller = authenticate(auth, tokens)
            if caller is None:
                challenge = REALM_HEADER if auth is None else f'{REALM_HEADER}, error="invalid_token"'
                reason = "missing" if auth is None else "not a valid token"
                return error_reply(
                    401,
                    INVALID_REQUEST,
                    f"Unauthorized: the bearer token is {reason}; send `Authorization: Bearer <token>`",
                    headers={"WWW-Authenticate": challenge},
                )
        length = request.content_length
        if length is not None and length > limit:
            return _too_large(limit)
        if request.client_max_size != limit:
            request = request.clone(client_max_size=limit)
        if caller is not None:
            request[CALLER_KEY] = caller
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return _too_large(limit)

    return middleware


def _too_large(limit: int) -> web.Response:
    return error_reply(
        413,
        INVALID_REQUEST,
        f"Payload too large: the body exceeds {limit} bytes (limits.max_body_bytes); send smaller requests, "
        "e.g. write a large file in parts with fs.write and append: true",
    )
