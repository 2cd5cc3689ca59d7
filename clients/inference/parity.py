"""Compare two sets of instance detections of one image (e.g. served vs ultralytics predict):
one-to-one matching by box IoU within a class, then box IoU, mask IoU and score differences."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as mask_utils


@dataclass
class Dets:
    boxes: np.ndarray  # (N, 4) xyxy original pixels
    scores: np.ndarray
    classes: np.ndarray
    masks: list[np.ndarray]  # HxW uint8

    @classmethod
    def from_ultralytics(cls, result) -> Dets:
        if result.masks is None:
            return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), [])
        return cls(
            result.boxes.xyxy.cpu().numpy(),
            result.boxes.conf.cpu().numpy(),
            result.boxes.cls.cpu().numpy().astype(int),
            [m.astype(np.uint8) for m in result.masks.data.cpu().numpy()],
        )

    @classmethod
    def from_record(cls, record: dict) -> Dets:
        d = record["detections"]
        return cls(
            np.array([x["bbox"] for x in d]).reshape(-1, 4),
            np.array([x["score"] for x in d]),
            np.array([x["class_id"] for x in d], int),
            [
                mask_utils.decode(
                    {"size": x["segmentation"]["size"], "counts": x["segmentation"]["counts"].encode()}
                )
                for x in d
            ],
        )


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 1.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@dataclass
class Parity:
    matched: int = 0
    missing: list[float] = field(default_factory=list)  # reference scores with no served match
    extra: list[float] = field(default_factory=list)  # served scores with no reference match
    box_ious: list[float] = field(default_factory=list)
    mask_ious: list[float] = field(default_factory=list)
    score_diffs: list[float] = field(default_factory=list)

    def merge(self, other: Parity) -> None:
        self.matched += other.matched
        for name in ("missing", "extra", "box_ious", "mask_ious", "score_diffs"):
            getattr(self, name).extend(getattr(other, name))

    def summary(self) -> str:
        def stat(v, f):
            return f"{f(v):.4f}" if v else "n/a"

        return (
            f"matched {self.matched}, missing {len(self.missing)}, extra {len(self.extra)}, "
            f"min box IoU {stat(self.box_ious, min)}, mean mask IoU {stat(self.mask_ious, np.mean)}, "
            f"min mask IoU {stat(self.mask_ious, min)}, max score diff {stat(self.score_diffs, max)}"
        )


def compare(reference: Dets, served: Dets, threshold: float, margin: float = 0.02) -> Parity:
    """Greedy one-to-one matching by box IoU within a class. Detections within ``margin`` of the
    threshold may legitimately fall on either side of it, so they are not counted missing/extra."""
    out = Parity()
    used = np.zeros(len(served.scores), bool)
    for i in np.argsort(-reference.scores):
        best, best_iou = -1, 0.5
        for j in range(len(served.scores)):
            if used[j] or served.classes[j] != reference.classes[i]:
                continue
            iou = box_iou(reference.boxes[i], served.boxes[j])
            if iou > best_iou:
                best, best_iou = j, iou
        if best < 0:
            if reference.scores[i] >= threshold + margin:
                out.missing.append(float(reference.scores[i]))
            continue
        used[best] = True
        out.matched += 1
        out.box_ious.append(best_iou)
        out.mask_ious.append(mask_iou(reference.masks[i], served.masks[best]))
        out.score_diffs.append(abs(float(reference.scores[i]) - float(served.scores[best])))
    out.extra = [float(s) for s, u in zip(served.scores, used) if not u and s >= threshold + margin]
    return out
