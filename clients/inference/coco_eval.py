"""Score seg-client's per-image JSON against COCO ground truth with pycocotools' COCOeval."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from clients.inference.run import FAILURES_FILE
from clients.triton.client import ClientError


@dataclass
class CocoScores:
    box_map50: float
    box_map: float  # mAP50-95
    mask_map50: float
    mask_map: float
    images: int
    images_without_results: int
    detections: int
    badlisted: int = 0  # ground-truth images left out: on the badlist now


def load_ground_truth(path: Path) -> COCO:
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ClientError(f"{path}: not a readable COCO annotation file ({exc})") from None


def score_results(ground_truth: Path, results: list[dict]) -> tuple[float, float, float, float]:
    """(box mAP50, box mAP50-95, mask mAP50, mask mAP50-95) of COCO-format results."""
    gt = load_ground_truth(ground_truth)
    ids = gt.getImgIds()
    return (*_stats(gt, results, "bbox", ids), *_stats(gt, results, "segm", ids))


def results_from_records(records_dir: Path, gt: COCO) -> tuple[list[dict], set[int]]:
    """COCO results (bbox xywh + RLE segmentation) from the records, matched to GT images by the
    record's relative image path and to categories by class name."""
    image_ids = {img["file_name"]: img["id"] for img in gt.dataset["images"]}
    category_ids = {c["name"]: c["id"] for c in gt.dataset["categories"]}
    results, seen = [], set()
    for path in sorted(Path(records_dir).rglob("*.json")):
        if path.name == FAILURES_FILE:
            continue
        record = json.loads(path.read_text())
        if "detections" not in record:
            raise ClientError(
                f"{path}: not an instance-segmentation result (COCOeval scores boxes and masks)"
            )
        image_id = image_ids.get(record.get("image"))
        if image_id is None:
            continue
        seen.add(image_id)
        for det in record["detections"]:
            if det["class_name"] not in category_ids:
                raise ClientError(
                    f"class {det['class_name']!r} of the model is not a category of the ground truth"
                )
            x1, y1, x2, y2 = det["bbox"]
            results.append(
                {
                    "image_id": image_id,
                    "category_id": category_ids[det["class_name"]],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": det["score"],
                    "segmentation": det["segmentation"],
                }
            )
    if not seen:
        raise ClientError(
            f"no result in {records_dir} names one of the {len(image_ids)} ground-truth images; run infer "
            "with --source on the folder the file names are relative to (e.g. dataset/images/val)"
        )
    return results, seen


def _stats(gt: COCO, results: list[dict], kind: str, image_ids: list[int]) -> tuple[float, float]:
    if not results:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        evaluator = COCOeval(gt, dt, kind)
        evaluator.params.imgIds = sorted(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return max(float(evaluator.stats[1]), 0.0), max(float(evaluator.stats[0]), 0.0)


def evaluate(
    ground_truth: Path, records_dir: Path, left_out: Callable[[str], bool] = lambda image: False
) -> CocoScores:
    """Box and mask mAP over the ground truth's images, except those whose ``file_name``
    ``left_out`` names (badlisted now): neither their annotations nor their results count."""
    gt = load_ground_truth(ground_truth)
    kept = [img["id"] for img in gt.dataset["images"] if not left_out(str(img.get("file_name", "")))]
    kept_ids = set(kept)
    results, seen = results_from_records(records_dir, gt)
    results = [r for r in results if r["image_id"] in kept_ids]
    seen &= kept_ids
    box50, box = _stats(gt, results, "bbox", kept)
    mask50, mask = _stats(gt, results, "segm", kept)
    n = len(kept)
    return CocoScores(box50, box, mask50, mask, n, n - len(seen), len(results), len(gt.dataset["images"]) - n)


def format_coco_scores(scores: CocoScores) -> str:
    left = f", {scores.badlisted} badlisted images left out" if scores.badlisted else ""
    return "\n".join(
        [
            f"{scores.images} images ({scores.images_without_results} without results{left}), "
            f"{scores.detections} detections",
            f"box  mAP50 {scores.box_map50:.4f}  mAP50-95 {scores.box_map:.4f}",
            f"mask mAP50 {scores.mask_map50:.4f}  mAP50-95 {scores.mask_map:.4f}",
        ]
    )
