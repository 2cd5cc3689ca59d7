"""build-repo --model classifier, served by a real tritonserver (python-onnx runtime).

The served ``probabilities`` equal the timm network's softmax (eval mode) on the same decoded
image prepared by segops.resize.prepare, to 1e-3 with the same top-1; Triton's classification
extension answers ``class_count=2`` with "score:index:label" strings from the ensemble's
labels.txt; the ``<name>_segment`` ensemble equals the network on
``prepare(crop_segment(...))`` computed here, with and without a mask. The checkpoint, build,
images and reference are tests/helpers.py's, shared with tests/families/test_classifier.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from builder import triton_config
from segcontract import tasks
from segcontract.model_metadata import ConfigKeys, ModelMetadata
from segops import rle
from segops.decode import decode_image
from segops.resize import InputSpec
from tests.fixtures.synthetic import make_scene
from tests.helpers import (
    CLASSIFIER_CLASS_NAMES,
    CLASSIFIER_IMGSZ,
    CLASSIFIER_NAME,
    CLASSIFIER_TOLERANCE,
    ClassifierReference,
    assert_same_probabilities,
    build_classifier_repository,
    make_classifier_checkpoint,
    write_classifier_images,
)
from tests.schema_check import validate


def _image_input(files: list[bytes]) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(tasks.IMAGE.name, [len(files), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[f] for f in files], dtype=object))
    return tensor


def classify(client, files: list[bytes], model: str = CLASSIFIER_NAME, class_count: int = 0):
    """(probabilities or the classification strings, image sizes) of one batched request."""
    result = client.infer(
        model,
        [_image_input(files)],
        outputs=[
            grpcclient.InferRequestedOutput(tasks.PROBABILITIES_NAME, class_count=class_count),
            grpcclient.InferRequestedOutput(tasks.IMAGE_SIZE.name),
        ],
    )
    return result.as_numpy(tasks.PROBABILITIES_NAME), result.as_numpy(tasks.IMAGE_SIZE.name)


def classify_segments(client, files, boxes, masks, class_count: int = 0):
    """The ``_segment`` ensemble on one batched request: one (file, box, mask counts) per item."""
    box = grpcclient.InferInput(tasks.SEGMENT_BOX.name, [len(boxes), 4], "FP32")
    box.set_data_from_numpy(np.asarray(boxes, np.float32).reshape(-1, 4))
    mask = grpcclient.InferInput(tasks.SEGMENT_MASK.name, [len(masks), 1], "BYTES")
    mask.set_data_from_numpy(np.array([[m] for m in masks], dtype=object))
    result = client.infer(
        tasks.segment_ensemble_name(CLASSIFIER_NAME),
        [_image_input(files), box, mask],
        outputs=[
            grpcclient.InferRequestedOutput(tasks.PROBABILITIES_NAME, class_count=class_count),
            grpcclient.InferRequestedOutput(tasks.IMAGE_SIZE.name),
        ],
    )
    return result.as_numpy(tasks.PROBABILITIES_NAME), result.as_numpy(tasks.IMAGE_SIZE.name)


def parse_classes(entries) -> list[tuple[float, int, str]]:
    """Triton's classification strings, "score:index:label", as (score, index, label)."""
    parsed = []
    for entry in entries:
        score, index, label = (entry.decode() if isinstance(entry, bytes) else entry).split(":", 2)
        parsed.append((float(score), int(index), label))
    return parsed


