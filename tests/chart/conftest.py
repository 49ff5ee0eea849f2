"""Chart tier fixtures: the helm binary and the chart/ci scenarios, rendered once per session."""

from __future__ import annotations

import pytest
from chartlib import HELM, SCENARIOS, SKIP_REASON, Rendered, scenario


@pytest.fixture(scope="session")
def helm() -> str:
    """Path of the helm binary; skips the test when helm is not installed."""
    if HELM is None:
        pytest.skip(SKIP_REASON)
    return HELM


@pytest.fixture(scope="session")
def scenarios(helm: str) -> dict[str, Rendered]:
    """Every chart/ci scenario, rendered once per session."""
    return {name: scenario(name) for name in SCENARIOS}
