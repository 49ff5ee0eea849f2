"""The worker's configuration: a tree of frozen dataclasses built after JSON-Schema validation."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ENV_KEYS: dict[str, tuple[str, type]] = {
    "WORKER_ID": ("worker_id", str),
    "WORKSPACE_ROOT": ("workspace_root", str),
    "MAX_SESSIONS": ("max_sessions", int),
    "LOG_LEVEL": ("log_level", str),
    "PORT": ("port", int),
    "HOST": ("host", str),
}


class ConfigError(Exception):
    """The configuration is invalid; `errors` holds one help line per problem, each naming its JSON path."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-call and per-run limits. Sizes are bytes, durations seconds."""

    run_timeout_seconds: float = 30.0
    install_timeout_seconds: float = 300.0
    max_output_bytes: int = 1024 * 1024
    cpu_seconds: int = 60
    memory_bytes: int = 2 * 1024**3
    max_file_bytes: int = 10 * 1024 * 1024
    max_files: int = 10_000
    max_read_bytes: int = 1024 * 1024
    max_artifact_bytes: int = 10 * 1024 * 1024
    max_list_entries: int = 10_000
    max_open_files: int = 256
    max_processes: int = 256


@dataclass(frozen=True, slots=True)
class PackageSettings:
    """How pkg.install talks to the package index. The index comes from here only, never from a call."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    use_pip_config_files: bool = True
    only_binary: bool = True
    allow_urls: bool = False
    allow_local_paths: bool = False


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """The whole worker configuration; see schemas/worker-config.schema.json for each key."""

    worker_id: str
    host: str = "127.0.0.1"
    port: int = 8081
    workspace_root: Path = Path(".workspaces")
    max_sessions: int = 64
    session_idle_ttl_seconds: float = 3600.0
    reap_interval_seconds: float = 30.0
    cleanup_orphans_on_start: bool = False
    log_level: str = "info"
    limits: Limits = Limits()
    packages: PackageSettings = PackageSettings()


@cache
def schema() -> dict[str, Any]:
    """The worker config JSON Schema, loaded from the package data."""
    text = resources.files("worker").joinpath("schemas/worker-config.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _json_path(path: Any) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validate(data: Any) -> list[str]:
    """Every schema violation of `data`, one help line each, naming its JSON path."""
    validator = jsonschema.Draft202012Validator(schema())
    lines = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        where = _json_path(err.absolute_path)
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            lines.append(f"{where}: {err.message}; allowed keys: {', '.join(allowed)}")
        else:
            lines.append(f"{where}: {err.message}")
    return lines


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_layer(env: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    layer: dict[str, Any] = {}
    errors = []
    for var, (key, kind) in ENV_KEYS.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        if kind is int:
            try:
                layer[key] = int(raw)
            except ValueError:
                errors.append(f"${var}: {raw!r} is not an integer (it sets {key})")
        else:
            layer[key] = raw
    return layer, errors


def _read_file(path: str) -> tuple[Any, list[str]]:
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        return None, [f"{path}: cannot read the config file: {exc.strerror}"]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return None, [f"{path}: not valid YAML/JSON: {exc}"]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [f"$: the config must be a mapping, got {type(data).__name__}"]
    return data, []


def load_config(
    path: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> WorkerConfig:
    """Build the config: defaults < file `path` < `env` < `overrides` (a partial config mapping).

    `env` defaults to `os.environ`; pass `{}` to ignore the environment. Raises ConfigError.
    """
    data: dict[str, Any] = {}
    errors: list[str] = []
    if path is not None:
        loaded, errors = _read_file(path)
        if errors:
            raise ConfigError(errors)
        data = loaded
        errors = validate(data)
    env_layer, env_errors = _env_layer(os.environ if env is None else env)
    errors += env_errors
    if errors:
        raise ConfigError(errors)
    data = _merge(data, env_layer)
    if overrides:
        data = _merge(data, overrides)
    errors = validate(data)
    if errors:
        raise ConfigError(errors)
    return _build(data)


def _build(data: dict[str, Any]) -> WorkerConfig:
    limits = Limits(**data.get("limits", {}))
    pkg = dict(data.get("packages", {}))
    for key in ("extra_index_urls", "trusted_hosts"):
        if key in pkg:
            pkg[key] = tuple(pkg[key])
    top = {k: v for k, v in data.items() if k not in ("limits", "packages")}
    top.setdefault("worker_id", socket.gethostname())
    if "workspace_root" in top:
        top["workspace_root"] = Path(top["workspace_root"])
    top["log_level"] = str(top.get("log_level", "info")).lower()
    return WorkerConfig(**top, limits=limits, packages=PackageSettings(**pkg))
