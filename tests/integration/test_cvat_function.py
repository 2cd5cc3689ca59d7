"""clients.cvat.auto_annotation against a real tritonserver, its output checked by cvat-sdk's own
validation (the driver's label mapper, as `cvat-cli task auto-annotate` runs it) without a CVAT
server, and its masks and polygons pixel for pixel against the server's detections."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from cvat_sdk.api_client import models
from cvat_sdk.auto_annotation import DetectionFunctionSpec
from cvat_sdk.auto_annotation.driver import _AnnotationMapper, _DetectionFunctionContextImpl
from cvat_sdk.masks import decode_mask

from annotations.coco import rle_mask
from annotations.cvat_xml import cvat_polygons
from annotations.polygons import polygons_mask
from clients.cvat.auto_annotation import create
from clients.triton.client import ClientError, InstanceResult, SegmentationClient
from tests.conftest import MODEL, free_port_url

CLASSES = ["circle", "rectangle", "triangle"]  # the random test model's (test_client_behaviour)
FRAME = 7  # the dataset frame the mapper puts the shapes on


def _frames(sample_images: Path) -> dict[str, PIL.Image.Image]:
    """Frames in every mode the function converts: RGB, L, RGBA and P."""
    frames = {name: PIL.Image.open(sample_images / name) for name in ("scene4.jpg", "gray.png", "bgra.png")}
    frames["palette.png"] = frames["scene4.jpg"].convert("P")
    assert [f.mode for f in frames.values()] == ["RGB", "L", "RGBA", "P"]
    return frames


def _reference(triton, image: PIL.Image.Image, conf: float | None = None) -> InstanceResult:
    """The server's own detections for the frame, sent as the same RGB pixels."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    overrides = {} if conf is None else {"conf": conf}
    return SegmentationClient(triton.grpc_url).infer_instances(MODEL, buffer.getvalue(), overrides)


def _masks(result: InstanceResult) -> list[tuple[int, np.ndarray]]:
    """(class, mask) of each detection, empty masks left out as the function leaves them out."""
    decoded = [
        (int(c), rle_mask({"size": [result.height, result.width], "counts": m}).astype(bool))
        for c, m in zip(result.classes, result.masks)
    ]
    return [(c, m) for c, m in decoded if m.any()]


def _context(conf: float | None = None, poly: bool = False) -> _DetectionFunctionContextImpl:
    return _DetectionFunctionContextImpl(frame_name="frame.png", conf_threshold=conf, conv_mask_to_poly=poly)


def _dataset_labels(label_type: str) -> list[models.Label]:
    """A CVAT task's labels: other ids than the function's, in another order, so the mapping shows."""
    return [
        models.Label(id=100 + i, name=name, type=label_type, attributes=[], sublabels=[])
        for i, name in reversed(list(enumerate(CLASSES)))
    ]


def test_spec_has_the_served_class_names(triton):
    spec = create(url=triton.grpc_url, model=MODEL).spec
    DetectionFunctionSpec(labels=spec.labels)  # constructing it is cvat-sdk's validation
    assert [(label.id, label.name, label.type) for label in spec.labels] == [
        (i, name, "mask") for i, name in enumerate(CLASSES)
    ]


@pytest.mark.parametrize("as_polygons", [False, True], ids=["masks", "polygons"])
def test_shapes_pass_cvat_sdk_validation_and_are_the_server_masks(triton, sample_images, as_polygons):
    function = create(url=triton.grpc_url, model=MODEL)
    label_type = "polygon" if as_polygons else "mask"
    mapper = _AnnotationMapper(
        logging.getLogger("test"),
        function.spec.labels,
        _dataset_labels(label_type),
        allow_unmatched_labels=False,
        conv_mask_to_poly=as_polygons,
    )
    total = 0
    for name, image in _frames(sample_images).items():
        shapes = function.detect(_context(poly=as_polygons), image)
        tags, mapped = mapper.validate_and_remap(shapes, FRAME)
        assert tags == [] and len(mapped) == len(shapes), name
        assert {(s.type.value, s.frame, s.source) for s in mapped} <= {(label_type, FRAME, "auto")}

        expected = _masks(_reference(triton, image))
        width, height = image.size
        remaining = list(mapped)
        for cls, mask in expected:
            if as_polygons:
                outlines = cvat_polygons(mask)
                mine, remaining = remaining[: len(outlines)], remaining[len(outlines) :]
                drawn = polygons_mask([s.points for s in mine], height, width)
                assert np.array_equal(drawn, polygons_mask(outlines, height, width)), name
            else:
                mine, remaining = remaining[:1], remaining[1:]
                decoded = decode_mask(mine[0].points, image_width=width, image_height=height)
                assert np.array_equal(decoded, mask), name
            assert {s.label_id for s in mine} <= {100 + cls}, name
        assert remaining == [], name
        total += len(mapped)
    assert total > 0  # the random model finds segments in the scenes


def test_conf_threshold_is_honoured(triton, sample_images):
    function = create(url=triton.grpc_url, model=MODEL)
    image = _frames(sample_images)["scene4.jpg"]  # scores spread over (0.25, 1)
    scores = np.sort(_reference(triton, image).scores)
    assert len(scores) > 3
    threshold = float(scores[len(scores) // 2])

    at_default = function.detect(_context(), image)
    at_threshold = function.detect(_context(conf=threshold), image)
    kept = _reference(triton, image, conf=threshold)
    assert (kept.scores >= threshold).all()
    assert len(at_threshold) == len(_masks(kept)) < len(at_default)
    assert function.detect(_context(conf=min(1.0, float(scores[-1]) + 1e-3)), image) == []


def test_unreachable_server_is_a_one_line_error_within_the_timeout():
    url = free_port_url()
    start = time.monotonic()
    with pytest.raises(ClientError) as caught:
        create(url=url, model=MODEL, timeout=2.0)
    assert time.monotonic() - start < 10
    message = str(caught.value)
    assert "\n" not in message and url in message and repr(MODEL) in message, message
    assert "-p url=str:HOST:PORT" in message


def test_a_model_not_served_is_a_one_line_error(triton):
    with pytest.raises(ClientError) as caught:
        create(url=triton.grpc_url, model="no-such-model", timeout=5.0)
    message = str(caught.value)
    assert "\n" not in message and "'no-such-model'" in message and triton.grpc_url in message
    assert MODEL in message  # the served models are listed
