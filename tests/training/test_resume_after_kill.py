"""A training SIGKILLed after its first epoch and resumed with ``--resume RUN`` ends with the epoch
count, the metrics, the TensorBoard curves and the run.json history of an uninterrupted run of the
same length (``seg-train semantic``, ``classify`` and ``yolo``).

Every trainer seeds each epoch from (seed, epoch) alone and restores the weights and the optimizer
from the checkpoint, so on CPU a resumed semantic or classify run's numbers are the uninterrupted
run's exactly (yolo's: see its test). The killed attempt may have logged part of its second epoch;
a resumed run tells TensorBoard to purge what came after its checkpoint, so every epoch is on each
curve once, with the resumed run's value. The killed attempt stays ``running`` in run.json's
history: nothing runs to mark a SIGKILLed process.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import BIN, run_cli
from tests.fixtures.shapes_classes import write_shape_group
from tests.fixtures.synthetic import write_coco_dataset, write_semantic_dataset

pytestmark = pytest.mark.slow

EPOCHS = 3
KILL_WAIT_S = 600


def _scalars(board: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the run's TensorBoard folder as TensorBoard shows it (all event files,
    purges applied): tag -> [(step, value)] in order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(board), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _kill_after_first_checkpoint(args: list[str], checkpoint: Path, ready=lambda: True) -> None:
    """Start ``seg-train ARGS``, SIGKILL it as soon as ``checkpoint`` is on disk (written
    atomically by every trainer, so it is whole once it is there) and ``ready()``."""
    with tempfile.TemporaryFile() as err:  # not a pipe: the progress bars cannot fill it and block
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}  # as run_cli(as_user)
        proc = subprocess.Popen(
            [str(BIN / "seg-train"), *args], stdout=subprocess.DEVNULL, stderr=err, env=env
        )
        deadline = time.monotonic() + KILL_WAIT_S
        try:
            while not (checkpoint.is_file() and ready()):
                if proc.poll() is not None:
                    err.seek(0)
                    raise AssertionError(f"seg-train ended ({proc.returncode}): {err.read()[-2000:]!r}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"no {checkpoint} after {KILL_WAIT_S} s")
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _check_history(run_json: Path, resumed_from: Path) -> dict:
    """The killed attempt left as it was (``running``: nothing ran to mark it), the resumed one
    finished, the run's first start kept."""
    run = json.loads(run_json.read_text())
    killed, resumed = run["history"]
    assert killed["status"] == "running" and killed["ended_at"] is None and killed["resumed_from"] is None
    assert resumed["status"] == "finished" and resumed["resumed_from"] == str(resumed_from)
    assert run["status"] == "finished" and run["started_at"] == killed["started_at"]
    return run


# ---------------------------------------------------------------- seg-train semantic


@pytest.fixture(scope="module")
def semantic_data(tmp_path_factory):
    return write_semantic_dataset(tmp_path_factory.mktemp("semantic") / "data", 10, np.random.default_rng(0))


def _semantic_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "semantic",
        "--data_root",
        str(data),
        "--num_classes",
        "4",
        "--model_name",
        "shapes",
        "--batch-size",
        "4",
        "--size",
        "96",
        "64",
        "--output-dir",
        str(out),
        "--workers",
        "0",
        "--device",
        "cpu",
        "--use-mixup",
        "--epochs",
        str(EPOCHS),
        *extra,
    ]


def test_semantic_killed_and_resumed_ends_as_an_uninterrupted_run(semantic_data, tmp_path):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    run_cli("seg-train", *_semantic_args(semantic_data, whole), timeout=900)
    run = broken / "shapes"
    _kill_after_first_checkpoint(_semantic_args(semantic_data, broken), run / "last.pth")
    proc = run_cli("seg-train", *_semantic_args(semantic_data, broken, "--resume", str(run)), timeout=900)
    assert "resuming from" in proc.stderr and "epoch 1/3" not in proc.stderr

    def rows(folder: Path) -> list[dict[str, str]]:
        with open(folder / "metrics.csv", newline="") as f:
            return list(csv.DictReader(f))

    expected = rows(whole / "shapes")
    assert [r["epoch"] for r in expected] == ["1", "2", "3"]
    assert rows(run) == expected  # exactly: the same numbers, no row of the killed attempt's epoch 2

    got, want = _scalars(run / "tensorboard"), _scalars(whole / "shapes" / "tensorboard")
    assert set(got) == set(want) and {"train/loss", "val/loss", "val/mIoU", "lr"} <= set(got)
    for tag, points in want.items():
        assert [step for step, _ in points] == [1, 2, 3], tag
        assert got[tag] == points, tag  # each epoch once, at its epoch, with the same value

    record = _check_history(run / "run.json", run / "last.pth")
    assert record["final_metrics"] == json.loads((whole / "shapes" / "run.json").read_text())["final_metrics"]
    assert record["final_metrics"]["epoch"] == EPOCHS


def test_semantic_resume_of_a_missing_run_is_one_line(semantic_data, tmp_path):
    proc = run_cli(
        "seg-train", *_semantic_args(semantic_data, tmp_path, "--resume", str(tmp_path / "nope")), check=False
    )
    assert proc.returncode == 2 and "does not exist: nothing to resume" in proc.stderr
    assert not (tmp_path / "shapes").exists()


# ---------------------------------------------------------------- seg-train classify


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("classify")
    write_shape_group(root, "shapes", per_class=40, size=64, seed=0)
    return root


