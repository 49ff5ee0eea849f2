"""RedisSessionStore against a real redis-server: every method, sliding TTL, exactly-once expiry, outages."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from ha_processes import require_binaries
from ha_redis import RedisServer, RedisSettings, make_test_ca, running_redis

from coordinator.redis_store import RedisSessionStore
from coordinator.session_store import SessionRecord, StoreUnavailable

MAX_AGE = 60.0


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server shared by the module; tests keep apart through their own key prefix."""
    require_binaries("redis-server")
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def settings(redis_server: RedisServer) -> RedisSettings:
    return RedisSettings(url=redis_server.url, key_prefix=f"t-{uuid.uuid4().hex[:8]}:")


@pytest.fixture
async def store(settings: RedisSettings) -> AsyncIterator[RedisSessionStore]:
    s = RedisSessionStore(settings, MAX_AGE, env={})
    yield s
    await s.aclose()


def rec(sid: str, *, last_used: float, transport_key: str | None = None, owner: str | None = None) -> SessionRecord:
    return SessionRecord(
        session_id=sid,
        worker_url="http://127.0.0.1:8081",
        created_at=last_used,
        last_used=last_used,
        owner=owner,
        transport_key=transport_key,
    )


async def test_created_record_reads_back_with_every_field_exact(store: RedisSessionStore) -> None:
    """create then get returns the same record, floats to the last bit, optional fields included."""
    now = time.time()
    full = SessionRecord("s-full", "http://w1:8081", now - 1.123456789, now, owner="alice", transport_key="tk-1")
    bare = SessionRecord("s-bare", "http://w2:8081", now, now)
    await store.create(full)
    await store.create(bare)
    assert await store.get("s-full") == full
    assert await store.get("s-bare") == bare
    assert await store.get("s-missing") is None


async def test_touch_moves_last_used_forward_and_slides_the_key_ttl(
    store: RedisSessionStore, redis_server: RedisServer, settings: RedisSettings
) -> None:
    """touch updates last_used and the expiry score, and resets the key's PTTL to max_age plus grace."""
    now = time.time()
    await store.create(rec("s1", last_used=now))
    key = f"{settings.key_prefix}session:s1"
    with redis_server.client() as raw:
        full_ttl = raw.pttl(key)
        assert MAX_AGE * 1000 < full_ttl <= (MAX_AGE + 60) * 1000
        raw.pexpire(key, 5000)
        touched = await store.touch("s1", now + 10)
        assert touched is not None
        assert touched.last_used == now + 10
        assert raw.pttl(key) > MAX_AGE * 1000
        assert raw.zscore(f"{settings.key_prefix}expiry", "s1") == now + 10


async def test_touch_never_moves_last_used_backwards(store: RedisSessionStore) -> None:
    """A replica with a slower clock touching a session does not make it look older."""
    now = time.time()
    await store.create(rec("s1", last_used=now))
    touched = await store.touch("s1", now - 5)
    assert touched is not None
    assert touched.last_used == now


async def test_touch_of_a_missing_or_idle_session_returns_none(store: RedisSessionStore) -> None:
    """touch answers None for an unknown id and for a session idle for max_age, which stays claimable."""
    now = time.time()
    await store.create(rec("old", last_used=now - MAX_AGE - 1))
    assert await store.touch("nope", now) is None
    assert await store.touch("old", now) is None
    claimed = await store.claim_expired(now)
    assert [r.session_id for r in claimed] == ["old"]


async def test_key_ttl_removes_an_abandoned_record(redis_server: RedisServer, settings: RedisSettings) -> None:
    """With every coordinator gone, Redis itself drops the record after max_age plus grace."""
    short = RedisSessionStore(settings, 0.05, env={}, ttl_grace=0.05)
    try:
        await short.create(rec("gone", last_used=time.time()))
        key = f"{settings.key_prefix}session:gone"
        with redis_server.client() as raw:
            assert raw.exists(key)
            deadline = time.monotonic() + 5
            while raw.exists(key) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)  # polling interval
        assert await short.get("gone") is None
    finally:
        await short.aclose()


