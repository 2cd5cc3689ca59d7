"""Per-image result records: their JSON Schema is segcontract/schemas/image_record.schema.json
(``segcontract.schemas.load("image_record")``), which the tests validate every written record against."""

from __future__ import annotations

from clients.triton import InstanceResult, ModelInfo


def instance_record(image: str, model: ModelInfo, result: InstanceResult) -> dict:
    detections = []
    for box, score, cls, counts in zip(result.boxes, result.scores, result.classes, result.masks):
        detections.append(
            {
                "class_id": int(cls),
                "class_name": model.class_name(int(cls)),
                "score": round(float(score), 5),
                "bbox": [round(float(v), 2) for v in box],
                "segmentation": {
                    "size": [result.height, result.width],
                    "counts": counts.decode() if isinstance(counts, bytes) else str(counts),
                },
            }
        )
    return {
        "image": image,
        "width": result.width,
        "height": result.height,
        "model": model.name,
        "detections": detections,
    }
