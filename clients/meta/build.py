"""``seg-client meta build``: ``<ret_meta>/<group>/ret_meta.json``, every image of a group with its
facts and the outputs of every configured model.

Each model's answers are first written per image under ``<group>/models/<model>/`` by the same
writers and request loop as ``infer`` (so every answer is written atomically and a killed run
keeps what it finished); ``model.json`` there records the version (the weights' checksum) and
the settings they came from, and the sha256 of each picture answered, when a model's pass ends
(and, with no pictures yet, when a pass under a new version or settings begins). Each picture
answered or failed is also marked as soon as its record is written, under
``<group>/answers/<model>/`` (``_Answers``): a run killed mid-model leaves those marks, so its
re-run asks only about the pictures not marked, and workers sharing a group read each other's
failures there. A re-run therefore asks only about pictures a model has not answered (new,
changed, failed last time), and about every picture for a model whose version or settings
changed; a model reloaded during the run fails it. ret_meta.json is then assembled from those
records, validated against ``segcontract/schemas/ret_meta.schema.json`` and written atomically.

Badlisted images (the segment store's badlist, where there is a store) are left out. An
instance detection carries its review status where the store holds the same segment (same model,
class and mask); ``null`` elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from clients.inference.run import WRITERS, Writer, run_images, settings_not_taken
from clients.meta.config_file import Config, ModelEntry
from clients.segments.build import model_version, store_name
from clients.triton.client import INVALID_ARGUMENT, ClientError, ModelInfo
from clients.triton.image_sources import ImageItem, images_in_group, output_names
from clients.triton.replicas import Servers
from clients.triton.request_loop import RequestError, RunSummary, asking
from clients.triton.work_share import DEFAULT_LEASE_S, shared_work
from segcontract import schemas
from segcontract.files import remove_leftover_temps, write_json_atomic
from segcontract.tasks import Task
from segops.image_header import image_dimensions
from store.errors import StoreError
from store.layout import DB_ENV, DataLayout, database_url, group_index
from store.segment_store import name_keys

RET_META_FILE = "ret_meta.json"
FORMAT = "segstack.ret_meta/1"
MODEL_STAMP = "model.json"
ANSWERS = "answers"  # <group>/answers/<model>/<name>.json: what answered each picture (_Answers)

# what each task's per-image record holds that ret_meta keeps under the model's name
_RESULT_KEYS = {
    Task.INSTANCE: ("detections",),
    Task.SEMANTIC: ("mask", "color_mask", "classes"),
    Task.CLASSIFICATION: ("classes", "segment_model", "segments"),
}


@dataclass
class MetaSummary:
    group: str
    path: Path
    images: int = 0
    badlisted: int = 0
    per_model: dict[str, RunSummary] = field(default_factory=dict)
    failures: dict[str, dict[str, str]] = field(default_factory=dict)  # image → model → reason
    notes: list[str] = field(default_factory=list)  # what the user should know, one line each


@dataclass(frozen=True)
class _Picture:
    item: ImageItem
    name: str  # as ret_meta and the store name it
    sha256: str
    size: int
    width: int
    height: int


def ret_meta_path(layout: DataLayout, group: str) -> Path:
    return layout.ret_meta / group / RET_META_FILE


def model_folder(layout: DataLayout, group: str, model: str) -> Path:
    return layout.ret_meta / group / "models" / re.sub(r"[^A-Za-z0-9._-]", "_", model)


def answers_folder(layout: DataLayout, group: str, model: str) -> Path:
    return layout.ret_meta / group / ANSWERS / model_folder(layout, group, model).name


class _Answers:
    """One model's marks on a group's pictures: ``<name>.json`` per picture, written atomically
    once its record is written (or once it failed, with the reason), naming the sha256 of the
    bytes sent and the stamp (model, version, settings) they were asked under. A mark of another
    stamp says the record is not this stamp's answer. They sit beside ``models/`` (not among the
    records, where a picture's own name could clash with one)."""

    def __init__(
        self,
        folder: Path,
        model: str,
        version: str,
        settings: dict[str, Any],
        pictures: list[_Picture],
        names: dict[ImageItem, Path],
    ):
        self.folder = folder
        self.stamp = hashlib.sha256(
            json.dumps([model, version, settings], sort_keys=True).encode()
        ).hexdigest()[:32]
        self.names = names
        self.pictures = {p.item: p for p in pictures}
        self.by_path = {str(p.item.path): p.item for p in pictures}
        self.marked: set[ImageItem] = set()  # by this run
        self.started = time.time()
        remove_leftover_temps(folder)

    def _path(self, item: ImageItem) -> Path:
        return self.folder / f"{self.names[item]}.json"

    def answered(self, earlier: dict[str, str]) -> dict[str, str]:
        """Picture name → sha256 of the pictures answered under this stamp: by each one's mark,
        else (a folder an older meta build wrote, with no marks) by ``earlier``, model.json's."""
        answered = {}
        for item, picture in self.pictures.items():
            mark = _read(self._path(item))
            if mark is None:
                if picture.name in earlier:
                    answered[picture.name] = earlier[picture.name]
            elif mark.get("stamp") == self.stamp and "failed" not in mark:
                answered[picture.name] = mark.get("sha256")
        return answered

    def mark(self, item: ImageItem) -> dict | None:
        """``item``'s mark under this stamp, whoever wrote it; None where there is none."""
        mark = _read(self._path(item))
        return mark if mark is not None and mark.get("stamp") == self.stamp else None

    def failed_since(self, item: ImageItem, began: datetime) -> bool:
        """Whether ``item`` is marked failed under this stamp since ``began`` (the database's
        clock) or since this run started (this machine's, as the mark's time is: a skewed database
        clock cannot hide a failure met while this worker ran)."""
        path = self._path(item)
        mark = self.mark(item)
        try:
            since = min(began.timestamp(), self.started)
            return mark is not None and "failed" in mark and path.stat().st_mtime >= since
        except OSError:
            return False

    def write(self, item: ImageItem, data: bytes | None, failed: str | None = None) -> None:
        sha256 = hashlib.sha256(data).hexdigest() if data is not None else self.pictures[item].sha256
        mark = {"image": self.pictures[item].name, "sha256": sha256, "stamp": self.stamp}
        if failed is not None:
            mark["failed"] = failed
        write_json_atomic(self._path(item), mark)
        self.marked.add(item)

    def reporting(self, on_failure: Callable[[str, str], None]) -> Callable[[str, str], None]:
        """``on_failure`` that first marks the image failed, unless its writer did (a picture that
        could not even be read, a request that failed for want of a reply)."""

        def failed(image: str, reason: str) -> None:
            item = self.by_path.get(image)
            if item is not None and item not in self.marked:
                try:
                    self.write(item, None, reason)
                except OSError as exc:
                    raise ClientError(
                        f"cannot write results under {self.folder}: {exc.strerror or exc}"
                    ) from None
            on_failure(image, reason)

        return failed


