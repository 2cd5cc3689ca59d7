"""``pip wheel .`` holds everything build-repo and seg-serve need at run time, and that code alone
builds and serves a repository.

The wheel is built offline (``--no-deps --no-build-isolation``) from a copy of the source tree, so
setuptools' ``build/`` folder never lands in the working tree and no stale file from an earlier
build can slip into the wheel."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import MODEL, REPO_ROOT

PACKAGES = [
    "builder",
    "clients",
    "serving",
    "training",
    "segcontract",
    "segops",
    "store",
    "python_backend_models",
    "model_checkpoints",
]
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc")


def _source_files(package: str) -> list[str]:
    """Every file of a package in the source tree, as wheel member names."""
    root = REPO_ROOT / package
    return sorted(
        p.relative_to(REPO_ROOT).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("wheel-source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, source / package, ignore=SKIP)
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "--quiet"]
    proc = subprocess.run(
        [*cmd, "--no-index", "-w", str(out)], cwd=source, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    (built,) = out.glob("segstack-*.whl")
    return built


def test_the_wheel_holds_every_module_and_data_file(wheel):
    members = set(zipfile.ZipFile(wheel).namelist())
    assert "python_backend_models/requirements.txt" in members, "seg-serve installs the server's env from it"
    named = [
        *(REPO_ROOT / "python_backend_models").glob("*.py"),
        *(REPO_ROOT / "segops").glob("*.py"),
        *(REPO_ROOT / "segcontract").glob("*.py"),
        *(REPO_ROOT / "segcontract" / "schemas").glob("*.json"),
    ]
    missing = sorted({p.relative_to(REPO_ROOT).as_posix() for p in named} - members)
    assert not missing, f"not in {wheel.name}: {missing}"
    for package in PACKAGES:
        missing = [f for f in _source_files(package) if f not in members]
        assert not missing, f"not in {wheel.name} (declare data files in package-data): {missing}"
    assert not [m for m in members if m.startswith(("tests/", "demo/", "benchmarks/"))]


def test_the_wheel_declares_the_console_scripts(wheel):
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")]
        entry_points = zf.read(name).decode()
    for line in (
        "build-repo = builder.cli:entry",
        "seg-serve = serving.cli:main",
        "seg-client = clients.cli:main",
        "seg-train = training.cli:main",
    ):
        assert line in entry_points, entry_points


def _script(module: str, function: str, name: str) -> list[str]:
    """``python -c`` running a console script's entry point, as the installed script would."""
    code = f"import sys; from {module} import {function}; sys.argv[0] = {name!r}; sys.exit({function}())"
    return [sys.executable, "-c", code]


@pytest.mark.integration
def test_the_unpacked_wheel_builds_and_serves_a_repository(wheel, yolo_checkpoint, sample_images, tmp_path):
    from clients.triton.client import SegmentationClient
    from tests.integration.test_seg_serve import READY, _cleanup, _wait_ready

    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(unpacked)
    env = {**os.environ, "PYTHONPATH": str(unpacked)}
    run = {"cwd": tmp_path, "env": env, "capture_output": True, "text": True}  # cwd: not the source tree

    where = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import {', '.join(PACKAGES)}; " + "; ".join(f"print({p}.__file__)" for p in PACKAGES),
        ],
        timeout=120,
        **run,
    )
    assert where.returncode == 0, where.stderr
    for file in where.stdout.split():
        assert Path(file).resolve().is_relative_to(unpacked.resolve()), f"{file} is not the wheel's code"

    repo = tmp_path / "repository"
    args = [
        "--model",
        MODEL,
        "--weights",
        str(yolo_checkpoint),
        "--output",
        str(repo),
        "--runtime",
        "python-onnx",
    ]
    build = subprocess.run(
        [*_script("builder.cli", "entry", "build-repo"), *args, "--quiet"], timeout=600, **run
    )
    assert build.returncode == 0, f"build-repo from the wheel failed:\n{build.stdout}\n{build.stderr}"
    served = repo / MODEL / "1"
    wheel_models = unpacked / "python_backend_models"
    assert (served / "model.py").read_bytes() == (wheel_models / "yolo_seg_pipeline.py").read_bytes()
    for step in ("image_preprocess", "onnx_model", "yolo_seg_postprocess"):
        assert (served / f"{step}.py").read_bytes() == (wheel_models / f"{step}.py").read_bytes()
    assert (served / "segops").is_dir() and (served / "segcontract").is_dir()

    serve_args = [
        "--model-repository",
        str(repo),
        "--http-port",
        "0",
        "--grpc-port",
        "0",
        "--metrics-port",
        "0",
    ]
    proc = subprocess.Popen(
        [
            *_script("serving.cli", "main", "seg-serve"),
            *serve_args,
            "--log-file",
            str(tmp_path / "serve.log"),
        ],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    with _cleanup(proc):
        line = _wait_ready(proc)[-1]
        assert READY in line
        client = SegmentationClient(re.search(r"gRPC (\S+)", line).group(1))
        assert MODEL in client.served_models()
        image = sample_images / "scene0.jpg"  # 480x640
        result = client.infer_instances(MODEL, image.read_bytes())
        assert (result.height, result.width) == (480, 640)
        assert len(result.boxes) == len(result.scores) == len(result.masks)
        client.close()
        # the store's migrations travel in the wheel: a new store is created from them
        url = re.search(r"gRPC (\S+)", line).group(1)
        store = f"sqlite:///{tmp_path / 'segments.db'}"
        seg = [*_script("clients.cli", "main", "seg-client"), "segments"]
        built = subprocess.run(
            [*seg, "build", "--source", str(sample_images), "--model", MODEL, "--url", url, "--db", store],
            timeout=300,
            **run,
        )
        assert built.returncode == 0, f"segments build from the wheel failed:\n{built.stdout}\n{built.stderr}"
        status = subprocess.run([*seg, "status", "--db", store], timeout=60, **run)
        assert f"{MODEL}: {len(list(sample_images.iterdir()))} images segmented" in status.stdout, (
            status.stdout
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