async def test_repin_moves_the_session_to_another_worker(store: RedisSessionStore) -> None:
    """repin changes worker_url and keeps everything else; an unknown id answers None."""
    now = time.time()
    await store.create(rec("s1", last_used=now, transport_key="tk"))
    moved = await store.repin("s1", "http://w2:8081")
    assert moved is not None
    assert moved.worker_url == "http://w2:8081"
    assert moved.transport_key == "tk"
    assert await store.get("s1") == moved
    assert await store.repin("nope", "http://w2:8081") is None


async def test_delete_returns_the_record_once_and_clears_every_index(
    store: RedisSessionStore, redis_server: RedisServer, settings: RedisSettings
) -> None:
    """delete hands the record to one caller only and leaves no hash, expiry entry or transport key."""
    now = time.time()
    await store.create(rec("s1", last_used=now, transport_key="tk"))
    first, second = await asyncio.gather(store.delete("s1"), store.delete("s1"))
    assert [first is not None, second is not None].count(True) == 1
    assert await store.get("s1") is None
    assert await store.find_by_transport("tk") is None
    assert await store.count() == 0
    with redis_server.client() as raw:
        assert raw.keys(f"{settings.key_prefix}*") == []


async def test_find_by_transport_returns_the_implicit_session(store: RedisSessionStore) -> None:
    """find_by_transport maps a transport session to its implicit session, and None once it is gone."""
    now = time.time()
    await store.create(rec("imp", last_used=now, transport_key="mcp-session-1"))
    await store.create(rec("explicit", last_used=now))
    found = await store.find_by_transport("mcp-session-1")
    assert found is not None
    assert found.session_id == "imp"
    assert await store.find_by_transport("mcp-session-2") is None
    await store.delete("imp")
    assert await store.find_by_transport("mcp-session-1") is None


async def test_deleting_an_old_session_keeps_a_newer_transport_mapping(store: RedisSessionStore) -> None:
    """When a transport key was re-bound to a new session (the old one went idle), deleting the old one
    leaves the new mapping."""
    now = time.time()
    await store.create(rec("old", last_used=now - MAX_AGE - 1, transport_key="tk"))
    assert await store.create(rec("new", last_used=now, transport_key="tk")) is None
    await store.delete("old")
    found = await store.find_by_transport("tk")
    assert found is not None
    assert found.session_id == "new"


async def test_a_second_implicit_session_for_one_transport_session_loses_to_the_first(
    store: RedisSessionStore,
) -> None:
    """Two replicas opening the implicit session of one transport session at once: the second create
    stores nothing and gets the first session back, so the client keeps one workspace."""
    now = time.time()
    first = rec("first", last_used=now, transport_key="tk", owner="alice")
    assert await store.create(first) is None
    assert await store.create(rec("second", last_used=now, transport_key="tk", owner="alice")) == first
    assert await store.get("second") is None
    assert await store.count() == 1
    assert await store.create(first) is None  # re-creating the same id is not a conflict


async def test_transport_session_record_round_trips_under_its_key_with_a_sliding_ttl(
    store: RedisSessionStore, redis_server: RedisServer, settings: RedisSettings
) -> None:
    """save writes `<prefix>mcp:<id>` with a PTTL of the idle timeout; load returns the data and slides it."""
    data = {"protocol_version": "2025-03-26", "caller": "alice", "client_name": "c", "initialized": True}
    assert store.shared is True
    await store.save_transport_session("mcp-1", data, ttl=30)
    key = f"{settings.key_prefix}mcp:mcp-1"
    with redis_server.client() as raw:
        assert 29_000 < raw.pttl(key) <= 30_000
        raw.pexpire(key, 2000)
        assert await store.load_transport_session("mcp-1") == data
        assert 29_000 < raw.pttl(key) <= 30_000  # slid back to the full idle timeout
        raw.delete(key)  # what the TTL does once it runs out
    assert await store.load_transport_session("mcp-1") is None
    assert await store.load_transport_session("never") is None


