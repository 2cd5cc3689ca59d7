"""Where ``meta build`` keeps a group's files under ``<ret_meta>/<group>/``, and how it reads its
own JSON files back."""

from __future__ import annotations

import json
import re
from pathlib import Path

from store.layout import DataLayout

RET_META_FILE = "ret_meta.json"
MODEL_STAMP = "model.json"  # in a model's folder: the version and settings its records came from
ANSWERS = "answers"  # <group>/answers/<model>/<name>.json: what answered each picture


def ret_meta_path(layout: DataLayout, group: str) -> Path:
    return layout.ret_meta / group / RET_META_FILE


def model_folder(layout: DataLayout, group: str, model: str) -> Path:
    """``<group>/models/<model>/``: the per-image records of one model (its label in ret_meta)."""
    return layout.ret_meta / group / "models" / re.sub(r"[^A-Za-z0-9._-]", "_", model)


def answers_folder(layout: DataLayout, group: str, model: str) -> Path:
    return layout.ret_meta / group / ANSWERS / model_folder(layout, group, model).name


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``; None where there is none (missing, unreadable, not an object):
    every file here is written atomically, so such a file is not ours."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
