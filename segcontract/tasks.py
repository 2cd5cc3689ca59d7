"""Task kinds, and the tensors each task's ensemble takes and returns.

Every served ensemble takes ``IMAGE`` (one encoded image file per batch item) and returns its
task's outputs followed by ``image_size`` (the original height and width, which the client needs
to crop padded outputs). The builder writes these specs into config.pbtxt, the Python-backend
models name their tensors after them, and clients ask for them by these names.
"""

from __future__ import annotations

from enum import Enum

from segcontract.masks import index_dtype
from segcontract.tensors import TensorSpec


class Task(str, Enum):
    """What a served model answers. A ``str`` so that it compares, hashes and serialises as its value."""

    INSTANCE = "instance_segmentation"
    SEMANTIC = "semantic_segmentation"
    CLASSIFICATION = "classification"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


# every ensemble's input, and the preprocess model's
IMAGE = TensorSpec("IMAGE", "bytes", (1,))
# the original (height, width): made by preprocess, passed to postprocess, returned by the ensemble
IMAGE_SIZE = TensorSpec("image_size", "int32", (2,))

# instance segmentation: K detections per image, padded to the longest of the batch
BOXES = TensorSpec("boxes", "float32", (-1, 4))  # xyxy, original pixels
SCORES = TensorSpec("scores", "float32", (-1,))
CLASSES = TensorSpec("classes", "int32", (-1,))  # -1 in the padding
MASKS = TensorSpec("masks", "bytes", (-1,))  # COCO compressed RLE counts, one string per detection
NUM_DETECTIONS = TensorSpec("num_detections", "int32", (1,))
INSTANCE_OUTPUTS = (BOXES, SCORES, CLASSES, MASKS, NUM_DETECTIONS)

# semantic segmentation: one class-index mask per image, padded to the largest of the batch
SEMANTIC_MASK_NAME = "mask"
# classification: one probability per class (softmax), served with the class names as its
# label_filename so that Triton's classification extension (class_count=k) answers "score:index:label"
PROBABILITIES_NAME = "probabilities"
LABELS_FILE = "labels.txt"

# the segment ensemble (<name>_segment) of a classifier also takes one stored segment per image: its
# box (xyxy, original pixels) and its mask as COCO compressed RLE counts; the preprocess crops the
# box with a margin and fills what is outside the mask (segops.segment_crop)
SEGMENT_BOX = TensorSpec("segment_box", "float32", (4,))
SEGMENT_MASK = TensorSpec("segment_mask", "bytes", (1,))
SEGMENT_SUFFIX = "_segment"


def segment_ensemble_name(name: str) -> str:
    """The classifier's second ensemble, which classifies one segment of an image."""
    return f"{name}{SEGMENT_SUFFIX}"


def ensemble_inputs(task: Task) -> tuple[TensorSpec, ...]:
    """What every task's ensemble takes: the encoded image file."""
    Task(task)
    return (IMAGE,)


def postprocess_outputs(task: Task, num_classes: int) -> tuple[TensorSpec, ...]:
    """What a task's postprocess model returns (the ensemble adds ``image_size``)."""
    task = Task(task)
    if task is Task.INSTANCE:
        return INSTANCE_OUTPUTS
    if task is Task.SEMANTIC:
        return (TensorSpec(SEMANTIC_MASK_NAME, index_dtype(num_classes - 1), (-1, -1)),)
    return (TensorSpec(PROBABILITIES_NAME, "float32", (num_classes,)),)


def ensemble_outputs(task: Task, num_classes: int) -> tuple[TensorSpec, ...]:
    """What a task's ensemble returns: the postprocess outputs, then ``image_size``."""
    return (*postprocess_outputs(task, num_classes), IMAGE_SIZE)


def output_names(task: Task) -> tuple[str, ...]:
    """The names a client asks a task's ensemble for (names do not depend on the class count)."""
    return tuple(t.name for t in ensemble_outputs(task, 1))
