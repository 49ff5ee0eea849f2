"""Impossible values fail to render, each with a message that names the key and ends with the fix."""

from __future__ import annotations

import json
import re

from chartlib import CHART, render_error

OBSERVABILITY = (str(CHART / "ci" / "observability-values.yaml"),)


def test_zero_replicas_fail() -> None:
    """coordinator.replicas=0 fails and says to set 1 or more."""
    error = render_error("coordinator.replicas=0")
    assert "coordinator.replicas=0: at least one coordinator pod is needed" in error
    assert "set coordinator.replicas to 1 or more" in error


def test_zero_worker_replicas_fail() -> None:
    """worker.replicas=0 with the bundled worker fails."""
    error = render_error("worker.replicas=0")
    assert "worker.replicas=0" in error and "set worker.replicas to 1 or more" in error


def test_unknown_config_key_fails_with_the_schema_message() -> None:
    """An unknown config key fails through the embedded schema."""
    error = render_error("config.session.ttl=5m")
    assert "at '/config/session': additional properties 'ttl' not allowed" in error


def test_bad_duration_fails_with_the_schema_message() -> None:
    """A bad duration fails through the embedded schema's $defs.duration."""
    error = render_error("config.session.max_age=10x")
    assert "at '/config/session/max_age': '10x' does not match pattern" in error


def test_unknown_preset_fails_with_the_allowed_set() -> None:
    """An unknown resources preset names the allowed values."""
    error = render_error("worker.resourcesPreset=xl")
    assert "at '/worker/resourcesPreset': value must be one of 'none', 'small', 'medium', 'large'" in error


def test_min_available_at_or_above_replicas_fails() -> None:
    """podDisruptionBudget.minAvailable >= replicas would block every drain."""
    error = render_error("podDisruptionBudget.minAvailable=2")
    assert "podDisruptionBudget.minAvailable=2 is not below the 2 coordinator replicas" in error
    assert "set podDisruptionBudget.minAvailable to 1 or less, or raise coordinator.replicas" in error


def test_min_available_is_checked_against_the_hpa_minimum() -> None:
    """With autoscaling the PDB check uses autoscaling.minReplicas."""
    error = render_error(
        "autoscaling.enabled=true", "autoscaling.minReplicas=2", "podDisruptionBudget.minAvailable=2"
    )
    assert "is not below the 2 coordinator replicas" in error


def test_min_available_of_100_percent_fails() -> None:
    """A 100% minAvailable blocks every eviction."""
    error = render_error("podDisruptionBudget.minAvailable=100%")
    assert "podDisruptionBudget.minAvailable=100% blocks every voluntary eviction" in error


def test_memory_store_across_replicas_without_affinity_fails() -> None:
    """Several memory-store replicas without ClientIP affinity would lose sessions."""
    error = render_error("coordinator.replicas=3", "service.sessionAffinity=None")
    assert "coordinator.replicas=3 with config.session.store=memory loses sessions across replicas" in error
    assert "set redis.enabled=true with redis.url, or service.sessionAffinity=ClientIP" in error


def test_short_termination_grace_fails() -> None:
    """terminationGracePeriodSeconds must exceed preStop + shutdown_grace + drain_delay + tool_timeout."""
    error = render_error("coordinator.terminationGracePeriodSeconds=60")
    assert "coordinator.terminationGracePeriodSeconds=60 does not exceed" in error
    assert "= 340s" in error
    assert "set coordinator.terminationGracePeriodSeconds to 341 or more" in error


def test_termination_grace_check_parses_compound_durations() -> None:
    """1h30m of tool timeout is 5400 s, so a 600 s grace fails."""
    error = render_error("config.limits.tool_timeout=1h30m", "coordinator.terminationGracePeriodSeconds=600")
    assert "config.limits.tool_timeout (5400s)" in error


def test_fluentbit_with_the_stdout_audit_backend_fails() -> None:
    """FluentBit tails the audit file, so it needs the file backend."""
    error = render_error("fluentbit.enabled=true")
    assert "fluentbit.enabled=true with config.audit.backend=stdout" in error
    assert "set config.audit.backend=file" in error


