"""Overlays for people to look at: masks tinted per class, contours, boxes and labels."""

from __future__ import annotations

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def class_colour(class_id: int) -> tuple[int, int, int]:
    hue = (class_id * 47) % 180
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw_instances(image: np.ndarray, record: dict, alpha: float = 0.45) -> np.ndarray:
    out = image.copy()
    for det in record["detections"]:
        colour = class_colour(det["class_id"])
        mask = mask_utils.decode(
            {"size": det["segmentation"]["size"], "counts": det["segmentation"]["counts"].encode()}
        )
        region = mask.astype(bool)
        out[region] = (out[region] * (1 - alpha) + np.array(colour) * alpha).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour, 2)
        x1, y1, x2, y2 = (round(v) for v in det["bbox"])
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 1)
        label = f"{det['class_name']} {det['score']:.2f}"
        cv2.putText(out, label, (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return out
