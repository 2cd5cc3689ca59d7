"""Calibration and check inputs: image files through the server's own pre-processing, in batches of
exactly the profile's opt size; a bad file is skipped and reported."""

import cv2
import numpy as np
import pytest

from builder.errors import BuildError
from builder.exported_network import ExportedNetwork
from builder.tensorrt.image_feeds import ImageFeeds, image_files, rebatch
from builder.tensorrt.options import BatchProfile, EngineOptions
from builder.tensorrt.runtime_folder import check_and_calibration_feeds
from segops.resize import InputSpec
from tests.conftest import IMGSZ, MODEL

SPEC = InputSpec(IMGSZ, IMGSZ, "letterbox")


def test_batches_have_the_opt_size_and_the_last_is_filled(sample_images):
    files = image_files(sample_images)
    assert len(files) == 8
    batches = list(ImageFeeds(files, SPEC, "images", batch_size=3))
    assert [b["images"].shape for b in batches] == [(3, 3, IMGSZ, IMGSZ)] * 3
    last = batches[-1]["images"]
    assert np.array_equal(last[2], last[0])  # 8 images: the last batch repeats its first to fill up


def test_a_broken_image_is_skipped_and_reported(sample_images, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    cv2.imwrite(str(tmp_path / "ok.png"), cv2.imread(str(sample_images / "scene0.jpg")))
    feeds = ImageFeeds(image_files(tmp_path), SPEC, "images", batch_size=1)
    assert len(list(feeds)) == 1
    assert [p.name for p, _ in feeds.skipped] == ["broken.jpg"]


def test_limit_counts_decoded_images_and_none_decoding_is_an_error(sample_images, tmp_path):
    for i in range(3):
        (tmp_path / f"bad{i}.jpg").write_bytes(b"nope")
    cv2.imwrite(str(tmp_path / "z.png"), cv2.imread(str(sample_images / "scene0.jpg")))
    feeds = ImageFeeds(image_files(tmp_path), SPEC, "images", batch_size=1, limit=1)
    assert len(list(feeds)) == 1 and len(feeds.skipped) == 3  # the limit is on images that decode
    (tmp_path / "z.png").unlink()
    network = ExportedNetwork(tmp_path / "m.onnx", {"images": (3, IMGSZ, IMGSZ)}, SPEC, [], tmp_path)
    with pytest.raises(BuildError, match="none of its images decodes"):
        check_and_calibration_feeds(network, EngineOptions("fp16", BatchProfile(1, 1, 1), images=tmp_path))


def test_image_folder_errors(tmp_path):
    with pytest.raises(BuildError, match="no such folder"):
        image_files(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BuildError, match="no images"):
        image_files(tmp_path)


def test_rebatch_fills_exact_batches():
    arrays = [np.arange(2)[:, None] * np.ones((2, 3)), np.full((1, 3), 7.0)]
    feeds = rebatch(arrays, "x", 2)
    assert [f["x"][:, 0].tolist() for f in feeds] == [[0, 1], [7, 7]]


def test_check_and_calibration_feeds(sample_images, tmp_path):
    samples = [np.zeros((2, 3, IMGSZ, IMGSZ), np.float32), np.ones((1, 3, IMGSZ, IMGSZ), np.float32)]
    network = ExportedNetwork(tmp_path / "m.onnx", {"images": (3, IMGSZ, IMGSZ)}, SPEC, samples, tmp_path)
    check, calibration = check_and_calibration_feeds(network, EngineOptions("fp16", BatchProfile(1, 2, 4)))
    assert len(check) == 2 and calibration is None  # the family's 3 scenes, in batches of 2
    options = EngineOptions("int8", BatchProfile(1, 4, 4), images=sample_images, check_images=4)
    check, calibration = check_and_calibration_feeds(network, options)
    assert len(check) == 1 and check[0]["images"].shape == (4, 3, IMGSZ, IMGSZ)
    assert len(list(calibration)) == 2  # all 8 images, 4 at a time


@pytest.mark.integration
def test_feeds_equal_what_the_served_preprocess_model_gives(ensemble_triton, sample_images):
    """The calibrator sees exactly the tensors the served network sees."""
    import tritonclient.grpc as grpcclient

    files = image_files(sample_images)
    feeds = list(ImageFeeds(files, SPEC, "images", batch_size=1))
    client = grpcclient.InferenceServerClient(ensemble_triton.grpc_url)
    for path, feed in zip(files, feeds):
        request = grpcclient.InferInput("IMAGE", [1, 1], "BYTES")
        request.set_data_from_numpy(np.array([[path.read_bytes()]], dtype=object))
        served = client.infer(f"{MODEL}_preprocess", [request]).as_numpy("images")
        assert np.array_equal(served, feed["images"]), path.name
