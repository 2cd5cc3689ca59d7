"""``seg-client segments build``: a served instance model over a group or a folder, its segments
kept in the store rather than in files.

The requests go through the same loop and client as ``infer`` (``clients.triton.request_loop``). What
is done lives in the store: an image that model has segmented is skipped (``process_all`` redoes
it, replacing its unchecked segments and keeping reviewed ones); badlisted images are not sent.
Each image is saved in its own transaction once its answer is in, so a killed run keeps every
image it finished and a re-run does the rest.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from clients.triton.client import ClientError, ModelInfo
from clients.triton.image_sources import ImageItem
from clients.triton.records import instance_record
from clients.triton.replicas import Servers
from clients.triton.request_loop import RunSummary, asking, read_image, run_jobs
from clients.triton.work_share import SharedWork
from segcontract.files import file_sha256
from segcontract.tasks import Task
from store.badlist import picture_name
from store.layout import DataLayout
from store.records import Status
from store.segment_store import ImageFacts, NewSegment, SegmentStore, name_keys


@dataclass
class BuildSummary(RunSummary):
    added: int = 0  # segment rows stored
    kept: int = 0  # reviewed (or identical) segments left in place
    removed: int = 0  # unchecked segments replaced (process_all)
    badlisted: int = 0  # images not sent: on the badlist
    done_elsewhere: int = 0  # images another process stored meanwhile


def model_version(model: ModelInfo) -> str:
    """What the store records as the model's version: the checksum of the weights build-repo
    built it from (the served name alone does not change when the model is rebuilt)."""
    weights = model.metadata.checksums.get("weights_sha256", "")
    return f"sha256:{weights[:16]}" if weights else model.metadata.versions.get("segstack", "unknown")


def store_name(item: ImageItem, layout: DataLayout) -> str:
    """An image's name in the store: its path relative to DATA/pictures when it is there (a group's
    images always are), else its absolute path."""
    return picture_name(item.path, layout.pictures)


def class_ids(model: ModelInfo, classes: str | None) -> set[int] | None:
    """``--classes person,car`` (names or ids) → the model's class ids; None keeps every class."""
    if not classes:
        return None
    chosen = set()
    for token in (t.strip() for t in classes.split(",")):
        if token.isdigit() and int(token) < len(model.class_names):
            chosen.add(int(token))
        elif token in model.class_names:
            chosen.add(model.class_names.index(token))
        elif token:
            known = ", ".join(repr(name)[1:-1] for name in model.class_names)  # control characters escaped
            raise ClientError(f"--classes: {model.name!r} has no class {token!r}; its classes: {known}")
    return chosen


@dataclass(frozen=True)
class StoreSettings:
    """How a build stores what the model finds."""

    groups: tuple[str, ...] = ()  # the groups its images join
    classes: frozenset[int] | None = None  # the classes kept (None: every one)
    process_all: bool = False  # redo images done before: their unchecked segments are replaced
    status: Status = Status.UNCHECKED  # of the new segments
    reviewer: str = ""  # whose decision that status is, when not unchecked (--mark-approved)
    overrides: Mapping[str, Any] = field(default_factory=dict)  # thresholds sent with each request


