"""seg-train yolo: argument handling, and a 2-epoch smoke training whose checkpoint is served."""

import importlib.util
import re
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from serving.tritonserver import TritonServer
from tests.conftest import run_cli
from tests.fixtures.synthetic import write_coco_dataset
from tests.schema_check import validate_run_record
from training.coco2yolo import convert
from training.yolo_train import (
    TrainingError,
    add_progress_lines,
    configure_loggers,
    parse_overrides,
    validate_arguments,
)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    write_coco_dataset(
        root / "src" / "a",
        {"circle": 1, "rectangle": 2, "triangle": 3},
        10,
        np.random.default_rng(0),
        sizes=((64, 96), (96, 64)),
    )
    convert(root / "src", root / "yolo", val_fraction=0.3)
    return root / "yolo" / "data.yaml"


@pytest.mark.slow
def test_training_prints_each_epoch_and_the_checkpoint_is_served(tiny_dataset, tmp_path):
    config = tmp_path / "config.yaml"  # shaped like seed 002's CONFIG
    config.write_text(
        yaml.safe_dump(
            {
                "model": "yolov8n-seg.yaml",
                "epochs": 5,
                "imgsz": 64,
                "batch": 4,
                "optimizer": "AdamW",
                "lr0": 0.002,
                "cos_lr": True,
            }
        )
    )
    proc = run_cli(
        "seg-train",
        "yolo",
        "--config",
        str(config),
        "--data",
        str(tiny_dataset),
        "--epochs",
        "2",
        "--device",
        "cpu",
        "workers=0",
        "plots=False",
        f"project={tmp_path / 'runs'}",
        "name=smoke",
        timeout=900,
        as_user=True,
    )
    run_dir = tmp_path / "runs" / "smoke"
    best = run_dir / "weights" / "best.pt"
    assert best.is_file()
    assert (
        f"Best checkpoint: {best}" in proc.stdout
        and f"build-repo --model yolov8n-seg --weights {best}" in proc.stdout
    )
    args = yaml.safe_load((run_dir / "args.yaml").read_text())
    assert (args["epochs"], args["imgsz"], args["batch"], args["optimizer"], args["cos_lr"]) == (
        2,
        64,
        4,
        "AdamW",
        True,
    )
    assert list(run_dir.glob("events.out.tfevents*")), "TensorBoard logging is on"
    assert "W&B off" in proc.stderr
    # one line per epoch on stderr, though YOLO_VERBOSE=False (as in the demo) silences ultralytics
    epochs = [line for line in proc.stderr.splitlines() if re.match(r"epoch \d+/", line)]
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2"], proc.stderr
    assert all(re.search(r"box_loss \d.*seg_loss \d.* \(\d+\.\d s\)$", line) for line in epochs)
    assert all("mask mAP50 " in line for line in epochs)  # val=True (ultralytics' default): each epoch
    assert re.search(r"^final validation of best\.pt .*mask mAP50 ", proc.stderr, re.M), proc.stderr
    run = validate_run_record(run_dir, "yolo")  # run.json: what made the run, its result
    final = re.search(r"^final validation of best\.pt .*mask mAP50 (\d\.\d+)", proc.stderr, re.M)
    assert run["final_metrics"]["metrics/mAP50(M)"] == pytest.approx(float(final.group(1)), abs=1e-4)
    assert run["final_metrics"]["epochs"] == 2 and run["arguments"]["lr0"] == 0.002
    assert run["arguments"]["model"] == "yolov8n-seg.yaml" and run["arguments"]["warmup_epochs"] == 3.0
    assert run["dataset"]["path"] == str(tiny_dataset) and run["versions"]["ultralytics"]

    repo = tmp_path / "repo"
    run_cli("build-repo", "--model", "yolov8n-seg", "--weights", str(best), "--output", str(repo), "--quiet")
    from clients.triton.client import SegmentationClient

    image = next(tiny_dataset.parent.glob("images/val/**/*.jpg")).read_bytes()
    with TritonServer(repo, log_path=tmp_path / "server.log") as server:
        client = SegmentationClient(server.grpc_url)
        assert client.model_info("yolov8n-seg").class_names == ["circle", "rectangle", "triangle"]
        result = client.infer_instances("yolov8n-seg", image, {"conf": 0.001})
        assert result.boxes.shape[1] == 4 and (result.height, result.width) in {(64, 96), (96, 64)}


