"""What a served model says about itself: ONE versioned record, carried as one JSON parameter.

build-repo writes :class:`ModelMetadata` into the ``segstack_metadata`` parameter of the ensemble
and of its preprocess and postprocess models; the Python-backend models (input spec, thresholds,
pixel limit) and the clients (task, class names, colours, input size) read it from there, so
nothing is turned into a string and parsed back field by field. The same facts are also written
as individual parameters (``task``, ``class_names``, ``conf``, ...): that is what a Triton operator
sees in config.pbtxt, and what repositories built before the record carry
(:meth:`ModelMetadata.from_parameters` still reads those). Its JSON Schema is
``segcontract/schemas/model_metadata.schema.json``.

``schema_version`` grows when a field changes meaning or goes away; a reader refuses records of a
newer version and ignores fields it does not know (added without a version bump).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from segcontract.errors import SegstackError
from segcontract.limits import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET, DEFAULT_MAX_PIXELS
from segcontract.tasks import Task

SCHEMA_VERSION = 1


class ConfigKeys:
    """The config.pbtxt parameter keys segstack writes and reads."""

    METADATA = "segstack_metadata"  # the one record (JSON): what our code reads
    # the same facts, one parameter each: what an operator reads
    FAMILY = "family"
    TASK = "task"
    CLASS_NAMES = "class_names"  # JSON list
    COLORS = "colors"  # JSON list of [r, g, b]
    INPUT_HEIGHT = "input_height"
    INPUT_WIDTH = "input_width"
    RESIZE = "resize"
    MEAN = "mean"  # "r,g,b"
    STD = "std"
    LAYOUT = "layout"
    CONF = "conf"  # also the request parameters that override them
    IOU = "iou"
    MAX_DET = "max_det"
    MAX_PIXELS = "max_pixels"
    NUM_CLASSES = "num_classes"
    SOURCE_WEIGHTS = "source_weights"
    VERSION_SUFFIX = "_version"  # "<framework>_version", e.g. ultralytics_version
    # one model's own parameters (they differ between the models of one ensemble)
    OUTPUT_NAME = "output_name"  # preprocess: the network input it fills
    LOGITS_NAME = "logits_name"  # semantic postprocess: the network output it reads
    LOGITS_LAYOUT = "logits_layout"
    # the network step's module (python_backend_models/<this>.py) a one-process model imports
    NETWORK_MODULE = "network_module"


METADATA_KEY = ConfigKeys.METADATA
RESIZE_MODES = ("letterbox", "stretch")
LAYOUTS = ("CHW", "HWC")


class MetadataError(SegstackError, ValueError):
    """A record (or a config's parameters) that does not describe a segstack model."""


def _triple(values: Sequence[float], what: str) -> tuple[float, float, float]:
    if len(values) != 3:
        raise MetadataError(f"{what} needs 3 values (R, G, B), got {list(values)}")
    return (float(values[0]), float(values[1]), float(values[2]))


@dataclass(frozen=True)
class InputSpec:
    """How an image becomes the network's input (see :mod:`segops.resize`, which applies it):
    resized by ``resize`` to ``height`` × ``width``, RGB, /255, ``(x - mean) / std``, ``layout``.

    ``stride`` (letterbox only): pad each image only up to a multiple of it, as ultralytics'
    ``predict`` does on a .pt (its ``rect`` input), so a wide image costs the network fewer pixels;
    the network then takes any height and width up to ``height`` × ``width``. None: pad to the
    full ``height`` × ``width``, the one shape a batched ensemble's tensors can have."""

    height: int
    width: int
    resize: str = "letterbox"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: str = "CHW"
    stride: int | None = None

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, not {self.resize!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be CHW or HWC, not {self.layout!r}")
        if self.stride is not None:
            if self.resize != "letterbox" or self.stride < 1:
                raise ValueError(f"stride {self.stride}: a positive stride goes with resize letterbox")
            if self.height % self.stride or self.width % self.stride:
                raise ValueError(f"{self.height}x{self.width} is not a multiple of stride {self.stride}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """The input's shape (with a ``stride``, the largest it can be)."""
        return (3, self.height, self.width) if self.layout == "CHW" else (self.height, self.width, 3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "width": self.width,
            "resize": self.resize,
            "mean": list(self.mean),
            "std": list(self.std),
            "layout": self.layout,
            **({"stride": self.stride} if self.stride is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSpec:
        return cls(
            int(data["height"]),
            int(data["width"]),
            data.get("resize", "letterbox"),
            _triple(data.get("mean", cls.mean), "mean"),
            _triple(data.get("std", cls.std), "std"),
            data.get("layout", "CHW"),
            int(data["stride"]) if data.get("stride") is not None else None,
        )

    def to_parameters(self) -> dict[str, str]:
        """The individual config parameters (operators read them; our code reads the record)."""
        return {
            ConfigKeys.INPUT_HEIGHT: str(self.height),
            ConfigKeys.INPUT_WIDTH: str(self.width),
            ConfigKeys.RESIZE: self.resize,
            ConfigKeys.MEAN: ",".join(map(str, self.mean)),
            ConfigKeys.STD: ",".join(map(str, self.std)),
            ConfigKeys.LAYOUT: self.layout,
        }

    @classmethod
    def from_parameters(cls, params: Mapping[str, str]) -> InputSpec:
        """The spec of a config: from its record, else (built before the record) from the
        individual parameters."""
        if METADATA_KEY in params:
            return ModelMetadata.from_json(params[METADATA_KEY]).input

        def triple(key: str, default: Sequence[float]) -> tuple[float, float, float]:
            return _triple(params[key].split(",") if key in params else default, key)

        return cls(
            int(params[ConfigKeys.INPUT_HEIGHT]),
            int(params[ConfigKeys.INPUT_WIDTH]),
            params.get(ConfigKeys.RESIZE, "letterbox"),
            triple(ConfigKeys.MEAN, cls.mean),
            triple(ConfigKeys.STD, cls.std),
            params.get(ConfigKeys.LAYOUT, "CHW"),
        )


@dataclass(frozen=True)
class Thresholds:
    """The served defaults of an instance model (a request may override them; max_det is also
    the ceiling of a request's max_det)."""

    conf: float = DEFAULT_CONF
    iou: float = DEFAULT_IOU
    max_det: int = DEFAULT_MAX_DET

    def __post_init__(self) -> None:
        # typed as given: a request override is cast to each default's type
        object.__setattr__(self, "conf", float(self.conf))
        object.__setattr__(self, "iou", float(self.iou))
        object.__setattr__(self, "max_det", int(self.max_det))

    def to_dict(self) -> dict[str, float | int]:
        return {ConfigKeys.CONF: self.conf, ConfigKeys.IOU: self.iou, ConfigKeys.MAX_DET: self.max_det}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Thresholds:
        return cls(float(data[ConfigKeys.CONF]), float(data[ConfigKeys.IOU]), int(data[ConfigKeys.MAX_DET]))


@dataclass(frozen=True)
class ModelMetadata:
    """Everything a served model's clients and server-side steps need to know about it."""

    family: str  # the builder's family name ("yolov8-seg", "smp")
    task: Task
    class_names: list[str]
    input: InputSpec
    colors: list[list[int]] = field(default_factory=list)  # RGB per class; empty: none recorded
    thresholds: Thresholds | None = None  # where the task has them (instance segmentation)
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are refused before decoding
    # the model version: {"segstack": build-repo's version, "ultralytics": the family's framework...}
    versions: dict[str, str] = field(default_factory=dict)
    # sha256 hex digests: {"weights_sha256": of the file the model came from, "onnx_sha256": ...}
    checksums: dict[str, str] = field(default_factory=dict)
    source_weights: str = ""  # the weights file's name
    extra: dict[str, str | int | float] = field(default_factory=dict)  # family facts: arch, encoder, stride
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", Task(self.task))
        if self.colors and len(self.colors) != len(self.class_names):
            raise MetadataError(f"{len(self.class_names)} classes but {len(self.colors)} colours")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "family": self.family,
            "task": self.task.value,
            "class_names": list(self.class_names),
            "colors": [list(c) for c in self.colors],
            "input": self.input.to_dict(),
            "thresholds": self.thresholds.to_dict() if self.thresholds else None,
            "max_pixels": self.max_pixels,
            "versions": dict(self.versions),
            "checksums": dict(self.checksums),
            "source_weights": self.source_weights,
            "extra": dict(self.extra),
        }

    def to_json(self) -> str:
        """One line (it is one config.pbtxt string)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelMetadata:
        version = data.get("schema_version")
        if not isinstance(version, int) or version < 1:
            raise MetadataError(f"not a segstack model record (schema_version {version!r})")
        if version > SCHEMA_VERSION:
            raise MetadataError(
                f"model record of schema version {version}, newer than this segstack's "
                f"{SCHEMA_VERSION}: upgrade segstack"
            )
        try:
            thresholds = data.get("thresholds")
            return cls(
                family=str(data["family"]),
                task=Task(data["task"]),
                class_names=[str(n) for n in data["class_names"]],
                input=InputSpec.from_dict(data["input"]),
                colors=[[int(v) for v in c] for c in data.get("colors", [])],
                thresholds=Thresholds.from_dict(thresholds) if thresholds else None,
                max_pixels=int(data.get("max_pixels", DEFAULT_MAX_PIXELS)),
                versions={str(k): str(v) for k, v in data.get("versions", {}).items()},
                checksums={str(k): str(v) for k, v in data.get("checksums", {}).items()},
                source_weights=str(data.get("source_weights", "")),
                extra=dict(data.get("extra", {})),
                schema_version=version,
            )
        except MetadataError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise MetadataError(f"unreadable model record ({type(exc).__name__}: {exc})") from None

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise MetadataError(f"model record is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise MetadataError("model record is not a JSON object")
        return cls.from_dict(data)

    def to_parameters(self) -> dict[str, str]:
        """The record and the individual parameters an operator reads, for an ensemble's config."""
        params = {
            METADATA_KEY: self.to_json(),
            ConfigKeys.FAMILY: self.family,
            ConfigKeys.TASK: self.task.value,
            ConfigKeys.CLASS_NAMES: json.dumps(list(self.class_names)),
            **self.input.to_parameters(),
        }
        if self.colors:
            params[ConfigKeys.COLORS] = json.dumps([list(c) for c in self.colors])
        if self.thresholds is not None:
            params.update({k: str(v) for k, v in self.thresholds.to_dict().items()})
        params[ConfigKeys.SOURCE_WEIGHTS] = self.source_weights
        params.update({f"{k}{ConfigKeys.VERSION_SUFFIX}": v for k, v in self.versions.items()})
        params.update({k: str(v) for k, v in self.extra.items()})
        return params

    @classmethod
    def from_parameters(cls, params: Mapping[str, str]) -> ModelMetadata:
        """The record of a config's parameters; for a repository built before the record, what its
        individual parameters say. MetadataError when neither is there (not built by build-repo)."""
        if METADATA_KEY in params:
            return cls.from_json(params[METADATA_KEY])
        if ConfigKeys.TASK not in params:
            raise MetadataError(f"no {METADATA_KEY!r} or {ConfigKeys.TASK!r} parameter")
        return _from_individual_parameters(params)


def _from_individual_parameters(params: Mapping[str, str]) -> ModelMetadata:
    """What repositories built before the record say, one parameter each."""
    k = ConfigKeys
    try:
        spec = InputSpec.from_parameters(params) if k.INPUT_HEIGHT in params else InputSpec(0, 0)
        thresholds = (
            Thresholds(float(params[k.CONF]), float(params[k.IOU]), int(params[k.MAX_DET]))
            if k.CONF in params
            else None
        )
        return ModelMetadata(
            family=params.get(k.FAMILY, ""),
            task=Task(params[k.TASK]),
            class_names=json.loads(params.get(k.CLASS_NAMES, "[]")),
            input=spec,
            colors=json.loads(params.get(k.COLORS, "[]")),
            thresholds=thresholds,
            max_pixels=int(params.get(k.MAX_PIXELS, DEFAULT_MAX_PIXELS)),
            versions={
                name[: -len(k.VERSION_SUFFIX)]: value
                for name, value in params.items()
                if name.endswith(k.VERSION_SUFFIX)
            },
            source_weights=params.get(k.SOURCE_WEIGHTS, ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MetadataError(f"unreadable model parameters ({type(exc).__name__}: {exc})") from None
