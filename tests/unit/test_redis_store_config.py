"""RedisSessionStore without a server: URL redaction, password sources and configuration errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from coordinator.redis_store import RedisConfigError, RedisSessionStore, redact_url


@dataclass(frozen=True, slots=True)
class Settings:
    url: str = "redis://127.0.0.1:1/0"
    password_file: str | None = None
    key_prefix: str = "codegen-mcp:"
    connect_timeout: float = 0.5
    operation_timeout: float = 0.5


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@redis:6379/0", "redis://:***@redis:6379/0"),
        ("rediss://user:pw@redis.example:6380/1", "rediss://user:***@redis.example:6380/1"),
        ("redis://user@redis:6379", "redis://user@redis:6379"),
        ("unix:///run/redis.sock?db=2&password=pw", "unix:///run/redis.sock?db=2&password=***"),
    ],
)
def test_redacted_url_never_shows_the_password(url: str, shown: str) -> None:
    """redact_url keeps scheme, user, host and path but hides a password in userinfo or the query."""
    assert redact_url(url) == shown


async def test_construction_does_not_connect() -> None:
    """Building the store against an unreachable address succeeds; failures come from calls, not startup."""
    store = RedisSessionStore(Settings(), 60.0, env={})
    assert store.url == "redis://127.0.0.1:1/0"
    await store.aclose()


def test_unreadable_password_file_names_the_key_and_the_fix(tmp_path: Path) -> None:
    """A password_file that cannot be read is a config error naming the key and REDIS_PASSWORD."""
    missing = tmp_path / "nope"
    expected = r"session\.redis\.password_file: cannot read .*REDIS_PASSWORD"
    with pytest.raises(RedisConfigError, match=expected):
        RedisSessionStore(Settings(password_file=str(missing)), 60.0, env={})


async def test_redis_password_env_wins_over_an_unreadable_file(tmp_path: Path) -> None:
    """With REDIS_PASSWORD set, password_file is not even read."""
    settings = Settings(password_file=str(tmp_path / "nope"))
    store = RedisSessionStore(settings, 60.0, env={"REDIS_PASSWORD": "x"})
    await store.aclose()


def test_non_positive_max_age_is_refused() -> None:
    """max_age must be positive: the store's expiry order and key TTL are derived from it."""
    with pytest.raises(RedisConfigError, match="max_age must be positive"):
        RedisSessionStore(Settings(), 0.0, env={})


def test_unknown_url_scheme_is_a_config_error() -> None:
    """A URL redis-py cannot parse is reported against session.redis.url."""
    with pytest.raises(RedisConfigError, match=r"session\.redis\.url"):
        RedisSessionStore(Settings(url="http://127.0.0.1:6379"), 60.0, env={})
