"""What a model family must provide to the builder. Adding a family touches no other family."""

from __future__ import annotations

import importlib.metadata
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from builder.errors import BuildError
from builder.model_folder import ModelFolder
from builder.tensorrt.options import DEFAULT_MAX_BATCH
from segcontract.limits import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET, DEFAULT_MAX_PIXELS
from segcontract.model_metadata import ModelMetadata, Thresholds
from segcontract.tasks import Task
from segcontract.tensors import TensorSpec
from segops.resize import InputSpec

MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass
class LoadRequest:
    """What the user asked for; each family uses the parts that apply to it."""

    model: str
    weights: Path | None = None
    imgsz: int | None = None  # square input size
    size: tuple[int, int] | None = None  # (width, height) input size
    nhwc: bool = False  # NHWC input named input_1, as the seeds' TensorRT commands expect
    arch: str | None = None  # overrides of what a checkpoint records
    encoder: str | None = None
    trust_checkpoint: bool = False  # load with the full unpickler (runs code the file holds)


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


@dataclass
class BuildSettings:
    """The options of a build that families and runtimes need."""

    name: str
    max_batch_size: int = DEFAULT_MAX_BATCH
    conf: float = DEFAULT_CONF
    iou: float = DEFAULT_IOU
    max_det: int = DEFAULT_MAX_DET  # the default and the ceiling of a request's max_det
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are refused before decoding
    instances: int = 1
    max_queue_delay_us: int = 0

    def __post_init__(self) -> None:
        if not MODEL_NAME.match(self.name):
            raise BuildError(
                f"--name {self.name!r}: use letters, digits, '_', '-' and '.' (it is a folder name)"
            )
        if self.max_pixels < 1:
            raise BuildError(f"--max-pixels {self.max_pixels}: must be at least 1")


class ModelFamily(ABC):
    name: str
    task: Task
    model_names_help: str

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


def _segstack_version() -> str:
    try:
        return importlib.metadata.version("segstack")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"
