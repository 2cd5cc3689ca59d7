"""build-repo --runtime python-openvino (OpenVINO IR run by python_backend_models/openvino_model.py
inside Triton's Python backend), served by a real tritonserver, against the references the
python-onnx tests use, with their tolerances:

* YOLOv8-seg (one Python model named like the ensemble): seg-client infer's records match
  ultralytics' predict as tests/families/test_yolo_seg.py's check does, and the python-onnx served
  model's records by the same measure;
* smp: the class maps match the PyTorch model (tests/families/test_smp.py's check);
* classifier: the probabilities match the network's softmax (tests/helpers.py's tolerance).

And ``--int8`` (NNCF) with its accuracy guard: on the random-weight YOLO checkpoint the INT8
answers move far from FP32's, so the build is refused in one line and writes nothing; with
``--accept-drop`` it is built, answers, says so in its record and ``build-repo doctor`` warns. The
random classifier keeps its top-1 through INT8. All the models of this module share one repository
and one server.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from builder import triton_config
from builder.quantization.guard import RECORD_FILE
from clients.inference.parity import Dets, Parity, compare
from clients.triton.client import SegmentationClient
from segcontract.model_metadata import ConfigKeys
from segops.decode import decode_image
from tests.conftest import MODEL, run_cli
from tests.families import test_smp as smp_tests
from tests.families import test_yolo_seg as yolo_tests
from tests.fixtures.random_checkpoints import make_random_smp
from tests.fixtures.synthetic import make_scene
from tests.helpers import (
    CLASSIFIER_CLASS_NAMES,
    CLASSIFIER_NAME,
    ClassifierReference,
    assert_same_probabilities,
    build_classifier_repository,
    make_classifier_checkpoint,
    write_classifier_images,
    write_semantic_images,
)
from tests.integration.test_classifier_serving import classify
from tests.integration.test_one_model import OVERRIDES

pytestmark = pytest.mark.integration

RUNTIME = ("--runtime", "python-openvino")
YOLO = "yolo-ov"  # FP32
YOLO_INT8 = "yolo-int8"  # --int8 --accept-drop
SMP = smp_tests.TestSmp.served_name
CLASSIFIER_INT8 = f"{CLASSIFIER_NAME}_int8"
INT8_CONF = "0.05"  # a random-weight model: low enough that FP32 finds something to measure against
# The random network finds ~2000 overlapping candidates per image; at most 50 kept keeps the measure
# (COCOeval's mask mAP50) on its default maxDets of 100.
INT8_MAX_DET = ("--max-det", "50")
REFUSED = "--int8 refused"


def _build_yolo(repo: Path, checkpoint: Path, name: str, *options: str, check: bool = True):
    return run_cli(
        "build-repo", "--model", MODEL, "--weights", str(checkpoint), "--output", str(repo),
        "--name", name, *RUNTIME, "--quiet", *options, check=check,
    )  # fmt: skip


def _metadata(repo: Path, name: str) -> dict:
    config = triton_config.parse((repo / name / "config.pbtxt").read_text())
    return json.loads(config.parameters[ConfigKeys.METADATA].string_value)


def _infer(server, images: Path, model: str, out: Path, *args: str) -> Path:
    """seg-client infer on every file of ``images``, every one answered."""
    proc = run_cli(
        "seg-client", "infer", "--source", str(images), "--model", model,
        "--url", server.grpc_url, "--out", str(out), *args,
    )  # fmt: skip
    count = sum(1 for p in images.iterdir() if p.is_file())
    assert f"{count} written" in proc.stdout and "0 failed" in proc.stdout, proc.stdout
    return out


# --- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def calibration_images(tmp_path_factory) -> Path:
    """Ten generated scenes of several sizes: eight to calibrate on, two held out (every fifth)."""
    folder = tmp_path_factory.mktemp("calibration")
    rng = np.random.default_rng(17)
    for i, (h, w) in enumerate([(320, 320), (480, 640), (300, 200), (240, 320), (333, 517)] * 2):
        cv2.imwrite(str(folder / f"scene{i:02d}.png"), make_scene(h, w, rng)[0])
    return folder


@pytest.fixture(scope="module")
def smp_checkpoint(tmp_path_factory) -> Path:
    return make_random_smp(tmp_path_factory.mktemp("smp") / "shapes.pth")


@pytest.fixture(scope="module")
def smp_images(tmp_path_factory) -> Path:
    """As tests/families/test_smp.py's images (its check wants these four)."""
    return write_semantic_images(tmp_path_factory.mktemp("semantic_images"))


