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
from clients.overlays import draw_instances
from clients.records import instance_record, write_atomic, write_json_atomic
from clients.triton import ClientError, ModelInfo, SegmentationClient

FAILURES_FILE = "failures.json"


@dataclass
class RunSummary:
    written: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # image → reason
    detections: int = 0


def _one(
    client: SegmentationClient,
    model: ModelInfo,
    item: ImageItem,
    json_path: Path,
    overlay_path: Path | None,
    overrides: dict,
) -> int:
    try:
        data = item.path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror or exc}") from None
    if not data:
        raise ValueError("empty file (0 bytes)")
    try:
        result = client.infer_instances(model.name, data, overrides)
    except InferenceServerException as exc:
        message = (exc.message() or str(exc)).replace(f"in ensemble '{model.name}', ", "")
        raise ValueError(message) from None
    record = instance_record(item.relative.as_posix(), model, result)
    if overlay_path is not None:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        ok, encoded = cv2.imencode(".jpg", draw_instances(image, record))
        if ok:
            write_atomic(overlay_path, encoded.tobytes())
    write_json_atomic(json_path, record)  # last: its presence means the image is done
    return len(record["detections"])


def run_instances(
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
        todo.append((item, json_path, overlay_path))
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
    try:
        futures = {
            pool.submit(_one, client, model, item, json_path, overlay_path, overrides or {}): item
            for item, json_path, overlay_path in todo
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
