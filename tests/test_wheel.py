"""``pip wheel .`` holds everything build-repo and seg-serve need at run time, and that code alone
builds and serves a repository; ``pip install segstack`` without extras queries a served model
and has no torch, and the commands that need an extra say which one.

The wheel is built offline (``--no-deps --no-build-isolation``) from a copy of the source tree, so
setuptools' ``build/`` folder never lands in the working tree and no stale file from an earlier
build can slip into the wheel."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import MODEL, REPO_ROOT
from tests.schema_check import validate_image_records

NOT_SHIPPED = {"tests", "demo", "benchmarks"}
# every package of the source tree but those: a new one the wheel leaves out fails here
PACKAGES = sorted(p.parent.name for p in REPO_ROOT.glob("*/__init__.py") if p.parent.name not in NOT_SHIPPED)
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
        "build-repo = builder.entry:main",
        "seg-serve = serving.cli:main",
        "seg-client = clients.cli:main",
        "seg-train = training.entry:main",
        "seg-review = review.entry:main",
    ):
        assert line in entry_points, entry_points


def _script(module: str, function: str, name: str) -> list[str]:
    """``python -c`` running a console script's entry point, as the installed script would."""
    code = f"import sys; from {module} import {function}; sys.argv[0] = {name!r}; sys.exit({function}())"
    return [sys.executable, "-c", code]


@pytest.mark.integration
def test_the_unpacked_wheel_builds_and_serves_a_repository(wheel, yolo_checkpoint, sample_images, tmp_path):
    from clients.triton.client import SegmentationClient
    from tests.helpers import SEG_SERVE_READY, seg_serve_cleanup, wait_seg_serve_ready

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
        [*_script("builder.entry", "main", "build-repo"), *args, "--quiet"], timeout=600, **run
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
    with seg_serve_cleanup(proc):
        line = wait_seg_serve_ready(proc)[-1]
        assert SEG_SERVE_READY in line
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


def _fresh_venv(folder: Path) -> tuple[Path, dict[str, str]]:
    """A new virtual environment (no system site packages) and an environment that activates it, with
    nothing of this checkout or of the test's own environment on the import path."""
    created = subprocess.run(
        [sys.executable, "-m", "venv", str(folder)], capture_output=True, text=True, timeout=300
    )
    assert created.returncode == 0, created.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(folder / "bin"), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(folder)
    return folder / "bin", env


@pytest.mark.integration
def test_the_base_install_queries_a_served_model_without_torch(wheel, triton, sample_images, tmp_path):
    from pycocotools import mask as mask_utils

    venv_bin, env = _fresh_venv(tmp_path / "venv")
    run = {"cwd": tmp_path, "env": env, "capture_output": True, "text": True}  # cwd: not the source tree
    started = time.monotonic()
    pip = subprocess.run(
        [str(venv_bin / "python"), "-m", "pip", "install", "--quiet", str(wheel)], timeout=900, **run
    )
    took = time.monotonic() - started
    assert pip.returncode == 0, (
        f"pip install {wheel.name} failed after {took:.0f} s:\n{pip.stdout}\n{pip.stderr}"
    )
    print(f"pip install {wheel.name} into a fresh venv: {took:.1f} s")  # pytest -rP shows it

    no_torch = subprocess.run([str(venv_bin / "python"), "-c", "import torch"], timeout=60, **run)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr, no_torch.stderr
    where = subprocess.run(
        [str(venv_bin / "python"), "-c", "import clients; print(clients.__file__)"], timeout=60, **run
    )
    assert Path(where.stdout.strip()).resolve().is_relative_to((tmp_path / "venv").resolve()), where

    for command, extra, first in (
        ("build-repo", "build", "torch"),
        ("seg-train", "train", "torch"),
        ("seg-review", "review", "starlette"),
    ):
        refused = subprocess.run([str(venv_bin / command), "--help"], timeout=60, **run)
        assert refused.returncode == 2, (refused.stdout, refused.stderr)
        assert refused.stdout == ""
        install = f"pip install 'segstack[{extra}]'"
        assert refused.stderr == f"{command}: needs the {extra} extra: {install} ({first} is not installed)\n"
    served_help = subprocess.run([str(venv_bin / "seg-serve"), "--help"], timeout=60, **run)
    assert served_help.returncode == 0 and "Usage: seg-serve" in served_help.stdout, served_help.stderr

    out = tmp_path / "results"
    args = ["infer", "--source", str(sample_images), "--model", MODEL, "--url", triton.grpc_url,
            "--out", str(out)]  # fmt: skip
    infer = subprocess.run([str(venv_bin / "seg-client"), *args], timeout=300, **run)
    assert infer.returncode == 0, (
        f"seg-client infer from the base install failed:\n{infer.stdout}\n{infer.stderr}"
    )
    images = sorted(p.stem for p in sample_images.iterdir())
    assert sorted(p.stem for p in out.glob("*.json")) == images
    assert validate_image_records(out) == len(images)
    detections = 0
    for path in out.glob("*.json"):
        record = json.loads(path.read_text())
        assert record["model"] == MODEL
        for detection in record["detections"]:
            rle = {**detection["segmentation"], "counts": detection["segmentation"]["counts"].encode()}
            assert mask_utils.decode(rle).shape == (record["height"], record["width"])
            detections += 1
    assert detections, "the served model found nothing in any image"
