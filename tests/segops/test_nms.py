"""segops.nms against ultralytics' non_max_suppression on the same raw head output."""

import numpy as np
import pytest
import torch
from ultralytics.utils.nms import non_max_suppression as ultralytics_nms

from segops.nms import nms_indices, non_max_suppression


def _raw_prediction(rng, num_classes, anchors, coefficients=32):
    centres = rng.uniform(0, 320, (2, anchors))
    sizes = rng.uniform(5, 120, (2, anchors))
    scores = rng.uniform(0, 1, (num_classes, anchors)) ** 3
    coeffs = rng.normal(0, 1, (coefficients, anchors))
    return np.concatenate([centres, sizes, scores, coeffs]).astype(np.float32)


@pytest.mark.parametrize("num_classes", [1, 3, 80])
@pytest.mark.parametrize(("conf", "iou", "max_det"), [(0.25, 0.7, 300), (0.5, 0.45, 20), (0.01, 0.9, 1000)])
def test_matches_ultralytics(num_classes, conf, iou, max_det):
    rng = np.random.default_rng(num_classes)
    pred = _raw_prediction(rng, num_classes, 2100)
    ours = non_max_suppression(pred, num_classes, conf, iou, max_det)
    ref = ultralytics_nms(torch.from_numpy(pred[None]), conf, iou, max_det=max_det, nc=num_classes)[0].numpy()
    assert len(ours) == len(ref) > 0
    np.testing.assert_allclose(ours.boxes, ref[:, :4], atol=1e-3)
    np.testing.assert_allclose(ours.scores, ref[:, 4], atol=1e-6)
    np.testing.assert_array_equal(ours.classes, ref[:, 5].astype(int))
    np.testing.assert_allclose(ours.mask_coefficients, ref[:, 6:], atol=1e-6)


def test_nothing_above_threshold_gives_empty_detections():
    pred = _raw_prediction(np.random.default_rng(0), 3, 100)
    pred[4:7] = 0.1
    dets = non_max_suppression(pred, 3, 0.25, 0.7, 300)
    assert len(dets) == 0 and dets.boxes.shape == (0, 4) and dets.mask_coefficients.shape == (0, 32)


def test_suppresses_overlap_above_iou_only():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)  # IoU(0,1)=0.818
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert nms_indices(boxes, scores, 0.7).tolist() == [0, 2]
    assert nms_indices(boxes, scores, 0.9).tolist() == [0, 1, 2]


def test_conf_zero_with_a_huge_max_det_stops_after_max_det_boxes():
    """conf=0 sends every anchor into NMS; the greedy loop stops at max_det kept boxes, and the boxes
    kept are the first max_det of the full NMS."""
    pred = _raw_prediction(np.random.default_rng(7), 3, 8400)
    everything = non_max_suppression(pred, 3, 0.0, 1.0, 10**9)  # IoU > 1 never: nothing suppressed
    assert len(everything) == 8400
    capped = non_max_suppression(pred, 3, 0.0, 1.0, 300)
    assert len(capped) == 300
    np.testing.assert_array_equal(capped.boxes, everything.boxes[:300])
    boxes, scores = everything.boxes, everything.scores
    assert (
        nms_indices(boxes, scores, 0.5, max_keep=7).tolist() == nms_indices(boxes, scores, 0.5)[:7].tolist()
    )
