"""Config loading: schema defaults < file < env < flags, and one help line per error naming its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.config import ConfigError, defaults, load_config, schema_keys


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return str(path)


def errors_of(
    path: str | None = None, env: dict[str, str] | None = None, overrides: dict | None = None
) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(path, env=env or {}, overrides=overrides)
    return err.value.errors


def test_no_file_and_no_env_gives_the_schema_defaults() -> None:
    """With nothing configured, every value is the schema default and the embedded worker is chosen."""
    config = load_config(None, env={})
    assert config.server.port == 8080
    assert config.server.metrics_port == 9090
    assert config.server.host == "127.0.0.1"
    assert config.session.max_age == 1800.0
    assert config.session.cleanup_interval == 60.0
    assert config.worker.urls == ()
    assert config.worker.embedded
    assert config.audit.backend == "stdout"
    assert config.server.version  # the package version when not configured


def test_every_schema_key_has_a_description() -> None:
    """The schema documents each key (the docs table is generated from these)."""
    for path, node in schema_keys():
        assert node.get("description"), path


def test_an_empty_file_means_defaults(tmp_path: Path) -> None:
    """An empty config.yaml is valid and equals the defaults."""
    assert load_config(write(tmp_path, ""), env={}).server == load_config(None, env={}).server


def test_unknown_key_is_an_error_naming_its_path_and_the_allowed_keys(tmp_path: Path) -> None:
    """A misspelt key is refused with the file, its dotted path and the allowed keys."""
    errors = errors_of(write(tmp_path, "server:\n  bogus: 1\n"))
    assert errors == [
        "config.yaml: server.bogus: unknown key (allowed: name, version, log_level, transport, host, port, "
        "metrics_port, shutdown_grace, drain_delay, keepalive_interval)"
    ]


def test_unknown_top_level_section_is_an_error(tmp_path: Path) -> None:
    """An unknown section at the top level is named too."""
    errors = errors_of(write(tmp_path, "sever:\n  port: 1\n"))
    assert len(errors) == 1
    assert errors[0].startswith("config.yaml: sever: unknown key (allowed: server, session, worker,")


def test_wrong_type_is_an_error_naming_its_path(tmp_path: Path) -> None:
    """A string where an integer belongs is one line naming server.port."""
    assert errors_of(write(tmp_path, "server:\n  port: eighty\n")) == [
        "config.yaml: server.port: 'eighty' is not an integer"
    ]


def test_a_section_that_is_not_a_mapping_is_an_error(tmp_path: Path) -> None:
    """`session: 5` names the section and what it should be."""
    assert errors_of(write(tmp_path, "session: 5\n")) == ["config.yaml: session: 5 is not a mapping"]


def test_bad_duration_reads_like_help(tmp_path: Path) -> None:
    """The seed example: session.max_age '10x' is not a duration, with examples."""
    assert errors_of(write(tmp_path, "session:\n  max_age: 10x\n")) == [
        "config.yaml: session.max_age: '10x' is not a duration (examples: 30m, 1h30m)"
    ]


def test_every_error_is_reported_at_once_one_line_each(tmp_path: Path) -> None:
    """Several problems give several lines, in path order."""
    text = (
        "server:\n  port: -1\n  log_level: loud\n"
        "worker:\n  max_retries: 99\n  url: ftp://x\n"
        "audit:\n  enabled: maybe\n"
    )
    errors = errors_of(write(tmp_path, text))
    assert errors == [
        "config.yaml: audit.enabled: 'maybe' is not true or false",
        "config.yaml: server.log_level: 'loud' is not one of: debug, info, warning, error",
        "config.yaml: server.port: -1 is below the minimum 0",
        "config.yaml: worker.max_retries: 99 is above the maximum 10",
        "config.yaml: worker.url: 'ftp://x' is not a worker URL or a list of them "
        "(examples: http://worker:8081, [http://a:8081, http://b:8081])",
    ]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    """A YAML syntax error is one line with its position."""
    (line,) = errors_of(write(tmp_path, "server:\n  port: [1\n"))
    assert line.startswith("config.yaml: not valid YAML at line ")


def test_a_top_level_list_is_refused(tmp_path: Path) -> None:
    """The document must be a mapping of sections."""
    assert errors_of(write(tmp_path, "- a\n- b\n")) == [
        "config.yaml: (top level): the config must be a mapping of sections, got list"
    ]


def test_a_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    """A config path that does not exist is reported, not a traceback."""
    (line,) = errors_of(str(tmp_path / "nope.yaml"))
    assert line.startswith(f"{tmp_path / 'nope.yaml'}: cannot read the config file:")


def test_env_errors_name_the_variable(tmp_path: Path) -> None:
    """A bad environment value is blamed on its variable, with the key it sets."""
    errors = errors_of(env={"SESSION_MAX_AGE": "5y", "PORT": "http", "SESSION_STORE": "mongo"})
    assert errors == [
        "$PORT=http: server.port: 'http' is not an integer",
        "$SESSION_MAX_AGE=5y: session.max_age: '5y' is not a duration (examples: 30m, 1h30m)",
        "$SESSION_STORE=mongo: session.store: 'mongo' is not one of: memory, redis",
    ]


def test_precedence_is_defaults_then_file_then_env_then_flags(tmp_path: Path) -> None:
    """A key set in every layer takes the flag's value; env beats the file; the file beats defaults."""
    path = write(
        tmp_path, "server:\n  log_level: warning\n  port: 1000\n  transport: stdio\nsession:\n  max_age: 1h\n"
    )
    config = load_config(
        path, env={"LOG_LEVEL": "ERROR", "PORT": "2000"}, overrides={"server": {"log_level": "debug"}}
    )
    assert config.server.log_level == "debug"  # flag
    assert config.server.port == 2000  # env over file
    assert config.server.transport == "stdio"  # file over default
    assert config.session.max_age == 3600.0  # file
    assert config.session.cleanup_interval == 60.0  # default


