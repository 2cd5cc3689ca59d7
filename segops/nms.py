"""Confidence filter and class-aware NMS on a raw YOLOv8 head output, as ultralytics 8.4 does it
(``non_max_suppression`` with its defaults: best class only, boxes offset by class × 7680)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_WH = 7680  # ultralytics' class offset: boxes of different classes never overlap
MAX_NMS = 30000  # at most this many boxes, by score, enter NMS


@dataclass
class Detections:
    """Detections of one image in model-input pixels."""

    boxes: np.ndarray  # (N, 4) float32 xyxy
    scores: np.ndarray  # (N,) float32
    classes: np.ndarray  # (N,) int32
    mask_coefficients: np.ndarray  # (N, M) float32

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, index: np.ndarray) -> Detections:
        return Detections(
            self.boxes[index], self.scores[index], self.classes[index], self.mask_coefficients[index]
        )


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    xy, half_wh = xywh[:, :2], xywh[:, 2:4] / 2
    return np.concatenate([xy - half_wh, xy + half_wh], axis=1)


def nms_indices(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int | None = None
) -> np.ndarray:
    """Greedy NMS (torchvision's semantics: suppress when IoU > threshold), highest score first.
    Stops once ``max_keep`` boxes are kept: the first ones kept do not depend on the rest, so this
    is ``[:max_keep]`` of the full result, in at most ``max_keep`` passes."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size and (max_keep is None or len(keep) < max_keep):
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter + 1e-12)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def non_max_suppression(
    prediction: np.ndarray, num_classes: int, conf: float, iou: float, max_det: int
) -> Detections:
    """``prediction``: one image's (4 + num_classes + M, anchors) head output."""
    pred = prediction.T  # (anchors, 4 + nc + M)
    class_scores = pred[:, 4 : 4 + num_classes]
    best = class_scores.argmax(axis=1)
    score = class_scores[np.arange(len(pred)), best]
    keep = score > conf
    pred, best, score = pred[keep], best[keep], score[keep]
    if len(score) > MAX_NMS:
        top = np.argsort(-score, kind="stable")[:MAX_NMS]
        pred, best, score = pred[top], best[top], score[top]
    boxes = xywh_to_xyxy(pred[:, :4])
    dets = Detections(
        boxes.astype(np.float32),
        score.astype(np.float32),
        best.astype(np.int32),
        np.ascontiguousarray(pred[:, 4 + num_classes :], dtype=np.float32),
    )
    if not len(dets):
        return dets
    offset = best[:, None].astype(np.float32) * MAX_WH
    return dets.take(nms_indices(boxes + offset, score, iou, max_det))
