"""The images themselves: user, labels, final-stage contents, read-only root, the worker's session venvs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from container_support import CHART_SECURITY, Docker, Images, writable_dir

pytestmark = pytest.mark.slow

OCI_LABELS = (
    "org.opencontainers.image.title",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.created",
    "org.opencontainers.image.licenses",
)


def _run(docker: Docker, image: str, script: str, *extra: str, check: bool = True) -> str:
    """Run `sh -c SCRIPT` in IMAGE with the chart's securityContext and no network; answer stdout."""
    proc = docker.run(
        "run", "--rm", "--network", "none", *CHART_SECURITY, *extra,
        "--entrypoint", "sh", image, "-c", script,
        check=check,
    )
    return proc.stdout


@pytest.mark.parametrize("component", ["coordinator", "worker"])
def test_image_runs_as_uid_1000_and_carries_oci_labels(
    docker: Docker, images: Images, component: str
) -> None:
    """Each image's config names user 1000:1000, its console script as entrypoint, and the OCI labels."""
    image = getattr(images, component)
    config = json.loads(docker.run("image", "inspect", "--format", "{{json .Config}}", image).stdout)
    assert config["User"] == "1000:1000"
    assert config["Entrypoint"] == [component]
    labels = config["Labels"]
    for label in OCI_LABELS:
        assert labels.get(label), f"{image} lacks the label {label}"
    assert labels["org.opencontainers.image.title"] == f"codegen-mcp-{component}"
    assert any(entry.startswith("HOST=0.0.0.0") for entry in config["Env"])


@pytest.mark.parametrize("component", ["coordinator", "worker"])
def test_final_stage_carries_no_build_tools(docker: Docker, images: Images, component: str) -> None:
    """No compiler, make or setuptools reaches the final stage: only the builder stage had them."""
    out = _run(
        docker,
        getattr(images, component),
        "for tool in gcc cc c++ make; do command -v $tool || true; done; "
        "python3 -c 'import importlib.util as u; print(u.find_spec(\"setuptools\") is not None)'",
    )
    assert out.split() == ["False"], out


@pytest.mark.parametrize("component", ["coordinator", "worker"])
def test_root_filesystem_is_read_only_and_only_mounts_are_writable(
    docker: Docker, images: Images, component: str, tmp_path: Path
) -> None:
    """Under --read-only the image writes nowhere but the /tmp tmpfs and its mounted data volume."""
    data = writable_dir(tmp_path, "data")
    target = "/workspaces"
    out = _run(
        docker,
        getattr(images, component),
        "for dir in /opt/codegen-mcp /etc /var /tmp " + target + "; do "
        "if touch $dir/probe 2>/dev/null; then echo writable $dir; else echo read-only $dir; fi; done",
        "--volume", f"{data}:{target}:rw",
    )
    assert out.splitlines() == [
        "read-only /opt/codegen-mcp",
        "read-only /etc",
        "read-only /var",
        "writable /tmp",
        f"writable {target}",
    ]
    assert (data / "probe").stat().st_uid == 1000


def test_worker_image_extends_a_session_venv_with_its_own_pip_under_read_only_root(
    docker: Docker, images: Images, tmp_path: Path
) -> None:
    """A session venv made in /workspaces takes a package from the worker's pip (`pip --python`), offline."""
    workspaces = writable_dir(tmp_path, "workspaces")
    out = _run(
        docker,
        images.worker,
        "set -e; "
        "python3 -c 'import venv; "
        "venv.EnvBuilder(with_pip=False, symlinks=True).create(\"/workspaces/s1/.venv\")'; "
        "python3 -m pip --python /workspaces/s1/.venv/bin/python install --quiet --no-index --no-cache-dir "
        "--find-links /wheelhouse idna; "
        "/workspaces/s1/.venv/bin/python -c 'import idna, sys; print(sys.prefix, idna.__name__)'",
        "--volume", f"{workspaces}:/workspaces:rw",
        "--volume", f"{images.wheelhouse}:/wheelhouse:ro",
    )
    assert out.split() == ["/workspaces/s1/.venv", "idna"]
    assert any((workspaces / "s1" / ".venv" / "lib").glob("python3*/site-packages/idna/__init__.py"))


def test_worker_image_validates_its_read_only_mounted_config(
    docker: Docker, images: Images, tmp_path: Path
) -> None:
    """`worker --check-config --config /etc/codegen-mcp-worker/config.yaml` accepts a mounted config."""
    config = tmp_path / "config.yaml"
    config.write_text("workspace_root: /workspaces\nmax_sessions: 8\n")
    config.chmod(0o644)
    proc = docker.run(
        "run", "--rm", "--network", "none", *CHART_SECURITY,
        "--volume", f"{config}:/etc/codegen-mcp-worker/config.yaml:ro",
        images.worker, "--config", "/etc/codegen-mcp-worker/config.yaml", "--check-config",
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def _builder_stage(dockerfile: Path) -> str:
    text = dockerfile.read_text()
    return text[text.index("FROM ${BASE_IMAGE} AS builder") : text.index("FROM ${BASE_IMAGE}\n")]


def test_builder_stages_are_identical_so_the_second_build_reuses_the_first() -> None:
    """docker/coordinator and docker/worker share their builder stage text, hence its layer cache."""
    docker_dir = Path(__file__).resolve().parents[2] / "docker"
    coordinator = _builder_stage(docker_dir / "coordinator" / "Dockerfile")
    assert "pip install" in coordinator
    assert coordinator == _builder_stage(docker_dir / "worker" / "Dockerfile")
