"""``seg-client infer`` as a library call: which images, which servers and writer, then the run
(``clients.inference.run``), shared with other workers where the store allows."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clients.inference.run import run_images
from clients.inference.writers import Writer, settings_not_taken
from clients.triton.client import DEFAULT_TIMEOUT_S, ClientError, ModelInfo
from clients.triton.image_sources import (
    DataLayout,
    ImageItem,
    all_badlisted_error,
    empty_group_error,
    images_in_folder,
    images_in_group,
    no_images_error,
    unbadlisted,
)
from clients.triton.progress import Progress, Tally, no_progress
from clients.triton.replicas import DEFAULT_URL, connect
from clients.triton.request_loop import RunSummary
from clients.triton.work_share import DEFAULT_LEASE_S, shared_work
from segcontract.tasks import Task
from store.layout import database_url


@dataclass(frozen=True)
class InferOptions:
    """What ``infer`` is asked: the images (exactly one of ``source`` and ``group``), the served
    ``model`` and its servers, where the answers go and the per-request settings."""

    model: str
    source: Path | None = None
    group: str | None = None
    data_root: Path = Path(".")
    urls: tuple[str, ...] = (DEFAULT_URL,)
    out: Path | None = None
    conf: float | None = None
    iou: float | None = None
    max_det: int | None = None
    concurrency: int = 4
    timeout_s: float = DEFAULT_TIMEOUT_S
    overlay: bool = False
    overwrite: bool = False
    top_k: int | None = None
    on_segments: bool = False  # classify the stored segments of each image, not the image
    segment_model: str | None = None
    db: str | None = None
    lease_s: float = DEFAULT_LEASE_S

    def usage_problem(self) -> str | None:
        """What is wrong with the combination of options, before anything is read; None if nothing."""
        if (self.source is None) == (self.group is None):
            return "give exactly one of --source DIR or --group NAME"
        if self.segment_model is not None and not self.on_segments:
            return "--segment-model goes with --segments"
        return None

    @property
    def overrides(self) -> dict:
        """The settings sent with each request (None: the model's own)."""
        return {"conf": self.conf, "iou": self.iou, "max_det": self.max_det, "top_k": self.top_k}

    def out_dir(self, layout: DataLayout) -> Path:
        """``--out``, else TEST/inference/<group or source folder name>[-segments]."""
        name = self.group or Path(self.source).resolve().name
        return self.out or layout.inference / (f"{name}-segments" if self.on_segments else name)


@dataclass(frozen=True)
class InferReport:
    summary: RunSummary
    task: str  # what the model serves
    out: Path
    elapsed_s: float
    servers: str | None  # the replicas' summary line, where there were several
    on_segments: bool  # segments were classified, not whole images

    def line(self) -> str:
        """The run in one line: what was written, skipped and failed, and what the model found."""
        summary = self.summary
        classified = f"{summary.detections} segments classified" if self.on_segments else "classes"
        found = {
            Task.INSTANCE: f"{summary.detections} detections",
            Task.SEMANTIC: "masks",
            Task.CLASSIFICATION: classified,
        }[Task(self.task)]
        per_image = f", {1000 * self.elapsed_s / summary.written:.1f} ms/image" if summary.written else ""
        return (
            f"{summary.written} written, {summary.skipped} skipped (done before), {len(summary.failed)} "
            f"failed; {found} → {self.out} (in {self.elapsed_s:.1f} s{per_image})"
        )


def run_infer(
    options: InferOptions,
    *,
    progress: Progress = no_progress,
    on_note: Callable[[str], None] = lambda line: None,
    on_failure: Callable[[str, str], None] = lambda image, reason: None,
) -> InferReport:
    """Run ``options.model`` over the images and write its answers under the output folder.
    ``on_note`` gets what the person running it should know (badlisted images left out, replicas
    taken out and back); ``on_failure`` each image that failed, with the reason."""
    layout = DataLayout(options.data_root)
    out = options.out_dir(layout)
    items = _images(options, layout, out, on_note)
    if out.exists() and not out.is_dir():
        raise ClientError(f"--out {out} is a file; give a folder")
    client = connect(options.urls, options.timeout_s, on_event=on_note)
    info = client.model_info(options.model)
    _refuse_settings_not_taken(options, info)
    writer = None
    if options.on_segments:
        items, writer = _segments_to_classify(options, items, layout, on_note)
    job = (
        "infer", options.model, str(out.resolve()), str(sorted(options.overrides.items())),
        str(options.overwrite), str(options.overlay), str(options.on_segments),
        *sorted(i.relative.as_posix() for i in items),
    )  # fmt: skip
    sharing = shared_work(
        database_url(options.db, layout) if options.db is not None else None,
        job,
        options.lease_s,
        batch=2 * options.concurrency,
        # with --group, --db is also the badlist's; with --segments, the segments'
        required=not options.on_segments and options.group is None,
    )
    started = time.perf_counter()
    with sharing as share, progress(options.model, len(items)) as advance:
        tally = Tally(advance)
        summary = run_images(
            client,
            info,
            items,
            out,
            concurrency=options.concurrency,
            overrides=options.overrides,
            overwrite=options.overwrite,
            overlays=options.overlay,
            on_progress=tally,
            on_failure=on_failure,
            writer=writer,
            share=share,
        )
        if share is not None:  # the job is done: the rest was done by the other workers
            tally.complete(len(items))
    elapsed_s = time.perf_counter() - started
    return InferReport(summary, info.task, out, elapsed_s, client.summary(), options.on_segments)


def _images(
    options: InferOptions, layout: DataLayout, out: Path, on_note: Callable[[str], None]
) -> list[ImageItem]:
    """The folder's images (not those under ``out``) or the group's, without the group's
    badlisted ones (with --segments the store leaves those out itself)."""
    if options.source is not None:
        items = images_in_folder(options.source, exclude=out)
        if not items:
            raise no_images_error(options.source)
        return items
    items = images_in_group(options.group, layout)
    if not items:
        raise empty_group_error(options.group, layout, options.db)
    if options.on_segments:
        return items
    return without_badlisted(items, options.group, layout, options.db, on_note)


def without_badlisted(
    items: list[ImageItem],
    group: str,
    layout: DataLayout,
    db: str | None,
    on_note: Callable[[str], None],
) -> list[ImageItem]:
    """A group's images without those on the store's badlist now, whatever the group's CSV says;
    says how many were left out, and refuses a group whose images are all badlisted."""
    kept, badlisted = unbadlisted(items, layout, db)
    if not kept:
        raise all_badlisted_error(f"group {group!r}", badlisted)
    if badlisted:
        on_note(f"{badlisted} badlisted images left out")
    return kept


def _refuse_settings_not_taken(options: InferOptions, info: ModelInfo) -> None:
    given = {
        "conf": options.conf,
        "iou": options.iou,
        "max_det": options.max_det,
        "overlay": options.overlay,
        "top_k": options.top_k,
        "segments": options.on_segments,
    }
    wrong, takes = settings_not_taken(info.task, given)
    if wrong:
        flags = ", ".join("--" + name.replace("_", "-") for name in wrong)
        usable = ", ".join("--" + name.replace("_", "-") for name in takes) or "none of them"
        raise ClientError(f"{flags}: {options.model!r} serves {info.task}, which takes {usable}")


def _segments_to_classify(
    options: InferOptions, items: list[ImageItem], layout: DataLayout, on_note: Callable[[str], None]
) -> tuple[list[ImageItem], Writer]:
    """The images with approved segments in the store, and the writer that classifies those."""
    from clients.segments.sources import stored_segments

    items, writer, badlisted = stored_segments(
        items, layout, options.db, options.segment_model, {"top_k": options.top_k}
    )
    if not items:  # rather than "0 written"
        where = f"group {options.group!r}" if options.group is not None else str(options.source)
        raise all_badlisted_error(where, badlisted, "no segments to classify")
    if badlisted:
        on_note(f"{badlisted} badlisted images left out")
    return items, writer
