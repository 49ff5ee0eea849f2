"""The security middleware in front of /mcp, /sse and /messages: Origin, Host, bearer tokens, body size."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from mcp_fixtures import ServerProcess, modern_call, modern_headers, running_protocol_server

TOKENS = {"ci-bot": "0123456789abcdef0123", "alice": "fedcba9876543210fedc"}


@pytest.fixture(scope="module")
def strict() -> Iterator[ServerProcess]:
    settings = {
        "auth_tokens": TOKENS,
        "allowed_origins": ["https://app.example.com"],
        "allowed_hosts": ["mcp.example.com"],
        "trust_forwarded_host": True,
        "max_body_bytes": 2048,
        "keepalive_interval": 0.05,
    }
    with running_protocol_server(settings) as proc:
        yield proc


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def authed(token: str = TOKENS["alice"], **extra: str) -> dict[str, str]:
    return modern_headers(name="stamp", Authorization=f"Bearer {token}", **extra)


async def test_missing_token_is_401_with_a_bearer_challenge(strict: ServerProcess, http: aiohttp.ClientSession) -> None:
    """Without Authorization the endpoint answers 401 and names the realm."""
    async with http.post(strict.mcp_url, json=modern_call("stamp", {}), headers=modern_headers(name="stamp")) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="codegen-mcp"'
        assert "bearer token" in (await resp.json())["error"]["message"]


async def test_wrong_token_is_401_invalid_token(strict: ServerProcess, http: aiohttp.ClientSession) -> None:
    """A token that matches no caller is refused, with error="invalid_token" in the challenge."""
    async with http.post(strict.mcp_url, json=modern_call("stamp", {}), headers=authed("x" * 20)) as resp:
        assert resp.status == 401
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


async def test_valid_token_reaches_the_tool_as_the_callers_name(
    strict: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """The token's name travels to the tool layer as `caller`; the token itself never does."""
    async with http.post(strict.mcp_url, json=modern_call("stamp", {}), headers=authed()) as resp:
        assert resp.status == 200
        seen = (await resp.json())["result"]["structuredContent"]
    assert seen["caller"] == "alice"


async def test_sse_stream_needs_the_token_too(strict: ServerProcess, http: aiohttp.ClientSession) -> None:
    """/sse and /messages are protected like /mcp."""
    async with http.get(f"{strict.url}/sse") as resp:
        assert resp.status == 401
    async with http.post(f"{strict.url}/messages?session_id=x", json={}) as resp:
        assert resp.status == 401


async def test_foreign_origin_is_403_and_loopback_or_listed_origins_pass(
    strict: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """A browser Origin outside the allow-list is refused; loopback and listed origins are served."""
    call = modern_call("stamp", {})
    async with http.post(strict.mcp_url, json=call, headers=authed(Origin="https://evil.example")) as resp:
        assert resp.status == 403
        assert "evil.example" in (await resp.json())["error"]["message"]
    for origin in ("http://localhost:3000", "http://127.0.0.1:6274", "https://app.example.com"):
        async with http.post(strict.mcp_url, json=call, headers=authed(Origin=origin)) as resp:
            assert resp.status == 200, origin


async def test_unlisted_host_is_421_unless_a_trusted_forwarded_host_is_listed(
    strict: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """Host must be loopback or listed; X-Forwarded-Host counts when trust_forwarded_host is on."""
    call = modern_call("stamp", {})
    async with http.post(strict.mcp_url, json=call, headers=authed(Host="attacker.example")) as resp:
        assert resp.status == 421
    headers = authed(Host="10.0.0.5:8080", **{"X-Forwarded-Host": "mcp.example.com"})
    async with http.post(strict.mcp_url, json=call, headers=headers) as resp:
        assert resp.status == 200


async def test_oversize_body_is_413_by_content_length_and_while_streaming(
    strict: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """A body over max_body_bytes is refused up front, and also when sent chunked without a length."""
    big = modern_call("echo", {"text": "x" * 5000})
    async with http.post(strict.mcp_url, json=big, headers=authed()) as resp:
        assert resp.status == 413
        assert "2048" in (await resp.json())["error"]["message"]

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    headers = {**authed(), "Content-Type": "application/json"}
    async with http.post(strict.mcp_url, data=chunks(), headers=headers) as resp:
        assert resp.status == 413


async def test_health_style_routes_are_outside_the_middleware(
    strict: ServerProcess, http: aiohttp.ClientSession
) -> None:
    """Only MCP paths are guarded: other paths reach routing (here a plain 404) without a token."""
    async with http.get(f"{strict.url}/healthz") as resp:
        assert resp.status == 404