def test_unknown_argument_suggests_the_right_one(tiny_dataset):
    proc = run_cli(
        "seg-train", "yolo", "--data", str(tiny_dataset), "--model", "yolov8n-seg.yaml", "lr=0.1", check=False
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown training argument 'lr'" in proc.stderr and "lr0" in proc.stderr


def test_missing_pretrained_weights_offline_suggest_the_yaml(tiny_dataset):
    proc = run_cli("seg-train", "yolo", "--data", str(tiny_dataset), "--model", "yolov8x-seg.pt", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("seg-train: error: could not load yolov8x-seg.pt") and "yolov8x-seg.yaml" in last


def test_missing_data_yaml(tmp_path):
    proc = run_cli(
        "seg-train", "yolo", "--data", str(tmp_path / "nope.yaml"), "--model", "yolov8n-seg.yaml", check=False
    )
    assert proc.returncode == 2 and "nope.yaml: no such file" in proc.stderr


def test_overrides_parse_as_yaml_scalars():
    assert parse_overrides(["lr0=0.002", "cos_lr=true", "optimizer=AdamW", "freeze=[0, 1]"]) == {
        "lr0": 0.002,
        "cos_lr": True,
        "optimizer": "AdamW",
        "freeze": [0, 1],
    }
    with pytest.raises(TrainingError, match="key=value"):
        parse_overrides(["lr0"])
    validate_arguments({"lr0": 0.1, "mosaic": 0.5, "overlap_mask": True})


def test_wandb_only_with_a_key(monkeypatch):
    from ultralytics import settings

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert "W&B off" in configure_loggers()
    assert settings["wandb"] is False and settings["tensorboard"] is True


def test_wandb_off_names_the_real_reason(monkeypatch):
    from ultralytics import settings

    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert configure_loggers() == "TensorBoard on; W&B off (WANDB_MODE=disabled)"
    assert settings["wandb"] is False
    monkeypatch.delenv("WANDB_MODE")
    if importlib.util.find_spec("wandb") is None:
        assert "WANDB_API_KEY is set but the wandb package is not installed" in configure_loggers()


class _FakeModel:
    """What add_progress_lines uses of a YOLO model, and ultralytics' order of events."""

    def __init__(self):
        self.callbacks: dict[str, list] = {}

    def add_callback(self, event, callback):
        self.callbacks.setdefault(event, []).append(callback)

    def fire(self, event, obj):
        for callback in self.callbacks.get(event, []):
            callback(obj)


def test_progress_lines_per_epoch_and_for_best_pt_after_an_early_stop():
    lines: list[str] = []
    model = _FakeModel()
    add_progress_lines(model, lines.append)
    mAPs = {"metrics/mAP50(B)": 0.5, "metrics/mAP50(M)": 0.25, "metrics/mAP50-95(M)": 0.125}
    trainer = SimpleNamespace(
        epochs=100,
        epoch=0,
        train_loader=SimpleNamespace(dataset=range(7)),
        save_dir="runs/segment/train",
        best="runs/segment/train/weights/best.pt",
        metrics=dict.fromkeys(mAPs, 0.0),
        epoch_time=1.25,
        tloss={"box_loss": 1.5, "seg_loss": 2.25},
        label_loss_items=lambda losses, prefix: {f"{prefix}/{k}": v for k, v in losses.items()},
    )
    model.fire("on_train_start", trainer)
    model.fire("on_train_epoch_end", trainer)  # epoch 1, not validated (val=False)
    model.fire("on_fit_epoch_end", trainer)
    trainer.epoch, trainer.metrics = 1, mAPs  # epoch 2, validated; patience then stops the run
    model.fire("on_train_epoch_end", trainer)
    model.fire("on_val_end", None)
    model.fire("on_fit_epoch_end", trainer)
    trainer.epoch = 2  # final_eval: best.pt validated, epoch + 1 while the callbacks run
    model.fire("on_val_end", None)
    model.fire("on_fit_epoch_end", trainer)
    assert lines == [
        "training 100 epochs on 7 images → runs/segment/train",
        "epoch 1/100  box_loss 1.5  seg_loss 2.25  (1.2 s)",
        "epoch 2/100  box_loss 1.5  seg_loss 2.25  box mAP50 0.5000  mask mAP50 0.2500  mask mAP50-95 0.1250"
        "  (1.2 s)",
        "final validation of best.pt  box mAP50 0.5000  mask mAP50 0.2500  mask mAP50-95 0.1250",
    ]


def test_help_documents_quiet():
    text = " ".join(run_cli("seg-train", "yolo", "--help").stdout.split())
    assert "--quiet" in text and "one line per epoch" in text
