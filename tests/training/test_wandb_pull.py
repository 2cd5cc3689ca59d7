"""seg-train wandb-pull: one-line errors without a key or a server, and what follows the download,
tested from a folder shaped as the artifact Lightning's ``WandbLogger(log_model=True)`` uploads (each
checkpoint added as ``model.ckpt`` to an artifact ``model-<run id>``, aliases latest/best): the
checkpoints found, the served name the run recorded, and the build-repo command it prints, run."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from builder import triton_config
from segcontract import tasks
from tests.conftest import free_port_url, run_cli
from tests.fixtures.random_checkpoints import make_random_classifier
from training.wandb_pull import PullError, build_repo_command, pull_artifact, read_folder

CLASSES = ("circle", "square", "triangle")
RUN_NAME = "shapes-cls"  # seg-train classify --name: the checkpoint records it in hyper_parameters
ARTIFACT = "model-1a2b3c4d"  # WandbLogger: f"model-{experiment.id}"


@pytest.fixture(scope="module")
def run_checkpoint(tmp_path_factory) -> Path:
    """A run's best checkpoint as seg-train classify leaves it, with the run's name recorded."""
    path = make_random_classifier(tmp_path_factory.mktemp("run") / "checkpoints" / "best.ckpt", CLASSES, 64)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    payload["hyper_parameters"]["name"] = RUN_NAME
    torch.save(payload, path)
    return path


def artifact_folder(root: Path, checkpoint: Path, version: str = "v3") -> Path:
    """What ``artifact.download(root=...)`` writes for the logged checkpoint: WandbLogger uploads it
    with ``artifact.add_file(path, name="model.ckpt")``, whatever the file was called in the run."""
    folder = root / "DATA" / "models" / "wandb" / f"{ARTIFACT}_{version}"
    folder.mkdir(parents=True)
    shutil.copyfile(checkpoint, folder / "model.ckpt")
    return folder


def test_a_downloaded_artifact_folder_builds_the_repository_it_prints(tmp_path, run_checkpoint):
    folder = artifact_folder(tmp_path, run_checkpoint)
    result = read_folder(folder, ARTIFACT)
    assert result.checkpoints == [folder / "model.ckpt"] and not result.skipped
    assert result.name == RUN_NAME
    command = build_repo_command(result)
    assert command is not None
    program, *args = shlex.split(command)
    assert program == "build-repo"
    assert args == ["--model", "classifier", "--weights", str(folder / "model.ckpt"), "--name", RUN_NAME]

    repo = tmp_path / "repo"
    run_cli(program, *args, "--runtime", "python-onnx", "--output", str(repo), "--quiet", timeout=300)
    assert (repo / RUN_NAME).is_dir() and (repo / f"{RUN_NAME}_model").is_dir()
    config = triton_config.parse((repo / RUN_NAME / "config.pbtxt").read_text())
    assert config.output[0].label_filename == tasks.LABELS_FILE
    assert (repo / RUN_NAME / tasks.LABELS_FILE).read_text().splitlines() == list(CLASSES)


def test_a_text_ckpt_is_skipped_with_a_line_and_the_name_falls_back(tmp_path, run_checkpoint):
    folder = artifact_folder(tmp_path, run_checkpoint)
    payload = torch.load(folder / "model.ckpt", map_location="cpu", weights_only=True)
    del payload["hyper_parameters"]["name"]  # a run that recorded no name
    torch.save(payload, folder / "model.ckpt")
    (folder / "notes.ckpt").write_text("not a checkpoint\n")

    result = read_folder(folder, ARTIFACT)
    assert result.checkpoints == [folder / "model.ckpt"]
    (line,) = result.skipped
    assert line.startswith(f"{folder / 'notes.ckpt'}: not a loadable checkpoint") and "\n" not in line
    assert result.name == ARTIFACT
    assert read_folder(folder).name == folder.name  # no artifact name: the folder's

    (folder / "model.ckpt").unlink()
    alone = read_folder(folder, ARTIFACT)
    assert alone.checkpoints == [] and len(alone.skipped) == 1
    assert build_repo_command(alone) is None
    assert read_folder(tmp_path / "no-such-folder").checkpoints == []


def test_the_printed_command_quotes_a_folder_with_spaces(tmp_path, run_checkpoint):
    folder = artifact_folder(tmp_path / "my models", run_checkpoint)
    command = build_repo_command(read_folder(folder, ARTIFACT))
    assert command is not None and shlex.split(command)[4] == str(folder / "model.ckpt")


def test_the_command_warns_once_per_skipped_file_and_prints_the_line(tmp_path, run_checkpoint, monkeypatch):
    """The command's output after the download: the download itself replaced by the folder."""
    from training import wandb_pull
    from training.cli import main

    folder = artifact_folder(tmp_path, run_checkpoint)
    (folder / "notes.ckpt").write_text("not a checkpoint\n")
    monkeypatch.setattr(wandb_pull, "pull_artifact", lambda artifact, *_: read_folder(folder, ARTIFACT))
    runner = CliRunner()
    proc = runner.invoke(main, ["wandb-pull", "--artifact", f"me/proj/{ARTIFACT}:v3"])
    assert proc.exit_code == 0 and proc.exception is None, proc.output
    (warning,) = proc.stderr.strip().splitlines()
    assert warning.startswith(f"seg-train: warning: {folder / 'notes.ckpt'}: not a loadable checkpoint")
    assert warning.endswith("; skipped")
    assert proc.stdout.strip().splitlines()[-1].strip() == build_repo_command(read_folder(folder))

    (folder / "model.ckpt").unlink()
    empty = runner.invoke(main, ["wandb-pull", "--artifact", f"me/proj/{ARTIFACT}:v3"])
    assert empty.exit_code == 1 and isinstance(empty.exception, SystemExit)
    assert "Traceback" not in empty.output and "no seg-train classify checkpoint" in empty.stderr


