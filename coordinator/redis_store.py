"""`RedisSessionStore`: coordinator sessions shared by every replica through one Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from coordinator import redis_scripts as scripts
from coordinator.logs import get_logger
from coordinator.session_store import SessionRecord, StoreUnavailable, TransportEvent

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.exceptions import AuthenticationError, RedisError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "session.store: redis needs the redis client; install the extra: pip install 'codegen-mcp[redis]'"
    ) from exc

T = TypeVar("T")
log = get_logger("coordinator.redis_store")

_USERINFO_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:@/?#]*):[^@/?#]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


class RedisSettings(Protocol):
    """The `session.redis` config section as this store reads it; durations are in seconds.

    `coordinator.config.RedisConfig` fits; its optional `password` attribute (already resolved from
    $REDIS_PASSWORD or the file) is used when present.
    """

    @property
    def url(self) -> str: ...

    @property
    def password_file(self) -> str | None: ...

    @property
    def key_prefix(self) -> str: ...

    @property
    def connect_timeout(self) -> float: ...

    @property
    def operation_timeout(self) -> float: ...


class RedisConfigError(ValueError):
    """The `session.redis` settings cannot be used as given (for example an unreadable password file)."""


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***`, safe for logs and error messages."""
    url = _USERINFO_PASSWORD.sub(r"\1:***@", url, count=1)
    return _QUERY_PASSWORD.sub(r"\1***", url)


def _read_password(settings: RedisSettings, env: Mapping[str, str]) -> str | None:
    from_env = env.get("REDIS_PASSWORD")
    if from_env:
        return from_env
    resolved = getattr(settings, "password", None)  # coordinator.config.RedisConfig resolves it already
    if isinstance(resolved, str) and resolved:
        return resolved
    path = settings.password_file
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip("\r\n")
    except OSError as exc:
        raise RedisConfigError(
            f"session.redis.password_file: cannot read {path!r} ({exc.strerror or exc}); "
            "mount the Redis password there, or set REDIS_PASSWORD"
        ) from exc


def _detail(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).rstrip(".")


def _record(session_id: str, fields: list[Any]) -> SessionRecord:
    values = {str(fields[i]): str(fields[i + 1]) for i in range(0, len(fields) - 1, 2)}
    return SessionRecord(
        session_id=session_id,
        worker_url=values.get("worker_url", ""),
        created_at=float(values.get("created_at", "0")),
        last_used=float(values.get("last_used", "0")),
        owner=values.get("owner"),
        transport_key=values.get("transport_key"),
    )


def _pairs(flat: list[Any]) -> list[SessionRecord]:
    return [_record(str(flat[i]), list(flat[i + 1])) for i in range(0, len(flat) - 1, 2)]


