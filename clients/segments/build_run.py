"""``seg-client segments build`` as a library call: which images, which servers and classes, then
the build into the store (``clients.segments.build``), shared with other workers where the
store allows."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clients.segments.build import (
    BuildSummary,
    StoreSettings,
    build_segments,
    class_ids,
    model_version,
    source_group,
    store_name,
)
from clients.segments.store_cli import login_name, open_store
from clients.triton.client import DEFAULT_TIMEOUT_S
from clients.triton.image_sources import empty_group_error, images_in_folder, images_in_group, no_images_error
from clients.triton.progress import Progress, Tally, no_progress
from clients.triton.replicas import DEFAULT_URL, connect
from clients.triton.work_share import DEFAULT_LEASE_S, shared_work
from store.layout import DataLayout, database_url
from store.records import Status


@dataclass(frozen=True)
class SegmentsBuildOptions:
    """What ``segments build`` is asked: the images (a group, or a folder that joins ``group`` or
    the group named after it), the served instance ``model`` and its servers, and what to store."""

    model: str
    group: str | None = None
    source: Path | None = None
    urls: tuple[str, ...] = (DEFAULT_URL,)
    db: str | None = None
    data_root: Path = Path(".")
    classes: str | None = None  # names or ids, comma-separated
    process_all: bool = False
    mark_approved: bool = False
    conf: float | None = None
    iou: float | None = None
    max_det: int | None = None
    concurrency: int = 4
    timeout_s: float = DEFAULT_TIMEOUT_S
    lease_s: float = DEFAULT_LEASE_S

    def usage_problem(self) -> str | None:
        """What is wrong with the combination of options, before anything is read; None if nothing."""
        if self.source is None and self.group is None:
            return "give --group NAME (a group under DATA/datasets) or --source DIR"
        return None


@dataclass(frozen=True)
class SegmentsBuildReport:
    summary: BuildSummary
    store_url: str
    elapsed_s: float
    servers: str | None  # the replicas' summary line, where there were several
    shared: bool  # other workers shared the run

    def line(self) -> str:
        summary, elapsed = self.summary, self.elapsed_s
        rate = f", {summary.written / elapsed:.1f} images/s" if summary.written and elapsed > 0 else ""
        replaced = f", {summary.removed} unchecked replaced" if summary.removed else ""
        if self.shared:
            replaced += f", {summary.done_elsewhere} done by other workers"
        return (
            f"{summary.written} segmented, {summary.skipped} skipped (done before), "
            f"{summary.badlisted} badlisted, {len(summary.failed)} failed; {summary.added} segments stored, "
            f"{summary.kept} kept{replaced} → {self.store_url} (in {elapsed:.1f} s{rate})"
        )


def run_build(
    options: SegmentsBuildOptions,
    *,
    progress: Progress = no_progress,
    on_note: Callable[[str], None] = lambda line: None,
    on_failure: Callable[[str, str], None] = lambda image, reason: None,
) -> SegmentsBuildReport:
    """Segment the images with ``options.model`` and store what it finds. ``on_note`` gets what
    the person running it should know (replicas taken out and back); ``on_failure`` each image
    that failed, with the reason."""
    layout = DataLayout(options.data_root)
    source, group = options.source, options.group
    items = images_in_folder(source) if source is not None else images_in_group(group, layout)
    if not items:
        raise no_images_error(source) if source is not None else empty_group_error(group, layout, options.db)
    client = connect(options.urls, options.timeout_s, on_event=on_note)
    info = client.model_info(options.model)
    chosen = class_ids(info, options.classes)
    overrides = {"conf": options.conf, "iou": options.iou, "max_det": options.max_det}
    settings = StoreSettings(
        groups=(group or source_group(source),),
        classes=frozenset(chosen) if chosen is not None else None,
        process_all=options.process_all,
        status=Status.APPROVED if options.mark_approved else Status.UNCHECKED,
        reviewer=login_name() if options.mark_approved else "",
        overrides=overrides,
    )
    job = (
        "segments build", options.model, model_version(info), str(options.process_all),
        str(sorted(chosen or [])), str(sorted(overrides.items())), str(options.mark_approved),
        *sorted(store_name(i, layout) for i in items),
    )  # fmt: skip
    with (
        open_store(options.db, layout, create=True, connections=options.concurrency) as store,
        shared_work(
            database_url(options.db, layout), job, options.lease_s, batch=2 * options.concurrency
        ) as share,
    ):
        started = time.perf_counter()
        with progress(f"{options.model} → store", len(items)) as advance:
            tally = Tally(advance)
            summary = build_segments(
                client,
                info,
                items,
                layout,
                store,
                settings,
                concurrency=options.concurrency,
                on_progress=tally,
                on_failure=on_failure,
                share=share,
            )
            if share is not None:  # the job is done: the rest was done by the other workers
                tally.complete(len(items))
        elapsed_s = time.perf_counter() - started
        return SegmentsBuildReport(summary, store.url, elapsed_s, client.summary(), share is not None)