async def _next_event(events: asyncio.Queue[str | None]) -> str | None:
    async with asyncio.timeout(15):  # a bound on a hang, not a timing assertion
        return await events.get()


async def test_deleting_a_transport_session_tells_every_watcher(settings: RedisSettings) -> None:
    """delete removes the record once and publishes its id to each replica's watcher, after the watcher
    first reported None (subscribed: re-check what you hold)."""
    stores = [RedisSessionStore(settings, MAX_AGE, env={}) for _ in range(2)]
    queues: list[asyncio.Queue[str | None]] = [asyncio.Queue(), asyncio.Queue()]
    watchers = [
        asyncio.create_task(s.watch_transport_sessions(q.put_nowait)) for s, q in zip(stores, queues, strict=True)
    ]
    try:
        for q in queues:
            assert await _next_event(q) is None
        await stores[0].save_transport_session("mcp-1", {"caller": None}, 60)
        assert await stores[1].load_transport_session("mcp-1") == {"caller": None}
        assert await stores[1].delete_transport_session("mcp-1") is True
        assert await stores[0].delete_transport_session("mcp-1") is False
        for q in queues:
            assert await _next_event(q) == "mcp-1"
            assert await _next_event(q) == "mcp-1"
        assert await stores[0].load_transport_session("mcp-1") is None
    finally:
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        for s in stores:
            await s.aclose()


async def test_transport_watcher_survives_a_redis_restart(tmp_path: Path) -> None:
    """The watcher reports None when its feed breaks and again once resubscribed, then delivers deletions."""
    require_binaries("redis-server")
    with running_redis(tmp_path / "r") as server:
        settings = RedisSettings(url=server.url, connect_timeout=0.5, operation_timeout=0.5)
        store = RedisSessionStore(settings, MAX_AGE, env={})
        events: asyncio.Queue[str | None] = asyncio.Queue()
        watcher = asyncio.create_task(store.watch_transport_sessions(events.put_nowait))
        try:
            assert await _next_event(events) is None  # subscribed
            server.stop()
            assert await _next_event(events) is None  # broke
            server.start()
            while True:  # failed reconnects also report None; wait for the working subscription
                await store.save_transport_session("mcp-9", {}, 60)
                await store.delete_transport_session("mcp-9")
                if await _next_event(events) == "mcp-9":
                    break
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await store.aclose()


async def test_count_and_list_see_every_session(store: RedisSessionStore) -> None:
    """count is the number of open sessions; list returns them most recent first, up to the limit."""
    now = time.time()
    for i in range(5):
        await store.create(rec(f"s{i}", last_used=now + i))
    assert await store.count() == 5
    listed = await store.list()
    assert [r.session_id for r in listed] == ["s4", "s3", "s2", "s1", "s0"]
    assert len(await store.list(limit=2)) == 2
    assert await store.list(limit=0) == []


async def test_claim_expired_takes_only_idle_sessions_up_to_the_limit(store: RedisSessionStore) -> None:
    """claim_expired removes sessions idle for max_age or more, at most `limit` per call, each once."""
    now = time.time()
    for i in range(5):
        await store.create(rec(f"idle{i}", last_used=now - MAX_AGE - i))
    await store.create(rec("edge", last_used=now - MAX_AGE))
    await store.create(rec("fresh", last_used=now - MAX_AGE + 1))
    first = await store.claim_expired(now, limit=4)
    rest = await store.claim_expired(now, limit=100)
    assert len(first) == 4
    ids = {r.session_id for r in first} | {r.session_id for r in rest}
    assert ids == {"idle0", "idle1", "idle2", "idle3", "idle4", "edge"}
    assert len(first) + len(rest) == 6
    assert await store.claim_expired(now) == []
    assert await store.count() == 1
    assert await store.get("fresh") is not None