class RedisSessionStore:
    """The `SessionStore` on Redis, for several coordinator replicas.

    Layout under `key_prefix` (`p`): a hash `p session:<id>` per record, with a sliding key TTL of
    `max_age` plus a grace period (a safety net should every coordinator disappear); a sorted set
    `p expiry` of ids scored by `last_used`, which decides expiry exactly; `p transport:<key>`
    pointing at the implicit session of a transport session; and, for handshake-era `Mcp-Session-Id`s,
    a hash `p mcp:<id>` with its own sliding TTL plus the pub/sub channel `p mcp-deleted`. Every method
    is one Lua script or one command, so it is atomic with respect to other replicas, and
    `claim_expired` hands each expired session to exactly one caller.

    `ttl_grace` (seconds, default max(60, max_age / 2)) is how long past max_age the key TTL runs; keep
    it above `session.cleanup_interval` so the expiry loop, not Redis, retires records. Each replica
    holds up to `max_connections` connections; callers beyond that wait for one, within the timeout.

    Limits: a call whose connection drops after Redis ran it is not retried, so an expiry claim lost
    that way leaves its workspace behind (never deletes it twice). Clocks of replicas are trusted to
    agree to well under `max_age`. Redis Cluster needs a hash-tagged prefix such as `{codegen-mcp}:`.
    """

    shared = True

    def __init__(
        self,
        config: RedisSettings,
        max_age: float,
        *,
        env: Mapping[str, str] | None = None,
        ttl_grace: float | None = None,
        max_connections: int = 64,
    ) -> None:
        if max_age <= 0:
            raise RedisConfigError(f"session.max_age must be positive for the Redis store, got {max_age!r}")
        self._prefix = config.key_prefix
        self._max_age = float(max_age)
        grace = ttl_grace if ttl_grace is not None else max(60.0, self._max_age / 2)
        self._ttl_ms = max(1, round((self._max_age + grace) * 1000))
        self._url_for_humans = redact_url(config.url)
        self._op_timeout = float(config.operation_timeout)
        self._connect_timeout = float(config.connect_timeout)
        password = _read_password(config, os.environ if env is None else env)
        extra: dict[str, Any] = {}
        if password is not None:
            extra["password"] = password
        try:
            # A blocking pool: a burst of concurrent calls waits (up to the operation timeout) for one of
            # `max_connections` connections instead of failing with "Too many connections".
            pool = aioredis.BlockingConnectionPool.from_url(
                config.url,
                max_connections=max_connections,
                timeout=self._op_timeout,
                decode_responses=True,
                socket_connect_timeout=self._connect_timeout,
                socket_timeout=self._op_timeout,
                # One quick retry on a dropped connection (for example the first call after a Redis
                # restart finds a stale pooled socket); timeouts are never retried.
                retry=Retry(
                    ExponentialWithJitterBackoff(base=0.01, cap=0.1),
                    retries=1,
                    supported_errors=(RedisConnectionError,),
                ),
                client_name="codegen-mcp-coordinator",
                **extra,
            )
            self._redis: Any = aioredis.Redis.from_pool(pool)
        except ValueError as exc:
            raise RedisConfigError(
                f"session.redis.url: {self._url_for_humans!r} is not usable: {exc}"
            ) from exc
        r = self._redis
        self._create = r.register_script(scripts.CREATE)
        self._touch = r.register_script(scripts.TOUCH)
        self._repin = r.register_script(scripts.REPIN)
        self._delete = r.register_script(scripts.DELETE)
        self._claim = r.register_script(scripts.CLAIM)
        self._find = r.register_script(scripts.FIND_BY_TRANSPORT)
        self._list = r.register_script(scripts.LIST)
        self._save_transport = r.register_script(scripts.SAVE_TRANSPORT)
        self._load_transport = r.register_script(scripts.LOAD_TRANSPORT)
        self._delete_transport = r.register_script(scripts.DELETE_TRANSPORT)
        self._transport_channel = f"{self._prefix}mcp-deleted"

    @property
    def url(self) -> str:
        """The Redis URL with its password redacted."""
        return self._url_for_humans

    async def _call(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        budget = self._connect_timeout + self._op_timeout
        where = f"Redis at {self._url_for_humans}"
        try:
            async with asyncio.timeout(budget):
                return await op()
        except TimeoutError as exc:
            raise StoreUnavailable(f"{where} did not answer ({what}) within {budget:g}s") from exc
        except RedisTimeoutError as exc:
            raise StoreUnavailable(f"{where} did not answer ({what}) within {self._op_timeout:g}s") from exc
        except AuthenticationError as exc:
            raise StoreUnavailable(
                f"{where} refused our credentials ({what}: {exc}); check REDIS_PASSWORD or "
                "session.redis.password_file"
            ) from exc
        except (RedisConnectionError, OSError) as exc:
            raise StoreUnavailable(f"{where} is unreachable ({what}: {_detail(exc)})") from exc
        except RedisError as exc:
            raise StoreUnavailable(f"{where} refused {what}: {_detail(exc)}") from exc

    async def create(self, record: SessionRecord) -> SessionRecord | None:
        """Store a new record; the TTL (max_age) starts now. Returns None, or, when the record's
        transport key already maps to a live session (another replica was first), that session,
        storing nothing."""
        args: list[str | int] = [
            self._prefix,
            record.session_id,
            self._ttl_ms,
            record.worker_url,
            repr(float(record.created_at)),
            repr(float(record.last_used)),
            record.owner or "",
            record.transport_key or "",
            repr(self._max_age),
        ]
        created = await self._call("session create", lambda: self._create(keys=[], args=args))
        if isinstance(created, list):
            return _record(str(created[0]), list(created[1]))
        return None

    async def get(self, session_id: str) -> SessionRecord | None:
        """The record, or None when it does not exist."""
        key = f"{self._prefix}session:{session_id}"
        fields: dict[str, str] = await self._call("session get", lambda: self._redis.hgetall(key))
        if not fields:
            return None
        return _record(session_id, [x for kv in fields.items() for x in kv])

    async def touch(self, session_id: str, now: float) -> SessionRecord | None:
        """Mark the session used at `now`, sliding its TTL; None when it does not exist (or expired)."""
        args: list[str | int] = [
            self._prefix,
            session_id,
            self._ttl_ms,
            repr(float(now)),
            repr(self._max_age),
        ]
        fields = await self._call("session touch", lambda: self._touch(keys=[], args=args))
        return _record(session_id, fields) if fields else None

    async def repin(self, session_id: str, worker_url: str) -> SessionRecord | None:
        """Move the session to another worker (shared workspaces after a worker loss)."""
        args: list[str | int] = [self._prefix, session_id, worker_url]
        fields = await self._call("session repin", lambda: self._repin(keys=[], args=args))
        return _record(session_id, fields) if fields else None

    async def delete(self, session_id: str) -> SessionRecord | None:
        """Remove the session; returns the removed record to exactly one caller, None to any other."""
        args: list[str | int] = [self._prefix, session_id]
        fields = await self._call("session delete", lambda: self._delete(keys=[], args=args))
        return _record(session_id, fields) if fields else None

    async def claim_expired(self, now: float, limit: int = 100) -> list[SessionRecord]:
        """Atomically remove up to `limit` sessions idle for max_age or more; return the ones removed here."""
        if limit <= 0:
            return []
        args: list[str | int] = [self._prefix, repr(float(now) - self._max_age), int(limit)]
        flat = await self._call("expiry claim", lambda: self._claim(keys=[], args=args))
        return _pairs(flat)

    async def find_by_transport(self, transport_key: str) -> SessionRecord | None:
        """The implicit session opened for a transport session, if any."""
        args: list[str | int] = [self._prefix, transport_key]
        found = await self._call("transport lookup", lambda: self._find(keys=[], args=args))
        if not found:
            return None
        return _record(str(found[0]), list(found[1]))

    async def count(self) -> int:
        """Open sessions across all replicas."""
        key = f"{self._prefix}expiry"
        return int(await self._call("session count", lambda: self._redis.zcard(key)))

    async def list(self, limit: int = 1000) -> list[SessionRecord]:
        """Up to `limit` records, most recently used first, for /debug/sessions."""
        if limit <= 0:
            return []
        args: list[str | int] = [self._prefix, int(limit)]
        flat = await self._call("session list", lambda: self._list(keys=[], args=args))
        return _pairs(flat)

    async def ping(self) -> None:
        """Raise StoreUnavailable unless Redis answers; used by /ready."""
        await self._call("PING", self._redis.ping)

    async def save_transport_session(self, session_id: str, data: Mapping[str, Any], ttl: float) -> None:
        """Store the record at `<prefix>mcp:<id>` with an idle TTL of `ttl` seconds (one round trip)."""
        args: list[str | int] = [
            f"{self._prefix}mcp:{session_id}",
            json.dumps(dict(data), separators=(",", ":")),
            max(1, round(ttl * 1000)),
        ]
        await self._call("transport session save", lambda: self._save_transport(keys=[], args=args))

    async def load_transport_session(self, session_id: str) -> dict[str, Any] | None:
        """The record, its TTL slid to the full idle timeout again (one round trip); None when absent."""
        args: list[str | int] = [f"{self._prefix}mcp:{session_id}"]
        raw = await self._call("transport session load", lambda: self._load_transport(keys=[], args=args))
        if not raw:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def delete_transport_session(self, session_id: str) -> bool:
        """Remove the record and publish the id to every replica's watcher; True when it existed."""
        args: list[str | int] = [f"{self._prefix}mcp:{session_id}", self._transport_channel, session_id]
        removed = await self._call("transport session delete", lambda: self._delete_transport(keys=[], args=args))
        return bool(removed)

    async def watch_transport_sessions(self, on_event: TransportEvent) -> None:
        """Subscribe to `<prefix>mcp-deleted` until cancelled, reconnecting with backoff.

        `on_event(None)` follows every (re)subscription and every break, since a deletion published
        meanwhile was not seen. Holds one pooled connection while subscribed.
        """
        delay = 0.05
        failing = False
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._transport_channel)
                on_event(None)
                if failing:
                    log.info("transport session feed reconnected to %s", self._url_for_humans)
                failing, delay = False, 0.05
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                    if message is not None and message.get("type") == "message":
                        on_event(str(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure means: reconnect, and re-check what is held
                on_event(None)
                if not failing:
                    log.warning(
                        "transport session feed from %s broke (%s); reconnecting",
                        self._url_for_humans,
                        _detail(exc),
                    )
                failing = True
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)  # reconnect backoff
            delay = min(delay * 2, 2.0)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
