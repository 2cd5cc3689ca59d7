"""COCO instances: a file written and read back (polygons, compressed RLE, crowd RLE), and what a
segmentation that cannot be used says."""

from __future__ import annotations

import contextlib
import io
import json

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from annotations.coco import (
    DEGENERATE,
    EMPTY,
    instances_document,
    mask_annotation,
    mask_rle,
    polygon_annotation,
    polygon_segmentation,
    read_coco,
    segmentation_mask,
    segmentation_polygons,
    uncompressed_rle,
    write_coco,
)
from annotations.errors import AnnotationFormatError
from annotations.polygons import mask_polygons
from segcontract.errors import SegstackError

H, W = 40, 60


def _disc(cx: int, cy: int, r: int) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    cv2.circle(mask, (cx, cy), r, 1, -1)
    return mask


def _ring() -> np.ndarray:
    return _disc(40, 20, 12) - _disc(40, 20, 5)


def _load(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def test_a_file_written_and_read_back_gives_every_mask_back(tmp_path):
    disc, ring, crowd = _disc(15, 15, 9), _ring(), _disc(30, 30, 6)
    annotations = [
        polygon_annotation(1, 7, 1, mask_polygons(disc)),
        mask_annotation(2, 7, 2, mask_rle(ring)),  # a hole: RLE keeps it
        {**mask_annotation(3, 7, 1, mask_rle(crowd), iscrowd=1), "segmentation": uncompressed_rle(crowd)},
    ]
    document = instances_document(
        [{"id": 7, "file_name": "a/b.jpg", "width": W, "height": H}],
        [{"id": 1, "name": "disc"}, {"id": 2, "name": "ring"}],
        annotations,
        {"description": "test"},
    )
    path = tmp_path / "instances.json"
    write_coco(path, document)
    assert read_coco(path) == json.loads(json.dumps(document))

    coco = _load(path)
    assert sorted(coco.getAnnIds()) == [1, 2, 3] and coco.imgs[7]["file_name"] == "a/b.jpg"
    assert np.array_equal(coco.annToMask(coco.anns[1]), disc)
    assert np.array_equal(coco.annToMask(coco.anns[2]), ring)
    assert coco.anns[3]["iscrowd"] == 1 and isinstance(coco.anns[3]["segmentation"]["counts"], list)
    assert np.array_equal(coco.annToMask(coco.anns[3]), crowd)
    for ann, mask in zip(annotations, (disc, ring, crowd)):
        assert np.array_equal(segmentation_mask(ann["segmentation"], H, W), mask)


def test_areas_and_boxes():
    ring = _ring()
    ann = mask_annotation(1, 1, 1, mask_rle(ring))
    ys, xs = np.nonzero(ring)
    assert ann["area"] == ring.sum()
    assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    square = np.zeros((H, W), np.uint8)
    square[4:10, 20:30] = 1
    poly = polygon_annotation(1, 1, 1, mask_polygons(square))
    assert poly["bbox"] == [20, 4, 10, 6] and poly["area"] == 60 and poly["iscrowd"] == 0
    assert poly["segmentation"] == polygon_segmentation(square)


def test_polygons_of_each_kind_of_segmentation():
    ring = _ring()
    (outer,) = segmentation_polygons(mask_rle(ring), H, W)  # an RLE: its outline, hole filled
    assert np.array_equal(outer, mask_polygons(_disc(40, 20, 12))[0])
    (same,) = segmentation_polygons(uncompressed_rle(ring), H, W)
    assert np.array_equal(same, outer)
    flat = [1, 1, 9, 1, 9, 9]
    assert [p.tolist() for p in segmentation_polygons(flat, H, W)] == [[[1, 1], [9, 1], [9, 9]]]
    kept = segmentation_polygons([[1, 1, 9, 1, 9, 9], [10, 10, 20, 20], [0, 0, 5, 0, 5, 5, 0, 5]], H, W)
    assert len(kept) == 2  # the one without area is left out


@pytest.mark.parametrize(
    ("segmentation", "reason"),
    [
        ([], EMPTY),
        ({"size": [H, W]}, EMPTY),
        (None, EMPTY),
        ({"size": [H, W], "counts": uncompressed_rle(np.zeros((H, W)))["counts"]}, EMPTY),
        ([[10, 10, 20, 20]], DEGENERATE),
        ([[0, 0, 1, 1, 2, 2]], DEGENERATE),
        ([["a", "b", "c", "d", "e", "f"]], DEGENERATE),
        ({"size": [H, W], "counts": "not RLE!"}, "invalid RLE: not COCO compressed RLE counts"),
        ({"size": [H, W], "counts": [5, 5]}, f"invalid RLE: the runs cover 10 pixels, the size [{H}, {W}]"),
        ({"size": [H, W], "counts": [-5, H * W + 5]}, "invalid RLE: a run length is negative"),
        ({**mask_rle(np.zeros((H + 1, W))), "size": [H + 1, W]}, f"RLE size [{H + 1}, {W}] differs from"),
    ],
)
def test_a_segmentation_that_cannot_be_used_says_why(segmentation, reason):
    with pytest.raises(AnnotationFormatError) as caught:
        segmentation_polygons(segmentation, H, W)
    assert str(caught.value).startswith(reason), caught.value
    assert isinstance(caught.value, SegstackError) and isinstance(caught.value, ValueError)


def test_compressed_counts_of_another_size_are_refused():
    other = mask_rle(np.ones((H, W + 1), np.uint8))
    with pytest.raises(AnnotationFormatError, match=r"invalid RLE: the runs cover 2440 pixels"):
        segmentation_mask({"size": [H, W], "counts": other["counts"]}, H, W)


def test_a_file_that_is_not_coco_is_named(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    with pytest.raises(AnnotationFormatError, match=rf"^{broken}: invalid JSON \(line 1, column 13: "):
        read_coco(broken)
    other = tmp_path / "other.json"
    other.write_text('{"images": []}')
    with pytest.raises(
        AnnotationFormatError, match=r"not a COCO file \(needs images, annotations and categories\)"
    ):
        read_coco(other)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(AnnotationFormatError, match="not a text file"):
        read_coco(binary)