async def test_three_replicas_racing_claim_each_expired_session_exactly_once(settings: RedisSettings) -> None:
    """Three store instances (three replicas, own connection pools) claiming at once split 300 sessions."""
    replicas = [RedisSessionStore(settings, MAX_AGE, env={}) for _ in range(3)]
    try:
        now = time.time()
        total = 300
        await asyncio.gather(*(replicas[i % 3].create(rec(f"x{i}", last_used=now - MAX_AGE - 1)) for i in range(total)))
        await replicas[0].create(rec("alive", last_used=now))

        async def drain(replica: RedisSessionStore) -> list[str]:
            won: list[str] = []
            while batch := await replica.claim_expired(now, limit=7):
                won += [r.session_id for r in batch]
            return won

        # Deletes by other replicas race the claims too: each id still goes to exactly one caller.
        async def delete_some(replica: RedisSessionStore) -> list[str]:
            got = await asyncio.gather(*(replica.delete(f"x{i}") for i in range(0, total, 10)))
            return [r.session_id for r in got if r is not None]

        results = await asyncio.gather(*(drain(r) for r in replicas), delete_some(replicas[1]))
        everything = list(itertools.chain.from_iterable(results))
        assert len(everything) == total
        assert set(everything) == {f"x{i}" for i in range(total)}
        assert sum(1 for won in results[:3] if won) >= 2  # the race really was shared
        assert await replicas[2].count() == 1
    finally:
        for r in replicas:
            await r.aclose()


async def test_a_burst_beyond_the_pool_size_waits_instead_of_failing(settings: RedisSettings) -> None:
    """500 concurrent calls on a 4-connection store all succeed: callers queue for a pooled connection."""
    store = RedisSessionStore(settings, MAX_AGE, env={}, max_connections=4)
    try:
        now = time.time()
        await asyncio.gather(*(store.create(rec(f"b{i}", last_used=now)) for i in range(500)))
        touched = await asyncio.gather(*(store.touch(f"b{i}", now + 1) for i in range(500)))
        assert all(t is not None for t in touched)
        assert await store.count() == 500
    finally:
        await store.aclose()


async def test_ping_succeeds_against_a_live_redis(store: RedisSessionStore) -> None:
    """ping returns quietly when Redis answers."""
    await store.ping()


async def test_outage_raises_store_unavailable_then_recovers_by_itself(tmp_path: Path) -> None:
    """With redis-server stopped every method raises StoreUnavailable naming the URL; after a restart the same
    store works again without being rebuilt."""
    require_binaries("redis-server")
    with running_redis(tmp_path / "r", appendonly=True) as server:
        settings = RedisSettings(url=server.url, connect_timeout=0.5, operation_timeout=0.5)
        store = RedisSessionStore(settings, MAX_AGE, env={})
        try:
            now = time.time()
            await store.create(rec("keep", last_used=now))
            server.stop()
            calls = [
                store.ping(),
                store.get("keep"),
                store.touch("keep", now),
                store.create(rec("new", last_used=now)),
                store.repin("keep", "http://w2"),
                store.delete("keep"),
                store.claim_expired(now),
                store.find_by_transport("tk"),
                store.count(),
                store.list(),
                store.save_transport_session("mcp-1", {"caller": None}, 60),
                store.load_transport_session("mcp-1"),
                store.delete_transport_session("mcp-1"),
            ]
            for call in calls:
                with pytest.raises(StoreUnavailable) as info:
                    await call
                assert str(info.value).startswith(f"Redis at {server.url} is unreachable ("), info.value
            server.start()
            await store.ping()
            assert await store.touch("keep", now + 1) is not None
            assert await store.count() == 1
        finally:
            await store.aclose()


