"""Checkpoints are loaded without running code from them, unless the user opts in."""

from __future__ import annotations

import pytest

from tests.conftest import MODEL, run_cli


class _OpensAFile:
    """Pickles as a call of ``open(path, "w")``: what a hostile checkpoint can do on load."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def hostile_checkpoint(tmp_path):
    import torch

    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": _OpensAFile(str(marker))}, path)
    return path, marker


def test_build_repo_refuses_a_hostile_checkpoint_without_running_it(hostile_checkpoint, tmp_path):
    path, marker = hostile_checkpoint
    out = tmp_path / "repo"
    proc = run_cli("build-repo", "--model", MODEL, "--weights", str(path), "--output", str(out), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert str(path) in last and "--trust-checkpoint" in last and "open" in last
    assert not marker.exists(), "the checkpoint's payload ran"
    assert not out.exists() or not any(out.iterdir())


def test_trust_checkpoint_is_an_explicit_opt_in_with_a_warning(hostile_checkpoint, tmp_path):
    path, marker = hostile_checkpoint
    proc = run_cli(
        "build-repo",
        "--model",
        MODEL,
        "--weights",
        str(path),
        "--output",
        str(tmp_path / "repo"),
        "--trust-checkpoint",
        check=False,
    )
    assert "full unpickler" in proc.stderr and "--trust-checkpoint" in proc.stderr
    assert marker.exists(), "--trust-checkpoint must use the full unpickler"
    assert proc.returncode == 2 and "no model in it" in proc.stderr.strip().splitlines()[-1]


def test_seg_train_yolo_refuses_a_hostile_checkpoint(hostile_checkpoint, tmp_path):
    path, marker = hostile_checkpoint
    data = tmp_path / "data.yaml"
    data.write_text("path: .\ntrain: images\nval: images\nnames: {0: a}\n")
    proc = run_cli("seg-train", "yolo", "--data", str(data), "--model", str(path), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--trust-checkpoint" in proc.stderr.strip().splitlines()[-1]
    assert not marker.exists(), "the checkpoint's payload ran"


def test_a_genuine_checkpoint_needs_only_allowlisted_classes(yolo_checkpoint):
    from model_checkpoints import ultralytics as ultralytics_checkpoint

    allowed = ultralytics_checkpoint.check_safe(yolo_checkpoint)
    assert allowed, "an ultralytics checkpoint names its model classes"
    net = ultralytics_checkpoint.model_of(ultralytics_checkpoint.load(yolo_checkpoint))
    assert type(net).__name__ == "SegmentationModel"
    assert ultralytics_checkpoint.model_name_of(yolo_checkpoint) == MODEL


def test_each_family_names_the_other_for_its_checkpoint(yolo_checkpoint, tmp_path):
    from model_checkpoints.smp import SemanticModelInfo, TrainingState, build_model, save_checkpoint

    info = SemanticModelInfo("Unet", "resnet18", 2, ["bg", "fg"], [[0, 0, 0], [255, 255, 255]], (64, 64))
    smp_path = save_checkpoint(tmp_path / "semantic.pth", info, build_model(info).eval(), TrainingState())
    proc = run_cli(
        "build-repo", "--model", MODEL, "--weights", str(smp_path), "--output", str(tmp_path), check=False
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "use --model smp" in proc.stderr.strip().splitlines()[-1]
    yolo_as_smp = ("--model", "smp", "--weights", str(yolo_checkpoint), "--output", str(tmp_path))
    proc = run_cli("build-repo", *yolo_as_smp, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"use --model {MODEL}" in proc.stderr.strip().splitlines()[-1]
