"""What ``infer`` writes for one image, per task of the served model (the registry ``WRITERS``).

Instance models: ``<name>.json`` with boxes, scores, classes and COCO RLE masks; semantic ones a
class-index PNG, a colour PNG and the class fractions; classifiers the top classes of the whole
image or, with ``SegmentClassificationWriter``, of each stored segment. Every file is written
atomically, the JSON last: its presence means the image is done.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from clients.inference.overlays import draw_instances
from clients.triton.client import ClientError, ModelInfo
from clients.triton.image_sources import ImageItem
from clients.triton.records import classification_record, instance_record, ranked_classes, segments_record
from clients.triton.replicas import Servers
from clients.triton.request_loop import read_image
from segcontract.files import write_json_atomic
from segcontract.registry import Registry
from segcontract.tasks import Task
from segops.colors import blend, colorize
from segops.image_write import write_image_atomic
from store.records import StoredSegment

THRESHOLDS = ("conf", "iou", "max_det")  # what an instance model takes per request


class Writer(ABC):
    """Sends one image to a model of its ``task`` and writes what comes back. Every writer is made
    from the run's threshold overrides, so that the registry can make any of them the same way."""

    task: str
    takes: frozenset[str] = frozenset()  # the settings a model of its task uses (conf, top_k...)

    def __init__(self, overrides: dict | None = None):
        self.overrides = overrides or {}

    @abstractmethod
    def __call__(
        self,
        client: Servers,
        model: ModelInfo,
        item: ImageItem,
        data: bytes,
        base: Path,
        overlay_path: Path | None,
    ) -> int:
        """Write the outputs of ``item`` next to ``base``; returns what it found (detections, classes)."""

    def done(self, model: ModelInfo, item: ImageItem, path: Path) -> bool:
        """Whether ``path``, the record a run wrote for ``item``, is what this run would write (a
        re-run skips it). By default any record is: it is written last, atomically."""
        return True

    def failed_since(self, item: ImageItem, began: datetime) -> bool:
        """Whether ``item`` failed for good in a shared run that began at ``began`` (a worker that
        joins late offers the finished images again: the image's own failure is not asked twice).
        By default a writer keeps no such record."""
        return False


WRITERS: Registry[type[Writer]] = Registry("task", key="task")


@WRITERS.register
class InstanceWriter(Writer):
    """Instance segmentation: ``<name>.json`` (``segcontract/schemas/image_record.schema.json``)
    and, on request, an overlay."""

    task = Task.INSTANCE
    takes = frozenset({"conf", "iou", "max_det", "overlay"})

    def __call__(
        self,
        client: Servers,
        model: ModelInfo,
        item: ImageItem,
        data: bytes,
        base: Path,
        overlay_path: Path | None,
    ) -> int:
        thresholds = {k: v for k, v in self.overrides.items() if k in THRESHOLDS}
        result = client.infer_instances(model.name, data, thresholds)
        record = instance_record(item.relative.as_posix(), model, result)
        if overlay_path is not None:
            write_image_atomic(overlay_path, draw_instances(_decode(data), record))
        write_json_atomic(base.with_name(base.name + ".json"), record)  # last: its presence means done
        return len(record["detections"])


@WRITERS.register
class SemanticWriter(Writer):
    """Semantic segmentation: ``<name>.png`` (class indices), ``<name>_color.png`` (the server's
    colours), ``<name>.json`` (pixel fraction per class) and, on request, an overlay. The model
    takes no thresholds: the overrides are not sent."""

    task = Task.SEMANTIC
    takes = frozenset({"overlay"})

    def __call__(
        self,
        client: Servers,
        model: ModelInfo,
        item: ImageItem,
        data: bytes,
        base: Path,
        overlay_path: Path | None,
    ) -> int:
        result = client.infer_semantic(model.name, data)
        color = colorize(result.mask, model.colors)
        write_image_atomic(base.with_name(base.name + ".png"), result.mask)
        write_image_atomic(base.with_name(base.name + "_color.png"), color)
        if overlay_path is not None:
            write_image_atomic(overlay_path, blend(_decode(data), color))
        ids, counts = np.unique(result.mask, return_counts=True)
        total = max(int(counts.sum()), 1)
        record = {
            "image": item.relative.as_posix(),
            "width": result.width,
            "height": result.height,
            "model": model.name,
            "mask": base.name + ".png",
            "color_mask": base.name + "_color.png",
            "classes": [
                {
                    "class_id": int(i),
                    "class_name": model.class_name(int(i)),
                    "pixel_fraction": round(int(c) / total, 6),
                }
                for i, c in zip(ids, counts)
            ],
        }
        write_json_atomic(base.with_name(base.name + ".json"), record)
        return len(ids)


DEFAULT_TOP_K = 5


def settings_not_taken(task: str, given: Mapping[str, object]) -> tuple[list[str], list[str]]:
    """(the settings given a value that a model of ``task`` has no use for, the ones it takes),
    sorted: a mistake for the command to point out rather than ignore."""
    takes = WRITERS[task].takes if task in WRITERS else frozenset()
    wrong = sorted(k for k, v in given.items() if v not in (None, False) and k not in takes)
    return wrong, sorted(takes)


