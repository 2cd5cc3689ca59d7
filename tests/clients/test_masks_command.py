"""seg-client masks --color: a colour PNG beside each index mask, and what a re-run keeps."""

from __future__ import annotations

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from store.segment_store import ImageFacts, NewSegment, SegmentStore
from tests.conftest import run_cli

W, H = 40, 30
RED, GREEN, BLACK = (128, 0, 0), (0, 128, 0), (0, 0, 0)  # RGB: values 1 and 2, background


def _counts(x0: int, y0: int, x1: int, y1: int) -> str:
    mask = np.zeros((H, W), np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask_utils.encode(np.asfortranarray(mask))["counts"].decode()


def _store(tmp_path, images: dict[str, list[NewSegment]]) -> str:
    db = f"sqlite:///{tmp_path / 'segments.db'}"
    with SegmentStore.open(db) as store:
        for n, (path, segments) in enumerate(images.items()):
            facts = ImageFacts(path, f"{n:064d}", 100, W, H)
            store.save_segmentation(facts, "yolo", "1", segments, groups=["g"])
    return db


def _masks(db: str, out, *args: str, check: bool = True):
    return run_cli("seg-client", "masks", "--group", "g", "--db", db, "--out", str(out), *args, check=check)


def _rgb(path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.dtype == np.uint8 and image.shape == (H, W, 3), path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def test_color_png_beside_each_mask_and_badlisted_ones_removed_with_their_pair(tmp_path):
    low = NewSegment(0, "cat", 0.4, (2, 2, 12, 12), _counts(2, 2, 12, 12))
    high = NewSegment(1, "dog", 0.9, (20, 10, 35, 25), _counts(20, 10, 35, 25))
    db = _store(tmp_path, {"cam/a.jpg": [low, high], "cam/b.jpg": []})
    out = tmp_path / "masks"
    _masks(db, out, "--color")

    labels = cv2.imread(str(out / "cam" / "a.png"), cv2.IMREAD_UNCHANGED)
    color = _rgb(out / "cam" / "a_color.png")
    assert (color[labels == 1] == RED).all() and (color[10:25, 20:35] == RED).all()  # best: value 1
    assert (color[labels == 2] == GREEN).all() and (color[2:12, 2:12] == GREEN).all()
    assert (color[labels == 0] == BLACK).all() and (labels == 0).sum() == W * H - 100 - 225
    assert not _rgb(out / "cam" / "b_color.png").any()  # no segments: all background

    # without --color: the colour files stay as they were
    before = {p.name: p.read_bytes() for p in (out / "cam").glob("*_color.png")}
    _masks(db, out)
    assert {p.name: p.read_bytes() for p in (out / "cam").glob("*_color.png")} == before

    # a.jpg badlisted: its three files go, b's and a file of the user's stay
    (out / "cam" / "a_color_notes.png").write_bytes(b"mine")
    with SegmentStore.open(db) as store:
        assert store.push_badlist(["cam/a.jpg"]) == (1, [])
    result = _masks(db, out)
    assert "1 badlisted images' mask files removed" in result.stdout
    assert "images (1 badlisted left out), " in result.stdout, result.stdout
    assert sorted(p.name for p in (out / "cam").iterdir()) == [
        "a_color_notes.png",
        "b.json",
        "b.png",
        "b_color.png",
    ]


def test_a_color_name_that_is_another_images_mask(tmp_path):
    box = NewSegment(0, "cat", 0.5, (0, 0, 5, 5), _counts(0, 0, 5, 5))
    db = _store(tmp_path, {"cam/x.jpg": [box], "cam/x_color.jpg": [box]})
    out = tmp_path / "masks"
    refused = _masks(db, out, "--color", check=False)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "cam/x_color.png, the mask of cam/x_color.jpg" in refused.stderr
    assert not out.exists()

    _masks(db, out)  # x_color.png is x_color.jpg's index mask: badlisting x must not remove it
    with SegmentStore.open(db) as store:
        store.push_badlist(["cam/x.jpg"])
    _masks(db, out)
    assert sorted(p.name for p in (out / "cam").iterdir()) == ["x_color.json", "x_color.png"]
    assert cv2.imread(str(out / "cam" / "x_color.png"), cv2.IMREAD_UNCHANGED).ndim == 2


def test_help_documents_color():
    text = " ".join(run_cli("seg-client", "masks", "--help").stdout.split())
    assert "--color" in text and "<stem>_color.png" in text and "PASCAL VOC palette" in text