class _Marking(Writer):
    """The writer of a model's task, marking each picture it answered or that the server refused
    (``_Answers``) before the request loop (and a shared run's claim) is done with it: a killed
    run loses only the pictures in flight, and another worker finds the failure."""

    def __init__(self, writer: Writer, answers: _Answers):
        super().__init__(writer.overrides)
        self.writer = writer
        self.answers = answers
        self.task = writer.task
        self.takes = writer.takes

    def __call__(
        self,
        client: Servers,
        model: ModelInfo,
        item: ImageItem,
        data: bytes,
        base: Path,
        overlay_path: Path | None,
    ) -> int:
        try:
            found = asking(client, model, lambda: self.writer(client, model, item, data, base, overlay_path))
        except RequestError as exc:
            if exc.status == INVALID_ARGUMENT:  # the image's own failure: no one asks again this run
                self.answers.write(item, data, str(exc))
            raise
        except ValueError as exc:  # this image's failure too (a picture the store does not know...)
            self.answers.write(item, data, str(exc))
            raise
        self.answers.write(item, data)
        return found

    def done(self, model: ModelInfo, item: ImageItem, path: Path) -> bool:
        return self.writer.done(model, item, path)

    def failed_since(self, item: ImageItem, began: datetime) -> bool:
        return self.answers.failed_since(item, began)


def check_entries(entries: tuple[ModelEntry, ...], infos: list[ModelInfo], config_path: Path | None) -> None:
    """Settings of a model that its task has no use for are a mistake in the file: say so."""
    where = f"{config_path}: " if config_path else ""
    for index, (entry, info) in enumerate(zip(entries, infos)):
        wrong, allowed = settings_not_taken(info.task, entry_settings(entry))
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
    progress: Callable[[str, int], Callable[[int], None]] = lambda desc, total: lambda n: None,
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
    store = _store(config, layout, summary.notes)
    try:
        return _build(group, config, client, infos, progress, on_failure, summary, items, store, lease_s)
    finally:
        if store is not None:
            store.close()


