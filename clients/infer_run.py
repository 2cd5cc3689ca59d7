"""Run a served instance-segmentation model over many images with several requests in flight.

Resumable: an image whose JSON exists is skipped (unless ``overwrite``). A failed image (unreadable
file, rejected by the server) is reported and the others go on. Every file is written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tritonclient.utils import InferenceServerException

from clients.image_sources import ImageItem, output_names
from clients.overlays import blend, colorize, draw_instances
from clients.records import instance_record, write_image_atomic, write_json_atomic
from clients.triton import ClientError, ModelInfo, SegmentationClient

FAILURES_FILE = "failures.json"


@dataclass
class RunSummary:
    written: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # image → reason
    detections: int = 0


class InstanceWriter:
    """Instance segmentation: ``<name>.json`` (DESIGN.md's schema) and, on request, an overlay."""

    task = "instance_segmentation"

    def __init__(self, overrides: dict | None = None):
        self.overrides = overrides or {}

    def __call__(
        self,
        client: SegmentationClient,
        model: ModelInfo,
        item: ImageItem,
        data: bytes,
        base: Path,
        overlay_path: Path | None,
    ) -> int:
        result = client.infer_instances(model.name, data, self.overrides)
        record = instance_record(item.relative.as_posix(), model, result)
        if overlay_path is not None:
            write_image_atomic(overlay_path, draw_instances(_decode(data), record))
        write_json_atomic(base.with_name(base.name + ".json"), record)  # last: its presence means done
        return len(record["detections"])


class SemanticWriter:
    """Semantic segmentation: ``<name>.png`` (class indices), ``<name>_color.png`` (the server's
    colours), ``<name>.json`` (pixel fraction per class) and, on request, an overlay."""

    task = "semantic_segmentation"

    def __call__(
        self,
        client: SegmentationClient,
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


WRITERS = {w.task: w for w in (InstanceWriter, SemanticWriter)}


def _decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def _one(client, model, item: ImageItem, base: Path, overlay_path: Path | None, writer) -> int:
    try:
        data = item.path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror or exc}") from None
    if not data:
        raise ValueError("empty file (0 bytes)")
    try:
        return writer(client, model, item, data, base, overlay_path)
    except InferenceServerException as exc:
        message = (exc.message() or str(exc)).replace(f"in ensemble '{model.name}', ", "")
        raise ValueError(message) from None


def run_images(
    client: SegmentationClient,
    model: ModelInfo,
    items: list[ImageItem],
    out_dir: Path,
    concurrency: int = 4,
    overrides: dict | None = None,
    overwrite: bool = False,
    overlays: bool = False,
    on_progress: Callable[[int], None] = lambda n: None,
    on_failure: Callable[[str, str], None] = lambda image, reason: None,
) -> RunSummary:
    if model.task not in WRITERS:
        raise ClientError(
            f"model {model.name!r} serves {model.task!r}; seg-client knows {', '.join(WRITERS)}"
        )
    writer = InstanceWriter(overrides) if model.task == InstanceWriter.task else SemanticWriter()
    summary = RunSummary()
    names = output_names(items)
    todo = []
    for item in items:
        json_path = out_dir / f"{names[item]}.json"
        if json_path.exists() and not overwrite:
            summary.skipped += 1
            on_progress(1)
            continue
        overlay_path = out_dir / "overlays" / f"{names[item]}.jpg" if overlays else None
        todo.append((item, out_dir / names[item], overlay_path))
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
    try:
        futures = {
            pool.submit(_one, client, model, item, base, overlay_path, writer): item
            for item, base, overlay_path in todo
        }
        for future in as_completed(futures):
            item = futures[future]
            try:
                summary.detections += future.result()
                summary.written += 1
            except ValueError as exc:
                summary.failed[str(item.path)] = str(exc)
                on_failure(str(item.path), str(exc))
            except OSError as exc:  # cannot write the output: every image would fail the same way
                raise ClientError(f"cannot write results under {out_dir}: {exc.strerror or exc}") from None
            on_progress(1)
    finally:
        # on Ctrl-C or a fatal error, drop the queued images; finished ones are on disk (resumable)
        pool.shutdown(wait=True, cancel_futures=True)
    failures = out_dir / FAILURES_FILE
    if summary.failed:
        write_json_atomic(failures, summary.failed)
    elif failures.exists():
        failures.unlink()
    return summary


def load_failures(out_dir: Path) -> dict[str, str]:
    path = out_dir / FAILURES_FILE
    return json.loads(path.read_text()) if path.exists() else {}
