"""kind tier: every test here skips, with one line saying why, unless a Kubernetes API server answers.

ci/kind-e2e.sh sets E2E_REQUIRED=1: there a missing cluster or release fails the run instead of skipping it,
so that the kind job can never go green on skipped tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from e2e_support import NAMESPACE, RELEASE, Release, cluster_unreachable_reason
from kubernetes import client

HERE = Path(__file__).resolve().parent
REQUIRED = os.environ.get("E2E_REQUIRED") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the e2e items when no cluster is reachable; probed once, and only if e2e tests were collected."""
    ours = [item for item in items if HERE in Path(str(item.path)).resolve().parents]
    if not ours:
        return
    reason = cluster_unreachable_reason()
    if reason is None:
        return
    if REQUIRED:
        raise pytest.UsageError(f"E2E_REQUIRED=1 but {reason}")
    for item in ours:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def release() -> Release:
    """The release that ci/kind-e2e.sh installed (E2E_RELEASE in E2E_NAMESPACE)."""
    core = client.CoreV1Api()
    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=coordinator"
    if not core.list_namespaced_pod(NAMESPACE, label_selector=selector).items:
        missing = f"no release {RELEASE!r} in namespace {NAMESPACE!r}; ci/kind-e2e.sh installs it"
        if REQUIRED:
            pytest.fail(f"E2E_REQUIRED=1 but {missing}")
        pytest.skip(missing)
    return Release(
        namespace=NAMESPACE,
        name=RELEASE,
        core=core,
        apps=client.AppsV1Api(),
        policy=client.PolicyV1Api(),
        networking=client.NetworkingV1Api(),
    )