async def test_hung_redis_times_out_into_store_unavailable(tmp_path: Path) -> None:
    """A Redis that accepts but never answers (SIGSTOP) gives StoreUnavailable after the timeout, no hang."""
    require_binaries("redis-server")
    with running_redis(tmp_path / "r") as server:
        settings = RedisSettings(url=server.url, connect_timeout=0.2, operation_timeout=0.2)
        store = RedisSessionStore(settings, MAX_AGE, env={})
        try:
            await store.ping()
            server.pause()
            with pytest.raises(StoreUnavailable, match="did not answer"):
                await store.get("x")
            server.resume()
            await store.ping()
        finally:
            await store.aclose()


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "kill-9-fsync-always"])
async def test_session_survives_a_redis_restart_with_appendonly(tmp_path: Path, crash: bool) -> None:
    """With appendonly a session survives a redis-server restart (graceful, or kill -9 with fsync always)."""
    require_binaries("redis-server")
    fsync = "always" if crash else "everysec"
    with running_redis(tmp_path / "r", appendonly=True, appendfsync=fsync) as server:
        store = RedisSessionStore(RedisSettings(url=server.url), MAX_AGE, env={})
        try:
            record = rec("durable", last_used=time.time(), transport_key="tk")
            await store.create(record)
            server.stop(signal.SIGKILL if crash else signal.SIGTERM)
            server.start()
            assert await store.get("durable") == record
            assert await store.find_by_transport("tk") == record
            assert await store.count() == 1
        finally:
            await store.aclose()


async def test_password_file_and_env_override_authenticate(tmp_path: Path) -> None:
    """A requirepass Redis accepts the password from password_file, and REDIS_PASSWORD overrides the file."""
    require_binaries("redis-server")
    with running_redis(tmp_path / "r", password="s3cret-pw") as server:
        good = tmp_path / "good"
        good.write_text("s3cret-pw\n")
        bad = tmp_path / "bad"
        bad.write_text("wrong\n")
        for settings, env in [
            (RedisSettings(url=server.url, password_file=str(good)), {}),
            (RedisSettings(url=server.url, password_file=str(bad)), {"REDIS_PASSWORD": "s3cret-pw"}),
        ]:
            store = RedisSessionStore(settings, MAX_AGE, env=env)
            try:
                await store.ping()
            finally:
                await store.aclose()


async def test_wrong_password_is_store_unavailable_without_leaking_it(tmp_path: Path) -> None:
    """A wrong password in the URL surfaces as StoreUnavailable whose message redacts the password."""
    require_binaries("redis-server")
    with running_redis(tmp_path / "r", password="s3cret-pw") as server:
        url = f"redis://:wrong-pw@127.0.0.1:{server.port}/0"
        store = RedisSessionStore(RedisSettings(url=url), MAX_AGE, env={})
        try:
            with pytest.raises(StoreUnavailable) as info:
                await store.ping()
            assert "wrong-pw" not in str(info.value)
            assert f"Redis at redis://:***@127.0.0.1:{server.port}/0 refused our credentials" in str(info.value)
            assert "REDIS_PASSWORD" in str(info.value)
        finally:
            await store.aclose()


async def test_unix_socket_url_works(tmp_path: Path) -> None:
    """A unix:// URL reaches Redis over its Unix socket."""
    require_binaries("redis-server")
    sock = tmp_path / "redis.sock"
    with running_redis(tmp_path / "r", unixsocket=sock):
        store = RedisSessionStore(RedisSettings(url=f"unix://{sock}?db=0"), MAX_AGE, env={})
        try:
            await store.create(rec("u1", last_used=time.time()))
            assert await store.count() == 1
        finally:
            await store.aclose()


async def test_rediss_url_verifies_the_server_certificate(tmp_path: Path) -> None:
    """rediss:// speaks TLS: it works with the CA given as ssl_ca_certs in the URL, and an unknown CA is
    refused with a StoreUnavailable that says so."""
    require_binaries("redis-server")
    ca = make_test_ca(tmp_path / "tls")
    with running_redis(tmp_path / "r", tls_dir=ca) as server:
        trusted = RedisSessionStore(RedisSettings(url=f"{server.url}?ssl_ca_certs={ca / 'ca.crt'}"), MAX_AGE, env={})
        untrusted = RedisSessionStore(RedisSettings(url=server.url), MAX_AGE, env={})
        try:
            await trusted.create(rec("tls", last_used=time.time()))
            assert await trusted.count() == 1
            with pytest.raises(StoreUnavailable, match="certificate verify failed"):
                await untrusted.ping()
        finally:
            await trusted.aclose()
            await untrusted.aclose()
