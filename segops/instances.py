"""One image's YOLOv8-seg detections from the network's raw outputs: NMS, boxes in the original
image's pixels, each mask cut to its box at full resolution and COCO-RLE encoded. What the
postprocess model answers per image (python_backend_models/yolo_seg_postprocess.py), kept free of
Triton so that the benchmarks can run the same work in one process."""

from __future__ import annotations

import numpy as np

from . import rle
from .letterbox import letterbox_params, scale_boxes_to_original
from .masks import masks_in_boxes
from .nms import non_max_suppression


def detect(
    pred: np.ndarray,
    protos: np.ndarray,
    size: tuple[int, int],
    input_hw: tuple[int, int],
    num_classes: int,
    conf: float,
    iou: float,
    max_det: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[bytes]]:
    """(boxes xyxy in original pixels, scores, classes, RLE masks) for one image: ``pred``
    (4 + classes + 32, anchors) and ``protos`` (32, H/4, W/4) from an input of ``input_hw``
    letterboxed from an image of ``size`` (height, width). Detections whose mask is empty are
    dropped, as ultralytics drops them."""
    dets = non_max_suppression(pred, num_classes, conf, iou, max_det)
    params = letterbox_params((int(size[0]), int(size[1])), input_hw)
    boxes = scale_boxes_to_original(dets.boxes, params)
    orig_hw = (params.orig_h, params.orig_w)
    keep, encoded = [], []
    for i, (window, patch) in enumerate(
        masks_in_boxes(protos, dets.mask_coefficients, boxes, params, input_hw)
    ):
        if not patch.any():
            continue
        keep.append(i)
        encoded.append(rle.encode_window(patch, window, orig_hw))
    kept = np.asarray(keep, dtype=np.int64)
    return boxes[kept], dets.scores[kept], dets.classes[kept], encoded
