"""``seg-client meta build``: ``<ret_meta>/<group>/ret_meta.json``, every image of a group with its
facts and the outputs of every configured model.

Each model's answers are first written per image under ``<group>/models/<model>/`` by the same
writers and request loop as ``infer`` (so every answer is written atomically and a killed run
keeps what it finished); ``model.json`` there records the version (the weights' checksum) they
came from. A re-run therefore asks only for images new to a model, images whose picture changed
(its sha256 differs from the one the last ret_meta.json recorded), and every image of a model
whose version changed. ret_meta.json is then assembled from those records, validated against
``segcontract/schemas/ret_meta.schema.json`` and written atomically.

Badlisted images (the segment store's badlist, where there is a store) are left out. An
instance detection carries its review status where the store holds the same segment (same model,
class and mask); ``null`` elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from clients.config_file import Config, ModelEntry
from clients.image_sources import ImageItem, images_in_group, output_names
from clients.infer_run import FAILURES_FILE, run_images
from clients.request_loop import RunSummary
from clients.segments_build import model_version, store_name
from clients.triton import ClientError, ModelInfo, SegmentationClient
from segcontract import schemas
from segcontract.files import write_json_atomic
from segcontract.tasks import Task
from segops.image_header import image_dimensions
from store.errors import StoreError
from store.layout import DataLayout, database_url
from store.segment_store import name_keys

RET_META_FILE = "ret_meta.json"
FORMAT = "segstack.ret_meta/1"
MODEL_STAMP = "model.json"

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


def check_entries(entries: tuple[ModelEntry, ...], infos: list[ModelInfo], config_path: Path | None) -> None:
    """Settings of a model that its task has no use for are a mistake in the file: say so."""
    where = f"{config_path}: " if config_path else ""
    for index, (entry, info) in enumerate(zip(entries, infos)):
        given = {k: v for k, v in vars(entry).items() if k not in ("name", "key") and v not in (None, False)}
        allowed = {
            Task.INSTANCE: {"conf", "iou", "max_det"},
            Task.SEMANTIC: set(),
            Task.CLASSIFICATION: {"top_k", "segments", "segment_model"},
        }[Task(info.task)]
        wrong = sorted(set(given) - allowed)
        if wrong:
            raise ClientError(
                f"{where}models[{index}].{wrong[0]}: {entry.name!r} serves {info.task}, which takes "
                f"{', '.join(sorted(allowed)) or 'no settings'}"
            )
        if entry.segment_model and not entry.segments:
            raise ClientError(f"{where}models[{index}].segment_model goes with segments: true")


def build_meta(
    group: str,
    config: Config,
    client: SegmentationClient,
    infos: list[ModelInfo],
    progress: Callable[[str, int], Callable[[int], None]] = lambda desc, total: lambda n: None,
    on_failure: Callable[[str, str], None] = lambda image, reason: None,
) -> MetaSummary:
    """Build one group's ret_meta.json with the models ``infos`` (``config.models``, in order)."""
    layout = config.layout
    summary = MetaSummary(group, ret_meta_path(layout, group))
    items = images_in_group(group, layout)
    if not items:
        raise ClientError(f"group {group!r} lists no images")
    store = _store(config, layout)
    try:
        return _build(group, config, client, infos, progress, on_failure, summary, items, store)
    finally:
        if store is not None:
            store.close()


def _build(group, config, client, infos, progress, on_failure, summary, items, store) -> MetaSummary:
    layout = config.layout
    badlist = store.badlist_names() if store is not None else set()
    kept = [i for i in items if not name_keys(store_name(i, layout)) & badlist]
    summary.badlisted = len(items) - len(kept)
    pictures, unreadable = _pictures(kept, layout)
    for path, reason in unreadable.items():
        summary.failures[path] = {"*": reason}
        on_failure(path, reason)
    previous = _previous_shas(summary.path)
    redo = {p.item.path for p in pictures if previous.get(p.name, p.sha256) != p.sha256}
    items = [p.item for p in pictures]
    names = output_names(items)
    results: dict[str, dict[str, Any]] = {p.name: {} for p in pictures}
    models = []
    for entry, info in zip(config.models, infos):
        version = model_version(info)
        folder = model_folder(layout, group, entry.label)
        changed = _stamped_version(folder) not in (None, version)
        writer, todo = None, items
        if entry.segments:
            from clients.segment_sources import stored_segments

            todo, writer, _ = stored_segments(items, layout, config.db, entry.segment_model, entry.overrides)
        run = run_images(
            client,
            info,
            todo,
            folder,
            concurrency=config.concurrency,
            overrides=entry.overrides,
            overwrite=changed,
            on_progress=progress(f"{group}: {entry.label}", len(todo)),
            on_failure=lambda image, reason, name=entry.label: on_failure(image, f"{name}: {reason}"),
            writer=writer,
            redo=redo,
        )
        write_json_atomic(folder / MODEL_STAMP, {"name": entry.name, "version": version})
        summary.per_model[entry.label] = run
        statuses = _statuses(store, entry.name) if info.task == Task.INSTANCE else {}
        for picture in pictures:
            reason = run.failed.get(str(picture.item.path))
            if reason is not None:
                summary.failures.setdefault(picture.name, {})[entry.label] = reason
                continue
            record_path = folder / f"{names[picture.item]}.json"
            record = _read(record_path)
            if record is not None:
                results[picture.name][entry.label] = _result(
                    record, record_path, info, summary.path.parent, statuses, picture.name
                )
        models.append(_model_facts(entry, info, version))
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


def _store(config: Config, layout: DataLayout):
    """The segment store when there is one (its badlist and review states); None otherwise."""
    from store.segment_store import SegmentStore

    url = database_url(config.db, layout)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
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


def _previous_shas(path: Path) -> dict[str, str]:
    """Image → sha256 as the last ret_meta.json recorded them (an image whose picture changed since
    is asked again)."""
    document = _read(path) or {}
    return {i["image"]: i["sha256"] for i in document.get("images", []) if "image" in i and "sha256" in i}


def _stamped_version(folder: Path) -> str | None:
    stamp = _read(folder / MODEL_STAMP)
    if stamp is None:
        has_records = folder.is_dir() and any(p.name != FAILURES_FILE for p in folder.glob("*.json"))
        return "unknown" if has_records else None  # records of an unknown version: redo them
    return stamp.get("version")


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


def _model_facts(entry: ModelEntry, info: ModelInfo, version: str) -> dict:
    settings = {k: v for k, v in vars(entry).items() if k not in ("name", "key") and v not in (None, False)}
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
