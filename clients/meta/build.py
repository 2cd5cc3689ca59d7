"""``seg-client meta build``: ``<ret_meta>/<group>/ret_meta.json``, every image of a group with its
facts and the outputs of every configured model.

Each model's answers are first written per image under ``<group>/models/<model>/`` by the same
writers and request loop as ``infer`` (so every answer is written atomically and a killed run
keeps what it finished); ``model.json`` there records the version (the weights' checksum) and
the settings they came from, and the sha256 of each picture answered, when a model's pass ends
(and, with no pictures yet, when a pass under a new version or settings begins). Each picture
answered or failed is also marked as soon as its record is written, under
``<group>/answers/<model>/`` (``clients.meta.answers``): a run killed mid-model leaves those
marks, so its re-run asks only about the pictures not marked, and workers sharing a group read
each other's failures there. A re-run therefore asks only about pictures a model has not
answered (new, changed, failed last time), and about every picture for a model whose version or
settings changed; a model reloaded during the run fails it. ret_meta.json is then assembled from
those records (``clients.meta.document``).

Badlisted images (the segment store's badlist, where there is a store) are left out. An
instance detection carries its review status where the store holds the same segment (same model,
class and mask); ``null`` elsewhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clients.inference.run import run_images
from clients.inference.writers import WRITERS, Writer, settings_not_taken
from clients.meta.answers import Answers, MarkingWriter
from clients.meta.config_file import Config, ModelEntry
from clients.meta.document import model_facts, result_entry, write_ret_meta
from clients.meta.layout import MODEL_STAMP, answers_folder, model_folder, read_json, ret_meta_path
from clients.meta.pictures import Picture, read_pictures
from clients.segments.build import model_version, store_name
from clients.triton.client import ClientError, ModelInfo
from clients.triton.image_sources import ImageItem, images_in_group, output_names
from clients.triton.progress import Progress, no_progress
from clients.triton.replicas import Servers
from clients.triton.request_loop import RunSummary
from clients.triton.work_share import DEFAULT_LEASE_S, shared_work
from segcontract.files import write_json_atomic
from segcontract.tasks import Task
from store.errors import StoreError
from store.layout import DB_ENV, DataLayout, database_url, group_index
from store.segment_store import SegmentStore, name_keys


@dataclass
class MetaSummary:
    group: str
    path: Path
    images: int = 0
    badlisted: int = 0
    per_model: dict[str, RunSummary] = field(default_factory=dict)
    failures: dict[str, dict[str, str]] = field(default_factory=dict)  # image → model → reason
    notes: list[str] = field(default_factory=list)  # what the user should know, one line each


def check_entries(entries: tuple[ModelEntry, ...], infos: list[ModelInfo], config_path: Path | None) -> None:
    """Settings of a model that its task has no use for are a mistake in the file: say so."""
    where = f"{config_path}: " if config_path else ""
    for index, (entry, info) in enumerate(zip(entries, infos)):
        wrong, allowed = settings_not_taken(info.task, entry.settings)
        if wrong:
            allowed = [a for a in allowed if hasattr(entry, a)]  # overlay is infer's, not the file's
            raise ClientError(
                f"{where}models[{index}].{wrong[0]}: {entry.name!r} serves {info.task}, which takes "
                f"{', '.join(allowed) or 'no settings'}"
            )
        if entry.segment_model and not entry.segments:
            raise ClientError(f"{where}models[{index}].segment_model goes with segments: true")


def build_meta(
    group: str,
    config: Config,
    client: Servers,
    infos: list[ModelInfo],
    *,
    progress: Progress = no_progress,
    on_failure: Callable[[str, str], None] = lambda image, reason: None,
    lease_s: float = DEFAULT_LEASE_S,
) -> MetaSummary:
    """Build one group's ret_meta.json with the models ``infos`` (``config.models``, in order).
    With a PostgreSQL store, workers building the same group share each model's images (claimed
    in batches, ``lease_s``); each waits until a model's images are all answered before it
    records the model and goes on, so every worker writes the same ret_meta.json."""
    layout = config.layout
    summary = MetaSummary(group, ret_meta_path(layout, group))
    group_index(group, layout, instead=None)  # meta build reads groups only: no --source to suggest
    items = images_in_group(group, layout)
    if not items:
        raise ClientError(f"group {group!r} lists no images")
    store = _open_store(config, layout, summary.notes)
    try:
        build = _GroupBuild(
            group, config=config, client=client, store=store, summary=summary, on_failure=on_failure
        )
        build.read_pictures(items)
        models = [build.ask(entry, info, progress, lease_s) for entry, info in zip(config.models, infos)]
        build.write(models)
    finally:
        if store is not None:
            store.close()
    return summary


@dataclass(frozen=True)
class _ModelPass:
    """One model asked about a group's pictures."""

    entry: ModelEntry
    info: ModelInfo
    version: str
    folder: Path  # its per-image records
    answers: Answers
    same: bool  # the records there come from this version and these settings
    redo: frozenset[Path]  # pictures not answered under them: new, changed, failed


