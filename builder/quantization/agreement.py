"""How far a quantized network's answers are from FP32's on the same inputs, as each family's
users would measure it, on a 0-100 scale where FP32 against itself scores 100."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from builder.errors import BuildError
from segcontract.tasks import Task
from segops import instances


@dataclass(frozen=True)
class Agreement:
    metric: str  # what ``score`` is, in words: "mask mAP50 against FP32"
    score: float  # 0-100; FP32 against itself: 100
    images: int  # held-out images it was measured on

    @property
    def drop(self) -> float:
        return 100.0 - self.score


class NothingToCompare(BuildError):
    """The reference answered nothing, so no drop can be measured; ``agreement`` is what
    ``--accept-drop`` records then (a score of 0)."""

    def __init__(self, message: str, agreement: Agreement):
        super().__init__(message)
        self.agreement = agreement


@dataclass(frozen=True)
class Detections:
    """One image's answers: scores, classes and COCO compressed RLE masks (all the image's size)."""

    scores: np.ndarray
    classes: np.ndarray
    masks: Sequence[bytes]
    size: tuple[int, int]  # (height, width)


def mask_map50(
    reference: Sequence[Detections], candidate: Sequence[Detections], confident: float = 1.0
) -> Agreement:
    """COCO mask mAP at IoU 0.5 of ``candidate``'s detections (with their scores) taken against
    ``reference``'s as the ground truth, each class a category (pycocotools' COCOeval). A class
    the reference never shows, of which the candidate finds something with a score of at least
    ``confident``, counts as a class with AP 0 (COCOeval itself leaves such classes out)."""
    if not any(len(d.scores) for d in reference):
        raise NothingToCompare(
            f"--int8: the FP32 network finds nothing on the {len(reference)} held-out calibration images, "
            "so the INT8 drop cannot be measured; give images with the objects the model detects in "
            "them (or a lower --conf), or build with --accept-drop",
            Agreement("mask mAP50 against FP32 (not measured: FP32 finds nothing)", 0.0, len(reference)),
        )
    classes = sorted({int(c) for d in (*reference, *candidate) for c in d.classes})
    images, truths, found = [], [], []
    for image_id, (ref, cand) in enumerate(zip(reference, candidate), start=1):
        h, w = ref.size
        images.append({"id": image_id, "height": h, "width": w})
        for dets, into in ((ref, truths), (cand, found)):
            for score, cls, counts in zip(dets.scores, dets.classes, dets.masks):
                rle = {"size": [h, w], "counts": counts}
                into.append(
                    {
                        "id": len(into) + 1,
                        "image_id": image_id,
                        "category_id": int(cls) + 1,
                        "segmentation": rle,
                        "area": float(mask_utils.area(rle)),
                        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                        "iscrowd": 0,
                        "score": float(score),
                    }
                )
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its progress and table
        truth = COCO()
        truth.dataset = {
            "images": images,
            "annotations": truths,
            "categories": [{"id": c + 1, "name": str(c)} for c in classes],
        }
        truth.createIndex()
        if not found:
            return Agreement("mask mAP50 against FP32", 0.0, len(reference))
        evaluation = COCOeval(truth, truth.loadRes(found), iouType="segm")
        evaluation.params.iouThrs = np.array([0.5])
        evaluation.params.maxDets = [1, 10, max(100, max(len(d.scores) for d in reference))]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    # stats[1]: AP at IoU 0.5 with the last of maxDets (stats[0] would fix maxDets at 100)
    ap = max(float(evaluation.stats[1]), 0.0)
    shown = {int(c) for d in reference for c in d.classes}
    invented = {int(c) for d in candidate for c, s in zip(d.classes, d.scores) if s >= confident} - shown
    ap *= len(shown) / (len(shown) + len(invented))
    return Agreement("mask mAP50 against FP32", 100.0 * ap, len(reference))


def top1_agreement(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> Agreement:
    """The share (%) of images whose top class is the same: ``reference``/``candidate`` are per
    image the class scores (any shape with the classes last)."""
    same = [int(np.argmax(r.reshape(-1)) == np.argmax(c.reshape(-1))) for r, c in zip(reference, candidate)]
    return Agreement("top-1 agreement with FP32 (%)", 100.0 * float(np.mean(same)), len(same))


def class_map_miou(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> Agreement:
    """The mean IoU (%) of ``candidate``'s class-index maps against ``reference``'s, over the
    classes either shows: per image, class maps (height × width)."""
    intersection: dict[int, int] = {}
    union: dict[int, int] = {}
    for ref, cand in zip(reference, candidate):
        for cls in np.union1d(np.unique(ref), np.unique(cand)):
            a, b = ref == cls, cand == cls
            intersection[int(cls)] = intersection.get(int(cls), 0) + int(np.count_nonzero(a & b))
            union[int(cls)] = union.get(int(cls), 0) + int(np.count_nonzero(a | b))
    ious = [intersection[c] / union[c] for c in union if union[c]]
    return Agreement("class-map mIoU against FP32", 100.0 * float(np.mean(ious)), len(reference))


Outputs = Sequence[list[np.ndarray]]  # per input (a batch of one), the network's outputs
Measure = Callable[[Sequence[np.ndarray], Outputs, Outputs], Agreement]


CANDIDATE_CONF = 0.001  # what mAP is computed over (ultralytics' val): the whole ranking, not a cut


def instance_measure(num_classes: int, conf: float, iou: float, max_det: int) -> Measure:
    """Mask mAP50 of INT8's detections against FP32's answers, both post-processed as the server
    does (YOLOv8-seg's outputs; its iou and max_det), the masks at the input's size. FP32's answers
    are those the server gives (its conf); INT8's are ranked down to ``CANDIDATE_CONF``, as mAP
    always is, so an object whose score moved from just above conf to just below costs a little
    precision at that rank, not the whole object."""

    def detections(x: np.ndarray, outputs: list[np.ndarray], threshold: float) -> Detections:
        hw = (int(x.shape[-2]), int(x.shape[-1]))
        _, scores, classes, masks = instances.detect(
            outputs[0][0], outputs[1][0], hw, hw, num_classes, threshold, iou, max_det
        )
        return Detections(scores, classes, masks, hw)

    def measure(inputs: Sequence[np.ndarray], fp32: Outputs, int8: Outputs) -> Agreement:
        return mask_map50(
            [detections(x, out, conf) for x, out in zip(inputs, fp32)],
            [detections(x, out, min(conf, CANDIDATE_CONF)) for x, out in zip(inputs, int8)],
            confident=conf,
        )

    return measure


def classifier_measure(inputs: Sequence[np.ndarray], fp32: Outputs, int8: Outputs) -> Agreement:
    """Top-1 agreement of the probabilities (the network's one output)."""
    return top1_agreement([o[0][0] for o in fp32], [o[0][0] for o in int8])


def semantic_measure(inputs: Sequence[np.ndarray], fp32: Outputs, int8: Outputs) -> Agreement:
    """Class-map mIoU of the logits' argmax (the network's one output, classes first), as the
    server takes it."""
    return class_map_miou([o[0][0].argmax(0) for o in fp32], [o[0][0].argmax(0) for o in int8])


def measure_for(task: Task, num_classes: int, conf: float, iou: float, max_det: int) -> Measure:
    """The measure of a served model's task (what ``build-repo tune`` reads from its record)."""
    if task is Task.INSTANCE:
        return instance_measure(num_classes, conf, iou, max_det)
    return classifier_measure if task is Task.CLASSIFICATION else semantic_measure
