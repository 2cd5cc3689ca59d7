"""What the checkpoints segstack reads and writes hold.

``segstack.smp/1`` (seg-train semantic writes it, build-repo --model smp reads it): a plain dict of
tensors, numbers and strings, so it loads with ``torch.load(weights_only=True)``::

    {"format": "segstack.smp/1", "info": SemanticModelInfo as a dict, "state_dict": {...},
     "epoch": int, "best_miou": float, "optimizer": {...}}

``info`` records everything the builder and the server need (architecture, encoder, classes,
colours, input size, normalisation) beside the weights; the optimizer state is for resuming.

``segstack.classifier/1`` (seg-train classify writes it, build-repo --model classifier reads it): a
PyTorch Lightning ``.ckpt`` whose ``hyper_parameters`` hold ``{"format": "segstack.classifier/1",
"info": ClassifierModelInfo as a dict}`` next to Lightning's own ``state_dict`` (keys prefixed
``model.``), so the builder needs nothing but the file; it loads with ``weights_only=True``.

Ultralytics ``.pt`` files pickle the model object itself. They are read with an allowlist: only
``nn.Module`` subclasses under ``ULTRALYTICS_MODULE_PREFIXES`` and the value types in
``ULTRALYTICS_VALUE_TYPES``; any other global a file names needs ``--trust-checkpoint``.
"""

from __future__ import annotations

from dataclasses import dataclass

from segcontract.errors import SegstackError

TRUST_OPTION = "--trust-checkpoint"


class CheckpointError(SegstackError):
    """The file is not a checkpoint of this format: one line naming it."""


SMP_FORMAT = "segstack.smp/1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class SemanticModelInfo:
    arch: str
    encoder: str
    num_classes: int
    class_names: list[str]
    colors: list[list[int]]  # RGB per class
    input_size: tuple[int, int]  # (width, height)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        if len(self.class_names) != self.num_classes or len(self.colors) != self.num_classes:
            raise CheckpointError(
                f"{self.num_classes} classes but {len(self.class_names)} names and {len(self.colors)} colours"
            )


CLASSIFIER_FORMAT = "segstack.classifier/1"
# how much of a segment's box is added on each side when it is cropped for the classifier
SEGMENT_MARGIN = 0.1
SEGMENT_MARGIN_KEY = "segment_margin"  # the model record's extra: the crop margin the segment ensemble uses


@dataclass
class ClassifierModelInfo:
    """What a classifier checkpoint records besides its weights: the timm architecture, the class
    names (index order), and the eval preprocessing (``stretch`` to ``input_size``, RGB, /255,
    mean/std, CHW: segops.resize.prepare), which training's validation and the server share."""

    arch: str
    num_classes: int
    class_names: list[str]
    input_size: tuple[int, int]  # (width, height)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resize: str = "stretch"
    segment_margin: float = SEGMENT_MARGIN  # used when trained or run on segments

    def __post_init__(self) -> None:
        self.input_size = (int(self.input_size[0]), int(self.input_size[1]))
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        self.class_names = list(self.class_names)
        if len(self.class_names) != self.num_classes:
            raise CheckpointError(f"{self.num_classes} classes but {len(self.class_names)} names")


# Module prefixes whose nn.Module subclasses a checkpoint may name (models, layers, heads).
ULTRALYTICS_MODULE_PREFIXES = ("torch.nn.modules.", "ultralytics.nn.")
# Plain value types ultralytics stores next to the model (arguments, metrics, numpy scalars).
ULTRALYTICS_VALUE_TYPES = frozenset(
    {
        "types.SimpleNamespace",
        "ultralytics.utils.IterableSimpleNamespace",
        "ultralytics.cfg.IterableSimpleNamespace",
        "pathlib.PosixPath",
        "numpy.dtype",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.ndarray",
    }
)