class _GroupBuild:
    """One group's ret_meta.json being built: its pictures, and what each model answered."""

    def __init__(
        self,
        group: str,
        *,
        config: Config,
        client: Servers,
        store: SegmentStore | None,
        summary: MetaSummary,
        on_failure: Callable[[str, str], None],
    ):
        self.group, self.config, self.layout = group, config, config.layout
        self.client, self.store, self.summary, self.on_failure = client, store, summary, on_failure
        self.pictures: list[Picture] = []
        self.names: dict[ImageItem, Path] = {}
        self.results: dict[str, dict[str, Any]] = {}  # picture → model → result
        self.sizes: dict[str, tuple[int, int]] = {}  # as the server decoded the picture

    def read_pictures(self, items: list[ImageItem]) -> None:
        """The group's pictures that are not badlisted; those that cannot be read are failures."""
        badlist = self.store.badlist_names() if self.store is not None else set()
        kept = [i for i in items if not name_keys(store_name(i, self.layout)) & badlist]
        self.summary.badlisted = len(items) - len(kept)
        self.pictures, unreadable = read_pictures(kept)
        for path, reason in unreadable.items():
            self.summary.failures[path] = {"*": reason}
            self.on_failure(path, reason)
        self.names = output_names([p.item for p in self.pictures])
        self.results = {p.name: {} for p in self.pictures}

    def ask(self, entry: ModelEntry, info: ModelInfo, progress: Progress, lease_s: float) -> dict:
        """Ask one model about the pictures it has not answered; its facts for ret_meta."""
        model = self._pass(entry, info)
        run = self._run(model, progress, lease_s)
        now = model_version(self.client.model_info(entry.name))
        if now != model.version:  # reloaded meanwhile: some answers may be the other version's
            changed = f"{model.version} → {now}"
            raise ClientError(
                f"model {entry.name!r} changed while meta build asked it ({changed}); run it again"
            )
        self.summary.per_model[entry.label] = run
        self._collect(model, run)
        return model_facts(entry, info, model.version)

    def write(self, models: list[dict]) -> None:
        """ret_meta.json from every model's answers, each picture at the size the server decoded."""
        pictures = [
            replace(p, width=self.sizes[p.name][0], height=self.sizes[p.name][1])
            if p.name in self.sizes
            else p
            for p in self.pictures
        ]
        write_ret_meta(
            self.summary.path,
            group=self.group,
            layout=self.layout,
            models=models,
            pictures=pictures,
            results=self.results,
            failures=self.summary.failures,
        )
        self.summary.images = len(pictures)

    def _pass(self, entry: ModelEntry, info: ModelInfo) -> _ModelPass:
        version = model_version(info)
        settings = entry.settings
        folder = model_folder(self.layout, self.group, entry.label)
        stamp = read_json(folder / MODEL_STAMP) or {}
        same = (stamp.get("name"), stamp.get("version"), stamp.get("settings")) == (
            entry.name,
            version,
            settings,
        )
        answers = Answers(
            answers_folder(self.layout, self.group, entry.label),
            entry.name,
            version,
            settings,
            self.pictures,
            self.names,
        )
        if same:
            answered = answers.answered(stamp.get("images", {}))
        else:  # every picture again; from here on a killed pass resumes from the marks
            answered = {}
            self._stamp(folder, entry, version, {})
        redo = frozenset(p.item.path for p in self.pictures if answered.get(p.name) != p.sha256)
        return _ModelPass(entry, info, version, folder, answers, same, redo)

    def _writer(self, model: _ModelPass) -> tuple[list[ImageItem], Writer | None]:
        """The pictures to send and the writer of their records, marking each as it goes."""
        entry, info = model.entry, model.info
        writer, todo = None, [p.item for p in self.pictures]
        if entry.segments:
            from clients.segments.sources import stored_segments

            todo, writer, _ = stored_segments(
                todo, self.layout, self.config.db, entry.segment_model, entry.overrides
            )
        if writer is None and info.task in WRITERS:  # else run_images says what it cannot serve
            writer = WRITERS[info.task](entry.overrides)
        return todo, MarkingWriter(writer, model.answers) if writer is not None else None

    def _run(self, model: _ModelPass, progress: Progress, lease_s: float) -> RunSummary:
        entry, concurrency = model.entry, self.config.concurrency
        todo, writer = self._writer(model)
        job = (
            "meta build", self.group, entry.label, entry.name, model.version,
            json.dumps(entry.settings, sort_keys=True), *sorted(p.name for p in self.pictures),
        )  # fmt: skip
        shared_url = database_url(self.config.db, self.layout) if self.store is not None else None

        def failed(image: str, reason: str) -> None:
            self.on_failure(image, f"{entry.label}: {reason}")

        with (
            shared_work(shared_url, job, lease_s, batch=2 * concurrency) as share,
            progress(f"{self.group}: {entry.label}", len(todo)) as advance,
        ):
            return run_images(
                self.client,
                model.info,
                todo,
                model.folder,
                concurrency=concurrency,
                overrides=entry.overrides,
                overwrite=not model.same,
                on_progress=advance,
                on_failure=model.answers.reporting(failed),
                writer=writer,
                redo=model.redo,
                share=share,
            )

    def _collect(self, model: _ModelPass, run: RunSummary) -> None:
        """Each picture's result or failure (this worker's or another's); then the stamp."""
        entry, info = model.entry, model.info
        statuses = _statuses(self.store, entry.name) if info.task == Task.INSTANCE else {}
        done = {}
        for picture in self.pictures:
            mark = model.answers.mark(picture.item)  # another worker's answer or failure counts as this one's
            own = run.failed.get(str(picture.item.path))
            reason = mark.get("failed") if mark is not None else own
            if reason is not None:
                self.summary.failures.setdefault(picture.name, {})[entry.label] = reason
                if own is None:  # met by another worker sharing the group: this report names it too
                    self.on_failure(
                        str(picture.item.path), f"{entry.label}: {reason} (met by another worker)"
                    )
                continue
            record_path = model.folder / f"{self.names[picture.item]}.json"
            record = read_json(record_path)
            if record is None:
                continue
            done[picture.name] = picture.sha256
            self.sizes.setdefault(picture.name, (record["width"], record["height"]))
            self.results[picture.name][entry.label] = result_entry(
                record,
                record_path,
                info,
                self.summary.path.parent,
                statuses,
                store_name(picture.item, self.layout),
            )
        self._stamp(model.folder, entry, model.version, done)

    @staticmethod
    def _stamp(folder: Path, entry: ModelEntry, version: str, images: dict[str, str]) -> None:
        record = {"name": entry.name, "version": version, "settings": entry.settings, "images": images}
        write_json_atomic(folder / MODEL_STAMP, record)


def _open_store(config: Config, layout: DataLayout, notes: list[str]) -> SegmentStore | None:
    """The segment store (its badlist and review states). Where none was named and the default
    SQLite file is not there, None, with a note saying what that means; a named one must exist."""
    url = database_url(config.db, layout)
    named = config.db is not None or bool(os.environ.get(DB_ENV))
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        if named:
            raise ClientError(f"segment store {url}: no such file (store.url, --db or ${DB_ENV})")
        notes.append(f"no segment store at {url}: no badlist applied, no review states")
        return None
    try:
        return SegmentStore.open(url, create=False)
    except StoreError as exc:
        raise ClientError(str(exc)) from None


def _statuses(store: SegmentStore | None, model: str) -> dict[tuple[str, int, str], str]:
    if store is None:
        return {}
    return {(s.image, s.class_id, s.rle["counts"]): s.status.value for s in store.segments(model=model)}
