"""Per-image result records (DESIGN.md's JSON schema) and atomic writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

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


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # a power cut must not leave an empty file that counts as done
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, record: dict) -> None:
    write_atomic(path, json.dumps(record, indent=1).encode())


def write_image_atomic(path: Path, image) -> None:
    """Encode by the file's suffix (PNG keeps uint16) and write atomically."""
    import cv2

    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise OSError(f"cannot encode {path.name}")
    write_atomic(path, encoded.tobytes())
