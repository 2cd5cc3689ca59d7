"""The classification path end to end, as a user runs it: ``seg-train classify`` on generated
shapes (within two minutes on two cores), ``build-repo --model classifier``, a real tritonserver,
``seg-client infer`` on a group (whole images) and with ``--segments`` (the approved segments of a
segment store), and ``seg-client evaluate --labels``.

Parity is with the trained Lightning module itself (``ClassifierModule.load_from_checkpoint``, eval
mode) on what its own eval dataset feeds it: the served top-1 equals the module's on ≥ 99.5 % of
the images and of the segments, and every served probability is within 1e-3 of the module's.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from store.records import Status
from store.segment_store import SegmentStore
from tests.conftest import run_cli
from tests.fixtures.shapes_classes import CLASSES, shape_scene, store_scene, write_shape_group
from tests.helpers import review_images
from tests.schema_check import validate

NAME = "shapes_cls"
SEG_MODEL = "shapes-seg"
TOLERANCE = 1e-3
AGREEMENT = 0.995
TRAIN_BUDGET_S = 120
TRAIN = ("--arch", "resnet10t", "--imgsz", "64", "--batch-size", "16", "--workers", "0", "--lr", "3e-3")

pytestmark = pytest.mark.slow  # every test uses the module's trained classifier


@pytest.fixture(scope="module", autouse=True)
def no_wandb():
    with pytest.MonkeyPatch.context() as mp:
        for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_MODE"):
            mp.delenv(name, raising=False)
        yield


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """DATA/ with a training group, a held-out group and a group of scenes whose shapes are in the
    segment store (approved, but for one rejected image and one badlisted image)."""
    root = tmp_path_factory.mktemp("classification")
    write_shape_group(root, "shapes", per_class=40, size=64, seed=0)
    write_shape_group(root, "held_out", per_class=20, size=64, seed=7)
    _write_scenes(root)
    return root


def _write_scenes(root: Path) -> None:
    rng = np.random.default_rng(5)
    pictures = root / "DATA" / "pictures"
    (pictures / "scenes").mkdir(parents=True)
    rows = []
    with SegmentStore.open(_db(root)) as store:
        for kind in CLASSES:
            for i in range(6):
                name = f"scenes/{kind}_{i:02d}.png"
                store_scene(store, pictures, name, kind, rng, SEG_MODEL)
                rows.append((name, kind))
        review_images(store, [r[0] for r in rows[1:]], Status.APPROVED, model=SEG_MODEL)
        review_images(
            store, [rows[0][0]], Status.REJECTED, model=SEG_MODEL
        )  # classified: none of its segments
        store.push_badlist([rows[-1][0]])  # not sent at all
    with open(root / "DATA" / "datasets" / "scenes.csv", "w", newline="") as f:
        csv.writer(f).writerows([("image", "label"), *rows])


def _db(root: Path) -> str:
    return f"sqlite:///{root / 'DATA' / 'segments.db'}"


@pytest.fixture(scope="module")
def trained(root) -> tuple[Path, float]:
    started = time.monotonic()
    run_cli(
        "seg-train",
        "classify",
        "--data-root",
        str(root),
        "--cat",
        "shapes",
        "--epochs",
        "4",
        "--no-pretrained",
        "--experiment",
        "parity",
        *TRAIN,
        timeout=600,
    )
    best = root / "DATA" / "models" / "shapes" / "parity" / "checkpoints" / "best.ckpt"
    return best, time.monotonic() - started


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    from serving.tritonserver import TritonServer

    repository = tmp_path_factory.mktemp("classification_repository")
    best, _ = trained
    run_cli(
        "build-repo",
        "--model",
        "classifier",
        "--weights",
        str(best),
        "--name",
        NAME,
        "--output",
        str(repository),
        "--runtime",
        "python-onnx",
        "--quiet",
    )
    with TritonServer(
        repository, log_path=tmp_path_factory.mktemp("classification_logs") / "server.log"
    ) as s:
        yield s


class Module:
    """The trained LightningModule in eval mode, fed by its own eval dataset."""

    def __init__(self, checkpoint: Path):
        from model_checkpoints.classifier import load_network
        from training.classify_module import ClassifierModule

        self.info, _ = load_network(checkpoint)
        self.module = ClassifierModule.load_from_checkpoint(checkpoint, map_location="cpu").eval()

    def probabilities(self, samples) -> np.ndarray:
        from training.classify_data import ClassifyDataset

        dataset = ClassifyDataset(samples, self.info, train=False)
        x = torch.stack([dataset[i][0] for i in range(len(dataset))])
        with torch.no_grad():
            return self.module.predict_probabilities(x).numpy()


@pytest.fixture(scope="module")
def module(trained) -> Module:
    return Module(trained[0])


def _infer(server, root: Path, out: Path, *args: str, check: bool = True):
    return run_cli(
        "seg-client",
        "infer",
        "--model",
        NAME,
        "--url",
        server.grpc_url,
        "--data-root",
        str(root),
        "--out",
        str(out),
        *args,
        check=check,
    )


def _records(out: Path) -> dict[str, dict]:
    records = {}
    for path in sorted(out.rglob("*.json")):
        if path.name != "failures.json":
            record = json.loads(path.read_text())
            validate(record, "image_record")
            records[record["image"]] = record
    return records


def _compare(served: list[list[dict]], expected: np.ndarray, what: str) -> float:
    """|Δp| ≤ TOLERANCE for every class; returns the fraction whose top-1 agrees."""
    agree = 0
    for classes, probabilities in zip(served, expected, strict=True):
        assert sorted(c["class_id"] for c in classes) == list(range(len(CLASSES))), what
        assert [c["score"] for c in classes] == sorted((c["score"] for c in classes), reverse=True)
        for c in classes:
            assert c["class_name"] == CLASSES[c["class_id"]]
            assert abs(c["score"] - probabilities[c["class_id"]]) <= TOLERANCE, (what, classes, probabilities)
        agree += classes[0]["class_id"] == int(probabilities.argmax())
    return agree / len(expected)


def test_training_fits_in_two_minutes(trained):
    best, seconds = trained
    assert best.is_file()
    print(f"seg-train classify: {seconds:.0f} s")
    assert seconds <= TRAIN_BUDGET_S, f"{seconds:.0f} s"


def test_whole_images_match_the_lightning_module_and_evaluate_reports_accuracy(
    server, root, module, tmp_path
):
    from training.classify_data import Sample

    out = tmp_path / "held_out"
    proc = _infer(server, root, out, "--group", "held_out", "--top-k", "3")
    assert "60 written" in proc.stdout and "0 failed" in proc.stdout, proc.stdout
    records = _records(out)
    assert len(records) == 60
    names = sorted(records)
    pictures = root / "DATA" / "pictures"
    expected = module.probabilities([Sample(pictures / n, "circle", n) for n in names])
    agreement = _compare([records[n]["classes"] for n in names], expected, "whole images")
    assert agreement >= AGREEMENT, f"top-1 agrees on {agreement:.1%}"
    assert all(records[n]["width"] == records[n]["height"] == 64 for n in names)

    labels = root / "DATA" / "datasets" / "held_out.csv"
    report = run_cli("seg-client", "evaluate", "--labels", str(labels), "--results", str(out))
    with open(labels, newline="") as f:
        truth = {row["image"]: row["label"] for row in csv.DictReader(f)}
    correct = sum(records[n]["classes"][0]["class_name"] == truth[n] for n in names)
    print(report.stdout)
    assert f"accuracy {correct / 60:.4f} ({correct}/60" in report.stdout, report.stdout
    assert correct / 60 >= 0.8, f"held-out accuracy {correct / 60:.2f} (chance 0.33)"
    for name in CLASSES:
        assert name in report.stdout

    # --top-k 1: one class per record; a re-run skips what is done
    top1 = tmp_path / "top1"
    _infer(server, root, top1, "--group", "held_out", "--top-k", "1")
    assert all(len(r["classes"]) == 1 for r in _records(top1).values())
    again = _infer(server, root, top1, "--group", "held_out", "--top-k", "1")
    assert "0 written, 60 skipped" in again.stdout


def test_segments_match_the_lightning_module_on_the_same_crops(server, root, module, tmp_path):
    from training.classify_data import Sample

    out = tmp_path / "scenes"
    proc = _infer(server, root, out, "--group", "scenes", "--segments", "--db", _db(root), "--top-k", "3")
    assert "17 written" in proc.stdout and "0 failed" in proc.stdout, proc.stdout + proc.stderr
    assert "32 segments classified" in proc.stdout and "1 badlisted images left out" in proc.stderr
    records = _records(out)
    assert len(records) == 17 and "scenes/triangle_05.png" not in records  # the badlisted one
    assert records["scenes/circle_00.png"]["segments"] == []  # its segments were rejected
    with SegmentStore.open(_db(root), create=False) as store:
        stored = {s.id: s for s in store.segments(model=SEG_MODEL, statuses=[Status.APPROVED])}
    served, samples = [], []
    pictures = root / "DATA" / "pictures"
    for name, record in records.items():
        assert record["segment_model"] == SEG_MODEL and record["model"] == NAME
        for segment in record["segments"]:
            kept = stored[segment["segment_id"]]
            assert kept.image == name and segment["bbox"] == pytest.approx(list(kept.bbox), abs=0.01)
            served.append(segment["classes"])
            samples.append(
                Sample(pictures / name, "circle", name, bbox=kept.bbox, rle_counts=kept.rle["counts"])
            )
    assert len(served) == 32
    agreement = _compare(served, module.probabilities(samples), "segments")
    assert agreement >= AGREEMENT, f"top-1 agrees on {agreement:.1%}"

    report = run_cli(
        "seg-client",
        "evaluate",
        "--labels",
        str(root / "DATA" / "datasets" / "scenes.csv"),
        "--results",
        str(out),
    )
    assert "/32 samples" in report.stdout, report.stdout


def test_segments_of_a_changed_picture_fail_and_the_rest_go_on(server, root, tmp_path):
    import shutil

    changed = tmp_path / "root"
    shutil.copytree(root / "DATA", changed / "DATA")
    picture = changed / "DATA" / "pictures" / "scenes" / "square_01.png"
    image = cv2.imread(str(picture))
    cv2.imwrite(str(picture), cv2.resize(image, (100, 100)))
    out = tmp_path / "out"
    proc = _infer(server, changed, out, "--group", "scenes", "--segments", "--db", _db(changed), check=False)
    assert proc.returncode == 1 and "16 written" in proc.stdout and "1 failed" in proc.stdout, proc.stdout
    assert "square_01.png" in proc.stderr and "changed since shapes-seg segmented it" in proc.stderr


def test_wrong_uses_are_one_line(server, root, tmp_path):
    for args, expected in [
        (("--segment-model", SEG_MODEL), "--segment-model goes with --segments"),
        (("--segments", "--segment-model", "nope"), "no segments of model 'nope'"),
        (("--segments", "--db", f"sqlite:///{tmp_path / 'none.db'}"), "none.db"),
    ]:
        proc = _infer(server, root, tmp_path / "x", "--group", "scenes", *args, check=False)
        assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_a_rerun_redoes_the_images_whose_approved_segments_changed(server, root, tmp_path):
    import shutil

    copy = tmp_path / "root"
    shutil.copytree(root / "DATA", copy / "DATA")
    out = tmp_path / "out"
    first = _infer(server, copy, out, "--group", "scenes", "--segments")
    assert "17 written" in first.stdout
    with SegmentStore.open(_db(copy), create=False) as store:
        review_images(store, ["scenes/square_02.png"], Status.REJECTED, model=SEG_MODEL)
    again = _infer(server, copy, out, "--group", "scenes", "--segments")
    assert "1 written, 16 skipped" in again.stdout, again.stdout
    assert _records(out)["scenes/square_02.png"]["segments"] == []
    wider = _infer(server, copy, out, "--group", "scenes", "--segments", "--top-k", "2")
    # records of another --top-k are redone; the two images without approved segments stay done
    assert "15 written, 2 skipped" in wider.stdout, wider.stdout


def test_segments_of_a_folder_outside_the_layout_are_found_by_content(server, root, tmp_path):
    import shutil

    folder = tmp_path / "copies"
    shutil.copytree(root / "DATA" / "pictures" / "scenes", folder)
    (folder / "triangle_05.png").unlink()  # the badlisted one
    image, _ = shape_scene("circle", np.random.default_rng(99), size=128, count=1)
    cv2.imwrite(str(folder / "unknown.png"), image)
    out = tmp_path / "out"
    proc = _infer(
        server,
        root,
        out,
        "--source",
        str(folder),
        "--segments",
        "--db",
        _db(root),
        "--top-k",
        "1",
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "17 written" in proc.stdout and "1 failed" in proc.stdout and "32 segments" in proc.stdout
    assert "unknown.png" in proc.stderr and "not in the segment store" in proc.stderr
    records = _records(out)
    assert sum(len(r["segments"]) for r in records.values()) == 32
    assert records["square_01.png"]["segment_model"] == SEG_MODEL


def test_another_runs_records_and_options_of_other_tasks_are_one_line(server, root, tmp_path):
    out = tmp_path / "out"
    _infer(server, root, out, "--group", "held_out", "--top-k", "1")
    before = sorted(out.glob("*.json"))
    proc = _infer(server, root, out, "--group", "held_out", "--segments", check=False)
    assert proc.returncode == 2 and "holds another run's results (whole images classified" in proc.stderr
    assert "--overwrite" in proc.stderr and sorted(out.glob("*.json")) == before
    for args, expected in [
        (
            ("--conf", "0.5"),
            "--conf: 'shapes_cls' serves classification, which takes --segment-model, --segments, --top-k",
        ),
        (
            ("--overlay", "--max-det", "3"),
            "--max-det, --overlay: 'shapes_cls' serves classification, which takes",
        ),
    ]:
        proc = _infer(server, root, tmp_path / "y", "--group", "held_out", *args, check=False)
        assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1
