"""Per-image result records: their JSON Schema is segcontract/schemas/image_record.schema.json
(``segcontract.schemas.load("image_record")``), which the tests validate every written record against."""

from __future__ import annotations

from clients.triton.client import ClassificationResult, InstanceResult, ModelInfo


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


def ranked_classes(model: ModelInfo, result: ClassificationResult) -> list[dict]:
    """The classes Triton ranked, best first; the label is the one the ensemble's labels file
    gives (the model's class names)."""
    return [
        {"class_id": index, "class_name": label or model.class_name(index), "score": round(score, 6)}
        for score, index, label in result.classes
    ]


def classification_record(image: str, model: ModelInfo, result: ClassificationResult) -> dict:
    return {
        "image": image,
        "width": result.width,
        "height": result.height,
        "model": model.name,
        "classes": ranked_classes(model, result),
    }


def segments_record(
    image: str, width: int, height: int, model: ModelInfo, segment_model: str, segments: list[dict]
) -> dict:
    """The classes of each stored segment of one image: ``segments`` holds ``segment_id`` (the
    store's), ``bbox`` and ``classes`` per segment."""
    return {
        "image": image,
        "width": width,
        "height": height,
        "model": model.name,
        "segment_model": segment_model,
        "segments": segments,
    }
