"""seg-client evaluate scores records with COCOeval: perfect records score 1, missing ones less."""

import json

import numpy as np
from pycocotools import mask as mask_utils

from clients.inference.coco_eval import evaluate
from tests.fixtures.synthetic import write_coco_dataset
from training.coco2yolo import convert


def test_perfect_and_partial_records(tmp_path):
    write_coco_dataset(
        tmp_path / "src" / "a",
        {"circle": 1, "rectangle": 2, "triangle": 3},
        6,
        np.random.default_rng(1),
        rle_every=0,
    )
    convert(tmp_path / "src", tmp_path / "yolo", val_fraction=0.5)
    gt_path = tmp_path / "yolo" / "annotations" / "val.json"
    gt = json.loads(gt_path.read_text())
    names = {c["id"]: c["name"] for c in gt["categories"]}
    out = tmp_path / "records"
    out.mkdir()
    for image in gt["images"]:
        anns = [a for a in gt["annotations"] if a["image_id"] == image["id"]]
        detections = []
        for a in anns:
            rle = mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], image["height"], image["width"]))
            x, y, w, h = a["bbox"]
            detections.append(
                {
                    "class_id": a["category_id"] - 1,
                    "class_name": names[a["category_id"]],
                    "score": 0.9,
                    "bbox": [x, y, x + w, y + h],
                    "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                }
            )
        record = {
            "image": image["file_name"],
            "width": image["width"],
            "height": image["height"],
            "model": "m",
            "detections": detections,
        }
        (out / f"{image['id']}.json").write_text(json.dumps(record))
    perfect = evaluate(gt_path, out)
    assert perfect.images_without_results == 0
    assert perfect.box_map50 > 0.99 and perfect.mask_map50 > 0.99 and perfect.mask_map > 0.99

    first = sorted(out.glob("*.json"))[0]
    first.unlink()
    partial = evaluate(gt_path, out)
    assert partial.images_without_results == 1 and partial.mask_map50 < perfect.mask_map50
    # the image without a result badlisted since: neither its annotations nor its absence count
    missing = next(i["file_name"] for i in gt["images"] if f"{i['id']}.json" == first.name)
    scored = evaluate(gt_path, out, left_out=lambda image: image == missing)
    assert scored.badlisted == 1 and scored.images == len(gt["images"]) - 1
    assert scored.images_without_results == 0 and scored.mask_map50 > 0.99 and scored.mask_map > 0.99
