"""The coordinator's configuration: defaults < config.yaml < environment < flags, validated, then frozen.

`load_config()` merges the layers, validates the result against `schemas/config.schema.json` and only
then builds the tree of frozen dataclasses below (one per config.yaml section). Every error is one
line naming its source and JSON path, e.g.
`config.yaml: session.max_age: '10x' is not a duration (examples: 30m, 1h30m)`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from coordinator import __version__
from coordinator.config_schema import defaults, error_lines, merge, schema, schema_keys, set_path
from coordinator.durations import parse_duration

ENV_VARS: dict[str, tuple[str, ...]] = {
    "LOG_LEVEL": ("server", "log_level"),
    "MCP_TRANSPORT": ("server", "transport"),
    "HOST": ("server", "host"),
    "PORT": ("server", "port"),
    "METRICS_PORT": ("server", "metrics_port"),
    "SESSION_MAX_AGE": ("session", "max_age"),
    "CLEANUP_INTERVAL": ("session", "cleanup_interval"),
    "SESSION_STORE": ("session", "store"),
    "REDIS_URL": ("session", "redis", "url"),
    "WORKER_URL": ("worker", "url"),
    "WORKER_DNS_NAME": ("worker", "discovery", "dns_name"),
    "WORKSPACE_ROOT": ("worker", "workspace_root"),
    "WORKER_CONFIG": ("worker", "embedded_config"),
    "AUDIT_BACKEND": ("audit", "backend"),
    "AUDIT_FILE": ("audit", "file_path"),
    "AUTH_TOKENS_FILE": ("auth", "tokens_file"),
}
"""Environment variables and the config key each one sets. REDIS_PASSWORD is read separately: it is a
secret, not a key."""

__all__ = [
    "ENV_VARS",
    "AuditConfig",
    "AuthConfig",
    "Config",
    "ConfigError",
    "DiscoveryConfig",
    "LimitsConfig",
    "RedisConfig",
    "SecurityConfig",
    "ServerConfig",
    "SessionConfig",
    "WorkerConfig",
    "defaults",
    "load_config",
    "schema",
    "schema_keys",
]

_INT_VARS = frozenset({"PORT", "METRICS_PORT"})


class ConfigError(Exception):
    """The configuration is invalid; `errors` holds one help line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """`server:` identity, logging, listeners and shutdown. Durations are float seconds."""

    name: str
    version: str
    log_level: str
    transport: str
    host: str
    port: int
    metrics_port: int
    shutdown_grace: float
    drain_delay: float
    keepalive_interval: float


@dataclass(frozen=True, slots=True)
class RedisConfig:
    """`session.redis:` the Redis store. Timeouts are float seconds; `password` comes from
    $REDIS_PASSWORD or `password_file` (None when neither is set)."""

    url: str
    password_file: str | None
    password: str | None
    key_prefix: str
    connect_timeout: float
    operation_timeout: float


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """`session:` idle expiry (`max_age`, `cleanup_interval`, float seconds) and the store."""

    max_age: float
    cleanup_interval: float
    max_sessions: int
    store: str
    redis: RedisConfig


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    """`worker.discovery:` DNS discovery of workers; `refresh_interval` in float seconds."""

    dns_name: str | None
    port: int
    scheme: str
    refresh_interval: float


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """`worker:` endpoints and how to call them. Durations are float seconds.

    `urls` is empty when no worker is configured; with no `discovery.dns_name` either, the
    coordinator runs an embedded worker over `workspace_root`.
    """

    urls: tuple[str, ...]
    discovery: DiscoveryConfig
    timeout: float
    connect_timeout: float
    max_retries: int
    retry_backoff: float
    health_interval: float
    shared_workspaces: bool
    workspace_root: str
    embedded_config: str

    @property
    def embedded(self) -> bool:
        """True when the coordinator must run its own worker in-process."""
        return not self.urls and not self.discovery.dns_name


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """`audit:` one record per tool call, to stdout or a file."""

    enabled: bool
    backend: str
    format: str
    file_path: str
    max_value_bytes: int


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """`security:` Origin/Host checks and who may read debug endpoints."""

    allowed_origins: tuple[str, ...]
    allowed_hosts: tuple[str, ...]
    trust_forwarded_host: bool
    debug_endpoints: str


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """`auth:` bearer tokens for the HTTP transports."""

    enabled: bool
    tokens_file: str


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """`limits:` sizes in bytes, durations (`tool_timeout`, `task_ttl`) in float seconds."""

    max_body_bytes: int
    max_concurrent_calls: int
    tool_timeout: float
    max_tasks: int
    task_ttl: float
    max_result_text_chars: int


@dataclass(frozen=True, slots=True)
class Config:
    """The whole coordinator configuration. `source` is the config file path, or None for defaults."""

    server: ServerConfig
    session: SessionConfig
    worker: WorkerConfig
    audit: AuditConfig
    security: SecurityConfig
    auth: AuthConfig
    limits: LimitsConfig
    source: str | None = None


def _read_file(path: str) -> dict[str, Any]:
    label = os.path.basename(path) or path
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config file: {exc.strerror or exc}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{label}: not valid YAML{where}: {problem}"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ConfigError([f"{label}: (top level): the config must be a mapping of sections, got {kind}"])
    return data


