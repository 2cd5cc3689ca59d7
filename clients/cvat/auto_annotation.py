"""A CVAT auto-annotation function (``cvat_sdk.auto_annotation``) answered by a served instance
segmentation model::

    cvat-cli task auto-annotate TASK --function-module clients.cvat.auto_annotation \\
        -p url=str:HOST:8001 -p model=str:NAME

(``-p timeout=float:SECONDS`` bounds each request; cvat-cli's ``--conf-threshold`` and
``--conv-mask-to-poly`` are honoured.) The CVAT task's labels must have the model's class names
(the function reads them from the server; for a task without some of them, add cvat-cli's
``--allow-unmatched-labels``). Each frame goes to Triton as a PNG; each detection comes
back as a mask shape, or with ``--conv-mask-to-poly`` as one polygon per outer outline, traced
along pixel edges as our CVAT XML exports trace them (``annotations.cvat_xml.cvat_polygons``).

Agent mode (``cvat-cli function create-native`` / ``run-agent``, annotating from CVAT's own UI)
is CVAT Enterprise/Cloud only; with it the same module serves as ``--function-module``.
"""

from __future__ import annotations

import io

import cvat_sdk.auto_annotation as cvataa
import numpy as np
import PIL.Image
from cvat_sdk import models
from cvat_sdk.masks import encode_mask
from tritonclient.utils import InferenceServerException

from annotations.coco import rle_mask
from annotations.cvat_xml import cvat_polygons
from annotations.polygons import flat
from clients.triton.client import DEFAULT_TIMEOUT_S, ClientError, SegmentationClient, ServerStopped
from clients.triton.replicas import DEFAULT_URL
from segcontract.model_metadata import ConfigKeys
from segcontract.tasks import Task

_CLI_HINT = "(cvat-cli: -p url=str:HOST:PORT -p model=str:NAME)"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


class TritonDetectionFunction:
    """A ``cvataa.DetectionFunction``: ``spec`` from the served model's class names, ``detect``
    one request per frame."""

    def __init__(self, url: str, model: str, timeout: float) -> None:
        try:
            self._client = SegmentationClient(url, timeout_s=timeout)
        except ClientError as exc:
            raise ClientError(f"model {model!r}: {_one_line(exc)} {_CLI_HINT}") from None
        try:
            info = self._client.model_info(model)
        except ClientError as exc:  # it names the model and the URL
            raise type(exc)(f"{_one_line(exc)} {_CLI_HINT}") from None
        if info.task != Task.INSTANCE.value:
            raise ClientError(
                f"model {model!r} at {url} is a {info.task} model; the CVAT function needs an "
                f"{Task.INSTANCE.value} model {_CLI_HINT}"
            )
        self.url, self.model = url, model
        self.spec = cvataa.DetectionFunctionSpec(
            labels=[cvataa.label_spec(name, i, type="mask") for i, name in enumerate(info.class_names)]
        )

    def detect(
        self, context: cvataa.DetectionFunctionContext, image: PIL.Image.Image
    ) -> list[models.LabeledShapeRequest]:
        # None: the model's configured threshold. The server keeps scores above it, so every
        # shape's score is >= conf_threshold as cvat-sdk asks.
        overrides = {} if context.conf_threshold is None else {ConfigKeys.CONF: context.conf_threshold}
        try:
            result = self._client.infer_instances(self.model, png_bytes(image), overrides)
        except InferenceServerException as exc:
            where = f"model {self.model!r} at {self.url}, frame {context.frame_name!r}"
            if problem := self._client.health_problem():
                raise ServerStopped(f"Triton at {self.url} {problem} ({where})") from None
            raise ClientError(f"{where}: {_one_line(exc.message() or exc)}") from None
        shapes = []
        for cls, counts in zip(result.classes, result.masks):
            mask = rle_mask({"size": [result.height, result.width], "counts": counts}).astype(bool)
            shapes += detection_shapes(int(cls), mask, context.conv_mask_to_poly)
        return shapes


def detection_shapes(label_id: int, mask: np.ndarray, as_polygons: bool) -> list[models.LabeledShapeRequest]:
    """One detection's shapes: none for an empty mask; a polygon per outer outline; or one mask
    cropped to its tight box (``bbox`` in pixel edges, so the encoded box is the inclusive one)."""
    if as_polygons:
        return [cvataa.polygon(label_id, flat(p)) for p in cvat_polygons(mask)]
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return []
    box = [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]
    return [cvataa.mask(label_id, encode_mask(mask, bbox=box))]


def png_bytes(image: PIL.Image.Image) -> bytes:
    """The frame as a PNG file, RGB whatever its mode (L, RGBA, P...): what the server decodes."""
    buffer = io.BytesIO()
    (image if image.mode == "RGB" else image.convert("RGB")).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def create(
    *, url: str = DEFAULT_URL, model: str | None = None, timeout: float = DEFAULT_TIMEOUT_S
) -> TritonDetectionFunction:
    """cvat-cli calls this with its ``-p name=type:value`` parameters. ``timeout`` (seconds)
    bounds every request; an unreachable server or an unserved model is a one-line ClientError."""
    if not model:
        raise ClientError(f"which served model? pass -p model=str:NAME (the server at {url})")
    return TritonDetectionFunction(url, model, timeout)
