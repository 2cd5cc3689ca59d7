"""Validate written records against the JSON Schemas of segcontract/schemas/."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator

from segcontract import schemas

NOT_IMAGE_RECORDS = {"failures.json"}


def validate(record: dict, schema: str) -> None:
    """Raise jsonschema.ValidationError when ``record`` does not follow schema ``schema``."""
    loaded = schemas.load(schema)
    Draft202012Validator.check_schema(loaded)
    Draft202012Validator(loaded).validate(record)


def validate_image_records(folder: Path) -> int:
    """Every per-image ``*.json`` below ``folder`` (not failures.json) against image_record;
    returns how many, and fails when there are none."""
    paths = [p for p in Path(folder).rglob("*.json") if p.name not in NOT_IMAGE_RECORDS]
    for p in paths:
        validate(json.loads(p.read_text()), "image_record")
    assert paths, f"no per-image records below {folder}"
    return len(paths)


def validate_run_record(run_dir: Path, trainer: str, status: str = "finished") -> dict:
    """``<run_dir>/run.json`` of a seg-train run, checked against run_record; returns it."""
    record = json.loads((Path(run_dir) / "run.json").read_text())
    validate(record, "run_record")
    assert (record["trainer"], record["status"]) == (trainer, status), record
    assert record["run_dir"] == str(run_dir) and record["ended_at"] is not None
    return record
