"""run.json (training/run_record.py): the dataset's content hash, versions, git state, and the
record written atomically at the start and the end of a run, resumed runs keeping their history;
every record validated against segcontract/schemas/run_record.schema.json."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.schema_check import validate
from training import run_record
from training.run_record import RunRecord, dataset_fingerprint, git_state, package_versions


def _dataset(root: Path) -> Path:
    files = {"images/a.png": "A", "images/b.png": "B", "indexes/a.png": "1", "colors.csv": "x"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _yolo_dataset(root: Path) -> Path:
    for split in ("train", "val"):
        for stem in ("x", "y"):
            for kind, suffix in (("images", ".jpg"), ("labels", ".txt")):
                (root / kind / split).mkdir(parents=True, exist_ok=True)
                (root / kind / split / f"{stem}{suffix}").write_text(f"{kind} {split} {stem}")
    data = root / "data.yaml"
    splits = {"path": str(root), "train": "images/train", "val": "images/val", "names": {}}
    data.write_text(yaml.safe_dump(splits))
    (root / "unrelated.txt").write_text("not named by data.yaml")
    return data


def _read(run_dir: Path) -> dict:
    record = json.loads((run_dir / "run.json").read_text())
    validate(record, "run_record")
    return record


def test_fingerprint_follows_the_content_and_not_the_walk_order(tmp_path):
    data = _dataset(tmp_path / "data")
    first = dataset_fingerprint(data)
    assert first == {"path": str(data), "sha256": first["sha256"], "files": 4}
    assert dataset_fingerprint(data) == first  # stable

    copy = tmp_path / "copy"
    copy.mkdir()
    for name in sorted((p.relative_to(data) for p in data.rglob("*") if p.is_file()), reverse=True):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / name, copy / name)  # created in another order
    assert dataset_fingerprint(copy)["sha256"] == first["sha256"]

    (data / "images" / "a.png").write_text("changed")
    changed = dataset_fingerprint(data)["sha256"]
    assert changed != first["sha256"]
    (data / "images" / "a.png").rename(data / "images" / "c.png")  # same bytes, another name
    assert dataset_fingerprint(data)["sha256"] not in {changed, first["sha256"]}
    (data / "images" / "d.png").write_text("new")
    assert dataset_fingerprint(data)["files"] == 5


def test_fingerprint_of_a_data_yaml_covers_its_images_and_labels_only(tmp_path):
    data = _yolo_dataset(tmp_path / "yolo")
    first = dataset_fingerprint(data)
    assert first["files"] == 9  # the yaml, 4 images, 4 labels; not unrelated.txt
    (tmp_path / "yolo" / "unrelated.txt").write_text("changed")
    (tmp_path / "yolo" / "labels" / "train.cache").write_text("ultralytics' label cache")
    assert dataset_fingerprint(data) == first
    (tmp_path / "yolo" / "labels" / "val" / "x.txt").write_text("0 0.5 0.5 0.1 0.1")
    assert dataset_fingerprint(data)["sha256"] != first["sha256"]


def test_fingerprint_of_listed_files_and_of_a_missing_one(tmp_path):
    data = _dataset(tmp_path / "data")
    csv = data / "group.csv"
    csv.write_text("image,label\n")
    listed = dataset_fingerprint(csv, [data / "images" / "a.png", data / "images" / "b.png"])
    assert listed["files"] == 3
    missing = dataset_fingerprint(csv, [data / "images" / "a.png", data / "gone.png"])
    assert missing["unreadable"] == 1 and missing["sha256"] != listed["sha256"]


def test_fingerprint_shows_progress_for_many_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run_record, "PROGRESS_FILES", 3)
    dataset_fingerprint(_dataset(tmp_path / "data"))
    assert "hashing the dataset" in capsys.readouterr().err


def test_versions_name_the_trainers_libraries():
    for trainer, libraries in (
        ("yolo", {"ultralytics"}),
        ("semantic", {"segmentation_models_pytorch", "timm"}),
        ("classify", {"lightning", "timm"}),
    ):
        versions = package_versions(trainer)
        assert {"python", "torch", "segstack"} | libraries <= set(versions)
        assert versions["python"].count(".") == 2 and versions["torch"]


@pytest.mark.skipif(shutil.which("git") is None, reason="no git")
def test_git_state_with_and_without_a_repository(tmp_path, monkeypatch):
    assert git_state(tmp_path) is None  # no repository
    assert git_state(tmp_path / "absent") is None
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        subprocess.run(
            ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    (repo / "f.txt").write_text("one")
    git("add", "f.txt")
    git("commit", "-qm", "one")
    state = git_state(repo / ".")
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert state == {"commit": head.stdout.strip(), "dirty": False, "root": str(repo.resolve())}
    (repo / "untracked.txt").write_text("x")
    assert git_state(repo)["dirty"] is False  # untracked files (runs, datasets) do not count
    (repo / "f.txt").write_text("two")
    assert git_state(repo)["dirty"] is True

    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # git missing: None, never an error
    assert git_state(repo) is None


def test_a_finished_run(tmp_path):
    data, run_dir = _dataset(tmp_path / "data"), tmp_path / "runs" / "one"
    arguments = {"epochs": 2, "size": (96, 64), "output_dir": tmp_path, "lr": float("nan")}
    with RunRecord(run_dir, "semantic", ["seg-train", "semantic"], arguments, data) as record:
        started = _read(run_dir)
        assert started["status"] == "running" and started["ended_at"] is None
        record.final_metrics.update(val_mIoU=0.5, epoch=2, note="not a number", bad=float("inf"))
    done = _read(run_dir)
    assert done["status"] == "finished" and done["ended_at"] >= done["started_at"]
    assert done["final_metrics"] == {"val_mIoU": 0.5, "epoch": 2}
    assert done["arguments"] == {"epochs": 2, "size": [96, 64], "output_dir": str(tmp_path), "lr": "nan"}
    assert done["command"] == ["seg-train", "semantic"] and done["dataset"] == dataset_fingerprint(data)
    assert done["resumed_from"] is None and len(done["history"]) == 1
    assert done["started_at"] == started["started_at"] and done["started_at"].endswith("Z")
    assert [p.name for p in run_dir.iterdir()] == ["run.json"]  # no temporary file left


def test_failed_and_interrupted_runs(tmp_path):
    data = _dataset(tmp_path / "data")
    with (
        pytest.raises(RuntimeError, match="out of memory"),
        RunRecord(tmp_path / "failed", "classify", [], {}, data),
    ):
        raise RuntimeError("CUDA out of memory\nmore lines")
    failed = _read(tmp_path / "failed")
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: CUDA out of memory"

    with pytest.raises(KeyboardInterrupt), RunRecord(tmp_path / "ctrl-c", "classify", [], {}, data) as record:
        record.final_metrics["epochs"] = 1
        raise KeyboardInterrupt
    interrupted = _read(tmp_path / "ctrl-c")
    assert interrupted["status"] == "interrupted" and interrupted["final_metrics"] == {"epochs": 1}

    with (
        pytest.raises(SystemExit),
        RunRecord(tmp_path / "lightning", "classify", [], {}, data) as record,
    ):  # Lightning's graceful stop after Ctrl+C: the trainer says so
        record.status = "interrupted"
        raise SystemExit(1)
    assert _read(tmp_path / "lightning")["status"] == "interrupted"


def test_the_folder_known_later_and_writes_atomic(tmp_path, monkeypatch):
    data = _dataset(tmp_path / "data")
    writes = []
    monkeypatch.setattr(run_record, "write_json_atomic", lambda path, rec: writes.append((path, rec)))
    with RunRecord(None, "yolo", ["seg-train", "yolo"], {}, data) as record:
        assert writes == []  # ultralytics has not made its folder yet
        record.attach(tmp_path / "runs" / "segment" / "train")
        assert len(writes) == 1 and writes[0][1]["status"] == "running"
    assert [rec["status"] for _, rec in writes] == ["running", "finished"]
    assert writes[-1][0] == tmp_path / "runs" / "segment" / "train" / "run.json"

    monkeypatch.undo()
    with (
        pytest.raises(ValueError),
        RunRecord(None, "yolo", [], {}, data),
    ):  # failed before ultralytics made a folder
        raise ValueError("bad data.yaml")
    assert not list(tmp_path.rglob("run.json"))
    with pytest.raises(ValueError, match="trainer"):
        RunRecord(tmp_path, "keras", [], {}, data)


def test_a_resumed_run_keeps_its_first_start_and_history(tmp_path):
    data, run_dir = _dataset(tmp_path / "data"), tmp_path / "run"
    with pytest.raises(KeyboardInterrupt), RunRecord(run_dir, "semantic", ["first"], {}, data):
        raise KeyboardInterrupt
    first = _read(run_dir)
    last = run_dir / "last.pth"
    with RunRecord(run_dir, "semantic", ["second"], {}, data, resumed_from=last) as record:
        record.final_metrics["epoch"] = 2
    second = _read(run_dir)
    assert second["started_at"] == first["started_at"] and second["command"] == ["second"]
    assert second["resumed_from"] == str(last) and second["status"] == "finished"
    assert [(a["status"], a["resumed_from"]) for a in second["history"]] == [
        ("interrupted", None),
        ("finished", str(last)),
    ]
    assert second["history"][1]["started_at"] >= first["ended_at"]

    with RunRecord(run_dir, "semantic", ["third"], {}, data, resumed_from=last):
        pass
    assert len(_read(run_dir)["history"]) == 3
    with RunRecord(run_dir, "semantic", ["fresh"], {}, data):  # not resumed: a new run
        pass
    fresh = _read(run_dir)
    assert len(fresh["history"]) == 1 and fresh["started_at"] > first["started_at"]


def test_the_schema_refuses_what_is_not_a_run_record(tmp_path):
    from jsonschema import ValidationError

    with RunRecord(tmp_path / "run", "classify", [], {}, _dataset(tmp_path / "data")):
        pass
    good = _read(tmp_path / "run")
    for bad in (
        {**good, "status": "done"},
        {**good, "trainer": "keras"},
        {**good, "final_metrics": {"acc": "high"}},
        {**good, "started_at": "yesterday"},
        {**good, "dataset": {"path": "x", "sha256": "short", "files": 1}},
        {k: v for k, v in good.items() if k != "history"},
    ):
        with pytest.raises(ValidationError):
            validate(bad, "run_record")
