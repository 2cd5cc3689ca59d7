"""TensorBoard from every trainer: a short training of each writes event files whose scalars, read
back with TensorBoard's own reader, are the numbers its CSV holds; --no-tensorboard writes none;
``seg-train tensorboard`` serves a run folder on loopback (its HTTP API lists the run and its tags)."""

from __future__ import annotations

import csv
import json
import math
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import BIN, run_cli
from tests.fixtures.postgres import free_port
from tests.fixtures.shapes_classes import write_shape_group
from tests.fixtures.synthetic import write_coco_dataset, write_semantic_dataset

CLASSIFY_FAST = ("--arch", "resnet10t", "--imgsz", "64", "--batch-size", "16", "--workers", "0")


def event_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """Every scalar of the event files directly in ``folder``, by tag and step, as TensorBoard's
    EventAccumulator reads them (a later value at a step replaces an earlier one)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, dict[int, float]] = {}
    for path in sorted(folder.glob("events.out.tfevents*")):
        events = EventAccumulator(str(path), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            out.setdefault(tag, {}).update({e.step: e.value for e in events.Scalars(tag)})
    return out


def event_tags(folder: Path) -> dict[str, object]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"images": 0})
    events.Reload()
    return events.Tags()


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f)]


def assert_same(logged: dict[str, dict[int, float]], expected: dict[str, dict[int, float]]) -> None:
    """Each expected (tag, step) value is in the event files, to float32 precision."""
    for tag, by_step in expected.items():
        assert tag in logged, f"{tag} not in the event files: {sorted(logged)}"
        for step, value in by_step.items():
            assert step in logged[tag], f"{tag}: no step {step} (has {sorted(logged[tag])})"
            got = logged[tag][step]
            assert math.isclose(got, value, rel_tol=2e-5, abs_tol=1e-7), (tag, step, got, value)


# --- YOLO: ultralytics' own TensorBoard callback, its names, against results.csv


@pytest.fixture(scope="module")
def yolo_data(tmp_path_factory) -> Path:
    from training.coco2yolo import convert

    root = tmp_path_factory.mktemp("tiny")
    classes = {"circle": 1, "rectangle": 2, "triangle": 3}
    write_coco_dataset(root / "src" / "a", classes, 10, np.random.default_rng(0), sizes=((64, 96), (96, 64)))
    convert(root / "src", root / "yolo", val_fraction=0.3)
    return root / "yolo" / "data.yaml"


def _ultralytics_settings() -> dict:
    from ultralytics.utils import SETTINGS_FILE

    return json.loads(Path(SETTINGS_FILE).read_text()) if Path(SETTINGS_FILE).is_file() else {}


@pytest.mark.slow
def test_yolo_scalars_are_results_csv_and_the_users_settings_stay(yolo_data, tmp_path):
    before = {k: _ultralytics_settings().get(k) for k in ("tensorboard", "wandb")}
    run_cli(
        "seg-train",
        "yolo",
        "--data",
        str(yolo_data),
        "--model",
        "yolov8n-seg.yaml",
        "--epochs",
        "2",
        "--imgsz",
        "64",
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "--quiet",
        "workers=0",
        "plots=False",
        f"project={tmp_path / 'runs'}",
        "name=board",
        timeout=900,
        as_user=True,  # ultralytics logs nothing to TensorBoard under pytest
    )
    run_dir = tmp_path / "runs" / "board"
    logged = event_scalars(run_dir)
    wanted = {"metrics/mAP50(B)", "metrics/mAP50-95(M)", "lr/pg0", "train/box_loss", "train/seg_loss"}
    assert wanted | {"val/box_loss", "val/seg_loss"} <= set(logged), sorted(logged)
    rows = csv_rows(run_dir / "results.csv")
    assert [int(float(r["epoch"])) for r in rows] == [1, 2]
    expected: dict[str, dict[int, float]] = {}
    for row in rows:
        for column, value in row.items():
            if column not in ("epoch", "time") and value:
                expected.setdefault(column, {})[int(float(row["epoch"]))] = float(value)
    assert wanted <= set(expected)
    assert_same(logged, expected)
    assert event_tags(run_dir)["graph"], "the model's graph"
    assert {k: _ultralytics_settings().get(k) for k in ("tensorboard", "wandb")} == before


def test_yolo_logger_settings_are_put_back():
    from ultralytics import settings

    from training.yolo_train import run_loggers

    before = settings["tensorboard"]
    with run_loggers(tensorboard=not before) as line:
        assert settings["tensorboard"] is (not before)
        assert line.startswith("TensorBoard off (--no-tensorboard)" if before else "TensorBoard on")
    assert settings["tensorboard"] is before


# --- semantic: our SummaryWriter, against the metrics.csv beside it


@pytest.mark.slow
def test_semantic_scalars_are_its_metrics_csv(tmp_path):
    data = write_semantic_dataset(tmp_path / "data", 10, np.random.default_rng(0))
    out = tmp_path / "runs"
    run_cli(
        "seg-train",
        "semantic",
        "--data-root",
        str(data),
        "--num-classes",
        "4",
        "--model-name",
        "shapes",
        "--batch-size",
        "4",
        "--size",
        "96",
        "64",
        "--epochs",
        "2",
        "--output-dir",
        str(out),
        "--workers",
        "0",
        timeout=900,
    )
    rows = csv_rows(out / "shapes" / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    columns = {"train_loss": "train/loss", "val_loss": "val/loss", "val_mIoU": "val/mIoU", "lr": "lr"}
    expected = {tag: {int(r["epoch"]): float(r[col]) for r in rows} for col, tag in columns.items()}
    board = out / "shapes" / "tensorboard"
    assert_same(event_scalars(board), expected)
    assert any(tag.startswith("val/IoU/") for tag in event_scalars(board))
    assert event_tags(board)["images"] == ["val/predictions"]


# --- classify: Lightning's TensorBoardLogger, against its CSVLogger


@pytest.fixture(scope="module")
def classify_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("classify")
    write_shape_group(root, "shapes", per_class=20, size=64, seed=0)
    run_cli(
        "seg-train",
        "classify",
        "--data-root",
        str(root),
        *CLASSIFY_FAST,
        "--cat",
        "shapes",
        "--epochs",
        "2",
        "--no-pretrained",
        "--experiment",
        "board",
        timeout=300,
    )
    return root / "DATA" / "models" / "shapes" / "board"


@pytest.mark.slow
def test_classify_scalars_are_its_metrics_csv(classify_run):
    rows = csv_rows(classify_run / "csv_logs" / "metrics.csv")
    expected: dict[str, dict[int, float]] = {}
    for row in rows:
        for column, value in row.items():
            if column not in ("epoch", "step") and value:
                expected.setdefault(column, {})[int(row["step"])] = float(value)
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr-AdamW"} <= set(expected), sorted(expected)
    assert len(expected["val_acc"]) == 2 and len(expected["lr-AdamW"]) == 2
    board = classify_run / "tensorboard"
    assert_same(event_scalars(board), expected)
    assert event_tags(board)["images"] == ["val/predictions"]


@pytest.mark.slow
def test_no_tensorboard_writes_no_event_files(tmp_path):
    write_shape_group(tmp_path, "shapes", per_class=8, size=64, seed=0)
    proc = run_cli(
        "seg-train",
        "classify",
        "--data-root",
        str(tmp_path),
        *CLASSIFY_FAST,
        "--cat",
        "shapes",
        "--epochs",
        "1",
        "--no-pretrained",
        "--experiment",
        "quiet",
        "--no-tensorboard",
        timeout=300,
    )
    run_dir = tmp_path / "DATA" / "models" / "shapes" / "quiet"
    assert (run_dir / "csv_logs" / "metrics.csv").is_file()
    assert not list(run_dir.rglob("events.out.tfevents*")) and not (run_dir / "tensorboard").exists()
    assert "TensorBoard off" in proc.stderr


# --- seg-train tensorboard: a real TensorBoard over a run folder


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def serve(runs_dir: Path, port: int) -> tuple[subprocess.Popen, str]:
    """``seg-train tensorboard`` started, with the URL its first line prints."""
    proc = subprocess.Popen(
        [str(BIN / "seg-train"), "tensorboard", str(runs_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip()
    if not line.startswith("TensorBoard at "):
        proc.kill()
        raise AssertionError(f"{line!r}\n{proc.stderr.read()}")
    return proc, line.removeprefix("TensorBoard at ").removesuffix(" (Ctrl-C stops)")


def wait_for_run(url: str, run: str, timeout: float = 60) -> dict:
    """The scalar tags TensorBoard serves for ``run``, once /data/runs lists it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if run in _get_json(url + "data/runs"):
                tags = _get_json(url + "data/plugin/scalars/tags")
                if tags.get(run):
                    return tags[run]
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"TensorBoard at {url} never listed {run}")
        time.sleep(0.5)


@pytest.mark.slow
def test_tensorboard_serves_the_run_on_loopback(classify_run):
    port = free_port()
    proc, url = serve(classify_run.parent, port)
    try:
        assert url == f"http://127.0.0.1:{port}/"
        tags = wait_for_run(url, "board/tensorboard")
        assert {"train_loss", "val_acc", "lr-AdamW"} <= set(tags), tags
    finally:
        proc.terminate()  # by its PID
        rc = proc.wait(timeout=20)
    assert rc == 0, proc.stderr.read()


def test_tensorboard_refuses_a_missing_folder_in_one_line(tmp_path):
    proc = run_cli("seg-train", "tensorboard", str(tmp_path / "nope"), check=False)
    assert proc.returncode == 2
    why = "no such folder; give the folder the trainers write their runs to"
    assert proc.stderr.strip().splitlines() == [f"seg-train: error: {tmp_path / 'nope'}: {why}"]


def test_tensorboard_refuses_a_port_in_use_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli(
            "seg-train", "tensorboard", str(tmp_path), "--port", str(port), check=False, timeout=60
        )
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"seg-train: error: 127.0.0.1:{port}: "), proc.stderr
