"""helm lint --strict over the chart's defaults and every chart/ci scenario."""

from __future__ import annotations

import subprocess

import pytest
from chartlib import CHART, CI_VALUES


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=["no-values", *[p.name for p in CI_VALUES]])
def test_helm_lint_strict_passes(helm: str, values: object) -> None:
    """`helm lint --strict` reports no warning for the defaults or any scenario."""
    args = [helm, "lint", "--strict", str(CHART)]
    if values is not None:
        args += ["--values", str(values)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout


def test_ci_matrix_holds_the_five_scenarios() -> None:
    """chart/ci holds exactly the default, ha, secure, observability and minimal scenarios."""
    assert sorted(p.name for p in CI_VALUES) == sorted(
        f"{name}-values.yaml" for name in ("default", "ha", "secure", "observability", "minimal")
    )
