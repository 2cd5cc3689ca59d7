"""seg-train classify: the run's output tree, a checkpoint build-repo can read
(weights_only), eval parity between the trained module, the loaded network and the exports, resume,
class folders, training on the segment store's approved crops, and one-line errors."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from model_checkpoints.classifier import load_network
from segcontract.checkpoint_formats import CLASSIFIER_FORMAT
from segcontract.model_metadata import InputSpec
from segops.decode import decode_image
from segops.resize import prepare
from segops.rle import encode
from segops.segment_crop import crop_segment
from store.records import Status
from store.segment_store import ImageFacts, NewSegment, SegmentStore
from tests.conftest import run_cli
from tests.fixtures.shapes_classes import (
    CLASSES,
    store_scene,
    write_class_folders,
    write_shape_group,
)
from tests.helpers import review_images
from tests.schema_check import validate_run_record
from training.classify_data import ClassifyDataset, Sample, eval_input
from training.classify_module import ClassifierModule

ARCH = "resnet10t"  # trains the shapes in seconds on two CPU cores
FAST = ("--arch", ARCH, "--imgsz", "64", "--batch-size", "16", "--workers", "0", "--lr", "2e-3")
SEG_MODEL = "shapes-seg"


def classify(root: Path, *args: str, check: bool = True):
    return run_cli("seg-train", "classify", "--data-root", str(root), *FAST, *args, check=check, timeout=300)


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("classify")
    write_shape_group(root, "shapes", per_class=40, size=64, seed=0)
    return root


@pytest.fixture(scope="module")
def csv_run(shapes_root):
    """Three epochs on DATA/datasets/shapes.csv; pretrained asked for, offline (conftest)."""
    started = time.monotonic()
    proc = classify(shapes_root, "--cat", "shapes", "--epochs", "3", "--experiment", "first")
    return shapes_root / "DATA" / "models" / "shapes" / "first", proc, time.monotonic() - started


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _val_images(run_dir: Path, root: Path) -> tuple[list[Path], list[str]]:
    rows = [r for r in _rows(run_dir / "split.csv") if r["split"] == "val"]
    return [root / "DATA" / "pictures" / r["image"] for r in rows], [r["label"] for r in rows]


@pytest.mark.slow
def test_run_writes_the_tree_and_a_checkpoint_build_repo_reads(csv_run):
    run_dir, proc, _ = csv_run
    for sub in ("checkpoints", "csv_logs", "tensorboard", "torchscripts", "onnx", "train_batches"):
        assert (run_dir / sub).is_dir(), sub
    best, last = run_dir / "checkpoints" / "best.ckpt", run_dir / "checkpoints" / "last.ckpt"
    assert best.is_file() and last.is_file()
    assert (run_dir / "torchscripts" / "model.pt").is_file() and (run_dir / "onnx" / "model.onnx").is_file()
    assert (run_dir / "csv_logs" / "metrics.csv").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents*"))
    assert not (run_dir / "wandb").exists()  # no key: W&B never started
    assert "random weights" in proc.stderr  # offline: pretrained falls back, no crash
    assert "W&B off (no WANDB_API_KEY)" in proc.stderr
    assert f"build-repo --model classifier --weights {best} --name shapes" in proc.stdout

    for path in (best, last):
        payload = torch.load(path, map_location="cpu", weights_only=True)
        hparams = payload["hyper_parameters"]
        assert hparams["format"] == CLASSIFIER_FORMAT
        json.dumps(hparams)  # plain values only
        assert all(k.startswith("model.") for k in payload["state_dict"])
        info, network = load_network(path)
        assert info.class_names == list(CLASSES) and info.input_size == (64, 64)
        assert (info.arch, info.resize) == (ARCH, "stretch")
        assert not network.training
    assert torch.load(last, weights_only=True)["epoch"] == 2  # Lightning's 0-based epoch

    run = validate_run_record(run_dir, "classify")  # run.json: what made the run, its result
    reported = float(re.search(r"\(val acc (\d\.\d+)\)", proc.stdout).group(1))
    assert run["final_metrics"]["best_val_acc"] == pytest.approx(reported, abs=1e-4)
    assert run["final_metrics"]["epochs"] == 3 and "val_acc" in run["final_metrics"]
    assert run["arguments"]["arch"] == ARCH and run["arguments"]["classes"] == list(CLASSES)
    assert run["dataset"]["files"] == len(_rows(run_dir / "split.csv")) + 1  # the CSV and its images


@pytest.mark.slow
def test_train_batches_are_labelled_grids(csv_run):
    run_dir, _, _ = csv_run
    grids = sorted((run_dir / "train_batches").glob("*.png"))
    assert 1 <= len(grids) <= 3
    image = cv2.imread(str(grids[0]))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_eval_input_is_the_servers_preprocessing_and_predictions_agree(csv_run, shapes_root):
    run_dir, _, _ = csv_run
    best = run_dir / "checkpoints" / "best.ckpt"
    info, network = load_network(best)
    module = ClassifierModule.load_from_checkpoint(best, map_location="cpu").eval()
    paths, labels = _val_images(run_dir, shapes_root)
    assert len(paths) == 24  # 20 % of each class, stratified
    spec = InputSpec(64, 64, "stretch", info.mean, info.std, "CHW")
    dataset = ClassifyDataset([Sample(p, lab, p.name) for p, lab in zip(paths, labels)], info, train=False)
    inputs = []
    for i, path in enumerate(paths):
        served = prepare(cv2.imread(str(path), cv2.IMREAD_COLOR), spec)
        assert np.array_equal(eval_input(decode_image(path.read_bytes()), info), served)
        assert np.array_equal(dataset[i][0].numpy(), served)
        inputs.append(served)
    x = torch.from_numpy(np.stack(inputs))
    with torch.no_grad():
        loaded, trained = network(x), module(x)
        probs = module.predict_probabilities(x)
    assert torch.allclose(loaded, trained, atol=1e-5)
    assert torch.equal(loaded.argmax(1), trained.argmax(1))
    assert torch.allclose(probs.sum(1), torch.ones(len(x)), atol=1e-5)

    scripted = torch.jit.load(str(run_dir / "torchscripts" / "model.pt"))
    with torch.no_grad():
        assert torch.allclose(scripted(x), probs, atol=1e-5)
    import onnxruntime as ort

    session = ort.InferenceSession(str(run_dir / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    (onnx_probs,) = session.run(["probabilities"], {"input": x.numpy()})  # 24: the batch is dynamic
    assert np.allclose(onnx_probs, probs.numpy(), atol=1e-4)

    accuracy = float(
        (loaded.argmax(1) == torch.tensor([info.class_names.index(lab) for lab in labels])).float().mean()
    )
    assert accuracy >= 0.7, f"val accuracy {accuracy:.2f} after 3 epochs (chance 0.33)"
    logged = [float(r["val_acc"]) for r in _rows(run_dir / "csv_logs" / "metrics.csv") if r.get("val_acc")]
    assert len(logged) == 3 and max(logged) == pytest.approx(accuracy, abs=1e-6)


@pytest.mark.slow
def test_resume_continues_the_run(csv_run, shapes_root):
    run_dir, _, _ = csv_run
    last = run_dir / "checkpoints" / "last.ckpt"
    before = torch.load(last, weights_only=True)
    classify(
        shapes_root, "--cat", "shapes", "--epochs", "4", "--experiment", "resumed", "--resume", str(last)
    )
    resumed = shapes_root / "DATA" / "models" / "shapes" / "resumed" / "checkpoints" / "last.ckpt"
    after = torch.load(resumed, weights_only=True)
    assert after["epoch"] == 3 and after["global_step"] > before["global_step"]
    load_network(resumed)

    line = _one_error_line(
        _cli(
            "classify",
            "--data-root",
            str(shapes_root),
            "--cat",
            "shapes",
            *FAST,
            "--epochs",
            "3",
            "--experiment",
            "again",
            "--resume",
            str(last),
        )
    )
    assert line.startswith("seg-train: error: --resume") and "already trained 3 epochs" in line


@pytest.mark.slow
def test_class_folders_train_skip_unreadable_images_and_log_to_wandb_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)  # never checked offline
    monkeypatch.setenv("WANDB_MODE", "offline")
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    folder = write_class_folders(tmp_path / "myshapes", per_class=12, size=64)
    (folder / "circle" / "broken.png").write_bytes(b"not an image")
    cv2.imwrite(str(folder / "stray.png"), np.zeros((8, 8, 3), np.uint8))
    proc = classify(tmp_path, "--data", str(folder), "--epochs", "1", "--no-pretrained", "--experiment", "x")
    run_dir = tmp_path / "DATA" / "models" / "myshapes" / "x"  # --name defaults to the folder's name
    info, _ = load_network(run_dir / "checkpoints" / "best.ckpt")
    assert info.class_names == list(CLASSES)
    assert "1 unreadable images skipped" in proc.stderr and "broken.png" in proc.stderr
    assert "1 images outside the class folders ignored" in proc.stderr
    assert "random weights" not in proc.stderr  # --no-pretrained asks for nothing
    assert len(_rows(run_dir / "split.csv")) == 36
    assert "W&B on (offline" in proc.stderr and list((run_dir / "wandb").glob("offline-run-*"))


def _fill_store(root: Path) -> tuple[str, int]:
    """Scenes of two shapes each, labelled in DATA/datasets/scenes.csv; their masks stored as
    approved segments of SEG_MODEL, except one rejected segment, a badlisted image, and another
    model's unchecked segment. Returns (store URL, the approved segments training should use)."""
    rng = np.random.default_rng(3)
    pictures = root / "DATA" / "pictures"
    (pictures / "scenes").mkdir(parents=True)
    url = f"sqlite:///{root / 'DATA' / 'segments.db'}"
    rows, expected = [], 0
    with SegmentStore.open(url) as store:
        for kind in CLASSES:
            for i in range(10):
                name = f"scenes/{kind}_{i:02d}.png"
                expected += store_scene(store, pictures, name, kind, rng, SEG_MODEL)
                review_images(store, [name], Status.APPROVED, model=SEG_MODEL)
                rows.append((name, kind))
        first = f"scenes/{CLASSES[0]}_00.png"
        corner = np.zeros((128, 128), np.uint8)
        corner[:9, :9] = 1
        other = NewSegment(0, "x", 0.5, (0, 0, 9, 9), encode(corner).decode())
        store.save_segmentation(ImageFacts(first, *_facts(pictures / first)), "other-model", "1", [other])
        store.push_badlist([f"{CLASSES[1]}_00"])  # by stem: its two segments are left out
        review_images(store, [f"scenes/{CLASSES[2]}_00.png"], Status.REJECTED, model=SEG_MODEL)
        expected -= 4
    (root / "DATA" / "datasets").mkdir(parents=True, exist_ok=True)
    with open(root / "DATA" / "datasets" / "scenes.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label"])
        writer.writerows(rows)
    return url, expected


