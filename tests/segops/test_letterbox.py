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


@pytest.mark.parametrize("shape", [*SHAPES, (720, 1280), (1080, 1920), (375, 500), (211, 640)])
@pytest.mark.parametrize("size", [320, 640])
def test_padding_only_to_the_stride_matches_ultralytics_rect(shape, size):
    """What ultralytics' predict feeds a .pt: LetterBox(auto=True), padded to a multiple of 32."""
    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    expected = LetterBox(new_shape=(size, size), auto=True, stride=32)(image=image)
    actual, params = letterbox(image, (size, size), stride=32)
    np.testing.assert_array_equal(actual, expected)
    assert params.input_hw == actual.shape[:2]
    assert all(side % 32 == 0 and side <= size for side in actual.shape[:2])


def test_a_wide_image_padded_to_the_stride_costs_fewer_pixels():
    image = np.zeros((720, 1280, 3), np.uint8)
    assert letterbox(image, (640, 640), stride=32)[0].shape == (384, 640, 3)
    assert letterbox(image, (640, 640))[0].shape == (640, 640, 3)


@pytest.mark.parametrize("shape", [(720, 1280), (333, 517), (211, 640), (3000, 2)])
def test_box_unscaling_from_a_stride_padded_input_matches_ultralytics(shape):
    """scale_boxes works the inverse out from the input's shape; so does letterbox_params."""
    input_hw = letterbox_params(shape, (640, 640), stride=32).input_hw
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 300, (50, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 100, (50, 2))], axis=1).astype(np.float32)
    expected = ops.scale_boxes(input_hw, torch.from_numpy(boxes.copy()), shape).numpy()
    actual = scale_boxes_to_original(boxes, letterbox_params(shape, input_hw))
    np.testing.assert_allclose(actual, expected, atol=1e-3)


def test_model_input_is_rgb_chw_unit_range():
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    x = to_model_input(image)
    assert x.shape == (3, 4, 4) and x.dtype == np.float32
    assert x[2].min() == 1.0 and x[0].max() == 0.0  # blue ends up in the last (B of RGB) channel