def _env_layer(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    layer: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    for var, path in ENV_VARS.items():
        raw = env.get(var)
        if raw is None:
            continue
        value: Any = raw.strip()
        if var in _INT_VARS and isinstance(value, str) and value.isdigit():
            value = int(value)
        elif var == "LOG_LEVEL":
            value = value.lower()
        elif var == "WORKER_URL":
            parts = [p.strip() for p in raw.split(",") if p.strip()]
            value = parts if len(parts) > 1 else (parts[0] if parts else "")
        elif var == "WORKER_DNS_NAME" and not value:
            continue
        set_path(layer, path, value)
        sources[path] = f"${var}={raw}"
    return layer, sources


def load_config(
    path: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the config: schema defaults < file `path` < `env` (default `os.environ`) < `overrides`.

    `overrides` is a partial config mapping (what command-line flags set). Raises ConfigError with
    one line per problem, each naming where the bad value came from and its JSON path.
    """
    env = os.environ if env is None else env
    data = defaults()
    sources: dict[tuple[str, ...], str] = {}
    file_label = "defaults"
    if path is not None:
        file_label = os.path.basename(path) or path
        data = merge(data, _read_file(path))
    env_layer, env_sources = _env_layer(env)
    data = merge(data, env_layer)
    sources.update(env_sources)
    if overrides:
        data = merge(data, overrides)
        for flag_path, _ in _leaves(overrides, ()):
            sources[flag_path] = "flags"
    errors = error_lines(data, sources, file_label)
    if errors:
        raise ConfigError(errors)
    return _build(data, path, env)


def _leaves(tree: Mapping[str, Any], prefix: tuple[str, ...]) -> Iterable[tuple[tuple[str, ...], Any]]:
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def _redis_password(redis: Mapping[str, Any], env: Mapping[str, str], store: str) -> str | None:
    password = env.get("REDIS_PASSWORD")
    if password:
        return password
    password_file = redis.get("password_file")
    if not password_file or store != "redis":
        return None
    try:
        return Path(password_file).read_text("utf-8").strip() or None
    except OSError as exc:
        raise ConfigError(
            [
                f"session.redis.password_file: cannot read {password_file!r}: {exc.strerror or exc} "
                "(mount the Redis secret there, or set $REDIS_PASSWORD)"
            ]
        ) from exc


def _build(data: Mapping[str, Any], path: str | None, env: Mapping[str, str]) -> Config:
    d = parse_duration
    server, session, worker = data["server"], data["session"], data["worker"]
    redis = session.get("redis", {})
    audit, security, auth, limits = data["audit"], data["security"], data["auth"], data["limits"]
    discovery = worker.get("discovery", {})
    url = worker.get("url", "")
    urls = tuple(u.rstrip("/") for u in ([url] if isinstance(url, str) else url) if u)
    return Config(
        server=ServerConfig(
            name=server["name"],
            version=server.get("version") or __version__,
            log_level=server["log_level"],
            transport=server["transport"],
            host=server["host"],
            port=server["port"],
            metrics_port=server["metrics_port"],
            shutdown_grace=d(server["shutdown_grace"]),
            drain_delay=d(server["drain_delay"]),
            keepalive_interval=d(server["keepalive_interval"]),
        ),
        session=SessionConfig(
            max_age=d(session["max_age"]),
            cleanup_interval=d(session["cleanup_interval"]),
            max_sessions=session["max_sessions"],
            store=session["store"],
            redis=RedisConfig(
                url=redis["url"],
                password_file=redis.get("password_file"),
                password=_redis_password(redis, env, session["store"]),
                key_prefix=redis["key_prefix"],
                connect_timeout=d(redis["connect_timeout"]),
                operation_timeout=d(redis["operation_timeout"]),
            ),
        ),
        worker=WorkerConfig(
            urls=urls,
            discovery=DiscoveryConfig(
                dns_name=discovery.get("dns_name") or None,
                port=discovery["port"],
                scheme=discovery["scheme"],
                refresh_interval=d(discovery["refresh_interval"]),
            ),
            timeout=d(worker["timeout"]),
            connect_timeout=d(worker["connect_timeout"]),
            max_retries=worker["max_retries"],
            retry_backoff=d(worker["retry_backoff"]),
            health_interval=d(worker["health_interval"]),
            shared_workspaces=worker["shared_workspaces"],
            workspace_root=worker["workspace_root"],
            embedded_config=worker["embedded_config"],
        ),
        audit=AuditConfig(
            enabled=audit["enabled"],
            backend=audit["backend"],
            format=audit["format"],
            file_path=audit["file_path"],
            max_value_bytes=audit["max_value_bytes"],
        ),
        security=SecurityConfig(
            allowed_origins=tuple(security["allowed_origins"]),
            allowed_hosts=tuple(security["allowed_hosts"]),
            trust_forwarded_host=security["trust_forwarded_host"],
            debug_endpoints=security["debug_endpoints"],
        ),
        auth=AuthConfig(enabled=auth["enabled"], tokens_file=auth["tokens_file"]),
        limits=LimitsConfig(
            max_body_bytes=limits["max_body_bytes"],
            max_concurrent_calls=limits["max_concurrent_calls"],
            tool_timeout=d(limits["tool_timeout"]),
            max_tasks=limits["max_tasks"],
            task_ttl=d(limits["task_ttl"]),
            max_result_text_chars=limits["max_result_text_chars"],
        ),
        source=path,
    )