@pytest.fixture(scope="module")
def classifier_checkpoint(tmp_path_factory) -> Path:
    return make_classifier_checkpoint(tmp_path_factory.mktemp("classifier"))


@pytest.fixture(scope="module")
def classifier_images(tmp_path_factory) -> list[Path]:
    return sorted(write_classifier_images(tmp_path_factory.mktemp("classifier_images")).iterdir())


@pytest.fixture(scope="module")
def repository(tmp_path_factory, yolo_checkpoint, smp_checkpoint, classifier_checkpoint, calibration_images):
    """Every python-openvino model of this module, in one repository."""
    repo = tmp_path_factory.mktemp("openvino-repository")
    _build_yolo(repo, yolo_checkpoint, YOLO)
    _build_yolo(repo, yolo_checkpoint, YOLO_INT8, "--int8", "--calibration-images",
                str(calibration_images), "--conf", INT8_CONF, *INT8_MAX_DET, "--accept-drop")  # fmt: skip
    run_cli(
        "build-repo", "--model", "smp", "--weights", str(smp_checkpoint), "--output", str(repo),
        "--name", SMP, *RUNTIME, "--quiet",
    )  # fmt: skip
    build_classifier_repository(classifier_checkpoint, repo, runtime="python-openvino")
    run_cli(
        "build-repo", "--model", "classifier", "--weights", str(classifier_checkpoint),
        "--name", CLASSIFIER_INT8, "--output", str(repo), *RUNTIME, "--quiet",
        "--int8", "--calibration-images", str(calibration_images),
    )  # fmt: skip
    return repo


@pytest.fixture(scope="module")
def server(repository, tmp_path_factory):
    from tests.conftest import _served

    yield from _served(repository, tmp_path_factory.mktemp("openvino-logs"))


@pytest.fixture(scope="module")
def yolo_served(server, sample_images, tmp_path_factory) -> Path:
    """seg-client infer's records of the python-openvino YOLO, as test_yolo_seg.py asks for them."""
    out = tmp_path_factory.mktemp("openvino-yolo-served")
    return _infer(server, sample_images, YOLO, out, *yolo_tests.TestYoloSeg.client_args)


# --- FP32 parity -----------------------------------------------------------------------------
def test_the_models_are_python_openvino_networks(repository):
    for name in (YOLO, YOLO_INT8):  # YOLOv8-seg folds into one Python model, as python-onnx does
        files = {p.name for p in (repository / name / "1").iterdir()}
        assert {"model.xml", "model.bin", "openvino_model.py", "network_step.py"} <= files, files
        assert "model.onnx" not in files
        assert not (repository / f"{name}_model").exists()
    for network in (f"{SMP}_model", f"{CLASSIFIER_NAME}_model", f"{CLASSIFIER_INT8}_model"):
        files = {p.name for p in (repository / network / "1").iterdir()}
        assert {"model.xml", "model.bin", "model.py"} <= files, (network, files)
        assert "import openvino as ov" in (repository / network / "1" / "model.py").read_text()
    for name in (YOLO, SMP, CLASSIFIER_NAME):
        record = _metadata(repository, name)
        assert record["extra"]["network_runtime"] == "python-openvino", record
        assert record["extra"]["precision"] == "fp32", record
        assert not (repository / name / RECORD_FILE).exists()
        assert not (repository / f"{name}_model" / RECORD_FILE).exists()


def test_yolo_matches_ultralytics_predict(yolo_served, sample_images, yolo_checkpoint):
    """tests/families/test_yolo_seg.py's check, on the python-openvino model's records."""
    images = sorted(p for p in sample_images.iterdir() if p.is_file())
    reference = yolo_tests.TestYoloSeg.make_reference(yolo_checkpoint)
    yolo_tests.TestYoloSeg.check_parity(None, yolo_served, images, reference)


