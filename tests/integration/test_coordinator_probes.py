"""Probes, metrics and debug endpoints of a real coordinator process with its embedded worker."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from coordinator_fixtures import CoordinatorProcess, http_get, start_coordinator

from coordinator.health import is_loopback


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoordinatorProcess]:
    proc = start_coordinator(tmp_path_factory.mktemp("probes"))
    yield proc
    assert proc.stop() == 0


def test_healthz_answers_ok(coordinator: CoordinatorProcess) -> None:
    """/healthz is process liveness and answers 200 {"status": "ok"}."""
    status, body = http_get(coordinator.url + "/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok"}


def test_ready_answers_200_with_the_embedded_worker(coordinator: CoordinatorProcess) -> None:
    """With the embedded worker up and the memory store, /ready is 200."""
    status, body = http_get(coordinator.url + "/ready")
    assert status == 200
    assert json.loads(body) == {"ready": True}


def test_metrics_port_serves_the_seed_metric_names(coordinator: CoordinatorProcess) -> None:
    """/metrics on the metrics port lists the five seed metrics and the process collectors."""
    status, body = http_get(coordinator.metrics_url)
    text = body.decode()
    assert status == 200
    for name in (
        "coordinator_sessions_active",
        "coordinator_sessions_created_total",
        "coordinator_tool_calls_total",
        "coordinator_tool_duration_seconds",
        "coordinator_worker_errors_total",
        "process_resident_memory_bytes",
    ):
        assert name in text, name


def test_metrics_are_not_served_on_the_mcp_port(coordinator: CoordinatorProcess) -> None:
    """/metrics lives on its own port only."""
    assert http_get(coordinator.url + "/metrics")[0] == 404


def test_debug_sessions_answers_a_loopback_caller(coordinator: CoordinatorProcess) -> None:
    """A caller on 127.0.0.1 may read /debug/sessions: sessions, workers and in-flight counts."""
    status, body = http_get(coordinator.url + "/debug/sessions")
    assert status == 200
    page = json.loads(body)
    assert {"count", "sessions", "workers", "inflight_calls", "running_tasks", "draining"} <= set(page)
    assert page["workers"][0]["healthy"] is True


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.7", False),
        ("192.168.1.2", False),
        ("::ffff:10.0.0.7", False),
        ("2001:db8::1", False),
        ("", False),
        (None, False),
        ("not-an-ip", False),
    ],
)
def test_only_loopback_peers_count_as_loopback(remote: str | None, loopback: bool) -> None:
    """The /debug/sessions rule: 127/8, ::1 and IPv4-mapped loopback only (never a forwarded header)."""
    assert is_loopback(remote) is loopback