def _build(group, config, client, infos, progress, on_failure, summary, items, store, lease_s) -> MetaSummary:
    layout = config.layout
    badlist = store.badlist_names() if store is not None else set()
    kept = [i for i in items if not name_keys(store_name(i, layout)) & badlist]
    summary.badlisted = len(items) - len(kept)
    pictures, unreadable = _pictures(kept, layout)
    for path, reason in unreadable.items():
        summary.failures[path] = {"*": reason}
        on_failure(path, reason)
    items = [p.item for p in pictures]
    names = output_names(items)
    results: dict[str, dict[str, Any]] = {p.name: {} for p in pictures}
    sizes: dict[str, tuple[int, int]] = {}  # as the server decoded the picture
    models = []
    for entry, info in zip(config.models, infos):
        version = model_version(info)
        settings = entry_settings(entry)
        folder = model_folder(layout, group, entry.label)
        stamp = _read(folder / MODEL_STAMP) or {}
        same = (stamp.get("name"), stamp.get("version"), stamp.get("settings")) == (
            entry.name,
            version,
            settings,
        )
        answers = _Answers(
            answers_folder(layout, group, entry.label), entry.name, version, settings, pictures, names
        )
        if same:
            answered = answers.answered(stamp.get("images", {}))
        else:  # every picture again; from here on a killed pass resumes from the marks
            answered = {}
            write_json_atomic(
                folder / MODEL_STAMP,
                {"name": entry.name, "version": version, "settings": settings, "images": {}},
            )
        redo = {p.item.path for p in pictures if answered.get(p.name) != p.sha256}
        writer, todo = None, items
        if entry.segments:
            from clients.segments.sources import stored_segments

            todo, writer, _ = stored_segments(items, layout, config.db, entry.segment_model, entry.overrides)
        if writer is None and info.task in WRITERS:  # else run_images says what it cannot serve
            writer = WRITERS[info.task](entry.overrides)
        if writer is not None:
            writer = _Marking(writer, answers)
        job = (
            "meta build", group, entry.label, entry.name, version, json.dumps(settings, sort_keys=True),
            *sorted(p.name for p in pictures),
        )  # fmt: skip
        shared_url = database_url(config.db, layout) if store is not None else None
        with shared_work(shared_url, job, lease_s, batch=2 * config.concurrency) as share:
            run = run_images(
                client,
                info,
                todo,
                folder,
                concurrency=config.concurrency,
                overrides=entry.overrides,
                overwrite=not same,
                on_progress=progress(f"{group}: {entry.label}", len(todo)),
                on_failure=answers.reporting(
                    lambda image, reason, name=entry.label: on_failure(image, f"{name}: {reason}")
                ),
                writer=writer,
                redo=redo,
                share=share,
            )
        now = model_version(client.model_info(entry.name))
        if now != version:  # reloaded meanwhile: some answers may be the other version's
            raise ClientError(
                f"model {entry.name!r} changed while meta build asked it ({version} → {now}); run it again"
            )
        summary.per_model[entry.label] = run
        statuses = _statuses(store, entry.name) if info.task == Task.INSTANCE else {}
        done = {}
        for picture in pictures:
            mark = answers.mark(picture.item)  # another worker's answer or failure counts as this one's
            own = run.failed.get(str(picture.item.path))
            reason = mark.get("failed") if mark is not None else own
            if reason is not None:
                summary.failures.setdefault(picture.name, {})[entry.label] = reason
                if own is None:  # met by another worker sharing the group: this report names it too
                    on_failure(str(picture.item.path), f"{entry.label}: {reason} (met by another worker)")
                continue
            record_path = folder / f"{names[picture.item]}.json"
            record = _read(record_path)
            if record is None:
                continue
            done[picture.name] = picture.sha256
            sizes.setdefault(picture.name, (record["width"], record["height"]))
            results[picture.name][entry.label] = _result(
                record, record_path, info, summary.path.parent, statuses, store_name(picture.item, layout)
            )
        write_json_atomic(
            folder / MODEL_STAMP,
            {"name": entry.name, "version": version, "settings": settings, "images": done},
        )
        models.append(_model_facts(entry, info, version))
    pictures = [
        replace(p, width=sizes[p.name][0], height=sizes[p.name][1]) if p.name in sizes else p
        for p in pictures
    ]
    document = {
        "format": FORMAT,
        "group": group,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "models": models,
        "images": [_image_entry(p, group, layout, results[p.name]) for p in pictures],
    }
    if summary.failures:
        document["failures"] = summary.failures
    errors = sorted(Draft202012Validator(schemas.load("ret_meta")).iter_errors(document), key=str)
    if errors:  # a bug of ours, not the user's: say where
        raise ClientError(
            f"{summary.path}: not written, it would break the ret_meta schema: {errors[0].message}"
        )
    write_json_atomic(summary.path, document)
    summary.images = len(pictures)
    return summary


