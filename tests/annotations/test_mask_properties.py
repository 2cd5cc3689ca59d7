"""Properties over 2,050 generated masks (tests/annotations/masks.py): every format carries a mask
exactly where it can, and polygons come close where they cannot.

- CVAT ``<mask>`` RLE: our encoder gives what ``cvat_sdk.masks.encode_mask`` gives, our decoder
  what ``decode_mask`` gives, and the round trip is pixel-exact.
- COCO RLE, compressed and uncompressed: pixel-exact both ways.
- Polygons: rasterised by pycocotools, the exact outlines give the mask back with its holes filled,
  pixel for pixel; under CVAT's point budget (simplified past it), IoU >= 0.98 with the mask,
  measured against the filled mask for masks with holes (polygons cannot hold a hole: those masks
  are the RLE's and the CVAT ``<mask>``'s to carry exactly).
"""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from annotations.coco import mask_rle, rle_mask, segmentation_mask, uncompressed_rle
from annotations.cvat_rle import CvatMask, decode_cvat_mask, encode_cvat_mask
from annotations.cvat_xml import MAX_POLYGON_POINTS
from annotations.polygons import flat, mask_polygons
from tests.annotations.masks import KINDS, filled, generated_masks
from tests.helpers import mask_iou


def _pycocotools_raster(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Polygons rasterised by pycocotools itself, not through the code under test."""
    if not polygons:
        return np.zeros((height, width), np.uint8)
    return mask_utils.decode(
        mask_utils.merge(mask_utils.frPyObjects([flat(p) for p in polygons], height, width))
    )


def test_the_generated_masks_cover_every_kind():
    masks = generated_masks()
    kinds = {kind for kind, _ in masks}
    assert len(masks) >= 2000 and kinds == {*KINDS, "tiny", "large blob"}
    shapes = {m.shape for _, m in masks}
    assert any(h == 1 and w > 1 for h, w in shapes) and any(w == 1 and h > 1 for h, w in shapes)
    assert (1, 1) in shapes
    with_holes = sum(not np.array_equal(filled(m), m) for _, m in masks)
    assert with_holes > 200
    assert all(m.any() for kind, m in masks if kind not in ("empty", "tiny"))


def test_cvat_mask_rle_is_cvat_sdks_both_ways_and_exact():
    cvat_masks = pytest.importorskip("cvat_sdk.masks", reason="cvat-sdk: the dev extra, on Python >= 3.11")
    for kind, mask in generated_masks():
        height, width = mask.shape
        bitmap = mask.astype(bool)
        ours = encode_cvat_mask(mask)
        if ours is None:
            assert not bitmap.any(), kind
        else:
            reference = cvat_masks.encode_mask(bitmap)
            assert ours.points() == reference, kind
            assert np.array_equal(decode_cvat_mask(CvatMask.from_points(reference), height, width), bitmap)
            decoded = cvat_masks.decode_mask(ours.points(), image_width=width, image_height=height)
            assert np.array_equal(decoded, bitmap), kind
        # over a box given (the whole frame), empty masks too
        frame = encode_cvat_mask(mask, (0, 0, width - 1, height - 1))
        assert frame is not None
        assert frame.points() == cvat_masks.encode_mask(bitmap, bbox=[0, 0, width, height]), kind
        assert np.array_equal(decode_cvat_mask(frame, height, width), bitmap), kind


def test_cvat_mask_xml_attributes_round_trip():
    for kind, mask in generated_masks():
        encoded = encode_cvat_mask(mask)
        if encoded is None:
            continue
        # the first run counts 0s: empty exactly when the crop starts with a 1
        assert (encoded.runs[0] == 0) == bool(mask[encoded.top, encoded.left]), kind
        assert all(run > 0 for run in encoded.runs[1:]), kind
        text = encoded.rle_text()
        assert text == ", ".join(str(run) for run in encoded.runs)
        again = CvatMask.from_xml(
            text, str(encoded.left), str(encoded.top), str(encoded.width), str(encoded.height)
        )
        assert again == encoded, kind


def test_coco_rle_is_exact_compressed_and_uncompressed():
    for kind, mask in generated_masks():
        height, width = mask.shape
        compressed = mask_rle(mask)
        assert isinstance(compressed["counts"], str)
        assert np.array_equal(rle_mask(compressed), mask), kind
        raw = uncompressed_rle(mask)
        assert sum(raw["counts"]) == mask.size and raw["size"] == [height, width]
        assert np.array_equal(segmentation_mask(raw, height, width), mask), kind
        # pycocotools' own reading of our uncompressed RLE compresses to ours
        assert mask_utils.frPyObjects(raw, height, width)["counts"].decode() == compressed["counts"], kind


def test_exact_polygons_give_the_filled_mask_back():
    for kind, mask in generated_masks():
        height, width = mask.shape
        polygons = mask_polygons(mask)
        for polygon in polygons:
            steps = np.diff(np.vstack([polygon, polygon[:1]]), axis=0)
            assert (polygon == np.round(polygon)).all(), kind  # vertices are pixel corners
            assert ((steps[:, 0] == 0) ^ (steps[:, 1] == 0)).all(), kind  # edges along pixel edges
        assert np.array_equal(_pycocotools_raster(polygons, height, width), filled(mask)), kind


def test_polygons_under_the_cvat_budget_stay_close():
    simplified = 0
    for kind, mask in generated_masks():
        height, width = mask.shape
        polygons = mask_polygons(mask, max_points=MAX_POLYGON_POINTS)
        assert sum(map(len, polygons)) <= MAX_POLYGON_POINTS
        exact = mask_polygons(mask)
        if sum(map(len, exact)) <= MAX_POLYGON_POINTS:
            assert all(np.array_equal(a, b) for a, b in zip(polygons, exact)) and len(polygons) == len(exact)
            continue
        simplified += 1
        back = _pycocotools_raster(polygons, height, width)
        target = mask if np.array_equal(filled(mask), mask) else filled(mask)
        assert mask_iou(back, target) >= 0.98, kind
    assert simplified >= 20  # the large blobs at least