def _facts(path: Path) -> tuple[str, int, int, int]:
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), len(data), 128, 128


@pytest.mark.slow
def test_use_segments_trains_on_the_approved_crops(tmp_path):
    url, expected = _fill_store(tmp_path)
    line = _one_error_line(
        _cli("classify", "--data-root", str(tmp_path), "--cat", "scenes", "--use-segments")
    )
    assert (
        "several models" in line and SEG_MODEL in line and "other-model" in line and "--segment-model" in line
    )
    line = _one_error_line(
        _cli(
            "classify",
            "--data-root",
            str(tmp_path),
            "--cat",
            "scenes",
            "--use-segments",
            "--segment-model",
            "nope",
        )
    )
    assert "'nope'" in line and SEG_MODEL in line

    proc = classify(
        tmp_path,
        "--cat",
        "scenes",
        "--use-segments",
        "--segment-model",
        SEG_MODEL,
        "--db",
        url,
        "--epochs",
        "1",
        "--no-pretrained",
        "--experiment",
        "crops",
    )
    line = next(x for x in proc.stderr.splitlines() if "train " in x and "; val " in x)
    train_n, val_n = int(line.split("train ")[1].split()[0]), int(line.split("; val ")[1].split()[0])
    assert train_n + val_n == expected
    # the rejected one's; the badlisted one is left out before its segments are looked for
    assert "1 images have no approved segment" in proc.stderr
    assert "1 badlisted images left out" in proc.stderr
    run_dir = tmp_path / "DATA" / "models" / "scenes" / "crops"
    payload = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert payload["hyper_parameters"]["use_segments"] is True
    assert payload["hyper_parameters"]["segment_model"] == SEG_MODEL
    info, _ = load_network(run_dir / "checkpoints" / "best.ckpt")
    # every crop of one image is on one side of the split
    sides = {}
    for row in _rows(run_dir / "split.csv"):
        assert sides.setdefault(row["image"], row["split"]) == row["split"]
    # what the dataset feeds at eval is the server's crop, prepared
    with SegmentStore.open(url) as store:
        seg = store.segments(model=SEG_MODEL, statuses=[Status.APPROVED])[0]
    path = tmp_path / "DATA" / "pictures" / seg.image
    sample = Sample(path, "circle", seg.image, bbox=seg.bbox, rle_counts=seg.rle["counts"])
    image = cv2.imread(str(path))
    crop = crop_segment(image, seg.bbox, seg.rle["counts"], margin=info.segment_margin, mean_rgb=info.mean)
    spec = InputSpec(64, 64, "stretch", info.mean, info.std, "CHW")
    assert np.array_equal(ClassifyDataset([sample], info, train=False)[0][0].numpy(), prepare(crop, spec))