def test_yolo_matches_the_python_onnx_served_model(yolo_served, triton, sample_images, tmp_path):
    """The same images through the session's python-onnx server: the same detections by the
    measure (and tolerances) the ultralytics check uses."""
    onnx_served = _infer(triton, sample_images, MODEL, tmp_path, *yolo_tests.TestYoloSeg.client_args)
    total = Parity()
    for image in sorted(p for p in sample_images.iterdir() if p.is_file()):
        want = json.loads((onnx_served / f"{image.stem}.json").read_text())
        got = json.loads((yolo_served / f"{image.stem}.json").read_text())
        assert (got["height"], got["width"]) == (want["height"], want["width"]), image.name
        result = compare(Dets.from_record(want), Dets.from_record(got), yolo_tests.THRESHOLD)
        assert not result.missing and not result.extra, f"{image.name}: {result.summary()}"
        total.merge(result)
    print(f"python-openvino vs python-onnx: {total.summary()}")
    assert total.matched >= 50
    assert min(total.box_ious) >= 0.99
    assert np.mean(total.mask_ious) >= 0.95
    assert max(total.score_diffs) <= 0.02


def test_yolo_answers_requests_as_the_python_onnx_model_at_a_low_conf(server, triton, sample_images):
    """Straight through the client at test_one_model.py's overrides: the same count per image."""
    ov, onnx = SegmentationClient(server.grpc_url), SegmentationClient(triton.grpc_url)
    found = 0
    for path in sorted(sample_images.iterdir()):
        data = path.read_bytes()
        a, b = ov.infer_instances(YOLO, data, OVERRIDES), onnx.infer_instances(MODEL, data, OVERRIDES)
        assert (a.height, a.width) == (b.height, b.width), path.name
        assert len(a.scores) <= OVERRIDES["max_det"]
        result = compare(_dets(b), _dets(a), OVERRIDES["conf"])
        assert not result.missing and not result.extra, f"{path.name}: {result.summary()}"
        found += len(a.scores)
    assert found > 0


def _dets(result) -> Dets:
    from pycocotools import mask as mask_utils

    size = [result.height, result.width]
    return Dets(
        np.asarray(result.boxes).reshape(-1, 4),
        np.asarray(result.scores),
        np.asarray(result.classes).astype(int),
        [mask_utils.decode({"size": size, "counts": m}) for m in result.masks],
    )


def test_smp_class_maps_match_pytorch(server, smp_images, smp_checkpoint, tmp_path):
    """tests/families/test_smp.py's check (≥ 99.5 % of pixels), on the python-openvino model."""
    served = _infer(server, smp_images, SMP, tmp_path, *smp_tests.TestSmp.client_args)
    images = sorted(p for p in smp_images.iterdir() if p.is_file())
    reference = smp_tests.TestSmp.make_reference(smp_checkpoint)
    smp_tests.TestSmp.check_parity(None, served, images, reference)


def test_classifier_probabilities_match_the_networks_softmax(
    server, classifier_images, classifier_checkpoint
):
    reference = ClassifierReference(classifier_checkpoint)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    for path in classifier_images:
        served, sizes = classify(client, [path.read_bytes()])
        image = decode_image(path.read_bytes())
        assert sizes.tolist() == [list(image.shape[:2])]
        assert served.sum() == pytest.approx(1.0, abs=1e-5)
        assert_same_probabilities(served[0], reference.probabilities(image), path.name)
    # one request of several images of different sizes: each answered as if alone
    served, _ = classify(client, [p.read_bytes() for p in classifier_images[:4]])
    for row, path in zip(served, classifier_images[:4]):
        assert_same_probabilities(row, reference.file_probabilities(path), f"{path.name} in a batch")


# --- INT8 and its accuracy guard -------------------------------------------------------------
def test_int8_beyond_the_limit_is_refused_in_one_line_and_writes_nothing(
    yolo_checkpoint, calibration_images, tmp_path
):
    out = tmp_path / "repo"
    for conf in ((), ("--conf", INT8_CONF)):  # the default conf, and one where FP32 finds more
        proc = _build_yolo(out, yolo_checkpoint, YOLO_INT8, "--int8", "--calibration-images",
                           str(calibration_images), *conf, *INT8_MAX_DET, check=False)  # fmt: skip
        assert proc.returncode == 2, (conf, proc.returncode, proc.stderr)
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert [line for line in lines if REFUSED in line] == [lines[-1]], proc.stderr
        last = lines[-1]
        assert last.startswith(f"build-repo: error: {REFUSED}: mask mAP50 against FP32"), last
        assert "held-out images" in last and "beyond the limit 1" in last and "--accept-drop" in last
        score = float(re.search(r"mask mAP50 against FP32 ([\d.]+) on 2 held-out images", last).group(1))
        drop = float(re.search(r"a drop of ([\d.]+) points", last).group(1))
        assert drop == pytest.approx(100 - score, abs=0.011)  # each printed to 2 decimals and drop > 1, last
        assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())


