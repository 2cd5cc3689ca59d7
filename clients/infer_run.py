"""Run a served instance-segmentation model over many images with several requests in flight.

Resumable: an image whose JSON exists is skipped (unless ``overwrite``). A failed image (unreadable
file, rejected by the server) is reported and the others go on. Every file is written atomically.
A server that stops answering or goes away ends the run at once (``ServerStopped``), as does
Ctrl-C: the requests in flight are cancelled rather than waited for.
"""

from __future__ import annotations

import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tritonclient.utils import InferenceServerException

from clients.image_sources import ImageItem, output_names
from clients.overlays import draw_instances
from clients.records import instance_record
from clients.triton import (
    DEADLINE_EXCEEDED,
    INVALID_ARGUMENT,
    ClientError,
    ModelInfo,
    SegmentationClient,
    ServerStopped,
)
from segcontract.files import remove_leftover_temps, write_json_atomic
from segcontract.registry import Registry
from segcontract.tasks import Task
from segops.colors import blend, colorize
from segops.image_write import write_image_atomic

FAILURES_FILE = "failures.json"


@dataclass
class RunSummary:
    written: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # image → reason
    detections: int = 0


class Writer(ABC):
    """Sends one image to a model of its ``task`` and writes what comes back. Every writer is made
    from the run's threshold overrides, so that the registry can make any of them the same way."""

    task: str

    def __init__(self, overrides: dict | None = None):
        self.overrides = overrides or {}

    @abstractmethod
    def __call__(
        self,
        client: SegmentationClient,
        model: ModelInfo,
        item: ImageItem,
        data: bytes,
        base: Path,
        overlay_path: Path | None,
    ) -> int:
        """Write the outputs of ``item`` next to ``base``; returns what it found (detections, classes)."""


WRITERS: Registry[type[Writer]] = Registry("task", key="task")


@WRITERS.register
class InstanceWriter(Writer):
    """Instance segmentation: ``<name>.json`` (DESIGN.md's schema) and, on request, an overlay."""

    task = Task.INSTANCE

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


@WRITERS.register
class SemanticWriter(Writer):
    """Semantic segmentation: ``<name>.png`` (class indices), ``<name>_color.png`` (the server's
    colours), ``<name>.json`` (pixel fraction per class) and, on request, an overlay. The model
    takes no thresholds: the overrides are not sent."""

    task = Task.SEMANTIC

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


class RequestError(ValueError):
    """The server refused or did not answer one image's request; ``status`` is gRPC's code."""

    def __init__(self, message: str, status: str | None):
        super().__init__(message)
        self.status = status


def _decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def _one(client, model, item: ImageItem, base: Path, overlay_path: Path | None, writer) -> int:
    try:
        data = item.path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror or exc}") from None
    if not data:
        raise ValueError("empty file (0 bytes)")
    if item.path.suffix.lower() == ".gif" and (frames := _frame_count(item.path)) > 1:
        raise ValueError(
            f"an animated GIF ({frames} frames): seg-client sends one picture per file; "
            "extract the frames first (e.g. ffmpeg -i in.gif frame_%04d.png)"
        )
    try:
        return writer(client, model, item, data, base, overlay_path)
    except InferenceServerException as exc:
        if exc.status() == DEADLINE_EXCEEDED:
            raise RequestError(f"no reply within {client.timeout_s:g} s (--timeout)", exc.status()) from None
        message = (exc.message() or str(exc)).replace(f"in ensemble '{model.name}', ", "")
        raise RequestError(message, exc.status()) from None


def _frame_count(path: Path) -> int:
    try:
        return int(cv2.imcount(str(path)))
    except cv2.error:  # an OpenCV without GIF support: the server's decode says so
        return 1


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
    writer = WRITERS[model.task](overrides)
    summary = RunSummary()
    remove_leftover_temps(out_dir)
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
    timed_out = 0  # requests in a row with no reply although the server answers health checks
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
                timed_out = 0
            except RequestError as exc:
                if exc.status != INVALID_ARGUMENT:  # maybe not this image's fault: ask the server
                    _stop_if_server_is_down(client, out_dir)
                    timed_out = timed_out + 1 if exc.status == DEADLINE_EXCEEDED else 0
                    if timed_out >= max(2, concurrency):
                        raise ServerStopped(
                            f"Triton at {client.url} answers health checks, but {timed_out} requests in a "
                            f"row got no reply within {client.timeout_s:g} s: its model seems stuck (raise "
                            f"--timeout if the images are just slow); results so far are in {out_dir}, "
                            "a re-run resumes"
                        ) from None
                summary.failed[str(item.path)] = str(exc)
                on_failure(str(item.path), str(exc))
            except ValueError as exc:
                summary.failed[str(item.path)] = str(exc)
                on_failure(str(item.path), str(exc))
            except OSError as exc:  # cannot write the output: every image would fail the same way
                raise ClientError(f"cannot write results under {out_dir}: {exc.strerror or exc}") from None
            on_progress(1)
    except BaseException:
        # Ctrl-C or a fatal error: end the requests in flight now (else each waits out its timeout)
        # and drop the queued images; finished ones are on disk, a re-run resumes
        client.close()
        pool.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(OSError):  # e.g. the disk that is full: keep the first error
            _save_failures(out_dir, summary.failed, complete=False)
        raise
    pool.shutdown(wait=True)
    _save_failures(out_dir, summary.failed, complete=True)
    return summary


def _stop_if_server_is_down(client: SegmentationClient, out_dir: Path) -> None:
    problem = client.health_problem()
    if problem is not None:
        raise ServerStopped(
            f"Triton at {client.url} {problem}; results so far are in {out_dir}, a re-run resumes"
        )


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
