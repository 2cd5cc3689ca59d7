"""The JSON Schemas of the records segstack writes, shipped in ``segcontract/schemas/`` (package
data, so every side validates against the same files):

- ``image_record``: the per-image ``<name>.json`` of ``seg-client infer`` (instance, semantic,
  classification, or the classes of stored segments);
- ``ret_meta``: ``ret_meta.json`` of ``seg-client meta build``;
- ``ret_meta_ack``: the metadata service's acknowledgement of one chunk ``seg-client meta post``
  sent (what counts as acknowledged);
- ``segstack_config``: ``segstack.yaml``, the configuration of ``seg-client meta``;
- ``model_metadata``: :class:`segcontract.model_metadata.ModelMetadata`, the model record;
- ``engine_record``: :class:`segcontract.engines.EngineRecord`, ``engine.json`` beside a plan.
- ``run_record``: ``run.json`` in a ``seg-train`` run's folder (``training/run_record.py``): the
  command, arguments, dataset hash, versions, git commit, times, status and final metrics.

Only the locating and loading is here (standard library); the validating is ``jsonschema``'s
(Draft 2020-12), in the clients and the tests.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).parent / "schemas"
SUFFIX = ".schema.json"


def names() -> list[str]:
    """Every schema shipped, by name."""
    return sorted(p.name[: -len(SUFFIX)] for p in SCHEMA_DIR.glob(f"*{SUFFIX}"))


def path(name: str) -> Path:
    """The file of schema ``name``; KeyError naming the choices when there is none."""
    file = SCHEMA_DIR / f"{name}{SUFFIX}"
    if not file.is_file():
        raise KeyError(f"no schema {name!r}; choose one of {', '.join(names())}")
    return file


@cache
def _load(name: str) -> str:
    return path(name).read_text()


def load(name: str) -> dict[str, Any]:
    """Schema ``name`` as a dict (a fresh copy each time)."""
    return json.loads(_load(name))
