"""``ret_meta.json`` itself: a group's pictures with their facts and every model's results,
checked against ``segcontract/schemas/ret_meta.schema.json`` before it is written (atomically)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from clients.meta.config_file import ModelEntry
from clients.meta.layout import read_json
from clients.meta.pictures import Picture
from clients.triton.client import ClientError, ModelInfo
from segcontract import schemas
from segcontract.files import write_json_atomic
from segcontract.tasks import Task
from store.layout import DataLayout

FORMAT = "segstack.ret_meta/1"

# what each task's per-image record holds that ret_meta keeps under the model's name
_RESULT_KEYS = {
    Task.INSTANCE: ("detections",),
    Task.SEMANTIC: ("mask", "color_mask", "classes"),
    Task.CLASSIFICATION: ("classes", "segment_model", "segments"),
}


def result_entry(
    record: dict, record_path: Path, info: ModelInfo, base: Path, statuses: dict, name: str
) -> dict:
    """What ret_meta keeps of a per-image record: the task's outputs, a detection's review status
    (``statuses``: by store name, class and mask), a mask's path relative to ``base``, the folder
    of ret_meta.json."""
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


def model_facts(entry: ModelEntry, info: ModelInfo, version: str) -> dict:
    facts = {
        "key": entry.label,
        "name": info.name,
        "task": info.task,
        "version": version,
        "family": info.metadata.family,
        "class_names": info.class_names,
        "versions": dict(info.metadata.versions),
        "settings": entry.settings,
    }
    if weights := info.metadata.checksums.get("weights_sha256"):
        facts["weights_sha256"] = weights
    return facts


def write_ret_meta(
    path: Path,
    *,
    group: str,
    layout: DataLayout,
    models: list[dict],
    pictures: list[Picture],
    results: dict[str, dict[str, Any]],
    failures: dict[str, dict[str, str]],
) -> None:
    """Assemble the document, refuse it if it breaks the schema (a bug of ours), write it."""
    document = {
        "format": FORMAT,
        "group": group,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "models": models,
        "images": [_image_entry(p, group, layout, results[p.name]) for p in pictures],
    }
    if failures:
        document["failures"] = failures
    errors = sorted(Draft202012Validator(schemas.load("ret_meta")).iter_errors(document), key=str)
    if errors:  # a bug of ours, not the user's: say where
        raise ClientError(f"{path}: not written, it would break the ret_meta schema: {errors[0].message}")
    write_json_atomic(path, document)


def _image_entry(picture: Picture, group: str, layout: DataLayout, results: dict) -> dict:
    meta = read_json(layout.meta / Path(picture.name).with_suffix(".json")) or {}
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
