"""seg-train yolo checks every checkpoint ultralytics would unpickle (--model, and the model=,
resume=, pretrained=, distill_model= overrides, from the command line or --config) and hands
ultralytics the checked copy, never the user's path. The trainer runs for real, up to the point
where it has its arguments (it has read resume= by then), and is stopped there: nothing trains."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from tests.fixtures.hostile_checkpoints import write_hostile_checkpoint

CHECKED = ("model", "resume", "pretrained", "distill_model")


class _Stop(Exception):
    """Raised from ultralytics' first trainer callback: the test has what it wanted."""


@pytest.fixture
def data_yaml(tmp_path) -> Path:
    """A dataset ultralytics' checks accept (its folders exist; no image is ever read)."""
    for split in ("train", "val"):
        (tmp_path / "dataset" / "images" / split).mkdir(parents=True)
    path = tmp_path / "dataset" / "data.yaml"
    path.write_text(f"path: {tmp_path / 'dataset'}\ntrain: images/train\nval: images/val\nnames: {{0: a}}\n")
    return path


@pytest.fixture
def hostile(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "payload-ran"
    return write_hostile_checkpoint(tmp_path / "evil.pt", marker), marker


@pytest.fixture
def trainer_arguments(monkeypatch) -> dict:
    """What ultralytics' trainer was given, with the bytes of the checkpoint files it names as
    they were when it started; training stops right there (:class:`_Stop`)."""
    from ultralytics.utils.callbacks.base import default_callbacks

    seen: dict = {}

    def record_and_stop(trainer) -> None:
        seen.update(vars(trainer.args))
        seen["bytes"] = {
            key: Path(value).read_bytes()
            for key in CHECKED
            if isinstance(value := getattr(trainer.args, key, None), str) and Path(value).is_file()
        }
        raise _Stop

    hooks = [*default_callbacks["on_pretrain_routine_start"], record_and_stop]
    monkeypatch.setitem(default_callbacks, "on_pretrain_routine_start", hooks)
    return seen


def _arguments(data_yaml: Path, tmp_path: Path, **more) -> dict:
    base = {"model": "yolov8n-seg.yaml", "data": str(data_yaml), "device": "cpu", "workers": 0}
    return {**base, "project": str(tmp_path / "runs"), "name": "t", "exist_ok": True, **more}


@pytest.mark.parametrize("key", CHECKED)
def test_checkpoint_overrides_are_refused_like_model(key, data_yaml, hostile, tmp_path):
    from model_checkpoints.torch_files import refusal

    evil, marker = hostile
    proc = run_cli(
        "seg-train",
        "yolo",
        "--data",
        str(data_yaml),
        "--model",
        "yolov8n-seg.yaml",
        "--device",
        "cpu",
        f"{key}={evil}",
        f"project={tmp_path / 'runs'}",
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"seg-train: error: {refusal(evil, ['io.open'])}"
    assert not marker.exists(), "the checkpoint's payload ran"


def test_a_config_files_checkpoints_are_checked_too(data_yaml, hostile, tmp_path):
    from training.yolo_train import TrainingError, train

    evil, marker = hostile
    with pytest.raises(TrainingError, match="--trust-checkpoint"):
        train(_arguments(data_yaml, tmp_path, pretrained=str(evil)))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"resume": str(evil)}))
    proc = run_cli(
        "seg-train",
        "yolo",
        "--config",
        str(config),
        "--data",
        str(data_yaml),
        "--model",
        "yolov8n-seg.yaml",
        check=False,
    )
    assert proc.returncode == 2 and "--trust-checkpoint" in proc.stderr.strip().splitlines()[-1]
    with pytest.raises(TrainingError, match="--config"):  # ultralytics' own cfg= would go unchecked
        train(_arguments(data_yaml, tmp_path, cfg=str(config)))
    assert not marker.exists(), "the checkpoint's payload ran"


def test_ultralytics_gets_the_checked_bytes_when_the_file_is_swapped_after_the_check(
    yolo_checkpoint, data_yaml, hostile, tmp_path, monkeypatch, trainer_arguments
):
    from model_checkpoints import ultralytics as ultralytics_checkpoint
    from training.yolo_train import train

    evil, marker = hostile
    user = shutil.copyfile(yolo_checkpoint, tmp_path / "weights.pt")
    genuine = user.read_bytes()
    check = ultralytics_checkpoint.load  # the whole check: globals listed, then the guarded load

    def check_then_swap(*args, **kwargs):
        checked = check(*args, **kwargs)
        shutil.copyfile(evil, user)  # the user's file is replaced right after it passed
        return checked

    monkeypatch.setattr(ultralytics_checkpoint, "load", check_then_swap)
    with pytest.raises(_Stop):
        train(_arguments(data_yaml, tmp_path, model=str(user)))
    assert not marker.exists(), "ultralytics unpickled the swapped file"
    handed = Path(trainer_arguments["model"])
    assert handed != user and handed.name == user.name and trainer_arguments["bytes"]["model"] == genuine
    assert not handed.exists(), "the private copy outlived training"


@pytest.mark.parametrize("key", ["pretrained", "resume"])
def test_pretrained_and_resume_are_handed_over_as_checked_copies(
    key, yolo_checkpoint, data_yaml, tmp_path, trainer_arguments
):
    import torch

    from model_checkpoints import ultralytics as ultralytics_checkpoint
    from training.yolo_train import train

    ckpt = ultralytics_checkpoint.load(yolo_checkpoint)
    ckpt["train_args"] = {**ckpt.get("train_args", {}), "save_dir": str(tmp_path / "runs" / "resumed")}
    user = tmp_path / "last.pt"
    torch.save(ckpt, user)
    with pytest.raises(_Stop):
        train(_arguments(data_yaml, tmp_path, **{key: str(user)}))
    handed = Path(trainer_arguments[key])
    assert handed != user and handed.name == user.name
    assert trainer_arguments["bytes"][key] == user.read_bytes()
    assert not handed.exists(), "the private copy outlived training"


def test_trust_checkpoint_hands_the_files_over_unchecked(data_yaml, hostile):
    evil, marker = hostile
    proc = run_cli(
        "seg-train", "yolo", "--data", str(data_yaml), "--model", str(evil), "--trust-checkpoint", check=False
    )
    assert "unchecked (--trust-checkpoint)" in proc.stderr and marker.exists()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"seg-train: error: {evil}: ultralytics could not load")
