"""Registry of model families; ``resolve`` picks the one a ``--model`` name belongs to."""

from __future__ import annotations

from builder.errors import BuildError
from builder.families.base import LoadedModel, ModelFamily
from builder.families.classifier import ClassifierFamily
from builder.families.smp_semantic import SmpSemanticFamily
from builder.families.yolo_seg import YoloSegFamily
from builder.settings import BuildSettings, LoadRequest
from segcontract.registry import Registry

FAMILIES: Registry[ModelFamily] = Registry("model family", error=BuildError)
FAMILIES.register(YoloSegFamily())
FAMILIES.register(SmpSemanticFamily())
FAMILIES.register(ClassifierFamily())


def resolve(model_name: str) -> ModelFamily:
    """Families are chosen by the model names they match, not by their own name."""
    for family in FAMILIES.values():
        if family.matches(model_name):
            return family
    known = "; ".join(f"{f.name}: {f.model_names_help}" for f in FAMILIES.values())
    raise BuildError(f"--model {model_name!r} matches no model family ({known})")


__all__ = ["FAMILIES", "BuildSettings", "LoadRequest", "LoadedModel", "ModelFamily", "resolve"]
