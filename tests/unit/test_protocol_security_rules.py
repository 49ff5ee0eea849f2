"""The rules behind the security middleware: loopback detection, Origin and Host lists, token matching."""

from __future__ import annotations

import pytest

from coordinator.transports.security import authenticate, host_allowed, is_loopback_host, origin_allowed


@pytest.mark.parametrize(
    "host", ["localhost", "127.0.0.1", "127.0.0.1:8080", "[::1]:8080", "::1", "app.localhost"]
)
def test_loopback_hosts_are_recognised(host: str) -> None:
    """Names and addresses that can only mean this machine count as loopback."""
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["example.com", "10.0.0.1", "localhost.evil.com", "[2001:db8::1]"])
def test_other_hosts_are_not_loopback(host: str) -> None:
    """Look-alike names and routable addresses are not loopback."""
    assert not is_loopback_host(host)


def test_origins_pass_when_loopback_listed_or_wildcarded() -> None:
    """Loopback always; listed origins exactly (case and trailing slash aside); `*` for all."""
    assert origin_allowed("http://localhost:6274", ())
    assert origin_allowed("https://App.Example.com/", ("https://app.example.com",))
    assert not origin_allowed("https://app.example.com.evil.io", ("https://app.example.com",))
    assert not origin_allowed("null", ())
    assert origin_allowed("https://anything.example", ("*",))


def test_hosts_pass_when_the_list_is_empty_loopback_or_listed() -> None:
    """An empty list disables the check; entries match with or without a port."""
    assert host_allowed("anything.example", ())
    assert host_allowed("127.0.0.1:9", ("mcp.example.com",))
    assert host_allowed("mcp.example.com:443", ("mcp.example.com",))
    assert not host_allowed("other.example.com", ("mcp.example.com",))


def test_bearer_tokens_map_back_to_their_callers() -> None:
    """Only `Bearer <exact token>` authenticates, and it yields the caller's name."""
    tokens = {"alice": b"a" * 20, "bob": b"b" * 20}
    assert authenticate("Bearer " + "b" * 20, tokens) == "bob"
    assert authenticate("bearer " + "a" * 20, tokens) == "alice"
    assert authenticate("Basic " + "a" * 20, tokens) is None
    assert authenticate("Bearer " + "a" * 19, tokens) is None
    assert authenticate(None, tokens) is None
