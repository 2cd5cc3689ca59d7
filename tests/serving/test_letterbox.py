"""segops.letterbox against ultralytics' LetterBox and scale_boxes."""

import numpy as np
import pytest
import torch
from ultralytics.data.augment import LetterBox
from ultralytics.utils import ops

from segops.letterbox import (
    letterbox,
    letterbox_params,
    scale_boxes_to_original,
    to_model_input,
)

SHAPES = [
    (480, 640),
    (640, 480),
    (320, 320),
    (333, 517),
    (1, 1),
    (1, 3000),
    (3000, 2),
    (4000, 6000),
    (101, 99),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size", [320, 640])
def test_letterbox_matches_ultralytics_pixel_for_pixel(shape, size):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    expected = LetterBox(new_shape=(size, size), auto=False)(image=image)
    actual, params = letterbox(image, (size, size))
    assert actual.shape == (size, size, 3)
    np.testing.assert_array_equal(actual, expected)
    assert params.orig_h == shape[0] and params.orig_w == shape[1]


@pytest.mark.parametrize("shape", SHAPES)
def test_box_unscaling_matches_ultralytics_per_axis(shape):
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 320, (50, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 100, (50, 2))], axis=1).astype(np.float32)
    expected = ops.scale_boxes((320, 320), torch.from_numpy(boxes.copy()), shape).numpy()
    actual = scale_boxes_to_original(boxes, letterbox_params(shape, (320, 320)))
    np.testing.assert_allclose(actual, expected, atol=1e-3)


def test_model_input_is_rgb_chw_unit_range():
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    x = to_model_input(image)
    assert x.shape == (3, 4, 4) and x.dtype == np.float32
    assert x[2].min() == 1.0 and x[0].max() == 0.0  # blue ends up in the last (B of RGB) channel
