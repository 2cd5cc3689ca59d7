"""segops.masks against ultralytics' process_mask_native (retina masks)."""

import numpy as np
import pytest
import torch
from ultralytics.utils import ops

from segops.letterbox import letterbox_params, scale_boxes_to_original
from segops.masks import box_window, masks_in_boxes, paste
from tests.helpers import mask_iou


@pytest.mark.parametrize("orig", [(480, 640), (640, 480), (333, 517), (720, 1280), (17, 900), (2000, 3000)])
def test_masks_match_process_mask_native(orig):
    rng = np.random.default_rng(sum(orig))
    size = (320, 320)
    protos = np.stack([np.kron(rng.normal(0, 1, (8, 8)), np.ones((10, 10))) for _ in range(32)]).astype(
        np.float32
    )
    coeffs = rng.normal(0, 0.5, (12, 32)).astype(np.float32)
    xy = rng.uniform(0, 250, (12, 2))
    boxes_in = np.concatenate([xy, xy + rng.uniform(10, 70, (12, 2))], 1).astype(np.float32)
    params = letterbox_params(orig, size)
    boxes = scale_boxes_to_original(boxes_in, params)

    expected = ops.process_mask_native(
        torch.from_numpy(protos), torch.from_numpy(coeffs), torch.from_numpy(boxes.copy()), orig
    ).numpy()
    ious = []
    for (window, patch), ref in zip(masks_in_boxes(protos, coeffs, boxes, params, size), expected):
        ours = paste(window, patch, orig)
        assert ours.shape == orig
        ious.append(mask_iou(ours, ref))
    assert min(ious) >= 0.98, ious
    assert np.mean(ious) >= 0.995


def test_box_window_follows_crop_mask_rule():
    # crop_mask keeps columns c with x1 <= c < x2
    assert box_window(np.array([0.0, 0.0, 10.0, 5.0]), (100, 100)) == (0, 0, 10, 5)
    assert box_window(np.array([0.5, 1.2, 10.2, 5.9]), (100, 100)) == (1, 2, 11, 6)
    assert box_window(np.array([-5.0, -5.0, 500.0, 500.0]), (100, 80)) == (0, 0, 80, 100)