def test_wandb_pull_without_a_key_is_one_line(tmp_path):
    proc = run_cli(
        "seg-train",
        "wandb-pull",
        "--artifact",
        "me/proj/model-x:v1",
        "--data-root",
        str(tmp_path),
        check=False,
    )
    assert proc.returncode == 2 and not proc.stdout
    assert proc.stderr.strip().count("\n") == 0 and "WANDB_API_KEY" in proc.stderr
    bad = run_cli("seg-train", "wandb-pull", "--artifact", "model-x", check=False)
    assert bad.returncode == 2 and "ENTITY/PROJECT/NAME:VERSION" in bad.stderr


def test_without_the_train_extra_the_error_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setitem(sys.modules, "wandb", None)  # what `import wandb` finds without segstack[train]
    with pytest.raises(PullError, match=r"pip install 'segstack\[train\]'"):
        pull_artifact("me/proj/model-x:v1", tmp_path)
    assert not (tmp_path / "DATA").exists()


def test_wandb_pull_offline_is_one_line_in_bounded_time(tmp_path, monkeypatch):
    key = "0123456789abcdef" * 2 + "deadbeef"
    monkeypatch.setenv("WANDB_API_KEY", key)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://{free_port_url()}")
    started = time.monotonic()
    proc = run_cli(
        "seg-train",
        "wandb-pull",
        "--artifact",
        "me/proj/model-x:v1",
        "--data-root",
        str(tmp_path),
        check=False,
        timeout=90,
    )
    seconds = time.monotonic() - started
    assert proc.returncode == 2 and not proc.stdout
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert proc.stderr.startswith("seg-train: error: W&B http://127.0.0.1:")
    assert key not in proc.stderr + proc.stdout
    assert seconds < 40, f"{seconds:.0f} s"
    assert not os.path.exists(tmp_path / "DATA" / "models" / "wandb")


def test_training_without_the_train_extra_is_one_line(tmp_path, monkeypatch):
    """What a client-only install (no lightning) gets from seg-train classify."""
    from training.cli import main

    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    for name in [m for m in sys.modules if m.startswith("training.classify")]:  # imported by earlier tests
        monkeypatch.delitem(sys.modules, name)
    result = CliRunner().invoke(main, ["classify", "--data", str(tmp_path), "--data-root", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        "seg-train: error: lightning is not installed: training needs pip install 'segstack[train]'"
    )


STANDIN = Path(__file__).resolve().parents[1] / "fixtures" / "standin_wandb"


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs: not gone, and not a zombie waiting for init to collect it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.fixture
def standin_wandb(tmp_path, monkeypatch):
    """seg-train wandb-pull with the stand-in wandb client; yields the helper's PID file."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(STANDIN), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    pidfile = tmp_path / "helper.pid"
    monkeypatch.setenv("STANDIN_WANDB_PIDFILE", str(pidfile))
    return pidfile


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("hang-find", "W&B server http://127.0.0.1:9: no answer within 7 s"),
        ("hang-exit", "W&B http://127.0.0.1:9: cannot get me/proj/model-x:v1: Failed to execute API"),
    ],
)
def test_a_client_that_hangs_is_given_up_and_ended(tmp_path, monkeypatch, standin_wandb, mode, said):
    """A W&B client stuck in the lookup, or waiting at exit for its service (what a busy machine
    showed): one line within a bounded time, and the client and its helper process ended."""
    monkeypatch.setenv("STANDIN_WANDB_MODE", mode)
    started = time.monotonic()
    proc = run_cli(
        "seg-train", "wandb-pull", "--artifact", "me/proj/model-x:v1", "--data-root", str(tmp_path),
        "--timeout", "1", check=False, timeout=90,
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert proc.returncode == 2 and not proc.stdout
    assert proc.stderr.startswith(f"seg-train: error: {said}"), proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert seconds < 30, f"{seconds:.0f} s"
    helper = int(standin_wandb.read_text())
    assert not _alive(helper), "the client's helper process was left running"
    assert not (tmp_path / "DATA" / "models" / "wandb").exists()


def test_a_download_lands_whole_and_prints_the_build_command(
    tmp_path, monkeypatch, standin_wandb, run_checkpoint
):
    monkeypatch.setenv("STANDIN_WANDB_MODE", "download")
    monkeypatch.setenv("STANDIN_WANDB_FILE", str(run_checkpoint))
    proc = run_cli(
        "seg-train", "wandb-pull", "--artifact", f"me/proj/{ARTIFACT}:v3", "--data-root", str(tmp_path)
    )
    folder = tmp_path / "DATA" / "models" / "wandb" / f"{ARTIFACT}_v3"
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no partial folder left
    assert (folder / "model.ckpt").read_bytes() == run_checkpoint.read_bytes()
    assert proc.stdout.strip().splitlines()[-1].strip() == build_repo_command(read_folder(folder, ARTIFACT))
    assert not _alive(int(standin_wandb.read_text()))
