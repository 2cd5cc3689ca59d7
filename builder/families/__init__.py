"""Registry of model families; ``resolve`` picks the one a ``--model`` name belongs to."""

from __future__ import annotations

from builder.errors import BuildError
from builder.families.base import BuildSettings, LoadedModel, LoadRequest, ModelFamily
from builder.families.smp_semantic import SmpSemanticFamily
from builder.families.yolo_seg import YoloSegFamily

FAMILIES: list[ModelFamily] = [YoloSegFamily(), SmpSemanticFamily()]


def resolve(model_name: str) -> ModelFamily:
    for family in FAMILIES:
        if family.matches(model_name):
            return family
    known = "; ".join(f"{f.name}: {f.model_names_help}" for f in FAMILIES)
    raise BuildError(f"--model {model_name!r} matches no model family ({known})")


__all__ = ["FAMILIES", "BuildSettings", "LoadRequest", "LoadedModel", "ModelFamily", "resolve"]
