"""seg-client: resume, overwrite, overlays, per-request thresholds, unreachable server."""

import json
import time

import cv2

from clients.triton import SegmentationClient
from tests.conftest import MODEL, free_port_url, run_cli


def test_rerun_skips_done_images_and_overwrite_redoes_them(triton, sample_images, tmp_path):
    args = [
        "infer",
        "--source",
        str(sample_images),
        "--model",
        MODEL,
        "--url",
        triton.grpc_url,
        "--out",
        str(tmp_path),
    ]
    first = run_cli("seg-client", *args, "--overlay")
    n = len(list(sample_images.iterdir()))
    assert f"{n} written, 0 skipped" in first.stdout
    overlay = cv2.imread(str(tmp_path / "overlays" / "scene0.jpg"))
    assert overlay is not None and overlay.shape == (480, 640, 3)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")}

    second = run_cli("seg-client", *args)
    assert f"0 written, {n} skipped" in second.stdout
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")} == before

    (tmp_path / "scene0.json").unlink()
    third = run_cli("seg-client", *args)
    assert f"1 written, {n - 1} skipped" in third.stdout

    fourth = run_cli("seg-client", *args, "--overwrite")
    assert f"{n} written, 0 skipped" in fourth.stdout
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_thresholds_can_be_overridden_per_request(triton, sample_images):
    client = SegmentationClient(triton.grpc_url)
    data = (sample_images / "scene4.jpg").read_bytes()  # scores spread over (0.25, 1)
    default = client.infer_instances(MODEL, data)
    strict = client.infer_instances(MODEL, data, {"conf": 0.9})
    capped = client.infer_instances(MODEL, data, {"max_det": 3})
    assert len(default.scores) > 3
    assert len(strict.scores) < len(default.scores) and (strict.scores >= 0.9).all()
    assert len(capped.scores) == 3
    assert (default.scores >= 0.25).all()  # the model's configured default


def test_model_metadata_comes_from_the_server(triton):
    info = SegmentationClient(triton.grpc_url).model_info(MODEL)
    assert info.task == "instance_segmentation"
    assert info.class_names == ["circle", "rectangle", "triangle"]
    assert info.input_size == (320, 320)


def test_unreachable_server_is_a_clear_error_within_seconds(sample_images, tmp_path):
    start = time.monotonic()
    proc = run_cli(
        "seg-client",
        "infer",
        "--source",
        str(sample_images),
        "--model",
        MODEL,
        "--url",
        free_port_url(),
        "--out",
        str(tmp_path),
        check=False,
    )
    assert time.monotonic() - start < 15
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("seg-client: error: cannot reach Triton at")
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("*.json"))


def test_unknown_model_lists_what_is_served(triton, sample_images, tmp_path):
    proc = run_cli(
        "seg-client",
        "infer",
        "--source",
        str(sample_images),
        "--model",
        "nope",
        "--url",
        triton.grpc_url,
        "--out",
        str(tmp_path),
        check=False,
    )
    assert proc.returncode == 2
    assert "model 'nope' is not served" in proc.stderr and MODEL in proc.stderr


def test_group_over_the_data_layout(triton, sample_images, tmp_path):
    pictures = tmp_path / "DATA" / "pictures"
    pictures.mkdir(parents=True)
    for name in ("scene0.jpg", "gray.png"):
        (pictures / name).write_bytes((sample_images / name).read_bytes())
    datasets = tmp_path / "DATA" / "datasets"
    datasets.mkdir()
    (datasets / "test.txt").write_text("scene0.jpg\ngray.png\n")
    proc = run_cli(
        "seg-client",
        "infer",
        "--group",
        "test",
        "--data-root",
        str(tmp_path),
        "--model",
        MODEL,
        "--url",
        triton.grpc_url,
    )
    out = tmp_path / "TEST" / "inference" / "test"
    assert "2 written" in proc.stdout
    assert json.loads((out / "scene0.json").read_text())["image"] == "scene0.jpg"


def test_corrupt_image_is_invalid_argument_and_the_server_keeps_serving(triton, sample_images):
    import pytest
    from tritonclient.utils import InferenceServerException

    client = SegmentationClient(triton.grpc_url)
    with pytest.raises(InferenceServerException) as info:
        client.infer_instances(MODEL, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "not a decodable image" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        client.infer_instances(MODEL, (sample_images / "scene0.jpg").read_bytes(), {"conf": 2})
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT" and "conf" in info.value.message()
    assert client.infer_instances(MODEL, (sample_images / "scene0.jpg").read_bytes()).height == 480