def test_worker_url_env_takes_a_comma_separated_list() -> None:
    """WORKER_URL=a,b gives two endpoints (trailing slashes dropped) and turns the embedded worker off."""
    config = load_config(None, env={"WORKER_URL": "http://a:8081/, http://b:8081"})
    assert config.worker.urls == ("http://a:8081", "http://b:8081")
    assert not config.worker.embedded


def test_every_documented_env_var_sets_its_key(tmp_path: Path) -> None:
    """Each seed and product environment variable reaches its config key."""
    env = {
        "LOG_LEVEL": "debug",
        "SESSION_MAX_AGE": "10m",
        "CLEANUP_INTERVAL": "5s",
        "WORKER_URL": "http://w:1",
        "HOST": "0.0.0.0",
        "PORT": "8000",
        "METRICS_PORT": "9000",
        "SESSION_STORE": "redis",
        "REDIS_URL": "redis://r:6379/1",
        "REDIS_PASSWORD": "s3cret",
        "AUDIT_BACKEND": "file",
        "AUDIT_FILE": "/tmp/a.jsonl",
        "WORKSPACE_ROOT": "/ws",
        "WORKER_DNS_NAME": "workers.local",
        "AUTH_TOKENS_FILE": "/t",
    }
    c = load_config(None, env=env)
    assert (c.server.log_level, c.server.host, c.server.port, c.server.metrics_port) == (
        "debug",
        "0.0.0.0",
        8000,
        9000,
    )
    assert (c.session.max_age, c.session.cleanup_interval, c.session.store) == (600.0, 5.0, "redis")
    assert (c.session.redis.url, c.session.redis.password) == ("redis://r:6379/1", "s3cret")
    assert (c.worker.urls, c.worker.workspace_root, c.worker.discovery.dns_name) == (
        ("http://w:1",),
        "/ws",
        "workers.local",
    )
    assert (c.audit.backend, c.audit.file_path, c.auth.tokens_file) == ("file", "/tmp/a.jsonl", "/t")


def test_redis_password_file_is_read_when_redis_is_the_store(tmp_path: Path) -> None:
    """session.redis.password_file supplies the password; $REDIS_PASSWORD wins over it."""
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    path = write(tmp_path, f"session:\n  store: redis\n  redis:\n    password_file: {secret}\n")
    assert load_config(path, env={}).session.redis.password == "from-file"
    assert load_config(path, env={"REDIS_PASSWORD": "from-env"}).session.redis.password == "from-env"


def test_unreadable_redis_password_file_says_how_to_fix_it(tmp_path: Path) -> None:
    """A missing password file is one line naming the key and the alternatives."""
    path = write(tmp_path, f"session:\n  store: redis\n  redis:\n    password_file: {tmp_path / 'none'}\n")
    (line,) = errors_of(path)
    assert line.startswith("session.redis.password_file: cannot read")
    assert "$REDIS_PASSWORD" in line


def test_durations_become_float_seconds(tmp_path: Path) -> None:
    """Every duration key is converted to seconds in the dataclasses."""
    path = write(tmp_path, "server:\n  shutdown_grace: 1m30s\n  drain_delay: 500ms\nworker:\n  timeout: 2s\n")
    config = load_config(path, env={})
    assert (config.server.shutdown_grace, config.server.drain_delay, config.worker.timeout) == (
        90.0,
        0.5,
        2.0,
    )


def test_defaults_cover_every_key_with_a_default() -> None:
    """defaults() is built from the schema, so adding a key with a default needs no code change."""
    tree = defaults()
    assert tree["session"]["redis"]["key_prefix"] == "codegen-mcp:"
    assert tree["limits"]["max_body_bytes"] == 4 * 1024 * 1024


def test_config_objects_are_frozen() -> None:
    """The config tree cannot be mutated after it is built."""
    config = load_config(None, env={})
    with pytest.raises(AttributeError):
        config.server.port = 1  # type: ignore[misc]