def top_k(model: ModelInfo, overrides: Mapping) -> int:
    """``--top-k`` (default 5), at most the model's class count."""
    wanted = overrides.get("top_k") or DEFAULT_TOP_K
    return max(1, min(int(wanted), len(model.class_names) or int(wanted)))


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):  # written atomically: unreadable means not ours; redo it
        return None
    return record if isinstance(record, dict) else None


def _foreign(path: Path, record: dict, wanted: str) -> ClientError:
    if "segments" in record:
        kind = f"segments of {record.get('segment_model')!r} classified"
    elif "classes" in record and "mask" not in record:
        kind = "whole images classified"
    else:
        kind = "segmentation results"
    return ClientError(
        f"{path} holds another run's results ({kind} by {record.get('model')!r}), not {wanted}; "
        "give another --out, or --overwrite to replace them"
    )


@WRITERS.register
class ClassificationWriter(Writer):
    """Classification of the whole image: ``<name>.json`` with its ``top_k`` classes, best first
    (``overrides["top_k"]``, at most the model's class count)."""

    task = Task.CLASSIFICATION
    takes = frozenset({"top_k", "segments", "segment_model"})

    def __call__(
        self,
        client: Servers,
        model: ModelInfo,
        item: ImageItem,
        data: bytes,
        base: Path,
        overlay_path: Path | None,
    ) -> int:
        result = client.infer_classes(model.name, data, top_k(model, self.overrides))
        record = classification_record(item.relative.as_posix(), model, result)
        write_json_atomic(base.with_name(base.name + ".json"), record)
        return 1

    def done(self, model: ModelInfo, item: ImageItem, path: Path) -> bool:
        record = _read_record(path)
        if record is None:
            return False
        if record.get("model") != model.name or "classes" not in record or "mask" in record:
            raise _foreign(path, record, f"whole images classified by {model.name!r}")
        return len(record["classes"]) == top_k(model, self.overrides)


@dataclass(frozen=True)
class ImageSegments:
    """One picture as the store knows it: its sha256 and size, and its approved segments."""

    sha256: str
    width: int
    height: int
    segments: Sequence[StoredSegment]


class SegmentClassificationWriter(Writer):
    """Classification of each stored segment of an image (the ``<model>_segment`` ensemble: the
    server crops the box with a margin and fills what is outside the mask): ``<name>.json`` with
    ``segments``. The picture is found in the store by its path (``by_path``), else by its
    content (``by_sha256``); one the store does not know fails, as does one that changed since
    it was segmented (its masks would not fit). A picture without approved segments gets a record
    with none; a re-run redoes an image whose approved segments have changed since."""

    task = Task.CLASSIFICATION

    def __init__(
        self,
        overrides: dict | None,
        by_path: Mapping[Path, ImageSegments],
        by_sha256: Mapping[str, ImageSegments],
        segment_model: str,
    ):
        super().__init__(overrides)
        self.by_path = by_path
        self.by_sha256 = by_sha256
        self.segment_model = segment_model

    def stored(self, item: ImageItem, data: bytes) -> ImageSegments:
        """The store's view of ``item``; ValueError (this image's failure) when there is none that fits."""
        sha256 = hashlib.sha256(data).hexdigest()
        stored = self.by_path.get(item.path) or self.by_sha256.get(sha256)
        if stored is None:
            raise ValueError(
                f"not in the segment store (neither by its path under DATA/pictures nor by its content); "
                f"run `seg-client segments build --model {self.segment_model}` on it first"
            )
        if stored.sha256 != sha256:
            raise ValueError(
                f"the picture changed since {self.segment_model} segmented it; run "
                f"`seg-client segments build --model {self.segment_model} --process-all` on it again"
            )
        return stored

    def __call__(
        self,
        client: Servers,
        model: ModelInfo,
        item: ImageItem,
        data: bytes,
        base: Path,
        overlay_path: Path | None,
    ) -> int:
        stored = self.stored(item, data)
        k = top_k(model, self.overrides)
        found = []
        for segment in stored.segments:
            result = client.infer_classes(model.name, data, k, segment=(segment.bbox, segment.rle["counts"]))
            found.append(
                {
                    "segment_id": segment.id,
                    "bbox": [round(float(v), 2) for v in segment.bbox],
                    "classes": ranked_classes(model, result),
                }
            )
        record = segments_record(
            item.relative.as_posix(), stored.width, stored.height, model, self.segment_model, found
        )
        write_json_atomic(base.with_name(base.name + ".json"), record)
        return len(found)

    def done(self, model: ModelInfo, item: ImageItem, path: Path) -> bool:
        record = _read_record(path)
        if record is None:
            return False
        if (
            record.get("model") != model.name
            or "segments" not in record
            or record.get("segment_model") != self.segment_model
        ):
            raise _foreign(path, record, f"segments of {self.segment_model!r} classified by {model.name!r}")
        try:
            stored = self.stored(item, read_image(item))
        except ValueError:
            return False  # let the run try it and say why it fails
        k = top_k(model, self.overrides)
        return sorted(s["segment_id"] for s in record["segments"]) == sorted(
            s.id for s in stored.segments
        ) and all(len(s["classes"]) == k for s in record["segments"])


def _decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