def test_int8_accepted_beyond_the_limit_answers_and_says_so(server, repository, sample_images):
    record = _metadata(repository, YOLO_INT8)["extra"]
    assert record["network_runtime"] == "python-openvino"
    assert record["precision"] == "int8" and record["int8_accepted_drop"] == 1, record
    assert record["int8_drop"] > record["int8_max_drop"] == 1.0, record
    assert record["int8_score"] == pytest.approx(100 - record["int8_drop"], abs=2e-3)
    assert record["int8_score"] > 0, record  # measured: INT8 keeps some of FP32's detections
    assert record["int8_metric"] == "mask mAP50 against FP32" and record["int8_held_out_images"] == 2
    saved = json.loads((repository / YOLO_INT8 / RECORD_FILE).read_text())
    assert saved["precision"] == "int8" and saved["accepted_drop"] is True
    assert saved["drop"] == record["int8_drop"] and saved["calibration_images"] == 8

    client = SegmentationClient(server.grpc_url)
    answered = found = 0
    for path in sorted(sample_images.iterdir()):
        # the build's own thresholds (--conf 0.05 --max-det 50), then a request's overrides
        for overrides, conf, max_det in ((None, 0.05, 50), ({"conf": 0.3, "max_det": 7}, 0.3, 7)):
            result = client.infer_instances(YOLO_INT8, path.read_bytes(), overrides)
            _check_instances(result, decode_image(path.read_bytes()), conf, max_det, path.name)
            found += len(result.scores)
        answered += 1
    assert answered == len(list(sample_images.iterdir())) and found > 0
    assert server.is_ready()


def _check_instances(result, image: np.ndarray, conf: float, max_det: int, what: str) -> None:
    assert (result.height, result.width) == image.shape[:2], what
    n = len(result.scores)
    assert n <= max_det and len(result.boxes) == len(result.classes) == len(result.masks) == n
    assert ((result.scores >= conf) & (result.scores <= 1)).all(), result.scores
    assert set(result.classes.tolist()) <= {0, 1, 2}
    if n:
        boxes = np.asarray(result.boxes)
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
        assert (boxes >= -1).all() and (boxes[:, [0, 2]] <= image.shape[1] + 1).all()
        assert (boxes[:, [1, 3]] <= image.shape[0] + 1).all()


def test_doctor_prints_a_line_per_int8_model(repository):
    proc = run_cli("build-repo", "doctor", str(repository))
    lines = [line for line in proc.stdout.splitlines() if "INT8 by" in line]
    assert len(lines) == 2, proc.stdout
    (yolo,) = (line for line in lines if line.startswith(f"{YOLO_INT8}:"))
    assert "mask mAP50 against FP32" in yolo and yolo.endswith("(warning: beyond the limit)"), yolo
    assert "accepted with --accept-drop" in yolo
    (cls,) = (line for line in lines if line.startswith(f"{CLASSIFIER_INT8}_model:"))
    assert "top-1 agreement with FP32" in cls and "within the limit 1" in cls and "warning" not in cls, cls
    assert "no TensorRT engines" in proc.stdout


def test_int8_classifier_keeps_the_fp32_top1(server, repository, classifier_images, calibration_images):
    record = _metadata(repository, CLASSIFIER_INT8)["extra"]
    assert record["precision"] == "int8" and record["int8_accepted_drop"] == 0, record
    assert record["int8_drop"] <= 1.0
    assert (repository / f"{CLASSIFIER_INT8}_model" / RECORD_FILE).is_file()
    client = grpcclient.InferenceServerClient(server.grpc_url)
    paths = [*classifier_images, *sorted(calibration_images.iterdir())]
    agree, worst = 0, 0.0
    for path in paths:
        fp32, _ = classify(client, [path.read_bytes()])
        int8, _ = classify(client, [path.read_bytes()], model=CLASSIFIER_INT8)
        assert int8.shape == (1, len(CLASSIFIER_CLASS_NAMES))
        assert int8.sum() == pytest.approx(1.0, abs=1e-4)
        agree += int(fp32.argmax()) == int(int8.argmax())
        worst = max(worst, float(np.abs(fp32 - int8).max()))
    print(f"INT8 classifier: top-1 as FP32 on {agree}/{len(paths)}, max |Δp| {worst:.3f}")
    assert agree == len(paths)