def _cli(*args: str):
    """The command in this process (fast, for what fails before training), its root logging
    handlers put back afterwards (the command's basicConfig would write to a closed stream)."""
    import logging

    from training.cli import main

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return CliRunner().invoke(main, list(args))
    finally:
        root.handlers[:], root.level = handlers, level


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("seg-train: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.slow
def test_bad_input_is_one_line(tmp_path, shapes_root, csv_run):
    root = str(tmp_path)
    assert "no such file" in _one_error_line(_cli("classify", "--data-root", root, "--cat", "nope"))
    datasets = tmp_path / "DATA" / "datasets"
    datasets.mkdir(parents=True)
    (datasets / "nolabel.csv").write_text("image,score\na.png,1\n")
    assert "no label column" in _one_error_line(_cli("classify", "--data-root", root, "--cat", "nolabel"))
    (datasets / "badsplit.csv").write_text("image,label,split\na.png,x,sometimes\n")
    assert "split 'sometimes'" in _one_error_line(_cli("classify", "--data-root", root, "--cat", "badsplit"))
    one = write_class_folders(tmp_path / "one", per_class=3)
    for kind in CLASSES[1:]:
        for p in (one / kind).iterdir():
            p.unlink()
    line = _one_error_line(_cli("classify", "--data-root", root, "--data", str(one), "--workers", "0"))
    assert "at least 2 classes needed" in line
    assert "one of --cat" in _one_error_line(_cli("classify", "--data-root", root))
    run_dir, _, _ = csv_run
    line = _one_error_line(
        _cli(
            "classify",
            "--data-root",
            str(shapes_root),
            "--cat",
            "shapes",
            "--arch",
            ARCH,
            "--imgsz",
            "32",
            "--workers",
            "0",
            "--resume",
            str(run_dir / "checkpoints" / "last.ckpt"),
        )
    )
    assert "input_size" in line
    line = _one_error_line(
        _cli(
            "classify",
            "--data-root",
            str(shapes_root),
            "--cat",
            "shapes",
            "--arch",
            "no_such_net",
            "--workers",
            "0",
        )
    )
    assert "no_such_net" in line
    line = _one_error_line(
        _cli("classify", "--data-root", str(shapes_root), "--cat", "shapes", "--experiment", "first")
    )
    assert "already there" in line


def test_split_is_stratified_seeded_and_a_split_column_decides(tmp_path):
    from training.classify_data import ReadReport, read_csv_samples, split_samples

    index = tmp_path / "set.csv"
    rows = ["image,label,split"]
    rows += [f"a/{i}.png,a," for i in range(10)] + [f"b/{i}.png,b," for i in range(20)]
    rows += ["a/fixed.png,a,val", "b/fixed.png,b,train", "b/held.png,b,test", "c.png,,"]
    index.write_text("\n".join(rows) + "\n")
    report = ReadReport()
    samples = read_csv_samples(index, tmp_path / "pictures", report)
    assert (report.unlabelled, report.left_out_split) == (1, 1)
    train, val = split_samples(samples, 0.2, seed=0)
    assert sorted(s.key for s in val if s.label == "a").count("a/fixed.png") == 1
    assert "b/fixed.png" in {s.key for s in train}
    assert sum(s.label == "a" for s in val) == 1 + 2 and sum(s.label == "b" for s in val) == 4  # 20 % of each
    again, _ = split_samples(samples, 0.2, seed=0)
    assert [s.key for s in again] == [s.key for s in train]
    other, _ = split_samples(samples, 0.2, seed=1)
    assert {s.key for s in other} != {s.key for s in train}