def _classify_args(root: Path, experiment: str | None, *extra: str) -> list[str]:
    return [
        "classify",
        "--data-root",
        str(root),
        "--cat",
        "shapes",
        "--arch",
        "resnet10t",
        "--imgsz",
        "64",
        "--batch-size",
        "16",
        "--workers",
        "0",
        "--lr",
        "2e-3",
        "--no-pretrained",
        "--accelerator",
        "cpu",
        "--epochs",
        str(EPOCHS),
        *(["--experiment", experiment] if experiment else []),
        *extra,
    ]


def test_classify_killed_and_resumed_ends_as_an_uninterrupted_run(shapes_root):
    models = shapes_root / "DATA" / "models" / "shapes"
    whole, run = models / "whole", models / "broken"
    run_cli("seg-train", *_classify_args(shapes_root, "whole"), timeout=600)
    _kill_after_first_checkpoint(_classify_args(shapes_root, "broken"), run / "checkpoints" / "last.ckpt")
    # the run folder alone: its last checkpoint, continued in place (no --experiment)
    proc = run_cli("seg-train", *_classify_args(shapes_root, None, "--resume", str(run)), timeout=600)
    assert "epoch 1/3" not in proc.stderr and "epoch 3/3" in proc.stderr

    got, want = _scalars(run / "tensorboard"), _scalars(whole / "tensorboard")
    assert set(got) == set(want) and {"train_loss", "val_loss", "val_acc", "epoch"} <= set(got)
    for tag in ("train_loss", "val_loss", "val_acc"):
        assert len(want[tag]) == EPOCHS, tag  # one point per epoch, at its last batch's step
        assert got[tag] == want[tag], tag
    epochs = sorted({int(v) for _, v in got["epoch"]})
    assert epochs == list(range(EPOCHS))  # Lightning counts epochs from 0
    assert got["epoch"] == want["epoch"] and got["lr-AdamW"] == want["lr-AdamW"]

    record = _check_history(run / "run.json", run / "checkpoints" / "last.ckpt")
    metrics = json.loads((whole / "run.json").read_text())["final_metrics"]
    assert record["final_metrics"] == metrics and metrics["epochs"] == EPOCHS


def test_classify_resume_of_a_folder_without_checkpoints_is_one_line(shapes_root, tmp_path):
    proc = run_cli("seg-train", *_classify_args(shapes_root, None, "--resume", str(tmp_path)), check=False)
    assert proc.returncode == 2 and "no checkpoints/last.ckpt to resume" in proc.stderr


# ---------------------------------------------------------------- seg-train yolo


@pytest.fixture(scope="module")
def yolo_data(tmp_path_factory):
    from training.coco2yolo import convert

    root = tmp_path_factory.mktemp("yolo")
    classes = {"circle": 1, "rectangle": 2, "triangle": 3}
    write_coco_dataset(root / "src" / "a", classes, 10, np.random.default_rng(0), sizes=((64, 96), (96, 64)))
    convert(root / "src", root / "yolo", val_fraction=0.3)
    return root / "yolo" / "data.yaml"


def _yolo_args(data: Path, project: Path, name: str, *extra: str) -> list[str]:
    return [
        "yolo",
        "--data",
        str(data),
        "--model",
        "yolov8n-seg.yaml",
        "--epochs",
        str(EPOCHS),
        "--imgsz",
        "64",
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "workers=0",
        "plots=False",
        f"project={project}",
        f"name={name}",
        "exist_ok=True",
        *extra,
    ]


def test_yolo_killed_and_resumed_ends_as_an_uninterrupted_run(yolo_data, tmp_path):
    whole, run = tmp_path / "whole", tmp_path / "broken"
    run_cli("seg-train", *_yolo_args(yolo_data, tmp_path, "whole"), timeout=900, as_user=True)
    # its epoch 1 recorded: last.pt, and the validation that ultralytics logs after saving it
    epoch_one = lambda: [s for s, _ in _scalars(run).get("val/box_loss", [])] == [1]  # noqa: E731
    _kill_after_first_checkpoint(
        _yolo_args(yolo_data, tmp_path, "broken"), run / "weights" / "last.pt", epoch_one
    )
    proc = run_cli(
        "seg-train",
        *_yolo_args(yolo_data, tmp_path, "broken", "--resume", str(run)),
        timeout=900,
        as_user=True,
    )
    assert "epoch 3/3" in proc.stderr and "epoch 1/3" not in proc.stderr, proc.stderr

    got, want = _scalars(run), _scalars(whole)
    per_epoch = [t for t in want if t.startswith(("train/", "val/", "lr/"))]
    assert set(got) == set(want) and len(per_epoch) >= 10
    for tag in per_epoch:
        assert [step for step, _ in got[tag]] == [1, 2, 3], tag  # each epoch once, purged or not
        assert got[tag][0] == want[tag][0], tag  # the killed attempt's epoch 1, seeded as the whole run's
    # epochs 2 and 3 are not compared: ultralytics keeps its gradient-accumulation counter out of
    # last.pt, so a resumed run steps its optimizer at other iterations (on this 2-batch dataset,
    # still in warm-up, entirely different ones)
    record = _check_history(run / "run.json", run / "weights" / "last.pt")
    assert record["final_metrics"]["epochs"] == EPOCHS
    rows = (run / "results.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0].strip() for row in rows] == ["1", "2", "3"]
