"""The training sets `seg-client segments export` writes from reviewed segments train unchanged:
`seg-train yolo --data DIR/data.yaml` and `seg-train semantic --data-root DIR`, one epoch each."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from store.records import Status
from store.segment_store import ImageFacts, NewSegment, SegmentStore
from tests.conftest import run_cli
from tests.fixtures.synthetic import SHAPES, make_scene
from tests.helpers import review_images

GROUP = "shapes"
IMAGES = 12


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A store of synthetic scenes whose segments (the scenes' own masks) are all approved."""
    root = tmp_path_factory.mktemp("store")
    rng = np.random.default_rng(0)
    names = []
    with SegmentStore.open(f"sqlite:///{root}/DATA/segments.db") as store:
        for n in range(IMAGES):
            image, instances = make_scene(64, 96, rng)
            name = f"cam{n % 2}/{n:03d}.png"
            file = root / "DATA" / "pictures" / name
            file.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(file), image)
            data = file.read_bytes()
            facts = ImageFacts(name, hashlib.sha256(data).hexdigest(), len(data), 96, 64)
            segments = []
            for k, instance in enumerate(instances):
                rle = mask_utils.encode(np.asfortranarray(instance.mask))
                x, y, w, h = mask_utils.toBbox(rle).tolist()
                box = (x, y, x + w, y + h)
                class_id, score = SHAPES.index(instance.shape), 0.9 - 0.1 * k
                segments.append(NewSegment(class_id, instance.shape, score, box, rle["counts"].decode()))
            store.save_segmentation(facts, "shapes-model", "1", segments, groups=[GROUP])
            names.append(name)
        review_images(store, names, Status.APPROVED)
    return root


def _export(data_root: Path, fmt: str, out: Path):
    return run_cli(
        "seg-client", "segments", "export", "--group", GROUP, "--format", fmt, "--out", str(out),
        "--data-root", str(data_root),
    )  # fmt: skip


@pytest.mark.slow
def test_seg_train_yolo_trains_on_an_exported_set(data_root, tmp_path):
    out = tmp_path / "yolo"
    exported = _export(data_root, "yolo", out)
    assert f"seg-train yolo --data {out.resolve() / 'data.yaml'}" in exported.stdout
    run_cli(
        "seg-train", "yolo", "--data", str(out / "data.yaml"), "--model", "yolov8n-seg.yaml",
        "--epochs", "1", "--imgsz", "64", "--batch-size", "4", "--device", "cpu", "workers=0",
        "plots=False", f"project={tmp_path / 'runs'}", "name=store", timeout=600, as_user=True,
    )  # fmt: skip
    weights = tmp_path / "runs" / "store" / "weights"
    assert (weights / "last.pt").is_file() and (weights / "best.pt").is_file()


@pytest.mark.slow
def test_seg_train_semantic_trains_on_an_exported_set(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # random encoder weights: no download
    out = tmp_path / "semantic"
    exported = _export(data_root, "semantic", out)
    num_classes = len(SHAPES) + 1
    assert f"--data-root {out.resolve()} --num-classes {num_classes}" in exported.stdout
    run_cli(
        "seg-train", "semantic", "--data-root", str(out), "--num-classes", str(num_classes),
        "--model-name", "store", "--epochs", "1", "--batch-size", "4", "--size", "64", "64",
        "--output-dir", str(tmp_path / "runs"), "--workers", "0", "--device", "cpu", timeout=600,
    )  # fmt: skip
    best = tmp_path / "runs" / "store" / "best.pth"
    payload = torch.load(best, weights_only=True)
    assert payload["epoch"] == 1
    assert payload["info"]["class_names"] == ["background", *SHAPES]