def _box_of(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


# --- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_classifier_checkpoint(tmp_path_factory.mktemp("classifier"))


@pytest.fixture(scope="module")
def reference(checkpoint) -> ClassifierReference:
    return ClassifierReference(checkpoint)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    folder = write_classifier_images(tmp_path_factory.mktemp("classifier_images"))
    return sorted(folder.iterdir())


@pytest.fixture(scope="module")
def repository(checkpoint, tmp_path_factory) -> Path:
    return build_classifier_repository(checkpoint, tmp_path_factory.mktemp("classifier_repository"))


@pytest.fixture(scope="module")
def client(repository, tmp_path_factory):
    from serving.tritonserver import TritonServer

    server = TritonServer(repository, log_path=tmp_path_factory.mktemp("classifier_logs") / "server.log")
    server.start(timeout_s=180)
    pid = server.process.pid
    try:
        yield grpcclient.InferenceServerClient(server.grpc_url)
    finally:
        server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# --- the build -------------------------------------------------------------------------------
def test_both_ensembles_declare_label_filename_and_carry_labels(repository):
    names = sorted(p.name for p in repository.iterdir())
    segment = tasks.segment_ensemble_name(CLASSIFIER_NAME)
    assert names == sorted(
        [
            CLASSIFIER_NAME,
            f"{CLASSIFIER_NAME}_preprocess",
            f"{CLASSIFIER_NAME}_model",
            segment,
            f"{segment}_preprocess",
        ]
    )
    assert not (repository / f"{CLASSIFIER_NAME}_postprocess").exists()  # the softmax is in the network
    for ensemble in (CLASSIFIER_NAME, segment):
        config = triton_config.parse((repository / ensemble / "config.pbtxt").read_text())
        outputs = {o.name: o for o in config.output}
        assert list(outputs) == [tasks.PROBABILITIES_NAME, tasks.IMAGE_SIZE.name]
        assert outputs[tasks.PROBABILITIES_NAME].label_filename == tasks.LABELS_FILE
        assert list(outputs[tasks.PROBABILITIES_NAME].dims) == [len(CLASSIFIER_CLASS_NAMES)]
        assert (repository / ensemble / tasks.LABELS_FILE).read_text().splitlines() == list(
            CLASSIFIER_CLASS_NAMES
        )
        params = {k: v.string_value for k, v in config.parameters.items()}
        assert json.loads(params[ConfigKeys.CLASS_NAMES]) == list(CLASSIFIER_CLASS_NAMES)
        record = json.loads(params[ConfigKeys.METADATA])
        validate(record, "model_metadata")
        metadata = ModelMetadata.from_dict(record)
        assert metadata.task is tasks.Task.CLASSIFICATION and metadata.family == "classifier"
        assert metadata.extra["segment_margin"] == pytest.approx(0.1)
        assert metadata.input == InputSpec(
            CLASSIFIER_IMGSZ, CLASSIFIER_IMGSZ, "stretch", metadata.input.mean, metadata.input.std
        )
    # the network's own folder needs no labels: the classification is asked of the ensembles
    model = triton_config.parse((repository / f"{CLASSIFIER_NAME}_model" / "config.pbtxt").read_text())
    assert [o.name for o in model.output] == [tasks.PROBABILITIES_NAME]
    assert not model.output[0].label_filename
    inputs = triton_config.parse((repository / f"{segment}_preprocess" / "config.pbtxt").read_text()).input
    assert [i.name for i in inputs] == [tasks.IMAGE.name, tasks.SEGMENT_BOX.name, tasks.SEGMENT_MASK.name]
    assert (repository / f"{segment}_preprocess" / "1" / "segops" / "segment_crop.py").is_file()


# --- the served answers ----------------------------------------------------------------------
def test_served_probabilities_equal_the_networks_softmax(client, images, reference):
    margins = []
    for path in images:
        served, sizes = classify(client, [path.read_bytes()])
        image = decode_image(path.read_bytes())
        assert sizes.tolist() == [list(image.shape[:2])]
        assert served.dtype == np.float32 and served.sum() == pytest.approx(1.0, abs=1e-5)
        margins.append(assert_same_probabilities(served[0], reference.probabilities(image), path.name))
    print(f"top-1 margins: {[round(m, 3) for m in margins]}")
    # one request of several images of different sizes: each answered as if alone
    served, sizes = classify(client, [p.read_bytes() for p in images[:4]])
    for row, path in zip(served, images[:4]):
        assert_same_probabilities(row, reference.file_probabilities(path), f"{path.name} in a batch")


def test_class_count_answers_score_index_label_for_the_top_2(client, images, reference):
    for path in images:
        answer, _ = classify(client, [path.read_bytes()], class_count=2)
        assert answer.shape == (1, 2) and answer.dtype == object
        expected = reference.file_probabilities(path)
        top2 = [int(i) for i in np.argsort(-expected)[:2]]
        parsed = parse_classes(answer[0])
        assert [index for _, index, _ in parsed] == top2, (path.name, parsed, expected)
        assert [label for _, _, label in parsed] == [CLASSIFIER_CLASS_NAMES[i] for i in top2]
        for score, index, _ in parsed:
            assert abs(score - expected[index]) <= CLASSIFIER_TOLERANCE


def test_segment_ensemble_equals_the_network_on_the_crop(client, reference):
    rng = np.random.default_rng(23)
    checked = 0
    for h, w in [(240, 320), (300, 200), (97, 531)]:
        image, instances = make_scene(h, w, rng)
        data = cv2.imencode(".png", image)[1].tobytes()
        for instance in instances:
            box = _box_of(instance.mask)
            counts = rle.encode(instance.mask)
            for mask, sent in ((instance.mask, counts), (None, b"")):
                served, sizes = classify_segments(client, [data], [box], [sent])
                assert sizes.tolist() == [[h, w]]
                expected = reference.segment_probabilities(image, box, mask)
                assert_same_probabilities(
                    served[0], expected, f"{h}x{w} {instance.shape} mask={mask is not None}"
                )
                checked += 1
            labelled, _ = classify_segments(client, [data], [box], [counts], class_count=2)
            expected = reference.segment_probabilities(image, box, counts)
            assert [i for _, i, _ in parse_classes(labelled[0])] == [
                int(i) for i in np.argsort(-expected)[:2]
            ]
        # several segments of one image in one request, with and without their masks
        boxes = [_box_of(i.mask) for i in instances]
        sent = [rle.encode(i.mask) if k % 2 else b"" for k, i in enumerate(instances)]
        served, _ = classify_segments(client, [data] * len(instances), boxes, sent)
        for k, (row, instance) in enumerate(zip(served, instances)):
            mask = instance.mask if k % 2 else None
            assert_same_probabilities(row, reference.segment_probabilities(image, boxes[k], mask), "batched")
    assert checked >= 6


def test_bad_segments_fail_with_a_reason_and_the_server_answers_on(client):
    image = make_scene(120, 160, np.random.default_rng(3))[0]
    data = cv2.imencode(".png", image)[1].tobytes()
    wrong_size = rle.encode(np.ones((60, 80), np.uint8))
    for box, mask, reason in [
        ((10, 10, 50, 50), wrong_size, "not the image's 120x160"),
        ((10, 10, 50, 50), b"not rle!", "not COCO compressed RLE"),
        ((10, float("nan"), 50, 50), b"", "finite"),
        ((50, 10, 10, 50), b"", "not xyxy"),
    ]:
        with pytest.raises(InferenceServerException) as err:
            classify_segments(client, [data], [box], [mask])
        assert reason in str(err.value) and "INVALID_ARG" in str(err.value.status()), err.value
    with pytest.raises(InferenceServerException, match="not a decodable image"):
        classify_segments(client, [b"not an image"], [(0, 0, 10, 10)], [b""])
    served, _ = classify_segments(client, [data], [(0, 0, 1e6, 1e6)], [b""])  # clipped to the image
    assert served.shape == (1, len(CLASSIFIER_CLASS_NAMES))
