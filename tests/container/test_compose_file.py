"""docker-compose.yml keeps its contract: ports, shared workspaces, healthchecks, hardening, redis profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def test_default_profile_runs_the_coordinator_on_8080_and_9090_and_one_worker(
    services: dict[str, dict[str, Any]],
) -> None:
    """Without a profile: coordinator (MCP 8080, metrics 9090, loopback only) routed to one worker."""
    default = {name for name, svc in services.items() if not svc.get("profiles")}
    assert default == {"coordinator", "worker"}
    coordinator = services["coordinator"]
    assert coordinator["ports"] == ["127.0.0.1:8080:8080", "127.0.0.1:9090:9090"]
    assert coordinator["environment"]["WORKER_URL"] == "http://worker:8081"
    assert coordinator["depends_on"]["worker"]["condition"] == "service_healthy"


def test_worker_keeps_workspaces_in_the_shared_host_directory(services: dict[str, dict[str, Any]]) -> None:
    """The worker's workspace root is the ./workspaces bind mount."""
    worker = services["worker"]
    assert "./workspaces:/workspaces" in worker["volumes"]
    assert worker["environment"]["WORKSPACE_ROOT"] == "/workspaces"


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("coordinator", "/healthz"),
        ("worker", "/health"),
        ("coordinator-a", "/healthz"),
        ("coordinator-b", "/healthz"),
    ],
)
def test_healthchecks_probe_liveness_endpoints(
    services: dict[str, dict[str, Any]], service: str, path: str
) -> None:
    """Coordinators are checked on /healthz (not /ready, which depends on workers), the worker on /health."""
    test = services[service]["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert any(path + "'" in part for part in test), test


@pytest.mark.parametrize("service", ["coordinator", "worker", "coordinator-a", "coordinator-b"])
def test_product_containers_run_hardened_like_the_chart(
    services: dict[str, dict[str, Any]], service: str
) -> None:
    """Read-only root, /tmp tmpfs, uid 1000 by default, no capabilities, no-new-privileges."""
    svc = services[service]
    assert svc["read_only"] is True
    assert svc["tmpfs"] == ["/tmp"]
    assert svc["user"] == "${CODEGEN_UID:-1000}:${CODEGEN_GID:-1000}"
    assert svc["cap_drop"] == ["ALL"]
    assert svc["security_opt"] == ["no-new-privileges:true"]
    dockerfile = REPO / svc["build"]["dockerfile"]
    assert dockerfile.is_file()


def test_redis_profile_runs_two_coordinators_on_the_redis_store(services: dict[str, dict[str, Any]]) -> None:
    """`--profile redis` adds Redis and two coordinators whose sessions live in it, on distinct ports."""
    profiled = {name for name, svc in services.items() if svc.get("profiles") == ["redis"]}
    assert profiled == {"redis", "coordinator-a", "coordinator-b"}
    ports = set()
    for name in ("coordinator-a", "coordinator-b"):
        env = services[name]["environment"]
        assert env["SESSION_STORE"] == "redis"
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        ports.update(services[name]["ports"])
    assert len(ports) == 4