def _store(config: Config, layout: DataLayout, notes: list[str]):
    """The segment store (its badlist and review states). Where none was named and the default
    SQLite file is not there, None, with a note saying what that means; a named one must exist."""
    from store.segment_store import SegmentStore

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


def _statuses(store, model: str) -> dict[tuple[str, int, str], str]:
    if store is None:
        return {}
    return {(s.image, s.class_id, s.rle["counts"]): s.status.value for s in store.segments(model=model)}


def _pictures(items: list[ImageItem], layout: DataLayout) -> tuple[list[_Picture], dict[str, str]]:
    pictures, unreadable = [], {}
    for item in items:
        try:
            data = item.path.read_bytes()
        except OSError as exc:
            unreadable[item.relative.as_posix()] = f"cannot read: {exc.strerror or exc}"
            continue
        size = image_dimensions(data) or _decoded_size(data)
        if size is None:
            unreadable[item.relative.as_posix()] = "not a decodable image"
            continue
        name = item.relative.as_posix()
        pictures.append(_Picture(item, name, hashlib.sha256(data).hexdigest(), len(data), *size))
    return pictures, unreadable


def _decoded_size(data: bytes) -> tuple[int, int] | None:
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return None if image is None else (int(image.shape[1]), int(image.shape[0]))


def _read(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _result(record: dict, record_path: Path, info: ModelInfo, base: Path, statuses: dict, name: str) -> dict:
    """What ret_meta keeps of a per-image record: the task's outputs, a detection's review status,
    a mask's path relative to ret_meta.json."""
    result = {k: record[k] for k in _RESULT_KEYS[Task(info.task)] if k in record}
    if info.task == Task.INSTANCE:
        for detection in result["detections"]:
            detection["status"] = statuses.get(
                (name, detection["class_id"], detection["segmentation"]["counts"])
            )
    elif info.task == Task.SEMANTIC:
        for key in ("mask", "color_mask"):
            result[key] = (record_path.parent / record[key]).relative_to(base).as_posix()
    return result


def entry_settings(entry: ModelEntry) -> dict[str, Any]:
    """What the configuration asks of a model beyond its name: part of what its answers depend on."""
    return {k: v for k, v in vars(entry).items() if k not in ("name", "key") and v not in (None, False)}


def _model_facts(entry: ModelEntry, info: ModelInfo, version: str) -> dict:
    settings = entry_settings(entry)
    facts = {
        "key": entry.label,
        "name": info.name,
        "task": info.task,
        "version": version,
        "family": info.metadata.family,
        "class_names": info.class_names,
        "versions": dict(info.metadata.versions),
        "settings": settings,
    }
    if weights := info.metadata.checksums.get("weights_sha256"):
        facts["weights_sha256"] = weights
    return facts


def _image_entry(picture: _Picture, group: str, layout: DataLayout, results: dict) -> dict:
    meta = _read(layout.meta / Path(picture.name).with_suffix(".json")) or {}
    if meta.get("picture") not in (None, picture.name):  # a.json is a.png's meta, not a.jpg's
        meta = {}
    groups = meta.get("groups") if isinstance(meta.get("groups"), list) else []
    entry = {
        "image": picture.name,
        "width": picture.width,
        "height": picture.height,
        "sha256": picture.sha256,
        "size": picture.size,
        "groups": sorted({*map(str, groups), group}),
        "results": results,
    }
    if meta:
        entry["meta"] = meta
    return entry
