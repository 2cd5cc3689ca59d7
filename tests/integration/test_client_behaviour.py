"""seg-client: resume, overwrite, overlays, per-request thresholds, unreachable server, inputs
that are not images, leftovers of a killed client."""

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from clients.triton.client import SegmentationClient
from segops.decode import GIF_REFUSED
from tests.conftest import MODEL, free_port_url, run_cli
from tests.schema_check import validate_image_records


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
    assert validate_image_records(tmp_path) == n
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
    assert validate_image_records(tmp_path) == n
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
    assert validate_image_records(out) == 2


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


def _infer(source, url, out, *extra, check=False):
    args = ["infer", "--source", str(source), "--model", MODEL, "--url", url, "--out", str(out)]
    return run_cli("seg-client", *args, *extra, check=check)


def test_a_gif_and_a_dangling_symlink_are_reported_not_skipped(triton, sample_images, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "scene0.jpg").write_bytes((sample_images / "scene0.jpg").read_bytes())
    (source / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    frames = [Image.fromarray(np.full((40, 50, 3), 60 * i, np.uint8)) for i in range(3)]
    frames[0].save(source / "anim.gif", save_all=True, append_images=frames[1:])
    proc = _infer(source, triton.grpc_url, tmp_path / "out")
    assert proc.returncode == 1, proc.stderr
    assert "1 written, 0 skipped (done before), 2 failed" in proc.stdout
    failures = json.loads((tmp_path / "out" / "failures.json").read_text())
    reasons = {Path(k).name: v for k, v in failures.items()}
    assert reasons["gone.jpg"] == "cannot read: No such file or directory"
    assert reasons["anim.gif"] == GIF_REFUSED
    assert f"failed: {source / 'anim.gif'}: a GIF, which segstack does not read" in proc.stderr
    assert validate_image_records(tmp_path / "out") == 1


def test_a_folder_without_images_says_so(triton, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "notes.txt").write_text("not an image\n")
    proc = _infer(source, triton.grpc_url, tmp_path / "out")
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(f"seg-client: error: {source}: no images in it or below it (it holds 1 other files)")
    )
    assert "written" not in proc.stdout


def test_repeated_identical_failures_are_summarised(triton, sample_images, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "good.jpg").write_bytes((sample_images / "scene0.jpg").read_bytes())
    for i in range(12):
        (source / f"empty{i:02d}.jpg").write_bytes(b"")
    proc = _infer(source, triton.grpc_url, tmp_path / "out")
    assert proc.returncode == 1
    assert "1 written, 0 skipped (done before), 12 failed" in proc.stdout
    failed_lines = [line for line in proc.stderr.splitlines() if line.startswith("seg-client: failed:")]
    assert len(failed_lines) == 4, proc.stderr
    assert failed_lines[-1] == "seg-client: failed: 9 more images: empty file"
    assert len(json.loads((tmp_path / "out" / "failures.json").read_text())) == 12  # all listed


def test_a_killed_clients_temp_file_is_removed_by_the_next_run(triton, sample_images, tmp_path):
    """A SIGKILL between writing a result and renaming it into place leaves the temporary file."""
    out = tmp_path / "out"
    killed_mid_write = (
        "import os, signal, sys; from pathlib import Path; "
        "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL); "
        "from segcontract.files import write_atomic; write_atomic(Path(sys.argv[1]), b'{}')"
    )
    subprocess.run([sys.executable, "-c", killed_mid_write, str(out / "scene0.json")], check=False)
    assert [p.name.startswith(".scene0.json.") for p in out.iterdir()] == [True]
    proc = _infer(sample_images, triton.grpc_url, out, check=True)
    assert "0 skipped" in proc.stdout
    assert not list(out.glob(".*"))
    validate_image_records(out)


def test_results_follow_the_users_umask(triton, sample_images, tmp_path):
    previous = os.umask(0o027)
    try:
        _infer(sample_images, triton.grpc_url, tmp_path, "--overlay", check=True)
    finally:
        os.umask(previous)
    modes = {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*") if p.is_file()}
    assert modes == {0o640}
    validate_image_records(tmp_path)
