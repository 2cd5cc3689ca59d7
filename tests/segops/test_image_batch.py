"""segops.image_batch, the batch loop both image preprocess models of the Python backend run: each
item decoded, prepared (by default segops.resize.prepare), its size kept, and a bad item one
BadItem that names it in a batch of several."""

import cv2
import numpy as np
import pytest

from segcontract.model_metadata import InputSpec
from segops import image_batch
from segops.resize import prepare

SPEC = InputSpec(32, 48, "letterbox")


def _png(height: int, width: int) -> bytes:
    image = np.random.default_rng(height * width).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return cv2.imencode(".png", image)[1].tobytes()


def test_the_batch_is_decoded_prepared_and_sized():
    files = [_png(20, 30), _png(50, 10)]
    items = image_batch.encoded_items(np.array(files, dtype=object).reshape(2, 1))
    inputs, sizes = image_batch.prepare_batch(items, SPEC, max_pixels=10_000)
    assert inputs.shape == (2, *SPEC.shape) and inputs.dtype == np.float32
    assert sizes.tolist() == [[20, 30], [50, 10]] and sizes.dtype == np.int32
    assert np.array_equal(inputs[1], prepare(cv2.imdecode(np.frombuffer(files[1], np.uint8), 1), SPEC))


def test_inputs_padded_to_a_stride_keep_each_its_own_shape():
    spec = InputSpec(64, 64, "letterbox", stride=32)
    inputs, sizes = image_batch.prepare_items([_png(20, 40), _png(40, 40)], spec, max_pixels=10_000)
    assert [x.shape for x in inputs] == [(3, 32, 64), (3, 64, 64)] and sizes.tolist() == [[20, 40], [40, 40]]
    with pytest.raises(ValueError, match="use prepare_items"):
        image_batch.prepare_batch([_png(20, 40)], spec, max_pixels=10_000)


def test_a_bad_item_names_itself_only_in_a_batch_of_several():
    with pytest.raises(image_batch.BadItem, match=r"^batch item 1: "):
        image_batch.prepare_batch([_png(8, 8), b"not an image"], SPEC, max_pixels=10_000)
    with pytest.raises(image_batch.BadItem) as single:
        image_batch.prepare_batch([b"not an image"], SPEC, max_pixels=10_000)
    assert not str(single.value).startswith("batch item")
    with pytest.raises(image_batch.BadItem, match=r"^batch item 0: "):  # over max_pixels
        image_batch.prepare_batch([_png(200, 200), _png(8, 8)], SPEC, max_pixels=10_000)


def test_prepare_replaces_the_resize_and_its_bad_items_are_named():
    def prepare_item(i, image):
        if i == 1:
            raise image_batch.BadItem("box outside the image")
        return np.full(SPEC.shape, i, np.float32)

    inputs, _ = image_batch.prepare_batch([_png(8, 8)], SPEC, 10_000, prepare_item)
    assert (inputs == 0).all()
    with pytest.raises(image_batch.BadItem, match=r"^batch item 1: box outside the image$"):
        image_batch.prepare_batch([_png(8, 8), _png(9, 9)], SPEC, 10_000, prepare_item)
    with pytest.raises(ZeroDivisionError):  # not the request's fault: the model's generic error
        image_batch.prepare_batch([_png(8, 8)], SPEC, 10_000, lambda i, image: 1 / 0)


def test_covered_pixels_sums_the_runs_of_compressed_rle():
    import numpy as np
    import pytest

    from segops.rle import covered_pixels, encode

    mask = np.zeros((37, 53), np.uint8)
    mask[5:30, 10:40] = 1
    assert covered_pixels(encode(mask)) == 37 * 53
    assert covered_pixels(encode(np.ones((4, 4), np.uint8))) == 16
    with pytest.raises(ValueError, match=r"^not COCO compressed RLE counts$"):
        covered_pixels(b"not rle!")
    with pytest.raises(ValueError, match="truncated"):
        covered_pixels(b"4`")  # a run whose last character says more follow
