"""Checkpoints are loaded without running code from them, unless the user opts in."""

from __future__ import annotations

import pytest

from tests.conftest import MODEL, run_cli
from tests.fixtures.hostile_checkpoints import FLAVOURS, write_hostile_checkpoint


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


@pytest.fixture(params=FLAVOURS)
def hostile_file(request, tmp_path):
    """A hostile checkpoint written each way torch (or pickle) writes files, and its marker."""
    marker = tmp_path / "payload-ran"
    return write_hostile_checkpoint(tmp_path / f"evil-{request.param}.pt", marker, request.param), marker


FAMILIES = ("yolov8-seg", "smp", "classifier")


def _refusal_of(family: str, path) -> str:
    """What the family's checkpoint loader says when it refuses ``path``."""
    from model_checkpoints import classifier, smp, ultralytics

    load = {
        "yolov8-seg": ultralytics.load,
        "smp": smp.load_checkpoint,
        "classifier": classifier.read_checkpoint,
    }
    with pytest.raises((ultralytics.UnsafeCheckpoint, smp.CheckpointError)) as caught:
        load[family](path)
    return str(caught.value)


@pytest.mark.parametrize("family", ["smp", "classifier"])
def test_smp_and_classifier_refusals_name_the_option_not_torchs_advice(family, hostile_file):
    path, marker = hostile_file
    message = _refusal_of(family, path)
    assert message.startswith(f"{path}: refused") and "--trust-checkpoint" in message and "open" in message
    assert "weights_only" not in message and "Weights only" not in message and "\n" not in message
    assert not marker.exists(), "the checkpoint's payload ran"


def test_every_family_refuses_in_the_same_words(hostile_file):
    from model_checkpoints.torch_files import refusal

    path, marker = hostile_file
    messages = {family: _refusal_of(family, path) for family in FAMILIES}
    assert set(messages.values()) == {refusal(path, ["io.open"])}, messages
    assert not marker.exists(), "the checkpoint's payload ran"


def test_build_repo_says_it_the_same_way_for_every_family(tmp_path):
    path = write_hostile_checkpoint(tmp_path / "evil.pt", tmp_path / "payload-ran")
    lines = set()
    for model in (MODEL, "smp", "classifier"):
        proc = run_cli(
            "build-repo",
            "--model",
            model,
            "--weights",
            str(path),
            "--output",
            str(tmp_path / "o"),
            check=False,
        )
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and "weights_only" not in proc.stderr
        lines.add(proc.stderr.strip().splitlines()[-1])
    assert len(lines) == 1 and "--trust-checkpoint" in lines.pop()
    assert not (tmp_path / "payload-ran").exists(), "the checkpoint's payload ran"


@pytest.mark.parametrize("family", ["smp", "classifier"])
def test_trust_lets_our_own_formats_use_the_full_unpickler(family, tmp_path, caplog):
    from model_checkpoints import classifier, smp
    from segcontract.checkpoint_formats import CheckpointError

    marker = tmp_path / "payload-ran"
    path = write_hostile_checkpoint(tmp_path / "evil.pt", marker)
    load = smp.load_checkpoint if family == "smp" else classifier.read_checkpoint
    with pytest.raises(CheckpointError, match="incomplete"):  # it ran, then is not a real checkpoint
        load(path, trust=True)
    assert marker.exists() and "full unpickler" in caplog.text


def test_older_files_list_the_globals_torch_lists_for_an_archive(yolo_checkpoint, tmp_path):
    """Older torch.save files are read op by op to name what they hold: the same names torch finds
    in the archive of the same checkpoint, so a genuine one is not refused for its format."""
    import torch

    from model_checkpoints import ultralytics as ultralytics_checkpoint
    from model_checkpoints.torch_files import unsafe_globals

    legacy = tmp_path / "legacy.pt"
    torch.save(ultralytics_checkpoint.load(yolo_checkpoint), legacy, _use_new_zipfile_serialization=False)
    assert unsafe_globals(legacy) == unsafe_globals(yolo_checkpoint)
    assert len(ultralytics_checkpoint.check_safe(legacy)) == len(unsafe_globals(yolo_checkpoint))


def test_a_private_copy_is_checked_and_messages_name_the_users_file(yolo_checkpoint, tmp_path):
    from model_checkpoints import ultralytics as ultralytics_checkpoint

    folder = tmp_path / "private"
    folder.mkdir(mode=0o700)
    copy = ultralytics_checkpoint.private_copy(yolo_checkpoint, folder)
    assert copy != yolo_checkpoint and copy.name == yolo_checkpoint.name and folder in copy.parents
    assert copy.read_bytes() == yolo_checkpoint.read_bytes()
    evil = write_hostile_checkpoint(tmp_path / "evil.pt", tmp_path / "payload-ran")
    with pytest.raises(ultralytics_checkpoint.UnsafeCheckpoint) as caught:
        ultralytics_checkpoint.private_copy(evil, folder)
    assert str(caught.value).startswith(f"{evil}: refused") and str(folder) not in str(caught.value)


@pytest.mark.parametrize("model", ["smp", "classifier"])
def test_build_repo_trust_checkpoint_reaches_smp_and_classifier(model, tmp_path):
    """The option their refusal names is honoured: the full unpickler runs (and the file, being no
    real checkpoint, is then one line)."""
    marker = tmp_path / "payload-ran"
    path = write_hostile_checkpoint(tmp_path / "evil.pt", marker)
    proc = run_cli("build-repo", "--model", model, "--weights", str(path), "--output", str(tmp_path / "o"),
                   "--trust-checkpoint", check=False)  # fmt: skip
    assert marker.exists(), proc.stderr
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["semantic", "classify"])
def test_seg_train_semantic_and_classify_refuse_a_resumed_file_and_offer_the_option(command, tmp_path):
    """The checkpoint a run resumes from (semantic --model, classify --resume) is refused in the
    shared words, before any training, and the --trust-checkpoint the words name exists."""
    import numpy as np

    from model_checkpoints.torch_files import refusal
    from tests.fixtures.shapes_classes import write_shape_group
    from tests.fixtures.synthetic import write_semantic_dataset

    marker = tmp_path / "payload-ran"
    path = write_hostile_checkpoint(tmp_path / "evil.pt", marker)
    if command == "semantic":
        data = write_semantic_dataset(tmp_path / "data", 4, np.random.default_rng(0))
        args = ["--data-root", str(data), "--num-classes", "4", "--model-name", "m", "--size", "96", "64",
                "--workers", "0", "--output-dir", str(tmp_path / "out"), "--model", str(path)]  # fmt: skip
    else:
        write_shape_group(tmp_path, "shapes", per_class=4, size=64, seed=0)
        args = ["--data-root", str(tmp_path), "--cat", "shapes", "--arch", "resnet10t", "--imgsz", "64",
                "--workers", "0", "--resume", str(path)]  # fmt: skip
    assert "--trust-checkpoint" in run_cli("seg-train", command, "--help").stdout
    proc = run_cli("seg-train", command, *args, check=False, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert refusal(path, ["io.open"]) in proc.stderr.strip().splitlines()[-1]
    assert not marker.exists(), "the checkpoint's payload ran"