def build_segments(
    client: Servers,
    model: ModelInfo,
    items: list[ImageItem],
    layout: DataLayout,
    store: SegmentStore,
    settings: StoreSettings = StoreSettings(),
    *,
    concurrency: int = 4,
    on_progress: Callable[[int], None] = lambda n: None,
    on_failure: Callable[[str, str], None] = lambda image, reason: None,
    share: SharedWork | None = None,
) -> BuildSummary:
    """``share``: this worker's share of the run where several workers segment the same images
    (a PostgreSQL store); the images are then claimed as the work goes, and each claimed image is
    looked up again in case another worker has stored it meanwhile."""
    if model.task != Task.INSTANCE:
        raise ClientError(
            f"model {model.name!r} serves {model.task} segmentation; segments build stores instances "
            "(a YOLO-seg model built by build-repo)"
        )
    summary = BuildSummary()
    started = store.clock()
    segmenter = _Segmenter(client, model, store=store, settings=settings, summary=summary)
    done = {} if settings.process_all else store.done_paths(model.name)
    badlist = store.badlist_names()
    jobs = []
    skipped = []
    for item in items:
        name = store_name(item, layout)
        if name_keys(name) & badlist:
            summary.badlisted += 1
        elif name in done and _same_picture(item, done[name]):
            summary.skipped += 1
        else:
            jobs.append((item, segmenter.job(item, name)))
            continue
        skipped.append(name)
        on_progress(1)
    store.join_groups(skipped, list(settings.groups))  # images done before still join this run's group
    if share is not None:
        names = {item: store_name(item, layout) for item, _ in jobs}

        def still_to_do(claimed: list[ImageItem], began: datetime) -> set[ImageItem]:
            """Not stored meanwhile by another worker (with process_all: not since the run began)."""
            stored = store.done_paths(
                model.name,
                among=[names[i] for i in claimed],
                since=min(began, started) if settings.process_all else None,
            )
            todo = {i for i in claimed if not (names[i] in stored and _same_picture(i, stored[names[i]]))}
            on_progress(len(claimed) - len(todo))
            return todo

        jobs = share.jobs([(names[item], item, job) for item, job in jobs], still_to_do)
    run_jobs(
        client,
        summary,
        jobs,
        concurrency=concurrency,
        results_at=f"the segment store {store.url}",
        on_progress=on_progress,
        on_failure=on_failure,
    )
    if share is not None:
        summary.done_elsewhere += share.done_elsewhere
    return summary


def _same_picture(item: ImageItem, sha256: str) -> bool:
    """Whether the file is still the picture the store segmented (a re-pulled image may not be)."""
    try:
        return file_sha256(item.path) == sha256
    except OSError:  # unreadable now: let the run try it and report why
        return False


class _Segmenter:
    """Makes each image's job: ask the model, keep the chosen classes, save them in the store
    (one transaction per image) and count the outcome."""

    def __init__(
        self,
        client: Servers,
        model: ModelInfo,
        *,
        store: SegmentStore,
        settings: StoreSettings,
        summary: BuildSummary,
    ):
        self.client, self.model, self.version = client, model, model_version(model)
        self.store, self.settings, self.summary = store, settings, summary
        self.lock = threading.Lock()

    def job(self, item: ImageItem, name: str) -> Callable[[], int]:
        return lambda: self._segment(item, name)

    def _segment(self, item: ImageItem, name: str) -> int:
        client, model, settings = self.client, self.model, self.settings
        data = read_image(item)
        result = asking(
            client, model, lambda: client.infer_instances(model.name, data, dict(settings.overrides))
        )
        record = instance_record(name, model, result)
        segments = [
            NewSegment(
                class_id=d["class_id"],
                class_name=d["class_name"],
                score=d["score"],
                bbox=tuple(d["bbox"]),
                rle_counts=d["segmentation"]["counts"],
            )
            for d in record["detections"]
            if settings.classes is None or d["class_id"] in settings.classes
        ]
        facts = ImageFacts(name, hashlib.sha256(data).hexdigest(), len(data), result.width, result.height)
        outcome = self.store.save_segmentation(
            facts,
            model.name,
            self.version,
            segments,
            groups=list(settings.groups),
            status=settings.status,
            replace=settings.process_all,
            reviewer=settings.reviewer,
        )
        with self.lock:
            self.summary.added += outcome.added
            self.summary.kept += outcome.kept
            self.summary.removed += outcome.removed
            self.summary.done_elsewhere += outcome.already_done
        return len(segments)


def source_group(source: Path) -> str:
    """The group a ``--source`` folder's images join in the store: the folder's name."""
    return source.resolve().name
