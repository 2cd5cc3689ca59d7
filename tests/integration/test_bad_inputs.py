"""Bad files through the whole path: each fails alone with a clear reason, or gives a correct result."""

import json
import time
from pathlib import Path

import cv2
import numpy as np
import psutil
import pytest
from tritonclient.utils import InferenceServerException
from ultralytics import YOLO

from clients.inference.parity import Dets, compare
from clients.triton.client import SegmentationClient
from tests.conftest import IMGSZ, MODEL, run_cli
from tests.fixtures.synthetic import make_scene
from tests.helpers import constant_png


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not an image\n")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(range(256)) * 4)
    cv2.imwrite(str(folder / "one_pixel.png"), np.full((1, 1, 3), 90, np.uint8))
    cv2.imwrite(str(folder / "huge.jpg"), make_scene(4000, 6000, np.random.default_rng(3))[0])
    cv2.imwrite(str(folder / "fine.png"), make_scene(240, 320, np.random.default_rng(4))[0])
    return folder


def test_each_bad_file_fails_alone_and_the_run_completes(triton, bad_folder, tmp_path, yolo_checkpoint):
    out = tmp_path / "out"
    proc = run_cli(
        "seg-client",
        "infer",
        "--source",
        str(bad_folder),
        "--model",
        MODEL,
        "--url",
        triton.grpc_url,
        "--out",
        str(out),
        "--max-det",
        "20",
        "--conf",
        "0.5",
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "3 written, 0 skipped (done before), 3 failed" in proc.stdout
    failures = json.loads((out / "failures.json").read_text())
    reasons = {k.rsplit("/", 1)[-1]: v for k, v in failures.items()}
    assert reasons == {
        "zero.jpg": "empty file (0 bytes)",
        "text.jpg": reasons["text.jpg"],
        "corrupt.jpg": reasons["corrupt.jpg"],
    }
    assert reasons["text.jpg"].startswith("not a decodable image")
    assert reasons["corrupt.jpg"].startswith("not a decodable image")
    for name in ("zero", "text", "corrupt"):
        assert f"failed: {bad_folder / (name + '.jpg')}" in proc.stderr
        assert not (out / f"{name}.json").exists()

    tiny = json.loads((out / "one_pixel.json").read_text())
    assert (tiny["width"], tiny["height"]) == (1, 1)

    huge = json.loads((out / "huge.json").read_text())
    assert (huge["width"], huge["height"]) == (6000, 4000)
    ref = YOLO(str(yolo_checkpoint)).predict(
        str(bad_folder / "huge.jpg"),
        imgsz=IMGSZ,
        conf=0.5,
        max_det=20,
        retina_masks=True,
        verbose=False,
    )[0]
    result = compare(Dets.from_ultralytics(ref), Dets.from_record(huge), 0.5)
    assert not result.missing and not result.extra, result.summary()
    if result.mask_ious:
        assert np.mean(result.mask_ious) >= 0.95

    # the server is still healthy after the bad requests
    assert triton.is_ready()


def test_a_request_cannot_ask_for_more_detections_than_the_build_allows(triton, sample_images):
    """conf=0 and a huge max_det would otherwise mean a mask for every anchor."""
    client = SegmentationClient(triton.grpc_url)
    ceiling = int(client.model_info(MODEL).parameters["max_det"])
    data = (sample_images / "scene0.jpg").read_bytes()
    start = time.monotonic()
    result = client.infer_instances(MODEL, data, {"conf": 0, "iou": 1, "max_det": 10**9})
    assert 0 < len(result.scores) <= ceiling
    assert time.monotonic() - start < 30
    assert len(client.infer_instances(MODEL, data, {"conf": 0, "max_det": 2}).scores) <= 2


def _peak_rss(process: psutil.Process) -> int:
    """The process's high-water mark of resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {process.pid}")


def test_an_image_over_max_pixels_is_refused_from_its_header(triton, sample_images):
    """A 20000×20000 PNG is a few hundred KB on the wire and 1.2 GB decoded: refused undecoded."""
    stubs = [
        p
        for p in psutil.Process(triton.process.pid).children(recursive=True)
        if any(f"/{MODEL}/1/model.py" in arg for arg in p.cmdline())
    ]
    assert stubs, "no Python-backend stub of the served model (which decodes the files)"
    peaks = [_peak_rss(p) for p in stubs]
    client = SegmentationClient(triton.grpc_url)
    with pytest.raises(InferenceServerException) as caught:
        client.infer_instances(MODEL, constant_png(20000, 20000))
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    message = caught.value.message()
    assert "image is 20000x20000 (400.0 megapixels), over this server's limit of 64.0 megapixels" in message
    assert "build-repo --max-pixels" in message
    grown = max(_peak_rss(p) - peak for p, peak in zip(stubs, peaks))
    assert grown < 64 * 2**20, f"the model's peak memory grew by {grown / 2**20:.0f} MiB"
    assert triton.is_ready()
    assert client.infer_instances(MODEL, (sample_images / "scene0.jpg").read_bytes()).width == 640
