"""A served model over many images, one set of files per image (``infer``, ``meta build``).

Resumable: an image whose JSON exists is skipped (unless ``overwrite``). A failed image (unreadable
file, rejected by the server) is reported and the others go on (``clients.triton.request_loop``). Every
file is written atomically; ``failures.json`` lists the images that failed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from clients.inference.writers import WRITERS, Writer
from clients.triton.client import ClientError, ModelInfo
from clients.triton.image_sources import ImageItem, output_names
from clients.triton.replicas import Servers
from clients.triton.request_loop import RunSummary, asking, read_image, run_jobs
from clients.triton.work_share import SharedWork
from segcontract.files import remove_leftover_temps, write_json_atomic

FAILURES_FILE = "failures.json"


def run_images(
    client: Servers,
    model: ModelInfo,
    items: list[ImageItem],
    out_dir: Path,
    *,
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
    writer = _writer_for(model, writer, overrides)
    summary = RunSummary()
    remove_leftover_temps(out_dir)
    names = output_names(items)
    done = _Done(model, writer, out_dir, names, overwrite=overwrite, redo=redo, started=started)
    jobs: list[tuple[ImageItem, Callable[[], int]]] = []
    for item in items:
        if done.before(item):
            summary.skipped += 1
            on_progress(1)
            continue
        overlay_path = out_dir / "overlays" / f"{names[item]}.jpg" if overlays else None
        jobs.append((item, partial(_one, client, model, item, out_dir / names[item], overlay_path, writer)))
    if share is not None:
        jobs = share.jobs(
            [(str(names[item]), item, job) for item, job in jobs], partial(done.still_to_do, on_progress)
        )
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


def _writer_for(model: ModelInfo, writer: Writer | None, overrides: dict | None) -> Writer:
    if model.task not in WRITERS:
        raise ClientError(
            f"model {model.name!r} serves {model.task!r}; seg-client knows {', '.join(WRITERS)}"
        )
    if writer is not None and writer.task != model.task:
        raise ClientError(f"model {model.name!r} serves {model.task}, not {writer.task}")
    return writer or WRITERS[model.task](overrides)


@dataclass(frozen=True)
class _Done:
    """Which images a run has no need to send: done before it began, or (in a shared run) since,
    by another worker."""

    model: ModelInfo
    writer: Writer
    out_dir: Path
    names: dict[ImageItem, Path]
    overwrite: bool  # every record is redone
    redo: Collection[Path]  # these pictures' records are redone
    started: float  # when this run began (time.time())

    def _record(self, item: ImageItem) -> Path:
        return self.out_dir / f"{self.names[item]}.json"

    def _redone(self, item: ImageItem) -> bool:
        return self.overwrite or item.path in self.redo

    def before(self, item: ImageItem) -> bool:
        path = self._record(item)
        return path.exists() and not self._redone(item) and self.writer.done(self.model, item, path)

    def still_to_do(
        self, on_progress: Callable[[int], None], claimed: list[ImageItem], began: datetime
    ) -> set[ImageItem]:
        """The claimed images no worker has done since the shared run began at ``began``."""
        left = set()
        for item in claimed:
            path = self._record(item)
            if self.writer.failed_since(item, began):
                continue
            if not path.exists():
                left.add(item)
            elif self._redone(item):  # redone by this run: written since it began?
                if path.stat().st_mtime < min(began.timestamp(), self.started):
                    left.add(item)
            elif not self.writer.done(self.model, item, path):
                left.add(item)
        on_progress(len(claimed) - len(left))
        return left


def _one(client, model, item: ImageItem, base: Path, overlay_path: Path | None, writer) -> int:
    data = read_image(item)
    return asking(client, model, lambda: writer(client, model, item, data, base, overlay_path))


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
