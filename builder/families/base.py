"""What a model family must provide to the builder. Adding a family touches no other family."""

from __future__ import annotations

import importlib.metadata
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from builder.errors import BuildError
from builder.model_folder import ModelFolder
from builder.probe_images import probe_images
from builder.quantization.agreement import Agreement
from builder.settings import BuildSettings, LoadRequest
from segcontract.model_metadata import ModelMetadata, Thresholds
from segcontract.tasks import Task
from segcontract.tensors import TensorSpec
from segops.resize import InputSpec, prepare


@dataclass
class LoadedModel:
    """A checkpoint loaded and prepared for export, with what its model record needs."""

    module: torch.nn.Module  # eval mode, takes ``input_names`` and returns ``output_names``
    class_names: list[str]
    input_size: tuple[int, int]  # (height, width) of the exported network's input
    source: str  # the weights file (or hub name) it came from
    input_names: list[str]
    output_names: list[str]
    input_spec: InputSpec | None = None  # how the server prepares an image; None: the family's rule
    colors: list[list[int]] = field(default_factory=list)  # RGB per class, where the checkpoint has them
    versions: dict[str, str] = field(default_factory=dict)  # the family's frameworks: {"ultralytics": ...}
    weights_sha256: str = ""  # of the file loaded ("" when there was none)
    extra: dict[str, str | int | float] = field(default_factory=dict)  # family facts: arch, stride...


class ModelFamily(ABC):
    name: str
    task: Task
    model_names_help: str
    # python_backend_models/<this>.py: the ensemble in one Python model, where the runtime is a
    # Python-backend one too (builder.one_model); None: this family always serves its ensemble
    one_model_source: str | None = None
    # where the network takes images padded only to its stride (LoadRequest.rect): per ONNX tensor,
    # its axes (other than the batch) that then vary, with their names; None: one input shape
    rect_axes: ClassVar[dict[str, dict[int, str]] | None] = None

    @abstractmethod
    def matches(self, model_name: str) -> bool:
        """Whether ``--model model_name`` names a model of this family."""

    @abstractmethod
    def load(self, request: LoadRequest) -> LoadedModel: ...

    @abstractmethod
    def input_spec(self, loaded: LoadedModel) -> InputSpec:
        """How the server's preprocess model prepares an image for this network."""

    @abstractmethod
    def sample_inputs(self, loaded: LoadedModel) -> list[np.ndarray]:
        """A few inputs to check the ONNX model against PyTorch."""

    @abstractmethod
    def server_models(
        self,
        loaded: LoadedModel,
        model_io: tuple[list[TensorSpec], list[TensorSpec]],
        settings: BuildSettings,
    ) -> list[ModelFolder]:
        """Everything but ``<name>_model``: pre/post-processing and the ensemble ``<name>``."""

    def int8_agreement(
        self,
        loaded: LoadedModel,
        settings: BuildSettings,
        inputs: list[np.ndarray],
        fp32: list[list[np.ndarray]],
        int8: list[list[np.ndarray]],
    ) -> Agreement:
        """How far the INT8 network's answers on ``inputs`` (prepared, a batch of one each) are from
        FP32's, as this family's users measure it (builder.quantization.agreement): the --int8 guard."""
        raise BuildError(f"--int8: the {self.name} family has no accuracy measure to guard INT8 with")

    def int8_float_scope(self, loaded: LoadedModel) -> list[str]:
        """Patterns of the network's node names that INT8 leaves in floating point."""
        return []

    def folder_names(self, name: str, one_model: bool) -> list[str]:
        """The model folders a build named ``name`` writes (``one_model``: its ensemble folded into
        one Python model, builder.one_model), known before anything is loaded, so that a
        destination build-repo may not write is refused before the slow steps."""
        if one_model:
            return [name]
        return [name, f"{name}_preprocess", f"{name}_model", f"{name}_postprocess"]

    def metadata(self, loaded: LoadedModel, settings: BuildSettings) -> ModelMetadata:
        """The record the served models carry (segcontract.model_metadata); thresholds where the
        task has them."""
        thresholds = Thresholds(settings.conf, settings.iou, settings.max_det)
        return ModelMetadata(
            family=self.name,
            task=self.task,
            class_names=list(loaded.class_names),
            input=self.input_spec(loaded),
            colors=[list(c) for c in loaded.colors],
            thresholds=thresholds if self.task is Task.INSTANCE else None,
            max_pixels=settings.max_pixels,
            versions={"segstack": _segstack_version(), **loaded.versions},
            checksums={"weights_sha256": loaded.weights_sha256} if loaded.weights_sha256 else {},
            source_weights=Path(loaded.source).name,
            extra=dict(loaded.extra),
        )


class RecordedInputFamily(ModelFamily):
    """A family whose checkpoint records how its images are prepared (size, resize, mean, std,
    layout): the loaded model carries that spec, and the ONNX check feeds it probe images prepared
    by it, at the input size and at two smaller ones (a batch of two, then one)."""

    def input_spec(self, loaded: LoadedModel) -> InputSpec:
        if loaded.input_spec is None:
            raise ValueError(f"a {self.name} LoadedModel carries its input spec (mean, std, layout)")
        return loaded.input_spec

    def sample_inputs(self, loaded: LoadedModel) -> list[np.ndarray]:
        spec = self.input_spec(loaded)
        h, w = loaded.input_size
        batch = [prepare(image, spec) for image in probe_images([(h, w), (h // 2, w), (h, w // 2)])]
        return [np.stack(batch[:2]), batch[2][None]]


def _segstack_version() -> str:
    try:
        return importlib.metadata.version("segstack")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"