def test_auth_without_tokens_fails() -> None:
    """config.auth.enabled without a Secret or tokens would refuse every call."""
    error = render_error("config.auth.enabled=true")
    assert "config.auth.enabled=true with no tokens" in error
    assert "set auth.existingSecret=SECRET" in error


def test_redis_without_url_fails() -> None:
    """redis.enabled needs redis.url."""
    error = render_error("redis.enabled=true")
    assert "redis.enabled=true with an empty redis.url" in error and "set redis.url=" in error


def test_redis_store_without_redis_settings_fails() -> None:
    """config.session.store=redis alone would look for Redis on 127.0.0.1."""
    error = render_error("config.session.store=redis")
    assert "config.session.store=redis without redis.enabled" in error


def test_disabled_worker_without_url_fails() -> None:
    """worker.enabled=false needs an external config.worker.url."""
    error = render_error("worker.enabled=false")
    assert "worker.enabled=false with no config.worker.url" in error
    assert "set config.worker.url=http://WORKER:8081 or worker.enabled=true" in error


def test_shared_read_write_once_audit_claim_fails() -> None:
    """More than one replica cannot share a ReadWriteOnce audit claim."""
    error = render_error("coordinator.replicas=2", values=OBSERVABILITY)
    assert "audit.persistence.accessModes has no ReadWriteMany" in error
    assert "set audit.persistence.accessModes=[ReadWriteMany]" in error


def test_audit_file_outside_the_volume_fails() -> None:
    """config.audit.file_path must stay under /var/log/audit."""
    error = render_error("config.audit.file_path=/tmp/audit.jsonl", values=OBSERVABILITY)
    assert "config.audit.file_path=/tmp/audit.jsonl is outside /var/log/audit" in error


def test_worker_workspace_root_must_be_the_volume() -> None:
    """worker.config.workspace_root must be /workspaces, where the volume is mounted."""
    error = render_error("worker.config.workspace_root=/data")
    assert (
        "worker.config.workspace_root=/data" in error
        and "set worker.config.workspace_root=/workspaces" in error
    )


def test_hpa_minimum_above_maximum_fails() -> None:
    """autoscaling.minReplicas above maxReplicas fails."""
    error = render_error("autoscaling.enabled=true", "autoscaling.minReplicas=5", "autoscaling.maxReplicas=3")
    assert "autoscaling.minReplicas=5 is above autoscaling.maxReplicas=3" in error


def test_every_failure_is_reported_at_once() -> None:
    """Two mistakes give two messages in one run."""
    error = render_error("coordinator.replicas=0", "fluentbit.enabled=true")
    assert "coordinator.replicas=0" in error and "fluentbit.enabled=true" in error


def test_pdb_without_min_or_max_fails() -> None:
    """An enabled PDB needs minAvailable or maxUnavailable."""
    error = render_error("podDisruptionBudget.minAvailable=null")
    assert "podDisruptionBudget.enabled=true with neither minAvailable nor maxUnavailable" in error


def test_a_misspelt_top_level_value_fails_and_points_at_the_real_keys() -> None:
    """replicaCount (the usual Helm spelling) is not silently ignored: it fails naming coordinator.replicas."""
    error = render_error("replicaCount=3")
    assert "replicaCount: unknown top-level value" in error
    assert "replica counts live at coordinator.replicas and worker.replicas" in error


def test_the_validate_helper_knows_exactly_the_schemas_top_level_keys() -> None:
    """The helper's list of top-level values matches values.schema.json, so no real key is ever refused."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    helper = (CHART / "templates" / "_validate.tpl").read_text()
    listed = re.search(r'\$known := list ((?:"[A-Za-z]+" ?)+)', helper)
    assert listed is not None
    assert re.findall(r'"([A-Za-z]+)"', listed.group(1)) == list(schema["properties"])


def test_an_auth_token_shorter_than_the_coordinator_accepts_fails_at_install() -> None:
    """The chart refuses tokens under 16 characters, as the coordinator does, instead of crash-looping pods."""
    error = render_error(
        "config.auth.enabled=true", "auth.tokens[0].name=alice", "auth.tokens[0].token=shorttok8"
    )
    assert "at '/auth/tokens/0/token': minLength: got 9, want 16" in error
