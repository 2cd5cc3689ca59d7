"""Shared fixtures. Offline settings are made before anything imports ultralytics."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_YOLO_CONFIG = Path(tempfile.gettempdir()) / "segstack-tests-ultralytics"
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(_YOLO_CONFIG))
os.environ.setdefault("YOLO_VERBOSE", "False")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # smp: no ImageNet download attempts

# A shell without job control starts a background job (`make test &`, `nohup ... &`) with SIGINT
# ignored, and every process it starts inherits that: the Ctrl-C tests would send their command a
# signal it never sees. Handled here, so the commands start with Python's default (exec resets a
# handled signal), as they do from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _font_for_ultralytics() -> None:
    """Ultralytics downloads Arial.ttf for plotting unless one is there: use matplotlib's DejaVu."""
    target = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics" / "Arial.ttf"
    if not target.exists():
        import matplotlib

        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", target)


_font_for_ultralytics()

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
IMGSZ = 320
MODEL = "yolov8n-seg"
SQUARE_MODEL = f"{MODEL}-square"  # the one model padding to the square: in ensemble_repository


def run_cli(
    name: str, *args: str, check: bool = True, timeout: float = 600, as_user: bool = False
) -> subprocess.CompletedProcess:
    """Run one of our console scripts as a user would. ``as_user`` also drops PYTEST_CURRENT_TEST,
    which makes ultralytics switch its loggers (TensorBoard...) off."""
    env = {k: v for k, v in os.environ.items() if not (as_user and k == "PYTEST_CURRENT_TEST")}
    proc = subprocess.run([str(BIN / name), *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{name} {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def answered_requests(triton, model: str = MODEL) -> int:
    """How many requests ``model`` on ``triton`` has answered, by Triton's own count (/metrics)."""
    import re
    import urllib.request

    with urllib.request.urlopen(f"http://{triton.metrics_url}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    found = re.search(
        rf'nv_inference_request_success{{model="{re.escape(model)}",version="1"}} (\d+)', metrics
    )
    assert found, metrics[:2000]
    return int(found.group(1))


@pytest.fixture(scope="session")
def yolo_checkpoint(tmp_path_factory) -> Path:
    from tests.fixtures.random_checkpoints import make_random_yolo_seg

    return make_random_yolo_seg(tmp_path_factory.mktemp("weights") / "yolov8n-seg-random.pt", imgsz=IMGSZ)


@pytest.fixture(scope="session")
def sample_images(tmp_path_factory) -> Path:
    """Scenes of several sizes and every format/channel layout the server must decode."""
    import cv2
    import numpy as np

    from tests.fixtures.synthetic import make_scene

    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(5)
    for i, (h, w, ext) in enumerate(
        [(480, 640, "jpg"), (640, 480, "png"), (320, 320, "bmp"), (720, 1280, "webp"), (333, 517, "jpg")]
    ):
        cv2.imwrite(str(folder / f"scene{i}.{ext}"), make_scene(h, w, rng)[0])
    image = make_scene(400, 300, rng)[0]
    cv2.imwrite(str(folder / "gray.png"), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "bgra.png"), cv2.cvtColor(image, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(folder / "deep16.png"), image.astype(np.uint16) * 257)
    return folder


def _build(repo: Path, checkpoint: Path, *options: str) -> Path:
    run_cli("build-repo", "--model", MODEL, "--weights", str(checkpoint), "--output", str(repo),
            "--runtime", "python-onnx", "--quiet", *options)  # fmt: skip
    return repo


@pytest.fixture(scope="session")
def built_repository(tmp_path_factory, yolo_checkpoint) -> Path:
    """build-repo's defaults: python-onnx, the model served as one Python model."""
    return _build(tmp_path_factory.mktemp("repository"), yolo_checkpoint)


@pytest.fixture(scope="session")
def ensemble_repository(tmp_path_factory, yolo_checkpoint) -> Path:
    """The same build as the three-model ensemble (build-repo --ensemble), and beside it as one
    model fed the full square like the ensemble (build-repo --square, named SQUARE_MODEL)."""
    repo = _build(tmp_path_factory.mktemp("ensemble-repository"), yolo_checkpoint, "--ensemble")
    return _build(repo, yolo_checkpoint, "--square", "--name", SQUARE_MODEL)


def _served(repository: Path, logs: Path):
    """A real tritonserver on free loopback ports, stopped by PID at the end of the session."""
    from serving.tritonserver import TritonServer

    server = TritonServer(repository, log_path=logs / "tritonserver.log")
    server.start(timeout_s=180)
    pid = server.process.pid
    yield server
    server.stop()
    assert not _pid_alive(pid), f"tritonserver {pid} still running"


@pytest.fixture(scope="session")
def triton(built_repository, tmp_path_factory):
    """built_repository served."""
    yield from _served(built_repository, tmp_path_factory.mktemp("logs"))


@pytest.fixture(scope="session")
def ensemble_triton(ensemble_repository, tmp_path_factory):
    """ensemble_repository served: for the tests of a composing model."""
    yield from _served(ensemble_repository, tmp_path_factory.mktemp("ensemble-logs"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def free_port_url() -> str:
    """An address nothing listens on."""
    from serving.tritonserver import free_port

    return f"127.0.0.1:{free_port()}"


# the segment store's databases: SQLite and a real PostgreSQL (tests/fixtures/databases.py)
from tests.fixtures.databases import database_url, postgres_server  # noqa: E402, F401
