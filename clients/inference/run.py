"""``seg-client infer``: a served model over many images, one set of files per image.

Resumable: an image whose JSON exists is skipped (unless ``overwrite``). A failed image (unreadable
file, rejected by the server) is reported and the others go on (``clients.triton.request_loop``). Every
file is written atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from clients.inference.overlays import draw_instances
from clients.triton.client import ClientError, ModelInfo
from clients.triton.image_sources import ImageItem, output_names
from clients.triton.records import classification_record, instance_record, ranked_classes, segments_record
from clients.triton.replicas import Servers
from clients.triton.request_loop import RunSummary, asking, read_image, run_jobs
from clients.triton.work_share import SharedWork
from segcontract.files import remove_leftover_temps, write_json_atomic
from segcontract.registry import Registry
from segcontract.tasks import Task
from segops.colors import blend, colorize
from segops.image_write import write_image_atomic
from store.records import StoredSegment

FAILURES_FILE = "failures.json"
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
    """Instance segmentation: ``<name>.json`` (DESIGN.md's schema) and, on request, an overlay."""

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


def _one(client, model, item: ImageItem, base: Path, overlay_path: Path | None, writer) -> int:
    data = read_image(item)
    return asking(client, model, lambda: writer(client, model, item, data, base, overlay_path))


def run_images(
    client: Servers,
    model: ModelInfo,
    items: list[ImageItem],
    out_dir: Path,
    concurrency: int = 4,
    overrides: dict | None = None,
    overwrite: bool = False,
    overlays: bool = False,
    on_progress: Callable[[int], None] = lambda n: None,
    on_failure: Callable[[str, str], None] = lambda image, reason: None,
    writer: Writer | None = None,
    redo: Collection[Path] = (),
    share: SharedWork | None = None,
) -> RunSummary:
    """``writer`` replaces the one the registry has for the model's task (e.g. the segment
    classifier); the images whose paths are in ``redo`` are redone even where done (their
    picture changed, say). ``share``: this worker's share where several workers write the same
    folder (claimed as the work goes; a claimed image whose record another worker has written
    meanwhile is let go)."""
    started = time.time()
    if model.task not in WRITERS:
        raise ClientError(
            f"model {model.name!r} serves {model.task!r}; seg-client knows {', '.join(WRITERS)}"
        )
    if writer is not None and writer.task != model.task:
        raise ClientError(f"model {model.name!r} serves {model.task}, not {writer.task}")
    writer = writer or WRITERS[model.task](overrides)
    summary = RunSummary()
    remove_leftover_temps(out_dir)
    names = output_names(items)
    todo = []
    for item in items:
        json_path = out_dir / f"{names[item]}.json"
        if (
            json_path.exists()
            and not overwrite
            and item.path not in redo
            and writer.done(model, item, json_path)
        ):
            summary.skipped += 1
            on_progress(1)
            continue
        overlay_path = out_dir / "overlays" / f"{names[item]}.jpg" if overlays else None
        todo.append((item, out_dir / names[item], overlay_path))
    jobs = [
        (item, partial(_one, client, model, item, base, overlay_path, writer))
        for item, base, overlay_path in todo
    ]
    if share is not None:

        def still_to_do(claimed: list[ImageItem], began: datetime) -> set[ImageItem]:
            left = set()
            for item in claimed:
                path = out_dir / f"{names[item]}.json"
                if writer.failed_since(item, began):
                    continue
                if not path.exists():
                    left.add(item)
                elif overwrite or item.path in redo:  # redone by this run: written since it began?
                    if path.stat().st_mtime < min(began.timestamp(), started):
                        left.add(item)
                elif not writer.done(model, item, path):
                    left.add(item)
            on_progress(len(claimed) - len(left))
            return left

        jobs = share.jobs([(str(names[item]), item, job) for item, job in jobs], still_to_do)
    try:
        run_jobs(
            client,
            summary,
            jobs,
            concurrency=concurrency,
            results_at=str(out_dir),
            on_progress=on_progress,
            on_failure=on_failure,
        )
    except BaseException:
        with contextlib.suppress(OSError):  # e.g. the disk that is full: keep the first error
            _save_failures(out_dir, summary.failed, complete=False)
        raise
    _save_failures(out_dir, summary.failed, complete=True)
    if share is not None:
        summary.skipped += share.done_elsewhere
    return summary


def _save_failures(out_dir: Path, failed: dict[str, str], complete: bool) -> None:
    """A complete run's failures replace the list; a stopped run only adds to it (the images it
    did not reach keep their earlier entries)."""
    path = out_dir / FAILURES_FILE
    if not complete:
        failed = {**load_failures(out_dir), **failed} if failed else {}
    if failed:
        write_json_atomic(path, failed)
    elif complete and path.exists():
        path.unlink()


def load_failures(out_dir: Path) -> dict[str, str]:
    path = out_dir / FAILURES_FILE
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        return {}
